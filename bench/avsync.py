#!/usr/bin/env python3
"""A/V sync after each bridge kind: the offset between the flash and the beep that the source
sends at the same instant every second, as the viewer sees them, over the whole run (so drift
shows), from the run bench/latency.py makes (`scenario`).

Offset = beep PTS - flash PTS on the viewer's decoded timeline (what a player that follows
timestamps shows; positive: sound late). Also by arrival (what a player that ignores timestamps,
like JSMpeg, shows: H5 is judged by it). "Added" subtracts the offset of the same source seen
without the gateway (the RTMP source's AAC encoder and decoder priming shift its sound by a
constant every viewer sees); the WHIP source sends both tracks aligned, so its paths are judged
as they are.
Start = median of the first 5 seconds paired, end = median of the last 5; drift = end - start.
The mini-program case has its publisher's audio start seconds after its video, with the viewer
already watching.

usage: bench/avsync.py [--seconds S] [--quick] [--json FILE]
"""

import argparse
import json
import statistics
import subprocess
import sys

import gwbench as b
import latency

TARGET_MS = 40
# What each path's offset is compared with: the same source seen without the gateway (its
# encoder's priming shifts the sound by a constant), or nothing for the WHIP source (its Opus
# and H.264 leave with equal timestamps and no priming shift that GStreamer does not trim).
REFERENCE = {"h5->rtmp": "direct-ts", "whip->rtmp": None, "whip->whep": None, "direct": None}
# H5 viewers (JSMpeg) play what arrives, ignoring timestamps: judged by arrival, as is.
BY_ARRIVAL = {"rtmp->h5"}
DRIFT_MS = 10
EDGE = 5


def offsets(events):
    """[(second, pts offset, arrival offset)] for every beep paired with its flash."""
    out = []
    for x in latency.beeps(events):
        if x["flash_pts"] is None:
            continue
        out.append((x["second"], x["onset_pts"] - x["flash_pts"], x["onset_arrival"] - x["flash_arrival"]))
    return sorted(out)


def summary(raw):
    """Per path: offsets at start and end, drift, spread, and the series (for plots)."""
    out = {}
    for name, events in raw.items():
        series = offsets(events)
        if not series:
            out[name] = {"pairs": 0}
            continue
        pts = [s[1] for s in series]
        arr = [s[2] for s in series]
        start, end = statistics.median(pts[:EDGE]), statistics.median(pts[-EDGE:])
        out[name] = {"pairs": len(series), "start_ms": start, "end_ms": end, "drift_ms": end - start,
                     "median_ms": statistics.median(pts), "min_ms": min(pts), "max_ms": max(pts),
                     "arrival_median_ms": statistics.median(arr),
                     "arrival_start_ms": statistics.median(arr[:EDGE]), "arrival_end_ms": statistics.median(arr[-EDGE:]),
                     "series": [[s[0] - series[0][0], round(s[1], 2), round(s[2], 2)] for s in series]}
    for name, s in out.items():
        if not s.get("pairs"):
            continue
        ref = REFERENCE.get(name, "direct")
        base = out.get(ref, {}).get("median_ms") if ref else 0.0
        s["reference"] = ref or "none (the source sends them aligned)"
        s["judged_by"] = "arrival" if name in BY_ARRIVAL else "pts"
        if s["judged_by"] == "arrival":
            s["added_start_ms"], s["added_end_ms"] = s["arrival_start_ms"], s["arrival_end_ms"]
            s["reference"] = "none (by arrival: JSMpeg ignores timestamps)"
        elif base is not None:
            s["added_start_ms"], s["added_end_ms"] = s["start_ms"] - base, s["end_ms"] - base
    return out


def verdict(s):
    """Target: |offset added by the gateway| under 40 ms at start and end, drift under 10 ms."""
    if not s.get("pairs") or s.get("added_start_ms") is None:
        return None
    worst = max(abs(s["added_start_ms"]), abs(s["added_end_ms"]))
    return worst < TARGET_MS and abs(s["drift_ms"]) < DRIFT_MS


def report(summ, seconds):
    f = lambda v: "-" if v is None else f"{v:+.1f}"
    lines = [f"A/V offset (ms, + = sound late), run of {seconds:.0f} s:", "",
             "| path | pairs | start | end | drift | min / max | added at start / end (over) | by arrival start / end | target (<{} ms, drift <{} ms) |".format(TARGET_MS, DRIFT_MS),
             "|---|---|---|---|---|---|---|---|---|"]
    for name, s in summ.items():
        if not s.get("pairs"):
            lines.append(f"| {name} | 0 | - | - | - | - | - | - | no pairs |")
            continue
        v = verdict(s)
        lines.append(f"| {name} | {s['pairs']} | {f(s['start_ms'])} | {f(s['end_ms'])} | {f(s['drift_ms'])} | "
                     f"{f(s['min_ms'])} / {f(s['max_ms'])} | {f(s.get('added_start_ms'))} / {f(s.get('added_end_ms'))} ({s.get('reference', '-')}) | "
                     f"{f(s['arrival_start_ms'])} / {f(s['arrival_end_ms'])} | {'-' if v is None else ('met' if v else 'NOT met')} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=180)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.quick:
        a.seconds = 30
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "interop-gateway", "--example", "avprobe"], cwd=b.ROOT, check=True)
    r = latency.scenario(b.tmpdir(), a.seconds, 1, late_audio_s=3 if a.quick else 5)
    summ = summary(r["raw"])
    if a.json:
        b.pathlib.Path(a.json).write_text(json.dumps(summ))
    print(report(summ, a.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
