#!/usr/bin/env python3
"""A/V sync of WHEP viewers in a real browser, per WHEP sender (`webrtc.egress`).

bench/avsync.py judges A/V with GStreamer receivers (webrtcbin), whose rtpbin lip-syncs the
tracks that share an RTCP CNAME. str0m, as the answerer, gives each m-line a CNAME of its own
(no setter: github.com/algesten/str0m/issues/750), so those receivers play str0m's tracks by
arrival. Browsers do not look at the CNAME: Chromium lip-syncs the tracks of one MediaStream
(`a=msid`, which the gateway sets to one stream), from each track's RTCP sender reports. This
bench measures what a browser viewer sees, for each sender, in the same run:

- the source: `avprobe source` (bench/avprobe) publishing by RTMP (H.264 + AAC, the gateway
  converts AAC to Opus) or by WHIP (H.264 + Opus, copied); it flashes the picture and starts a
  beep at each whole second;
- the viewer: headless Chromium playing tests/pages/whep-av.html, which times each flash when
  shown (requestVideoFrameCallback's expectedDisplayTime) and each beep when it leaves for the
  speaker (Web Audio, getOutputTimestamp), on one clock;
- offset = beep - flash of the same second (+ = sound late); start/end = medians of the first
  and last 5 pairs, drift = end - start; "settled" = median of the second half of the run.
  Chromium's lip-sync moves the video delay a little at a time: with either sender it takes
  20-40 s to settle, so runs of 90 s (the default) are judged by their end. Target as
  avsync.py's (|offset| < 40 ms, drift < 10 ms), applied to the second half. The page's own timing (Web Audio against
  requestVideoFrameCallback, in headless Chromium with no sound card) adds a constant of its
  own: compare the senders of one run, and the WHIP path (a source that sends both tracks
  aligned, nothing converted) tells that constant.
- also per second, from getStats(): each track's mean jitter-buffer delay, which shows the
  lip-sync at work (it delays the video).

WHEP_AV_KEEP=1 keeps the run's directory (gateway and Chromium logs, the page's reports).

Everything runs in a fresh loopback-only network namespace (Chromium does not offer loopback
ICE candidates otherwise), started by this script with `unshare` (root or user namespaces).

usage: bench/whep_av.py [--seconds S] [--paths rtmp,whip] [--egress str0m,webrtcbin] [--json F]
(each path and sender takes S + ~10 s; nothing of it runs in CI)
"""

import argparse
import http.server
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import gwbench as b

TOOL = b.TARGET / "release" / "examples" / "avprobe"
PAGES = b.ROOT / "tests" / "pages"
TARGET_MS = 40
DRIFT_MS = 10
EDGE = 5
# Beep lengths tell the second modulo 4 (bench/avprobe/code.rs): 60, 100, 140, 180 ms.
BEEP_MIN_MS, BEEP_STEP_MS = 60.0, 40.0


class Reports(http.server.ThreadingHTTPServer):
    """Serves tests/pages and collects what the page POSTs to /report."""

    def __init__(self):
        self.events = []
        reports = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(PAGES), **kw)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    reports.events.append(json.loads(body))
                except json.JSONDecodeError:
                    pass
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def last(self, name):
        found = [e for e in self.events if e.get("event") == name]
        return found[-1] if found else None


def chromium(url, data_dir):
    exe = shutil.which("chromium") or "/usr/lib/chromium/chromium"
    home = data_dir.parent / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache")}
    return b.start([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
                    # Granted media permission: without it Chromium offers no host candidate.
                    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                    f"--user-data-dir={data_dir}", url],
                   stderr=open(data_dir.parent / "chromium.log", "w"), env=env)


def pairs(onsets):
    """[(second index, beep - flash ms)]: each beep with the flash nearest to it (within 500
    ms), the beep's length telling which second modulo 4 it is, so a pair is never a beep with
    its neighbour's flash."""
    flashes = sorted(onsets.get("flashes", []))
    out = []
    for beep in onsets.get("beeps", []):
        near = [f for f in flashes if abs(beep["t"] - f) < 500]
        if not near:
            continue
        flash = min(near, key=lambda f: abs(beep["t"] - f))
        out.append((flash, beep["t"] - flash))
    out.sort()
    return [(round((f - out[0][0]) / 1000), off) for f, off in out]


