#!/usr/bin/env python3
"""The whole benchmark suite in one go: cost per bridge against one ffmpeg (and one
gst-launch-1.0) per bridge, fan-out, conversions against their codec floor, real-time
capacity, added latency, first picture, A/V sync. Writes docs/benchmarks.md, plots in
docs/bench/ and the raw figures as docs/bench/results.json.

It calls the scenario functions of the other bench scripts (remux.py, udp.py, webrtc.py,
h5.py, bridges.py, latency.py, avsync.py, hls.py, srs.py, whep_cost.py) and report.py; see each for what it measures.
Everything runs on 127.0.0.1; each scenario starts its own gateway, nginx-rtmp and peers and
stops them. SRS is an optional peer of the HTTP-FLV and RTMP fan-out (step fanout_srs): measured
only when SRS_BIN points at an SRS binary built elsewhere (see bench/srs.py). The sides of a comparison run in the same window, so machine noise hits both.

  --full   (default) the report: about 20 minutes on 2 cores (and about 10 more for fanout_srs
           when SRS_BIN is set: HTTP-FLV and RTMP, 100/500/1,000 viewers, three servers).
  --quick  a smoke run for CI (about a minute): every scenario at its smallest, several at
           once, nothing asserted about the figures; the report goes to a temporary
           directory unless --out is given. Exit status is non-zero if a scenario failed.
  --only   comma-separated step names (see STEPS) to run a part.
  --update with --only: merge the part's figures into the report already in --out (default
           docs/) and write it again, keeping the other steps' figures and run time.
  --no-build use the binaries already built in the target directory (CARGO_TARGET_DIR).

usage: bench/run.py [--quick|--full] [--out DIR] [--only STEPS [--update]] [--no-build]
"""

import argparse
import concurrent.futures
import json
import pathlib
import subprocess
import sys
import time
import traceback

import gwbench as b
import avsync
import bridges
import h5
import hls
import latency
import remux
import report
import srs
import udp
import webrtc
import whep_cost

SETTINGS = {
    "full": {"seconds": 15, "clip_seconds": 10, "floor_seconds": 40, "remux_n": [2, 8, 40], "udp_n": 4, "udp_ingest_n": [1, 4], "whip_whep_n": 3,
             "fan_flv": [100, 500], "fan_srs": [100, 500, 1000], "fan_srs_whep": [100, 500], "fan_rtmp": [100, 500], "fan_h5": 200, "fan_whep": [1, 5], "whep_cost": {"viewers": [10, 50, 100], "max_webrtcbin": 50},
             "webrtc_n": [1, 4], "bare_audio_seconds": 120, "aac_opus_n": 4, "h5_n": 2, "h5_720_n": 1,
             "mpeg1_n": 2, "capacity": {"seconds": 10, "max": 64}, "capacity_mpeg1": {"seconds": 10, "start": 16}, "latency_seconds": 150, "sessions": 5,
             "late_audio_s": 5, "workers": 1,
             "hls": {"latency_seconds": 60, "warm_s": 8, "fan_n": [50, 200], "fan_seconds": 10, "sides": ["llhls", "ts", "httpflv"], "settle": 4}},
    "quick": {"seconds": 3, "clip_seconds": 4, "floor_seconds": 4, "remux_n": [1], "udp_n": 1, "udp_ingest_n": [1], "whip_whep_n": 1,
              "fan_flv": [20], "fan_srs": [20], "fan_srs_whep": [5], "fan_rtmp": [20], "fan_h5": 5, "fan_whep": [1], "whep_cost": {"viewers": [2], "max_webrtcbin": 2},
              "webrtc_n": [1], "bare_audio_seconds": 10, "aac_opus_n": 1, "h5_n": 1, "h5_720_n": 1,
              "mpeg1_n": 1, "capacity": None, "capacity_mpeg1": None, "latency_seconds": 30, "sessions": 1,
              "late_audio_s": 3, "workers": 6,
              "hls": {"latency_seconds": 6, "warm_s": 0, "fan_n": [10], "fan_seconds": 3, "sides": ["llhls", "httpflv"], "settle": 2.5}},
}


