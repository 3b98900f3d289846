#!/usr/bin/env python3
"""Passthrough (remux) bridges and fan-out, the gateway against one ffmpeg per bridge, in one run.

Scenarios (all on 127.0.0.1, the sources loop an H.264+AAC clip with -c copy):
  push    N streams RTMP in -> RTMP push to an nginx-rtmp origin.
          gateway: sources -> gateway /live/gK, a push per stream to nginx /dst/gK
          ffmpeg:  sources -> nginx /src/fK, `ffmpeg -i rtmp://nginx/src/fK -c copy -f flv rtmp://nginx/dst/fK`
  httpflv N streams RTMP in -> one HTTP-FLV viewer each.
          gateway: sources -> gateway /live/hK, viewer GET /live/hK.flv
          ffmpeg:  sources -> nginx /src/hK, `ffmpeg -i rtmp://nginx/src/hK -c copy -f flv -listen 1 http://...`
  fanout  1 stream -> V HTTP-FLV viewers of the gateway.
Both sides of a scenario run at the same time, so machine noise hits both alike.
CPU: utime+stime of the whole process trees over the window; memory: PSS.

usage: bench/remux.py [--bridges N] [--viewers V] [--seconds S] [--quick] [--json FILE]
"""

import argparse
import json
import subprocess
import sys
import time

import gwbench as b


def readers(url, n, seconds):
    exe = b.TARGET / "release" / "examples" / "flv_readers"
    return b.start([str(exe), url, str(n), str(seconds)], stdout=subprocess.PIPE)


def gst_remux(src_url, sink):
    """One gst-launch-1.0 per bridge, the GStreamer equivalent of `ffmpeg -c copy`: demux the
    FLV, parse, mux again (`sink` is the element description after flvmux)."""
    return b.start(["gst-launch-1.0", "-q", "rtmp2src", f"location={src_url}", "!", "flvdemux", "name=d",
                    "flvmux", "name=m", "streamable=true", "!", *sink.split(),
                    "d.video", "!", "queue", "!", "h264parse", "!", "m.video",
                    "d.audio", "!", "queue", "!", "aacparse", "!", "m.audio"])


def scenario_push(tmp, clip, n, seconds, gst=False):
    """`gst`: a third side, one gst-launch-1.0 per bridge (sources -> nginx /src/sK -> gst ->
    nginx /dst/sK), measured in the same window."""
    (tmp / "push").mkdir()
    ng, port = b.nginx(tmp / "push", apps=("src", "dst"))
    gw, http, rtmp = b.gateway(tmp / "push")
    time.sleep(1)
    idle = b.measure({"gateway": [gw.pid]}, 2)["gateway"]
    for k in range(n):
        b.source(clip, f"rtmp://{rtmp}/live/g{k}")
        b.api(http, "POST", f"/api/v1/streams/g{k}/pushes", {"url": f"rtmp://127.0.0.1:{port}/dst/g{k}"})
        b.source(clip, f"rtmp://127.0.0.1:{port}/src/f{k}")
        if gst:
            b.source(clip, f"rtmp://127.0.0.1:{port}/src/s{k}")
    time.sleep(2)
    bridges = [b.start(["ffmpeg", "-v", "error", "-i", f"rtmp://127.0.0.1:{port}/src/f{k}", "-c", "copy",
                        "-f", "flv", f"rtmp://127.0.0.1:{port}/dst/f{k}"]) for k in range(n)]
    gsts = [gst_remux(f"rtmp://127.0.0.1:{port}/src/s{k}", f"rtmp2sink location=rtmp://127.0.0.1:{port}/dst/s{k}")
            for k in range(n if gst else 0)]
    time.sleep(4)
    groups = {"gateway": [gw.pid], "ffmpeg": [p.pid for p in bridges]}
    if gst:
        groups["gst"] = [p.pid for p in gsts]
    m = b.measure(groups, seconds)
    check = {"gateway": b.probe(f"rtmp://127.0.0.1:{port}/dst/g0"), "ffmpeg": b.probe(f"rtmp://127.0.0.1:{port}/dst/f0")}
    if gst:
        check["gst"] = b.probe(f"rtmp://127.0.0.1:{port}/dst/s0")
    pushes = b.api(http, "GET", "/api/v1/pushes")["pushes"]
    live = sum(1 for p in pushes if p["state"] == "live")
    for p in bridges + gsts + [gw, ng]:
        b.stop(p)
    return {"scenario": "push", "bridges": n, "idle": idle, "measure": m, "read_back": check, "gateway_pushes_live": live}


