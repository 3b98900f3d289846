"""Writes what bench/run.py measured: `benchmarks.md` (tables, how it was measured, the targets
met or not and what limits each shortfall), PNG plots in `bench/` beside it (when matplotlib is
installed; else a note says they were skipped) and the raw figures as `bench/results.json`."""

import json
import os
import pathlib
import platform
import subprocess

import avsync
import hls
import srs
import targets
import whep_cost

FIGURES = "bench"


def machine():
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name, cmd in (("ffmpeg", ["ffmpeg", "-version"]), ("gstreamer", ["gst-launch-1.0", "--version"]),
                      ("nginx", ["nginx", "-v"])):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            text = (p.stdout or p.stderr).splitlines()
            versions[name] = text[1 if name == "gstreamer" and len(text) > 1 else 0].strip()
        except (OSError, subprocess.TimeoutExpired):
            versions[name] = "?"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=pathlib.Path(__file__).parent, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = "?"
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(), "loadavg_start": open("/proc/loadavg").read().split()[:3],
            "versions": versions, "commit": commit}


def pct(x, digits=1):
    return "-" if x is None else f"{100 * x:.{digits}f}%"


def num(x, digits=1, sign=False):
    if x is None:
        return "-"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def mib(kib):
    return "-" if kib is None else f"{kib / 1024:.1f}"


def res(results, name):
    step = results["steps"].get(name) or {}
    return step.get("result")


def above_ratio(above_kib, ffmpeg_kib):
    """ffmpeg's total PSS over the gateway's growth above idle; '-' when the growth is within
    measuring noise (under 1 MiB: PSS also moves with pages shared with other processes)."""
    return f"{targets.ratio(above_kib, ffmpeg_kib):.1f}×" if above_kib >= 1024 else "- (< 1 MiB above idle)"


