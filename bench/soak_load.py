"""Load units and the capacity ramp of bench/soak.py, and the lossy relay for WHIP media.

A load unit is one RTMP publisher (ffmpeg -c copy of the 30 fps clip: almost free for the
generator) with one H5 viewer (`h5_bench read`: reads the TS and counts pictures, no decoding).
The H5 viewer makes the gateway run H.264 -> MPEG-1 and AAC -> MP2 for that stream, so each
unit costs the GATEWAY a full video decode + encode and the generators almost nothing.

Capacity is that of the whole box: the gateway and its test clients (ffmpeg sources, decoding
viewers, WebRTC peers) share this machine's cores. So the ramp runs on top of the soak's own
load (its sources, measured viewers, churn, CDN push and UDP ingest, all already running): it
first measures the box's CPU with that base load alone for 20 s, then adds units one at a time;
after each step it measures the gateway's and the whole box's CPU (/proc/stat) for 10 s and runs
a probe viewer on every unit stream. It stops when a probe sees a gap > 1 s or < 90% of the
source's picture rate, when the box is saturated (> 95% busy), when the gateway's CPU stopped
growing (< 0.03 core more for the step), or at the ramp's time bound; capacity is the last unit
count that passed. The soak then runs the units that keep the whole box nearest 70% busy
(interpolating the steps; none if the base load alone is over 70%).
"""

import http.server
import json
import os
import random
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import gwbench as b

RATE = 30  # the clip's pictures per second (gwbench.make_clip)


