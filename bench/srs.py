#!/usr/bin/env python3
"""SRS (github.com/ossrs/srs) as an optional side-by-side peer of the HTTP-FLV fan-out
(issue 14: the gateway's cost per viewer against SRS's).

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

The scenario (all on 127.0.0.1): one gateway and two SRS processes (below) run together, each fed the same clip by
its own looping `ffmpeg -re -c copy` publisher (rtmp://.../live/fan). SRS runs with a generated
minimal config: RTMP and HTTP server on free loopback ports, `http_remux` on for the default
vhost (mount [vhost]/[app]/[stream].flv), GOP cache on (its default, as the gateway caches the
GOP), WebRTC and the HTTP API off, no daemon, warn-level log to a file in the temp dir. For each
N, N HTTP-FLV viewers (`flv_readers`, the tool of the gateway's own fan-out step) attach to one
side, then, when they are gone, N to the next; the order rotates from one N to the next so a
drift in the machine's speed hits every side. Measured on each side over the same length of window
(after 4 s of warm-up, the cached-GOP burst): CPU of the server's process tree (utime+stime from
/proc), given as µs of CPU per viewer-second both in total and above the side's own CPU with
its publisher alone (measured for both, together, before any viewer); RSS (VmRSS) and PSS of
the server; the viewers' longest stall and bytes per viewer-second (that both sides deliver the
same stream).

SRS's HTTP-FLV viewer loop sleeps `mw_latency` (default 350 ms; src/app/srs_app_http_stream.cpp)
whenever it finds nothing new to send, so it writes up to 350 ms of media at a time: fewer
syscalls per viewer, and a longest stall of about 350 ms; the gateway writes as frames arrive.
So two SRS processes run (SRS_SIDES): "srs" with SRS's defaults, as a user gets it, and
"srs_mw40" with `play { mw_latency 40; }`, near the gateway's stall. (0 would make the loop spin.)
The sides take turns, the order rotating from one N to the next.

usage: bench/srs.py [--viewers N[,N...]] [--seconds S]   (SRS_BIN must be set)
"""

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import time

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
LABELS = {"gateway": "gateway", "srs": "SRS (defaults: mw_latency 350 ms)", "srs_mw40": "SRS (mw_latency 40 ms)"}


def config(d, rtmp_port, http_port, max_connections, mw_latency=None):
    (d / "html").mkdir(exist_ok=True)
    play = f"play {{ mw_latency {mw_latency}; }}" if mw_latency is not None else ""
    return f"""listen 127.0.0.1:{rtmp_port};
max_connections {max_connections};
daemon off;
pid {d}/srs.pid;
srs_log_tank file;
srs_log_file {d}/srs.log;
srs_log_level warn;
http_api {{ enabled off; }}
http_server {{ enabled on; listen 127.0.0.1:{http_port}; dir {d}/html; }}
rtc_server {{ enabled off; }}
stats {{ network 0; }}
vhost __defaultVhost__ {{
    gop_cache on;
    {play}
    http_remux {{ enabled on; mount [vhost]/[app]/[stream].flv; }}
}}
"""


def start(d, exe, max_connections=2000, mw_latency=None):
    """SRS on free loopback ports: (process, http "127.0.0.1:P", rtmp "127.0.0.1:P")."""
    d.mkdir(parents=True, exist_ok=True)
    rtmp_port, http_port = b.free_port(), b.free_port()
    conf = d / "srs.conf"
    conf.write_text(config(d, rtmp_port, http_port, max_connections, mw_latency))
    out = open(d / "srs.stdout", "w")
    p = b.start([str(exe), "-c", str(conf)], cwd=d, stdout=out, stderr=subprocess.STDOUT)
    try:
        b.wait_port(rtmp_port)
        b.wait_port(http_port)
    except RuntimeError:
        log = (d / "srs.log").read_text()[-3000:] if (d / "srs.log").exists() else ""
        raise RuntimeError(f"SRS did not start (exit {p.poll()}):\n{(d / 'srs.stdout').read_text()[-3000:]}\n{log}")
    return p, f"127.0.0.1:{http_port}", f"127.0.0.1:{rtmp_port}"


def rss_kib(pids):
    total = 0
    for p in b.tree(pids):
        try:
            total += int(re.search(r"^VmRSS:\s+(\d+)", open(f"/proc/{p}/status").read(), re.M).group(1))
        except (OSError, AttributeError):
            pass
    return total


