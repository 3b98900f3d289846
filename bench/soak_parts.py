"""The pieces of bench/soak.py: viewers, the lossy RTP relay, the sampler, analysis, plots and
the report."""

import json
import os
import pathlib
import random
import socket
import statistics
import subprocess
import threading
import time
import urllib.error
import urllib.request

import avsync
import gwbench as b
import latency
import memory
import udp

STALL_MS = 1000
WARMUP_MS = latency.WARMUP_MS


# --- viewers and sources ------------------------------------------------------------------
class Viewer(latency.Receiver):
    """An `avprobe receive` whose decoded pictures the sampler counts while it plays."""

    def __init__(self, tool, url, seconds, soak):
        self.soak = soak
        latency.TOOL = tool
        super().__init__(url, url, seconds)
        with soak.lock:
            soak.active = getattr(soak, "active", set()) | {self}

    def frames(self):
        return sum(1 for e in list(self.events) if "v" in e)

    def wait(self, timeout):
        out = super().wait(timeout)
        with self.soak.lock:
            self.soak.active.discard(self)
            self.soak.frames_done = getattr(self.soak, "frames_done", 0) + self.frames()
        return out


def summarize(path, r):
    """One finished viewer: pictures, stalls (gaps > 1 s between pictures after the warm-up) and
    the A/V offsets (beep PTS - flash PTS, and by arrival)."""
    ev = r["events"]
    vs = [e["v"][0] for e in ev if "v" in e]
    start = next((e["start"] for e in ev if "start" in e), vs[0] if vs else 0)
    stalls = []
    if vs:
        t0 = vs[0]
        for a, c in zip(vs, vs[1:]):
            if c - a > STALL_MS and a - t0 >= WARMUP_MS:
                stalls.append([a / 1000, (c - a) / 1000])
    offs = avsync.offsets(ev)
    end = next((e["end"] for e in ev if "end" in e), {})
    errors = [e["error"] for e in ev if "error" in e] + ([end["error"]] if end.get("error") else [])
    return {"path": path, "start": start / 1000, "end": (vs[-1] if vs else start) / 1000, "frames": len(vs),
            "first_video_ms": next((e["first"].get("video_ms") for e in ev if "first" in e), None),
            "stalls": stalls, "av_pts_ms": [o[1] for o in offs], "av_arrival_ms": [o[2] for o in offs],
            "errors": errors[:3], "stderr": r["stderr"][-300:] if not vs else ""}


def start_source(tool, kind, url):
    latency.TOOL = tool
    return latency.start_source(kind, url, 24 * 3600)


def nginx_on(tmp, port):
    """nginx-rtmp origin on a given port (so a restarted origin is found at the same URL)."""
    d = tmp / f"nginx-{port}"
    d.mkdir(exist_ok=True)
    conf = d / "nginx.conf"
    conf.write_text(f"""load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off; master_process off; worker_processes 1;
error_log {d}/error.log; pid {d}/nginx.pid;
events {{ worker_connections 1024; }}
rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}
""")
    p = b.start(["nginx", "-p", str(d), "-c", str(conf)])
    b.wait_port(port)
    return p


# --- RTP with loss and jitter -------------------------------------------------------------
def make_udp_clip(tmp):
    return udp.make_clip(tmp, seconds=4, audio="aac")


