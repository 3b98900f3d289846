#!/usr/bin/env python3
"""Added latency per bridge kind, time to first frame, and the A/V sync run (bench/avsync.py
analyses its flashes and beeps), measured with real clients on 127.0.0.1.

The sources (`avprobe source`, bench/avprobe/) draw each picture's send time (wall-clock ms) as
24 black/white blocks, flash the lower picture white and start a 1 kHz beep at every whole
second. The receivers (`avprobe receive`) play a URL like a real client (HTTP-FLV, RTMP, WHEP,
H5 WebSocket), decode every picture and the audio on one thread per decoder, read the blocks
back and find beep onsets; latency = arrival of the decoded picture - the time drawn in it
(same machine, same clock). All receivers of one run watch the same sources at the same time.

Paths (source -> what the viewer gets):
  direct          RTMP source's own FLV over plain TCP, decoded without the gateway
  direct+h5conv   the same, through the gateway's own rtmp->h5 conversion pipelines (from its
                  plan API), run in the receiver: the conversion's codec delay without the gateway
                  (decoded behind `mpegvideoparse` as the H5 receiver's TS path is: the parser holds
                  a picture until the next one starts, a frame that JSMpeg does not wait)
  direct+opus     direct, audio through the gateway's aac->opus pipeline: the codec reference for WHEP
  rtmp->httpflv, rtmp->rtmp           remux (copy)
  rtmp->whep      video copied, AAC->Opus
  rtmp->h5        H.264->MPEG-1, AAC->MP2 (H5 WebSocket)
  whip->rtmp      WebRTC in, video copied, Opus->AAC
  whip->whep      WebRTC in and out, copied
  h5->rtmp        H5 POST (MPEG-1+MP2 in TS) in, H.264+AAC out by HTTP-FLV
  direct-ts       the H5 source's own TS over TCP
  direct-ts+conv  the same through the gateway's h5->rtmp pipelines in the receiver (reference
                  for h5->rtmp)
  mini-late       mini-program RTMP publisher whose audio starts seconds after its video,
                  viewed by HTTP-FLV from before the audio starts (A/V only)
Then first frame: new viewers, one after another, each from connect to first decoded picture
(and the latency it settles at: a WHEP viewer's depends on when it joined).

usage: bench/latency.py [--seconds S] [--sessions K] [--quick] [--json FILE]
"""

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time

import gwbench as b

WRAP = 1 << 24
FRAME_MS = 1000 / 30
WARMUP_MS = 2500  # skip the cached GOP burst and start-up at the head of every path
TOOL = b.TARGET / "release" / "examples" / "avprobe"


def _reader(proc, sink):
    for line in proc.stdout:
        try:
            sink.append(json.loads(line))
        except json.JSONDecodeError:
            pass