def scenario_httpflv(tmp, clip, n, seconds, gst=False):
    """`gst`: a third side, one gst-launch-1.0 per bridge serving the FLV with tcpserversink
    (plain TCP: GStreamer has no HTTP server element; the reader's GET is ignored)."""
    (tmp / "flv").mkdir()
    ng, port = b.nginx(tmp / "flv", apps=("src",))
    gw, http, rtmp = b.gateway(tmp / "flv")
    time.sleep(1)
    idle = b.measure({"gateway": [gw.pid]}, 2)["gateway"]
    ports = []
    for k in range(n):
        b.source(clip, f"rtmp://{rtmp}/live/h{k}")
        b.source(clip, f"rtmp://127.0.0.1:{port}/src/h{k}")
        if gst:
            b.source(clip, f"rtmp://127.0.0.1:{port}/src/t{k}")
    time.sleep(2)
    gst_ports = [b.free_port() for _ in range(n if gst else 0)]
    gsts = [gst_remux(f"rtmp://127.0.0.1:{port}/src/t{k}", f"tcpserversink host=127.0.0.1 port={p} sync=false")
            for k, p in enumerate(gst_ports)]
    bridges = []
    for k in range(n):
        p = b.free_port()
        ports.append(p)
        bridges.append(b.start(["ffmpeg", "-v", "error", "-i", f"rtmp://127.0.0.1:{port}/src/h{k}", "-c", "copy",
                                "-f", "flv", "-listen", "1", f"http://127.0.0.1:{p}/h{k}.flv"]))
    window = seconds + 12

    viewers = [readers(f"http://{http}/live/h{k}.flv", 1, window) for k in range(n)]
    viewers += [readers(f"http://127.0.0.1:{p}/h{k}.flv", 1, window) for k, p in enumerate(ports)]
    viewers += [readers(f"http://127.0.0.1:{p}/t{k}.flv", 1, window) for k, p in enumerate(gst_ports)]
    # ffmpeg probes its input (up to 5 s) before it listens; the readers retry until it does.
    time.sleep(8)
    groups = {"gateway": [gw.pid], "ffmpeg": [p.pid for p in bridges]}
    if gst:
        groups["gst"] = [p.pid for p in gsts]
    m = b.measure(groups, seconds)
    got = [json.loads(v.communicate(timeout=window + 10)[0] or b"{}") for v in viewers]
    for p in bridges + gsts + [gw, ng]:
        b.stop(p)
    with_data = {"gateway": sum(g.get("with_data", 0) for g in got[:n]),
                 "ffmpeg": sum(g.get("with_data", 0) for g in got[n:2 * n])}
    if gst:
        with_data["gst"] = sum(g.get("with_data", 0) for g in got[2 * n:])
    return {"scenario": "httpflv", "bridges": n, "idle": idle, "measure": m, "viewers_with_data": with_data}


def scenario_fanout(tmp, clip, viewers, seconds):
    (tmp / "fan").mkdir()
    gw, http, rtmp = b.gateway(tmp / "fan")
    b.source(clip, f"rtmp://{rtmp}/live/fan")
    time.sleep(2)
    idle = b.measure({"gateway": [gw.pid]}, 2)["gateway"]
    r = readers(f"http://{http}/live/fan.flv", viewers, seconds + 6)
    time.sleep(4)
    m = b.measure({"gateway": [gw.pid]}, seconds)["gateway"]
    got = json.loads(r.communicate(timeout=seconds + 20)[0] or b"{}")
    b.stop(gw)
    return {"scenario": "fanout", "viewers": viewers, "idle": idle, "measure": m, "readers": got}


def ratio(a, c):
    return c / a if a > 0 else float("inf")


def report(results):
    lines = ["| scenario | N | gateway CPU/bridge (% core) | ffmpeg CPU/bridge | CPU ratio ffmpeg÷gateway | gateway PSS/bridge (MiB) | gateway PSS/bridge above idle | ffmpeg PSS/bridge | PSS ratio (total) | PSS ratio (above idle) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r["scenario"] in ("push", "httpflv"):
            n, g, f = r["bridges"], r["measure"]["gateway"], r["measure"]["ffmpeg"]
            above = max(g["pss_kib"] - r["idle"]["pss_kib"], 1)
            lines.append(f"| {r['scenario']} | {n} | {100 * g['cpu_cores'] / n:.2f} | {100 * f['cpu_cores'] / n:.2f} | "
                         f"{ratio(g['cpu_cores'], f['cpu_cores']):.1f}× | {g['pss_kib'] / 1024 / n:.1f} | {above / 1024 / n:.2f} | "
                         f"{f['pss_kib'] / 1024 / n:.1f} | {ratio(g['pss_kib'], f['pss_kib']):.1f}× | {ratio(above, f['pss_kib']):.1f}× |")
    for r in results:
        if r["scenario"] == "fanout":
            lines.append("")
            lines.append(f"fan-out: 1 stream -> {r['viewers']} HTTP-FLV viewers: gateway {100 * r['measure']['cpu_cores']:.1f}% of one core "
                         f"(idle with the publisher only: {100 * r['idle']['cpu_cores']:.1f}%), PSS {r['measure']['pss_kib'] / 1024:.0f} MiB; "
                         f"viewers with data {r['readers'].get('with_data')}/{r['viewers']}, longest stall {r['readers'].get('max_stall_ms')} ms")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bridges", type=int, default=10)
    ap.add_argument("--viewers", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--quick", action="store_true", help="a smoke run: 2 bridges, 20 viewers, a few seconds")
    ap.add_argument("--json", help="write the raw figures here")
    a = ap.parse_args()
    if a.quick:
        a.bridges, a.viewers, a.seconds = 2, 20, 3
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "interop-gateway", "--example", "flv_readers"],
                   cwd=b.ROOT, check=True)
    tmp = b.tmpdir()
    clip = b.make_clip(tmp)
    results = [scenario_push(tmp, clip, a.bridges, a.seconds),
               scenario_httpflv(tmp, clip, a.bridges, a.seconds),
               scenario_fanout(tmp, clip, a.viewers, a.seconds)]
    if a.json:
        b.pathlib.Path(a.json).write_text(json.dumps(results, indent=1))
    print(report(results))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
