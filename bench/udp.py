#!/usr/bin/env python3
"""RTP in -> RTMP push out with Opus->AAC, N streams at once: the gateway against one ffmpeg per
stream, in one run (all on 127.0.0.1).

Every stream starts as an ffmpeg RTP sender looping a pre-made H.264 + Opus clip with -c copy
(video to port P, audio to P+2, its SDP written to a file):
  gateway: the SDP is POSTed to /api/v1/streams/gK/udp-ingest, and a push sends gK to the
           nginx-rtmp origin (/dst/gK): H.264 copied, Opus -> AAC (the udp->cdn `auto` cell).
  ffmpeg:  `ffmpeg -protocol_whitelist file,udp,rtp -i fK.sdp -c:v copy -c:a aac -f flv
           rtmp://nginx/dst/fK` per stream.
Both sides run at the same time, so machine noise hits both alike. The senders and nginx are
not measured. CPU: utime+stime of the process trees over the window; memory: PSS.

With --ingest (step udp_ingest of bench/run.py): ingest only, no consumer. The same sender
stream (H.264 1 Mbit/s + Opus, -c copy) goes to the gateway's udp-ingest and, per stream, to
`ffmpeg -protocol_whitelist file,udp,rtp -i fK.sdp -c copy -f null -` (ffmpeg's RTP demuxer
and nothing else); both measured over the same window. `--binary` names another gateway
build (e.g. a copy of the build before a change) for a before/after run.

With --avsync: A/V sync through the UDP ingest. avprobe's flash+beep source (bench/avprobe, as
bench/avsync.py uses) publishes to the gateway and serves its FLV on TCP; ffmpeg turns that into
RTP (H.264 copied, AAC -> Opus, with RTCP sender reports) into udp-ingest; avprobe reads both
the source and the UDP stream back over RTMP and pairs every beep with its flash (offset =
beep PTS - flash PTS). The source's own offset is the reference.

usage: bench/udp.py [--streams N] [--seconds S] [--quick] [--json FILE] [--ingest|--avsync] [--binary PATH]
"""

import argparse
import json
import pathlib
import subprocess
import sys
import time
import urllib.request

import gwbench as b


AUDIO = {"opus": ["-c:a", "libopus", "-b:a", "64k", "-ac", "2"], "aac": ["-c:a", "aac", "-b:a", "128k", "-ac", "2"]}


def make_clip(dirpath, seconds=10, audio="opus"):
    """H.264 (no B-frames, 2 s GOP) + Opus (or AAC with audio="aac") 48 kHz stereo in Matroska."""
    out = dirpath / f"clip-h264-{audio}.mkv"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
         "-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "60", "-b:v", "1000k", "-pix_fmt", "yuv420p",
         *AUDIO[audio], str(out)],
        check=True, timeout=120)
    return out


def free_udp_block(n=4):
    """`n` consecutive free UDP ports on 127.0.0.1, the first even."""
    import socket
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            first = s.getsockname()[1] & ~1
        socks = []
        try:
            for p in range(first, first + n):
                t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(t)
                t.bind(("127.0.0.1", p))
            return first
        except OSError:
            continue
        finally:
            for t in socks:
                t.close()
    raise RuntimeError("no free UDP port block")


def sender(clip, port, sdp_path):
    """ffmpeg looping the clip as RTP (copy), writing its SDP once it runs."""
    return b.start(["ffmpeg", "-v", "error", "-re", "-stream_loop", "-1", "-i", str(clip),
                    "-map", "0:v", "-c", "copy", "-f", "rtp", f"rtp://127.0.0.1:{port}",
                    "-map", "0:a", "-c", "copy", "-f", "rtp", f"rtp://127.0.0.1:{port + 2}",
                    "-sdp_file", str(sdp_path)])


