#!/usr/bin/env python3
"""WHIP -> CDN bridges (Opus -> AAC, video copied): the gateway against one ffmpeg per stream and
against the bare codec cost, in one run.

For each N (default 1, 4, 8), all on 127.0.0.1, at the same time:
  gateway  N WHIP publishers (bench/whip_load.rs: N webrtcbins in one process, H.264 640x360
           30 fps GOP 2 s + Opus 48 kHz stereo 64 kbit/s) -> gateway /whip/wK, and a push per
           stream (POST /api/v1/streams/wK/pushes) to nginx-rtmp /live/wK.
  ffmpeg   N x `ffmpeg -re -c:a libopus -i opus.ogg -re -i clip.flv -c:v copy -c:a aac -f flv
           rtmp://nginx/live/fK`: the same Opus -> AAC conversion (RTMP cannot carry Opus, so the
           Opus comes from a file made by the same GStreamer encoder the publishers use) with the
           video copied from an H.264 file.
Before the pushes, the gateway is measured with the publishers only (WebRTC ingest alone).
The gateway's conversion share is the CPU of its conversion threads (GStreamer names a
conversion's streaming thread after its appsrc pad: `src:src`; with WHIP -> CDN only, no other
thread has that name).

Bare codec cost, once per run, on a long Opus file, no IO, one thread, as fast as it goes:
  ours     `whip_load codec-cost`: filesrc ! oggdemux ! opusparse ! <the gateway's own conversion
           pipeline, read from its API> ! fakesink (opusdec ... igaacenc).
  ffmpeg   `ffmpeg -threads 1 -c:a libopus -i long.ogg -c:a aac -f null -`.
  paced    ours again with the Opus frames entering at real time (`identity sync=true`): the
           same work with a live conversion's one wake-up per 20 ms frame.
All as CPU seconds per second of audio, i.e. the cores one real-time stream needs.

CPU: utime+stime from /proc (whole process trees, and per thread for the conversion share);
memory: PSS, and anonymous memory (PSS of shared libraries shifts with whatever else maps them:
the gateway's GStreamer pages are shared with the load generator's). Target (issue 3): the gateway's conversion costs at most 1.2x the bare codec cost.

usage: bench/webrtc.py [--n 1,4,8] [--seconds S] [--quick] [--json FILE]
"""

import argparse
import json
import os
import subprocess
import sys
import time

import gwbench as b

TARGET_RATIO = 1.2
AUDIO_BITRATE = "128k"  # what the gateway's igaacenc uses for opus->aac (checked against its API)


def examples():
    return b.TARGET / "release" / "examples"


def make_opus(dirpath, seconds):
    """Stereo 48 kHz Opus in Ogg from the same source and encoder settings as whip_load."""
    out = dirpath / f"sine-{seconds}s.ogg"
    subprocess.run(["gst-launch-1.0", "-q", "audiotestsrc", "wave=sine", f"num-buffers={seconds * 50}", "samplesperbuffer=960",
                    "!", "audio/x-raw,rate=48000,channels=2", "!", "opusenc", "bitrate=64000", "frame-size=20",
                    "!", "oggmux", "!", "filesink", f"location={out}"], check=True, timeout=120)
    return out


