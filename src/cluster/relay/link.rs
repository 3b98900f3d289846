//! The edge's side: one link per stream key brings a stream published on another node here,
//! as that stream's local publisher (transport `relay`, with the origin's protocol, so the
//! matrix plans from the original publisher), shared by all of this node's viewers of it.
//!
//! When the origin's publisher leaves (or the origin dies) the link ends and the stream here
//! waits in its reconnect grace, while the link looks up the key's owner again: wherever the
//! publisher comes back (this node included), the stream continues. The link ends for good a
//! grace period after the last viewer here leaves, or when the stream ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::handshake::{self, HandshakeError};
use super::wire::{self, Message, WireError};
use super::{HANDSHAKE_TIMEOUT, SILENCE};
use crate::cluster::{Cluster, Owner};
use crate::hub::{StreamKey, RELAY_TRANSPORT};
use crate::media::{Frame, Protocol, TrackInfo};

/// How long a viewer that started a link waits for its stream to be live here.
pub const FIRST_FRAME_WAIT: Duration = Duration::from_secs(15);
/// Dialing another node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The origin may wait for its stream's tracks before it answers (`hub.ready_timeout`).
const WELCOME_TIMEOUT: Duration = Duration::from_secs(12);
/// Between two looks for the key's owner while the stream waits for its publisher.
const LOOK_AGAIN: Duration = Duration::from_millis(250);

/// A running link; `done` is cancelled when it ends.
#[derive(Clone)]
pub struct Handle {
    id: u64,
    pub done: CancellationToken,
}

impl Handle {
    fn new() -> Handle {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Handle { id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed), done: CancellationToken::new() }
    }

    /// The same link (not a later one of the same key).
    pub fn same(&self, other: &Handle) -> bool {
        self.id == other.id
    }
}

#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("cannot reach node `{node}` at {relay}: {reason}")]
    Connect { node: String, relay: String, reason: String },
    #[error("{0}")]
    Handshake(#[from] HandshakeError),
    #[error("no answer in time")]
    Timeout,
}

/// How one connection of the link ended.
enum End {
    /// No viewer left here (or the stream was kicked, or shutdown): the link is done.
    Idle,
    /// The stream here has a local publisher now.
    Refused(String),
    /// The connection ended; the stream waits for its publisher.
    Lost(String),
}

/// Starts a link for `key`: to `first` if known, else to whichever node publishes it next
/// (the stream here waits for its publisher).
pub(crate) fn spawn(cluster: Cluster, key: StreamKey, first: Option<Owner>) -> Handle {
    let handle = Handle::new();
    let ours = handle.clone();
    let span = tracing::info_span!("relay-in", stream = %key);
    tokio::spawn(
        async move {
            cluster.metrics().links_in.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let why = run(&cluster, &key, first).await;
            cluster.metrics().links_in.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(why, "relay link done");
            cluster.link_gone(&key, &ours);
            ours.done.cancel();
        }
        .instrument(span),
    );
    handle
}

async fn run(cluster: &Cluster, key: &StreamKey, first: Option<Owner>) -> &'static str {
    let started = Instant::now();
    // Following a stream that was published here: it exists already.
    let mut published = first.is_none();
    let mut owner = first;
    loop {
        if let Some(o) = owner.take() {
            match connect(cluster, key, &o).await {
                Ok((reader, writer, protocol)) => {
                    published = true;
                    tracing::info!(origin = %o.node, %protocol, "relay link open");
                    match carry(cluster, key, &o, protocol, reader, writer).await {
                        End::Idle => return "no viewer left here",
                        End::Refused(reason) => {
                            tracing::info!(%reason, "relay not needed");
                            return "the stream has a publisher here";
                        }
                        End::Lost(reason) => {
                            tracing::info!(origin = %o.node, %reason, "relay link lost; looking for the publisher")
                        }
                    }
                }
                Err(e) => tracing::debug!(origin = %o.node, error = %e, "relay link not made"),
            }
        }
        match cluster.hub().stream(key) {
            Some(s) if s.is_ended() => return "the stream ended",
            Some(s) if !s.is_relayed() && !s.is_reconnecting() => {
                return "a publisher on this node took the stream over"
            }
            None if published => return "the stream ended",
            None if started.elapsed() >= FIRST_FRAME_WAIT => return "no node publishes it",
            _ => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(LOOK_AGAIN) => {}
            _ = cluster.shutdown().cancelled() => return "shutting down",
        }
        owner = cluster.owner(key).await;
    }
}