class Units:
    def __init__(self, bins, clip, http, rtmp):
        self.bins, self.clip, self.http, self.rtmp = bins, clip, http, rtmp
        self.procs = []  # (publisher, viewer)

    def add(self, n):
        for _ in range(n):
            k = len(self.procs)
            pub = b.source(self.clip, f"rtmp://{self.rtmp}/live/unit{k}")
            self.procs.append((pub, None))
        time.sleep(2)
        for k, (pub, v) in enumerate(self.procs):
            if v is None:
                v = b.start([str(self.bins / "h5_bench"), "read", f"ws://{self.http}/h5/unit{k}", "1", "0", "86400"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                self.procs[k] = (pub, v)

    def probe(self, seconds=10):
        """One `h5_bench read` per unit stream: slowest pictures/s and longest gap."""
        ps = [b.start([str(self.bins / "h5_bench"), "read", f"ws://{self.http}/h5/unit{k}", "1", "2", str(seconds)],
                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for k in range(len(self.procs))]
        worst_fps, worst_gap = float("inf"), 0.0
        for p in ps:
            try:
                out, _ = p.communicate(timeout=seconds + 20)
                r = json.loads(out.decode().strip().splitlines()[-1])
                worst_fps = min(worst_fps, r["min_fps"] if r["with_data"] else 0.0)
                worst_gap = max(worst_gap, r["max_stall_ms"] / 1000)
            except (subprocess.TimeoutExpired, ValueError, IndexError, KeyError):
                b.stop(p)
                worst_fps = 0.0
        return worst_fps, worst_gap

    def stop(self):
        for pub, v in self.procs:
            b.stop(v) if v else None
            b.stop(pub)
        self.procs = []


def box_busy(seconds, then=None):
    """The whole box's CPU busy fraction (0..1, all cores) over `seconds` (after `then()`, if
    given, runs in that window)."""
    (b0, t0), w0 = b.box_stat(), time.time()
    out = then() if then else time.sleep(seconds)
    while time.time() - w0 < seconds:
        time.sleep(0.2)
    b1, t1 = b.box_stat()
    return (b1 - b0) / max(1, t1 - t0), out


def units_for(busy_target, base_busy, steps):
    """The unit count whose whole-box busy fraction is nearest `busy_target` without passing it,
    by linear interpolation between the measured steps (units 0 = the base load)."""
    points = [(0, base_busy)] + [(s["units"], s["box_busy"]) for s in steps]
    best = 0
    for (u0, f0), (u1, f1) in zip(points, points[1:]):
        if f0 > busy_target:
            break
        if f1 > busy_target:
            return u0 + int((busy_target - f0) / (f1 - f0) * (u1 - u0))
        best = u1
    return best


def measure_capacity(bins, clip, http, rtmp, gw_pid, bound_s=180, step=1, log=print, busy_target=0.7):
    """The ramp (see the module's text), on top of whatever load runs already. Returns the record
    for the summary JSON; "units" is the capacity, "units_at_target" what keeps the box nearest
    `busy_target`."""
    units = Units(bins, clip, http, rtmp)
    t0, steps, good, cpu_good = time.time(), [], 0, None
    base_busy, _ = box_busy(20)
    log(f"capacity ramp: base load alone keeps the box {base_busy:.0%} busy")
    prev_cpu, why = None, "time bound"
    try:
        while time.time() - t0 < bound_s:
            units.add(step)
            time.sleep(5)
            c0, w0 = b.cpu_seconds([gw_pid]), time.time()
            busy, (fps, gap) = box_busy(10, lambda: units.probe(10))
            cpu = (b.cpu_seconds([gw_pid]) - c0) / (time.time() - w0)
            n = len(units.procs)
            s = {"units": n, "gateway_cpu_cores": round(cpu, 2), "box_busy": round(busy, 3), "slowest_pps": fps,
                 "longest_gap_s": gap, "load1": os.getloadavg()[0]}
            steps.append(s)
            log(f"capacity ramp: {json.dumps(s)}")
            if gap > 1.0 or fps < 0.9 * RATE:
                why = f"viewers stalled at {n} units (gap {gap:.1f} s, {fps:.1f} pictures/s)"
                break
            if busy > 0.95:
                why = f"the box saturated at {n} units ({busy:.0%} busy)"
                break
            if prev_cpu is not None and cpu - prev_cpu < 0.03:
                why = f"gateway CPU stopped growing at {n} units ({prev_cpu:.2f} -> {cpu:.2f} cores)"
                break
            good, cpu_good, prev_cpu = n, cpu, cpu
    finally:
        units.stop()
    time.sleep(5)
    passed = [s for s in steps if s["units"] <= good]
    return {"units": good, "gateway_cpu_cores_at_capacity": cpu_good, "stopped_because": why,
            "base_box_busy": round(base_busy, 3), "busy_target": busy_target,
            "units_at_target": units_for(busy_target, base_busy, passed), "steps": steps,
            "ramp_s": round(time.time() - t0), "method": __doc__.split("\n\n", 1)[1].strip()}


# --- WHIP media through a lossy relay -----------------------------------------------------
class UdpPair:
    """One gateway ICE candidate seen through a lossy relay: the client sends to `port`; each
    datagram (after `loss` and 0..`jitter` delay) leaves from `back` toward the gateway's real
    port; the gateway's replies to `back` go to the client's last address from `port`."""

    def __init__(self, gw_port, loss, jitter_ms, counters):
        self.gw, self.loss, self.jitter, self.c = gw_port, loss, jitter_ms / 1000, counters
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(("127.0.0.1", 0))
        self.port = self.front.getsockname()[1]
        self.client, self.last, self.done = None, time.time(), threading.Event()
        for f in (self._up, self._down):
            threading.Thread(target=f, daemon=True).start()

    def _up(self):
        self.front.settimeout(0.2)
        while not self.done.is_set():
            try:
                data, addr = self.front.recvfrom(65536)
            except (socket.timeout, OSError):
                continue
            self.client, self.last = addr, time.time()
            if random.random() < self.loss:
                self.c["dropped"] += 1
                continue
            d = random.uniform(0, self.jitter)
            threading.Timer(d, self._send, (self.back, data, ("127.0.0.1", self.gw), "forwarded")).start()

    def _down(self):
        self.back.settimeout(0.2)
        while not self.done.is_set():
            try:
                data = self.back.recv(65536)
            except (socket.timeout, OSError):
                continue
            if self.client:
                self._send(self.front, data, self.client, "returned")

    def _send(self, sock, data, to, key):
        try:
            sock.sendto(data, to)
            self.c[key] += 1
        except OSError:
            pass

    def close(self):
        self.done.set()
        time.sleep(0.3)
        self.front.close()
        self.back.close()


CAND = re.compile(r"^(a=candidate:\S+ \d+ udp \d+ 127\.0\.0\.1 )(\d+)( .*)$", re.I | re.M)


class WhipProxy:
    """An HTTP proxy in front of the gateway's WHIP endpoint: it forwards each request and
    rewrites the UDP host candidates of a 201 answer to lossy UdpPairs, so the publisher's
    media (and STUN, RTCP, NACK/PLI) crosses the relay. The gateway sees the relay's address
    as a peer-reflexive candidate."""

    def __init__(self, gateway_http, loss=0.05, jitter_ms=40):
        self.gw, self.loss, self.jitter = gateway_http, loss, jitter_ms
        self.counters = {"forwarded": 0, "dropped": 0, "returned": 0, "sessions": 0}
        self.pairs = {}  # location -> [UdpPair]
        self.lock = threading.Lock()
        proxy = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                proxy.handle(self, "POST")

            def do_DELETE(self):
                proxy.handle(self, "DELETE")

            def do_PATCH(self):
                proxy.handle(self, "PATCH")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.addr = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(self, h, method):
        n = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(n) if n else None
        if method == "POST" and body:
            # Without the publisher's own candidates the gateway cannot reach it directly: the
            # only working pair is the relay's (learnt as peer-reflexive from its checks).
            body = re.sub(rb"a=candidate:[^\r\n]*\r?\n", b"", body)
        req = urllib.request.Request(f"http://{self.gw}{h.path}", data=body, method=method)
        if h.headers.get("Content-Type"):
            req.add_header("Content-Type", h.headers["Content-Type"])
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                status, headers, out = r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            status, headers, out = e.code, dict(e.headers), e.read()
        except OSError as e:
            status, headers, out = 502, {}, str(e).encode()
        loc = headers.get("Location") or headers.get("location")
        if method == "POST" and status == 201:
            made = {}

            def swap(m):
                port = int(m.group(2))
                if port not in made:
                    made[port] = UdpPair(port, self.loss, self.jitter, self.counters)
                return f"{m.group(1)}{made[port].port}{m.group(3)}"
            out = CAND.sub(swap, out.decode()).encode()
            with self.lock:
                self.pairs[loc] = list(made.values())
                self.counters["sessions"] += 1
        elif method == "DELETE":
            self.drop(h.path)
        try:
            h.send_response(status)
            for k, v in headers.items():
                if k.lower() in ("content-type", "location", "etag"):
                    h.send_header(k, v)
            h.send_header("Content-Length", str(len(out)))
            h.end_headers()
            h.wfile.write(out)
        except OSError:
            pass  # the publisher was killed mid-request (churn): nobody is left to answer

    def drop(self, location):
        with self.lock:
            pairs = [p for k, ps in list(self.pairs.items()) if k and k.endswith(location) for p in ps]
            self.pairs = {k: ps for k, ps in self.pairs.items() if not (k and k.endswith(location))}
        for p in pairs:
            p.close()

    def reap(self, idle_s=20):
        """Closes relays a killed publisher left (no DELETE) after `idle_s` without datagrams."""
        with self.lock:
            stale = [k for k, ps in self.pairs.items() if all(time.time() - p.last > idle_s for p in ps)]
        for k in stale:
            self.drop(k)

    def stats(self):
        c = dict(self.counters)
        c["loss"] = c["dropped"] / max(1, c["dropped"] + c["forwarded"])
        return c

    def close(self):
        self.server.shutdown()
        for k in list(self.pairs):
            self.drop(k)
