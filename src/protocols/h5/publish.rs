//! H5 publish: MPEG-TS with MPEG-1 video and MP2 audio, as the chunked body of
//! `POST /h5/{stream}` (what `ffmpeg -f mpegts http://HOST/h5/{stream}` sends) or as binary
//! messages on a WebSocket at `GET /h5/{stream}/publish`.
//!
//! The stream goes live in the hub at its first I-picture. Refused before that, with the
//! reason: input that is not MPEG-TS or carries no MPEG-1 video (415), broken or too short
//! input (400), a stream key that is already live (409). A POST is answered when its body ends
//! (or the publisher is disconnected); a WebSocket publisher gets a close frame with the reason.

use std::net::SocketAddr;
use std::time::Duration;

use crate::auth::{Action, Entry};
use crate::http::client::admit;
use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Serialize;
use tracing::Instrument;

use super::ingest::{IngestError, TsIngest};
use super::parse_key;
use super::H5Ctx;
use crate::http::ApiError;
use crate::hub::{Claim, HubError, Publisher, StreamKey};
use crate::media::{Frame, Protocol};

/// A publisher that sends nothing for this long is gone.
pub const PUBLISH_SILENCE: Duration = Duration::from_secs(20);

/// Why a publish ended early.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{0}")]
    Ingest(#[from] IngestError),
    #[error("{0}")]
    Hub(#[from] HubError),
}

impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> ApiError {
        match e {
            PublishError::Ingest(i) if i.is_unsupported_media() => {
                ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, i.to_string())
            }
            PublishError::Ingest(i) if i.is_over_limit() => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, i.to_string()),
            PublishError::Ingest(i) => ApiError::bad_request(i.to_string()),
            PublishError::Hub(h) => h.into(),
        }
    }
}

/// What a finished POST publish answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PublishSummary {
    pub stream: String,
    pub bytes: u64,
    pub frames: u64,
    /// Why it ended: "input ended", "disconnected through the API", ...
    pub ended: String,
}

/// One H5 publisher: the ingest state and, once the first I-picture is in, the hub publisher.
struct Session {
    gw: H5Ctx,
    key: StreamKey,
    transport: &'static str,
    remote: String,
    ingest: TsIngest,
    /// The key, claimed before any media is read (cluster-wide in a cluster).
    claim: Option<Claim>,
    publisher: Option<Publisher>,
    frames: Vec<Frame>,
    unaccounted: usize,
}

impl Session {
    fn new(gw: &H5Ctx, claim: Claim, transport: &'static str, peer: SocketAddr) -> Session {
        Session {
            gw: gw.clone(),
            key: claim.key().clone(),
            claim: Some(claim),
            transport,
            remote: peer.to_string(),
            ingest: TsIngest::with_limits(gw.limits.ts()),
            publisher: None,
            frames: Vec::new(),
            unaccounted: 0,
        }
    }

    fn push(&mut self, data: &[u8]) -> Result<(), PublishError> {
        self.unaccounted += data.len();
        self.ingest.push(data, &mut self.frames)?;
        self.deliver()
    }

    fn finish(&mut self) -> Result<(), PublishError> {
        self.ingest.finish(&mut self.frames)?;
        self.deliver()
    }

    /// Publishes (on the first frames) and hands the frames to the hub.
    fn deliver(&mut self) -> Result<(), PublishError> {
        if self.frames.is_empty() {
            return Ok(());
        }
        let publisher = match &mut self.publisher {
            Some(p) => p,
            None => {
                let claim = self.claim.take().ok_or_else(|| HubError::AlreadyPublishing(self.key.clone()))?;
                let p = self.gw.hub.publish_claimed(claim, Protocol::H5, self.transport, Some(self.remote.clone()))?;
                self.publisher.insert(p)
            }
        };
        publisher.add_bytes_in(std::mem::take(&mut self.unaccounted));
        for frame in self.frames.drain(..) {
            publisher.push(frame);
        }
        Ok(())
    }

    /// The live stream once published (for its kick signal).
    fn stream(&self) -> Option<std::sync::Arc<crate::hub::Stream>> {
        self.publisher.as_ref().map(|p| p.stream().clone())
    }

