#!/usr/bin/env python3
"""CPU per WHEP viewer-second (issue 14: per-viewer cost), the two WHEP senders side by side:
`webrtc.egress: str0m` (RTP packetized once per frame and shared, one sans-IO str0m session per
viewer) and `webrtc.egress: webrtcbin` (one GStreamer webrtcbin pipeline per viewer, the
sender before).

The scenario (all on 127.0.0.1): two gateways run together, one per sender, each fed the same
H.264 + AAC clip (no B-frames, 640x360 30 fps ~1 Mbit/s) by its own looping `ffmpeg -re -c copy`
RTMP publisher; the matrix converts AAC to Opus toward WebRTC once per stream, shared by all its
viewers. The CPU of each gateway with its publisher and one base viewer (the conversion running for one
viewer, which stays for the whole run) is measured first. Then for each N, N more WHEP viewers attach to one side, then,
when they are gone, N to the other (the order rotating per N). The viewers are `whep_viewers`
(bench/whep_viewers.rs): str0m receive clients on one thread (ICE, DTLS, SRTP, RTCP; no
decoding), which count the frames, audio packets and keyframes each viewer gets. After a
warm-up (connections, the cached GOP burst) the gateway's CPU (utime+stime of its process tree
from /proc) is measured over a window and given as µs of CPU per viewer-second, in total and
above the side's own CPU with its publisher and base viewer (what a viewer adds), and as the
slope from one N to the next.

A side whose N would need more than the machine has (webrtcbin costs ~2% of a core per viewer)
is measured only up to `max_webrtcbin` viewers.

usage: bench/whep_cost.py [--viewers N[,N...]] [--seconds S] [--max-webrtcbin N]
"""

import argparse
import json
import subprocess
import time

import gwbench as b
import bridges

CLIENT = b.TARGET / "release" / "examples" / "whep_viewers"
SIDES = ["str0m", "webrtcbin"]
WARMUP = 6


def start_side(d, egress, clip):
    conf = d / f"gw-{egress}.yaml"
    conf.write_text(f"webrtc:\n  ip: 127.0.0.1\n  egress: {egress}\n  max_pending: 1000\n  max_pending_per_address: 1000\n")
    side_dir = d / egress
    side_dir.mkdir()
    gw, http, rtmp = b.gateway(side_dir, extra=["--config", str(conf)])
    src = b.source(clip, f"rtmp://{rtmp}/live/fan")
    return {"gw": gw, "http": http, "src": src}