class Clips:
    """The media files the sources loop, made once per run."""

    def __init__(self, seconds, floor_seconds):
        d = b.tmpdir()
        self.seconds = seconds
        self.h264 = b.make_clip(d, seconds=seconds)
        self.h264_720 = b.make_clip(d, size="1280x720", seconds=seconds)
        self.h264_nob = bridges.make_clip_no_bframes(d, seconds)
        self.mpeg1 = bridges.make_mpeg1_clip(d, seconds)
        self.udp_aac = udp.make_clip(d, seconds=seconds, audio="aac")
        self.udp_opus = udp.make_clip(d, seconds=seconds, audio="opus")
        self.opus = webrtc.make_opus(d, 10)
        # The codec floors run on longer clips, so a process's start-up is a small share.
        self.floor_seconds = floor_seconds
        fd = d / "floor"
        fd.mkdir()
        self.floor_h264 = b.make_clip(fd, seconds=floor_seconds)
        self.floor_h264_720 = b.make_clip(fd, size="1280x720", seconds=floor_seconds)
        self.floor_mpeg1 = bridges.make_mpeg1_clip(fd, floor_seconds)
        self.dir = d


def step_remux(c, s):
    out = []
    for n in s["remux_n"]:
        out.append(remux.scenario_push(b.tmpdir(), c.h264, n, s["seconds"], gst=True))
        out.append(remux.scenario_httpflv(b.tmpdir(), c.h264, n, s["seconds"], gst=True))
    return out


def step_udp(c, s):
    return udp.run(b.tmpdir(), c.udp_aac, s["udp_n"], s["seconds"], bridge_audio=("-c:a", "copy"))


def step_udp_ingest(c, s):
    # Ingest only (no consumer): the gateway's UDP ingest against ffmpeg's RTP demuxer.
    return [udp.run_ingest(b.tmpdir(), c.udp_opus, n, s["seconds"] * 2, settle=2 if s["seconds"] < 5 else 4)
            for n in s["udp_ingest_n"]]


def step_whip_whep(c, s):
    return bridges.scenario_whip_whep(b.tmpdir(), s["whip_whep_n"], s["seconds"])


def step_fanout_httpflv(c, s):
    return [remux.scenario_fanout(b.tmpdir(), c.h264, v, s["seconds"]) for v in s["fan_flv"]]


def step_fanout_srs(c, s):
    # Measures nothing (instantly) unless SRS_BIN points at an SRS binary (bench/srs.py).
    return srs.scenario_fanout(b.tmpdir(), c.h264, s["fan_srs"], s["seconds"], whep_counts=s.get("fan_srs_whep"))


def step_fanout_rtmp(c, s):
    return bridges.scenario_fanout(b.tmpdir(), c.h264, "rtmp", s["fan_rtmp"], s["seconds"])


def step_fanout_h5(c, s):
    return h5.scenario_fanout(b.tmpdir(), c.h264, s["fan_h5"], s["seconds"])


def step_fanout_whep(c, s):
    return bridges.scenario_fanout(b.tmpdir(), c.h264_nob, "whep", s["fan_whep"], s["seconds"])


def step_whep_cost(c, s):
    w = s["whep_cost"]
    return whep_cost.scenario(b.tmpdir(), c.h264_nob, w["viewers"], s["seconds"], w["max_webrtcbin"])


def step_audio_webrtc(c, s):
    quick = s["seconds"] < 5
    results = [webrtc.scenario(b.tmpdir(), c.h264, c.opus, n, s["seconds"], settle=1.5 if quick else 4.0) for n in s["webrtc_n"]]
    pipelines = {p for r in results for p in r["pipelines"]}
    if len(pipelines) != 1:
        raise RuntimeError(f"expected one opus->aac pipeline in the gateway, saw {pipelines}")
    long_opus = webrtc.make_opus(c.dir, s["bare_audio_seconds"])
    bare = webrtc.bare_codec(long_opus, s["bare_audio_seconds"], c.opus, pipelines.pop())
    return {"webrtc_cdn": results, "webrtc_bare": bare}


