//! The IO loop shared by [`super::ServerConn`] and [`super::ClientConn`]: a sans-IO session
//! over an async byte stream.
//!
//! Output (the session's buffer, then media put straight into the [`Outbox`]) is written with
//! vectored writes that advance it, so a cancelled call never loses or repeats bytes; input is read with `read_buf` into a
//! buffer owned here, so a cancelled read never loses bytes either.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::client_session::{ClientEvent, ClientSession};
use super::error::RtmpError;
use super::session::{ServerEvent, ServerSession};
use crate::hub::outbox::Outbox;

/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;
/// How long `close` waits to get pending output out.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Milliseconds for handshake time fields (wraps; any epoch will do).
pub(crate) fn epoch_ms() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u32)
}

/// What the transport needs from a session.
pub(crate) trait Session {
    type Event;
    fn output(&mut self) -> &mut BytesMut;
    fn handle_input(&mut self, input: &mut BytesMut) -> Result<(), RtmpError>;
    fn poll_event(&mut self) -> Option<Self::Event>;
}

impl Session for ServerSession {
    type Event = ServerEvent;
    fn output(&mut self) -> &mut BytesMut {
        ServerSession::output(self)
    }
    fn handle_input(&mut self, input: &mut BytesMut) -> Result<(), RtmpError> {
        ServerSession::handle_input(self, input)
    }
    fn poll_event(&mut self) -> Option<ServerEvent> {
        ServerSession::poll_event(self)
    }
}

impl Session for ClientSession {
    type Event = ClientEvent;
    fn output(&mut self) -> &mut BytesMut {
        ClientSession::output(self)
    }
    fn handle_input(&mut self, input: &mut BytesMut) -> Result<(), RtmpError> {
        ClientSession::handle_input(self, input)
    }
    fn poll_event(&mut self) -> Option<ClientEvent> {
        ClientSession::poll_event(self)
    }
}

/// Whether an error means the peer is gone (rather than something worth reporting).
fn is_disconnect(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), BrokenPipe | ConnectionReset | ConnectionAborted | WriteZero)
}

/// A session and its byte stream.
pub(crate) struct Transport<S, P> {
    pub io: S,
    pub session: P,
    /// What goes out: the session's output, and media put here directly (shared bodies).
    pub outbox: Outbox,
    input: BytesMut,
    /// The peer closed or reset the connection.
    peer_gone: bool,
    /// Bytes written to `io` so far (a stalled peer takes none).
    pub written: u64,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send, P: Session> Transport<S, P> {
    pub fn new(io: S, session: P) -> Self {
        Transport {
            io,
            session,
            outbox: Outbox::new(),
            input: BytesMut::with_capacity(READ_CHUNK),
            peer_gone: false,
            written: 0,
        }
    }

    /// Moves the session's output into the outbox, so that what is put there next goes out
    /// after it.
    pub fn stage(&mut self) {
        let out = self.session.output();
        if !out.is_empty() {
            self.outbox.put_shared(out.split().freeze());
        }
    }

    /// Bytes queued but not yet written.
    pub fn pending(&mut self) -> usize {
        self.session.output().len() + self.outbox.pending()
    }

    /// Writes all queued output, as few vectored writes as the socket takes it in
    /// (cancel-safe: a cancelled call leaves exactly the unwritten rest queued), then flushes.
    pub async fn flush(&mut self) -> Result<(), RtmpError> {
        loop {
            self.stage();
            if self.outbox.is_empty() {
                break;
            }
            let n = self.outbox.write_to(&mut self.io).await?;
            self.written += n as u64;
        }
        self.io.flush().await?;
        Ok(())
    }

    /// Reads what is available and feeds it to the session (cancel-safe). `false` when the
    /// peer closed.
    pub async fn read_more(&mut self) -> Result<bool, RtmpError> {
        if self.input.capacity() - self.input.len() < READ_CHUNK / 4 {
            self.input.reserve(READ_CHUNK);
        }
        match self.io.read_buf(&mut self.input).await {
            Ok(0) => Ok(false),
            Ok(_) => {
                self.session.handle_input(&mut self.input)?;
                Ok(true)
            }
            Err(e) if is_disconnect(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Sends pending output, then hands out the next event, reading as needed. `None` once
    /// the peer is gone and the events it sent before are out. Cancel-safe.
    pub async fn next_event(&mut self) -> Result<Option<P::Event>, RtmpError> {
        loop {
            if !self.peer_gone {
                match self.flush().await {
                    Ok(()) => {}
                    Err(RtmpError::Io(e)) if is_disconnect(&e) => {
                        self.peer_gone = true;
                        self.session.output().clear();
                        self.outbox.clear();
                    }
                    Err(e) => return Err(e),
                }
            }
            if let Some(event) = self.session.poll_event() {
                return Ok(Some(event));
            }
            if self.peer_gone || !self.read_more().await? {
                self.peer_gone = true;
                return Ok(None);
            }
        }
    }

    /// Flushes and reads until `done` holds, within `limit`; `what` names the exchange in
    /// errors. Events that arrive meanwhile stay queued.
    pub async fn drive_until(
        &mut self,
        done: impl Fn(&P) -> bool,
        limit: Duration,
        what: &'static str,
    ) -> Result<(), RtmpError> {
        let exchange = async {
            loop {
                self.flush().await?;
                if done(&self.session) {
                    return Ok(());
                }
                if !self.read_more().await? {
                    return Err(RtmpError::Closed(what));
                }
            }
        };
        tokio::time::timeout(limit, exchange).await.map_err(|_| RtmpError::Timeout(what))?
    }

    /// Sends what is still queued (bounded wait) and shuts the stream down.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, async {
            let _ = self.flush().await;
            let _ = self.io.shutdown().await;
        })
        .await;
    }
}
