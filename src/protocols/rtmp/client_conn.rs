//! Tokio layer for our connections to RTMP servers: pushing to or pulling from an origin.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::client_session::{ClientEvent, ClientSession, ClientState};
use super::error::RtmpError;
use super::media::MediaKind;
use super::transport::{epoch_ms, Transport};
use super::url::RtmpUrl;

/// Our connection to an RTMP server.
pub struct ClientConn<S> {
    t: Transport<S, ClientSession>,
    /// Bound on each exchange (connect, publish, play).
    timeout: Duration,
}

fn in_state(want: ClientState) -> impl Fn(&ClientSession) -> bool {
    move |s| s.state() == want
}

impl ClientConn<TcpStream> {
    /// Connects over TCP, runs the handshake and `connect` (app and tcUrl from `url`) and
    /// waits for its `_result`, all within `timeout`. A `_error` reply is
    /// [`RtmpError::Rejected`] with the server's description. The same `timeout` later
    /// bounds `publish` and `play`.
    pub async fn connect(url: &RtmpUrl, timeout: Duration) -> Result<ClientConn<TcpStream>, RtmpError> {
        let started = tokio::time::Instant::now();
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(url.socket_addr_text()))
            .await
            .map_err(|_| RtmpError::Timeout("TCP connect"))??;
        tcp.set_nodelay(true)?;
        let mut conn = ClientConn { t: Transport::new(tcp, ClientSession::new(url, epoch_ms())), timeout };
        let left = timeout.saturating_sub(started.elapsed());
        conn.t.drive_until(in_state(ClientState::Connected), left, "connect").await?;
        Ok(conn)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> ClientConn<S> {
    /// Handshake and `connect` over an already open stream (any transport), within `timeout`.
    pub async fn connect_over(io: S, url: &RtmpUrl, timeout: Duration) -> Result<Self, RtmpError> {
        let mut conn = ClientConn { t: Transport::new(io, ClientSession::new(url, epoch_ms())), timeout };
        conn.t.drive_until(in_state(ClientState::Connected), timeout, "connect").await?;
        Ok(conn)
    }

    /// releaseStream, FCPublish, createStream, publish; waits for `NetStream.Publish.Start`.
    /// An error status is [`RtmpError::Rejected`] with its code and description.
    pub async fn publish(&mut self) -> Result<(), RtmpError> {
        self.t.session.start_publish()?;
        self.t.drive_until(in_state(ClientState::Publishing), self.timeout, "publish").await
    }

    /// createStream, play; waits for `NetStream.Play.Start`. `StreamNotFound` (or any error
    /// status) is [`RtmpError::Rejected`].
    pub async fn play(&mut self) -> Result<(), RtmpError> {
        self.t.session.start_play()?;
        self.t.drive_until(in_state(ClientState::Playing), self.timeout, "play").await
    }

    /// Sends one media message (after `publish`). Audio/video payloads are FLV tag bodies;
    /// data is AMF0 (e.g. `@setDataFrame`, `onMetaData`, {...}).
    pub async fn send_media(&mut self, kind: MediaKind, timestamp: u32, payload: &[u8]) -> Result<(), RtmpError> {
        self.t.session.send_media(kind, timestamp, payload)?;
        self.t.flush().await
    }

    /// Queues one media message (after `publish`) without writing it: [`ClientConn::flush`]
    /// and [`ClientConn::next_event`] send it.
    pub fn queue_media(&mut self, kind: MediaKind, timestamp: u32, payload: &[u8]) -> Result<(), RtmpError> {
        self.t.session.send_media(kind, timestamp, payload)
    }

    /// Writes everything queued (cancel-safe: a cancelled call leaves the unwritten rest).
    pub async fn flush(&mut self) -> Result<(), RtmpError> {
        self.t.flush().await
    }

    /// Bytes written to the socket so far (see [`crate::hub::egress`]).
    pub fn bytes_written(&self) -> u64 {
        self.t.written
    }

    /// The next event (media while playing, status changes); `None` when the server closed
    /// the connection. Sends pending protocol output first. Cancel-safe.
    pub async fn next_event(&mut self) -> Result<Option<ClientEvent>, RtmpError> {
        self.t.next_event().await
    }

    /// Bytes queued but not yet written.
    pub fn pending_output(&mut self) -> usize {
        self.t.pending()
    }

    /// Ends the publish/play (FCUnpublish, deleteStream), with a bounded wait, and shuts
    /// the connection down.
    pub async fn close(mut self) {
        self.t.session.finish();
        self.t.close().await;
    }
}