def step_audio_aac_opus(c, s):
    return bridges.scenario_aac_opus(b.tmpdir(), c.h264_nob, s["aac_opus_n"], s["seconds"])


def step_video_h5(c, s):
    return {"bare_360": h5.scenario_bare(c.floor_h264, c.floor_seconds),
            "h5_360": h5.scenario_compare(b.tmpdir(), c.h264, s["h5_n"], s["seconds"] + 3)}


def step_video_h5_720(c, s):
    # The gateway scales toward H5 to 640 wide (matrix.yaml); ffmpeg is asked for the same.
    return h5.scenario_compare(b.tmpdir(), c.h264_720, s["h5_720_n"], s["seconds"] + 3,
                               encode=["-vf", "scale=640:-2", *h5.FFMPEG_ENCODE])


def step_video_mpeg1(c, s):
    return bridges.scenario_mpeg1_h264(b.tmpdir(), c.mpeg1, s["mpeg1_n"], s["seconds"])


def step_floors(c, s):
    return bridges.scenario_floors(b.tmpdir(), c.floor_h264_720, c.floor_mpeg1, c.floor_seconds, s["bare_audio_seconds"])


def step_capacity(c, s):
    cap = s["capacity"]
    if not cap:
        return None
    # Start near what the CPU per stream measured alone on one thread predicts for 2 cores
    # (the sweep then steps by 4 either way).
    bare = h5.scenario_bare(c.h264, c.seconds)
    guess = {"gateway": int(1.7 / bare["gstreamer_cores_per_stream"]), "ffmpeg": int(1.7 / bare["ffmpeg_cores_per_stream"])}
    return h5.scenario_capacity(b.tmpdir(), c.h264, cap["seconds"], cap["max"], start=guess)


def step_capacity_mpeg1(c, s):
    cap = s["capacity_mpeg1"]
    if not cap:
        return None
    return bridges.scenario_capacity_mpeg1(b.tmpdir(), c.mpeg1, cap["seconds"], {"gateway": cap["start"], "ffmpeg": cap["start"]})


def step_latency(c, s):
    r = latency.scenario(b.tmpdir(), s["latency_seconds"], s["sessions"], late_audio_s=s["late_audio_s"])
    r["avsync"] = avsync.summary(r.pop("raw"))
    r["added"] = latency.added(r)
    return r


def step_hls(c, s):
    h = s["hls"]
    return {"latency": hls.scenario_latency(b.tmpdir(), h["latency_seconds"], h["warm_s"]),
            "fanout": hls.scenario_fanout(b.tmpdir(), c.h264, h["fan_n"], h["fan_seconds"], h["sides"], h["settle"])}


STEPS = {"latency": step_latency, "video_h5": step_video_h5, "video_h5_720": step_video_h5_720, "remux": step_remux, "udp": step_udp, "udp_ingest": step_udp_ingest, "whip_whep": step_whip_whep,
         "fanout_httpflv": step_fanout_httpflv, "fanout_srs": step_fanout_srs, "fanout_rtmp": step_fanout_rtmp, "fanout_h5": step_fanout_h5,
         "fanout_whep": step_fanout_whep, "whep_cost": step_whep_cost, "audio_webrtc": step_audio_webrtc, "audio_aac_opus": step_audio_aac_opus,
         "video_mpeg1": step_video_mpeg1, "floors": step_floors, "capacity": step_capacity,
         "capacity_mpeg1": step_capacity_mpeg1, "hls": step_hls}
# How the report groups the steps' results: group -> {key in the group's result: step}.
GROUPS = {"fanout": {"httpflv": "fanout_httpflv", "srs": "fanout_srs", "rtmp": "fanout_rtmp", "h5": "fanout_h5", "whep": "fanout_whep", "whep_cost": "whep_cost"},
          "audio": {"": "audio_webrtc", "aac_opus": "audio_aac_opus"},
          "video": {"": "video_h5", "h5_720": "video_h5_720", "mpeg1_h264": "video_mpeg1"}}


