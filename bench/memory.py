#!/usr/bin/env python3
"""Memory that does not come back (issue 10): does the gateway's RSS grow round after round of
short sessions, and is it a leak (live bytes grow) or allocator retention (live bytes come back,
RSS does not)?

Each round, against the release binary on 127.0.0.1:
  rtmp   200 short RTMP publish sessions (ffmpeg -c copy of a 1.5 s clip, 10 at a time);
  idle   2,000 TCP connections opened to the RTMP and HTTP ports, held a moment, closed
         (500 at a time);
  whip   100 WHIP offers never answered by ICE (each times out in the gateway).
After each round, once settled: RSS, and from /metrics the allocators' live bytes against what
they hold (jemalloc allocated/resident when it is the Rust allocator; glibc malloc in_use/held
from mallinfo2), pipelines and tokio tasks alive. RSS that plateaus while live bytes come back
is retention; live bytes that climb every round are a leak.

  --variant glibc|arena2|jemalloc-preload   glibc malloc as is, MALLOC_ARENA_MAX=2, or
            libjemalloc.so.2 preloaded (every allocation of the process, GStreamer's too)
  --binary  the gateway binary (default: the release build)

usage: bench/memory.py [--rounds N] [--kinds rtmp,idle,whip] [--variant V] [--json FILE]
"""

import argparse
import concurrent.futures
import json
import os
import pathlib
import re
import resource
import socket
import subprocess
import sys
import time
import urllib.request

import gwbench as b

JEMALLOC_SO = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"

# A WHIP offer (H.264 + Opus, sendonly, bundled) from a peer that will never do ICE.
OFFER = """v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
a=msid-semantic: WMS
m=video 9 UDP/TLS/RTP/SAVPF 102
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:{ufrag}
a=ice-pwd:abcdefghijklmnopqrstuvwx
a=fingerprint:sha-256 {fp}
a=setup:actpass
a=mid:0
a=sendonly
a=rtcp-mux
a=rtpmap:102 H264/90000
a=rtcp-fb:102 nack
a=rtcp-fb:102 nack pli
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f
a=ssrc:1111 cname:soak
m=audio 9 UDP/TLS/RTP/SAVPF 111
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:{ufrag}
a=ice-pwd:abcdefghijklmnopqrstuvwx
a=fingerprint:sha-256 {fp}
a=setup:actpass
a=mid:1
a=sendonly
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10;useinbandfec=1
a=ssrc:2222 cname:soak
"""
FINGERPRINT = ":".join(f"{(i * 37) % 256:02X}" for i in range(32))


def metrics(http):
    """/metrics as {name{labels}: value}."""
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


def proc_status(pid):
    """RSS (KiB), threads and open fds of a process."""
    text = open(f"/proc/{pid}/status").read()
    rss = int(re.search(r"^VmRSS:\s+(\d+)", text, re.M).group(1))
    threads = int(re.search(r"^Threads:\s+(\d+)", text, re.M).group(1))
    # File-backed pages are the mapped code of GStreamer's plugins and libraries (loaded on
    # first use, never unloaded); anonymous pages are the heaps and stacks.
    anon = int(re.search(r"^RssAnon:\s+(\d+)", text, re.M).group(1))
    file = int(re.search(r"^RssFile:\s+(\d+)", text, re.M).group(1))
    return {"rss_kib": rss, "rss_anon_kib": anon, "rss_file_kib": file, "threads": threads, "fds": len(os.listdir(f"/proc/{pid}/fd")), "fd_kinds": fd_kinds(pid),
            "clock_threads": thread_names(pid).get("GstSystemClock", 0)}


def thread_names(pid):
    names = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            n = open(f"/proc/{pid}/task/{t}/comm").read().strip()
        except OSError:
            continue
        names[n] = names.get(n, 0) + 1
    return names


