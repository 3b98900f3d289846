//! `GET /api/v1/events`: what the console shows, as server-sent events.
//!
//! One `state` event carries the streams (the shape of `GET /api/v1/streams`), bitrates in
//! and out per stream, pushes, pulls, recordings, the cluster's nodes (in a cluster) and the
//! matrix generation. A snapshot is taken about once a second ([`PERIOD`]) and sent only when
//! it differs from the last one sent; a comment line keeps an idle connection open.
//!
//! Bounded by construction: the body is a stream that takes the next snapshot only when the
//! connection has written the previous event, so a reader that does not read holds at most
//! one event here (plus what the socket buffers), and a reader that goes away drops the
//! stream, which ends it. Shutdown ends it too.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::Stream;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::auth::Role;
use crate::gateway::Gateway;

/// How often a snapshot is taken (and so at most how often one is sent).
pub const PERIOD: Duration = Duration::from_secs(1);
/// A comment goes out after this long without an event, so proxies keep the connection.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// One server-sent event: `event: NAME` and the data, one `data:` line per line of it
/// (a JSON text has none of its own), then the blank line that ends the event.
pub fn frame(event: &str, data: &str) -> String {
    let mut out = String::with_capacity(data.len() + event.len() + 16);
    out.push_str("event: ");
    out.push_str(event);
    out.push('\n');
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    out
}

/// The comment line that keeps an idle connection open (ignored by readers).
pub const KEEPALIVE_FRAME: &str = ": keepalive\n\n";

/// The event stream: every `period`, `snapshot()` is awaited, and its text goes out as a
/// `state` event when it differs from the last one sent (the first always goes); after
/// `keepalive` without an event, a comment does. A snapshot is taken only when the consumer
/// asks for the next chunk, so nothing piles up for a slow reader. Ends when `stop` fires.
pub fn event_stream<F, Fut>(
    snapshot: F,
    period: Duration,
    keepalive: Duration,
    stop: CancellationToken,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = String> + Send,
{
    struct St<F> {
        snapshot: F,
        last: Option<String>,
        last_sent: tokio::time::Instant,
        next: tokio::time::Instant,
        stop: CancellationToken,
    }
    let state =
        St { snapshot, last: None, last_sent: tokio::time::Instant::now(), next: tokio::time::Instant::now(), stop };
    futures_util::stream::unfold(state, move |mut st| async move {
        loop {
            tokio::select! {
                _ = st.stop.cancelled() => return None,
                _ = tokio::time::sleep_until(st.next) => {}
            }
            st.next = tokio::time::Instant::now() + period;
            let text = (st.snapshot)().await;
            if st.last.as_deref() != Some(text.as_str()) {
                let chunk = Bytes::from(frame("state", &text));
                st.last = Some(text);
                st.last_sent = tokio::time::Instant::now();
                return Some((Ok(chunk), st));
            }
            if st.last_sent.elapsed() >= keepalive {
                st.last_sent = tokio::time::Instant::now();
                return Some((Ok(Bytes::from_static(KEEPALIVE_FRAME.as_bytes())), st));
            }
        }
    })
}

/// Bits per second in and out of one stream, from its byte counters between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Bitrate {
    pub in_bps: u64,
    pub out_bps: u64,
}

/// Turns byte counters into rates: keeps each stream's counters from the last snapshot.
#[derive(Default)]
pub struct Rates {
    last: HashMap<String, (u64, u64, Instant)>,
}

impl Rates {
    /// The rates of the streams in `counters` (`key, bytes_in, bytes_out`) at `now`; a stream
    /// seen for the first time gets 0, and a counter that went down (viewers left, a new
    /// publisher) counts as no bytes. Streams gone are forgotten.
    pub fn update(&mut self, counters: &[(String, u64, u64)], now: Instant) -> HashMap<String, Bitrate> {
        let mut out = HashMap::new();
        let mut next = HashMap::new();
        for (key, bytes_in, bytes_out) in counters {
            let rate = match self.last.get(key) {
                Some(&(i0, o0, t0)) if now > t0 => {
                    let secs = now.duration_since(t0).as_secs_f64();
                    let bps = |now: u64, before: u64| (now.saturating_sub(before) as f64 * 8.0 / secs).round() as u64;
                    Bitrate { in_bps: bps(*bytes_in, i0), out_bps: bps(*bytes_out, o0) }
                }
                _ => Bitrate { in_bps: 0, out_bps: 0 },
            };
            out.insert(key.clone(), rate);
            next.insert(key.clone(), (*bytes_in, *bytes_out, now));
        }
        self.last = next;
        out
    }
}