def section_remux(results):
    rows = ["| bridge | N | gateway CPU/bridge | ffmpeg CPU/bridge | gst-launch CPU/bridge | ffmpeg ÷ gateway CPU | "
            "gateway PSS (total, MiB) | gateway PSS/bridge above idle | ffmpeg PSS/bridge | gst PSS/bridge | ffmpeg ÷ gateway PSS (total / above idle) | check |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res(results, "remux") or []:
        n, m = r["bridges"], r["measure"]
        g, f, s = m["gateway"], m["ffmpeg"], m.get("gst")
        above = max(g["pss_kib"] - r["idle"]["pss_kib"], 1)
        check = r.get("read_back") or r.get("viewers_with_data")
        name = "RTMP → RTMP push" if r["scenario"] == "push" else "RTMP → HTTP-FLV"
        rows.append(f"| {name} | {n} | {pct(g['cpu_cores'] / n, 2)} | {pct(f['cpu_cores'] / n, 2)} | "
                    f"{pct(s['cpu_cores'] / n, 2) if s else '-'} | {targets.ratio(g['cpu_cores'], f['cpu_cores']):.1f}× | "
                    f"{mib(g['pss_kib'])} | {mib(above / n)} | {mib(f['pss_kib'] / n)} | {mib(s['pss_kib'] / n) if s else '-'} | "
                    f"{targets.ratio(g['pss_kib'], f['pss_kib']):.1f}× / {above_ratio(above, f['pss_kib'])} | {check} |")
    u = res(results, "udp")
    if u:
        n, g, f = u["streams"], u["measure"]["gateway"], u["measure"]["ffmpeg"]
        above = max(g["pss_kib"] - u["idle"]["pss_kib"], 1)
        rows.append(f"| UDP/RTP (H.264+AAC) → RTMP push | {n} | {pct(g['cpu_cores'] / n, 2)} | {pct(f['cpu_cores'] / n, 2)} | - | "
                    f"{targets.ratio(g['cpu_cores'], f['cpu_cores']):.1f}× | {mib(g['pss_kib'])} | {mib(above / n)} | {mib(f['pss_kib'] / n)} | - | "
                    f"{targets.ratio(g['pss_kib'], f['pss_kib']):.1f}× / {above_ratio(above, f['pss_kib'])} | "
                    f"pushes live {u['gateway_pushes_live']}/{n}, conversions {u['gateway_conversions'] or 'none'} |")
    w = res(results, "whip_whep")
    if w:
        n, g = w["bridges"], w["measure"]["gateway"]
        above = max(g["pss_kib"] - w["idle"]["pss_kib"], 1)
        rows.append(f"| WHIP → WHEP | {n} | {pct(g['cpu_cores'] / n, 2)} | - | - | - | {mib(g['pss_kib'])} | {mib(above / n)} | - | - | - | "
                    f"viewers: {w['viewers'].get('with_video')}/{n} with video, slowest {w['viewers'].get('min_fps')} fps |")
    return "\n".join(rows)


def section_udp_ingest(results):
    rows = ["| N | gateway CPU/stream (% of a core) | above idle/stream | ffmpeg RTP demuxer CPU/stream | gateway ÷ ffmpeg (total / above idle) | gateway frames/s per stream | check |",
            "|---|---|---|---|---|---|---|"]
    for r in res(results, "udp_ingest") or []:
        n, g, f, idle = r["streams"], r["measure"]["gateway"], r["measure"]["ffmpeg"], r["idle"]
        fps = [v for v in r["gateway_frames_per_s"].values() if v is not None]
        rows.append(f"| {n} | {pct(g['cpu_cores'] / n, 2)} | {pct((g['cpu_cores'] - idle['cpu_cores']) / n, 2)} | "
                    f"{pct(f['cpu_cores'] / n, 2)} | {targets.ratio(f['cpu_cores'], g['cpu_cores']):.2f}× / "
                    f"{targets.ratio(f['cpu_cores'], g['cpu_cores'] - idle['cpu_cores']):.2f}× | "
                    f"{min(fps) if fps else '-'} | live {r['gateway_live']}/{n}, ffmpeg alive {r['ffmpeg_alive']}/{n} |")
    return "\n".join(rows)


def section_fanout(results):
    fo = res(results, "fanout") or {}
    rows = ["| viewers of 1 stream | by | gateway CPU (of one core) | publisher only | per extra viewer | gateway PSS (MiB) | viewers with data | slowest viewer | longest stall | conversions |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in fo.get("httpflv", []):
        g, idle, rd = r["measure"], r["idle"], r["readers"]
        rows.append(f"| {r['viewers']} | HTTP-FLV | {pct(g['cpu_cores'])} | {pct(idle['cpu_cores'])} | "
                    f"{pct((g['cpu_cores'] - idle['cpu_cores']) / r['viewers'], 3)} | {mib(g['pss_kib'])} | {rd.get('with_data')}/{r['viewers']} | - | {rd.get('max_stall_ms')} ms | - |")
    for kind in ("rtmp", "whep"):
        r = fo.get(kind)
        if not r:
            continue
        for st in r["steps"]:
            g, rd = st["measure"]["gateway"], st["readers"]
            conv = [c for c in st["conversions"] if c[0] == "fan"]
            rows.append(f"| {st['viewers']} | {kind.upper()} | {pct(g['cpu_cores'])} | {pct(r['idle']['cpu_cores'])} | "
                        f"{pct((g['cpu_cores'] - r['idle']['cpu_cores']) / st['viewers'], 3)} | {mib(g['pss_kib'])} | "
                        f"{rd.get('with_video')}/{st['viewers']} | {rd.get('min_fps')} fps | {rd.get('max_stall_ms')} ms | "
                        f"{', '.join(f'{c[1]} {c[2]}→{c[3]} ×{c[4]} viewers' for c in conv) or 'none'} |")
    r = fo.get("h5")
    if r:
        one, allv, rd = r["one_viewer"], r["all_viewers"], r["readers"]
        rows.append(f"| {r['viewers']} | H5 WebSocket | {pct(allv['cpu_cores'])} | (1 viewer: {pct(one['cpu_cores'])}) | "
                    f"{pct((allv['cpu_cores'] - one['cpu_cores']) / max(r['viewers'] - 1, 1), 3)} | {mib(allv['pss_kib'])} | "
                    f"{rd.get('with_data')}/{r['viewers'] - 1} (+1) | {rd.get('min_fps')} fps | {rd.get('max_stall_ms')} ms | "
                    f"{', '.join(f'{c[0]} {c[1]}→{c[2]} ×{c[3]} viewers' for c in r['conversions'])} |")
    return "\n".join(rows)


def section_conversions(results, t):
    rows = ["| conversion | N at once | gateway CPU/stream | ffmpeg CPU/stream | gst-launch CPU/stream | codec floor (ours, 1 thread) | floor (ffmpeg, 1 thread) | gateway ÷ floor | real time (slowest) | conversions running |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for row in t["conversion_rows"]:
        rows.append("| " + " | ".join(row) + " |")
    return "\n".join(rows)


def section_latency(results):
    lat = res(results, "latency")
    if not lat:
        return "(the latency run did not complete)"
    add = lat.get("added", {})
    rows = ["| path | what converts | pictures decoded (code read) | picture latency p50 / p95 (ms) | added p50 / p95 (ms) over | sound latency p50 / p95 (ms) | sound added p50 / p95 over |",
            "|---|---|---|---|---|---|---|"]
    what = {"direct": "nothing (no gateway)", "direct+h5conv": "the gateway's H.264→MPEG-1 and AAC→MP2 pipelines, no gateway",
            "direct+opus": "the gateway's AAC→Opus pipeline, no gateway",
            "rtmp->httpflv": "nothing", "rtmp->rtmp": "nothing", "rtmp->whep": "AAC→Opus (video copied)", "rtmp->h5": "H.264→MPEG-1, AAC→MP2",
            "whip->rtmp": "Opus→AAC (video copied)", "whip->whep": "nothing", "h5->rtmp": "MPEG-1→H.264, MP2→AAC", "direct-ts": "nothing (H5 source, no gateway)",
            "mini-late": "nothing (sound starts late)"}
    for p in lat["paths"]:
        a = add.get(p["name"], {})
        rows.append(f"| {p['name']} | {what.get(p['name'], '')} | {p['frames']} ({p['coded']}) | {num(p['video']['p50'])} / {num(p['video']['p95'])} | "
                    f"{num(a.get('video_p50_added'))} / {num(a.get('video_p95_added'))} {a.get('video_ref') or ''} | "
                    f"{num(p['audio']['p50'])} / {num(p['audio']['p95'])} | {num(a.get('audio_p50_added'))} / {num(a.get('audio_p95_added'))} {a.get('audio_ref') or ''} |")
    rows += ["", "| new viewer by | first picture p50 / p95 / max (ms) | latency each session settled at (ms) |", "|---|---|---|"]
    for k, v in lat["first_frame"].items():
        settled = ", ".join(num(s["settled_latency_ms"], 0) for s in v["sessions"])
        rows.append(f"| {k} | {num(v['p50'], 0)} / {num(v['p95'], 0)} / {num(v['max'], 0)} | {settled} |")
    return "\n".join(rows)


def section_hls(results):
    r = res(results, "hls")
    if not r:
        return "(the HLS run did not complete)"
    return HLS_HOW + "\n\n" + hls.tables(r)


HLS_HOW = """`GET /hls/{stream}/fmp4.m3u8` (LL-HLS, fMP4, ~200 ms parts, 2 s segments, blocking reload)
and `ts.m3u8` (plain HLS, MPEG-TS segments), beside HTTP-FLV, measured by `bench/hls.py`.
Latency: the same timestamped pictures as above, one source, every path at once. avprobe reads
FLV and MPEG-TS, so the HLS paths reach it through a copying `ffmpeg -c copy -f mpegts` relay
(video only); `rtmp->httpflv+relay` runs the HTTP-FLV path through the same relay, so what the
relay itself adds is visible. `rtmp->llhls` is read by the script's own LL-HLS client (init,
every part from the newest independent one, then blocking reloads at the preload hint and each
new part), `rtmp->hls-ts` and `rtmp->hls-fmp4` by ffmpeg's HLS demuxer (`ts.m3u8`,
`index.m3u8`; ffmpeg does not do LL-HLS and fetches whole segments). Arrival latency: a
picture when decoded (first 2.5 s skipped), as for the other paths above. Player latency: a
player that plays by timestamps in real time from the first picture it got and waits (never
skips) when one is late: set by where the client joined (ffmpeg starts 3 segments back from a
full playlist; the LL-HLS client at the newest segment's start, hls.js would join nearer the
edge at PART-HOLD-BACK, 0.6 s) and by its stalls. Fan-out: N viewers of one stream per side,
the sides one after another on the same gateway and publisher; HLS viewers are Python asyncio
clients on keep-alive connections that fetch every playlist and part (or segment) like a
player, HTTP-FLV viewers `flv_readers`. CPU per viewer-second counts the gateway's CPU above
the publisher alone, so the shared packager's cost is spread over the N HLS viewers."""


def section_avsync(results):
    lat = res(results, "latency")
    if not lat:
        return "(the A/V run did not complete)"
    text = avsync.report(lat["avsync"], lat["seconds"]).split("\n", 2)[2]
    return text


def write(results, out):
    out = pathlib.Path(out)
    figs = out / FIGURES
    figs.mkdir(parents=True, exist_ok=True)
    t = targets.evaluate(results)
    try:
        import plots
        made = plots.draw(results, figs)
        plot_note = ""
    except ImportError as e:
        made, plot_note = [], f"Plots skipped: {e} (`pip install matplotlib` to draw them)."
        print(f"report: {plot_note}")
    lat = res(results, "latency")
    if lat:  # per-picture samples went into the plots; the JSON keeps percentiles and histograms
        lat.pop("latency_samples", None)
    (figs / "results.json").write_text(json.dumps(results, indent=1, default=str))
    md = out / "benchmarks.md"
    md.write_text(markdown(results, t, made, plot_note))
    return md


def markdown(results, t, made, plot_note):
    m = results["machine"]
    failed = [n for n, s in results["steps"].items() if s["error"]]
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `python3 bench/run.py --{results['mode']}` on {results['started']} (commit {m['commit']}), "
        f"{results['duration_s'] / 60:.1f} minutes. Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, "
        f"load average at start {' '.join(m['loadavg_start'])} (shared with other work: figures carry that noise, "
        f"both sides of a comparison alike). {m['versions'].get('ffmpeg', '')}; {m['versions'].get('gstreamer', '')}; {m['versions'].get('nginx', '')}.",
        "Raw figures: [`bench/results.json`](bench/results.json)." + (f" Failed steps: {', '.join(failed)} (their errors are in the JSON)." if failed else ""),
        *[f"Steps {', '.join(u['steps'])} were run again with `--only ... --update` on {u['started']} "
          f"(commit {u['machine']['commit']}, {u['duration_s'] / 60:.1f} minutes); their figures are from that run."
          for u in results.get("updates", [])],
        "",
        "## Targets",
        "",
        "| target | figure | verdict |",
        "|---|---|---|",
    ]
    for row in t["rows"]:
        lines.append(f"| {row['target']} | {row['figure']} | {row['verdict']} |")
    lines += ["", "## How it was measured", "", HOW, ""]
    if made or plot_note:
        lines += ["## Plots", ""]
        lines += [f"![{title}]({FIGURES}/{name})" for name, title in made]
        if plot_note:
            lines.append(plot_note)
        lines.append("")
    lines += ["## Passthrough (remux) bridges, N at once", "", section_remux(results), "",
              "### UDP/RTP ingest only, against ffmpeg's RTP demuxer", "",
              "The same sender stream (H.264 1 Mbit/s + Opus, RTP) into the gateway's udp-ingest with no consumer and into "
              "`ffmpeg -protocol_whitelist file,udp,rtp -i f.sdp -c copy -f null -`, N of each at once, CPU from /proc over the same window. "
              "'Above idle' takes off what the gateway spends with no stream at all (its timers and watchdog, paid once).", "",
              section_udp_ingest(results), "",
              "## Fan-out", "", section_fanout(results), "",
              "### Fan-out against SRS (HTTP-FLV, RTMP, WHEP)", "", srs.section((res(results, "fanout") or {}).get("srs")), "",
              "### CPU per WHEP viewer: str0m against webrtcbin", "", whep_cost.section((res(results, "fanout") or {}).get("whep_cost")), "",
              "## Conversions against their codec floor and ffmpeg per bridge", "", section_conversions(results, t), ""]
    lines += t["capacity_lines"]
    lines += ["", "## Added latency and first picture", "", section_latency(results), "",
              "## A/V sync", "", section_avsync(results), "",
              "## HLS and LL-HLS", "", section_hls(results), "",
              "## What limits the shortfalls", ""]
    lines += [f"- {n}" for n in t["notes"]] or ["- Every target was met."]
    return "\n".join(lines) + "\n"


HOW = """- One command runs everything: `python3 bench/run.py` (`--quick`: the CI smoke run). All on
  127.0.0.1; every scenario starts its own gateway (release build), nginx-rtmp origin, sources
  and viewers, and stops them. Sources loop pre-encoded clips with `-c copy` (640x360 or
  1280x720, 30 fps, H.264 + AAC; MPEG-1 + MP2 TS for H5 publishers) so that they cost little.
- Peers: one `ffmpeg` process per bridge, and where a command line can do the same, one
  `gst-launch-1.0` per bridge (`rtmp2src ! flvdemux ! h264parse/aacparse ! flvmux ! rtmp2sink`
  for remux; `... avdec_aac ! opusenc ! rtpopuspay ! udpsink` for AAC→Opus). No gst-launch
  column elsewhere: Debian's GStreamer has no working MPEG-1 encoder (`avenc_mpeg1video` rejects
  every caps, `mpeg2enc` is about 40× slower), no HTTP server for HTTP-FLV or H5, and webrtcbin
  needs a signalling program, not a command line. Gateway and peers run in the same
  measurement window, so the noise of this shared machine hits both.
- CPU: utime+stime from `/proc/PID/stat` of whole process trees over the window (the kernel's
  own accounting), in cores (100% = one core busy). Memory: PSS from `smaps_rollup` (RSS where
  PSS cannot be read); "above idle" subtracts the gateway's PSS before any stream.
- Codec floor: the same decode+encode with no IO on one thread, run flat out: the gateway's own
  GStreamer pipelines (read from its plan API, decoders and x264 set to one thread) and
  `ffmpeg -threads 1 ... -f null -`, as CPU seconds per second of media.
- Real time: viewers count what they get per second (FLV/RTMP video messages, TS pictures,
  WHEP frames); a stream holds when its slowest viewer gets ≥ 95% of 30 fps. Capacity: N raised
  (by 4 for H.264→MPEG-1, by 2 for MPEG-1→H.264) until a stream misses real time, each side
  alone on the machine, the sides' steps in turn (gateway N, ffmpeg N, ...) so that a drift in
  the machine's speed hits both. On this shared virtual machine the speed does drift: the same
  sweep run at different times moved by up to 8 streams (both sides), so compare the sides of
  one run, not figures of different runs.
- Latency: `bench/avprobe` sources draw each picture's send time (wall-clock ms) as 24
  black/white blocks (and their inverse, to reject misreads), flash white and start a 1 kHz
  beep at each whole second (its length tells the second modulo 4). Receivers play the gateway
  like real clients (HTTP-FLV, RTMP, WHEP with a 0 ms jitterbuffer, H5 WebSocket), decode with
  one thread per decoder and read the blocks back: latency = arrival of the decoded picture -
  the time in it (same clock). "Added" subtracts the same source decoded without the gateway
  (its own FLV or TS over TCP), or, for conversions, the same source run through the
  gateway's own conversion pipeline in the receiver (the codec delay), so what is left is the
  gateway. The first 2.5 s of each path are skipped (cached GOP burst). First picture: new
  viewers one after another, connect → first decoded picture.
- A/V: beep PTS - flash PTS of the same second on the viewer's decoded timeline (a player that
  follows timestamps), and by arrival (JSMpeg ignores timestamps: H5 is judged by arrival);
  start and end are the medians of the first and last 5 seconds of the run."""