    fn summary(&self, ended: &str) -> PublishSummary {
        PublishSummary {
            stream: self.key.to_string(),
            bytes: self.ingest.bytes(),
            frames: self.ingest.frames(),
            ended: ended.to_string(),
        }
    }
}

/// `POST /h5/{stream}`: the body is the stream.
#[utoipa::path(post, path = "/h5/{stream}", tag = "h5",
    summary = "H5 publish: a chunked MPEG-TS body",
    description = "The body is the stream for as long as it lasts (`ffmpeg -f mpegts URL`): MPEG-TS of \
        MPEG-1 video and MP2 audio. Answered when it ends. Not bound by the body timeout: a publisher \
        silent past its own limit is ended.",
    params(("stream" = String, Path, description = "The stream key")),
    request_body(content = Vec<u8>, content_type = "video/mp2t", description = "MPEG-TS, chunked"),
    responses(
        (status = 200, description = "The publish ended: why, and what came in", body = PublishSummary),
        (status = 400, description = "Bad key or stream, or no data in time", body = crate::http::error::ErrorBody),
        (status = 401, description = "Publish needs credentials", body = crate::http::error::ErrorBody),
        (status = 403, description = "Publish refused", body = crate::http::error::ErrorBody),
        (status = 409, description = "The stream is published already", body = crate::http::error::ErrorBody),
        (status = 413, description = "A frame over the limits", body = crate::http::error::ErrorBody),
        (status = 415, description = "Not MPEG-1/MP2 in MPEG-TS", body = crate::http::error::ErrorBody),
        (status = 503, description = "Too many publishers, or the cluster store is unreachable", body = crate::http::error::ErrorBody),
    ))]
pub async fn post(
    State(gw): State<H5Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(stream): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = parse_key(&stream)?;
    admit(&gw.admission, Action::Publish, Entry::H5, key.as_str(), peer.ip(), &uri, &headers).await?;
    // Refuses a key that is live already before reading any media (a stream waiting for its
    // publisher to reconnect is free to continue).
    let claim = gw.hub.claim(&key).await?;
    let mut session = Session::new(&gw, claim, "http-post", peer);
    let mut data = body.into_data_stream();
    let span = tracing::info_span!("h5-publish", stream = %key, %peer, transport = "http-post");
    let ended = async {
        loop {
            let stream = session.stream();
            let kicked = async {
                match &stream {
                    Some(s) => s.kicked().await,
                    None => std::future::pending().await,
                }
            };
            let chunk = tokio::select! {
                c = tokio::time::timeout(PUBLISH_SILENCE, data.next()) => c,
                _ = kicked => return Ok("disconnected through the API".to_string()),
                _ = gw.shutdown.cancelled() => return Ok("gateway shutting down".to_string()),
            };
            match chunk {
                Ok(Some(Ok(bytes))) => session.push(&bytes)?,
                Ok(None) => {
                    session.finish()?;
                    return Ok("input ended".to_string());
                }
                Ok(Some(Err(e))) if session.publisher.is_some() => return Ok(format!("connection lost: {e}")),
                Ok(Some(Err(e))) => return Err(ApiError::bad_request(format!("reading the body failed: {e}"))),
                Err(_) if session.publisher.is_some() => return Ok("silent for too long".to_string()),
                Err(_) => return Err(ApiError::bad_request(format!("no data for {PUBLISH_SILENCE:?}"))),
            }
        }
    }
    .instrument(span.clone())
    .await;
    let _enter = span.enter();
    match ended {
        Ok(reason) => {
            tracing::info!(%reason, bytes = session.ingest.bytes(), frames = session.ingest.frames(), "H5 publisher left");
            Ok(Json(session.summary(&reason)).into_response())
        }
        Err(e) => {
            tracing::info!(error = %e.message, "H5 publish refused or failed");
            Err(e)
        }
    }
}

