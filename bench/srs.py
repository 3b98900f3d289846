#!/usr/bin/env python3
"""SRS (github.com/ossrs/srs) as an optional side-by-side peer of the fan-out (issue 14: the
gateway's cost per viewer against SRS's), by HTTP-FLV and by RTMP and by WHEP (see WHEP below).

SRS is not installed by anything in this repository and is never built inside it. Build it
elsewhere and point SRS_BIN at the binary:

  git clone https://github.com/ossrs/srs /somewhere/srs   (or a snapshot of it)
  cd /somewhere/srs/trunk
  apt-get install -y automake autoconf libtool tclsh libssl-dev libopus-dev
  ./configure --srt=off --rtc=on --sys-ssl=on --sys-ffmpeg=on --sanitizer=off && make -j2
  git rev-parse HEAD > objs/SRS_COMMIT           (only if it is not a git checkout)
  SRS_BIN=/somewhere/srs/trunk/objs/srs python3 bench/run.py --only fanout_srs --update --no-build

When SRS_BIN is unset the step measures nothing and the report says
"SRS not measured (set SRS_BIN=/path/to/objs/srs)"; it costs nothing (CI never has SRS).

The SRS commit the report records is, first found: the SRS_COMMIT environment variable; a file
named SRS_COMMIT (one line, the commit) beside the binary or in one of its two parent
directories (objs/, trunk/, the checkout); `git rev-parse HEAD` run where the binary is;
else "?". The version is what `srs -v` prints.

The scenario (all on 127.0.0.1): one gateway and two SRS processes (below) run together, each
fed the same clip by its own looping `ffmpeg -re -c copy` publisher (rtmp://.../live/fan). SRS
runs with a generated minimal config: RTMP and HTTP server on free loopback ports, `http_remux`
on for the default vhost (mount [vhost]/[app]/[stream].flv), GOP cache on (its default, as the
gateway caches the GOP), WebRTC and the HTTP API off, no daemon, warn-level log to a file in the
temp dir, max_connections above the largest N. The gateway gets a config whose `limits:` hold
that many RTMP and HTTP connections, and the bench raises its open-files limit to the hard one
(the servers and viewer tools inherit it). For each protocol and each N, N viewers
(`flv_readers`: HTTP-FLV GETs, or RTMP players built on the gateway's own RTMP client; one
process, one thread) attach to one side, then, when they are gone, N to the next; the order
rotates from one N to the next so a drift in the machine's speed hits every side.

Measured on each side, the same windows for every side:
- after WARMUP_S (4 s: connections, the cached-GOP burst), a CPU window of `seconds`: CPU of the
  server's process tree (utime+stime from /proc), as µs of CPU per viewer-second, in total and
  above the side's own CPU with its publisher alone (measured for every side, together, before
  any viewer); the kernel's read/write-type system call counters (`syscr`/`syscw`, /proc/PID/io)
  and context switches (/proc/PID/task/*/status) over the same window;
- then a window of SYSCALL_S (3 s) in which `perf stat -e raw_syscalls:sys_enter,context-switches
  -p PID` counts every system call of each server (when perf can: `gwbench.perf_syscalls`);
  kept out of the CPU window because the traced system-call path costs CPU on the whole machine.
  Given as system calls per viewer-second (total, and above the publisher alone). Without perf,
  only the /proc counters, which miss send/recv/sendmsg/epoll (Rust's std writes with send(2)),
  so they are not comparable between servers and the table says "-";
- RSS (VmRSS) and PSS of the server after the CPU window;
- from the viewers: how many got data, the longest stall (gap between two reads or messages
  after the warm-up: joining is not a stall),
  the added latency (p95 and max over every viewer's audio/video tags of how late each arrived
  against its timestamps, relative to the viewer's earliest tag; tags from WARMUP_S on and 2 s
  after the viewer's first, see bench/flv_readers.rs; also the video tags' alone, without the
  publisher's audio bursts) and bytes per viewer-second (that every side delivers the same stream).

SRS's viewer loops (HTTP-FLV and RTMP) sleep `mw_latency` (default 350 ms;
src/app/srs_app_http_stream.cpp, srs_app_rtmp_conn.cpp) whenever they find nothing new to send,
so they write up to 350 ms of media at a time: fewer system calls per viewer, and a longest
stall and added latency of about 350 ms; the gateway writes once per video frame by default
(`hub.merge_window_seconds` 0). So two SRS processes run (SRS_SIDES): "srs" with SRS's
defaults, as a user gets it, and "srs_mw40" with `play { mw_latency 40; }`, near the
gateway's default latency (0 would make the loop spin); and two gateways (GATEWAY_SIDES):
its default, and one with a 350 ms merge window, SRS's default batching matched.

For HTTP-FLV a fifth side, "floor" (bench/write_floor.rs), is no server at all: one thread
writing one shared buffer (a frame's tags, at the clip's byte rate) to every viewer with one
`write` per video frame. Its CPU per viewer-second is what writing within one frame costs in
the kernel on this machine (loopback TCP, the receiver's softirq work included), the floor under
any server that keeps the added latency within one frame.

WHEP: one gateway (with `webrtc.egress: str0m`, or `--whep-egress webrtcbin`) and one SRS with
WebRTC on (rtc_server on a loopback UDP port with candidate 127.0.0.1, WHEP on its HTTP API at
/rtc/v1/whep/?app=live&stream=fan, `rtc { rtmp_to_rtc on; }`: both convert the clip's AAC to
Opus once per stream); the viewers are bench/whep_viewers.rs (str0m receive clients on one
thread: ICE, DTLS, SRTP, RTCP, no decoding), at `--whep-viewers` counts (default 100,500: the
2-core machine cannot hold 1,000 WebRTC viewers and their clients at once). WHEP rows show
the viewers' lowest frame rate in the stall column and no added latency (the client does not
measure it).

A/B of two gateway builds: `--baseline-bin PATH` adds the side "gateway_base" (that binary,
default settings) beside this tree's; `--sides gateway,gateway_base,floor` runs only those.
Compare their user CPU (`user_cores` in the JSON) as well as the total: the system share
(on loopback the receiver's TCP work runs inside the sender's writes) varies far more from
window to window on a shared machine than the user share does.

usage: bench/srs.py [--viewers N[,N...]] [--seconds S] [--protocols httpflv,rtmp] [--baseline-bin PATH] [--sides a,b]
       (SRS_BIN must be set)
"""

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import time

