//! HTTP-FLV play: `GET /live/{stream}.flv` (protocol rtmp) and `GET /mini/{stream}.flv`
//! (protocol miniprogram). The body is an endless FLV file starting at the cached GOP.

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use std::time::Duration;
use std::net::SocketAddr;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use crate::http::{parse_key, ApiError};
use crate::hub::{ConsumerRequest, EndReason, Subscription};
use crate::media::Protocol;
use crate::protocols::flv::{file_header, file_tag, FlvEgress};
use crate::gateway::Gateway;

/// Chunks (one per frame) buffered toward one viewer's socket; past it the viewer lags.
const SOCKET_QUEUE: usize = 64;
/// How long a frame may wait for room in a viewer's queue before the viewer has lagged.
const FRAME_WAIT: Duration = Duration::from_secs(1);
/// A viewer whose queue takes nothing for this long is disconnected.
pub const WRITE_STALL: Duration = Duration::from_secs(8);

pub async fn live(
    gw: State<Gateway>,
    peer: ConnectInfo<SocketAddr>,
    Path(file): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    play(gw, peer, Protocol::Rtmp, &file, &uri, &headers).await
}

pub async fn mini(
    gw: State<Gateway>,
    peer: ConnectInfo<SocketAddr>,
    Path(file): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    play(gw, peer, Protocol::Miniprogram, &file, &uri, &headers).await
}

async fn play(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    protocol: Protocol,
    file: &str,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let name = file.strip_suffix(".flv").ok_or_else(|| ApiError::not_found(format!("no such resource `{file}`")))?;
    let key = parse_key(name)?;
    let entry = crate::auth::Entry::HttpFlv;
    crate::http::client::admit(&gw.admission, crate::auth::Action::Play, entry, key.as_str(), peer.ip(), uri, headers).await?;
    let who = ConsumerRequest { protocol, transport: "http-flv".into(), remote: Some(peer.to_string()) };
    let sub = gw.hub.subscribe(&key, who).await?;
    let (tx, rx) = mpsc::channel::<Bytes>(SOCKET_QUEUE);
    let span = tracing::info_span!("http-flv", stream = %key, %protocol, %peer);
    let metrics = gw.hub.metrics().clone();
    tokio::spawn(
        async move {
            if let Some(EndReason::TooSlow) = serve(sub, tx).await {
                metrics.note_consumer_too_slow();
                tracing::info!("viewer too slow; disconnected");
            }
        }
        .instrument(span),
    );
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    }));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "video/x-flv")
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
        .body(body)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// Writes the subscription as FLV into the response channel until either side ends. Waits on
/// the viewer only within bounds: a frame its queue cannot take within [`FRAME_WAIT`] is a lag
/// (skip to the next keyframe; dropped after `hub.max_lag_events`), and a viewer that takes
/// nothing for [`WRITE_STALL`] is dropped too.
async fn serve(mut sub: Subscription, tx: mpsc::Sender<Bytes>) -> Option<EndReason> {
    let mut egress = FlvEgress::new();
    let mut tags = Vec::new();
    egress.start(sub.video_info(), sub.audio_info(), &mut tags);
    let mut first = BytesMut::from(&file_header(sub.has_audio(), sub.has_video())[..]);
    for t in tags.drain(..) {
        first.extend_from_slice(&file_tag(t.kind, t.timestamp, &t.body));
    }
    sub.add_bytes_out(first.len());
    if tx.try_send(first.freeze()).is_err() {
        return None;
    }
    let mut stalled_since: Option<Instant> = None;
    loop {
        let stall = stalled_since.map(|at| at + WRITE_STALL);
        let frame = tokio::select! {
            frame = sub.next() => frame,
            _ = tx.closed() => return None,
            _ = sleep_until(stall) => return Some(stalled()),
        };
        let Some(frame) = frame else { break };
        if egress.frame(&frame, &mut tags).is_err() || tags.is_empty() {
            continue;
        }
        // One chunk per frame (with its sequence header, if any): all of it or none.
        let chunk = match tags.as_slice() {
            [t] => {
                let chunk = file_tag(t.kind, t.timestamp, &t.body);
                tags.clear();
                chunk
            }
            _ => {
                let mut chunk = BytesMut::new();
                for t in tags.drain(..) {
                    chunk.extend_from_slice(&file_tag(t.kind, t.timestamp, &t.body));
                }
                chunk.freeze()
            }
        };
        let wait = stall.map_or(FRAME_WAIT, |at| at.saturating_duration_since(Instant::now()).min(FRAME_WAIT));
        match tokio::time::timeout(wait, tx.reserve()).await {
            Ok(Ok(permit)) => {
                sub.add_bytes_out(chunk.len());
                permit.send(chunk);
                stalled_since = None;
            }
            Ok(Err(_)) => return None,
            Err(_) => {
                stalled_since.get_or_insert_with(|| Instant::now() - wait);
                if stalled_since.is_some_and(|at| at.elapsed() >= WRITE_STALL) {
                    return Some(stalled());
                }
                egress.resync();
                if sub.lagged() {
                    break;
                }
                tracing::debug!("viewer behind; skipping to the next keyframe");
            }
        }
    }
    sub.end_reason().cloned()
}

/// Ends a viewer that took nothing for [`WRITE_STALL`].
fn stalled() -> EndReason {
    tracing::info!(stall = ?WRITE_STALL, "viewer took nothing for too long");
    EndReason::TooSlow
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
