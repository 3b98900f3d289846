//! HTTP-FLV play: `GET /live/{stream}.flv` (protocol rtmp) and `GET /mini/{stream}.flv`
//! (protocol miniprogram). The body is an endless FLV file starting at the cached GOP. The one
//! part of `flv` that does IO (with [`super::raw`], the same play on a connection of its own):
//! the tags come from the sans-IO [`super::FlvEgress`], the loop is [`super::viewer`].

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::Extension;
use axum::Router;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::sink::ChannelSink;
use super::viewer::{self, Sink};
use crate::auth::Admission;
use crate::http::{parse_key, ApiError};
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

/// Batches buffered toward one viewer's HTTP body; past it the viewer is behind.
const SOCKET_QUEUE: usize = 64;

/// One viewer of `file` (`KEY.flv`), as a consumer of `protocol` (the route's): the
/// subscription and the span its loop runs in.
pub(super) async fn open(
    gw: &FlvCtx,
    protocol: Protocol,
    peer: SocketAddr,
    file: &str,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(Subscription, tracing::Span), ApiError> {
    let name = file.strip_suffix(".flv").ok_or_else(|| ApiError::not_found(format!("no such resource `{file}`")))?;
    let key = parse_key(name)?;
    let entry = crate::auth::Entry::HttpFlv;
    crate::http::client::admit(&gw.admission, crate::auth::Action::Play, entry, key.as_str(), peer.ip(), uri, headers)
        .await?;
    let who = ConsumerRequest { protocol, transport: "http-flv".into(), remote: Some(peer.to_string()) };
    let sub = gw.hub.subscribe(&key, who).await?;
    let span = tracing::info_span!("http-flv", stream = %key, %protocol, %peer);
    Ok((sub, span))
}

/// Runs one viewer's loop ([`viewer::run`]) into `sink`, counting a viewer dropped for being
/// too slow.
pub(super) async fn serve<S: Sink>(gw: &FlvCtx, sub: Subscription, sink: &mut S) {
    let config = gw.hub.config();
    if let Some(EndReason::TooSlow) = viewer::run(sub, sink, config.write_stall, config.batching).await {
        gw.hub.metrics().note_consumer_too_slow();
        tracing::info!("viewer too slow; disconnected");
    }
}

/// The hyper route: the viewer's batches go through a queue into the response body (used
/// when the request did not open its connection; see [`super::raw`]).
async fn play(
    State(gw): State<FlvCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(protocol): Extension<Protocol>,
    Path(file): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (sub, span) = open(&gw, protocol, peer, &file, &uri, &headers).await?;
    let (tx, rx) = mpsc::channel::<Bytes>(SOCKET_QUEUE);
    // Bytes the response body has taken from the queue: the viewer's progress.
    let taken = Arc::new(AtomicU64::new(0));
    let mut sink = ChannelSink::new(tx, taken.clone());
    tokio::spawn(async move { serve(&gw, sub, &mut sink).await }.instrument(span));
    let body = Body::from_stream(futures_util::stream::unfold((rx, taken), |(mut rx, taken)| async move {
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
