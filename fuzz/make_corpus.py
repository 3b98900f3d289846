#!/usr/bin/env python3
"""Regenerates the seed corpus under fuzz/corpus/ from real peers (ffmpeg, nginx-rtmp).

Every seed is a real capture, kept small (the whole corpus stays a few hundred KB):
- rtmp_server / rtmp_client / rtmp_handshake / rtmp_chunk: the bytes ffmpeg and nginx-rtmp
  exchange (publish and play), recorded by a TCP proxy between them;
- flv_file: FLV files written by ffmpeg (x264 baseline/high with B-frames, AAC);
- ts_ingest: MPEG-TS as `ffmpeg -f mpegts` sends it (MPEG-1 + MP2, H.264 + AAC);
- mpeg1_video / mp2_audio: elementary streams; h264_sps / h264_payload / aac_adts: NALs and
  ADTS frames from ffmpeg; h264_avcc / aac_asc: the sequence headers of the FLV files;
- rtp_filter: RTP and RTCP datagrams ffmpeg sends (records of u16 length + datagram);
- udp_sdp / webrtc_sdp: SDPs written by ffmpeg's RTP muxer, and offers from the test suite;
- matrix_yaml / config: the shipped matrix, the fixtures and the README's configuration;
- mp4_read: fragmented MP4 as ffmpeg writes it (trex/tfhd defaults, B-frames, AAC); the
  gateway's own recordings are derived by the target itself (FLV seeds through the segmenter).

Files whose name starts with `regress-` are findings of the fuzzer and are kept.
Usage: python3 fuzz/make_corpus.py   (needs ffmpeg with libx264/libopus, nginx + rtmp module)
"""
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def put(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def clean():
    """Removes the generated seeds, keeping `regress-*` findings."""
    if not CORPUS.exists():
        return
    for d in CORPUS.iterdir():
        for f in d.iterdir():
            if not f.name.startswith("regress-"):
                f.unlink()


def lavfi_av(seconds, size="64x48", rate=10, sample_rate=44100, channels=1):
    layout = "mono" if channels == 1 else "stereo"
    return [
        "-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={sample_rate}",
        "-t", str(seconds), "-ac", str(channels), "-channel_layout", layout,
    ]


def flv_tags(data):
    """(type, body) of each tag of an FLV file."""
    pos = 9 + 4
    while pos + 11 <= len(data):
        kind = data[pos] & 0x1F
        size = int.from_bytes(data[pos + 1:pos + 4], "big")
        yield kind, data[pos + 11:pos + 11 + size]
        pos += 11 + size + 4


def annexb_nals(data):
    parts = data.replace(b"\x00\x00\x00\x01", b"\x00\x00\x01").split(b"\x00\x00\x01")
    return [p for p in parts if p]


def adts_frames(data):
    pos = 0
    while pos + 7 <= len(data):
        length = ((data[pos + 3] & 3) << 11) | (data[pos + 4] << 3) | (data[pos + 5] >> 5)
        if length < 7:
            return
        yield data[pos:pos + length]
        pos += length


def media(tmp):
    # FLV: what RTMP publishers send (tag bodies = RTMP message payloads).
    variants = {
        "x264_baseline_aac44k_mono": ["-c:v", "libx264", "-profile:v", "baseline", "-g", "5"],
        "x264_high_bf2_aac48k_stereo": ["-c:v", "libx264", "-profile:v", "high", "-bf", "2", "-g", "6"],
        "x264_main_176x144": ["-c:v", "libx264", "-profile:v", "main", "-g", "10"],
    }
    flvs = {}
    for name, vargs in variants.items():
        stereo = "stereo" in name
        size = "176x144" if "176x144" in name else "64x48"
        out = tmp / f"{name}.flv"
        ffmpeg(*lavfi_av(0.6, size=size, sample_rate=48000 if stereo else 44100, channels=2 if stereo else 1),
               *vargs, "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "32k", "-f", "flv", str(out))
        flvs[name] = out
        data = out.read_bytes()
        put("flv_file", name + ".flv", data[:24 << 10])
        for kind, body in flv_tags(data):
            if kind == 9 and len(body) > 5 and body[1] == 0:
                put("h264_avcc", name + ".avcc", body[5:])
            if kind == 8 and len(body) > 2 and body[1] == 0:
                put("aac_asc", name + ".asc", body[2:])
            if kind == 18:
                put("amf0", name + ".onmetadata.amf", body)

    # H.264 parameter sets and access units of several profiles (Annex B from ffmpeg).
    for name, vargs in {
        "baseline": ["-profile:v", "baseline", "-pix_fmt", "yuv420p"],
        "main_interlaced": ["-profile:v", "main", "-pix_fmt", "yuv420p", "-flags", "+ildct+ilme", "-x264opts", "tff=1"],
        "high_vui": ["-profile:v", "high", "-pix_fmt", "yuv420p", "-x264opts", "colorprim=bt709:transfer=bt709:colormatrix=bt709:fullrange=on"],
        "high444": ["-profile:v", "high444", "-pix_fmt", "yuv444p"],
        "high422": ["-profile:v", "high422", "-pix_fmt", "yuv422p"],
    }.items():
        out = tmp / f"{name}.h264"
        ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x64:rate=10", "-t", "0.3", "-c:v", "libx264", *vargs,
               "-bsf:v", "h264_mp4toannexb", "-f", "h264", str(out))
        data = out.read_bytes()
        for nal in annexb_nals(data):
            if nal[0] & 0x1F == 7:
                put("h264_sps", f"{name}.sps", nal)
        put("h264_payload", f"{name}.h264", data[:6 << 10])

    # MPEG-TS as H5 publishers send it, and as other publishers might.
    ts = tmp / "jsmpeg.ts"
    ffmpeg(*lavfi_av(0.6, rate=25), "-c:v", "mpeg1video", "-b:v", "64k", "-bf", "0", "-c:a", "mp2", "-b:a", "64k",
           "-f", "mpegts", str(ts))
    put("ts_ingest", "mpeg1_mp2.ts", ts.read_bytes()[:188 * 120])
    ts2 = tmp / "h264_aac.ts"
    ffmpeg(*lavfi_av(0.4), "-c:v", "libx264", "-g", "5", "-c:a", "aac", "-f", "mpegts", str(ts2))
    put("ts_ingest", "h264_aac.ts", ts2.read_bytes()[:188 * 60])
    ts3 = tmp / "mpeg1_bframes_48k.ts"
    ffmpeg(*lavfi_av(0.6, size="96x64", rate=25, sample_rate=48000, channels=2), "-c:v", "mpeg1video", "-b:v", "96k",
           "-bf", "2", "-c:a", "mp2", "-b:a", "96k", "-f", "mpegts", str(ts3))
    put("ts_ingest", "mpeg1_bframes_mp2_48k.ts", ts3.read_bytes()[:188 * 120])

    m1v = tmp / "a.m1v"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=25", "-t", "0.5", "-c:v", "mpeg1video", "-b:v", "64k",
           "-bf", "2", "-f", "mpeg1video", str(m1v))
    put("mpeg1_video", "bframes_64x48.m1v", m1v.read_bytes()[:16 << 10])
    for rate, ch, br in [(44100, 1, "64k"), (48000, 2, "128k"), (32000, 2, "96k")]:
        mp2 = tmp / f"{rate}.mp2"
        ffmpeg("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={rate}", "-t", "0.2", "-ac", str(ch),
               "-c:a", "mp2", "-b:a", br, "-f", "mp2", str(mp2))
        put("mp2_audio", f"{rate}_{ch}ch.mp2", mp2.read_bytes()[:8 << 10])

    # ADTS: AAC as MPEG-TS/RTP carry it, several rates and layouts.
    for rate, ch in [(44100, 2), (48000, 1), (8000, 1), (96000, 2), (48000, 6)]:
        adts = tmp / f"{rate}_{ch}.aac"
        ffmpeg("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={rate}", "-t", "0.1", "-ac", str(ch),
               "-c:a", "aac", "-b:a", "64k", "-f", "adts", str(adts))
        put("aac_adts", f"{rate}_{ch}ch.adts", b"".join(list(adts_frames(adts.read_bytes()))[:4]))
    return flvs


