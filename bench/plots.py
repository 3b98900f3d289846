"""PNG plots for bench/report.py (matplotlib; importing this module fails without it, and the
report then says the plots were skipped)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _res(results, name):
    return (results["steps"].get(name) or {}).get("result")


def cost_per_stream(results, path):
    """CPU per stream against the number of streams, per bridge kind and side."""
    series = {}

    def point(panel, side, n, cores):
        series.setdefault(panel, {}).setdefault(side, []).append((n, 100 * cores / n))

    for r in _res(results, "remux") or []:
        panel = "RTMP → RTMP push (remux)" if r["scenario"] == "push" else "RTMP → HTTP-FLV (remux)"
        for side, m in r["measure"].items():
            point(panel, {"gst": "gst-launch"}.get(side, side), r["bridges"], m["cpu_cores"])
    audio = _res(results, "audio") or {}
    for r in audio.get("webrtc_cdn") or []:
        point("WHIP Opus → CDN AAC", "gateway", r["n"], r["measure"]["gateway"]["cpu_cores"])
        point("WHIP Opus → CDN AAC", "ffmpeg", r["n"], r["measure"]["ffmpeg"]["cpu_cores"])
    cap = _res(results, "capacity")
    if cap:
        for side, s in cap["result"].items():
            for x in s["steps"]:
                point("RTMP H.264 360p → H5 MPEG-1 (alone)", side, x["streams"], x["cpu_cores"])
    cap1 = _res(results, "capacity_mpeg1")
    if cap1:
        for side, s in cap1["result"].items():
            for x in s["steps"]:
                point("H5 MPEG-1 → RTMP H.264 (alone)", side, x["streams"], x["cpu_cores"])
    video = _res(results, "video") or {}
    if video.get("h5_360"):
        r = video["h5_360"]
        for side, m in r["measure"].items():
            point("RTMP H.264 360p → H5 MPEG-1 (alone)" if not cap else "RTMP H.264 360p → H5 MPEG-1 (side by side)", side, r["streams"], m["cpu_cores"])
    if not series:
        return False
    panels = list(series)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for side, pts in sorted(series[panel].items()):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=side)
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel("streams at once")
        ax.set_ylabel("CPU per stream (% of a core)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def fanout(results, path):
    fo = _res(results, "fanout") or {}
    lines = {}
    for r in fo.get("httpflv", []):
        lines.setdefault("HTTP-FLV", [(0, r["idle"]["cpu_cores"])]).append((r["viewers"], r["measure"]["cpu_cores"]))
    for kind in ("rtmp", "whep"):
        r = fo.get(kind)
        if r:
            lines[kind.upper()] = [(0, r["idle"]["cpu_cores"])] + [(s["viewers"], s["measure"]["gateway"]["cpu_cores"]) for s in r["steps"]]
    if fo.get("h5"):
        r = fo["h5"]
        lines["H5 (converted once)"] = [(1, r["one_viewer"]["cpu_cores"]), (r["viewers"], r["all_viewers"]["cpu_cores"])]
    if not lines:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, pts in lines.items():
        pts = sorted(dict(pts).items())
        ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], marker="o", label=name)
    ax.axhline(100, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("viewers of one stream")
    ax.set_ylabel("gateway CPU (% of a core)")
    ax.set_title("Fan-out: 1 publisher → N viewers", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def latency(results, path):
    lat = _res(results, "latency")
    if not lat or not lat.get("latency_samples"):
        return False
    samples = {k: v for k, v in lat["latency_samples"].items() if v}
    names = list(samples)
    fig, ax = plt.subplots(figsize=(max(7, 0.75 * len(names)), 4.5))
    ax.boxplot([samples[n] for n in names], whis=(5, 95), showfliers=False)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=35, ha="right", fontsize=8)
    ax.set_yscale("symlog", linthresh=10)
    ax.set_ylabel("picture latency (ms, send → decoded)")
    ax.set_title("Latency per path (box: p25-p75, whiskers p5-p95)", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def avsync(results, path):
    lat = _res(results, "latency")
    if not lat:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = False
    for name, s in lat["avsync"].items():
        if not s.get("pairs"):
            continue
        key = 2 if s.get("judged_by") == "arrival" else 1
        ax.plot([x[0] / 1000 for x in s["series"]], [x[key] for x in s["series"]], label=name + (" (by arrival)" if key == 2 else ""), lw=1)
        drawn = True
    if not drawn:
        plt.close(fig)
        return False
    ax.axhspan(-40, 40, color="green", alpha=0.08)
    ax.set_yscale("symlog", linthresh=50)
    ax.set_xlabel("seconds into the run")
    ax.set_ylabel("sound - picture (ms)")
    ax.set_title("A/V offset over the run (green: ±40 ms)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def hls(results, path):
    r = _res(results, "hls")
    if not r:
        return False
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    paths = r["latency"]["paths"]
    names = [p["name"] for p in paths]
    x = range(len(names))
    for k, (key, label) in enumerate((("video", "arrival"), ("player", "player"))):
        p50 = [p[key]["p50"] or 0 for p in paths]
        p95 = [p[key]["p95"] or 0 for p in paths]
        xs = [i + (k - 0.5) * 0.38 for i in x]
        a1.bar(xs, p50, width=0.38, label=f"{label} p50")
        a1.scatter(xs, p95, marker="_", s=120, color="black", zorder=3, label="p95" if k else None)
    a1.set_xticks(list(x), names, rotation=30, ha="right", fontsize=8)
    a1.set_ylabel("picture latency (ms)")
    a1.set_title("HLS latency per path", fontsize=10)
    a1.grid(alpha=0.3, axis="y")
    a1.legend(fontsize=8)
    rows = r["fanout"]["rows"]
    sides = list(dict.fromkeys(row["side"] for row in rows))
    ns = sorted({row["viewers"] for row in rows})
    w = 0.8 / max(len(sides), 1)
    for k, side in enumerate(sides):
        vals = {row["viewers"]: row["us_per_viewer_s"] for row in rows if row["side"] == side}
        a2.bar([i + (k - (len(sides) - 1) / 2) * w for i in range(len(ns))], [vals.get(n, 0) for n in ns], width=w, label=side)
    a2.set_xticks(range(len(ns)), [f"{n} viewers" for n in ns])
    a2.set_ylabel("gateway CPU per viewer-second (µs)")
    a2.set_title("Fan-out cost: HLS vs HTTP-FLV viewers", fontsize=10)
    a2.grid(alpha=0.3, axis="y")
    a2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def srs_fanout(results, path):
    """Fan-out against SRS: per viewer-second CPU and system calls, added latency p95 and RSS
    against the number of viewers, a line per server and protocol (bench/srs.py)."""
    r = (_res(results, "fanout") or {}).get("srs")
    if not r or not r.get("measured"):
        return False
    import srs
    protocols = srs.protocols_of(r)
    sides = r.get("sides", ["gateway", "srs"])
    panels = (("us_per_viewer_s", "CPU per viewer-second (µs)"), ("syscalls_per_viewer_s", "system calls per viewer-second"),
              ("added_p95_ms", "added latency p95 (ms)"), ("rss_kib", "server RSS (MiB)"))
    styles = {"httpflv": "-", "rtmp": "--", "whep": ":"}
    markers = {"httpflv": "o", "rtmp": "s", "whep": "^"}
    colors = {side: f"C{k}" for k, side in enumerate(sides)}
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for ax, (key, label) in zip(axes.flat, panels):
        for protocol, part in protocols.items():
            for side in sides:
                pts = []
                for st in part["steps"]:
                    x = st.get(side)
                    if not x:
                        continue
                    v = x["readers"].get(key) if key == "added_p95_ms" else x.get(key)
                    if v is not None:
                        pts.append((st["viewers"], v / 1024 if key == "rss_kib" else v))
                if pts:
                    pts.sort()
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], ls=styles.get(protocol, "-"), marker=markers.get(protocol, "o"),
                            color=colors[side], label=f"{srs.LABELS.get(side, side)}, {srs.PROTOCOL_NAMES.get(protocol, protocol)}")
        ax.set_xlabel("viewers of one stream")
        ax.set_ylabel(label)
        if key == "us_per_viewer_s" and "whep" in protocols:
            ax.set_yscale("log")  # a WebRTC viewer costs some ten times an FLV one
        else:
            ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8)
    fig.suptitle(f"Fan-out, gateway against SRS {r.get('srs_version', '')}: 1 publisher → N viewers", fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def draw(results, figs):
    """Draws what the results allow; returns [(file name, title)]."""
    made = []
    for name, title, fn in (("cost_per_stream.png", "CPU per stream against stream count", cost_per_stream),
                            ("fanout.png", "Fan-out CPU against viewers", fanout),
                            ("fanout_srs.png", "Fan-out against SRS: CPU, system calls, added latency, memory per viewer count", srs_fanout),
                            ("latency.png", "Picture latency per path", latency),
                            ("avsync.png", "A/V offset over the run", avsync),
                            ("hls.png", "HLS and LL-HLS: latency and fan-out cost", hls)):
        if fn(results, figs / name):
            made.append((name, title))
    return made
