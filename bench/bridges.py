"""Cost scenarios of bench/run.py that no other bench script already has: WHIP->WHEP remux,
fan-out by RTMP and by WHEP, RTMP AAC -> WHEP Opus against one ffmpeg and one gst-launch per
bridge, H5 MPEG-1 -> RTMP H.264 against one ffmpeg per bridge, and the codec floors (the same
decode+encode on one thread without IO). Same rules as the others (gwbench): all on
127.0.0.1, every side of a scenario in the same window, CPU = utime+stime of whole process
trees, memory = PSS; viewers that do not decode (bench/avprobe load-whep / load-rtmp) count
the frames each gets, so "real time" is checked per viewer.
"""

import json
import re
import os
import socket
import subprocess
import time

import gwbench as b
import webrtc

TOOL = b.TARGET / "release" / "examples" / "avprobe"
REAL_TIME_FPS = 0.95 * 30
# ffmpeg's equivalent of the gateway's mpeg1->h264 / mp2->aac (pipelines/encode/h264.gst, aac.gst).
FFMPEG_H264 = ["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-b:v", "1500k", "-g", "60",
               "-bf", "0", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k"]


def load(kind, n, warmup, seconds, urls):
    """avprobe load-whep / load-rtmp; returns the process (its last stdout line is the summary)."""
    return b.start([str(TOOL), f"load-{kind}", str(n), str(warmup), str(seconds), *urls],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def summary(proc, timeout):
    out, err = proc.communicate(timeout=timeout)
    lines = [l for l in out.decode().splitlines() if l.startswith("{")]
    got = json.loads(lines[-1]) if lines else {}
    if not got or "min_fps" not in got:
        got = {"error": (err.decode() or out.decode())[-800:]}
    return got


def conversions(http):
    streams = b.api(http, "GET", "/api/v1/streams")["streams"]
    return [[s["key"], c["track"], c["from"], c["to"], c["consumers"]] for s in streams for c in s["conversions"]]


def scenario_whip_whep(tmp, n, seconds):
    """N WHIP publishers (whip_load) -> gateway -> one WHEP viewer each: WebRTC remux."""
    d = tmp / "whipwhep"
    d.mkdir()
    gw, http, _ = b.gateway(d, extra=["--webrtc-ip", "127.0.0.1"])
    time.sleep(1)
    idle = b.measure({"gateway": [gw.pid]}, 2)["gateway"]
    pubs, _ = webrtc.start_publishers(d, http, "p", n, 3 * seconds + 120)
    time.sleep(2)
    ingest = b.measure({"gateway": [gw.pid]}, 3)["gateway"]
    warmup = 6
    viewers = load("whep", n, warmup, seconds, [f"http://{http}/whep/p{k}" for k in range(n)])
    time.sleep(warmup + 0.5)
    m = b.measure({"gateway": [gw.pid], "viewers": [viewers.pid], "publishers": [pubs.pid]}, seconds - 1)
    conv = conversions(http)
    got = summary(viewers, seconds + 60)
    for p in (pubs, gw):
        b.stop(p)
    return {"scenario": "whip->whep", "bridges": n, "idle": idle, "ingest_only": ingest, "measure": m,
            "viewers": got, "conversions": conv}


def scenario_fanout(tmp, clip, kind, counts, seconds):
    """1 RTMP publisher -> V viewers by `kind` (rtmp or whep) for each V in `counts`, one
    gateway: CPU with the publisher alone, then with each V."""
    d = tmp / f"fan-{kind}"
    d.mkdir()
    gw, http, rtmp = b.gateway(d, extra=["--webrtc-ip", "127.0.0.1"])
    b.source(clip, f"rtmp://{rtmp}/live/fan")
    time.sleep(3)
    idle = b.measure({"gateway": [gw.pid]}, 3)["gateway"]
    url = f"rtmp://{rtmp}/live/fan" if kind == "rtmp" else f"http://{http}/whep/fan"
    steps = []
    for v in counts:
        warmup = 6 if kind == "rtmp" else 8
        viewers = load(kind, v, warmup, seconds, [url])
        time.sleep(warmup + 0.5)
        m = b.measure({"gateway": [gw.pid], "viewers": [viewers.pid]}, seconds - 1)
        conv = conversions(http)
        steps.append({"viewers": v, "measure": m, "readers": summary(viewers, seconds + 60), "conversions": conv})
    b.stop(gw)
    return {"scenario": f"fanout-{kind}", "idle": idle, "steps": steps}


class UdpDrain:
    """Bound UDP ports nobody reads: RTP sent there is dropped by the kernel without ICMP errors."""

    def __init__(self):
        self.socks = []

    def port_pair(self):
        for _ in range(100):
            s1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s1.bind(("127.0.0.1", 0))
            p = s1.getsockname()[1]
            s2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s2.bind(("127.0.0.1", p + 2))
            except OSError:
                s1.close()
                s2.close()
                continue
            for s in (s1, s2):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            self.socks += [s1, s2]
            return p
        raise RuntimeError("no UDP port pair")

    def close(self):
        for s in self.socks:
            s.close()


def scenario_aac_opus(tmp, clip, n, seconds):
    """N RTMP AAC -> WebRTC Opus bridges (video copied), three ways in one window:
    gateway (N RTMP sources, one WHEP viewer each), one ffmpeg per bridge and one gst-launch
    per bridge (RTMP from nginx in; Opus and H.264 out as plain RTP to bound, unread UDP ports:
    the same conversion, without ICE/DTLS/SRTP, which a command line cannot do)."""
    d = tmp / "aacopus"
    d.mkdir()
    ng, port = b.nginx(d, apps=("src",))
    gw, http, rtmp = b.gateway(d, extra=["--webrtc-ip", "127.0.0.1"])
    drain = UdpDrain()
    for k in range(n):
        b.source(clip, f"rtmp://{rtmp}/live/a{k}")
        b.source(clip, f"rtmp://127.0.0.1:{port}/src/f{k}")
        b.source(clip, f"rtmp://127.0.0.1:{port}/src/s{k}")
    time.sleep(3)
    ffmpegs, gsts = [], []
    for k in range(n):
        p = drain.port_pair()
        ffmpegs.append(b.start(["ffmpeg", "-v", "error", "-i", f"rtmp://127.0.0.1:{port}/src/f{k}",
                                "-map", "0:v", "-c:v", "copy", "-f", "rtp", f"rtp://127.0.0.1:{p}",
                                "-map", "0:a", "-c:a", "libopus", "-b:a", "64k", "-ar", "48000", "-ac", "2",
                                "-f", "rtp", f"rtp://127.0.0.1:{p + 2}"]))
        q = drain.port_pair()
        gsts.append(b.start(["gst-launch-1.0", "-q", "rtmp2src", f"location=rtmp://127.0.0.1:{port}/src/s{k}", "!",
                             "flvdemux", "name=d",
                             "d.video", "!", "queue", "!", "h264parse", "!", "rtph264pay", "config-interval=-1", "pt=96", "!",
                             "udpsink", "host=127.0.0.1", f"port={q}", "sync=false",
                             "d.audio", "!", "queue", "!", "aacparse", "!", "avdec_aac", "!", "audioconvert", "!", "audioresample", "!",
                             "audio/x-raw,rate=48000,channels=2", "!", "opusenc", "bitrate=64000", "frame-size=20", "!",
                             "rtpopuspay", "pt=111", "!", "udpsink", "host=127.0.0.1", f"port={q + 2}", "sync=false"]))
    warmup = 8
    viewers = load("whep", n, warmup, seconds, [f"http://{http}/whep/a{k}" for k in range(n)])
    time.sleep(warmup + 0.5)
    m = b.measure({"gateway": [gw.pid], "ffmpeg": [p.pid for p in ffmpegs], "gst": [p.pid for p in gsts]}, seconds - 1)
    conv = conversions(http)
    got = summary(viewers, seconds + 60)
    alive = {"ffmpeg": sum(p.poll() is None for p in ffmpegs), "gst": sum(p.poll() is None for p in gsts)}
    for p in ffmpegs + gsts + [gw, ng]:
        b.stop(p)
    drain.close()
    return {"scenario": "aac->opus", "bridges": n, "measure": m, "viewers": got, "conversions": conv, "alive": alive}


def make_clip_no_bframes(dirpath, seconds=10):
    """Like gwbench.make_clip (640x360 30 fps H.264 + AAC), without B-frames: what a WebRTC
    viewer can take as is (with B-frames the gateway re-encodes the video toward WebRTC)."""
    out = dirpath / "clip-nob.flv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", str(seconds),
                    "-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "60", "-b:v", "1000k", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-b:a", "64k", str(out)], check=True, timeout=120)
    return out


