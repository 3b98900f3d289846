//! The HTTP listener's connections with a bound on stalled writes: a peer that takes no byte
//! for [`WRITE_STALL`] while the server has some to send gets its connection closed. The media
//! endpoints (HTTP-FLV, H5 WebSocket) bound their own queues; this frees the socket behind a
//! viewer that stopped reading, which hyper would otherwise keep waiting on forever.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// How long a write may make no progress before the connection is closed.
pub const WRITE_STALL: Duration = Duration::from_secs(10);

/// An IO whose writes fail with `TimedOut` after making no progress for `stall`.
pub struct StallGuard<T> {
    inner: T,
    stall: Duration,
    /// Set when a write first found the peer not reading; cleared by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> StallGuard<T> {
    pub fn new(inner: T, stall: Duration) -> Self {
        StallGuard { inner, stall, stalled: None }
    }

    /// Called when a write is pending: an error once it has been for `stall`.
    fn pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let stall = self.stall;
        let timer = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "peer took nothing for too long")),
            Poll::Pending => Poll::Pending,
        }
    }

    fn guard<R>(&mut self, cx: &mut Context<'_>, result: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match result {
            Poll::Pending => self.pending(cx).map(Err),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.guard(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.guard(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.guard(cx, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.guard(cx, result)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn a_write_the_peer_never_takes_times_out_and_progress_resets_the_clock() {
        let (near, mut far) = tokio::io::duplex(16);
        let mut guarded = StallGuard::new(near, Duration::from_millis(100));
        guarded.write_all(&[0; 16]).await.expect("fits the pipe");
        // Reading a little within the bound lets the next write through.
        let reader = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut buf = [0; 16];
            tokio::io::AsyncReadExt::read_exact(&mut far, &mut buf).await.expect("read");
            far
        });
        guarded.write_all(&[1; 16]).await.expect("the peer read in time");
        let _far = reader.await.expect("reader");
        let started = tokio::time::Instant::now();
        let err = guarded.write_all(&[2; 16]).await.expect_err("nobody reads any more");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(100));
    }
}
