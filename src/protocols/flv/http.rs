//! HTTP-FLV play: `GET /live/{stream}.flv` (protocol rtmp) and `GET /mini/{stream}.flv`
//! (protocol miniprogram). The body is an endless FLV file starting at the cached GOP. The one
//! part of `flv` that does IO: the tags come from the sans-IO [`FlvEgress`].

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::Extension;
use axum::Router;
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use super::{file_header, file_tag, FlvEgress};
use crate::auth::Admission;
use crate::http::{parse_key, ApiError};
use crate::hub::egress::{sleep_until, within, DropReason, EgressPacer, Verdict};
use crate::hub::Hub;
use crate::hub::{ConsumerRequest, EndReason, Subscription};
use crate::media::Protocol;

/// What HTTP-FLV play needs: the hub and the admission point.
#[derive(Clone)]
pub struct FlvCtx {
    pub hub: Hub,
    pub admission: Admission,
}

/// `GET /live/{stream}.flv` and `GET /mini/{stream}.flv`.
pub fn routes(ctx: FlvCtx) -> Router {
    Router::new()
        .route("/live/{file}", get(play).layer(Extension(Protocol::Rtmp)))
        .route("/mini/{file}", get(play).layer(Extension(Protocol::Miniprogram)))
        .with_state(ctx)
}

/// Chunks (one per frame) buffered toward one viewer's socket; past it the viewer lags.
const SOCKET_QUEUE: usize = 64;

/// One viewer of `file` (`KEY.flv`), as a consumer of `protocol` (the route's).
async fn play(
    State(gw): State<FlvCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(protocol): Extension<Protocol>,
    Path(file): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let name = file.strip_suffix(".flv").ok_or_else(|| ApiError::not_found(format!("no such resource `{file}`")))?;
    let key = parse_key(name)?;
    let entry = crate::auth::Entry::HttpFlv;
    crate::http::client::admit(
        &gw.admission,
        crate::auth::Action::Play,
        entry,
        key.as_str(),
        peer.ip(),
        &uri,
        &headers,
    )
    .await?;
    let who = ConsumerRequest { protocol, transport: "http-flv".into(), remote: Some(peer.to_string()) };
    let sub = gw.hub.subscribe(&key, who).await?;
    let (tx, rx) = mpsc::channel::<Bytes>(SOCKET_QUEUE);
    // Bytes the response body has taken from the queue: the viewer's progress.
    let taken = Arc::new(AtomicU64::new(0));
    let stall = gw.hub.config().write_stall;
    let span = tracing::info_span!("http-flv", stream = %key, %protocol, %peer);
    let metrics = gw.hub.metrics().clone();
    let body_taken = taken.clone();
    tokio::spawn(
        async move {
            if let Some(EndReason::TooSlow) = serve(sub, tx, taken, stall).await {
                metrics.note_consumer_too_slow();
                tracing::info!("viewer too slow; disconnected");
            }
        }
        .instrument(span),
    );
    let body = Body::from_stream(futures_util::stream::unfold((rx, body_taken), |(mut rx, taken)| async move {
        let chunk = rx.recv().await?;
        taken.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Some((Ok::<_, std::io::Error>(chunk), (rx, taken)))
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
/// the viewer only within bounds ([`crate::hub::egress`]): a frame its queue cannot take
/// within a second is a lag (skip to the next keyframe; dropped after `hub.max_lag_events`),
/// and a viewer that takes nothing for `stall` is dropped too.
async fn serve(
    mut sub: Subscription,
    tx: mpsc::Sender<Bytes>,
    taken: Arc<AtomicU64>,
    stall: Duration,
) -> Option<EndReason> {
    let mut egress = FlvEgress::new();
    let mut tags = Vec::new();
    egress.start(sub.video_info(), sub.audio_info(), &mut tags);
    let mut first = BytesMut::from(&file_header(sub.has_audio(), sub.has_video())[..]);
    for t in tags.drain(..) {
        first.extend_from_slice(&file_tag(t.kind, t.timestamp, &t.body));
    }
    sub.add_bytes_out(first.len());
    let mut queued = first.len() as u64;
    if tx.try_send(first.freeze()).is_err() {
        return None;
    }
    let mut pacer = EgressPacer::new(stall);
    let observe = |pacer: &mut EgressPacer, queued: u64| {
        let taken = taken.load(Ordering::Relaxed);
        pacer.observe(Instant::now(), taken, queued.saturating_sub(taken) as usize);
    };
    loop {
        let frame = tokio::select! {
            frame = sub.next() => frame,
            _ = tx.closed() => return None,
            _ = sleep_until(pacer.deadline()) => {
                observe(&mut pacer, queued);
                if pacer.stalled(Instant::now()) {
                    return Some(dropped(DropReason::Stalled, &pacer));
                }
                continue;
            }
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
        observe(&mut pacer, queued);
        let permit = match within(pacer.frame_wait(Instant::now()), tx.reserve()).await {
            Some(Ok(permit)) => Some(permit),
            Some(Err(_)) => return None,
            None => None,
        };
        observe(&mut pacer, queued);
        match pacer.decide(Instant::now(), permit.is_some(), || sub.lagged()) {
            Verdict::Write => {
                if let Some(permit) = permit {
                    sub.add_bytes_out(chunk.len());
                    queued += chunk.len() as u64;
                    permit.send(chunk);
                }
            }
            Verdict::SkipToKeyframe => {
                egress.resync();
                tracing::debug!("viewer behind; skipping to the next keyframe");
            }
            Verdict::Drop(DropReason::Stalled) => return Some(dropped(DropReason::Stalled, &pacer)),
            Verdict::Drop(DropReason::LaggedTooOften) => break,
        }
    }
    sub.end_reason().cloned()
}

/// Ends a viewer that took nothing for the stall bound.
fn dropped(reason: DropReason, pacer: &EgressPacer) -> EndReason {
    tracing::info!(stall = ?pacer.stall(), "viewer {reason}");
    EndReason::TooSlow
}
