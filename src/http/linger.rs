//! Lingering close for HTTP connections. A server that answers before it has read the whole
//! request (413 on a body over the limit, 408 on a body too slow) and then closes with
//! unread bytes in its receive buffer makes the kernel send a TCP RST, which can destroy the
//! answer in the client's receive buffer before the client reads it (a client that sends its
//! whole body before reading, as most do, then sees "connection reset" instead of the 413).
//! Servers (Apache's `lingering_close`, nginx's `lingering_close`) shut the write side down
//! first and read and discard what the client still sends, for a bounded time and amount.
//!
//! [`SharedTcp`] is the connection's IO handed to hyper while the accept loop keeps a second
//! handle on the same socket, so it can linger after hyper is done with it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How long a closing connection reads and discards what its client still sends.
pub const LINGER_TIME: Duration = Duration::from_secs(2);
/// How many bytes it discards at most.
pub const LINGER_BYTES: usize = 8 << 20;

/// A TCP connection shared between hyper and the accept loop (see the module doc).
#[derive(Clone)]
pub struct SharedTcp(Arc<TcpStream>);

impl SharedTcp {
    pub fn new(io: TcpStream) -> Self {
        SharedTcp(Arc::new(io))
    }

    /// After hyper is done: unless another handle is still in use (an upgraded WebSocket),
    /// shuts the write side down and discards what the client sends until it closes, for at
    /// most [`LINGER_TIME`] and [`LINGER_BYTES`]. Returns the bytes discarded.
    pub async fn linger(self) -> usize {
        let Ok(io) = Arc::try_unwrap(self.0) else {
            return 0;
        };
        let _ = socket2::SockRef::from(&io).shutdown(std::net::Shutdown::Write);
        let mut discarded = 0;
        let mut buf = vec![0u8; 64 * 1024];
        let deadline = tokio::time::Instant::now() + LINGER_TIME;
        while discarded < LINGER_BYTES {
            let read = async {
                io.readable().await?;
                match io.try_read(&mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                    other => other.map(Some),
                }
            };
            match tokio::time::timeout_at(deadline, read).await {
                Ok(Ok(Some(0))) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(Some(n))) => discarded += n,
                Ok(Ok(None)) => {}
            }
        }
        discarded
    }
}

impl AsyncRead for SharedTcp {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SharedTcp {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(data) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(&*self.0).shutdown(std::net::Shutdown::Write).or_else(|e| {
            if e.kind() == io::ErrorKind::NotConnected {
                Ok(())
            } else {
                Err(e)
            }
        }))
    }
}