class Proxy:
    """A TCP proxy recording both directions of each connection."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.sessions = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            record = {"c2s": bytearray(), "s2c": bytearray()}
            self.sessions.append(record)
            threading.Thread(target=self.pump, args=(client, server, record["c2s"]), daemon=True).start()
            threading.Thread(target=self.pump, args=(server, client, record["s2c"]), daemon=True).start()

    @staticmethod
    def pump(src, dst, log):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                log.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rtmp(tmp, flv):
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(f"""load_module {RTMP_MODULE};
daemon off; master_process off; error_log {tmp}/error.log info; pid {tmp}/nginx.pid;
events {{ worker_connections 64; }}
rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;
  application live {{ live on; record off; }} }} }}
""")
    nginx = subprocess.Popen(["nginx", "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        proxy = Proxy(port)
        # Publish through the proxy (ffmpeg -> nginx).
        ffmpeg("-re", "-i", str(flv), "-c", "copy", "-f", "flv", f"rtmp://127.0.0.1:{proxy.port}/live/fuzz")
        time.sleep(0.3)
        # Play through the proxy while a publisher loops straight into nginx.
        publisher = subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
                                      "-i", str(flv), "-c", "copy", "-f", "flv", f"rtmp://127.0.0.1:{port}/live/loop"],
                                     stdin=subprocess.DEVNULL)
        time.sleep(1.0)
        ffmpeg("-i", f"rtmp://127.0.0.1:{proxy.port}/live/loop", "-t", "1.5", "-c", "copy", "-f", "null", "-")
        publisher.terminate()
        publisher.wait()
        time.sleep(0.3)
    finally:
        nginx.terminate()
        nginx.wait()
    publish, play = proxy.sessions[0], proxy.sessions[1]
    hs = 1 + 2 * 1536
    put("rtmp_handshake", "ffmpeg_c0c1c2.bin", bytes(publish["c2s"][:hs]))
    put("rtmp_handshake", "nginx_s0s1s2.bin", bytes(publish["s2c"][:hs]))
    put("rtmp_server", "ffmpeg_publish.bin", bytes(publish["c2s"][:24 << 10]))
    put("rtmp_server", "ffmpeg_play.bin", bytes(play["c2s"][:8 << 10]))
    put("rtmp_client", "nginx_publish_replies.bin", bytes(publish["s2c"][:8 << 10]))
    put("rtmp_client", "nginx_play_media.bin", bytes(play["s2c"][:24 << 10]))
    put("rtmp_chunk", "ffmpeg_publish_chunks.bin", bytes(publish["c2s"][hs:hs + (16 << 10)]))
    put("rtmp_chunk", "nginx_play_chunks.bin", bytes(play["s2c"][hs:hs + (16 << 10)]))


def rtp(tmp, flv):
    """RTP and RTCP datagrams from ffmpeg's RTP muxer, and the SDP it writes."""
    cases = {
        "h264": ["-i", str(flv), "-an", "-c:v", "copy"],
        "opus": ["-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "0.3", "-c:a", "libopus"],
        "pcmu": ["-f", "lavfi", "-i", "sine=sample_rate=8000", "-t", "0.3", "-c:a", "pcm_mulaw"],
        "aac": ["-f", "lavfi", "-i", "sine=sample_rate=44100", "-t", "0.3", "-c:a", "aac"],
        "mpeg1": ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=25", "-t", "0.5", "-c:v", "mpeg1video"],
        "mp2": ["-f", "lavfi", "-i", "sine=sample_rate=44100", "-t", "0.3", "-c:a", "mp2"],
        "vp8": ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=25", "-t", "0.5", "-c:v", "libvpx", "-b:v", "200k"],
    }
    for name, args in cases.items():
        rtp_sock, rtcp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), None
        for _ in range(20):
            rtp_sock.bind(("127.0.0.1", 0))
            port = rtp_sock.getsockname()[1]
            if port % 2 == 0:
                rtcp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    rtcp_sock.bind(("127.0.0.1", port + 1))
                    break
                except OSError:
                    pass
            rtp_sock.close()
            rtp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        datagrams = []

        def receive(sock):
            sock.settimeout(1.0)
            try:
                while True:
                    datagrams.append(sock.recv(65536))
            except OSError:
                pass

        threads = [threading.Thread(target=receive, args=(s,)) for s in (rtp_sock, rtcp_sock)]
        for t in threads:
            t.start()
        sdp = tmp / f"{name}.sdp"
        ffmpeg(*args, "-f", "rtp", "-sdp_file", str(sdp), f"rtp://127.0.0.1:{port}?rtcpport={port + 1}&pkt_size=1200")
        for t in threads:
            t.join()
        rtp_sock.close()
        rtcp_sock.close()
        put("rtp_filter", f"{name}.rtp", b"".join(struct.pack(">H", len(d)) + d for d in datagrams[:40]))
        put("udp_sdp", f"ffmpeg_{name}.sdp", sdp.read_bytes())


