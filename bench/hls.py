#!/usr/bin/env python3
"""HLS and LL-HLS out of the gateway: glass-to-glass latency beside HTTP-FLV, and the cost of
N HLS viewers against N HTTP-FLV viewers of one stream.

Latency (the method of bench/latency.py: an `avprobe source rtmp` publisher draws each
picture's send time into it, `avprobe receive` decodes and reads it back; latency = arrival of
the decoded picture - the time drawn in it). avprobe reads FLV and MPEG-TS, so the HLS paths
reach it through a copying `ffmpeg ... -c copy -f mpegts pipe:1` whose output this script
relays to avprobe over TCP (`tcp+ts://`). Paths, all watching the same source at once:
  rtmp->httpflv            avprobe reads /live/KEY.flv itself (the reference)
  rtmp->httpflv+relay      the same FLV through the ffmpeg copy relay: what the relay adds
  rtmp->llhls              fmp4.m3u8 read as LL-HLS by this script's client (below), init and
                           parts piped into the relay's ffmpeg
  rtmp->hls-ts             ffmpeg's HLS demuxer on ts.m3u8 (plain HLS, MPEG-TS segments)
  rtmp->hls-fmp4           ffmpeg's HLS demuxer on index.m3u8 (whole fMP4 segments; ffmpeg
                           does not do LL-HLS)
Two figures per path: "arrival" (a picture's latency when it is decoded, the figure
bench/latency.py gives for every other path; the first 2.5 s are skipped) and "player": a
player that starts on the first picture it gets and plays by timestamps in real time, waiting
(never skipping) when a picture is late; its latency is set by where it joined (ffmpeg's HLS
client starts 3 segments back) and by its worst stall since. The LL-HLS client joins at the
newest independent part (the start of the newest segment), hls.js in low-latency mode jumps
nearer the edge (PART-HOLD-BACK), so its "player" figure is an upper bound.

The LL-HLS client (also the fan-out viewer): GET fmp4.m3u8, the init segment, every part from
the newest INDEPENDENT one; then, forever, a blocking reload for the preload hint
(`?_HLS_msn=M&_HLS_part=P`) and a GET of each part it did not have, on one keep-alive
connection. The plain HLS viewer (fan-out only): ts.m3u8, the last 3 segments, then a reload
every second and each new segment.

Fan-out: one gateway, one publisher looping the H.264+AAC clip, then per N the sides one after
another in the same gateway (N LL-HLS viewers, N plain-HLS viewers, N HTTP-FLV viewers by
`flv_readers`): gateway CPU (utime+stime from /proc) over the window, as microseconds of CPU
per viewer-second above the publisher alone, and its PSS and RSS. The packagers are shared (one
per stream and variant): their cost is in the HLS figures, spread over the N viewers.

usage: bench/hls.py [--quick] [--json FILE] [--no-build]
       bench/hls.py viewers URL N SECONDS llhls|ts [--out -]   (the client, used by the above)
"""

import argparse
import asyncio
import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import gwbench as b
import latency as lat
import remux

# --- the HLS client ---------------------------------------------------------------------------


class Conn:
    """One HTTP/1.1 keep-alive connection; GETs one at a time, reconnects when closed."""

    def __init__(self, host, port):
        self.host, self.port, self.r, self.w = host, port, None, None
        self.requests = 0

    async def get(self, path):
        for attempt in range(2):
            if self.w is None:
                self.r, self.w = await asyncio.open_connection(self.host, self.port)
            try:
                self.w.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode())
                head = await self.r.readuntil(b"\r\n\r\n")
                break
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt:
                    raise
        self.requests += 1
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdr = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:] if ":" in x)}
        if "content-length" in hdr:
            body = await self.r.readexactly(int(hdr["content-length"]))
        elif hdr.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await self.r.readline()).split(b";")[0], 16)
                chunks.append(await self.r.readexactly(size + 2))
                if size == 0:
                    break
            body = b"".join(c[:-2] for c in chunks)
        else:
            body = await self.r.read()
            self.close()
        if hdr.get("connection", "").lower() == "close":
            self.close()
        return status, body

    def close(self):
        if self.w:
            self.w.close()
        self.r = self.w = None


