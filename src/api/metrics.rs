//! `GET /metrics` in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::gateway::Gateway;
use crate::media::Protocol;

#[utoipa::path(get, path = "/metrics", tag = "operations",
    summary = "Prometheus metrics",
    description = "Streams, publishers and consumers by protocol, conversions, bytes, admission and \
        process figures, in the Prometheus text format. Guarded like the control API (role `read`).",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4",
            content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
    ))]
pub async fn metrics(State(gw): State<Gateway>) -> impl IntoResponse {
    let body = render(&gw);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}

fn render(gw: &Gateway) -> String {
    let hub = &gw.hub;
    let m = hub.metrics();
    let streams = hub.streams();
    let mut consumers: BTreeMap<Protocol, usize> = Protocol::ALL.iter().map(|p| (*p, 0)).collect();
    let mut publishers: BTreeMap<Protocol, usize> = Protocol::ALL.iter().map(|p| (*p, 0)).collect();
    let mut conversions: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for s in &streams {
        *publishers.entry(s.publisher().protocol).or_default() += 1;
        for c in s.consumers() {
            *consumers.entry(c.protocol).or_default() += 1;
        }
        for c in s.conversions() {
            let key = (c.key.track.to_string(), c.key.from.to_string(), c.key.to.to_string());
            *conversions.entry(key).or_default() += 1;
        }
    }
    let mut text = String::new();
    let _ = writeln!(text, "# HELP interop_streams Live streams.\n# TYPE interop_streams gauge");
    let _ = writeln!(text, "interop_streams {}", streams.len());
    let _ = writeln!(text, "# HELP interop_publishers Live publishers by protocol.\n# TYPE interop_publishers gauge");
    for (p, n) in &publishers {
        let _ = writeln!(text, "interop_publishers{{protocol=\"{p}\"}} {n}");
    }
    let _ = writeln!(text, "# HELP interop_consumers Attached consumers by protocol.\n# TYPE interop_consumers gauge");
    for (p, n) in &consumers {
        let _ = writeln!(text, "interop_consumers{{protocol=\"{p}\"}} {n}");
    }
    let _ = writeln!(text, "# HELP interop_conversions Running conversions.\n# TYPE interop_conversions gauge");
    let _ = writeln!(text, "interop_conversions_total_running {}", conversions.values().sum::<usize>());
    for ((track, from, to), n) in &conversions {
        let _ = writeln!(text, "interop_conversions{{track=\"{track}\",from=\"{from}\",to=\"{to}\"}} {n}");
    }
    let a = gw.admission.stats();
    for (name, help, v) in [
        ("interop_admission_allowed_total", "Publish and play requests admitted.", a.allowed),
        ("interop_admission_denied_total", "Publish, play and API requests refused.", a.denied),
        ("interop_admission_webhook_calls_total", "Questions sent to the admission webhook.", a.webhook_calls),
        ("interop_admission_webhook_cache_hits_total", "Webhook answers reused from the cache.", a.webhook_cache_hits),
        ("interop_event_hooks_dropped_total", "Event notices dropped (queue full).", a.events_dropped),
        (
            "interop_webrtc_frames_packetized_total",
            "Frames packetized into RTP for WHEP viewers (once per frame, shared by all its viewers).",
            crate::media::rtp::packetize::frames_packetized(),
        ),
        (
            "interop_webrtc_rtp_payloads_total",
            "RTP payloads made for WHEP viewers (before each viewer's header and encryption).",
            crate::media::rtp::packetize::payloads_made(),
        ),
    ] {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
    }
    let _ = writeln!(text, "# HELP interop_gstreamer_pipelines GStreamer pipelines running (set playing, not yet stopped).\n# TYPE interop_gstreamer_pipelines gauge");
    let _ = writeln!(text, "interop_gstreamer_pipelines {}", crate::pipeline::live::count());
    for (name, help, get) in [
        ("interop_bytes_in_total", "Media bytes received from publishers.", true),
        ("interop_bytes_out_total", "Media bytes sent to consumers.", false),
    ] {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} counter");
        for p in Protocol::ALL {
            let v = if get { m.bytes_in(p) } else { m.bytes_out(p) };
            let _ = writeln!(text, "{name}{{protocol=\"{p}\"}} {v}");
        }
    }
    let _ = writeln!(text, "# HELP interop_publishes_refused_total Publishes refused because the key was live.\n# TYPE interop_publishes_refused_total counter");
    let _ = writeln!(text, "interop_publishes_refused_total {}", m.publishes_refused());
    let _ = writeln!(text, "# HELP interop_consumers_dropped_slow_total Consumers disconnected for falling behind.\n# TYPE interop_consumers_dropped_slow_total counter");
    let _ = writeln!(text, "interop_consumers_dropped_slow_total {}", m.consumers_too_slow());
    let name = "interop_h264_refused_total";
    let _ = writeln!(text, "# HELP {name} H.264 from publishers refused by the gateway's own checks (NAL units, frames, RTP packets).\n# TYPE {name} counter");
    for p in Protocol::ALL {
        let _ = writeln!(text, "{name}{{protocol=\"{p}\"}} {}", m.h264_refused(p));
    }
    let name = "interop_rtp_payload_refused_total";
    let _ = writeln!(text, "# HELP {name} RTP packets dropped because their VP8, Opus, AAC or MPEG payload header is invalid.\n# TYPE {name} counter");
    for p in Protocol::ALL {
        let _ = writeln!(text, "{name}{{protocol=\"{p}\"}} {}", m.rtp_payload_refused(p));
    }
    let _ = writeln!(text, "# HELP interop_relays Pushes and pulls by state.\n# TYPE interop_relays gauge");
    for (kind, state, n) in gw.relays.counts_by_state() {
        let _ = writeln!(text, "interop_relays{{kind=\"{kind}\",state=\"{state}\"}} {n}");
    }
    for (name, help, v) in [
        ("interop_hls_packagers", "HLS packagers running (one per stream and variant).", gw.hls.count()),
        (
            "interop_hls_sessions",
            "HLS viewing sessions open (only when play needs admission).",
            gw.hls_sessions.count(),
        ),
        ("interop_recordings", "Recordings running.", gw.recordings.running_count()),
        ("interop_clip_windows", "Live streams keeping a window for clips.", gw.clips.windows()),
    ] {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    }
    gw.udp.render_metrics(&mut text);
    render_watchdog(&mut text, &gw.watchdog);
    render_process(&mut text);
    if let Some(cluster) = &gw.cluster {
        render_cluster(&mut text, cluster);
    }
    text
}