import bridges
import gwbench as b
import remux

NOT_MEASURED = "SRS not measured (set SRS_BIN=/path/to/objs/srs)"


def binary():
    exe = os.environ.get("SRS_BIN")
    return pathlib.Path(exe) if exe else None


def commit(exe):
    if os.environ.get("SRS_COMMIT"):
        return os.environ["SRS_COMMIT"].strip()
    exe = pathlib.Path(exe).resolve()
    for d in (exe.parent, exe.parent.parent, exe.parent.parent.parent):
        f = d / "SRS_COMMIT"
        if f.is_file():
            return f.read_text().strip()
    try:
        p = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=exe.parent, timeout=10)
        if p.returncode == 0 and p.stdout.strip():
            return p.stdout.strip()
    except OSError:
        pass
    return "?"


def version(exe):
    try:
        p = subprocess.run([str(exe), "-v"], capture_output=True, text=True, timeout=10)
        text = (p.stdout or p.stderr).strip().splitlines()
        return text[0] if text else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


# The SRS sides: name -> the vhost's play.mw_latency in ms (None: SRS's default, 350 ms).
SRS_SIDES = {"srs": None, "srs_mw40": 40}
# The gateway sides: name -> its hub.merge_window_seconds (None: the default, no window; each
# video frame written as it arrives). The windowed one is SRS's default batching, matched.
GATEWAY_SIDES = {"gateway": None, "gateway_mw350": 0.35}
# The floor (HTTP-FLV only): bench/write_floor.rs, no server at all, one `write` of one shared
# buffer per viewer per video frame at the clip's byte rate; what writing within one frame
# costs before any server logic.
FLOOR_SIDE = "floor"
LABELS = {"gateway": "gateway", "gateway_mw350": "gateway (merge_window 350 ms)",
          "srs": "SRS (defaults: mw_latency 350 ms)", "srs_mw40": "SRS (mw_latency 40 ms)",
          FLOOR_SIDE: "floor (one write per frame, no server)", "gateway_base": "gateway, baseline binary"}
