#!/usr/bin/env python3
"""H5 (JSMpeg) conversions: H.264+AAC -> MPEG-1+MP2, the gateway against one ffmpeg per stream.

Scenarios (all on 127.0.0.1; sources loop a 640x360 30 fps H.264+AAC clip with -c copy):
  compare  N streams at once on each side, both sides running at the same time:
           gateway: sources -> gateway /live/cK, one H5 WebSocket viewer of /h5/cK each
           ffmpeg:  sources -> nginx-rtmp /src/cK, `ffmpeg -i rtmp://nginx/src/cK -c:v mpeg1video
                    -bf 0 -g 30 -b:v 1000k -c:a mp2 -b:a 128k -ar 44100 -f mpegts -listen 1 http://...`
                    with one HTTP reader each
           CPU per stream (utime+stime of the gateway, resp. the ffmpeg processes), and whether every
           stream keeps 30 fps (the viewers count MPEG-1 pictures).
  capacity each side alone, N = 4, 8, 12, ...: the largest N whose every stream keeps >= 95% of
           30 fps on this machine (a side stops at its first N that does not).
  bare     the codec alone, one thread, no IO, on the same 10 s clip: `ffmpeg -threads 1 -i clip
           -c:v mpeg1video ... -c:a mp2 -f null -`, and the gateway's own GStreamer elements
           (avdec_h264 max-threads=1 ! igmpeg1enc, aac -> avenc_mp2) via `h5_bench codec`.
  fanout   1 stream -> V H5 WebSocket viewers: gateway CPU with 1 viewer and with V.
The gateway's H5 cells scale to 640 wide (matrix.yaml): the 640x360 clip is not scaled.

usage: bench/h5.py [--streams N] [--viewers V] [--seconds S] [--max-capacity M] [--no-capacity]
                   [--quick] [--json FILE]
"""

import argparse
import json
import resource
import subprocess
import sys
import time

import gwbench as b

FPS = 30
REAL_TIME = 0.95 * FPS
FFMPEG_ENCODE = ["-c:v", "mpeg1video", "-bf", "0", "-g", "30", "-b:v", "1000k",
                 "-c:a", "mp2", "-b:a", "128k", "-ar", "44100"]
TOOL = b.TARGET / "release" / "examples" / "h5_bench"


def readers(url, n, warmup, seconds):
    return b.start([str(TOOL), "read", url, str(n), str(warmup), str(seconds)], stdout=subprocess.PIPE)


def collect(procs, timeout):
    return [json.loads(p.communicate(timeout=timeout)[0] or b"{}") for p in procs]


def gateway_side(tmp, clip, n, warmup, window):
    """N gateway conversions with one viewer each: (gateway, http address, viewers, sources)."""
    gw, http, rtmp = b.gateway(tmp)
    sources = [b.source(clip, f"rtmp://{rtmp}/live/c{k}") for k in range(n)]
    viewers = [readers(f"ws://{http}/h5/c{k}", 1, warmup, window) for k in range(n)]
    return gw, http, viewers, sources


def ffmpeg_side(tmp, clip, n, warmup, window, encode=None):
    """N ffmpeg conversions (RTMP from nginx in, MPEG-TS over HTTP out) with one reader each
    (`encode`: ffmpeg's encoding options, FFMPEG_ENCODE when None)."""
    ng, port = b.nginx(tmp, apps=("src",))
    sources = [b.source(clip, f"rtmp://127.0.0.1:{port}/src/c{k}") for k in range(n)]
    time.sleep(2)
    convs, viewers = [], []
    for k in range(n):
        out = b.free_port()
        convs.append(b.start(["ffmpeg", "-v", "error", "-i", f"rtmp://127.0.0.1:{port}/src/c{k}", *(encode or FFMPEG_ENCODE),
                              "-f", "mpegts", "-listen", "1", f"http://127.0.0.1:{out}/c{k}.ts"]))
        viewers.append(readers(f"http://127.0.0.1:{out}/c{k}.ts", 1, warmup, window))
    return ng, convs, viewers, sources


def fps_of(got):
    return [g.get("min_fps", 0.0) for g in got]