/// The watchdog's probes: worst wake-up delay since the previous scrape, and pauses so far.
fn render_watchdog(text: &mut String, w: &crate::watchdog::Watchdog) {
    let _ = writeln!(text, "# HELP interop_wake_delay_max_seconds Worst wake-up delay since the previous scrape: probe=runtime (a tokio task), probe=thread (a plain thread).\n# TYPE interop_wake_delay_max_seconds gauge");
    for (probe, l) in [("runtime", &w.runtime), ("thread", &w.thread)] {
        let _ =
            writeln!(text, "interop_wake_delay_max_seconds{{probe=\"{probe}\"}} {:.3}", l.take_worst().as_secs_f64());
    }
    let _ = writeln!(text, "# HELP interop_wake_pauses_total Wake-ups later than 250 ms, per probe.\n# TYPE interop_wake_pauses_total counter");
    for (probe, l) in [("runtime", &w.runtime), ("thread", &w.thread)] {
        let _ = writeln!(text, "interop_wake_pauses_total{{probe=\"{probe}\"}} {}", l.pauses());
    }
}

/// What the process holds: pipelines and tasks alive, and the allocators' view of memory (live
/// bytes against what they keep from the system), to tell a leak from retention.
fn render_process(text: &mut String) {
    let _ = writeln!(text, "# HELP interop_gst_pipelines_alive GStreamer pipelines not yet finalized.\n# TYPE interop_gst_pipelines_alive gauge");
    let _ = writeln!(text, "interop_gst_pipelines_alive {}", crate::pipeline::alive::count());
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        let m = rt.metrics();
        let _ = writeln!(
            text,
            "# HELP interop_tokio_tasks_alive Tokio tasks alive.\n# TYPE interop_tokio_tasks_alive gauge"
        );
        let _ = writeln!(text, "interop_tokio_tasks_alive {}", m.num_alive_tasks());
        let _ =
            writeln!(text, "# HELP interop_tokio_workers Tokio worker threads.\n# TYPE interop_tokio_workers gauge");
        let _ = writeln!(text, "interop_tokio_workers {}", m.num_workers());
    }
    // jemalloc: the Rust side's allocator (see main.rs); zeros when it is not the global one.
    if tikv_jemalloc_ctl::epoch::advance().is_ok() {
        let _ = writeln!(text, "# HELP interop_jemalloc_bytes jemalloc statistics: allocated (live), active, resident, retained.\n# TYPE interop_jemalloc_bytes gauge");
        for (kind, v) in [
            ("allocated", tikv_jemalloc_ctl::stats::allocated::read()),
            ("active", tikv_jemalloc_ctl::stats::active::read()),
            ("resident", tikv_jemalloc_ctl::stats::resident::read()),
            ("retained", tikv_jemalloc_ctl::stats::retained::read()),
        ] {
            if let Ok(v) = v {
                let _ = writeln!(text, "interop_jemalloc_bytes{{kind=\"{kind}\"}} {v}");
            }
        }
    }
    render_glibc_malloc(text);
}

