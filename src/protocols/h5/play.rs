//! H5 play: `GET /h5/{stream}` upgraded to a WebSocket that carries binary MPEG-TS (MPEG-1
//! video + MP2 audio) for JSMpeg. Every message is a whole number of 188-byte packets: PAT and
//! PMT (at the start and before every I-picture, or every [`AUDIO_TABLES_EVERY`] audio frames
//! without video), and one message per frame (one PES), packetized once per stream.
//!
//! A viewer is fed through a bounded queue drained by its own writer task: when the queue is
//! full the viewer skips to the next I-picture (a lag), and after more lags than the hub allows
//! (`hub.max_lag_events`), or a write that stalls for `hub.write_stall_seconds` (the bound
//! every egress shares, see [`crate::hub::egress`]), it is disconnected. The
//! kernel's socket buffers can hide a viewer that stopped reading for a long time, so a ping
//! goes out behind the media every [`PING_EVERY`]: a viewer whose pong is [`PONG_TIMEOUT`]
//! late is that far behind, and is disconnected too. The others never wait for it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{Action, Entry};
use crate::http::client::admit;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::Extension;
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::interleave::Interleave;
use super::parse_key;
use super::shared::SharedPackets;
use super::ts::mux::ProgramTables;
use super::H5Ctx;
use super::H5State;
use crate::http::ApiError;
use crate::hub::egress::{EgressPacer, Verdict};
use crate::hub::{ConsumerRequest, EndReason, Subscription};
use crate::media::{Codec, Frame, Protocol, TrackKind};

/// Messages queued toward one viewer (about two seconds of a 30 fps stream with audio).
pub const QUEUE_MESSAGES: usize = 128;
/// How often a ping is queued behind the media (one outstanding at a time).
pub const PING_EVERY: Duration = Duration::from_secs(2);
/// A viewer whose pong has not come back after this long is too far behind.
pub const PONG_TIMEOUT: Duration = Duration::from_secs(6);
/// Without video, PAT/PMT are repeated every this many audio frames.
pub const AUDIO_TABLES_EVERY: u32 = 40;
/// Messages written before one flush.
const WRITE_BATCH: usize = 32;

/// The WebSocket subprotocols accepted (JSMpeg versions that pass `null` send "null").
const SUBPROTOCOLS: [&str; 2] = ["null", "jsmpeg"];

#[utoipa::path(get, path = "/h5/{stream}", tag = "h5",
    summary = "H5 play: a WebSocket of MPEG-TS (JSMpeg)",
    description = "A WebSocket upgrade (subprotocol `jsmpeg` or `null`): binary messages of MPEG-TS \
        (MPEG-1 video, MP2 audio). Browsers put credentials in the query.",
    params(("stream" = String, Path, description = "The stream key")),
    responses(
        (status = 101, description = "Switching to the WebSocket"),
        (status = 400, description = "Bad stream key", body = crate::http::error::ErrorBody),
        (status = 401, description = "Play needs credentials", body = crate::http::error::ErrorBody),
        (status = 403, description = "Play refused", body = crate::http::error::ErrorBody),
        (status = 404, description = "The stream is not live", body = crate::http::error::ErrorBody),
        (status = 406, description = "No plan for H5 from this stream", body = crate::http::error::ErrorBody),
        (status = 426, description = "Not a WebSocket request (the page is `/h5/{stream}/player`)", body = crate::http::error::ErrorBody),
        (status = 500, description = "A conversion could not start", body = crate::http::error::ErrorBody),
        (status = 503, description = "The stream is not ready", body = crate::http::error::ErrorBody),
    ))]
pub async fn play(
    State(gw): State<H5Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(h5): Extension<Arc<H5State>>,
    Path(stream): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let key = parse_key(&stream)?;
    // Browsers cannot set headers on a WebSocket: the credentials are in the query.
    admit(&gw.admission, Action::Play, Entry::H5, key.as_str(), peer.ip(), &uri, &headers).await?;
    let live = gw.hub.find(&key).await.ok_or_else(|| ApiError::not_found(format!("stream `{key}` is not live")))?;
    let ws = ws.map_err(|e| {
        ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            format!("GET /h5/{key} is a WebSocket (JSMpeg) endpoint ({e}); the player page is /h5/{key}/player"),
        )
    })?;
    let who = ConsumerRequest { protocol: Protocol::H5, transport: "ws".into(), remote: Some(peer.to_string()) };
    let sub = gw.hub.subscribe(&key, who).await?;
    let packets = h5.caches.for_stream(&live);
    let span = tracing::info_span!("h5-play", stream = %key, %peer);
    // A viewer only answers pings; nothing it sends needs to be big.
    let limit = gw.limits.http_body_bytes;
    Ok(ws.max_message_size(limit).max_frame_size(limit).protocols(SUBPROTOCOLS).on_upgrade(move |socket| {
        async move {
            let reason = serve(socket, sub, packets.clone(), &gw).await;
            let (packetized, shared) = packets.counts();
            tracing::info!(%reason, packetized, shared, "H5 viewer left");
        }
        .instrument(span)
    }))
}

