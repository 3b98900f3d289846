//! HTTP-FLV play: `GET /live/{stream}.flv` (protocol rtmp) and `GET /mini/{stream}.flv`
//! (protocol miniprogram). The body is an endless FLV file starting at the cached GOP. The one
//! part of `flv` that does IO (with [`super::raw`], the same play on a connection of its own):
//! the tags come from the sans-IO [`super::FlvEgress`], the loop is [`super::viewer`].

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::Response;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::sink::ChannelSink;
use super::viewer::{self, Sink};
use crate::auth::Admission;
use crate::http::error::ErrorBody;
use crate::http::routes::Routes;
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
/// (A player's connection may be served by [`super::raw`] instead, on the same paths.)
pub fn routes(ctx: FlvCtx) -> Routes {
    Routes::new().get("/live/{file}", play_live).get("/mini/{file}", play_mini).with_state(ctx)
}

/// The OpenAPI description of these routes (see `crate::api::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(play_live, play_mini))]
pub struct Doc;

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

/// What an HTTP-FLV play answers (`/live/{file}` and `/mini/{file}` alike).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only described, never built: the handlers answer with `Response`
enum PlayAnswers {
    #[response(status = 200, description = "The live stream as FLV", content_type = "video/x-flv")]
    Flv(Vec<u8>),
    #[response(status = 400, description = "Bad stream key")]
    BadKey(ErrorBody),
    #[response(status = 401, description = "Play needs credentials")]
    Credentials(ErrorBody),
    #[response(status = 403, description = "Play refused")]
    Refused(ErrorBody),
    #[response(status = 404, description = "Not `{stream}.flv`, or the stream is not live")]
    NotLive(ErrorBody),
    #[response(status = 503, description = "Stream not ready, or the cluster store is unreachable")]
    NotReady(ErrorBody),
}

/// Play as an `rtmp` consumer.
#[utoipa::path(get, path = "/live/{file}", tag = "media",
    summary = "HTTP-FLV play (protocol rtmp)",
    description = "An endless FLV body starting at the cached GOP (`{file}` is `{stream}.flv`). \
        Admitted like any play (`auth.play`: a key, a signed query, ...).",
    params(("file" = String, Path, description = "`{stream}.flv`", example = "room1.flv")),
    responses(PlayAnswers))]
async fn play_live(
    gw: State<FlvCtx>,
    peer: ConnectInfo<SocketAddr>,
    file: Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    play(gw, peer, Protocol::Rtmp, file, uri, headers).await
}

/// Play as a `miniprogram` consumer.
#[utoipa::path(get, path = "/mini/{file}", tag = "media",
    summary = "HTTP-FLV play (protocol miniprogram)",
    description = "As `/live/{file}`, for mini-program players (the matrix's `miniprogram` column).",
    params(("file" = String, Path, description = "`{stream}.flv`", example = "room1.flv")),
    responses(PlayAnswers))]
async fn play_mini(
    gw: State<FlvCtx>,
    peer: ConnectInfo<SocketAddr>,
    file: Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    play(gw, peer, Protocol::Miniprogram, file, uri, headers).await
}

/// The hyper route: the viewer's batches go through a queue into the response body (used
/// when the request did not open its connection; see [`super::raw`]).
async fn play(
    State(gw): State<FlvCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    protocol: Protocol,
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
