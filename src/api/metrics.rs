//! `GET /metrics` in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::media::Protocol;
use crate::server::Gateway;

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
    let _ = writeln!(text, "# HELP interop_relays Pushes and pulls by state.\n# TYPE interop_relays gauge");
    for (kind, state, n) in gw.relays.counts_by_state() {
        let _ = writeln!(text, "interop_relays{{kind=\"{kind}\",state=\"{state}\"}} {n}");
    }
    gw.udp.render_metrics(&mut text);
    text
}
