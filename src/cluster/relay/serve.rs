//! The origin's side: another node asks for a stream published here, both prove the cluster
//! secret, and the node gets the stream's frames as they are, until the stream's publisher
//! leaves or changes (the edge then follows it wherever it comes back).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::handshake::{self, HandshakeError, Hello};
use super::wire::{self, Message, SentInfo};
use super::{HANDSHAKE_TIMEOUT, PING_EVERY};
use crate::cluster::Cluster;
use crate::hub::{EndReason, StreamKey, Subscription};

/// Relay links one node serves at once.
const MAX_LINKS: usize = 4096;

pub(crate) async fn accept_loop(cluster: Cluster, listener: TcpListener) {
    let gate = crate::limits::Gate::new("relay", MAX_LINKS);
    let shutdown = cluster.shutdown().clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => return,
        };
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "relay listener: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let permit = match gate.try_enter(peer) {
            Ok(p) => p,
            Err(full) => {
                gate.note_refused(peer, full);
                continue;
            }
        };
        let cluster = cluster.clone();
        tokio::spawn(async move {
            let _permit = permit;
            serve_link(cluster, socket, peer).await
        });
    }
}

async fn serve_link(cluster: Cluster, socket: TcpStream, peer: SocketAddr) {
    let _ = socket.set_nodelay(true);
    let (mut reader, mut writer) = socket.into_split();
    let hello = match tokio::time::timeout(HANDSHAKE_TIMEOUT, greet(&cluster, &mut reader, &mut writer)).await {
        Ok(Ok(hello)) => hello,
        Ok(Err(e)) => {
            cluster.metrics().links_refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, error = %e, "relay link refused");
            return;
        }
        Err(_) => {
            cluster.metrics().links_refused.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%peer, "relay link refused: no handshake in time");
            return;
        }
    };
    let span = tracing::info_span!("relay-out", stream = %hello.stream, edge = %hello.node);
    async move {
        let sub = match subscribe(&cluster, &hello).await {
            Ok(sub) => sub,
            Err(reason) => {
                cluster.metrics().links_refused.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%reason, "relay link refused");
                let _ = answer(&mut writer, &handshake::refusal(&reason)).await;
                return;
            }
        };
        let protocol = sub.plan().from;
        if answer(&mut writer, &handshake::welcome(&cluster.settings().secret, &hello, protocol)).await.is_err() {
            return;
        }
        cluster.metrics().links_out.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%protocol, "relay link open");
        let reason = carry(&cluster, sub, reader, &mut writer).await;
        cluster.metrics().links_out.fetch_sub(1, Ordering::Relaxed);
        tracing::info!(%reason, "relay link closed");
        let mut end = BytesMut::new();
        Message::End(reason).encode(&mut end);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), writer.write_all(&end)).await;
    }
    .instrument(span)
    .await
}

/// The handshake: greeting, the edge's proof, checked (the answer comes once subscribed).
async fn greet(
    cluster: &Cluster,
    reader: &mut OwnedReadHalf,
    writer: &mut OwnedWriteHalf,
) -> Result<Hello, HandshakeError> {
    let nonce = handshake::nonce();
    let io = |e: std::io::Error| HandshakeError::Io(e.to_string());
    writer.write_all(handshake::greeting(&nonce).as_bytes()).await.map_err(io)?;
    let line = handshake::read_line(reader).await?;
    handshake::check_hello(&cluster.settings().secret, &nonce, &line)
}

/// The stream, if it is published here (not relayed, not waiting for its publisher).
async fn subscribe(cluster: &Cluster, hello: &Hello) -> Result<Subscription, String> {
    let key: StreamKey = hello.stream.parse().map_err(|e: crate::hub::InvalidStreamKey| e.to_string())?;
    let hub = cluster.hub();
    match hub.stream(&key) {
        Some(s) if !s.is_relayed() && !s.is_reconnecting() => {}
        _ => return Err(format!("stream `{key}` is not published on node `{}`", cluster.node())),
    }
    hub.subscribe_relay(&key, &hello.node).await.map_err(|e| e.to_string())
}

async fn answer(writer: &mut OwnedWriteHalf, welcome: &handshake::Welcome) -> std::io::Result<()> {
    let mut line = serde_json::to_string(welcome).unwrap_or_default();
    line.push('\n');
    writer.write_all(line.as_bytes()).await
}

/// Frames to the edge, keyframe requests from it, until either side ends; returns why.
async fn carry(
    cluster: &Cluster,
    mut sub: Subscription,
    mut reader: OwnedReadHalf,
    writer: &mut OwnedWriteHalf,
) -> String {
    let stream = sub.stream().clone();
    let publisher = stream.publisher().id;
    let stall = cluster.hub().config().write_stall;
    // The edge's messages (keyframe requests) are read apart: a read is not cancel-safe.
    let (requests, mut requested) = mpsc::channel::<()>(4);
    let reading = tokio::spawn(async move {
        while let Ok(message) = wire::read(&mut reader).await {
            if message == Message::Keyframe {
                let _ = requests.try_send(());
            }
        }
    });
    let mut sent = SentInfo::default();
    let mut out = BytesMut::new();
    let mut tick = tokio::time::interval(PING_EVERY);
    let reason = loop {
        out.clear();
        tokio::select! {
            frame = sub.next() => {
                let Some(frame) = frame else {
                    break match sub.end_reason() {
                        Some(EndReason::TooSlow) => "the edge reads too slowly".to_string(),
                        _ => "the stream ended".to_string(),
                    };
                };
                if sent.changed(&frame.info) {
                    Message::Info(frame.info.as_ref().clone()).encode(&mut out);
                }
                Message::frame(&frame).encode(&mut out);
            }
            request = requested.recv() => match request {
                Some(()) => {
                    sub.request_keyframe();
                    continue;
                }
                None => break "the edge closed the link".to_string(),
            },
            _ = tick.tick() => {
                if stream.publisher().id != publisher || stream.is_reconnecting() {
                    break "the publisher left".to_string();
                }
                Message::Ping.encode(&mut out);
            }
            _ = cluster.shutdown().cancelled() => break "the origin is shutting down".to_string(),
        }
        match tokio::time::timeout(stall, writer.write_all(&out)).await {
            Ok(Ok(())) => sub.add_bytes_out(out.len()),
            Ok(Err(e)) => break format!("write failed: {e}"),
            Err(_) => break format!("the edge took nothing for {stall:?}"),
        }
    };
    reading.abort();
    reason
}
