//! Tokio layer for clients that connect to our RTMP server (publishers and players).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};

use super::chunk::ChunkLimits;
use super::error::RtmpError;
use super::media::{MediaKind, MEDIA_STREAM_ID, OUT_CHUNK_SIZE};
use super::session::{ServerEvent, ServerSession};
use super::transport::{epoch_ms, Transport};

/// A client connected to our RTMP server.
pub struct ServerConn<S> {
    t: Transport<S, ServerSession>,
    peer_addr: Option<SocketAddr>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> ServerConn<S> {
    /// Runs the handshake with a client that just connected, within `handshake_timeout`.
    pub async fn accept(io: S, handshake_timeout: Duration) -> Result<Self, RtmpError> {
        Self::accept_limited(io, handshake_timeout, ChunkLimits::default()).await
    }

    /// [`ServerConn::accept`] with the client held to `limits`.
    pub async fn accept_limited(io: S, handshake_timeout: Duration, limits: ChunkLimits) -> Result<Self, RtmpError> {
        let mut t = Transport::new(io, ServerSession::with_limits(epoch_ms(), limits));
        t.drive_until(ServerSession::handshake_done, handshake_timeout, "handshake").await?;
        Ok(ServerConn { t, peer_addr: None })
    }

    /// Records the client's address (for logs and the API).
    pub fn set_peer_addr(&mut self, addr: SocketAddr) {
        self.peer_addr = Some(addr);
    }

    /// The client's address, if recorded with [`ServerConn::set_peer_addr`].
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_addr
    }

    /// The application name from `connect`, once connected.
    pub fn app(&self) -> Option<&str> {
        self.t.session.app()
    }

    /// The next event; `None` when the client closed the connection (after the events it
    /// sent before). Sends pending protocol output (replies, acknowledgements, pings) first.
    /// Cancel-safe, for use in `tokio::select!`.
    pub async fn next_event(&mut self) -> Result<Option<ServerEvent>, RtmpError> {
        self.t.next_event().await
    }

    /// Accepts the pending publish (Stream Begin + `NetStream.Publish.Start`).
    pub async fn accept_publish(&mut self) -> Result<(), RtmpError> {
        self.t.session.accept_publish()?;
        self.t.flush().await
    }

    /// Refuses the pending publish (`NetStream.Publish.BadName` with `reason`); close next.
    pub async fn reject_publish(&mut self, reason: &str) -> Result<(), RtmpError> {
        self.t.session.reject_publish(reason)?;
        self.t.flush().await
    }

    /// Refuses the pending publish for want of rights (`NetStream.Publish.Unauthorized`).
    pub async fn unauthorized_publish(&mut self, reason: &str) -> Result<(), RtmpError> {
        self.t.session.refuse_publish("NetStream.Publish.Unauthorized", reason)?;
        self.t.flush().await
    }

    /// Refuses the pending play for want of rights (`NetStream.Play.Unauthorized`).
    pub async fn unauthorized_play(&mut self, reason: &str) -> Result<(), RtmpError> {
        self.t.session.refuse_play("NetStream.Play.Unauthorized", reason)?;
        self.t.flush().await
    }

    /// Accepts the pending play (Stream Begin, `Play.Reset`, `Play.Start`, sample access).
    pub async fn accept_play(&mut self) -> Result<(), RtmpError> {
        self.t.session.accept_play()?;
        self.t.flush().await
    }

    /// Refuses the pending play (`NetStream.Play.StreamNotFound` with `reason`); close next.
    pub async fn reject_play(&mut self, reason: &str) -> Result<(), RtmpError> {
        self.t.session.reject_play(reason)?;
        self.t.flush().await
    }

    /// Tells a player that the stream ended (Stream EOF + `NetStream.Play.UnpublishNotify`).
    pub async fn end_play(&mut self) -> Result<(), RtmpError> {
        self.t.session.end_play();
        self.t.flush().await
    }

    /// Sends media pre-encoded with [`super::encode_media_chunks`] to a player. If cancelled,
    /// the unsent rest stays queued and goes out first on the next call.
    pub async fn send_chunks(&mut self, chunks: &Bytes) -> Result<(), RtmpError> {
        self.t.session.send_chunks(chunks);
        self.t.flush().await
    }

    /// Encodes and sends one media message to a player.
    pub async fn send_media(&mut self, kind: MediaKind, timestamp: u32, payload: &[u8]) -> Result<(), RtmpError> {
        self.t.session.send_media(kind, timestamp, payload);
        self.t.flush().await
    }

    /// Puts one media message for a player into the output queue, its payload shared (not
    /// copied): [`ServerConn::next_event`] and [`ServerConn::flush`] send it. A payload too
    /// long for RTMP is left out (logged).
    pub fn queue_shared_media(&mut self, kind: MediaKind, timestamp: u32, payload: &Bytes) {
        self.t.stage();
        let put = super::chunk::put_message(
            &mut self.t.outbox,
            OUT_CHUNK_SIZE,
            kind.csid(),
            kind.type_id(),
            MEDIA_STREAM_ID,
            timestamp,
            payload,
        );
        if let Err(e) = put {
            tracing::warn!(error = %e, ?kind, "RTMP media message dropped");
        }
    }

    /// Writes everything queued (cancel-safe: a cancelled call leaves the unwritten rest).
    pub async fn flush(&mut self) -> Result<(), RtmpError> {
        self.t.flush().await
    }

    /// Bytes queued but not yet written (e.g. to drop a player that falls behind).
    pub fn pending_output(&mut self) -> usize {
        self.t.pending()
    }

    /// Bytes written to the socket so far (see [`crate::hub::egress`]).
    pub fn bytes_written(&self) -> u64 {
        self.t.written
    }

    /// Sends what is still queued (bounded wait) and shuts the connection down.
    pub async fn close(self) {
        self.t.close().await;
    }
}

impl ServerConn<tokio::net::TcpStream> {
    /// `(bytes the player has taken, bytes the kernel still holds for it)`, through `kernel`
    /// (see [`crate::socket::KernelQueue`]); this connection's own queue is
    /// [`ServerConn::pending_output`].
    pub fn kernel_progress(&self, kernel: &mut crate::socket::KernelQueue, fresh: bool) -> (u64, usize) {
        kernel.progress(&self.t.io, self.t.written, fresh)
    }
}