def wait_sdp(path, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if path.exists() and "m=audio" in path.read_text():
            return path.read_text()
        time.sleep(0.1)
    raise RuntimeError(f"no SDP at {path}")


def post_sdp(http, key, sdp):
    req = urllib.request.Request(f"http://{http}/api/v1/streams/{key}/udp-ingest", method="POST",
                                 data=sdp.encode(), headers={"content-type": "application/sdp"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def run(tmp, clip, n, seconds, bridge_audio=("-c:a", "aac", "-b:a", "128k")):
    """`bridge_audio`: the ffmpeg bridges' audio options (("-c:a", "copy") for an AAC clip:
    nothing converts on either side)."""
    ng, port = b.nginx(tmp, apps=("dst",))
    gw, http, _rtmp = b.gateway(tmp)
    time.sleep(1)
    idle = b.measure({"gateway": [gw.pid]}, 2)["gateway"]
    senders, bridges = [], []
    for k in range(n):
        # Gateway side: sender -> udp-ingest -> push to nginx.
        p = free_udp_block()
        sdp_path = tmp / f"g{k}.sdp"
        senders.append(sender(clip, p, sdp_path))
        post_sdp(http, f"g{k}", wait_sdp(sdp_path))
        b.api(http, "POST", f"/api/v1/streams/g{k}/pushes", {"url": f"rtmp://127.0.0.1:{port}/dst/g{k}"})
        # ffmpeg side: sender -> ffmpeg reading the SDP -> nginx.
        q = free_udp_block()
        sdp_path = tmp / f"f{k}.sdp"
        senders.append(sender(clip, q, sdp_path))
        wait_sdp(sdp_path)
        bridges.append(b.start(["ffmpeg", "-v", "error", "-protocol_whitelist", "file,udp,rtp", "-i", str(sdp_path),
                                "-c:v", "copy", *bridge_audio, "-f", "flv",
                                f"rtmp://127.0.0.1:{port}/dst/f{k}"]))
    time.sleep(8)
    m = b.measure({"gateway": [gw.pid], "ffmpeg": [p.pid for p in bridges]}, seconds)
    check = {"gateway": b.probe(f"rtmp://127.0.0.1:{port}/dst/g0"), "ffmpeg": b.probe(f"rtmp://127.0.0.1:{port}/dst/f0")}
    pushes = b.api(http, "GET", "/api/v1/pushes")["pushes"]
    live = sum(1 for p in pushes if p["state"] == "live")
    streams = b.api(http, "GET", "/api/v1/streams")["streams"]
    conversions = sorted({(c["track"], c["from"], c["to"], c["reason"]) for s in streams for c in s["conversions"]})
    bridges_alive = sum(1 for p in bridges if p.poll() is None)
    for p in bridges + senders + [gw, ng]:
        b.stop(p)
    return {"streams": n, "seconds": seconds, "idle": idle, "measure": m, "read_back": check,
            "gateway_pushes_live": live, "ffmpeg_bridges_alive": bridges_alive,
            "gateway_conversions": [list(c) for c in conversions]}


def ingest_frames(http, locations):
    """Frames each gateway ingest received so far (GET on its location)."""
    out = {}
    for key, loc in locations.items():
        try:
            out[key] = b.api(http, "GET", loc).get("frames", 0)
        except Exception:
            out[key] = None
    return out


def run_ingest(tmp, clip, n, seconds, binary=None, settle=4):
    """Ingest only: N senders into the gateway's udp-ingest (no consumer) and N senders into
    one `ffmpeg -i fK.sdp -c copy -f null -` each, measured over the same window."""
    gw, http, _rtmp = b.gateway(tmp, binary=binary)
    time.sleep(1)
    # Long enough for the clock ticks of an idle gateway (/proc counts in 10 ms).
    idle = b.measure({"gateway": [gw.pid]}, 6)["gateway"]
    senders, readers, locations = [], [], {}
    for k in range(n):
        p = free_udp_block()
        sdp_path = tmp / f"g{k}.sdp"
        senders.append(sender(clip, p, sdp_path))
        locations[f"g{k}"] = post_sdp(http, f"g{k}", wait_sdp(sdp_path))["location"]
        q = free_udp_block()
        sdp_path = tmp / f"f{k}.sdp"
        senders.append(sender(clip, q, sdp_path))
        wait_sdp(sdp_path)
        readers.append(b.start(["ffmpeg", "-v", "error", "-nostdin", "-protocol_whitelist", "file,udp,rtp",
                                "-i", str(sdp_path), "-c", "copy", "-f", "null", "-"]))
    time.sleep(settle)
    before = ingest_frames(http, locations)
    m = b.measure({"gateway": [gw.pid], "ffmpeg": [p.pid for p in readers]}, seconds)
    after = ingest_frames(http, locations)
    streams = b.api(http, "GET", "/api/v1/streams")["streams"]
    frames_per_s = {k: round((after[k] - before[k]) / seconds, 1) if after[k] is not None and before[k] is not None else None
                    for k in after}
    readers_alive = sum(1 for p in readers if p.poll() is None)
    for p in readers + senders + [gw]:
        b.stop(p)
    g, f = m["gateway"], m["ffmpeg"]
    return {"streams": n, "seconds": seconds, "idle": idle, "measure": m,
            "gateway_live": sum(1 for s in streams if s.get("publisher")), "gateway_frames_per_s": frames_per_s,
            "ffmpeg_alive": readers_alive,
            "ratio_gateway_over_ffmpeg": g["cpu_cores"] / f["cpu_cores"] if f["cpu_cores"] > 0 else None,
            "ratio_above_idle": (g["cpu_cores"] - idle["cpu_cores"]) / f["cpu_cores"] if f["cpu_cores"] > 0 else None}


def report_ingest(r):
    n, g, f, idle = r["streams"], r["measure"]["gateway"], r["measure"]["ffmpeg"], r["idle"]
    rg = r["ratio_gateway_over_ffmpeg"]
    ra = r["ratio_above_idle"]
    return "\n".join([
        "| N | gateway CPU/stream (% core) | above idle/stream | ffmpeg RTP demuxer CPU/stream | gateway ÷ ffmpeg (total / above idle) |",
        "|---|---|---|---|---|",
        f"| {n} | {100 * g['cpu_cores'] / n:.2f} | {100 * (g['cpu_cores'] - idle['cpu_cores']) / n:.2f} "
        f"| {100 * f['cpu_cores'] / n:.2f} | {rg if rg is None else f'{rg:.2f}'}× / {ra if ra is None else f'{ra:.2f}'}× |",
        "",
        f"gateway idle {100 * idle['cpu_cores']:.2f}% of a core; live {r['gateway_live']}/{n}, frames/s {r['gateway_frames_per_s']}; "
        f"ffmpeg readers alive {r['ffmpeg_alive']}/{n}",
    ])


def run_avsync(tmp, seconds, binary=None):
    """beep - flash offsets through the UDP ingest and of the source itself (see the docstring)."""
    import avsync
    import latency
    gw, http, rtmp = b.gateway(tmp, binary=binary)
    direct = b.free_port()
    src = latency.start_source("rtmp", f"rtmp://{rtmp}/live/src", seconds + 40, ["--serve", str(direct)])
    procs = [src, gw]
    try:
        latency.wait_live(http, "src")
        p = free_udp_block()
        sdp = tmp / "avsync.sdp"
        procs.insert(0, b.start(["ffmpeg", "-v", "error", "-f", "flv", "-i", f"tcp://127.0.0.1:{direct}",
                                 "-map", "0:v", "-c:v", "copy", "-f", "rtp", f"rtp://127.0.0.1:{p}",
                                 "-map", "0:a", "-c:a", "libopus", "-ar", "48000", "-f", "rtp", f"rtp://127.0.0.1:{p + 2}",
                                 "-sdp_file", str(sdp)]))
        post_sdp(http, "u", wait_sdp(sdp))
        latency.wait_live(http, "u")
        readers = [latency.Receiver("udp", f"rtmp://{rtmp}/live/u", seconds),
                   latency.Receiver("source", f"rtmp://{rtmp}/live/src", seconds)]
        out = {}
        for r in [x.wait(seconds + 30) for x in readers]:
            series = [round(o[1], 1) for o in avsync.offsets(r["events"])]
            out[r["name"]] = {"pairs": len(series), "series_ms": series,
                              "median_ms": sorted(series)[len(series) // 2] if series else None}
        return out
    finally:
        for x in procs:
            b.stop(x)


def ratio(a, c):
    return c / a if a > 0 else float("inf")


def report(r):
    n, g, f = r["streams"], r["measure"]["gateway"], r["measure"]["ffmpeg"]
    above = max(g["pss_kib"] - r["idle"]["pss_kib"], 1)
    lines = [
        "| N | gateway CPU/stream (% core) | ffmpeg CPU/stream | CPU ratio ffmpeg÷gateway | gateway PSS/stream (MiB) "
        "| gateway PSS/stream above idle | ffmpeg PSS/stream | PSS ratio (total) | PSS ratio (above idle) |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {n} | {100 * g['cpu_cores'] / n:.2f} | {100 * f['cpu_cores'] / n:.2f} | {ratio(g['cpu_cores'], f['cpu_cores']):.2f}× "
        f"| {g['pss_kib'] / 1024 / n:.1f} | {above / 1024 / n:.2f} | {f['pss_kib'] / 1024 / n:.1f} "
        f"| {ratio(g['pss_kib'], f['pss_kib']):.2f}× | {ratio(above, f['pss_kib']):.2f}× |",
        "",
        f"gateway idle: {100 * r['idle']['cpu_cores']:.1f}% of a core, PSS {r['idle']['pss_kib'] / 1024:.0f} MiB; "
        f"pushes live {r['gateway_pushes_live']}/{n}, ffmpeg bridges alive {r['ffmpeg_bridges_alive']}/{n}; "
        f"read back from nginx: gateway {r['read_back']['gateway']}, ffmpeg {r['read_back']['ffmpeg']}; "
        f"gateway conversions: {r['gateway_conversions']}",
    ]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--quick", action="store_true", help="a smoke run: 2 streams, a few seconds")
    ap.add_argument("--json", help="write the raw figures here")
    ap.add_argument("--ingest", action="store_true", help="ingest only, against ffmpeg's RTP demuxer (-f null)")
    ap.add_argument("--avsync", action="store_true", help="A/V sync through the UDP ingest (flash/beep source)")
    ap.add_argument("--binary", help="with --ingest/--avsync: the gateway binary to measure (default: the release build)")
    a = ap.parse_args()
    if a.quick:
        a.streams, a.seconds = (1 if a.ingest else 2), 4
    if not a.binary:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "interop-gateway"], cwd=b.ROOT, check=True)
    tmp = b.tmpdir()
    clip = make_clip(tmp)
    if a.avsync:
        result = run_avsync(tmp, int(a.seconds), binary=a.binary)
        print(json.dumps(result))
        return 0
    if a.ingest:
        result = run_ingest(tmp, clip, a.streams, a.seconds, binary=a.binary)
    else:
        result = run(tmp, clip, a.streams, a.seconds)
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps(result, indent=1))
    print(report_ingest(result) if a.ingest else report(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