def summary(series):
    if len(series) < 2 * EDGE:
        return {"pairs": len(series)}
    offs = [o for _, o in series]
    start, end = statistics.median(offs[:EDGE]), statistics.median(offs[-EDGE:])
    s = {"pairs": len(series), "start_ms": start, "end_ms": end, "drift_ms": end - start,
         "settled_ms": statistics.median(offs[len(offs) // 2:]),
         "median_ms": statistics.median(offs), "min_ms": min(offs), "max_ms": max(offs),
         "series": [[t, round(o, 1)] for t, o in series]}
    # Judged once settled: the second half's start and end, and its drift.
    half = offs[len(offs) // 2:]
    s["settled_drift_ms"] = end - statistics.median(half[:EDGE])
    s["met"] = max(abs(statistics.median(half[:EDGE])), abs(end)) < TARGET_MS and abs(s["settled_drift_ms"]) < DRIFT_MS
    return s


def run_one(tmp, path, egress, seconds, reports):
    d = tmp / f"{path}-{egress}"
    d.mkdir()
    conf = d / "gateway.yaml"
    conf.write_text(f"webrtc:\n  ip: 127.0.0.1\n  egress: {egress}\n")
    gw, http, rtmp = b.gateway(d, extra=["--config", str(conf), "--webrtc-ip", "127.0.0.1"])
    procs = [gw]
    try:
        url = f"rtmp://{rtmp}/live/av" if path == "rtmp" else f"http://{http}/whip/av"
        src = b.start([str(TOOL), "source", path, url, "--seconds", str(seconds + 30)],
                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        procs.append(src)
        time.sleep(4)  # a GOP cached, the conversion running
        page_id = f"{path}-{egress}"
        page = (f"http://127.0.0.1:{reports.server_address[1]}/whep-av.html?id={page_id}"
                f"&seconds={seconds}&whep=http://{http}/whep/av")
        browser = chromium(page, d / "chromium")
        procs.append(browser)
        deadline = time.time() + seconds + 40
        done = None
        while time.time() < deadline:
            mine = [e for e in reports.events if e.get("id") == page_id]
            if any(e.get("event") == "done" for e in mine):
                done = mine
                break
            errors = [e for e in mine if e.get("event") == "error"]
            if errors:
                raise RuntimeError(f"{page_id}: page error: {errors[-1].get('detail')}")
            time.sleep(0.5)
        mine = [e for e in reports.events if e.get("id") == page_id]
        if os.environ.get("WHEP_AV_KEEP"):
            (d / "events.json").write_text(json.dumps(mine, indent=1))
        onsets = [e for e in mine if e.get("event") == "onsets"]
        if not onsets:
            return {"pairs": 0, "events": sorted({str(e.get("event")) for e in mine}),
                    "error": "no onsets reported" + ("" if done else " (page did not finish)")}
        got = json.loads(onsets[-1]["detail"])
        s = summary(pairs(got))
        s.update(flashes=len(got.get("flashes", [])), beeps=len(got.get("beeps", [])), delays=got.get("delays", []),
                 events=sorted({e.get("event") for e in mine}))
        return s
    finally:
        for p in reversed(procs):
            b.stop(p)


def inner(args):
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="whep-av-"))
    reports = Reports()
    out = {}
    try:
        for path in args.paths.split(","):
            for egress in args.egress.split(","):
                try:
                    out[f"{path}->whep {egress}"] = run_one(tmp, path, egress, args.seconds, reports)
                except Exception as e:  # one side's failure is reported, the others still run
                    out[f"{path}->whep {egress}"] = {"pairs": 0, "error": str(e)[-500:]}
    finally:
        reports.shutdown()
        if not os.environ.get("WHEP_AV_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}", file=sys.stderr)
    return out


def report(summ, seconds):
    f = lambda v: "-" if v is None else f"{v:+.1f}"
    lines = [f"WHEP A/V in Chromium (ms, + = sound late), {seconds:.0f} s per viewer:", "",
             f"| path, sender | pairs | start | end | drift | settled (2nd half) | min / max | target (<{TARGET_MS} ms, drift <{DRIFT_MS} ms) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, s in summ.items():
        if not s.get("pairs") or "start_ms" not in s:
            lines.append(f"| {name} | {s.get('pairs', 0)} | - | - | - | - | - | {s.get('error', 'too few pairs')} |")
            continue
        lines.append(f"| {name} | {s['pairs']} | {f(s['start_ms'])} | {f(s['end_ms'])} | {f(s['drift_ms'])} | "
                     f"{f(s['settled_ms'])} | {f(s['min_ms'])} / {f(s['max_ms'])} | {'met' if s['met'] else 'NOT met'} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=90)
    ap.add_argument("--paths", default="rtmp,whip")
    ap.add_argument("--egress", default="str0m,webrtcbin")
    ap.add_argument("--json")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.inner:
        # Re-run inside a loopback-only namespace; the inner run prints the figures as JSON.
        cmd = ["unshare", "--map-root-user", "--net", "--pid", "--fork", "--kill-child", "--mount-proc",
               sys.executable, os.path.abspath(__file__), "--inner", "--seconds", str(args.seconds),
               "--paths", args.paths, "--egress", args.egress]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, timeout=len(args.paths.split(",")) * len(args.egress.split(",")) * (args.seconds + 90))
        lines = [l for l in done.stdout.decode().splitlines() if l.startswith("{")]
        if not lines:
            sys.exit(f"whep_av: the namespaced run gave nothing (exit {done.returncode})")
        summ = json.loads(lines[-1])
        print(report(summ, args.seconds))
        if args.json:
            pathlib.Path(args.json).write_text(json.dumps(summ, indent=1))
        return
    print(json.dumps(inner(args)))


if __name__ == "__main__":
    main()