async fn connect(
    cluster: &Cluster,
    key: &StreamKey,
    owner: &Owner,
) -> Result<(OwnedReadHalf, OwnedWriteHalf, Protocol), LinkError> {
    let refused = |reason: String| LinkError::Connect { node: owner.node.clone(), relay: owner.relay.clone(), reason };
    let socket = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(owner.relay.as_str())).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(refused(e.to_string())),
        Err(_) => return Err(refused("timed out".into())),
    };
    let _ = socket.set_nodelay(true);
    let (mut reader, mut writer) = socket.into_split();
    let secret = &cluster.settings().secret;
    let io = |e: std::io::Error| HandshakeError::Io(e.to_string());
    let hello = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let nonce = handshake::parse_greeting(&handshake::read_line(&mut reader).await?)?;
        let hello = handshake::hello(secret, &nonce, cluster.node(), key.as_str());
        let mut line = serde_json::to_string(&hello).unwrap_or_default();
        line.push('\n');
        writer.write_all(line.as_bytes()).await.map_err(io)?;
        Ok::<_, HandshakeError>(hello)
    })
    .await
    .map_err(|_| LinkError::Timeout)??;
    let line = tokio::time::timeout(WELCOME_TIMEOUT, handshake::read_line(&mut reader))
        .await
        .map_err(|_| LinkError::Timeout)??;
    let protocol = handshake::check_welcome(secret, &hello, &line)?;
    Ok((reader, writer, protocol))
}

/// Publishes what the origin sends into this node's hub until the link ends.
async fn carry(
    cluster: &Cluster,
    key: &StreamKey,
    owner: &Owner,
    protocol: Protocol,
    mut reader: OwnedReadHalf,
    mut writer: OwnedWriteHalf,
) -> End {
    // Continues the stream here if it waits in its grace (viewers stay).
    let mut publisher = match cluster.hub().publish(key.clone(), protocol, RELAY_TRANSPORT, Some(owner.node.clone())) {
        Ok(p) => p,
        Err(e) => return End::Refused(e.to_string()),
    };
    let stream = publisher.stream().clone();
    let (messages, mut incoming) = mpsc::channel::<Result<Message, WireError>>(64);
    // Reads apart from the loop below: a read is not cancel-safe.
    let reading = tokio::spawn(async move {
        loop {
            let message = match tokio::time::timeout(SILENCE, wire::read(&mut reader)).await {
                Ok(m) => m,
                Err(_) => Err(WireError::Io(format!("nothing from the origin for {SILENCE:?}"))),
            };
            let last = message.is_err();
            if messages.send(message).await.is_err() || last {
                return;
            }
        }
    });
    let mut infos: [Option<Arc<TrackInfo>>; 2] = [None, None];
    let grace = cluster.hub().config().grace;
    let mut idle_since: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let end = loop {
        tokio::select! {
            message = incoming.recv() => match message {
                Some(Ok(Message::Info(info))) => {
                    let at = info.kind().index();
                    infos[at] = Some(Arc::new(info));
                }
                Some(Ok(Message::Frame { kind, keyframe, dts, pts, data })) => {
                    // A frame before its track's info has nothing to be decoded with.
                    let Some(info) = infos[kind.index()].clone() else { continue };
                    publisher.add_bytes_in(data.len());
                    publisher.push(Frame::new(info, dts, pts, keyframe, data));
                }
                Some(Ok(Message::End(reason))) => break End::Lost(format!("the origin ended it: {reason}")),
                Some(Ok(_)) => {}
                Some(Err(e)) => break End::Lost(e.to_string()),
                None => break End::Lost("the link's reader stopped".into()),
            },
            _ = publisher.keyframe_requested() => {
                let mut out = BytesMut::new();
                Message::Keyframe.encode(&mut out);
                if tokio::time::timeout(Duration::from_secs(2), writer.write_all(&out)).await.map_or(true, |r| r.is_err()) {
                    break End::Lost("the origin takes nothing".into());
                }
            }
            _ = tick.tick() => {
                if stream.consumers().is_empty() {
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= grace {
                        // Ends now, without a reconnect grace: nobody here waits for it.
                        stream.kick();
                        break End::Idle;
                    }
                } else {
                    idle_since = None;
                }
            }
            _ = publisher.kicked() => break End::Idle,
            _ = cluster.shutdown().cancelled() => break End::Idle,
        }
    };
    reading.abort();
    drop(publisher);
    end
}