def text(tmp):
    for f in sorted((ROOT / "fixtures" / "matrices").glob("*.yaml")):
        put("matrix_yaml", f.name, f.read_bytes())
    put("matrix_yaml", "shipped_matrix.yaml", (ROOT / "matrix.yaml").read_bytes())
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```yaml\nhttp:", 1)[1].split("```", 1)[0]
    put("config", "readme.yaml", ("http:" + block).encode())
    auth = readme.split("```yaml\nauth:", 1)[1].split("```", 1)[0]
    put("config", "readme_auth.yaml", ("auth:" + auth).encode())
    put("config", "minimal.yaml", b"hub:\n  grace_seconds: 1\n")
    # Offers and SDPs the test suite uses (Chromium-shaped WHIP offer, GStreamer sender).
    sdp_tests = (ROOT / "src" / "protocols" / "webrtc" / "sdp" / "tests.rs").read_text()
    offer = sdp_tests.split('const CHROMIUM_OFFER: &str = "', 1)[1].split('";', 1)[0].replace("\\r\n", "\r\n")
    put("webrtc_sdp", "chromium_whip_offer.sdp", offer.encode())
    put("webrtc_sdp", "chromium_whep_offer.sdp", offer.replace("a=sendonly", "a=recvonly").encode())
    udp_tests = (ROOT / "src" / "protocols" / "udp" / "sdp_tests.rs").read_text()
    gst = udp_tests.split('const GST_H264_AAC: &str = "', 1)[1].split('";', 1)[0]
    put("udp_sdp", "gstreamer_h264_aac.sdp", gst.encode())