def make_mpeg1_clip(dirpath, seconds=10):
    """MPEG-1 (no B-frames, GOP 30) + MP2 in MPEG-TS, what an H5 publisher sends."""
    out = dirpath / "clip-mpeg1.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", str(seconds),
                    "-c:v", "mpeg1video", "-bf", "0", "-g", "30", "-b:v", "1000k", "-c:a", "mp2", "-b:a", "128k",
                    "-f", "mpegts", str(out)], check=True, timeout=120)
    return out


def mpeg1_side(d, ts_clip, side, n):
    """Starts one side's N H5 MPEG-1+MP2 -> RTMP H.264+AAC bridges and their sources:
    gateway (ffmpeg POSTing the TS to /h5/mK) or one ffmpeg per bridge (TS over UDP in, x264
    veryfast zerolatency + AAC to nginx-rtmp). Returns (pids to measure, processes to stop,
    the RTMP URLs to watch, the gateway's HTTP address or None)."""
    if side == "gateway":
        gw, http, rtmp = b.gateway(d)
        srcs = [b.start(["ffmpeg", "-v", "error", "-re", "-stream_loop", "-1", "-i", str(ts_clip), "-c", "copy",
                         "-f", "mpegts", f"http://{http}/h5/m{k}"]) for k in range(n)]
        return [gw.pid], srcs + [gw], [f"rtmp://{rtmp}/live/m{k}" for k in range(n)], http
    ng, port = b.nginx(d, apps=("dst",))
    bridges, srcs = [], []
    for k in range(n):
        p = b.free_port()
        bridges.append(b.start(["ffmpeg", "-v", "error", "-f", "mpegts", "-i", f"udp://127.0.0.1:{p}?fifo_size=100000",
                                *FFMPEG_H264, "-f", "flv", f"rtmp://127.0.0.1:{port}/dst/f{k}"]))
        srcs.append(b.start(["ffmpeg", "-v", "error", "-re", "-stream_loop", "-1", "-i", str(ts_clip), "-c", "copy",
                             "-f", "mpegts", f"udp://127.0.0.1:{p}?pkt_size=1316"]))
    return [p.pid for p in bridges], srcs + bridges + [ng], [f"rtmp://127.0.0.1:{port}/dst/f{k}" for k in range(n)], None


