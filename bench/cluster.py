#!/usr/bin/env python3
"""Cluster mode (issue 12): one origin and two edges on one Redis, all on 127.0.0.1.

Measured, in one run, every side in the same window (gwbench rules: CPU = utime+stime of the
process tree, over the same seconds):
  viewer cost   CPU per HTTP-FLV viewer on an edge (its stream relayed from the origin)
                against a viewer on the origin itself.
  relay cost    what one relay link costs the origin (out) and the edge (in), against the
                alternative a user would run: one `ffmpeg -i rtmp://origin -c copy -f flv
                rtmp://edge` per stream and edge (its own CPU plus the RTMP viewer and
                publisher it makes on the two gateways).
  failover      the time from the publisher reconnecting (to another node) until each
                viewer's next picture, on the origin's old viewers and on both edges; both
                after the publisher left cleanly and after the owner was killed (kill -9).

usage: bench/cluster.py [--quick] [--viewers N] [--seconds S] [--rounds R] [--out FILE]
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

import gwbench as b

READERS = b.TARGET / "release" / "examples" / "flv_readers"


def redis_server(dirpath):
    port = b.free_port()
    p = b.start(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                 "--dir", str(dirpath)])
    b.wait_port(port)
    return p, f"redis://127.0.0.1:{port}"


def node(dirpath, redis, name):
    d = dirpath / name
    d.mkdir()
    conf = d / "config.yaml"
    conf.write_text(f'cluster:\n  redis: "{redis}"\n  node: "{name}"\n  relay: "127.0.0.1:0"\n  secret: "bench"\n'
                    f"hub:\n  reconnect_grace_seconds: 15\n")
    p, http, rtmp = b.gateway(d, extra=("--config", str(conf)))
    return {"name": name, "proc": p, "http": http, "rtmp": rtmp}


def readers(n, url, seconds):
    return b.start([str(READERS), url, str(n), str(seconds)], stdout=subprocess.PIPE)


class TagClock(threading.Thread):
    """An HTTP-FLV viewer that notes when each video tag arrives."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url, self.times, self.error = url, [], None

    def run(self):
        host, path = self.url.removeprefix("http://").split("/", 1)
        h, p = host.split(":")
        try:
            s = socket.create_connection((h, int(p)), 10)
            s.sendall(f"GET /{path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += s.recv(65536)
            buf = buf.split(b"\r\n\r\n", 1)[1]
            # Chunked transfer is undone by skipping chunk headers: parse FLV from the raw stream.
            raw = bytearray()
            s.settimeout(30)
            pos = 13  # FLV header + first PreviousTagSize
            while True:
                data = buf or s.recv(65536)
                buf = b""
                if not data:
                    return
                raw += data
                body = dechunk(raw)
                while len(body) >= pos + 11:
                    size = int.from_bytes(body[pos + 1:pos + 4], "big")
                    if len(body) < pos + 11 + size + 4:
                        break
                    if body[pos] == 9:
                        self.times.append(time.time())
                    pos += 11 + size + 4
        except OSError as e:
            self.error = str(e)

    def first_after(self, t):
        return next((x for x in self.times if x > t), None)


def dechunk(raw):
    out, i = bytearray(), 0
    while True:
        j = raw.find(b"\r\n", i)
        if j < 0:
            return out
        n = int(raw[i:j] or b"0", 16)
        if len(raw) < j + 2 + n + 2:
            return out
        out += raw[j + 2:j + 2 + n]
        i = j + 2 + n + 2


def cost(nodes, seconds):
    return b.measure({n["name"]: [n["proc"].pid] for n in nodes}, seconds)


def viewer_and_relay_costs(clip, origin, edge, n, seconds):
    key = "costs"
    src = b.source(clip, f"rtmp://{origin['rtmp']}/live/{key}")
    time.sleep(4)
    idle = cost([origin, edge], seconds)
    # One viewer on the edge opens the relay.
    one = readers(1, f"http://{edge['http']}/live/{key}.flv", seconds * 4 + 30)
    time.sleep(6)
    relay = cost([origin, edge], seconds)
    many = readers(n, f"http://{edge['http']}/live/{key}.flv", seconds + 10)
    time.sleep(4)
    on_edge = cost([origin, edge], seconds)
    b.stop(many)
    local = readers(n, f"http://{origin['http']}/live/{key}.flv", seconds + 10)
    time.sleep(4)
    on_origin = cost([origin, edge], seconds)
    b.stop(local)
    b.stop(one)
    time.sleep(7)  # the relay goes a grace period after its last viewer
    # The alternative: one ffmpeg copying the stream from the origin to the edge.
    ff = b.start(["ffmpeg", "-v", "error", "-i", f"rtmp://{origin['rtmp']}/live/{key}", "-c", "copy", "-f", "flv",
                  f"rtmp://{edge['rtmp']}/live/{key}-ff"])
    time.sleep(6)
    groups = {"origin": [origin["proc"].pid], "edge": [edge["proc"].pid], "ffmpeg": [ff.pid]}
    ffmpeg = b.measure(groups, seconds)
    b.stop(ff)
    b.stop(src)
    c = lambda m, k: m[k]["cpu_cores"]
    o, e = origin["name"], edge["name"]
    out = {
        "viewers": n,
        "idle_cores": {o: c(idle, o), e: c(idle, e)},
        "relay_out_cores": c(relay, o) - c(idle, o),
        "relay_in_cores_incl_one_viewer": c(relay, e) - c(idle, e),
        "per_viewer_on_edge_cores": (c(on_edge, e) - c(relay, e)) / n,
        "per_viewer_on_origin_cores": (c(on_origin, o) - c(relay, o)) / n,
        "origin_while_edge_serves_n_cores": c(on_edge, o) - c(idle, o),
        "ffmpeg_relay_cores": {"ffmpeg": c(ffmpeg, "ffmpeg"), "origin": c(ffmpeg, "origin") - c(idle, o),
                               "edge": c(ffmpeg, "edge") - c(idle, e)},
    }
    ours = out["relay_out_cores"] + out["relay_in_cores_incl_one_viewer"] - out["per_viewer_on_edge_cores"]
    theirs = sum(out["ffmpeg_relay_cores"].values())
    out["relay_total_cores"] = ours
    out["ffmpeg_relay_total_cores"] = theirs
    out["relay_vs_ffmpeg"] = ours / theirs if theirs > 0 else None
    out["edge_vs_origin_per_viewer"] = (out["per_viewer_on_edge_cores"] / out["per_viewer_on_origin_cores"]
                                        if out["per_viewer_on_origin_cores"] > 0 else None)
    return out


def failover(clip, nodes, rounds, kill):
    """Publisher on one node, a viewer on every node; the publisher moves to the next node."""
    results = []
    key = "moving"
    at = 0
    src = b.source(clip, f"rtmp://{nodes[at]['rtmp']}/live/{key}")
    time.sleep(4)
    clocks = [TagClock(f"http://{n['http']}/live/{key}.flv") for n in nodes]
    for c in clocks:
        c.start()
    time.sleep(5)
    for r in range(rounds):
        b.stop(src)
        time.sleep(1.0)
        nxt = (at + 1) % len(nodes)
        t0 = time.time()
        src = b.source(clip, f"rtmp://{nodes[nxt]['rtmp']}/live/{key}")
        time.sleep(8)
        waits = {n["name"]: (round(c.first_after(t0) - t0, 3) if c.first_after(t0) else None)
                 for n, c in zip(nodes, clocks)}
        results.append({"from": nodes[at]["name"], "to": nodes[nxt]["name"], "viewer_back_after_s": waits})
        at = nxt
    b.stop(src)
    out = {"clean": results}
    if kill:
        # The owner dies: its viewers go with it; the others continue once the publisher is back.
        src = b.source(clip, f"rtmp://{nodes[0]['rtmp']}/live/{key}-k")
        time.sleep(4)
        kclocks = [TagClock(f"http://{n['http']}/live/{key}-k.flv") for n in nodes[1:]]
        for c in kclocks:
            c.start()
        time.sleep(5)
        os.killpg(nodes[0]["proc"].pid, signal.SIGKILL)
        b.stop(src)
        t0 = time.time()
        src = b.source(clip, f"rtmp://{nodes[1]['rtmp']}/live/{key}-k")
        time.sleep(12)
        out["owner_killed"] = {n["name"]: (round(c.first_after(t0) - t0, 3) if c.first_after(t0) else None)
                               for n, c in zip(nodes[1:], kclocks)}
        b.stop(src)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--viewers", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.quick:
        args.viewers, args.seconds, args.rounds = 4, 4, 2
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "interop-gateway", "--example", "flv_readers"],
                   cwd=b.ROOT, check=True)
    d = b.tmpdir()
    clip = b.make_clip(d)
    _, redis = redis_server(d)
    nodes = [node(d, redis, n) for n in ("origin", "edge1", "edge2")]
    result = {"costs": viewer_and_relay_costs(clip, nodes[0], nodes[1], args.viewers, args.seconds)}
    result["failover"] = failover(clip, nodes, args.rounds, kill=not args.quick)
    clean = [v for r in result["failover"]["clean"] for v in r["viewer_back_after_s"].values()]
    result["failover_summary"] = {
        "viewers_back": sum(v is not None for v in clean), "viewers": len(clean),
        "median_s": statistics.median([v for v in clean if v is not None]) if any(v is not None for v in clean) else None,
        "max_s": max((v for v in clean if v is not None), default=None),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        open(args.out, "w").write(text + "\n")
    if args.quick and result["failover_summary"]["viewers_back"] != len(clean):
        sys.exit("cluster smoke: a viewer did not come back after the publisher moved")


if __name__ == "__main__":
    main()