def mp4(tmp):
    # Fragmented MP4 by ffmpeg: another writer's choices of defaults and flags.
    for name, vargs in {
        "ffmpeg_x264_high_bf2_aac48k": ["-c:v", "libx264", "-profile:v", "high", "-bf", "2", "-g", "5"],
        "ffmpeg_x264_baseline_aac44k_mono": ["-c:v", "libx264", "-profile:v", "baseline", "-g", "5"],
    }.items():
        stereo = "48k" in name
        out = tmp / f"{name}.mp4"
        ffmpeg(*lavfi_av(0.6, sample_rate=48000 if stereo else 44100, channels=2 if stereo else 1), *vargs,
               "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "32k",
               "-movflags", "frag_keyframe+empty_moov+default_base_moof", "-f", "mp4", str(out))
        put("mp4_read", name + ".mp4", out.read_bytes()[:48 << 10])


def main():
    clean()
    with tempfile.TemporaryDirectory(prefix="fuzz-corpus-") as d:
        tmp = Path(d)
        flvs = media(tmp)
        mp4(tmp)
        rtmp(tmp, flvs["x264_baseline_aac44k_mono"])
        rtp(tmp, flvs["x264_baseline_aac44k_mono"])
        text(tmp)
    total = sum(f.stat().st_size for f in CORPUS.rglob("*") if f.is_file())
    print(f"corpus: {sum(1 for f in CORPUS.rglob('*') if f.is_file())} files, {total // 1024} KB")


if __name__ == "__main__":
    sys.exit(main())
