//! HTTP-FLV play: `GET /live/{stream}.flv` (protocol rtmp) and `GET /mini/{stream}.flv`
//! (protocol miniprogram). The body is an endless FLV file starting at the cached GOP.

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use std::net::SocketAddr;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::error::{parse_key, ApiError};
use crate::hub::{ConsumerRequest, EndReason, Subscription};
use crate::media::Protocol;
use crate::protocols::flv::{file_header, file_tag, FlvEgress};
use crate::server::Gateway;

/// Chunks buffered toward one viewer's socket; past it the viewer's subscription lags.
const SOCKET_QUEUE: usize = 64;

pub async fn live(gw: State<Gateway>, peer: ConnectInfo<SocketAddr>, Path(file): Path<String>) -> Result<Response, ApiError> {
    play(gw, peer, Protocol::Rtmp, &file).await
}

pub async fn mini(gw: State<Gateway>, peer: ConnectInfo<SocketAddr>, Path(file): Path<String>) -> Result<Response, ApiError> {
    play(gw, peer, Protocol::Miniprogram, &file).await
}

async fn play(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    protocol: Protocol,
    file: &str,
) -> Result<Response, ApiError> {
    let name = file.strip_suffix(".flv").ok_or_else(|| ApiError::not_found(format!("no such resource `{file}`")))?;
    let key = parse_key(name)?;
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

/// Writes the subscription as FLV into the response channel until either side ends.
async fn serve(mut sub: Subscription, tx: mpsc::Sender<Bytes>) -> Option<EndReason> {
    let mut egress = FlvEgress::new();
    let mut tags = Vec::new();
    egress.start(sub.video_info(), sub.audio_info(), &mut tags);
    let mut first = vec![file_header(sub.has_audio(), sub.has_video())];
    first.extend(tags.drain(..).map(|t| file_tag(t.kind, t.timestamp, &t.body)));
    for chunk in first {
        sub.add_bytes_out(chunk.len());
        if tx.send(chunk).await.is_err() {
            return None;
        }
    }
    while let Some(frame) = sub.next().await {
        if egress.frame(&frame, &mut tags).is_err() {
            continue;
        }
        for t in tags.drain(..) {
            let chunk = file_tag(t.kind, t.timestamp, &t.body);
            sub.add_bytes_out(chunk.len());
            if tx.send(chunk).await.is_err() {
                return None;
            }
        }
    }
    sub.end_reason().cloned()
}