def thread_cpu(pid, comm):
    """CPU seconds of the threads of `pid` whose name is `comm`, by thread id."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
            if name != comm:
                continue
            f = open(f"/proc/{pid}/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[tid] = (int(f[11]) + int(f[12])) / b.TICK
    return out


def anon_kib(pids):
    """Anonymous memory (heap, stacks: what a process allocates itself, not shared library
    pages whose PSS share moves with whatever else maps them) of the process trees."""
    total = 0
    for p in b.tree(pids):
        try:
            text = open(f"/proc/{p}/smaps_rollup").read()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Anonymous:"):
                total += int(line.split()[1])
    return total


def conversions(http, keys):
    """(frames_in total, count of opus->aac conversions, pipelines) over the streams `keys`."""
    frames, count, pipelines = 0, 0, set()
    for k in keys:
        s = b.api(http, "GET", f"/api/v1/streams/{k}")
        for c in s.get("conversions", []):
            if (c["track"], c["from"], c["to"]) == ("audio", "opus", "aac"):
                count += 1
                frames += c.get("frames_in", 0)
                pipelines.add(c.get("pipeline", ""))
    return frames, count, pipelines


def wait_pushes_live(http, keys, timeout=30):
    end = time.time() + timeout
    live = 0
    while time.time() < end:
        states = [p["state"] for k in keys for p in b.api(http, "GET", f"/api/v1/streams/{k}/pushes")["pushes"]]
        live = states.count("live")
        if live == len(keys):
            break
        time.sleep(0.5)
    return live


def start_publishers(dirpath, http, prefix, n, seconds):
    """whip_load with N publishers; returns (process, its ready line)."""
    log = open(dirpath / "whip_load.log", "w+")
    p = b.start([str(examples() / "whip_load"), "publish", f"http://{http}", prefix, str(n), str(seconds)],
                stdout=subprocess.PIPE, stderr=log)
    line = p.stdout.readline().decode()
    log.seek(0)
    ready = json.loads(line) if line.startswith("{") else {"error": line or log.read()[-2000:]}
    if ready.get("connected") != n:
        raise RuntimeError(f"whip_load: {ready}")
    return p, ready


def scenario(tmp, clip, opus, n, seconds, settle=4.0):
    d = tmp / f"n{n}"
    d.mkdir()
    ng, port = b.nginx(d, apps=("live",))
    gw, http, rtmp = b.gateway(d, extra=["--webrtc-ip", "127.0.0.1"])
    time.sleep(1)
    idle = b.measure({"gateway": [gw.pid]}, 2)["gateway"]
    idle["anon_kib"] = anon_kib([gw.pid])

    keys = [f"w{k}" for k in range(n)]
    pubs, ready = start_publishers(d, http, "w", n, 3 * seconds + 120)
    time.sleep(settle / 2)
    ingest = b.measure({"gateway": [gw.pid]}, max(2.0, seconds / 2))["gateway"]

    for k in keys:
        b.api(http, "POST", f"/api/v1/streams/{k}/pushes", {"url": f"rtmp://127.0.0.1:{port}/live/{k}"})
    bridges = [b.start(["ffmpeg", "-v", "error", "-re", "-stream_loop", "-1", "-c:a", "libopus", "-i", str(opus),
                        "-re", "-stream_loop", "-1", "-i", str(clip), "-map", "0:a", "-map", "1:v",
                        "-c:v", "copy", "-c:a", "aac", "-b:a", AUDIO_BITRATE, "-f", "flv",
                        f"rtmp://127.0.0.1:{port}/live/f{k}"]) for k in range(n)]
    live = wait_pushes_live(http, keys)
    time.sleep(settle)

    conv0, tconv0 = conversions(http, keys), thread_cpu(gw.pid, "src:src")
    m = b.measure({"gateway": [gw.pid], "ffmpeg": [p.pid for p in bridges], "publishers": [pubs.pid]}, seconds)
    conv1, tconv1 = conversions(http, keys), thread_cpu(gw.pid, "src:src")
    conv_cpu = sum(v - tconv0.get(t, 0.0) for t, v in tconv1.items()) / seconds
    m["gateway"]["anon_kib"] = anon_kib([gw.pid])
    m["ffmpeg"]["anon_kib"] = anon_kib([p.pid for p in bridges])

    check = {"gateway": b.probe(f"rtmp://127.0.0.1:{port}/live/w0"), "ffmpeg": b.probe(f"rtmp://127.0.0.1:{port}/live/f0")}
    alive = {"ffmpeg": sum(p.poll() is None for p in bridges), "publishers": pubs.poll() is None}
    for p in bridges + [pubs, gw, ng]:
        b.stop(p)
    return {"n": n, "idle": idle, "ingest_only": ingest, "measure": m, "conversion_cores": conv_cpu,
            "conversion_threads": len(tconv1), "conversions": conv1[1], "pipelines": sorted(conv1[2]),
            "audio_frames_in_per_s": (conv1[0] - conv0[0]) / seconds / max(n, 1),
            "pushes_live": live, "connect_ms": ready.get("connect_ms"), "read_back": check, "alive": alive}


def run_output(cmd):
    """stdout of a command run to completion (bounded); fails with its stderr."""
    p = subprocess.run(cmd, capture_output=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {p.stderr.decode()[-2000:]}")
    return p.stdout.decode()


def codec_cost(opus, pipeline, paced=False):
    out = run_output([str(examples() / "whip_load"), "codec-cost", str(opus), pipeline] + (["paced"] if paced else []))
    r = json.loads(out.strip().splitlines()[-1])
    return {"cpu_s": r["cpu_s"], "audio_s": r["audio_s"], "cores": r["cpu_s"] / max(r["audio_s"], 1e-9), "pipeline": pipeline}


def bare_codec(long_opus, audio_seconds, paced_opus, pipeline):
    """Cores per real-time stream of decode Opus + encode AAC: ours (flat out, and paced at real
    time on a shorter file) and ffmpeg's."""
    ours = codec_cost(long_opus, pipeline)
    paced = codec_cost(paced_opus, pipeline, paced=True)
    t0 = os.times()
    subprocess.run(["ffmpeg", "-v", "error", "-threads", "1", "-c:a", "libopus", "-i", str(long_opus),
                    "-c:a", "aac", "-b:a", AUDIO_BITRATE, "-f", "null", "-"], check=True, timeout=600)
    t1 = os.times()
    ffmpeg_cpu = (t1.children_user - t0.children_user) + (t1.children_system - t0.children_system)
    return {"ours": ours, "ours_paced": paced,
            "ffmpeg": {"cpu_s": ffmpeg_cpu, "audio_s": audio_seconds, "cores": ffmpeg_cpu / audio_seconds}}


def ratio(a, c):
    return c / a if a > 0 else float("inf")