/// What one `state` event carries (its `data:` lines are this, as JSON).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Snapshot {
    /// As `GET /api/v1/streams` lists them.
    streams: Vec<super::streams::StreamView>,
    /// Per stream key: bits per second in and out since the previous snapshot.
    bitrates: HashMap<String, Bitrate>,
    pushes: Vec<crate::protocols::cdn::RelayStatus>,
    pulls: Vec<crate::protocols::cdn::RelayStatus>,
    /// As `GET /api/v1/recordings` answers.
    recordings: serde_json::Value,
    /// As `GET /api/v1/cluster` answers, in a cluster; null outside one.
    cluster: Option<serde_json::Value>,
    matrix_generation: u64,
    /// The media (HTTP) port, for previews when the API has a listener of its own.
    media_port: u16,
}

/// How long a connection reuses the recordings it read (their indexes are files on disk);
/// a change in the number of consumers (a recording is one) reads them at once.
const RECORDINGS_REFRESH: Duration = Duration::from_secs(5);

/// What one connection keeps between snapshots.
#[derive(Default)]
struct Memory {
    rates: Rates,
    /// The recordings last read, when, and the consumer count then.
    recordings: Option<(serde_json::Value, Instant, usize)>,
}

async fn snapshot(gw: &Gateway, role: Option<Role>, headers: &axum::http::HeaderMap, memory: &mut Memory) -> String {
    let streams = super::streams::views_for(gw, role.as_ref());
    let counters: Vec<_> = streams
        .iter()
        .map(|s| (s.key.clone(), s.bytes_in, s.sessions.iter().map(|x| x.bytes_out).sum::<u64>()))
        .collect();
    let bitrates = memory.rates.update(&counters, Instant::now());
    let consumers: usize = streams.iter().map(|s| s.sessions.len()).sum();
    let pushes = super::relays::list_pushes(State(gw.clone())).await.0.pushes;
    let pulls = super::relays::list_pulls(State(gw.clone())).await.0.pulls;
    let recordings = match &memory.recordings {
        Some((value, at, count)) if at.elapsed() < RECORDINGS_REFRESH && *count == consumers => value.clone(),
        _ => {
            let list = super::recordings::list(State(gw.clone()), headers.clone()).await.0;
            let value = serde_json::to_value(list).map(|mut v| v["recordings"].take()).unwrap_or_default();
            memory.recordings = Some((value.clone(), Instant::now(), consumers));
            value
        }
    };
    let cluster = match gw.cluster {
        Some(_) => match super::cluster::get(State(gw.clone())).await {
            Ok(view) => serde_json::to_value(view.0).ok(),
            Err(e) => Some(serde_json::json!({ "error": e.message })),
        },
        None => None,
    };
    let snap = Snapshot {
        streams,
        bitrates,
        pushes,
        pulls,
        recordings,
        cluster,
        matrix_generation: gw.hub.matrix_generation(),
        media_port: gw.http_port(),
    };
    serde_json::to_string(&snap).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// `GET /api/v1/events` (role `read`; addresses for `admin` only, as in `/api/v1/streams`).
#[utoipa::path(get, path = "/api/v1/events", tag = "operations",
    summary = "What the console shows, as server-sent events",
    description = "A `text/event-stream` that stays open: a `state` event (data: a `Snapshot` as JSON) at once \
        and then whenever the snapshot changed, at most once a second; a `: keepalive` comment after 15 s \
        without one. It ends with the connection or the gateway.",
    responses(
        (status = 200, description = "The event stream; each event's data is a `Snapshot`", content_type = "text/event-stream", body = String),
    ))]
pub async fn events(
    State(gw): State<Gateway>,
    role: Option<Extension<Role>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let role = role.map(|Extension(r)| r);
    let stop = gw.shutdown.child_token();
    let memory = std::sync::Arc::new(tokio::sync::Mutex::new(Memory::default()));
    let stream = event_stream(
        move || {
            let gw = gw.clone();
            let headers = headers.clone();
            let memory = memory.clone();
            async move { snapshot(&gw, role, &headers, &mut *memory.lock().await).await }
        },
        PERIOD,
        KEEPALIVE,
        stop,
    );
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