/// What ends a viewer, for the log and the close frame.
enum End {
    StreamEnded,
    TooSlow,
    ViewerClosed,
    WriteFailed,
    Shutdown,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            End::StreamEnded => "stream ended",
            End::TooSlow => "too slow",
            End::ViewerClosed => "viewer closed",
            End::WriteFailed => "write failed or stalled",
            End::Shutdown => "gateway shutting down",
        })
    }
}

async fn serve(socket: WebSocket, mut sub: Subscription, packets: Arc<SharedPackets>, gw: &H5Ctx) -> End {
    let (sink, mut incoming) = socket.split();
    let (tx, rx) = mpsc::channel::<Message>(QUEUE_MESSAGES);
    let stop = CancellationToken::new();
    let (close_tx, close_rx) = tokio::sync::oneshot::channel::<CloseFrame>();
    let writer = tokio::spawn(write_loop(sink, rx, stop.clone(), close_rx, gw.hub.config().write_stall));
    let end = feed(&mut sub, &packets, &tx, &mut incoming, gw).await;
    match end {
        End::TooSlow => {
            gw.hub.metrics().note_consumer_too_slow();
            drop(close_tx);
            stop.cancel();
        }
        End::StreamEnded | End::Shutdown => {
            let _ = close_tx.send(CloseFrame { code: 1001, reason: end.to_string().into() });
        }
        End::ViewerClosed | End::WriteFailed => {
            drop(close_tx);
            stop.cancel();
        }
    }
    drop(tx);
    // The writer sends what is queued and the close frame, bounded by its stall timeout.
    let _ = writer.await;
    end
}

/// Queues the subscription's frames as TS messages until the viewer or the stream ends.
async fn feed(
    sub: &mut Subscription,
    packets: &SharedPackets,
    tx: &mpsc::Sender<Message>,
    incoming: &mut SplitStream<WebSocket>,
    gw: &H5Ctx,
) -> End {
    let has_video = sub.has_video();
    let mut tables = ProgramTables::new(has_video, sub.has_audio());
    let max_lags = gw.hub.config().max_lag_events;
    let mut lags = 0u32;
    // The writer task bounds the stall; here a full queue is a lag.
    let mut pacer = EgressPacer::new(gw.hub.config().write_stall);
    let mut skipping = false;
    let mut audio_since_tables = 0u32;
    let shutdown = gw.shutdown.cancelled();
    tokio::pin!(shutdown);
    let mut ping = Ping::default();
    // Sound waits for the picture of its time (JSMpeg plays in arrival order).
    let mut order = Interleave::new(has_video);
    let mut ready = Vec::new();
    let mut ping_timer = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    if let Err(end) = queue(tx, table_bytes(&mut tables), sub) {
        return end;
    }
    loop {
        let frame = tokio::select! {
            frame = sub.next() => match frame {
                Some(frame) => frame,
                None if sub.end_reason() == Some(&EndReason::TooSlow) => return End::TooSlow,
                None => return End::StreamEnded,
            },
            message = incoming.next() => match message {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return End::ViewerClosed,
                Some(Ok(Message::Pong(payload))) => {
                    ping.answered(&payload);
                    continue;
                }
                Some(Ok(_)) => continue,
            },
            _ = ping_timer.tick() => {
                if ping.overdue() {
                    return End::TooSlow;
                }
                if let Some(message) = ping.next() {
                    // A full queue is a lag of its own; the next tick tries again.
                    let _ = tx.try_send(message);
                }
                continue;
            },
            _ = &mut shutdown => return End::Shutdown,
        };
        if !carried(&frame) {
            continue;
        }
        order.push(frame, &mut ready);
        for frame in ready.drain(..) {
            let keyframe = frame.is_video_keyframe();
            if skipping && !keyframe {
                continue;
            }
            let tables_due = keyframe || (!has_video && audio_since_tables >= AUDIO_TABLES_EVERY);
            let mut sent = true;
            if tables_due {
                audio_since_tables = 0;
                sent = try_queue(tx, table_bytes(&mut tables), sub);
            }
            if sent {
                sent = try_queue(tx, packets.packets(&frame, !has_video), sub);
            }
            if frame.kind() == TrackKind::Audio {
                audio_since_tables += 1;
            }
            if tx.is_closed() {
                return End::WriteFailed;
            }
            skipping = false;
            let lagged = || {
                lags += 1;
                lags > max_lags
            };
            match pacer.decide(tokio::time::Instant::now(), sent, lagged) {
                Verdict::Write => {}
                Verdict::SkipToKeyframe => {
                    tracing::debug!(lags, "H5 viewer behind; skipping to the next I-picture");
                    skipping = has_video;
                }
                Verdict::Drop(_) => return End::TooSlow,
            }
        }
    }
}