/// glibc malloc (GStreamer, GLib and FFmpeg allocate there unless jemalloc replaces it): bytes
/// in use against the bytes its arenas hold.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn render_glibc_malloc(text: &mut String) {
    // SAFETY: mallinfo2 only reads the allocator's counters; it takes no pointer.
    let info = unsafe { libc::mallinfo2() };
    let _ = writeln!(text, "# HELP interop_glibc_malloc_bytes glibc malloc: in_use (allocated chunks, incl. mmapped), held (arenas + mmapped).\n# TYPE interop_glibc_malloc_bytes gauge");
    let _ = writeln!(text, "interop_glibc_malloc_bytes{{kind=\"in_use\"}} {}", info.uordblks + info.hblkhd);
    let _ = writeln!(text, "interop_glibc_malloc_bytes{{kind=\"held\"}} {}", info.arena + info.hblkhd);
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn render_glibc_malloc(_text: &mut String) {}

fn render_cluster(text: &mut String, cluster: &crate::cluster::Cluster) {
    use std::sync::atomic::Ordering::Relaxed;
    let m = cluster.metrics();
    let up = u64::from(cluster.store().health().is_ok());
    for (name, kind, help, v) in [
        ("interop_cluster_store_up", "gauge", "1 when the cluster store (Redis) answered the last call.", up),
        (
            "interop_cluster_claims",
            "gauge",
            "Stream keys claimed by this node's publishers.",
            cluster.claims_held() as u64,
        ),
        (
            "interop_cluster_links_in",
            "gauge",
            "Relay links bringing streams from other nodes.",
            m.links_in.load(Relaxed),
        ),
        (
            "interop_cluster_links_out",
            "gauge",
            "Relay links serving this node's streams to others.",
            m.links_out.load(Relaxed),
        ),
        (
            "interop_cluster_links_refused_total",
            "counter",
            "Relay links refused (bad proof, stream not here).",
            m.links_refused.load(Relaxed),
        ),
        (
            "interop_cluster_claims_lost_total",
            "counter",
            "Claims found held by another node on refresh.",
            m.claims_lost.load(Relaxed),
        ),
    ] {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
    }
}