def fd_kinds(pid):
    """Open fds by kind (socket, pipe, anon_inode:[eventfd], a file...)."""
    kinds = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kind = re.sub(r":\[\d+\]$", "", target)
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def sample(pid, http):
    m = metrics(http)
    s = proc_status(pid)
    s.update({
        "pipelines": m.get("interop_gst_pipelines_alive"),
        "tasks": m.get("interop_tokio_tasks_alive"),
        "jemalloc_allocated": m.get('interop_jemalloc_bytes{kind="allocated"}'),
        "jemalloc_resident": m.get('interop_jemalloc_bytes{kind="resident"}'),
        "glibc_in_use": m.get('interop_glibc_malloc_bytes{kind="in_use"}'),
        "glibc_held": m.get('interop_glibc_malloc_bytes{kind="held"}'),
    })
    return s


def round_rtmp(clip, rtmp, n=200, parallel=10):
    def one(k):
        subprocess.run(["ffmpeg", "-v", "error", "-re", "-i", str(clip), "-t", "1.5", "-c", "copy", "-f", "flv",
                        f"rtmp://{rtmp}/live/mem{k % parallel}"], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, range(n)))


def round_idle(http, rtmp, n=2000, batch=500):
    ports = [int(http.rsplit(":", 1)[1]), int(rtmp.rsplit(":", 1)[1])]
    for start in range(0, n, batch):
        socks = []
        for k in range(start, min(n, start + batch)):
            try:
                socks.append(socket.create_connection(("127.0.0.1", ports[k % 2]), 2))
            except OSError:
                pass
        time.sleep(0.5)
        for s in socks:
            s.close()


def round_whip(http, n=100, tag=0):
    def one(k):
        body = OFFER.format(ufrag=f"u{tag}x{k}", fp=FINGERPRINT).replace("\n", "\r\n").encode()
        req = urllib.request.Request(f"http://{http}/whip/memwhip{tag}x{k}", method="POST", data=body,
                                     headers={"content-type": "application/sdp"})
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        return list(pool.map(one, range(n)))


def run(tmp, clip, rounds, kinds, variant, binary=None, settle=20.0, log=print):
    env = {}
    if variant == "arena2":
        env["MALLOC_ARENA_MAX"] = "2"
    elif variant == "jemalloc-preload":
        env["LD_PRELOAD"] = JEMALLOC_SO
    os.environ.update(env)
    try:
        gw, http, rtmp = b.gateway(tmp, binary=binary, extra=["--webrtc-ip", "127.0.0.1"])
    finally:
        for k in env:
            os.environ.pop(k, None)
    time.sleep(3)
    series = [{"round": 0, "kind": "idle-start", **sample(gw.pid, http)}]
    log(json.dumps(series[-1]))
    statuses = {}
    for r in range(1, rounds + 1):
        for kind in kinds:
            t0 = time.time()
            if kind == "rtmp":
                round_rtmp(clip, rtmp)
            elif kind == "idle":
                round_idle(http, rtmp)
            elif kind == "whip":
                for s in round_whip(http, tag=r):
                    statuses[str(s)] = statuses.get(str(s), 0) + 1
            # Pending WHIP sessions time out (15 s); closed connections are reaped.
            time.sleep(settle)
            series.append({"round": r, "kind": kind, "seconds": round(time.time() - t0, 1), **sample(gw.pid, http)})
            log(json.dumps(series[-1]))
    b.stop(gw)
    return {"variant": variant, "kinds": kinds, "rounds": rounds, "series": series, "whip_statuses": statuses}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--kinds", default="rtmp,idle,whip")
    ap.add_argument("--variant", default="glibc", choices=["glibc", "arena2", "jemalloc-preload"])
    ap.add_argument("--binary")
    ap.add_argument("--settle", type=float, default=20.0)
    ap.add_argument("--json")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if not a.binary:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "interop-gateway"], cwd=b.ROOT, check=True)
    tmp = b.tmpdir()
    clip = b.make_clip(tmp, seconds=2)
    result = run(tmp, clip, a.rounds, a.kinds.split(","), a.variant, binary=a.binary, settle=a.settle,
                 log=lambda s: print(s, flush=True))
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