def scenario_fanout(tmp, clip, counts, seconds):
    exe = binary()
    if not exe:
        return {"measured": False, "note": NOT_MEASURED}
    d = tmp / "fan-srs"
    d.mkdir()
    gw, ghttp, grtmp = b.gateway(d)
    b.source(clip, f"rtmp://{grtmp}/live/fan")
    procs, pids, urls = [gw], {"gateway": [gw.pid]}, {"gateway": f"http://{ghttp}/live/fan.flv"}
    for side, mw in SRS_SIDES.items():
        p, shttp, srtmp = start(d / side, exe, max_connections=max(counts) + 200, mw_latency=mw)
        b.source(clip, f"rtmp://{srtmp}/live/fan")
        procs.append(p)
        pids[side] = [p.pid]
        urls[side] = f"http://{shttp}/live/fan.flv"
    time.sleep(4)
    idle = b.measure(pids, 3)
    for side in pids:
        idle[side]["rss_kib"] = rss_kib(pids[side])
    steps = []
    for i, n in enumerate(counts):
        sides = list(pids)
        order = sides[i % len(sides):] + sides[:i % len(sides)]
        step = {"viewers": n, "order": order}
        for side in order:
            r = remux.readers(urls[side], n, seconds + 6)
            time.sleep(4)
            m = b.measure({**pids, "viewers": [r.pid]}, seconds)
            rss = rss_kib(pids[side])
            got = json.loads(r.communicate(timeout=seconds + 30)[0] or b"{}")
            cpu, base = m[side]["cpu_cores"], idle[side]["cpu_cores"]
            step[side] = {"measure": m[side], "others": {k: v for k, v in m.items() if k not in (side, "viewers")}, "viewers_cpu": m["viewers"],
                          "rss_kib": rss, "readers": got,
                          "us_per_viewer_s": 1e6 * cpu / n, "us_per_viewer_s_above_idle": 1e6 * (cpu - base) / n,
                          "bytes_per_viewer_s": got.get("bytes", 0) / n / (seconds + 6) if n else 0}
            time.sleep(2)  # the viewers' connections close before the other side's start
        steps.append(step)
    for p in procs:
        b.stop(p)
    return {"scenario": "fanout-srs", "measured": True, "srs_commit": commit(exe), "srs_version": version(exe),
            "srs_bin": str(exe), "sides": list(pids), "srs_mw_latency_ms": SRS_SIDES, "idle": idle, "steps": steps}


def section(r):
    """The report's lines for the SRS comparison (`r`: the step's result, or None)."""
    if not r or not r.get("measured"):
        return (r or {}).get("note") or NOT_MEASURED
    sides = r.get("sides", ["gateway", "srs"])
    rows = [f"SRS {r['srs_version']} (commit {r['srs_commit']}), built from source outside this repository, "
            f"beside the gateway, one stream each; N HTTP-FLV viewers (`flv_readers`) on one side at a time "
            f"(order rotating per N). Publisher alone: "
            + "; ".join(f"{LABELS.get(s, s)} {100 * r['idle'][s]['cpu_cores']:.1f}% of a core, RSS {r['idle'][s]['rss_kib'] / 1024:.0f} MiB" for s in sides)
            + ". SRS's HTTP-FLV viewer loop sleeps `mw_latency` (default 350 ms) whenever it finds nothing new to send: "
            "fewer, larger writes per viewer, and a longest stall of about that much; the gateway writes as frames arrive. "
            "Hence a second SRS with `mw_latency 40`. See `bench/srs.py`.",
            "",
            "| viewers | server | CPU (of one core) | µs CPU per viewer-second | above publisher alone | RSS (MiB) | PSS (MiB) | viewers with data | longest stall | kB per viewer-second |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for st in r["steps"]:
        for side in sides:
            x = st[side]
            rows.append(f"| {st['viewers']} | {LABELS.get(side, side)} | {100 * x['measure']['cpu_cores']:.1f}% | "
                        f"{x['us_per_viewer_s']:.0f} | {x['us_per_viewer_s_above_idle']:.0f} | {x['rss_kib'] / 1024:.1f} | "
                        f"{x['measure']['pss_kib'] / 1024:.1f} | {x['readers'].get('with_data')}/{st['viewers']} | "
                        f"{x['readers'].get('max_stall_ms')} ms | {x['bytes_per_viewer_s'] / 1000:.0f} |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--viewers", default="100,500")
    ap.add_argument("--seconds", type=float, default=15)
    a = ap.parse_args()
    if not binary():
        print(NOT_MEASURED)
        return 0
    tmp = b.tmpdir()
    r = scenario_fanout(tmp, b.make_clip(tmp), [int(x) for x in a.viewers.split(",")], a.seconds)
    print(section(r))
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
