#!/usr/bin/env python3
"""A soak under churn (issue 10, section 5): one gateway under mixed load for a long run, with
publishers of every ingest protocol reconnecting, viewers joining and leaving, conversions
starting and stopping, a CDN push whose origin is killed and restarted, and RTP arriving with
5% loss and jitter. Sampled over time (RSS, open fds, threads, GStreamer pipelines and tokio
tasks alive, the allocators' live bytes, pictures delivered) and plotted.

The load (see `Soak.__init__`, scaled by the mode):
  measured  two long-lived test sources (`avprobe source`: every picture carries its send
            time, a flash and a beep each second): A by RTMP (H.264 + AAC), B by WHIP (H.264 +
            Opus). Viewers of them (`avprobe receive`, decoding) come and go in cycles: A by
            HTTP-FLV, RTMP, WHEP (AAC->Opus starts) and H5 (H.264->MPEG-1 starts); B by RTMP
            (Opus->AAC starts) and WHEP. Each viewer's pictures give its stalls (gap > 1 s) and
            each beep against its flash the A/V offset.
  churn     RTMP publishers (ffmpeg -c copy) that drop and reconnect, with HTTP-FLV and RTMP
            viewers joining and leaving; WHIP publishers (whip_load) that reconnect; an RTP
            (UDP ingest) stream sent through a userspace relay that drops 5% of the packets and
            delays each by 0-40 ms (reordering some), its ingest deleted and posted again now
            and then, with an HTTP-FLV viewer; a CDN push of A to nginx-rtmp, killed and
            restarted. (This machine's kernel has no sch_netem, hence the relay.) The first WHIP
            publisher's media crosses the same kind of lossy relay (soak_load.WhipProxy).
  units     load units (soak_load: an RTMP publisher + an H5 viewer = one H.264->MPEG-1
            conversion on the gateway) on top of all the above: a ramp run with the above
            already going finds the box's capacity, and the soak keeps the units that hold the
            whole box nearest 70% busy. The measured period starts once the box has settled
            after the clients' start-up (two 20 s windows at most 85% busy, at most 5 min);
            viewers that started before it (during the ramp or the warm-up) are not counted.
When the load stops (every source, viewer, push and ingest gone), the counts should be back
at their idle values: the run waits a drain period and compares.

  --quick   CI smoke: about 2 minutes (0.9 of load, 2 units, no ramp); exits non-zero if the gateway died, or fds, pipelines
            or tasks did not come back to idle
  --minutes the load's length (default 60)
  --out     where soak.json and the plots go (default: a temporary directory)
  --bin-dir the gateway and bench examples to use (default: a fresh release build, copied)

  --units N load units instead of the ramp's 70%; --ramp-seconds bounds the ramp (180)

usage: bench/soak.py [--quick | --minutes M] [--units N] [--ramp-seconds S] [--out DIR] [--bin-dir DIR]
"""

import argparse
import json
import os
import pathlib
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error

import gwbench as b
import latency
import avsync
import memory
import soak_parts as parts
import soak_load

STALL_MS = 1000
# The measured period starts when two 20 s windows in a row keep the box at most this busy,
# or after WARMUP_MAX_S.
SETTLED_BUSY = 0.85
WARMUP_MAX_S = 300


