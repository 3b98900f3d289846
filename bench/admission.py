#!/usr/bin/env python3
"""What admission costs per connection: HTTP-FLV viewers connect one after another to a live
stream, under `play: [open]` (the baseline), `[signed]` (an HMAC-SHA256 check), `[webhook]`
without a cache (one POST to a local webhook per connection) and `[webhook]` with
`webhook_cache_seconds` (one POST, then cached answers). Four gateways run side by side, each
with its own publisher (ffmpeg looping a clip, -c copy), so machine noise hits them alike.

Per connection: the time from connecting to the first FLV bytes (median and p90), and the
gateway's CPU (utime+stime of its process tree over the run, divided by the connections).
Reported against `open` as differences and ratios. The webhook is a Python server on
127.0.0.1 answering 204 at once, so its cost is the gateway's side plus one loopback round trip.

usage: bench/admission.py [--connections N] [--quick] [--json FILE]
"""

import argparse
import http.server
import json
import socket
import statistics
import sys
import threading
import time

import gwbench as b

SECRET = "bench-secret-0123456789abcdef"


class Hook(http.server.BaseHTTPRequestHandler):
    calls = 0

    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        Hook.calls += 1
        self.send_response(204)
        self.end_headers()


def webhook():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/admit"


def configs(hook_url):
    common = f'auth:\n  secret: "{SECRET}"\n  publish: [open]\n'
    return {
        "open": common + "  play: [open]\n",
        "signed": common + "  play: [signed]\n",
        "webhook": common + f'  play: [webhook]\n  webhook: "{hook_url}"\n',
        "webhook_cached": common + f'  play: [webhook]\n  webhook: "{hook_url}"\n  webhook_cache_seconds: 600\n',
    }


def signed_query(stream, ttl=3600):
    out = b.subprocess.run([str(b.TARGET / "release" / "interop-gateway"), "sign", "--config", str(SIGN_CONFIG),
                            "--action", "play", "--stream", stream, "--ttl", str(ttl)],
                           capture_output=True, text=True, check=True, timeout=20)
    return out.stdout.strip().splitlines()[-1]


def connect_once(http, path):
    """Seconds from connect to the first body bytes of an HTTP-FLV GET (None if refused)."""
    host, port = http.rsplit(":", 1)
    t0 = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 3:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        took = time.perf_counter() - t0
    ok = data.startswith(b"HTTP/1.1 200") and b"FLV" in data
    return took if ok else None


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main():
    global SIGN_CONFIG
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=300)
    ap.add_argument("--quick", action="store_true", help="a smoke run for CI (30 connections each)")
    ap.add_argument("--json")
    a = ap.parse_args()
    n = 30 if a.quick else a.connections
    d = b.tmpdir()
    clip = b.make_clip(d, seconds=4)
    server, hook_url = webhook()
    SIGN_CONFIG = d / "sign.yaml"
    SIGN_CONFIG.write_text(configs(hook_url)["signed"])
    gateways = {}
    for name, text in configs(hook_url).items():
        gd = d / name
        gd.mkdir()
        (gd / "gw.yaml").write_text(text)
        p, http, rtmp = b.gateway(gd, extra=("--config", str(gd / "gw.yaml")))
        b.source(clip, f"rtmp://{rtmp}/live/k")
        gateways[name] = (p, http)
    for name, (_, http) in gateways.items():
        end = time.time() + 20
        while time.time() < end:
            try:
                if b.api(http, "GET", "/api/v1/streams/k"):
                    break
            except Exception:
                pass
            time.sleep(0.2)
    query = signed_query("k")
    paths = {"open": "/live/k.flv", "signed": f"/live/k.flv?{query}", "webhook": "/live/k.flv?token=t",
             "webhook_cached": "/live/k.flv?token=t"}
    # Warm-up: one connection each (the first subscribe, the webhook's first answer).
    for name, (_, http) in gateways.items():
        connect_once(http, paths[name])
    cpu0 = {name: b.cpu_seconds([p.pid]) for name, (p, _) in gateways.items()}
    times = {name: [] for name in gateways}
    refused = {name: 0 for name in gateways}
    calls0 = Hook.calls
    # Round-robin, so every configuration sees the same moments of the machine.
    for _ in range(n):
        for name, (_, http) in gateways.items():
            took = connect_once(http, paths[name])
            if took is None:
                refused[name] += 1
            else:
                times[name].append(took)
    cpu = {name: (b.cpu_seconds([p.pid]) - cpu0[name]) / n for name, (p, _) in gateways.items()}
    base_med = statistics.median(times["open"]) if times["open"] else float("nan")
    result = {"connections": n, "webhook_calls": Hook.calls - calls0, "configs": {}}
    print(f"{'play:':16} {'median ms':>10} {'p90 ms':>8} {'vs open':>9} {'CPU ms/conn':>12} {'refused':>8}")
    for name in gateways:
        t = times[name]
        med = statistics.median(t) if t else float("nan")
        row = {"median_ms": med * 1e3, "p90_ms": percentile(t, 0.9) * 1e3 if t else None,
               "added_ms": (med - base_med) * 1e3, "ratio": med / base_med, "cpu_ms_per_connection": cpu[name] * 1e3,
               "refused": refused[name]}
        result["configs"][name] = row
        print(f"{name:16} {row['median_ms']:10.2f} {row['p90_ms'] or 0:8.2f} {row['ratio']:8.2f}x {row['cpu_ms_per_connection']:12.2f} {refused[name]:8}")
    print(f"webhook calls during the run: {result['webhook_calls']} (uncached: one per connection; cached: none)")
    if a.json:
        b.pathlib.Path(a.json).write_text(json.dumps(result, indent=1))
    server.shutdown()
    failed = [name for name, r in refused.items() if r]
    if failed:
        print("FAILED: connections refused under " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