def scenario_compare(tmp, clip, n, seconds, encode=None):
    (tmp / "cmp").mkdir()
    warmup = 10  # ffmpeg probes its input up to 5 s before it listens; conversions settle
    window = seconds
    gw, http, gviewers, gsources = gateway_side(tmp / "cmp", clip, n, warmup, window)
    ng, convs, fviewers, fsources = ffmpeg_side(tmp / "cmp", clip, n, warmup, window, encode)
    time.sleep(warmup + 0.5)
    m = b.measure({"gateway": [gw.pid], "ffmpeg": [p.pid for p in convs]}, window - 1)
    streams = b.api(http, "GET", "/api/v1/streams")["streams"]
    conversions = sum(len(s["conversions"]) for s in streams)
    ggot, fgot = collect(gviewers, window + 30), collect(fviewers, window + 30)
    for p in convs + gsources + fsources + [gw, ng]:
        b.stop(p)
    return {"scenario": "compare", "streams": n, "measure": m, "conversions_running": conversions,
            "fps": {"gateway": fps_of(ggot), "ffmpeg": fps_of(fgot)},
            "bad_messages": sum(g.get("bad_messages", 0) for g in ggot)}


def run_alone(tmp, clip, side, n, seconds):
    """One side alone with N streams: (all streams real time?, CPU cores, slowest fps)."""
    d = tmp / f"cap-{side}-{n}"
    d.mkdir()
    warmup = 10
    if side == "gateway":
        gw, _, viewers, sources = gateway_side(d, clip, n, warmup, seconds)
        procs, stop = [gw.pid], [gw] + sources
    else:
        ng, convs, viewers, sources = ffmpeg_side(d, clip, n, warmup, seconds)
        procs, stop = [p.pid for p in convs], convs + sources + [ng]
    time.sleep(warmup + 0.5)
    m = b.measure({side: procs}, seconds - 1)[side]
    got = collect(viewers, seconds + 30)
    for p in stop:
        b.stop(p)
    fps = fps_of(got)
    return all(f >= REAL_TIME for f in fps) and len(fps) == n, m["cpu_cores"], min(fps) if fps else 0.0


CAPACITY_STEPS = [4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 48, 56, 64]


def scenario_capacity(tmp, clip, seconds, max_n, start=None):
    """Each side alone, the sides' steps in turn: N raised by 4 until a stream misses real time
    (the largest N that held is the capacity). `start` (e.g. from the CPU per stream measured alone on one thread)
    skips the small N: a side that misses real time at its first N steps down instead."""
    steps = [n for n in CAPACITY_STEPS if n <= max_n]
    start = {side: (start or {}).get(side, 0) for side in ("gateway", "ffmpeg")}
    out = b.sweep_sides(lambda side, n: run_alone(tmp, clip, side, n, seconds), steps, start)
    return {"scenario": "capacity", "result": out}


def scenario_bare(clip, clip_seconds, runs=2):
    """The codec alone, flat out, one thread: the least CPU of `runs` runs on each side."""
    cmd = ["ffmpeg", "-v", "error", "-threads", "1", "-i", str(clip), "-threads", "1", *FFMPEG_ENCODE, "-f", "null", "-"]
    subprocess.run(cmd, check=True, timeout=300)  # warms the page cache
    ffmpeg_runs, gst_runs = [], []
    for _ in range(runs):
        # ffmpeg's CPU as a child of this process: the difference of RUSAGE_CHILDREN.
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(cmd, check=True, timeout=300)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        ffmpeg_runs.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
        gst = json.loads(subprocess.run([str(TOOL), "codec", str(clip)], check=True, capture_output=True,
                                        timeout=300).stdout)
        gst_runs.append(gst["cpu_seconds"])
    ffmpeg_cpu, gst_cpu = min(ffmpeg_runs), min(gst_runs)
    return {"scenario": "bare", "clip_seconds": clip_seconds, "ffmpeg_runs_cpu_s": ffmpeg_runs, "gstreamer_runs_cpu_s": gst_runs,
            "ffmpeg_cpu_seconds": ffmpeg_cpu, "gstreamer_cpu_seconds": gst_cpu,
            "ffmpeg_cores_per_stream": ffmpeg_cpu / clip_seconds,
            "gstreamer_cores_per_stream": gst_cpu / clip_seconds}


def scenario_fanout(tmp, clip, viewers, seconds):
    (tmp / "fan").mkdir()
    gw, http, rtmp = b.gateway(tmp / "fan")
    b.source(clip, f"rtmp://{rtmp}/live/fan")
    time.sleep(2)
    one = readers(f"ws://{http}/h5/fan", 1, 4, 2 * seconds + 20)
    time.sleep(6)
    m1 = b.measure({"gateway": [gw.pid]}, seconds)["gateway"]
    many = readers(f"ws://{http}/h5/fan", viewers - 1, 6, seconds)
    time.sleep(8)
    mv = b.measure({"gateway": [gw.pid]}, seconds - 1)["gateway"]
    stream = b.api(http, "GET", "/api/v1/streams/fan")
    got = collect([many], seconds + 30)[0]
    b.stop(one)
    b.stop(gw)
    return {"scenario": "fanout", "viewers": viewers, "one_viewer": m1, "all_viewers": mv, "readers": got,
            "conversions": [(c["track"], c["from"], c["to"], c["consumers"]) for c in stream["conversions"]]}