# --baseline-bin PATH adds the side "gateway_base": another gateway binary (e.g. main's build)
# with the default settings, beside this tree's, to compare a change side by side.
BASELINE_SIDE = "gateway_base"
BASELINE_BIN = None
# --sides a,b,...: only these sides (default: all of them).
ONLY_SIDES = None
PROTOCOLS = ("httpflv", "rtmp", "whep")
PROTOCOL_NAMES = {"httpflv": "HTTP-FLV", "rtmp": "RTMP", "whep": "WHEP"}
VIEWER_TOOLS = ("httpflv", "rtmp")  # the protocols flv_readers plays; WHEP: whep_viewers
# WHEP: SRS ignores mw_latency for WebRTC and the gateway's merge window is for FLV/RTMP, so
# one side each, with its defaults.
WHEP_SIDES = ("gateway", "srs")
WARMUP_S = 4
SYSCALL_S = 3


def config(d, rtmp_port, http_port, max_connections, mw_latency=None, rtc=None):
    """SRS's config; `rtc` = (api_port, udp_port) turns on its WebRTC (WHEP on the HTTP API,
    RTMP's AAC transcoded to Opus)."""
    (d / "html").mkdir(exist_ok=True)
    play = f"play {{ mw_latency {mw_latency}; }}" if mw_latency is not None else ""
    api = f"http_api {{ enabled on; listen 127.0.0.1:{rtc[0]}; }}" if rtc else "http_api { enabled off; }"
    rtc_server = f"rtc_server {{ enabled on; listen {rtc[1]}; candidate 127.0.0.1; }}" if rtc else "rtc_server { enabled off; }"
    vhost_rtc = "rtc { enabled on; rtmp_to_rtc on; }" if rtc else ""
    return f"""listen 127.0.0.1:{rtmp_port};
max_connections {max_connections};
daemon off;
pid {d}/srs.pid;
srs_log_tank file;
srs_log_file {d}/srs.log;
srs_log_level warn;
{api}
http_server {{ enabled on; listen 127.0.0.1:{http_port}; dir {d}/html; }}
{rtc_server}
stats {{ network 0; }}
vhost __defaultVhost__ {{
    gop_cache on;
    {play}
    {vhost_rtc}
    http_remux {{ enabled on; mount [vhost]/[app]/[stream].flv; }}
}}
"""


def start(d, exe, max_connections=2000, mw_latency=None, rtc=False):
    """SRS on free loopback ports: (process, http "127.0.0.1:P", rtmp "127.0.0.1:P"); with
    `rtc`, "http" is its HTTP API (where WHEP is) and WebRTC is on."""
    d.mkdir(parents=True, exist_ok=True)
    rtmp_port, http_port = b.free_port(), b.free_port()
    rtc_ports = (b.free_port(), b.free_port()) if rtc else None
    conf = d / "srs.conf"
    conf.write_text(config(d, rtmp_port, http_port, max_connections, mw_latency, rtc_ports))
    out = open(d / "srs.stdout", "w")
    p = b.start([str(exe), "-c", str(conf)], cwd=d, stdout=out, stderr=subprocess.STDOUT)
    try:
        b.wait_port(rtmp_port)
        b.wait_port(http_port)
    except RuntimeError:
        log = (d / "srs.log").read_text()[-3000:] if (d / "srs.log").exists() else ""
        raise RuntimeError(f"SRS did not start (exit {p.poll()}):\n{(d / 'srs.stdout').read_text()[-3000:]}\n{log}")
    if rtc_ports:
        b.wait_port(rtc_ports[0])
        return p, f"127.0.0.1:{rtc_ports[0]}", f"127.0.0.1:{rtmp_port}"
    return p, f"127.0.0.1:{http_port}", f"127.0.0.1:{rtmp_port}"