def viewers(http, n, warmup, seconds):
    return b.start([str(CLIENT), str(n), str(warmup), str(seconds), f"http://{http}/whep/fan"],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def summary(proc, timeout):
    out, err = proc.communicate(timeout=timeout)
    lines = [l for l in out.decode().splitlines() if l.startswith("{")]
    got = json.loads(lines[-1]) if lines else {}
    if not got:
        got = {"error": (err.decode() or out.decode())[-800:]}
    return got


def scenario(tmp, clip, counts, seconds, max_webrtcbin=50):
    d = tmp / "whepcost"
    d.mkdir()
    sides = {s: start_side(d, s, clip) for s in SIDES}
    time.sleep(3)
    # One base viewer per side stays for the whole run: the AAC->Opus conversion (shared by all
    # the viewers of the stream) runs throughout, and the base figure includes it, so what
    # the steps add above it is what the viewers cost.
    base = {s: viewers(sides[s]["http"], 1, 0, 24 * 3600) for s in SIDES}
    time.sleep(4)
    idle = b.measure({s: [sides[s]["gw"].pid] for s in SIDES}, 4)
    steps = []
    for i, n in enumerate(counts):
        order = SIDES if i % 2 == 0 else SIDES[::-1]
        step = {"viewers": n}
        for s in order:
            if s == "webrtcbin" and n > max_webrtcbin:
                step[s] = None
                continue
            p = viewers(sides[s]["http"], n, WARMUP + n / 25, seconds)
            time.sleep(WARMUP + n / 25 + 0.5)
            m = b.measure({"gateway": [sides[s]["gw"].pid], "viewers": [p.pid]}, seconds - 1)
            got = summary(p, seconds + 120)
            cpu = m["gateway"]["cpu_cores"]
            step[s] = {"measure": m, "viewers": got,
                       "us_per_viewer_s": 1e6 * cpu / n,
                       "us_per_viewer_s_above_idle": 1e6 * (cpu - idle[s]["cpu_cores"]) / n,
                       "metrics": packetized(sides[s]["http"])}
            wait_no_viewers(sides[s]["http"], keep=1)
        steps.append(step)
    # What one more viewer costs: the slope of the gateway's CPU from one N to the next (the
    # conversion and other shared work cancel out).
    for s in SIDES:
        prev = None
        for st in steps:
            x = st.get(s)
            if not x:
                continue
            if prev:
                dn = st["viewers"] - prev["viewers"]
                dc = x["measure"]["gateway"]["cpu_cores"] - prev[s]["measure"]["gateway"]["cpu_cores"]
                x["us_per_added_viewer_s"] = 1e6 * dc / dn if dn else None
            prev = st
    conv = {s: bridges.conversions(sides[s]["http"]) for s in SIDES}
    for s in SIDES:
        b.stop(base[s])
        b.stop(sides[s]["src"])
        b.stop(sides[s]["gw"])
    return {"scenario": "whep-cost", "sides": SIDES, "idle": idle, "steps": steps, "conversions": conv}


def wait_no_viewers(http, keep=0, timeout=30):
    """Until the stream has no more than `keep` WebRTC consumers (the sessions of the step
    before ended)."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            st = b.api(http, "GET", "/api/v1/streams/fan")
            if (st.get("consumers", {}).get("webrtc") or 0) <= keep:
                return
        except Exception:
            pass
        time.sleep(0.5)


def packetized(http):
    """The gateway's count of frames it packetized for WebRTC (str0m side)."""
    try:
        text = b.urllib.request.urlopen(f"http://{http}/metrics", timeout=10).read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("interop_webrtc_frames_packetized_total "):
            return int(float(line.split()[1]))
    return None


def section(r):
    """The report's lines for this step (`r`: its result, or None)."""
    if not r:
        return "Not measured."
    rows = ["Two gateways side by side, one per WHEP sender (`webrtc.egress`), each publishing the same "
            "H.264 + AAC clip by RTMP (AAC→Opus converted once per stream) to one base viewer for the whole run; "
            "N more `whep_viewers` (str0m clients, no decoding) on one side at a time. Publisher and base viewer "
            "(the conversion running): "
            + "; ".join(f"{s} {100 * r['idle'][s]['cpu_cores']:.1f}% of a core" for s in r["sides"])
            + ". See `bench/whep_cost.py`.",
            "",
            "| viewers | sender | gateway CPU (of one core) | µs CPU per viewer-second | above publisher and base viewer | per added viewer (slope from the N before) | min fps | min audio pkt/s | viewers connected | client CPU |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for st in r["steps"]:
        for s in r["sides"]:
            x = st.get(s)
            if not x:
                rows.append(f"| {st['viewers']} | {s} | not run (too many for the machine) | | | | | | | |")
                continue
            v = x["viewers"]
            rows.append(f"| {st['viewers']} | {s} | {100 * x['measure']['gateway']['cpu_cores']:.1f}% | "
                        f"{x['us_per_viewer_s']:.0f} | {x['us_per_viewer_s_above_idle']:.0f} | "
                        f"{'-' if x.get('us_per_added_viewer_s') is None else round(x['us_per_added_viewer_s'])} | "
                        f"{v.get('min_fps', 0):.1f} | {v.get('min_audio_pps', 0):.1f} | {v.get('connected')}/{st['viewers']} | "
                        f"{100 * x['measure']['viewers']['cpu_cores']:.1f}% |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--viewers", default="10,50,100")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--max-webrtcbin", type=int, default=50)
    a = ap.parse_args()
    tmp = b.tmpdir()
    clip = bridges.make_clip_no_bframes(tmp, 10)
    r = scenario(tmp, clip, [int(x) for x in a.viewers.split(",")], a.seconds, a.max_webrtcbin)
    print(json.dumps(r, indent=1))
    print(section(r))


if __name__ == "__main__":
    main()
