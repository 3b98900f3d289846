//! The RTMP server's glue to the hub: `/live/{stream}` is protocol `rtmp`, `/mini/{stream}`
//! is protocol `miniprogram`; a connection publishes or plays one stream. A bad handshake or
//! chunk closes that connection only.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

use super::{ServerConn, ServerEvent};
use crate::auth::{Action, Entry};
use crate::hub::{ConsumerRequest, Publisher, StreamKey};
use crate::media::Protocol;
use crate::protocols::flv::{FlvIngest, TagKind};
use crate::protocols::rtmp::MediaKind;

/// What RTMP sessions get from the gateway.
#[derive(Clone)]
pub struct RtmpCtx {
    pub hub: crate::hub::Hub,
    pub shutdown: tokio_util::sync::CancellationToken,
    pub limits: crate::config::LimitsSettings,
    pub admission: crate::auth::Admission,
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection must publish or play within this time.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A publisher that sends nothing for this long is gone.
const PUBLISH_SILENCE: Duration = Duration::from_secs(20);
const UNPUBLISHED: &str = "unpublished";

/// Serves RTMP connections while `gate` has room; past it a connection is closed at once
/// (with a log line), so a flood cannot take the descriptors the rest of the gateway needs.
pub async fn accept_loop_gated(listener: TcpListener, gw: RtmpCtx, gate: crate::limits::Gate) {
    while let Some((io, peer)) =
        crate::limits::accept(&listener, "RTMP", Duration::from_millis(100), &gw.shutdown).await
    {
        let permit = match gate.try_enter(peer) {
            Ok(permit) => permit,
            Err(why) => {
                gate.note_refused(peer, why);
                drop(io);
                continue;
            }
        };
        let span = tracing::info_span!("rtmp", %peer);
        let gw = gw.clone();
        tokio::spawn(
            async move {
                session(io, peer, gw).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
}

fn protocol_for(app: &str) -> Option<Protocol> {
    match app.trim_matches('/') {
        "live" => Some(Protocol::Rtmp),
        "mini" => Some(Protocol::Miniprogram),
        _ => None,
    }
}

async fn session(io: TcpStream, peer: SocketAddr, gw: RtmpCtx) {
    let mut conn = match ServerConn::accept_limited(io, HANDSHAKE_TIMEOUT, gw.limits.rtmp()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "handshake failed; connection closed");
            return;
        }
    };
    let deadline = tokio::time::sleep(IDLE_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        let event = tokio::select! {
            e = conn.next_event() => e,
            _ = &mut deadline => {
                tracing::debug!("neither publish nor play in time; closing");
                return;
            }
            _ = gw.shutdown.cancelled() => return,
        };
        let event = match event {
            Ok(Some(e)) => e,
            Ok(None) => return,
            Err(e) if e.is_over_limit() => {
                tracing::warn!(error = %e, "connection closed: it passed a configured limit (limits:)");
                return;
            }
            Err(e) => {
                tracing::info!(error = %e, "connection closed on a protocol error");
                return;
            }
        };
        match event {
            ServerEvent::Publish { app, key, query } => {
                if let Err(reason) = admit(&gw, Action::Publish, peer, &app, &key, query.as_deref()).await {
                    let _ = conn.unauthorized_publish(&reason).await;
                    return;
                }
                return publish(conn, &gw, peer, &app, &key).await;
            }
            ServerEvent::Play { app, key, query } => {
                if let Err(reason) = admit(&gw, Action::Play, peer, &app, &key, query.as_deref()).await {
                    let _ = conn.unauthorized_play(&reason).await;
                    return;
                }
                return play(conn, &gw, peer, &app, &key).await;
            }
            _ => {}
        }
    }
}

/// Asks the admission policy; the credentials are in the app's or stream name's query.
async fn admit(
    gw: &RtmpCtx,
    action: Action,
    peer: SocketAddr,
    app: &str,
    key: &str,
    query: Option<&str>,
) -> Result<(), String> {
    let query = query.map(crate::auth::request::parse_query).unwrap_or_default();
    let path = format!("/{}/{key}", app.trim_matches('/'));
    let req = crate::auth::Request {
        action,
        entry: Entry::Rtmp,
        stream: key,
        path: &path,
        query: &query,
        bearer: None,
        ip: peer.ip(),
        origin: None,
        referer: None,
    };
    gw.admission.admit(&req).await.map(|_| ()).map_err(|d| d.to_string())
}

fn parse_target(app: &str, key: &str) -> Result<(Protocol, StreamKey), String> {
    let protocol = protocol_for(app).ok_or_else(|| format!("unknown application `{app}`: use /live or /mini"))?;
    let key = key.parse::<StreamKey>().map_err(|e| e.to_string())?;
    Ok((protocol, key))
}

async fn publish(mut conn: ServerConn<TcpStream>, gw: &RtmpCtx, peer: SocketAddr, app: &str, key: &str) {
    let (protocol, key) = match parse_target(app, key) {
        Ok(t) => t,
        Err(reason) => {
            let _ = conn.reject_publish(&reason).await;
            return;
        }
    };
    let mut publisher = match gw.hub.claim_and_publish(key.clone(), protocol, "rtmp", Some(peer.to_string())).await {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(stream = %key, error = %e, "publish refused");
            let _ = conn.reject_publish(&e.to_string()).await;
            return;
        }
    };
    if let Err(e) = conn.accept_publish().await {
        tracing::info!(error = %e, "publisher gone before start");
        return;
    }
    let span = tracing::info_span!("publish", stream = %key, %protocol);
    let reason = receive(&mut conn, &mut publisher, gw).instrument(span).await;
    drop(publisher);
    tracing::info!(stream = %key, %reason, "publisher left");
    if reason == UNPUBLISHED {
        // Clients still send deleteStream after FCUnpublish; closing first makes them fail.
        let drain = async { while let Ok(Some(_)) = conn.next_event().await {} };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    }
}

/// Moves the publisher's media into the hub until it stops; returns why it ended.
async fn receive(conn: &mut ServerConn<TcpStream>, publisher: &mut Publisher, gw: &RtmpCtx) -> String {
    let mut ingest = FlvIngest::new();
    let mut warned = false;
    // Built once, not per message: this loop runs for every audio and video message.
    let stream = publisher.stream().clone();
    let kicked = stream.kicked();
    let shutdown = gw.shutdown.cancelled();
    tokio::pin!(kicked, shutdown);
    let mut silence = tokio::time::interval(PUBLISH_SILENCE / 4);
    let mut last_message = tokio::time::Instant::now();
    loop {
        let event = tokio::select! {
            e = conn.next_event() => e,
            _ = silence.tick() => {
                if last_message.elapsed() > PUBLISH_SILENCE {
                    return "silent for too long".into();
                }
                continue;
            }
            _ = &mut kicked => return "disconnected through the API".into(),
            _ = &mut shutdown => return "gateway shutting down".into(),
        };
        last_message = tokio::time::Instant::now();
        let msg = match event {
            Ok(Some(ServerEvent::Media(msg))) => msg,
            Ok(Some(ServerEvent::Unpublish | ServerEvent::Stop)) => return UNPUBLISHED.into(),
            Ok(Some(_)) => continue,
            Ok(None) => return "connection closed".into(),
            Err(e) if e.is_over_limit() => {
                tracing::warn!(error = %e, "publisher closed: it passed a configured limit (limits:)");
                return format!("over a limit: {e}");
            }
            Err(e) => return format!("protocol error: {e}"),
        };
        publisher.add_bytes_in(msg.payload.len());
        let kind = match msg.kind {
            MediaKind::Audio => TagKind::Audio,
            MediaKind::Video => TagKind::Video,
            MediaKind::Data => TagKind::Script,
        };
        match ingest.push(kind, msg.timestamp, msg.payload) {
            Ok(frames) => frames.into_iter().for_each(|f| publisher.push_arc(f)),
            Err(e) if !warned => {
                warned = true;
                tracing::warn!(error = %e, "media the gateway cannot carry is dropped");
            }
            Err(_) => {}
        }
    }
}

async fn play(mut conn: ServerConn<TcpStream>, gw: &RtmpCtx, peer: SocketAddr, app: &str, key: &str) {
    let (protocol, key) = match parse_target(app, key) {
        Ok(t) => t,
        Err(reason) => {
            let _ = conn.reject_play(&reason).await;
            return;
        }
    };
    let who = ConsumerRequest { protocol, transport: "rtmp".into(), remote: Some(peer.to_string()) };
    let sub = match gw.hub.subscribe(&key, who).await {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(stream = %key, error = %e, "play refused");
            let _ = conn.reject_play(&e.to_string()).await;
            return;
        }
    };
    if conn.accept_play().await.is_err() {
        return;
    }
    let span = tracing::info_span!("play", stream = %key, %protocol);
    let reason = super::play::send(&mut conn, sub, gw).instrument(span).await;
    tracing::info!(stream = %key, %reason, "player left");
}