# The gateway's WHEP egress in the WHEP runs; --whep-egress sets it. str0m (opt-in in the
# gateway, see docs/whep-egress.md) is the one built for fan-out: webrtcbin's pipeline per
# viewer would need some six cores for 500 viewers.
WHEP_EGRESS = "str0m"


def gateway_config(d, max_connections, merge_window=None, whep=False):
    """A config file for the gateway: connection caps above the run's largest N, and the merge
    window if any (the other settings are the defaults; the command line gives the rest)."""
    d.mkdir(parents=True, exist_ok=True)
    f = d / "gateway.yaml"
    text = f"limits:\n  max_rtmp_connections: {max_connections}\n  max_http_connections: {max_connections}\n"
    if merge_window:
        text += f"hub:\n  merge_window_seconds: {merge_window}\n"
    if whep:
        # WHEP sessions being set up at once: as many as the run's viewers.
        text += f"webrtc:\n  max_pending: {max_connections}\n  max_pending_per_address: {max_connections}\n"
        if WHEP_EGRESS:
            text += f"  egress: {WHEP_EGRESS}\n"
    f.write_text(text)
    return f


def urls(protocol, http, rtmp, side):
    """Where a viewer of `protocol` plays the stream on a side."""
    if protocol == "httpflv":
        return f"http://{http}/live/fan.flv"
    if protocol == "rtmp":
        return f"rtmp://{rtmp}/live/fan"
    if protocol == "whep":
        return f"http://{http}/whep/fan" if side.startswith("gateway") else f"http://{http}/rtc/v1/whep/?app=live&stream=fan"
    raise ValueError(protocol)


def viewers(protocol, url, n, seconds):
    """N viewers of `url` for `seconds`, one process printing flv_readers' JSON line at the end."""
    if protocol in VIEWER_TOOLS:
        exe = b.TARGET / "release" / "examples" / "flv_readers"
        return b.start([str(exe), url, str(n), str(seconds), str(WARMUP_S)], stdout=subprocess.PIPE)
    if protocol == "whep":
        # str0m receive clients on one thread (bench/whep_viewers.rs): measured after the warm-up.
        exe = b.TARGET / "release" / "examples" / "whep_viewers"
        return b.start([str(exe), str(n), str(WARMUP_S), str(seconds - WARMUP_S), url], stdout=subprocess.PIPE)
    raise NotImplementedError(f"no {protocol} viewer tool in bench/")


def readers_result(protocol, got, window):
    """flv_readers' JSON as is; whep_viewers' in its names (with_data = connected viewers that
    got video; bytes over the whole window from its rate)."""
    if protocol != "whep":
        return got
    return {**got, "with_data": got.get("connected"), "bytes": got.get("bytes_per_s", 0) * window}


def rss_kib(pids):
    total = 0
    for p in b.tree(pids):
        try:
            total += int(re.search(r"^VmRSS:\s+(\d+)", open(f"/proc/{p}/status").read(), re.M).group(1))
        except (OSError, AttributeError):
            pass
    return total


def floor(seconds):
    """bench/write_floor for `seconds`: (process, "127.0.0.1:PORT")."""
    exe = b.TARGET / "release" / "examples" / "write_floor"
    p = b.start([str(exe), str(seconds)], stdout=subprocess.PIPE)
    line = p.stdout.readline().decode().split()
    if len(line) != 2 or line[0] != "listening":
        raise RuntimeError(f"write_floor did not start: {line}")
    return p, f"127.0.0.1:{line[1]}"