def scenario_mpeg1_h264(tmp, ts_clip, n, seconds):
    """N H5 MPEG-1+MP2 -> RTMP H.264+AAC bridges on each side (`mpeg1_side`), one RTMP viewer
    each, both sides at the same time; viewers count frames."""
    d = tmp / "mpeg1h264"
    d.mkdir()
    gpids, gstop, gurls, http = mpeg1_side(d, ts_clip, "gateway", n)
    fpids, fstop, furls, _ = mpeg1_side(d, ts_clip, "ffmpeg", n)
    time.sleep(4)
    warmup = 8
    gv = load("rtmp", n, warmup, seconds, gurls)
    fv = load("rtmp", n, warmup, seconds, furls)
    time.sleep(warmup + 0.5)
    m = b.measure({"gateway": gpids, "ffmpeg": fpids}, seconds - 1)
    conv = conversions(http)
    got = {"gateway": summary(gv, seconds + 60), "ffmpeg": summary(fv, seconds + 60)}
    for p in gstop + fstop:
        b.stop(p)
    return {"scenario": "mpeg1->h264", "bridges": n, "measure": m, "viewers": got, "conversions": conv}


MPEG1_CAPACITY_STEPS = [4, 8, 10, 12, 14, 16, 18, 20, 22, 24, 28, 32]


def scenario_capacity_mpeg1(tmp, ts_clip, seconds, start):
    """Real-time capacity of MPEG-1 -> H.264 bridges, each side alone, the sides' steps in turn
    (`gwbench.sweep_sides`)."""
    def alone(side, n):
        d = tmp / f"cap-mpeg1-{side}-{n}"
        d.mkdir()
        pids, stop, urls, _ = mpeg1_side(d, ts_clip, side, n)
        time.sleep(4)
        warmup = 8
        viewers = load("rtmp", n, warmup, seconds, urls)
        time.sleep(warmup + 0.5)
        cores = b.measure({side: pids}, seconds - 1)[side]["cpu_cores"]
        got = summary(viewers, seconds + 60)
        for p in stop:
            b.stop(p)
        slowest = got.get("min_fps", 0.0)
        return slowest >= 0.95 * 30 and got.get("with_video") == n, cores, slowest

    return {"scenario": "capacity-mpeg1", "result": b.sweep_sides(alone, MPEG1_CAPACITY_STEPS, start)}


