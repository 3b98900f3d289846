//! The test's own little web server on 127.0.0.1: serves `tests/pages/` and collects what the
//! pages POST to `/report` (events and `getStats()` figures, see `tests/pages/common.js`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

/// One report a page POSTed.
#[derive(Clone, Debug, Deserialize)]
pub struct PageReport {
    /// The page's `id` query parameter (or its path).
    pub id: String,
    /// `event`, `stats` or `probe`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For events: `media`, `offer`, `answered`, `track`, `connected`, `failed`, `stopped`, `error`.
    #[serde(default)]
    pub event: Option<String>,
    /// For events: details (the Location for `answered`, the message for `error`, ...).
    #[serde(default)]
    pub detail: Option<String>,
    /// For `stats`: the figures.
    #[serde(default)]
    pub stats: Option<PageStats>,
    /// The whole JSON as posted.
    #[serde(skip)]
    pub raw: Value,
}

/// `collectStats()` of a page: the peer connection's state and RTP figures per kind.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageStats {
    /// `RTCPeerConnection.connectionState`.
    pub connection_state: String,
    /// `iceConnectionState`.
    pub ice_connection_state: String,
    /// inbound-rtp by kind (`video`, `audio`).
    #[serde(default)]
    pub inbound: HashMap<String, InboundStats>,
    /// outbound-rtp by kind.
    #[serde(default)]
    pub outbound: HashMap<String, OutboundStats>,
}

impl PageStats {
    /// Inbound figures of `kind`, zeros when absent.
    pub fn inbound(&self, kind: &str) -> InboundStats {
        self.inbound.get(kind).cloned().unwrap_or_default()
    }

    /// Outbound figures of `kind`, zeros when absent.
    pub fn outbound(&self, kind: &str) -> OutboundStats {
        self.outbound.get(kind).cloned().unwrap_or_default()
    }
}

/// One inbound-rtp entry (names as in `getStats()`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InboundStats {
    /// RTP packets received.
    pub packets_received: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Packets lost (may be negative with duplicates).
    pub packets_lost: i64,
    /// Video frames decoded.
    pub frames_decoded: u64,
    /// Video keyframes decoded.
    pub key_frames_decoded: u64,
    /// Width of the last decoded frame.
    pub frame_width: u32,
    /// Height of the last decoded frame.
    pub frame_height: u32,
    /// PLIs sent (inbound) or received (outbound).
    pub pli_count: u64,
    /// Audio samples received.
    pub total_samples_received: u64,
    /// e.g. `video/H264`, `audio/opus`.
    pub codec: Option<String>,
}

/// One outbound-rtp entry (names as in `getStats()`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OutboundStats {
    /// RTP packets sent.
    pub packets_sent: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Video frames encoded.
    pub frames_encoded: u64,
    /// Video keyframes encoded.
    pub key_frames_encoded: u64,
    /// PLIs sent (inbound) or received (outbound).
    pub pli_count: u64,
    /// e.g. `video/H264`, `audio/opus`.
    pub codec: Option<String>,
}

type Reports = Arc<Mutex<Vec<PageReport>>>;

/// Serves `tests/pages/*` at `/NAME` and collects `POST /report`. Stops on drop.
pub struct PageServer {
    addr: std::net::SocketAddr,
    reports: Reports,
    task: tokio::task::JoinHandle<()>,
}

impl PageServer {
    /// Starts on 127.0.0.1 (ephemeral port).
    pub async fn start() -> anyhow::Result<PageServer> {
        let reports: Reports = Arc::default();
        let app =
            Router::new().route("/report", post(collect)).route("/{file}", get(serve_page)).with_state(reports.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("bind 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(PageServer { addr, reports, task })
    }

    /// `http://127.0.0.1:PORT/{page}?k=v&...` (values URL-encoded).
    pub fn url(&self, page: &str, query: &[(&str, &str)]) -> String {
        let base = format!("http://{}/{page}", self.addr);
        match reqwest::Url::parse_with_params(&base, query) {
            Ok(url) => url.to_string(),
            Err(_) => base,
        }
    }

    /// Every report so far.
    pub fn reports(&self) -> Vec<PageReport> {
        self.reports.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The latest stats of page `id`.
    pub fn latest_stats(&self, id: &str) -> Option<PageStats> {
        self.reports().into_iter().rev().find(|r| r.id == id && r.stats.is_some()).and_then(|r| r.stats)
    }

    /// Waits for the first report of page `id` that `matches`; fails after `timeout`, or at
    /// once when the page reports an `error` event.
    pub async fn wait_report(
        &self,
        id: &str,
        timeout: Duration,
        what: &str,
        matches: impl Fn(&PageReport) -> bool,
    ) -> anyhow::Result<PageReport> {
        let deadline = Instant::now() + timeout;
        loop {
            let reports: Vec<PageReport> = self.reports().into_iter().filter(|r| r.id == id).collect();
            if let Some(found) = reports.iter().find(|r| matches(r)) {
                return Ok(found.clone());
            }
            if let Some(error) = reports.iter().find(|r| r.event.as_deref() == Some("error")) {
                bail!(
                    "page {id} reported an error while waiting for {what}: {}",
                    error.detail.as_deref().unwrap_or("")
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {timeout:?} waiting for {what} from page {id}; its last reports:\n{}",
                    summarize(&reports)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for event `name` from page `id`; returns its detail.
    pub async fn wait_event(&self, id: &str, name: &str, timeout: Duration) -> anyhow::Result<String> {
        let report =
            self.wait_report(id, timeout, &format!("event {name}"), |r| r.event.as_deref() == Some(name)).await?;
        Ok(report.detail.unwrap_or_default())
    }

    /// Waits for stats from page `id` that satisfy `done`; returns them.
    pub async fn wait_stats(
        &self,
        id: &str,
        timeout: Duration,
        what: &str,
        done: impl Fn(&PageStats) -> bool,
    ) -> anyhow::Result<PageStats> {
        let report = self.wait_report(id, timeout, what, |r| r.stats.as_ref().is_some_and(&done)).await?;
        Ok(report.stats.unwrap_or_default())
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The last few reports, one line each, SDP bodies shortened.
fn summarize(reports: &[PageReport]) -> String {
    let start = reports.len().saturating_sub(8);
    reports[start..]
        .iter()
        .map(|r| {
            let mut line = r.raw.to_string();
            if line.len() > 600 {
                line.truncate(600);
                line.push_str("...");
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn collect(State(reports): State<Reports>, Json(value): Json<Value>) -> StatusCode {
    let Ok(mut report) = serde_json::from_value::<PageReport>(value.clone()) else {
        return StatusCode::BAD_REQUEST;
    };
    report.raw = value;
    if let Ok(mut reports) = reports.lock() {
        reports.push(report);
    }
    StatusCode::NO_CONTENT
}

async fn serve_page(Path(file): Path<String>) -> Response {
    let safe = !file.is_empty()
        && file.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !file.starts_with('.');
    if !safe {
        return StatusCode::NOT_FOUND.into_response();
    }
    let path = super::super::repo_root().join("tests").join("pages").join(&file);
    let Ok(body) = tokio::fs::read(&path).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let content_type = match file.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        _ => "application/octet-stream",
    };
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-store")], body).into_response()
}