class Relay:
    """Forwards UDP datagrams from `listen` ports to `to` ports on 127.0.0.1, dropping `loss` of
    them and delaying each by a uniform 0..`jitter_ms` (so some overtake others): the faults
    `tc netem loss 5% delay 20ms 20ms` would inject, in userspace."""

    def __init__(self, pairs, loss=0.05, jitter_ms=40):
        self.loss, self.jitter = loss, jitter_ms / 1000
        self.socks = []
        for listen, to in pairs:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", listen))
            s.settimeout(0.2)
            self.socks.append((s, to))
        self.out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.done = threading.Event()
        self.forwarded = self.dropped = 0
        self.queue, self.cv = [], threading.Condition()
        self.threads = [threading.Thread(target=self._recv, args=(s, to), daemon=True) for s, to in self.socks]
        self.threads.append(threading.Thread(target=self._send, daemon=True))
        for t in self.threads:
            t.start()

    def _recv(self, s, to):
        while not self.done.is_set():
            try:
                data = s.recv(65536)
            except (socket.timeout, OSError):
                continue
            if random.random() < self.loss:
                self.dropped += 1
                continue
            with self.cv:
                self.queue.append((time.monotonic() + random.uniform(0, self.jitter), data, to))
                self.cv.notify()

    def _send(self):
        while not self.done.is_set():
            with self.cv:
                now = time.monotonic()
                due = [q for q in self.queue if q[0] <= now]
                self.queue = [q for q in self.queue if q[0] > now]
                if not due:
                    nxt = min((q[0] for q in self.queue), default=now + 0.05)
                    self.cv.wait(max(0.0, min(0.05, nxt - now)))
                    continue
            for _, data, to in sorted(due, key=lambda q: q[0]):
                try:
                    self.out.sendto(data, ("127.0.0.1", to))
                    self.forwarded += 1
                except OSError:
                    pass

    def close(self):
        self.done.set()
        for t in self.threads:
            t.join(2)
        for s, _ in self.socks:
            s.close()
        self.out.close()


class LossyIngest:
    """An ffmpeg RTP sender (H.264 + AAC) -> Relay -> the gateway's UDP ingest of `key`."""

    def __init__(self, tmp, clip, http, key):
        self.tmp, self.clip, self.http, self.key = tmp, clip, http, key
        self.sender = self.relay = None
        self.posts = 0
        self.totals = {"forwarded": 0, "dropped": 0}

    def start(self):
        relay_port, gw_port = udp.free_udp_block(), udp.free_udp_block()
        sdp_path = self.tmp / f"{self.key}-{self.posts}.sdp"
        self.relay = Relay([(relay_port, gw_port), (relay_port + 2, gw_port + 2)])
        self.sender = udp.sender(self.clip, relay_port, sdp_path)
        sdp = udp.wait_sdp(sdp_path)
        sdp = sdp.replace(f"m=video {relay_port} ", f"m=video {gw_port} ").replace(f"m=audio {relay_port + 2} ", f"m=audio {gw_port + 2} ")
        # DELETE answers before the ports are free (issue 10): a 409 is retried.
        for _ in range(20):
            try:
                udp.post_sdp(self.http, self.key, sdp)
                break
            except urllib.error.HTTPError as e:
                if e.code != 409:
                    raise
                time.sleep(0.5)
        self.posts += 1

    def stop(self):
        try:
            b.api(self.http, "DELETE", f"/api/v1/streams/{self.key}/udp-ingest")
        except (urllib.error.URLError, OSError):
            pass
        if self.sender:
            b.stop(self.sender)
        if self.relay:
            self.relay.close()
            self.totals["forwarded"] += self.relay.forwarded
            self.totals["dropped"] += self.relay.dropped
        self.sender = self.relay = None

    def restart(self):
        self.stop()
        time.sleep(1)
        self.start()

    def stats(self):
        t = dict(self.totals)
        if self.relay:
            t["forwarded"] += self.relay.forwarded
            t["dropped"] += self.relay.dropped
        t["loss"] = t["dropped"] / max(1, t["dropped"] + t["forwarded"])
        t["posts"] = self.posts
        return t