def grouped(done):
    """The steps' results as the report reads them (fan-out, audio and video grouped)."""
    out = {k: v for k, v in done.items() if not any(k in g.values() for g in GROUPS.values())}
    for group, parts in GROUPS.items():
        result, errors, seconds = {}, [], 0.0
        for key, step in parts.items():
            s = done.get(step)
            if not s:
                continue
            seconds += s["seconds"]
            if s["error"]:
                errors.append(f"{step}: {s['error']}")
            elif key:
                result[key] = s["result"]
            else:
                result.update(s["result"])
        if seconds:
            out[group] = {"result": result, "error": "\n".join(errors) or None, "seconds": seconds}
    return out


def merged(old, new):
    """`old` results with `new`'s steps put in (a group's parts merged key by key), noting when
    each part ran."""
    out = dict(old)
    steps = dict(old["steps"])
    for name, part in new["steps"].items():
        prev = steps.get(name)
        if name in GROUPS and prev and prev.get("result") is not None and part.get("result") is not None:
            result = {**prev["result"], **part["result"]}
            errors = "\n".join(e for e in (prev.get("error"), part.get("error")) if e) or None
            steps[name] = {"result": result, "error": errors, "seconds": prev["seconds"] + part["seconds"]}
        else:
            steps[name] = part
    out["steps"] = steps
    out["updates"] = [*old.get("updates", []), {"started": new["started"], "steps": sorted(new["steps"]),
                                                 "duration_s": new["duration_s"], "machine": new["machine"]}]
    return out


def run_step(name, fn, clips, settings):
    t0 = time.time()
    print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
    try:
        result, error = fn(clips, settings), None
    except Exception:  # one broken scenario must not lose the others' figures
        result, error = None, traceback.format_exc()
    took = time.time() - t0
    print(f"[{time.strftime('%H:%M:%S')}] {name} {'FAILED' if error else 'done'} in {took:.0f} s", flush=True)
    if error:
        print(error, file=sys.stderr, flush=True)
    return name, {"result": result, "error": error, "seconds": took}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true")
    mode.add_argument("--full", action="store_true")
    ap.add_argument("--out", help="where benchmarks.md and bench/ go (default: docs/ in --full, a temporary directory in --quick)")
    ap.add_argument("--only", help="comma-separated steps: " + ",".join(STEPS))
    ap.add_argument("--update", action="store_true", help="merge the --only steps into the report in --out")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already in the target directory (no cargo build)")
    a = ap.parse_args()
    if a.update and not (a.only and (a.out or not a.quick)):
        ap.error("--update needs --only and a report to merge into (--out, or docs/ without --quick)")
    kind = "quick" if a.quick else "full"
    settings = SETTINGS[kind]
    out = pathlib.Path(a.out) if a.out else (b.tmpdir() if a.quick else b.ROOT / "docs")
    names = [n for n in (a.only.split(",") if a.only else STEPS) if n]
    unknown = [n for n in names if n not in STEPS]
    if unknown:
        ap.error(f"unknown steps {unknown}; known: {list(STEPS)}")

    started = time.time()
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "interop-gateway", "--example", "flv_readers",
                        "--example", "whip_load", "--example", "h5_bench", "--example", "avprobe", "--example", "whep_viewers"], cwd=b.ROOT, check=True)
    clips = Clips(settings["clip_seconds"], settings["floor_seconds"])
    # The latency run goes first (in --full it has the machine to itself).
    with concurrent.futures.ThreadPoolExecutor(max_workers=settings["workers"]) as pool:
        done = dict(pool.map(lambda n: run_step(n, STEPS[n], clips, settings), names))
    results = {"mode": kind, "settings": settings, "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
               "duration_s": time.time() - started, "machine": report.machine(), "steps": grouped(done)}
    if a.update:
        results = merged(json.loads((out / "bench" / "results.json").read_text()), results)
    path = report.write(results, out)
    failed = [n for n, r in done.items() if r["error"]]
    print(f"report: {path} ({time.time() - started:.0f} s){'; FAILED: ' + ', '.join(failed) if failed else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