/// Only MPEG-1 video and MP2 audio go into the TS (the plan converts everything else).
fn carried(frame: &Frame) -> bool {
    matches!(frame.codec(), Codec::Mpeg1 | Codec::Mp2)
}

/// The one outstanding ping: its number and when it was queued.
#[derive(Default)]
struct Ping {
    sent: u64,
    outstanding: Option<(u64, tokio::time::Instant)>,
}

impl Ping {
    /// The next ping to queue, unless one is still out.
    fn next(&mut self) -> Option<Message> {
        if self.outstanding.is_some() {
            return None;
        }
        self.sent += 1;
        self.outstanding = Some((self.sent, tokio::time::Instant::now()));
        Some(Message::Ping(Bytes::copy_from_slice(&self.sent.to_be_bytes())))
    }

    fn answered(&mut self, payload: &[u8]) {
        if self.outstanding.is_some_and(|(n, _)| payload == n.to_be_bytes()) {
            self.outstanding = None;
        }
    }

    fn overdue(&self) -> bool {
        self.outstanding.is_some_and(|(_, at)| at.elapsed() > PONG_TIMEOUT)
    }
}

fn table_bytes(tables: &mut ProgramTables) -> Bytes {
    let mut out = Vec::with_capacity(2 * super::ts::PACKET_SIZE);
    tables.write(&mut out);
    Bytes::from(out)
}

/// Queues without waiting; false when the queue is full or closed.
fn try_queue(tx: &mpsc::Sender<Message>, bytes: Bytes, sub: &Subscription) -> bool {
    let len = bytes.len();
    match tx.try_send(Message::Binary(bytes)) {
        Ok(()) => {
            sub.add_bytes_out(len);
            true
        }
        Err(TrySendError::Full(_) | TrySendError::Closed(_)) => false,
    }
}

fn queue(tx: &mpsc::Sender<Message>, bytes: Bytes, sub: &Subscription) -> Result<(), End> {
    if try_queue(tx, bytes, sub) {
        Ok(())
    } else {
        Err(End::WriteFailed)
    }
}

/// Writes queued messages (flushing once per batch) until the queue closes or `stop`; then
/// sends `close` if one was given. Every write is bounded by `stall`.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Message>,
    stop: CancellationToken,
    close: tokio::sync::oneshot::Receiver<CloseFrame>,
    stall: Duration,
) {
    loop {
        let first = tokio::select! {
            m = rx.recv() => m,
            _ = stop.cancelled() => return,
        };
        let Some(first) = first else { break };
        let batch = async {
            sink.feed(first).await?;
            for _ in 1..WRITE_BATCH {
                match rx.try_recv() {
                    Ok(more) => sink.feed(more).await?,
                    Err(_) => break,
                }
            }
            sink.flush().await
        };
        let result = tokio::select! {
            r = tokio::time::timeout(stall, batch) => r,
            _ = stop.cancelled() => return,
        };
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "H5 viewer write failed");
                return;
            }
            Err(_) => {
                tracing::info!("H5 viewer write stalled; disconnecting");
                return;
            }
        }
    }
    if let Ok(frame) = close.await {
        let _ = tokio::time::timeout(stall, sink.send(Message::Close(Some(frame)))).await;
    }
}