def report(results):
    by = {r["scenario"]: r for r in results}
    lines = []
    bare = by.get("bare")
    if "compare" in by:
        r = by["compare"]
        n, g, f = r["streams"], r["measure"]["gateway"], r["measure"]["ffmpeg"]
        lines += ["| side | streams | CPU/stream (% core) | user / system | vs bare codec (one thread) | PSS/stream (MiB) | slowest stream fps |",
                  "|---|---|---|---|---|---|---|"]
        for side, m in (("gateway", g), ("ffmpeg per stream", f)):
            per = m["cpu_cores"] / n
            vs = f"{per / bare['ffmpeg_cores_per_stream']:.2f}× ffmpeg, {per / bare['gstreamer_cores_per_stream']:.2f}× GStreamer" if bare else "-"
            key = "gateway" if side == "gateway" else "ffmpeg"
            lines.append(f"| {side} | {n} | {100 * per:.1f} | {100 * m['user_cores'] / n:.1f} / {100 * m['system_cores'] / n:.1f} | "
                         f"{vs} | {m['pss_kib'] / 1024 / n:.1f} | {min(r['fps'][key] or [0]):.1f} |")
        lines.append(f"\nCPU ratio ffmpeg÷gateway: {f['cpu_cores'] / max(g['cpu_cores'], 1e-9):.2f}×; "
                     f"gateway conversions running: {r['conversions_running']} (2 per stream expected); "
                     f"WebSocket messages that were not whole TS packets: {r['bad_messages']}")
    if bare:
        lines.append(f"\nbare codec cost, {bare['clip_seconds']} s clip, one thread, no IO: ffmpeg "
                     f"{100 * bare['ffmpeg_cores_per_stream']:.1f}% of a core per stream, GStreamer (avdec_h264 ! igmpeg1enc, "
                     f"aac -> avenc_mp2) {100 * bare['gstreamer_cores_per_stream']:.1f}%")
    if "capacity" in by:
        c = by["capacity"]["result"]
        g, f = c["gateway"], c["ffmpeg"]
        more = "+" if g["limit_reached"] else ""
        moref = "+" if f["limit_reached"] else ""
        lines.append(f"\nreal-time capacity on this machine (every stream >= {REAL_TIME:.1f} fps): gateway {g['max_real_time']}{more} streams, "
                     f"ffmpeg per stream {f['max_real_time']}{moref} streams")
        for side in ("gateway", "ffmpeg"):
            steps = ", ".join(f"{s['streams']}: {s['slowest_fps']:.1f} fps at {100 * s['cpu_cores']:.0f}%" for s in c[side]["steps"])
            lines.append(f"  {side}: {steps}")
    if "fanout" in by:
        r = by["fanout"]
        one, allv = r["one_viewer"]["cpu_cores"], r["all_viewers"]["cpu_cores"]
        per = (allv - one) / max(r["viewers"] - 1, 1)
        lines.append(f"\nfan-out: 1 stream -> {r['viewers']} H5 viewers: gateway {100 * allv:.1f}% of a core "
                     f"(with 1 viewer: {100 * one:.1f}%), {100 * per:.3f}% per extra viewer; conversions {r['conversions']}; "
                     f"viewers with data {r['readers'].get('with_data')}/{r['viewers'] - 1}, slowest {r['readers'].get('min_fps')} fps, "
                     f"longest stall {r['readers'].get('max_stall_ms')} ms")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--viewers", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--max-capacity", type=int, default=48, help="the capacity sweep stops here")
    ap.add_argument("--no-capacity", action="store_true", help="skip the capacity sweep (the longest part)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 stream, 10 viewers, a few seconds, no sweep")
    ap.add_argument("--json", help="write the raw figures here")
    a = ap.parse_args()
    if a.quick:
        a.streams, a.viewers, a.seconds, a.no_capacity = 1, 10, 4, True
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "interop-gateway", "--example", "h5_bench"],
                   cwd=b.ROOT, check=True)
    tmp = b.tmpdir()
    clip_seconds = 10
    clip = b.make_clip(tmp, seconds=clip_seconds)
    results = [scenario_bare(clip, clip_seconds), scenario_compare(tmp, clip, a.streams, a.seconds),
               scenario_fanout(tmp, clip, a.viewers, a.seconds)]
    if not a.no_capacity:
        results.append(scenario_capacity(tmp, clip, a.seconds, a.max_capacity))
    if a.json:
        b.pathlib.Path(a.json).write_text(json.dumps(results, indent=1))
    print(report(results))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