class Soak:
    def __init__(self, tmp, bins, minutes, quick, units=None, ramp_s=180):
        self.tmp, self.bins, self.quick = tmp, bins, quick
        self.units_asked, self.ramp_s = units, ramp_s
        self.load_s = minutes * 60
        self.stop = threading.Event()
        # Cycle lengths: short in --quick so every kind of churn happens a few times.
        self.view_s = 20 if quick else 60            # a measured viewer's life
        self.pub_life = (10, 25) if quick else (20, 90)  # a churn publisher's life
        self.origin_period = 35 if quick else 120    # nginx killed every ...
        self.origin_down = 8 if quick else 15        # ... and restarted after
        self.udp_period = 45 if quick else 180       # UDP ingest deleted and posted again
        # Sized so that this base load leaves room on a 2-core box for the load units (the
        # generators, WHIP publishers above all, cost more CPU than the gateway does).
        self.n_rtmp_churn = 2
        self.n_whip_churn = 1
        self.churn_flv, self.churn_rtmp = (3, 2) if quick else (6, 3)  # viewers per churn stream
        self.viewers = []     # finished measured viewers: {path, start, events summary}
        self.faults = []      # (kind, start, end) wall-clock seconds
        self.counts = {"rtmp_publishes": 0, "whip_publishes": 0, "udp_ingests": 0, "origin_kills": 0,
                       "churn_viewers": 0, "measured_viewers": 0}
        self.errors = []
        self.lock = threading.Lock()
        self.frames = 0       # pictures decoded by measured viewers so far
        self.t_load = None    # when the measured period began (after the ramp)
        self.warmup_viewers = 0

    # --- helpers run on threads ---------------------------------------------------------
    def loop(self, name, body):
        def run():
            while not self.stop.is_set():
                try:
                    body()
                except Exception as e:  # noqa: BLE001 - a churn step failing is recorded, not fatal
                    with self.lock:
                        self.errors.append(f"{time.strftime('%H:%M:%S')} {name}: {e}")
                    self.stop.wait(2)
        t = threading.Thread(target=run, name=name, daemon=True)
        t.start()
        return t

    def measured_viewer(self, path, url):
        life = self.view_s * random.uniform(0.7, 1.0)
        started = time.time()
        r = parts.Viewer(self.bins / "avprobe", url, life, self).wait(life + 30)
        with self.lock:
            if self.t_load is None or started < self.t_load:
                self.warmup_viewers += 1  # watched (part of) the ramp: not measured
            else:
                self.viewers.append(parts.summarize(path, r))
                self.counts["measured_viewers"] += 1
        self.stop.wait(random.uniform(1, 4))

    def rtmp_churn(self, k):
        p = b.source(self.clip, f"rtmp://{self.rtmp}/live/churn{k}")
        with self.lock:
            self.counts["rtmp_publishes"] += 1
        self.stop.wait(random.uniform(*self.pub_life))
        b.stop(p)
        self.stop.wait(random.uniform(1, 3))

    def churn_viewers(self, k):
        life = random.uniform(5, 20)
        procs = [b.start([str(self.bins / "flv_readers"), f"http://{self.http}/live/churn{k}.flv", str(self.churn_flv), str(int(life))]),
                 b.start([str(self.bins / "avprobe"), "load-rtmp", str(self.churn_rtmp), "1", str(int(life)), f"rtmp://{self.rtmp}/live/churn{k}"])]
        with self.lock:
            self.counts["churn_viewers"] += self.churn_flv + self.churn_rtmp
        self.stop.wait(life + 1)
        for p in procs:
            b.stop(p)
        self.stop.wait(random.uniform(0.5, 3))

    def whip_churn(self, k):
        life = random.uniform(*self.pub_life)
        # The first one's media (ICE, RTP, RTCP) crosses the lossy relay (soak_load.WhipProxy).
        base = self.whip_proxy.addr if k == 0 else self.http
        p = b.start([str(self.bins / "whip_load"), "publish", f"http://{base}", f"wchurn{k}-", "1", str(int(life))],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with self.lock:
            self.counts["whip_publishes"] += 1
        # An RTMP viewer starts the Opus->AAC conversion while it watches.
        self.stop.wait(3)
        v = b.start([str(self.bins / "avprobe"), "load-rtmp", "1", "1", str(int(max(life - 5, 2))), f"rtmp://{self.rtmp}/live/wchurn{k}-0"])
        self.stop.wait(life + 2)
        b.stop(v)
        b.stop(p)
        self.stop.wait(random.uniform(1, 3))

    def origin(self):
        self.stop.wait(self.origin_period)
        if self.stop.is_set():
            return
        t0 = time.time()
        b.stop(self.nginx)
        with self.lock:
            self.counts["origin_kills"] += 1
        self.stop.wait(self.origin_down)
        self.nginx = parts.nginx_on(self.tmp, self.origin_port)
        self.faults.append(("origin down", t0, time.time()))

    def udp_cycle(self):
        self.stop.wait(self.udp_period)
        if self.stop.is_set():
            return
        t0 = time.time()
        self.udp.restart()
        with self.lock:
            self.counts["udp_ingests"] += 1
        self.faults.append(("udp ingest re-posted", t0, time.time()))

    # --- the run ------------------------------------------------------------------------
    def run(self, sample_every):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.clip = b.make_clip(self.tmp, seconds=4)
        udp_clip = parts.make_udp_clip(self.tmp)
        self.gw, self.http, self.rtmp = b.gateway(self.tmp, binary=self.bins / "interop-gateway", extra=["--webrtc-ip", "127.0.0.1"])
        self.origin_port = b.free_port()
        self.nginx = parts.nginx_on(self.tmp, self.origin_port)
        sampler = parts.Sampler(self.gw.pid, self.http, self)
        time.sleep(3)
        idle_start = sampler.idle("idle before", 10)

        # The base load: sources, measured viewers, churn, the CDN push, UDP ingest.
        if self.units_asked is not None:
            self.t_load = time.time()  # no ramp: every viewer counts
        sources = [parts.start_source(self.bins / "avprobe", "rtmp", f"rtmp://{self.rtmp}/live/soakA"),
                   parts.start_source(self.bins / "avprobe", "whip", f"http://{self.http}/whip/soakB")]
        latency.wait_live(self.http, "soakA")
        latency.wait_live(self.http, "soakB")
        self.whip_proxy = soak_load.WhipProxy(self.http)
        push = b.api(self.http, "POST", "/api/v1/streams/soakA/pushes", {"url": f"rtmp://127.0.0.1:{self.origin_port}/live/soakA"})
        self.udp = parts.LossyIngest(self.tmp, udp_clip, self.http, "soakU")
        self.udp.start()
        paths = {"A rtmp->httpflv": f"http://{self.http}/live/soakA.flv", "A rtmp->rtmp": f"rtmp://{self.rtmp}/live/soakA",
                 "A rtmp->whep": f"whep+http://{self.http}/whep/soakA", "A rtmp->h5": f"ws://{self.http}/h5/soakA",
                 "B whip->rtmp": f"rtmp://{self.rtmp}/live/soakB", "B whip->whep": f"whep+http://{self.http}/whep/soakB",
                 "U udp(lossy)->httpflv": f"http://{self.http}/live/soakU.flv",
                 "W whip(lossy)->rtmp": f"rtmp://{self.rtmp}/live/wchurn0-0"}
        threads = [self.loop(f"view {p}", lambda p=p, u=u: self.measured_viewer(p, u)) for p, u in paths.items()]
        threads += [self.loop(f"rtmp churn {k}", lambda k=k: self.rtmp_churn(k)) for k in range(self.n_rtmp_churn)]
        threads += [self.loop(f"churn viewers {k}", lambda k=k: self.churn_viewers(k)) for k in range(self.n_rtmp_churn)]
        threads += [self.loop(f"whip churn {k}", lambda k=k: self.whip_churn(k)) for k in range(self.n_whip_churn)]
        threads += [self.loop("origin", self.origin), self.loop("udp", self.udp_cycle)]

        # Load units on top: the ramp (with the base load running) says how many.
        cap = None
        if self.units_asked is None:
            time.sleep(30)  # the churn's first publishers and viewers are up and past their start-up
            cap = soak_load.measure_capacity(self.bins, self.clip, self.http, self.rtmp, self.gw.pid, self.ramp_s)
            n_units = cap["units_at_target"]
        else:
            n_units = self.units_asked
        self.capacity = {"measured": cap, "units": n_units,
                         "how": "ramp" if cap else ("fixed (--quick)" if self.quick else "given by --units")}
        units = soak_load.Units(self.bins, self.clip, self.http, self.rtmp)
        units.add(n_units)
        if cap:
            # Warm-up: the clients' start-up (and the ramp's leftovers) saturate the box for a
            # few minutes; the measured period starts once it has settled (bounded).
            t_warm = time.time()
            settled = 0
            while settled < 2 and time.time() - t_warm < WARMUP_MAX_S and self.gw.poll() is None:
                busy, _ = soak_load.box_busy(20)
                settled = settled + 1 if busy <= SETTLED_BUSY else 0
            self.capacity["warmup_s"] = round(time.time() - t_warm)
        t_load = time.time()
        with self.lock:
            self.t_load = self.t_load or t_load
        if cap:
            busy, _ = soak_load.box_busy(10)
            self.capacity["box_busy_at_start"] = round(busy, 3)
            print(f"soak: {n_units} units on the base load; the box is {busy:.0%} busy; measuring for {self.load_s / 60:g} min")

        while time.time() - t_load < self.load_s and self.gw.poll() is None:
            sampler.sample("load")
            self.whip_proxy.reap()
            time.sleep(max(0.0, sample_every - (time.time() - sampler.last)))
        t_stop = time.time()
        # Stop the load: threads finish their current step (viewers end within their life).
        self.stop.set()
        for p in sources:
            b.stop(p)
        self.udp.stop()
        units.stop()
        deadline = time.time() + self.view_s + 40
        while any(t.is_alive() for t in threads) and time.time() < deadline and self.gw.poll() is None:
            sampler.sample("stopping")
            time.sleep(sample_every)
        gw_alive = self.gw.poll() is None
        if gw_alive:
            try:
                b.api(self.http, "DELETE", f"/api/v1/streams/soakA/pushes/{push['id']}")
            except (urllib.error.URLError, OSError, KeyError, TypeError) as e:
                self.errors.append(f"deleting the push: {e}")
        # Drain: pending WHIP sessions time out (15 s), closed sockets are reaped.
        t_drain = time.time()
        while time.time() - t_drain < (20 if self.quick else 30) and self.gw.poll() is None:
            sampler.sample("drain")
            time.sleep(sample_every)
        idle_end = sampler.idle("idle after", 10) if self.gw.poll() is None else None
        gw_alive = self.gw.poll() is None
        b.stop(self.nginx)
        b.stop(self.gw)
        self.whip_proxy.close()
        return {"load_s": t_stop - t_load, "t_load": t_load, "t_stop": t_stop, "idle_start": idle_start,
                "idle_end": idle_end, "gateway_alive": gw_alive, "gateway_exit": self.gw.returncode,
                "samples": sampler.samples, "viewers": self.viewers, "faults": self.faults,
                "counts": self.counts, "errors": self.errors[-50:], "error_count": len(self.errors),
                "udp_relay": self.udp.stats(),
                "whip_relay": self.whip_proxy.stats(), "capacity": self.capacity,
                "warmup_viewers": self.warmup_viewers}


def prepare_bins(bin_dir):
    if bin_dir:
        return pathlib.Path(bin_dir)
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "interop-gateway", "--example", "whip_load",
                    "--example", "avprobe", "--example", "flv_readers", "--example", "h5_bench"], cwd=b.ROOT, check=True)
    # Copied, so another build into the same target directory cannot swap them mid-run.
    d = b.tmpdir() / "bin"
    d.mkdir()
    rel = b.TARGET / "release"
    for src in [rel / "interop-gateway", rel / "examples" / "avprobe", rel / "examples" / "whip_load", rel / "examples" / "flv_readers",
                rel / "examples" / "h5_bench"]:
        shutil.copy2(src, d / src.name)
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--out")
    ap.add_argument("--bin-dir")
    ap.add_argument("--units", type=int, help="load units to add (default: 70%% of the capacity ramp's; 2 in --quick)")
    ap.add_argument("--ramp-seconds", type=float, default=180, help="bound of the capacity ramp")
    a = ap.parse_args()
    minutes = 0.9 if a.quick else a.minutes
    units = 2 if a.quick and a.units is None else a.units
    out = pathlib.Path(a.out) if a.out else b.tmpdir()
    out.mkdir(parents=True, exist_ok=True)
    bins = prepare_bins(a.bin_dir)
    random.seed(10)
    soak = Soak(b.tmpdir(), bins, minutes, a.quick, units, a.ramp_seconds)
    result = soak.run(sample_every=2 if a.quick else 5)
    result["mode"] = "quick" if a.quick else f"{minutes:g} min"
    (out / "soak.json").write_text(json.dumps(result))
    result["analysis"] = parts.analyze(result)
    (out / "soak.json").write_text(json.dumps(result))
    (out / "soak-summary.json").write_text(json.dumps(parts.compact(result), indent=0))
    parts.plot_anywhere(out / "soak.json", out)
    print(parts.report(result))
    print(f"figures: {out / 'soak.json'}")
    failed = parts.verdict(result)
    if failed:
        print("FAILED: " + "; ".join(failed))
    return 1 if a.quick and failed else 0


if __name__ == "__main__":
    sys.exit(main())