def servers(d, clip, exe, most, with_floor=False, floor_s=0, whep=False):
    """The gateway and the SRS sides, each with its publisher, and each one's figures with the
    publisher alone: (processes, side -> [pid], side -> (http, rtmp), side -> idle figures).
    With `with_floor`, the floor side too (HTTP-FLV; it has no publisher)."""
    d.mkdir(parents=True)
    procs, pids, addr = [], {}, {}
    def wanted(side):
        return ONLY_SIDES is None or side in ONLY_SIDES

    if with_floor and wanted(FLOOR_SIDE):
        p, fhttp = floor(floor_s)
        procs.append(p)
        pids[FLOOR_SIDE] = [p.pid]
        addr[FLOOR_SIDE] = (fhttp, None)
    gateway_sides = {**GATEWAY_SIDES, **({BASELINE_SIDE: None} if BASELINE_BIN else {})}
    for side, window in gateway_sides.items():
        if (whep and side not in WHEP_SIDES) or not wanted(side):
            continue
        extra = ["--config", str(gateway_config(d / side, most, window, whep))] + (["--webrtc-ip", "127.0.0.1"] if whep else [])
        gw, ghttp, grtmp = b.gateway(d / side, binary=BASELINE_BIN if side == BASELINE_SIDE else None, extra=extra)
        procs += [gw, b.source(clip, f"rtmp://{grtmp}/live/fan")]
        pids[side] = [gw.pid]
        addr[side] = (ghttp, grtmp)
    for side, mw in SRS_SIDES.items():
        if (whep and side not in WHEP_SIDES) or not wanted(side):
            continue
        p, shttp, srtmp = start(d / side, exe, max_connections=most, mw_latency=mw, rtc=whep)
        procs += [p, b.source(clip, f"rtmp://{srtmp}/live/fan")]
        pids[side] = [p.pid]
        addr[side] = (shttp, srtmp)
    time.sleep(4)
    idle = b.measure(pids, 3, with_counters=True)
    idle_sys = b.perf_syscalls(pids, SYSCALL_S) or {}
    for side in pids:
        idle[side]["rss_kib"] = rss_kib(pids[side])
        idle[side]["syscalls"] = idle_sys.get(side)
    return procs, pids, addr, idle


def per_viewer_s(x, n):
    return x / n if x is not None and n else None


def scenario_fanout(tmp, clip, counts, seconds, protocols=PROTOCOLS, whep_counts=None):
    exe = binary()
    if not exe:
        return {"measured": False, "note": NOT_MEASURED}
    open_files = b.raise_open_files()
    d = tmp / "fan-srs"
    d.mkdir()
    most = max(counts) + 200
    out, sides = {}, []
    window = WARMUP_S + seconds + SYSCALL_S + 2
    for protocol in protocols:
        # Fresh servers per protocol: memory one protocol's run took and kept (allocators keep
        # their high-water mark) does not show in the next one's RSS.
        floor_s = (WARMUP_S + window + 4) * len(counts) * (len(GATEWAY_SIDES) + len(SRS_SIDES) + 1) + 60
        # WHEP: the clip without B-frames, which WebRTC carries as is (SRS drops B-frames toward
        # WebRTC; the gateway would re-encode the video).
        source = bridges.make_clip_no_bframes(d) if protocol == "whep" else clip
        procs, pids, addr, idle = servers(d / protocol, source, exe, most, protocol == "httpflv", floor_s, protocol == "whep")
        here = list(pids)
        sides += [s for s in here if s not in sides]
        steps = []
        for i, n in enumerate(whep_counts or counts if protocol == "whep" else counts):
            order = here[i % len(here):] + here[:i % len(here)]
            step = {"viewers": n, "order": order}
            for side in order:
                r = viewers(protocol, urls(protocol, *addr[side], side), n, window)
                time.sleep(WARMUP_S)
                m = b.measure({**pids, "viewers": [r.pid]}, seconds, with_counters=True)
                rss = rss_kib(pids[side])
                sysc = (b.perf_syscalls({side: pids[side]}, SYSCALL_S) or {}).get(side)
                got = readers_result(protocol, json.loads(r.communicate(timeout=window + 60)[0] or b"{}"), window)
                x, base = m[side], idle[side]
                cpu = x["cpu_cores"]
                calls = sysc["syscalls_per_s"] if sysc else None
                idle_calls = (base.get("syscalls") or {}).get("syscalls_per_s")
                step[side] = {"measure": x, "others": {k: v for k, v in m.items() if k not in (side, "viewers")}, "viewers_cpu": m["viewers"],
                              "rss_kib": rss, "readers": got, "syscalls": sysc,
                              "us_per_viewer_s": 1e6 * cpu / n, "us_per_viewer_s_above_idle": 1e6 * (cpu - base["cpu_cores"]) / n,
                              "syscalls_per_viewer_s": per_viewer_s(calls, n),
                              "syscalls_per_viewer_s_above_idle": per_viewer_s(calls - idle_calls, n) if calls is not None and idle_calls is not None else None,
                              "cswitch_per_viewer_s": per_viewer_s(x["vcsw_per_s"] + x["nvcsw_per_s"], n),
                              "rw_syscalls_per_viewer_s": per_viewer_s(x["syscr_per_s"] + x["syscw_per_s"], n),
                              "bytes_per_viewer_s": got.get("bytes", 0) / n / window if n else 0}
                time.sleep(2)  # the viewers' connections close before the other side's start
            steps.append(step)
        out[protocol] = {"idle": idle, "steps": steps}
        for p in procs:
            b.stop(p)
    first = out[next(iter(out))] if out else {"idle": {}}
    sides = sides or [*GATEWAY_SIDES, *SRS_SIDES]
    return {"scenario": "fanout-srs", "measured": True, "srs_commit": commit(exe), "srs_version": version(exe),
            "srs_bin": str(exe), "sides": sides, "srs_mw_latency_ms": SRS_SIDES, "idle": first["idle"],
            "open_files": open_files, "warmup_s": WARMUP_S, "seconds": seconds, "syscall_s": SYSCALL_S,
            "perf": b.perf_syscalls_ok(), "protocols": out}