# --- sampling -----------------------------------------------------------------------------
class Sampler:
    def __init__(self, pid, http, soak):
        self.pid, self.http, self.soak = pid, http, soak
        self.samples, self.last = [], 0.0
        self.cpu0 = (b.cpu_seconds([pid]), time.time())
        self.box0 = b.box_stat()

    def sample(self, phase):
        self.last = time.time()
        try:
            # The process first: the /metrics request holds a socket of the gateway's until
            # it has closed its side.
            s = memory.proc_status(self.pid)
            m = memory.metrics(self.http)
        except (OSError, urllib.error.URLError, ValueError) as e:
            self.soak.errors.append(f"sample: {e}")
            return None
        cpu = b.cpu_seconds([self.pid])
        c0, t0 = self.cpu0
        self.cpu0 = (cpu, self.last)
        (busy0, all0), (busy1, all1) = self.box0, b.box_stat()
        self.box0 = (busy1, all1)
        with self.soak.lock:
            frames = getattr(self.soak, "frames_done", 0) + sum(v.frames() for v in getattr(self.soak, "active", ()))
        s.update({"t": self.last, "phase": phase, "cpu_cores": (cpu - c0) / max(1e-3, self.last - t0),
                  "load1": os.getloadavg()[0], "box_busy": (busy1 - busy0) / max(1, all1 - all0), "frames": frames,
                  "pipelines": m.get("interop_gst_pipelines_alive"), "tasks": m.get("interop_tokio_tasks_alive"),
                  "streams": m.get("interop_streams"),
                  "consumers": sum(v for k, v in m.items() if k.startswith("interop_consumers{")),
                  "conversions": m.get("interop_conversions_total_running"),
                  "jemalloc_allocated": m.get('interop_jemalloc_bytes{kind="allocated"}'),
                  "jemalloc_resident": m.get('interop_jemalloc_bytes{kind="resident"}'),
                  "glibc_in_use": m.get('interop_glibc_malloc_bytes{kind="in_use"}'),
                  "glibc_held": m.get('interop_glibc_malloc_bytes{kind="held"}'),
                  "pushes_live": m.get('interop_relays{kind="push",state="live"}', 0),
                  "wake_delay_runtime": m.get('interop_wake_delay_max_seconds{probe="runtime"}'),
                  "wake_delay_thread": m.get('interop_wake_delay_max_seconds{probe="thread"}')})
        self.samples.append(s)
        return s

    def idle(self, phase, seconds):
        got = []
        end = time.time() + seconds
        while time.time() < end:
            s = self.sample(phase)
            if s:
                got.append(s)
            time.sleep(1)
        keys = ["rss_kib", "fds", "threads", "pipelines", "tasks", "streams", "consumers", "clock_threads"]
        if not got:
            return None
        out = {k: statistics.median([s[k] for s in got if s.get(k) is not None]) for k in keys}
        out["fd_kinds"] = median_kinds(got)
        return out


def median_kinds(samples):
    """Open fds per kind, the median over `samples` (one listing can catch a connection the
    sampler's own /metrics request left closing)."""
    kinds = {k for s in samples for k in (s.get("fd_kinds") or {})}
    return {k: statistics.median([(s.get("fd_kinds") or {}).get(k, 0) for s in samples]) for k in sorted(kinds)}