def floor(description, media_seconds, runs=2):
    """Cores per real-time stream of a whole pipeline run flat out on one thread (no queues);
    the least of `runs` runs (the one least disturbed by the rest of the machine)."""
    cpu = []
    for _ in range(runs):
        p = subprocess.run([str(TOOL), "floor", description], capture_output=True, timeout=900)
        if p.returncode != 0:
            raise RuntimeError(f"floor failed: {p.stderr.decode()[-1500:]}")
        cpu.append(json.loads(p.stdout.decode().strip().splitlines()[-1])["cpu_s"])
    return {"cpu_s": min(cpu), "runs_cpu_s": cpu, "media_s": media_seconds, "cores": min(cpu) / media_seconds,
            "pipeline": description}


def ffmpeg_floor(args, media_seconds, runs=2):
    """Cores per real-time stream of one ffmpeg run flat out with one thread: the least of
    `runs` runs, after one that warms the page cache."""
    cmd = ["ffmpeg", "-v", "error", "-threads", "1", *args]
    subprocess.run(cmd, check=True, timeout=600)
    cpu = []
    for _ in range(runs):
        t0 = os.times()
        subprocess.run(cmd, check=True, timeout=600)
        t1 = os.times()
        cpu.append((t1.children_user - t0.children_user) + (t1.children_system - t0.children_system))
    return {"cpu_s": min(cpu), "runs_cpu_s": cpu, "media_s": media_seconds, "cores": min(cpu) / media_seconds,
            "command": " ".join(cmd)}


def one_thread(pipeline):
    """The gateway's pipeline with its decoders and x264 on one thread."""
    for element, prop in (("avdec_h264", "max-threads"), ("avdec_mpegvideo", "max-threads"), ("x264enc", "threads")):
        pipeline = re.sub(rf"\b{element}( {prop}=\d+)?", f"{element} {prop}=1", pipeline)
    return pipeline


def plan(http, src, dst):
    return b.api(http, "GET", f"/api/v1/matrix/plan?from={src}&to={dst}")["pipelines"]


def make_aac_file(dirpath, seconds):
    out = dirpath / f"aac-{seconds}s.flv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
                    "-t", str(seconds), "-c:a", "aac", "-b:a", "64k", "-f", "flv", str(out)], check=True, timeout=120)
    return out


def scenario_floors(tmp, clip720, ts_clip, clip_seconds, audio_seconds):
    """The codec floors of the conversions bench/h5.py and bench/webrtc.py do not measure:
    H.264 720p -> MPEG-1 640 wide (+ AAC -> MP2), AAC -> Opus, MPEG-1 -> H.264 (+ MP2 -> AAC):
    the gateway's own pipelines (from its plan API) on one thread, and ffmpeg with -threads 1."""
    d = tmp / "floors"
    d.mkdir()
    gw, http, _ = b.gateway(d)
    h5, web, back = plan(http, "rtmp", "h5"), plan(http, "rtmp", "webrtc"), plan(http, "h5", "rtmp")
    b.stop(gw)
    aac = make_aac_file(d, audio_seconds)
    out = {
        "h264_720->mpeg1": {
            "ours": floor(f"filesrc location={clip720} ! flvdemux name=d d.video ! {one_thread(h5['video'])} ! fakesink async=false "
                          f"d.audio ! {h5['audio']} ! fakesink async=false", clip_seconds),
            "ffmpeg": ffmpeg_floor(["-i", str(clip720), "-threads", "1", "-vf", "scale=640:-2", "-c:v", "mpeg1video", "-bf", "0",
                                    "-g", "30", "-b:v", "1000k", "-c:a", "mp2", "-b:a", "128k", "-ar", "44100", "-f", "null", "-"],
                                   clip_seconds)},
        "aac->opus": {
            "ours": floor(f"filesrc location={aac} ! flvdemux ! {web['audio']} ! fakesink async=false", audio_seconds),
            "ffmpeg": ffmpeg_floor(["-i", str(aac), "-c:a", "libopus", "-b:a", "64k", "-ar", "48000", "-ac", "2",
                                    "-f", "null", "-"], audio_seconds)},
        "mpeg1->h264": {
            "ours": floor(f"filesrc location={ts_clip} ! tsdemux name=d d. ! {one_thread(back['video'])} ! fakesink async=false "
                          f"d. ! {back['audio']} ! fakesink async=false", clip_seconds),
            "ffmpeg": ffmpeg_floor(["-i", str(ts_clip), "-threads", "1", *FFMPEG_H264, "-f", "null", "-"], clip_seconds)},
    }
    return {"scenario": "floors", "floors": out}