/// `GET /h5/{stream}/publish`: the same stream as binary WebSocket messages.
#[utoipa::path(get, path = "/h5/{stream}/publish", tag = "h5",
    summary = "H5 publish over a WebSocket",
    description = "A WebSocket upgrade; binary messages of MPEG-TS (MPEG-1 video, MP2 audio).",
    params(("stream" = String, Path, description = "The stream key")),
    responses(
        (status = 101, description = "Switching to the WebSocket"),
        (status = 400, description = "Bad stream key", body = crate::http::error::ErrorBody),
        (status = 401, description = "Publish needs credentials", body = crate::http::error::ErrorBody),
        (status = 403, description = "Publish refused", body = crate::http::error::ErrorBody),
        (status = 409, description = "The stream is published already", body = crate::http::error::ErrorBody),
        (status = 426, description = "Not a WebSocket request", body = crate::http::error::ErrorBody),
        (status = 503, description = "Too many publishers, or the cluster store is unreachable", body = crate::http::error::ErrorBody),
    ))]
pub async fn websocket(
    State(gw): State<H5Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(stream): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let key = parse_key(&stream)?;
    // Answered as `{"error"}` like every refusal (axum's own rejection is plain text).
    let ws = ws.map_err(|e| {
        ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            format!("GET /h5/{key}/publish is a WebSocket endpoint ({e}); POST /h5/{key} takes an MPEG-TS body"),
        )
    })?;
    admit(&gw.admission, Action::Publish, Entry::H5, key.as_str(), peer.ip(), &uri, &headers).await?;
    let claim = gw.hub.claim(&key).await?;
    let span = tracing::info_span!("h5-publish", stream = %key, %peer, transport = "ws");
    let session = Session::new(&gw, claim, "ws", peer);
    let limit = gw.limits.max_message_bytes;
    Ok(ws
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| receive_ws(socket, session).instrument(span)))
}

async fn receive_ws(mut socket: WebSocket, mut session: Session) {
    let gw = session.gw.clone();
    let mut peer_closed = false;
    let outcome: Result<String, (u16, String)> = loop {
        let stream = session.stream();
        let kicked = async {
            match &stream {
                Some(s) => s.kicked().await,
                None => std::future::pending().await,
            }
        };
        let message = tokio::select! {
            m = tokio::time::timeout(PUBLISH_SILENCE, socket.recv()) => m,
            _ = kicked => break Ok("disconnected through the API".into()),
            _ = gw.shutdown.cancelled() => break Ok("gateway shutting down".into()),
        };
        let step = match message {
            Ok(Some(Ok(Message::Binary(bytes)))) => session.push(&bytes),
            Ok(Some(Ok(Message::Text(_)))) => break Err((1003, "send MPEG-TS as binary messages".into())),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                peer_closed = true;
                match session.finish() {
                    Ok(()) => break Ok("publisher closed".into()),
                    Err(e) => Err(e),
                }
            }
            Ok(Some(Ok(_))) => Ok(()),
            Err(_) => break Err((1008, format!("no data for {PUBLISH_SILENCE:?}"))),
        };
        if let Err(e) = step {
            let code = match &e {
                PublishError::Ingest(i) if i.is_unsupported_media() => 1003,
                PublishError::Ingest(i) if i.is_over_limit() => 1009,
                _ => 1008,
            };
            break Err((code, e.to_string()));
        }
    };
    let (code, reason) = match outcome {
        Ok(reason) => (1000, reason),
        Err((code, reason)) => {
            tracing::info!(%reason, "H5 WebSocket publish refused or failed");
            (code, reason)
        }
    };
    tracing::info!(%reason, bytes = session.ingest.bytes(), frames = session.ingest.frames(), "H5 publisher left");
    drop(session);
    let closing = async {
        if peer_closed {
            // The reply to the publisher's close is queued; closing our side flushes it (a
            // close frame of our own cannot be sent after theirs).
            let _ = futures_util::SinkExt::close(&mut socket).await;
        } else {
            let frame = CloseFrame { code, reason: truncate(&reason, 123).into() };
            let _ = socket.send(Message::Close(Some(frame))).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), closing).await;
}

/// At most `max` bytes of `text`, cut at a character boundary (close reasons are limited).
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}