# --- analysis, plots, report --------------------------------------------------------------
def analyze(r):
    load = [s for s in r["samples"] if s["phase"] == "load"]
    out = {}
    if load:
        t0, t1 = load[0]["t"], load[-1]["t"]
        warm = t0 + 0.2 * (t1 - t0)  # the first fifth is warm-up
        after = [s for s in load if s["t"] >= warm]
        head = [s["rss_kib"] for s in after[:max(3, len(after) // 10)]]
        tail = [s["rss_kib"] for s in after[-max(3, len(after) // 10):]]
        xs = [(s["t"] - warm) / 3600 for s in after]
        ys = [s["rss_kib"] for s in after]
        slope = statistics.linear_regression(xs, ys).slope if len(after) > 2 else 0.0
        out["rss"] = {"warm_mib": statistics.median(head) / 1024, "end_mib": statistics.median(tail) / 1024,
                      "max_mib": max(s["rss_kib"] for s in load) / 1024,
                      "growth_pct": 100 * (statistics.median(tail) / statistics.median(head) - 1),
                      "slope_pct_per_hour": 100 * slope / statistics.median(head)}
        anon = [s.get("rss_anon_kib") for s in after]
        if all(anon):
            n = max(3, len(after) // 10)
            out["rss_anon"] = {"warm_mib": statistics.median(anon[:n]) / 1024, "end_mib": statistics.median(anon[-n:]) / 1024,
                               "growth_pct": 100 * (statistics.median(anon[-n:]) / statistics.median(anon[:n]) - 1)}
        out["cpu_cores_mean"] = statistics.fmean(s["cpu_cores"] for s in load[1:]) if len(load) > 1 else None
        out["load1_mean"] = statistics.fmean(s["load1"] for s in load)
        busy = [s["box_busy"] for s in load[1:] if s.get("box_busy") is not None]
        out["box_busy"] = {"mean": statistics.fmean(busy), "p95": sorted(busy)[int(0.95 * (len(busy) - 1))],
                           "windows_over_95pct": sum(x > 0.95 for x in busy), "windows": len(busy)} if busy else None
        out["peak"] = {k: max((s[k] or 0) for s in load) for k in ["fds", "threads", "pipelines", "tasks", "consumers", "conversions", "streams"]}
        out["frames"] = load[-1]["frames"]
    ie, ia = r["idle_start"], r["idle_end"]
    if ie and ia:
        out["idle"] = {k: [ie[k], ia[k]] for k in ie if k != "fd_kinds"}
        out["fd_kinds"] = [ie.get("fd_kinds"), ia.get("fd_kinds")]
    by_path = {}
    for v in r["viewers"]:
        p = by_path.setdefault(v["path"], {"viewers": 0, "frames": 0, "no_picture": 0, "stalls": [], "av_pts_ms": [], "av_arrival_ms": []})
        p["viewers"] += 1
        p["frames"] += v["frames"]
        p["no_picture"] += v["frames"] == 0
        p["stalls"] += v["stalls"]
        if v["av_pts_ms"]:
            p["av_pts_ms"].append(statistics.median(v["av_pts_ms"]))
            p["av_arrival_ms"].append(statistics.median(v["av_arrival_ms"]))
    for p in by_path.values():
        p["stall_count"] = len(p["stalls"])
        p["longest_stall_s"] = max((s[1] for s in p["stalls"]), default=0.0)
        for k in ["av_pts_ms", "av_arrival_ms"]:
            xs = p.pop(k)
            p[k] = {"n": len(xs), "min": min(xs), "median": statistics.median(xs), "max": max(xs)} if xs else None
    out["paths"] = by_path
    # The gateway's watchdog: worst wake-up delay per sampling window of a tokio task and of a
    # plain thread. Both late: the process was starved of CPU; only the task: the runtime paused.
    wakes = [s for s in r["samples"] if s["phase"] == "load" and s.get("wake_delay_runtime") is not None]
    if wakes:
        out["wake"] = {probe: {"max_s": max(s[f"wake_delay_{probe}"] for s in wakes),
                               "windows_over_250ms": sum(s[f"wake_delay_{probe}"] > 0.25 for s in wakes)}
                       for probe in ("runtime", "thread")}
        out["wake"]["windows"] = len(wakes)
    return out


def verdict(r):
    """What the CI smoke holds the run to: the gateway alive, and fds, pipelines and tasks back
    at their idle values once the load is gone."""
    failed = []
    if not r["gateway_alive"]:
        failed.append(f"gateway died (exit {r['gateway_exit']})")
    idle = r["analysis"].get("idle")
    if idle:
        for k in ["pipelines", "tasks", "streams", "consumers"]:
            before, after = idle[k]
            if after > before:
                failed.append(f"{k}: {before:g} idle before, {after:g} after")
        # By kind: one more eventfd is GLib's process-wide wakeup, made on the first GStreamer
        # (WebRTC) use and kept for the process's life (with GstSystemClock's thread).
        kb, ka = r["analysis"].get("fd_kinds") or [None, None]
        if kb and ka:
            for kind, n in ka.items():
                allowed = kb.get(kind, 0) + (1 if kind == "anon_inode:[eventfd]" else 0)
                if not kind.endswith(".log") and n > allowed:
                    failed.append(f"fds {kind}: {kb.get(kind, 0)} idle before, {n} after")
        elif idle["fds"][1] > idle["fds"][0]:
            failed.append(f"fds: {idle['fds'][0]:g} idle before, {idle['fds'][1]:g} after")
    elif r["gateway_alive"]:
        failed.append("no idle samples")
    return failed


def plot_anywhere(json_path, out):
    """Plots with this Python's matplotlib, else with the system Python's (Debian's
    python3-matplotlib when `python3` is another install)."""
    try:
        import matplotlib  # noqa: F401
        plot(json.loads(json_path.read_text()), out)
        return
    except ImportError:
        pass
    code = ("import sys, json, pathlib; sys.path.insert(0, sys.argv[1]); import soak_parts as p; "
            "p.plot(json.loads(pathlib.Path(sys.argv[2]).read_text()), pathlib.Path(sys.argv[3]))")
    r = subprocess.run(["/usr/bin/python3", "-c", code, str(pathlib.Path(__file__).parent), str(json_path), str(out)],
                       capture_output=True, text=True)
    if r.returncode:
        print(f"no plots: {r.stderr[-500:]}")


def plot(r, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    s = r["samples"]
    t0 = r["t_load"]
    t = [(x["t"] - t0) / 60 for x in s]
    rows = [("RSS (MiB)", [x["rss_kib"] / 1024 for x in s]),
            ("live heap (MiB): jemalloc / glibc in use", None),
            ("open fds", [x["fds"] for x in s]), ("threads", [x["threads"] for x in s]),
            ("GStreamer pipelines alive", [x["pipelines"] for x in s]), ("tokio tasks alive", [x["tasks"] for x in s]),
            ("pictures decoded by measured viewers (/s)", None), ("gateway CPU (cores) / load avg", None)]
    fig, axes = plt.subplots(4, 2, figsize=(12, 12), sharex=True)
    for ax, (title, ys) in zip(axes.flat, rows):
        if title.startswith("RSS"):
            ax.plot(t, ys, label="RSS")
            if all(x.get("rss_anon_kib") for x in s):
                ax.plot(t, [x["rss_anon_kib"] / 1024 for x in s], label="anonymous (heaps, stacks)")
                ax.plot(t, [x["rss_file_kib"] / 1024 for x in s], label="file-backed (libraries, plugins)", linestyle=":")
                ax.legend(fontsize=7)
        elif title.startswith("live heap"):
            ax.plot(t, [(x["jemalloc_allocated"] or 0) / 2**20 for x in s], label="jemalloc allocated")
            ax.plot(t, [(x["glibc_in_use"] or 0) / 2**20 for x in s], label="glibc in use")
            ax.plot(t, [(x["glibc_held"] or 0) / 2**20 for x in s], label="glibc held", linestyle=":")
            ax.legend(fontsize=7)
        elif title.startswith("pictures"):
            rate = [0.0] + [max(0.0, (b2["frames"] - a["frames"]) / max(1e-3, b2["t"] - a["t"])) for a, b2 in zip(s, s[1:])]
            ax.plot(t, rate)
        elif title.startswith("gateway CPU"):
            ax.plot(t, [x["cpu_cores"] for x in s], label="gateway CPU")
            ax.plot(t, [x["load1"] for x in s], label="machine load avg (1 min)", linestyle=":")
            ax.legend(fontsize=7)
        else:
            ax.plot(t, ys)
        ax.set_title(title, fontsize=9)
        ax.axvline((r["t_stop"] - t0) / 60, color="grey", linestyle="--", linewidth=0.8)
        for kind, a, z in r["faults"]:
            ax.axvspan((a - t0) / 60, (z - t0) / 60, color="red" if kind.startswith("origin") else "orange", alpha=0.12)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("minutes since the load started")
    fig.suptitle("soak: dashed line = load stopped; shaded = origin down (red), UDP ingest re-posted (orange)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "soak.png", dpi=80)
    plt.close(fig)


def report(r):
    a = r["analysis"]
    lines = [f"soak {r['mode']}: load {r['load_s'] / 60:.1f} min, gateway alive: {r['gateway_alive']}",
             f"counts: {json.dumps(r['counts'])}; udp relay: {json.dumps(r['udp_relay'])}; churn errors: {r['error_count']}"]
    if "rss" in a:
        x = a["rss"]
        lines.append(f"RSS after warm-up {x['warm_mib']:.0f} MiB -> end {x['end_mib']:.0f} MiB ({x['growth_pct']:+.1f}%, "
                     f"slope {x['slope_pct_per_hour']:+.1f}%/h), max {x['max_mib']:.0f} MiB; gateway CPU {a['cpu_cores_mean']:.2f} cores, "
                     f"load avg {a['load1_mean']:.1f}; box CPU busy {box_line(a.get('box_busy'))}; peak {json.dumps(a['peak'])}; pictures decoded by measured viewers {a['frames']}")
    if "idle" in a:
        if "rss_anon" in a:
            x = a["rss_anon"]
            lines.append(f"anonymous RSS after warm-up {x['warm_mib']:.0f} MiB -> end {x['end_mib']:.0f} MiB ({x['growth_pct']:+.1f}%)")
        lines.append("idle before -> after: " + ", ".join(f"{k} {v[0]:g} -> {v[1]:g}" for k, v in a["idle"].items()))
    if "wake" in a:
        w = a["wake"]
        lines.append(f"gateway wake-up delays over {w['windows']} sampling windows: runtime task max {w['runtime']['max_s']:.2f} s "
                     f"({w['runtime']['windows_over_250ms']} windows > 250 ms), plain thread max {w['thread']['max_s']:.2f} s "
                     f"({w['thread']['windows_over_250ms']} windows > 250 ms)")
    lines.append("| path | viewers | pictures | none | stalls > 1 s | longest (s) | A/V pts ms (min/median/max of viewer medians) | by arrival |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for name, p in sorted(a["paths"].items()):
        f = (lambda d: f"{d['min']:.0f} / {d['median']:.0f} / {d['max']:.0f}" if d else "-")
        lines.append(f"| {name} | {p['viewers']} | {p['frames']} | {p['no_picture']} | {p['stall_count']} | {p['longest_stall_s']:.1f} "
                     f"| {f(p['av_pts_ms'])} | {f(p['av_arrival_ms'])} |")
    lines.append("paths marked (lossy) carry the injected faults (5% loss, 0-40 ms jitter; UDP ingest re-posts, WHIP "
                 "reconnects): their stalls are counted apart from the target")
    cap = r.get("capacity") or {}
    m = cap.get("measured")
    if m:
        lines.append(f"capacity (the whole 2-core box: gateway plus its test clients, ramped on top of the soak's own "
                     f"load, which alone kept the box {m.get('base_box_busy', 0):.0%} busy): {m['units']} units "
                     f"(one unit = RTMP publisher + H5 viewer, i.e. one H.264->MPEG-1 + AAC->MP2 conversion), "
                     f"gateway {m['gateway_cpu_cores_at_capacity']} cores there; ramp stopped: {m['stopped_because']}; "
                     f"units for {m.get('busy_target', 0.7):.0%} busy: {m.get('units_at_target')}; "
                     f"box busy when the measured period began: {cap.get('box_busy_at_start', 0):.0%} "
                     f"(after {cap.get('warmup_s', 0)} s of warm-up)")
    lines.append(f"load units during the soak: {cap.get('units')} ({cap.get('how')}); "
                 f"whip relay: {json.dumps(r.get('whip_relay'))}")
    if r["errors"]:
        lines.append("last churn errors: " + " | ".join(r["errors"][-5:]))
    return "\n".join(lines)


def box_line(x):
    if not x:
        return "-"
    return f"mean {x['mean']:.0%}, p95 {x['p95']:.0%}, {x['windows_over_95pct']} of {x['windows']} sampling windows over 95%"


def compact(r, points=400):
    """The run without the bulky parts (per-sample fd lists, every A/V pair), for the repo."""
    step = max(1, len(r["samples"]) // points)
    samples = [{k: v for k, v in s.items() if k != "fd_kinds"} for s in r["samples"][::step]]
    viewers = [{k: v for k, v in x.items() if k not in ("av_pts_ms", "av_arrival_ms", "stderr")} for x in r["viewers"]]
    return {**{k: v for k, v in r.items() if k not in ("samples", "viewers")}, "samples": samples, "viewers": viewers}