def report(results, bare):
    ours, ff = bare["ours"]["cores"], bare["ffmpeg"]["cores"]
    lines = [
        f"Bare codec cost (decode Opus + encode AAC {AUDIO_BITRATE}, 48 kHz stereo, one thread, no IO): "
        f"ours (opusdec ... igaacenc) {100 * ours:.3f}% of a core per real-time stream; "
        f"ffmpeg (libopus + aac) {100 * ff:.3f}%. Ours paced at real time (Opus frames entering at 50/s, "
        f"{bare['ours_paced']['audio_s']:.0f} s): {100 * bare['ours_paced']['cores']:.3f}% "
        f"({ratio(ours, bare['ours_paced']['cores']):.2f}× flat out): what live operation alone costs.",
        "",
        "| N | gateway CPU/bridge (% core) | WebRTC ingest alone/stream | conversion thread/bridge | conversion share | "
        "conversion ÷ bare (ours) | conversion ÷ paced bare | bridge ÷ bare (ours) | gateway memory/bridge above idle: PSS / anon (MiB) | ffmpeg CPU/stream | "
        "ffmpeg ÷ bare (ffmpeg) | ffmpeg memory/stream: PSS / anon (MiB) | Opus frames in/s per conversion | pushes live | read back gw / ffmpeg |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        n, g, f = r["n"], r["measure"]["gateway"], r["measure"]["ffmpeg"]
        bridge = g["cpu_cores"] / n
        ingest = max(r["ingest_only"]["cpu_cores"] - r["idle"]["cpu_cores"], 0) / n
        conv = r["conversion_cores"] / n
        above = (g["pss_kib"] - r["idle"]["pss_kib"]) / 1024 / n
        anon = (g["anon_kib"] - r["idle"]["anon_kib"]) / 1024 / n
        lines.append(
            f"| {n} | {100 * bridge:.2f} | {100 * ingest:.2f} | {100 * conv:.3f} | {100 * ratio(g['cpu_cores'], r['conversion_cores']):.0f}% | "
            f"{ratio(ours, conv):.2f}× | {ratio(bare['ours_paced']['cores'], conv):.2f}× | {ratio(ours, bridge):.1f}× | {above:.2f} / {anon:.2f} | {100 * f['cpu_cores'] / n:.2f} | "
            f"{ratio(ff, f['cpu_cores'] / n):.1f}× | {f['pss_kib'] / 1024 / n:.1f} / {f['anon_kib'] / 1024 / n:.1f} | {r['audio_frames_in_per_s']:.1f} | "
            f"{r['pushes_live']}/{n} | {','.join(r['read_back']['gateway']) or '-'} / {','.join(r['read_back']['ffmpeg']) or '-'} |")
    odd = [f"N={r['n']}: {r['conversion_threads']} conversion threads, {r['conversions']} opus->aac conversions"
           for r in results if r["conversion_threads"] != r["n"] or r["conversions"] != r["n"]]
    if odd:
        lines += ["", "WARNING (the conversion share assumes one `src:src` thread per bridge): " + "; ".join(odd)]
    worst = max((ratio(ours, r["conversion_cores"] / r["n"]) for r in results), default=float("inf"))
    lines += ["", f"Conversion ÷ bare codec (ours), worst N: {worst:.2f}× (target ≤ {TARGET_RATIO}×: "
              f"{'met' if worst <= TARGET_RATIO else 'NOT met'}). Gateway idle: {100 * results[0]['idle']['cpu_cores']:.2f}% CPU, "
              f"{results[0]['idle']['pss_kib'] / 1024:.0f} MiB PSS. Load generator (one shared encoder, N webrtcbins): "
              + ", ".join(f"N={r['n']} {100 * r['measure']['publishers']['cpu_cores']:.0f}%" for r in results) + " of a core."]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="1,4,8", help="bridge counts, comma-separated")
    ap.add_argument("--seconds", type=float, default=20, help="measurement window per N")
    ap.add_argument("--bare-seconds", type=int, default=120, help="audio length for the bare codec cost")
    ap.add_argument("--quick", action="store_true", help="a smoke run in seconds: N=1, short windows, no target check")
    ap.add_argument("--json", help="write the raw figures here")
    a = ap.parse_args()
    counts = [int(x) for x in a.n.split(",") if x.strip()]
    if a.quick:
        counts, a.seconds, a.bare_seconds = [1], 3, 10
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "interop-gateway", "--example", "whip_load"],
                   cwd=b.ROOT, check=True)
    tmp = b.tmpdir()
    clip = b.make_clip(tmp, seconds=4 if a.quick else 10)
    opus = make_opus(tmp, 10)
    results = [scenario(tmp, clip, opus, n, a.seconds, settle=1.5 if a.quick else 4.0) for n in counts]
    pipelines = {p for r in results for p in r["pipelines"]}
    if len(pipelines) != 1:
        raise RuntimeError(f"expected one opus->aac pipeline in the gateway, saw {pipelines}")
    long_opus = make_opus(tmp, a.bare_seconds)
    paced_opus = opus if a.quick else make_opus(tmp, 30)
    bare = bare_codec(long_opus, a.bare_seconds, paced_opus, pipelines.pop())
    if a.json:
        b.pathlib.Path(a.json).write_text(json.dumps({"bridges": results, "bare": bare}, indent=1))
    print(report(results, bare))
    print(json.dumps({"bridges": results, "bare": bare}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