class Receiver:
    """An `avprobe receive` process whose event lines are collected on a thread."""

    def __init__(self, name, url, seconds, extra=()):
        self.name, self.url, self.events = name, url, []
        self.proc = b.start([str(TOOL), "receive", url, "--seconds", str(seconds), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.thread = threading.Thread(target=_reader, args=(self.proc, self.events), daemon=True)
        self.thread.start()

    def wait(self, timeout):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            b.stop(self.proc)
        self.thread.join(5)
        err = self.proc.stderr.read()[-1000:] if self.proc.stderr else ""
        return {"name": self.name, "url": self.url, "events": self.events, "stderr": err}


def start_source(kind, url, seconds, extra=()):
    p = b.start([str(TOOL), "source", kind, url, "--seconds", str(seconds), *extra],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith('{"ready"'):
        b.stop(p)
        raise RuntimeError(f"avprobe source {kind} did not start: {line} {p.stderr.read()[-1500:]}")
    return p


def wait_live(http, key, audio=True, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            s = b.api(http, "GET", f"/api/v1/streams/{key}")
            if s.get("video") and (s.get("audio") or not audio):
                return s
        except Exception:  # 404 until it is live
            pass
        time.sleep(0.2)
    raise RuntimeError(f"stream {key} not live within {timeout} s")


def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def video_samples(events):
    """(arrival_ms, latency_ms) of the decoded pictures after the warm-up."""
    vs = [e["v"] for e in events if "v" in e]
    if not vs:
        return []
    first = vs[0][0]
    return [(v[0], (v[0] - v[1]) % WRAP) for v in vs if v[1] >= 0 and v[0] - first >= WARMUP_MS]


def second_of(arrival, code):
    """The wall-clock ms a code stands for, given when it arrived (codes wrap every 2^24 ms)."""
    return arrival - (arrival - code) % WRAP


def beep_index(length_ms):
    """Which second (modulo 4) a beep of this length was sent in (see bench/avprobe/code.rs)."""
    return round((length_ms - 60) / 40) % 4


def beeps(events):
    """Beep onsets with the second they were sent at and the flash of that same second: dicts
    with the second (wall ms), onset/flash PTS and arrival (flash None when not seen). The
    second comes from the beep's length (modulo 4) and its arrival minus the path's typical
    picture latency (so sound and picture may reach the viewer up to 2 s apart)."""
    vs = [e["v"] for e in events if "v" in e and e["v"][1] >= 0]
    est = statistics.median([(v[0] - v[1]) % WRAP for v in vs]) if vs else 0.0
    flashes = {}
    for v in vs:
        if v[3] == 1:
            flashes.setdefault(round(second_of(v[0], v[1]) / 1000) * 1000, v)
    out = []
    for a in (e["a"] for e in events if "a" in e):
        k = (a[0] - est) / 1000
        base = int(k) - 2
        cands = [c for c in range(base, base + 6) if c % 4 == beep_index(a[3])]
        sec = 1000 * min(cands, key=lambda c: abs(k - c - 0.05))
        f = flashes.get(sec)
        out.append({"second": sec, "onset_arrival": a[0], "onset_pts": a[1],
                    "flash_arrival": f[0] if f else None, "flash_pts": f[2] if f else None})
    return out


def path_stats(r):
    ev = r["events"]
    lat = [x[1] for x in video_samples(ev)]
    bp = [x for x in beeps(ev) if x["onset_arrival"] - (ev[0].get("start", 0) if ev else 0) >= WARMUP_MS]
    alat = [x["onset_arrival"] - x["second"] for x in bp]
    first = next((e["first"] for e in ev if "first" in e), {})
    end = next((e["end"] for e in ev if "end" in e), {})
    errors = [e["error"] for e in ev if "error" in e] + ([end["error"]] if end.get("error") else [])
    hist = {}
    for v in lat:
        k = int(v // 2) * 2
        hist[k] = hist.get(k, 0) + 1
    start = ev[0].get("start", 0) if ev else 0
    head = [[round(e["v"][0] - start, 1), round((e["v"][0] - e["v"][1]) % WRAP, 1)] for e in ev if "v" in e and e["v"][1] >= 0][:45]
    return {"name": r["name"], "url": r["url"], "frames": end.get("frames", 0), "coded": end.get("coded", 0),
            "head": head,
            "video": {"n": len(lat), "p50": pct(lat, 50), "p95": pct(lat, 95), "p99": pct(lat, 99),
                      "max": max(lat) if lat else None, "mean": statistics.fmean(lat) if lat else None,
                      "hist_2ms": sorted(hist.items())},
            "audio": {"n": len(alat), "p50": pct(alat, 50), "p95": pct(alat, 95)},
            "first_video_ms": first.get("video_ms"), "size": [first.get("width"), first.get("height")],
            "errors": errors[:5], "stderr": r["stderr"][-300:] if errors else ""}


def conversion_pipelines(http, src, dst):
    p = b.api(http, "GET", f"/api/v1/matrix/plan?from={src}&to={dst}")
    return p.get("pipelines", {})


def first_frames(urls, sessions, seconds):
    """New viewers one after another: connect -> first picture, and the latency each settles at."""
    out = {}
    for name, url in urls:
        rows = []
        for _ in range(sessions):
            r = Receiver(name, url, seconds).wait(seconds + 20)
            ev = r["events"]
            first = next((e["first"]["video_ms"] for e in ev if "first" in e), None)
            start = next((e["start"] for e in ev if "start" in e), None)
            connected = next((e["connected"] - start for e in ev if "connected" in e and start), None)
            vs = [e["v"] for e in ev if "v" in e and e["v"][1] >= 0]
            tail = [(v[0] - v[1]) % WRAP for v in vs[-15:]]
            rows.append({"first_video_ms": first, "connected_ms": connected,
                         "settled_latency_ms": statistics.median(tail) if tail else None})
        firsts = [x["first_video_ms"] for x in rows if x["first_video_ms"] is not None]
        out[name] = {"sessions": rows, "p50": pct(firsts, 50), "p95": pct(firsts, 95), "max": max(firsts) if firsts else None,
                     "missing": sum(1 for x in rows if x["first_video_ms"] is None)}
    return out


def scenario(tmp, seconds, sessions, late_audio_s=5.0):
    """One run of every path for `seconds`, then `sessions` first-frame viewers per kind."""
    d = tmp / "latency"
    d.mkdir()
    gw, http, rtmp = b.gateway(d, extra=["--webrtc-ip", "127.0.0.1"])
    life = seconds + 6 * sessions * 6 + 60
    direct, direct_ts = b.free_port(), b.free_port()
    sources = [start_source("rtmp", f"rtmp://{rtmp}/live/lat", life, ["--serve", str(direct)]),
               start_source("whip", f"http://{http}/whip/latw", life),
               start_source("h5", f"http://{http}/h5/lath", life, ["--serve", str(direct_ts)])]
    wait_live(http, "lat")
    wait_live(http, "latw")
    wait_live(http, "lath")
    h5 = conversion_pipelines(http, "rtmp", "h5")
    web = conversion_pipelines(http, "rtmp", "webrtc")
    back = conversion_pipelines(http, "h5", "rtmp")
    paths = [
        ("direct", f"tcp+flv://127.0.0.1:{direct}", []),
        ("direct+h5conv", f"tcp+flv://127.0.0.1:{direct}",
         ["--convert-video", h5["video"] + " ! mpegvideoparse ! avdec_mpeg2video max-threads=1",
          "--convert-audio", h5["audio"] + " ! avdec_mp2float"]),
        ("direct+opus", f"tcp+flv://127.0.0.1:{direct}", ["--convert-audio", web["audio"] + " ! opusdec"]),
        ("rtmp->httpflv", f"http://{http}/live/lat.flv", []),
        ("rtmp->rtmp", f"rtmp://{rtmp}/live/lat", []),
        ("rtmp->whep", f"whep+http://{http}/whep/lat", []),
        ("rtmp->h5", f"ws://{http}/h5/lat", []),
        ("whip->rtmp", f"rtmp://{rtmp}/live/latw", []),
        ("whip->whep", f"whep+http://{http}/whep/latw", []),
        ("h5->rtmp", f"http://{http}/live/lath.flv", []),
        ("direct-ts", f"tcp+ts://127.0.0.1:{direct_ts}", []),
        ("direct-ts+conv", f"tcp+ts://127.0.0.1:{direct_ts}",
         ["--convert-video", back["video"] + " ! avdec_h264 max-threads=1", "--convert-audio", back["audio"] + " ! avdec_aac"]),
    ]
    receivers = [Receiver(n, u, seconds, x) for n, u, x in paths]
    # The mini-program publisher starts last; its viewer joins before its audio does.
    sources.append(start_source("rtmp", f"rtmp://{rtmp}/mini/late", seconds + 30, ["--audio-delay", str(late_audio_s)]))
    wait_live(http, "late", audio=False)
    receivers.append(Receiver("mini-late", f"http://{http}/mini/late.flv", max(seconds - 2, late_audio_s + 10)))
    load = open("/proc/loadavg").read().split()[:3]
    results = [r.wait(seconds + 40) for r in receivers]
    streams = b.api(http, "GET", "/api/v1/streams")["streams"]
    conversions = sorted({(s["key"], c["track"], c["from"], c["to"]) for s in streams for c in s["conversions"]})
    ff = first_frames([("rtmp->httpflv", f"http://{http}/live/lat.flv"), ("rtmp->rtmp", f"rtmp://{rtmp}/live/lat"),
                       ("rtmp->whep", f"whep+http://{http}/whep/lat"), ("rtmp->h5", f"ws://{http}/h5/lat"),
                       ("whip->rtmp", f"rtmp://{rtmp}/live/latw")], sessions, 4)
    for p in sources + [gw]:
        b.stop(p)
    return {"seconds": seconds, "loadavg_during": load, "late_audio_s": late_audio_s,
            "paths": [path_stats(r) for r in results], "first_frame": ff,
            "conversions": [list(c) for c in conversions], "pipelines": {"rtmp->h5": h5, "rtmp->webrtc": web, "h5->rtmp": back},
            "raw": {r["name"]: [e for e in r["events"] if "a" in e or ("v" in e and e["v"][3] == 1)] for r in results},
            "latency_samples": {r["name"]: [round(x[1], 1) for x in video_samples(r["events"])] for r in results}}


def added(result):
    """Per path: video and audio latency above its reference (direct, or the conversion's own)."""
    by = {p["name"]: p for p in result["paths"]}
    refs = {"rtmp->httpflv": ("direct", "direct"), "rtmp->rtmp": ("direct", "direct"),
            "rtmp->whep": ("direct", "direct+opus"), "rtmp->h5": ("direct+h5conv", "direct+h5conv"),
            "whip->rtmp": ("direct", None), "whip->whep": ("direct", None), "h5->rtmp": ("direct-ts+conv", "direct-ts+conv"),
            "direct-ts+conv": ("direct-ts", "direct-ts"),
            "direct+h5conv": ("direct", "direct"), "direct+opus": (None, "direct")}
    out = {}
    for name, (vref, aref) in refs.items():
        p = by.get(name)
        if not p:
            continue
        row = {}
        for track, ref in (("video", vref), ("audio", aref)):
            r = by.get(ref) if ref else None
            for q in ("p50", "p95"):
                mine, base = p[track][q], (r[track][q] if r else None)
                row[f"{track}_{q}"] = mine
                row[f"{track}_{q}_added"] = mine - base if mine is not None and base is not None else None
            row[f"{track}_ref"] = ref
        out[name] = row
    return out


def report(result):
    add = added(result)
    lines = ["| path | pictures (read) | video p50 / p95 (ms) | added p50 / p95 over | audio p50 / p95 (ms) | audio added p50 / p95 over | first picture (ms) |",
             "|---|---|---|---|---|---|---|"]
    f = lambda v: "-" if v is None else f"{v:.1f}"
    for p in result["paths"]:
        a = add.get(p["name"], {})
        lines.append(f"| {p['name']} | {p['frames']} ({p['coded']}) | {f(p['video']['p50'])} / {f(p['video']['p95'])} | "
                     f"{f(a.get('video_p50_added'))} / {f(a.get('video_p95_added'))} {a.get('video_ref') or ''} | "
                     f"{f(p['audio']['p50'])} / {f(p['audio']['p95'])} | {f(a.get('audio_p50_added'))} / {f(a.get('audio_p95_added'))} "
                     f"{a.get('audio_ref') or ''} | {f(p['first_video_ms'])} |")
    lines += ["", "first picture for a new viewer (connect -> first decoded picture), and the latency each settled at:"]
    for k, v in result["first_frame"].items():
        settled = [s["settled_latency_ms"] for s in v["sessions"]]
        lines.append(f"  {k}: p50 {f(v['p50'])} ms, p95 {f(v['p95'])} ms, max {f(v['max'])} ms (missing {v['missing']}); "
                     f"settled latency per session: {', '.join(f(x) for x in settled)}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--sessions", type=int, default=6)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.quick:
        a.seconds, a.sessions = 20, 1
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "interop-gateway", "--example", "avprobe"], cwd=b.ROOT, check=True)
    r = scenario(b.tmpdir(), a.seconds, a.sessions, late_audio_s=3 if a.quick else 5)
    if a.json:
        b.pathlib.Path(a.json).write_text(json.dumps(r))
    print(report(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