def parse_playlist(text):
    """Media playlist -> dict: map URI, segments [(msn, uri)], parts [(msn, i, uri, independent)],
    the preload hint's (msn, i) (where the next part will be), target duration."""
    seq, msn, i = 0, None, 0
    out = {"map": None, "segments": [], "parts": [], "hint": None, "target": 2.0}
    for line in text.splitlines():
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            seq = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            out["target"] = float(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-MAP:"):
            out["map"] = re.search(r'URI="([^"]+)"', line).group(1)
        elif line.startswith("#EXT-X-PART:"):
            msn = seq if msn is None else msn
            out["parts"].append((msn, i, re.search(r'URI="([^"]+)"', line).group(1), "INDEPENDENT=YES" in line))
            i += 1
        elif line.startswith("#EXT-X-PRELOAD-HINT:") and "TYPE=PART" in line:
            msn = seq if msn is None else msn
            out["hint"] = (msn, i)
        elif line and not line.startswith("#"):
            msn = seq if msn is None else msn
            out["segments"].append((msn, line.strip()))
            msn, i = msn + 1, 0
    return out


class Viewer:
    """One HLS viewer; counts what it got. `sink(bytes)` gets the media in order (init first)."""

    def __init__(self, host, port, base, mode, sink=None):
        self.conn, self.base, self.mode, self.sink = Conn(host, port), base, mode, sink
        self.bytes = self.media = self.gaps = self.errors = 0
        self.last_media = None
        self.max_stall = 0.0
        self.first_media = None

    async def fetch(self, uri):
        status, body = await self.conn.get(self.base + uri)
        if status != 200:
            self.errors += 1
            return None
        self.bytes += len(body)
        return body

    def got_media(self, body):
        now = time.monotonic()
        if self.last_media is not None:
            self.max_stall = max(self.max_stall, now - self.last_media)
        else:
            self.first_media = now
        self.last_media = now
        self.media += 1
        if self.sink:
            self.sink(body)

    async def run(self, deadline):
        try:
            await (self.run_ll(deadline) if self.mode == "llhls" else self.run_plain(deadline))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            self.errors += 1
        finally:
            self.conn.close()

    async def playlist(self, name):
        status, body = await self.conn.get(self.base + name)
        if status != 200:
            self.errors += 1
            await asyncio.sleep(0.5)
            return None
        self.bytes += len(body)
        return parse_playlist(body.decode())

    async def run_ll(self, deadline):
        pl = None
        while pl is None or not pl["parts"]:
            if time.monotonic() > deadline:
                return
            pl = await self.playlist("fmp4.m3u8")
        init = await self.fetch(pl["map"])
        if init is None:
            return
        self.sink and self.sink(init)
        mapped = pl["map"]
        start = max(k for k, p in enumerate(pl["parts"]) if p[3])
        last = (pl["parts"][start][0], pl["parts"][start][1] - 1)
        while time.monotonic() < deadline:
            if pl["map"] != mapped:  # a new packager instance: its init first
                init = await self.fetch(pl["map"])
                self.sink and init and self.sink(init)
                mapped, last = pl["map"], (-1, -1)
            new = [p for p in pl["parts"] if (p[0], p[1]) > last]
            if new and last[0] >= 0 and (new[0][0], new[0][1]) not in ((last[0], last[1] + 1), (last[0] + 1, 0)):
                self.gaps += 1
            for msn, i, uri, _ in new:
                body = await self.fetch(uri)
                if body is not None:
                    self.got_media(body)
                last = (msn, i)
            if pl["hint"] is None:
                await asyncio.sleep(0.1)
                nxt = await self.playlist("fmp4.m3u8")
            else:
                nxt = await self.playlist(f"fmp4.m3u8?_HLS_msn={pl['hint'][0]}&_HLS_part={pl['hint'][1]}")
            pl = nxt or pl

    async def run_plain(self, deadline):
        last = None
        while time.monotonic() < deadline:
            pl = await self.playlist("ts.m3u8")
            if pl and pl["segments"]:
                segs = pl["segments"] if last is not None else pl["segments"][-3:]
                for msn, uri in segs:
                    if last is None or msn > last:
                        body = await self.fetch(uri)
                        if body is not None:
                            self.got_media(body)
                        last = msn
            await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


async def _viewers(url, n, seconds, mode, sink=None):
    m = re.match(r"http://([^:/]+):(\d+)(/.*/)", url)
    host, port, base = m.group(1), int(m.group(2)), m.group(3)
    deadline = time.monotonic() + seconds
    vs = [Viewer(host, port, base, mode, sink) for _ in range(n)]
    t0 = time.monotonic()
    await asyncio.gather(*(v.run(deadline) for v in vs))
    took = time.monotonic() - t0
    rates = [v.media / max(took - (v.first_media - t0), 1e-3) if v.first_media else 0.0 for v in vs]
    return {"viewers": n, "mode": mode, "with_data": sum(1 for v in vs if v.media), "bytes": sum(v.bytes for v in vs),
            "requests": sum(v.conn.requests for v in vs), "media_files": sum(v.media for v in vs),
            "slowest_media_per_s": round(min(rates), 2) if rates else None,
            "max_stall_ms": round(1000 * max((v.max_stall for v in vs), default=0)),
            "gaps": sum(v.gaps for v in vs), "errors": sum(v.errors for v in vs), "seconds": round(took, 2)}


def viewers_main(args):
    """`hls.py viewers URL N SECONDS MODE [--out -]`: N viewers in this process, one JSON line at
    the end on stderr when --out - (the media go to stdout), else on stdout."""
    ap = argparse.ArgumentParser(prog="hls.py viewers")
    ap.add_argument("url")
    ap.add_argument("n", type=int)
    ap.add_argument("seconds", type=float)
    ap.add_argument("mode", choices=("llhls", "ts"))
    ap.add_argument("--out")
    a = ap.parse_args(args)
    sink = None
    if a.out == "-":
        out = sys.stdout.buffer

        def sink(data):
            try:
                out.write(data)
                out.flush()
            except BrokenPipeError:
                pass
    r = asyncio.run(_viewers(a.url, a.n, a.seconds, a.mode, sink))
    print(json.dumps(r), file=sys.stderr if a.out == "-" else sys.stdout, flush=True)
    return 0


def start_viewers(url, n, seconds, mode, per_process=100):
    """N viewers in ceil(N / per_process) processes (the clients stay off the gateway's cores
    as far as two cores allow)."""
    procs, left = [], n
    while left > 0:
        k = min(per_process, left)
        procs.append(b.start([sys.executable, __file__, "viewers", url, str(k), str(seconds), mode], stdout=subprocess.PIPE))
        left -= k
    return procs


def collect(procs, timeout):
    out = []
    for p in procs:
        try:
            out.append(json.loads(p.communicate(timeout=timeout)[0] or b"{}"))
        except (subprocess.TimeoutExpired, json.JSONDecodeError):
            b.stop(p)
            out.append({})
    total = {"viewers": sum(r.get("viewers", 0) for r in out)}
    for k in ("with_data", "bytes", "requests", "media_files", "gaps", "errors"):
        total[k] = sum(r.get(k, 0) for r in out)
    total["max_stall_ms"] = max((r.get("max_stall_ms", 0) for r in out), default=None)
    slow = [r["slowest_media_per_s"] for r in out if r.get("slowest_media_per_s") is not None]
    total["slowest_media_per_s"] = min(slow) if slow else None
    return total


# --- latency -----------------------------------------------------------------------------------

RELAY_OUT = ["-map", "0:v", "-c", "copy", "-f", "mpegts", "-muxdelay", "0", "-muxpreload", "0", "-flush_packets", "1", "pipe:1"]


class Relay:
    """ffmpeg's stdout (MPEG-TS) served to the first TCP client on a free port (avprobe's
    `tcp+ts://`)."""

    def __init__(self, proc):
        self.proc = proc
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        conn, _ = self.sock.accept()
        with conn:
            try:
                while data := self.proc.stdout.read1(65536):
                    if conn:
                        try:
                            conn.sendall(data)
                        except OSError:  # the receiver is done: keep draining, so nothing upstream blocks
                            conn = None
            except (OSError, ValueError):
                pass


def ffmpeg_relay(input_args, stdin=subprocess.DEVNULL):
    p = b.start(["ffmpeg", "-v", "error", "-fflags", "+nobuffer", *input_args, *RELAY_OUT], stdin=stdin, stdout=subprocess.PIPE)
    return p, Relay(p)


def player_latency(events):
    """A real-time player's latency per picture (ms): plays by PTS from the first picture it
    got, waits when one is late (never skips): latency = when it shows a picture - the time
    drawn in it. Pictures after the warm-up."""
    vs = sorted((e["v"] for e in events if "v" in e and e["v"][1] >= 0), key=lambda v: v[0])
    if not vs:
        return [], 0
    off, out, stalls, first = None, [], 0, vs[0][0]
    for arrival, code, pts, _ in vs:
        if off is None:
            off = arrival - pts
        show = pts + off
        if arrival > show + 1:
            stalls += 1
            off, show = arrival - pts, arrival
        if arrival - first >= lat.WARMUP_MS:
            out.append((show - code) % lat.WRAP)
    return out, stalls


def scenario_latency(tmp, seconds, warm_s=8.0):
    """`warm_s`: how long the packagers run before the viewers join (a viewer of a stream
    others watch finds its playlists full; ffmpeg then starts 3 segments back)."""
    d = tmp / "hls-latency"
    d.mkdir()
    gw, http, rtmp = b.gateway(d)
    life = seconds + warm_s + 40
    src = lat.start_source("rtmp", f"rtmp://{rtmp}/live/lat", life)
    lat.wait_live(http, "lat")
    base = f"http://{http}/hls/lat/"
    t0 = time.time()
    for name in ("index.m3u8", "ts.m3u8"):
        urllib.request.urlopen(base + name, timeout=15).read()
    while time.time() - t0 < warm_s:  # keep them wanted
        time.sleep(min(1.0, warm_s))
        for name in ("fmp4.m3u8", "ts.m3u8"):
            urllib.request.urlopen(base + name, timeout=15).read()
    # The LL-HLS client's media go into the relay's ffmpeg; its counts come on stderr.
    ll = b.start([sys.executable, __file__, "viewers", base + "fmp4.m3u8", "1", str(seconds + 1), "llhls", "--out", "-"],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    relays = {
        "rtmp->httpflv+relay": ffmpeg_relay(["-i", f"http://{http}/live/lat.flv"]),
        "rtmp->llhls": ffmpeg_relay(["-f", "mp4", "-i", "pipe:0"], stdin=ll.stdout),
        "rtmp->hls-ts": ffmpeg_relay(["-i", base + "ts.m3u8"]),
        "rtmp->hls-fmp4": ffmpeg_relay(["-i", base + "index.m3u8"]),
    }
    ll.stdout.close()  # the relay's ffmpeg holds it now
    receivers = [lat.Receiver("rtmp->httpflv", f"http://{http}/live/lat.flv", seconds)]
    receivers += [lat.Receiver(name, f"tcp+ts://127.0.0.1:{r.port}", seconds) for name, (p, r) in relays.items()]
    load = open("/proc/loadavg").read().split()[:3]
    results = [r.wait(seconds + 40) for r in receivers]
    t = time.time()
    try:
        client = json.loads((ll.communicate(timeout=20)[1] or b"{}").decode().strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, json.JSONDecodeError, IndexError):
        client = {}
    for p in [ll, *(p for p, _ in relays.values()), src, gw]:
        b.stop(p)
    print(f"hls latency: teardown {time.time() - t:.1f} s", file=sys.stderr)
    paths = []
    for r in results:
        s = lat.path_stats(r)
        play, stalls = player_latency(r["events"])
        s["player"] = {"n": len(play), "p50": lat.pct(play, 50), "p95": lat.pct(play, 95), "stalls": stalls}
        s.pop("head", None)
        paths.append(s)
    return {"seconds": seconds, "loadavg_during": load, "paths": paths, "llhls_client": client}


# --- fan-out -----------------------------------------------------------------------------------


def rss_kib(pid):
    try:
        return int(re.search(r"^VmRSS:\s+(\d+)", open(f"/proc/{pid}/status").read(), re.M).group(1))
    except (OSError, AttributeError):
        return None


def scenario_fanout(tmp, clip, ns, seconds, sides=("llhls", "ts", "httpflv"), settle=4.0):
    """Per N, the sides one after another on the same gateway and publisher."""
    d = tmp / "hls-fan"
    d.mkdir()
    gw, http, rtmp = b.gateway(d)
    b.source(clip, f"rtmp://{rtmp}/live/fan")
    lat.wait_live(http, "fan")
    time.sleep(1)
    idle = b.measure({"gateway": [gw.pid]}, 2)["gateway"]
    idle["rss_kib"] = rss_kib(gw.pid)
    urls = {"llhls": f"http://{http}/hls/fan/fmp4.m3u8", "ts": f"http://{http}/hls/fan/ts.m3u8",
            "httpflv": f"http://{http}/live/fan.flv"}
    rows = []
    for n in ns:
        for side in sides:
            life = settle + seconds + 1.5
            if side == "httpflv":
                procs = [remux.readers(urls[side], n, life)]
            else:
                procs = start_viewers(urls[side], n, life, side)
            time.sleep(settle)
            m = b.measure({"gateway": [gw.pid], "clients": [p.pid for p in procs]}, seconds)
            g = m["gateway"]
            g["rss_kib"] = rss_kib(gw.pid)
            got = collect(procs, life + 20) if side != "httpflv" else json.loads(procs[0].communicate(timeout=life + 20)[0] or b"{}")
            above = g["cpu_cores"] - idle["cpu_cores"]
            rows.append({"viewers": n, "side": side, "gateway": g, "clients_cpu_cores": m["clients"]["cpu_cores"],
                         "us_per_viewer_s": 1e6 * above / n, "pss_above_idle_kib_per_viewer": (g["pss_kib"] - idle["pss_kib"]) / n,
                         "readers": got})
            time.sleep(1.0)
    streams = b.api(http, "GET", "/api/v1/streams")["streams"]
    b.stop(gw)
    return {"seconds": seconds, "idle": idle, "rows": rows,
            "conversions": [[s["key"], c["track"], c["from"], c["to"]] for s in streams for c in s.get("conversions", [])]}


def scenario(tmp, clip, latency_seconds, fan_n, fan_seconds, fan_sides=("llhls", "ts", "httpflv"), settle=4.0):
    return {"latency": scenario_latency(tmp, latency_seconds),
            "fanout": scenario_fanout(tmp, clip, fan_n, fan_seconds, fan_sides, settle)}


# --- report -------------------------------------------------------------------------------------

SIDE = {"llhls": "LL-HLS (fMP4 parts, blocking reload)", "ts": "HLS (MPEG-TS segments)", "httpflv": "HTTP-FLV"}


def _n(x, d=0):
    return "-" if x is None else f"{x:.{d}f}"


def tables(r):
    """Markdown tables of a scenario() result."""
    lines = ["| path | pictures decoded (code read) | arrival latency p50 / p95 (ms) | player latency p50 / p95 (ms) | player stalls | first picture (ms) |",
             "|---|---|---|---|---|---|"]
    for p in r["latency"]["paths"]:
        lines.append(f"| {p['name']} | {p['frames']} ({p['coded']}) | {_n(p['video']['p50'])} / {_n(p['video']['p95'])} | "
                     f"{_n(p['player']['p50'])} / {_n(p['player']['p95'])} | {p['player']['stalls']} | {_n(p['first_video_ms'])} |")
    c = r["latency"].get("llhls_client") or {}
    if c:
        lines += ["", f"LL-HLS client of the latency run: {c.get('media_files')} parts in {c.get('requests')} requests, "
                      f"longest wait between parts {c.get('max_stall_ms')} ms, gaps {c.get('gaps')}, errors {c.get('errors')}."]
    f = r["fanout"]
    lines += ["", f"Fan-out, one stream (the gateway with the publisher alone: {100 * f['idle']['cpu_cores']:.1f}% of a core, "
                  f"PSS {f['idle']['pss_kib'] / 1024:.1f} MiB, RSS {_n((f['idle'].get('rss_kib') or 0) / 1024, 1)} MiB); "
                  f"{_n(f['seconds'])} s windows, the sides one after another on the same gateway:", "",
              "| viewers | by | gateway CPU (of one core) | CPU per viewer-second above publisher only (µs) | gateway PSS / RSS (MiB) | PSS above idle per viewer (KiB) | viewers with data | requests/s | slowest viewer | longest stall | clients' CPU |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in f["rows"]:
        g, rd = row["gateway"], row["readers"]
        reqs = rd.get("requests")
        slow = rd.get("slowest_media_per_s")
        unit = "parts/s" if row["side"] == "llhls" else "segments/s"
        lines.append(f"| {row['viewers']} | {SIDE[row['side']]} | {100 * g['cpu_cores']:.1f}% | {row['us_per_viewer_s']:.0f} | "
                     f"{g['pss_kib'] / 1024:.1f} / {_n((g.get('rss_kib') or 0) / 1024, 1)} | {row['pss_above_idle_kib_per_viewer']:.0f} | "
                     f"{rd.get('with_data')}/{row['viewers']} | {_n(reqs / (f['seconds'] + 1.5) if reqs else None)} | "
                     f"{'-' if slow is None else f'{slow} {unit}'} | {rd.get('max_stall_ms')} ms | {100 * row['clients_cpu_cores']:.0f}% |")
    return "\n".join(lines)


def summary(r):
    by = {p["name"]: p for p in r["latency"]["paths"]}
    out = []
    for name in ("rtmp->httpflv", "rtmp->httpflv+relay", "rtmp->llhls", "rtmp->hls-fmp4", "rtmp->hls-ts"):
        p = by.get(name)
        if p:
            out.append(f"{name}: arrival p50 {_n(p['video']['p50'])} ms / p95 {_n(p['video']['p95'])} ms; "
                       f"player p50 {_n(p['player']['p50'])} ms")
    for row in r["fanout"]["rows"]:
        out.append(f"{row['viewers']} {row['side']} viewers: {row['us_per_viewer_s']:.0f} µs CPU per viewer-second, "
                   f"gateway RSS {_n((row['gateway'].get('rss_kib') or 0) / 1024, 1)} MiB")
    return "\n".join(out)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "viewers":
        return viewers_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already in the target directory")
    a = ap.parse_args()
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "interop-gateway", "--example", "avprobe",
                        "--example", "flv_readers"], cwd=b.ROOT, check=True)
    tmp = b.tmpdir()
    clip = b.make_clip(tmp, seconds=4 if a.quick else 10)
    if a.quick:
        r = scenario(tmp, clip, 10, [10], 3, ("llhls", "httpflv"), settle=3.0)
    else:
        r = scenario(tmp, clip, 60, [50, 200], 10)
    if a.json:
        b.pathlib.Path(a.json).write_text(json.dumps(r, indent=1))
    print(tables(r))
    print()
    print(summary(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