def protocols_of(r):
    """protocol -> {"steps": [...]}; results of before RTMP was measured had HTTP-FLV only."""
    return r["protocols"] if "protocols" in r else {"httpflv": {"steps": r.get("steps", [])}}


def _f(x, fmt="{:.0f}"):
    return "-" if x is None else fmt.format(x)


def section(r):
    """The report's lines for the SRS comparison (`r`: the step's result, or None)."""
    if not r or not r.get("measured"):
        return (r or {}).get("note") or NOT_MEASURED
    sides = r.get("sides", ["gateway", "srs"])
    rows = [f"SRS {r['srs_version']} (commit {r['srs_commit']}), built from source outside this repository, "
            f"beside the gateway, one stream each{', fresh processes per protocol' if 'protocols' in r else ''}; "
            f"N viewers (`flv_readers`) on one side at a time (order rotating per N)"
            + ". SRS's viewer loops sleep `mw_latency` (default 350 ms) whenever they find nothing new to send: "
            "fewer, larger writes per viewer, and a longest stall and added latency of about that much. The gateway by default "
            "writes once per video frame (one `writev` of the viewer's own headers around the stream's shared tag bodies, the audio "
            "beside the picture with it); with `hub.merge_window_seconds` it merges as SRS does. "
            "Hence a second SRS with `mw_latency 40` and a second gateway with a 350 ms window: compare sides of like latency. "
            "The floor (HTTP-FLV only, `bench/write_floor.rs`) is no server: one `write` of one shared buffer per viewer per "
            "video frame, what writing within one frame costs the kernel before any server logic. CPU over a window after a warm-up; system calls (all of them, "
            "`perf stat -e raw_syscalls:sys_enter`) in a separate window right after it; added latency: p95 / max over "
            "all viewers' audio and video tags of how late each came against its timestamps, relative to the viewer's "
            "earliest (the publisher's own jitter included, the same for every side; `ffmpeg -re` releases audio in bursts "
            "between video frames, so audio tags carry some 30 ms of it: the video tags alone, against their own earliest, "
            "are in brackets). See `bench/srs.py`."]
    if not r.get("perf", True):
        rows.append("")
        rows.append("(perf could not count system calls on this machine: the system-call columns are empty; "
                    "the JSON keeps /proc's read/write-type counters, which miss send/recv.)")
    for protocol, part in protocols_of(r).items():
        idle = part.get("idle") or r["idle"]
        alone = "; ".join(f"{LABELS.get(s, s)} {100 * idle[s]['cpu_cores']:.1f}% of a core, RSS {idle[s]['rss_kib'] / 1024:.0f} MiB"
                          + (f", {idle[s]['syscalls']['syscalls_per_s']:.0f} system calls/s" if idle[s].get("syscalls") else "")
                          for s in sides if s in idle)
        rows += ["", f"**{PROTOCOL_NAMES.get(protocol, protocol)}** (publisher alone: {alone})", "",
                 "| viewers | server | CPU (of one core) | µs CPU per viewer-second (above publisher alone) | RSS / PSS (MiB) | "
                 "viewers with data | longest stall | added latency p95 / max (video alone p95), ms | system calls per viewer-second (above publisher alone) | "
                 "context switches per viewer-second | kB per viewer-second |",
                 "|---|---|---|---|---|---|---|---|---|---|---|"]
        for st in part["steps"]:
            for side in sides:
                x = st.get(side)
                if not x:
                    continue
                rd = x["readers"]
                stall = f"{rd.get('max_stall_ms')} ms"
                if protocol == "whep":
                    stall = f"(lowest {rd.get('min_fps') or 0:.1f} fps)"
                rows.append(f"| {st['viewers']} | {LABELS.get(side, side)} | {100 * x['measure']['cpu_cores']:.1f}% | "
                            f"{x['us_per_viewer_s']:.0f} ({x['us_per_viewer_s_above_idle']:.0f}) | "
                            f"{x['rss_kib'] / 1024:.1f} / {x['measure']['pss_kib'] / 1024:.1f} | {rd.get('with_data')}/{st['viewers']} | "
                            f"{stall} | {_f(rd.get('added_p95_ms'), '{:.0f}')} / {_f(rd.get('added_max_ms'), '{:.0f}')} "
                            f"({_f(rd.get('video_added_p95_ms'), '{:.0f}')}) | "
                            f"{_f(x.get('syscalls_per_viewer_s'), '{:.1f}')} ({_f(x.get('syscalls_per_viewer_s_above_idle'), '{:.1f}')}) | "
                            f"{_f(x.get('cswitch_per_viewer_s'), '{:.1f}')} | {x['bytes_per_viewer_s'] / 1000:.0f} |")
    whep = r.get("whep")
    if whep and not whep.get("measured"):
        rows += ["", f"WHEP: not measured ({whep.get('note')})."]
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--viewers", default="100,500,1000")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--protocols", default=",".join(PROTOCOLS))
    ap.add_argument("--whep-viewers", default="100,500", help="the WHEP run's viewer counts")
    ap.add_argument("--whep-egress", choices=("str0m", "webrtcbin"), default="str0m", help="the gateway's WHEP egress")
    ap.add_argument("--json", help="write the raw figures here")
    ap.add_argument("--baseline-bin", help="another gateway binary, as the side gateway_base")
    ap.add_argument("--sides", help="only these sides, comma-separated (default: all)")
    a = ap.parse_args()
    global BASELINE_BIN, ONLY_SIDES
    BASELINE_BIN = pathlib.Path(a.baseline_bin) if a.baseline_bin else None
    ONLY_SIDES = set(a.sides.split(",")) if a.sides else None
    if not binary():
        print(NOT_MEASURED)
        return 0
    global WHEP_EGRESS
    WHEP_EGRESS = a.whep_egress
    tmp = b.tmpdir()
    r = scenario_fanout(tmp, b.make_clip(tmp), [int(x) for x in a.viewers.split(",")], a.seconds,
                        [p for p in a.protocols.split(",") if p], [int(x) for x in a.whep_viewers.split(",")])
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps(r, indent=1))
    print(section(r))
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
