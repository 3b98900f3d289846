//! The two ways an HTTP-FLV viewer's bytes leave ([`Sink`]): a TCP connection of its own,
//! written with one vectored system call per batch ([`SocketSink`]), or a queue into a hyper
//! response body ([`ChannelSink`]).

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::mpsc::{self, error::TrySendError};

use super::viewer::Sink;
use crate::hub::outbox::Outbox;
use crate::socket::KernelQueue;

/// A viewer's own TCP connection (see [`super::raw`]).
pub struct SocketSink {
    io: TcpStream,
    /// What the kernel holds for the viewer.
    kernel: KernelQueue,
}

impl SocketSink {
    pub fn new(io: TcpStream) -> SocketSink {
        SocketSink { io, kernel: KernelQueue::default() }
    }

    /// The connection back, e.g. to close it.
    pub fn into_inner(self) -> TcpStream {
        self.io
    }
}

impl Sink for SocketSink {
    fn push(&mut self, out: &mut Outbox) -> io::Result<()> {
        let io = &self.io;
        out.write_now(|slices| io.try_write_vectored(slices)).map(drop)
    }

    fn ready(&self) -> impl Future<Output = io::Result<()>> + Send {
        self.io.writable()
    }

    fn closed(&self) -> impl Future<Output = ()> + Send {
        let io = &self.io;
        async move {
            // The viewer sends nothing after its request: whatever it does send is read and
            // dropped, and the end of its stream (or an error) means it left.
            let mut scrap = [0u8; 512];
            loop {
                if io.readable().await.is_err() {
                    return;
                }
                match io.try_read(&mut scrap) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
        }
    }

    fn progress(&mut self, written: u64, fresh: bool) -> (u64, usize) {
        self.kernel.progress(&self.io, written, fresh)
    }
}

/// A bounded queue of byte batches, drained by an HTTP response body that counts what it
/// took into `taken`.
pub struct ChannelSink {
    tx: mpsc::Sender<Bytes>,
    taken: Arc<AtomicU64>,
    /// Bytes put into the queue so far.
    queued: u64,
}

impl ChannelSink {
    pub fn new(tx: mpsc::Sender<Bytes>, taken: Arc<AtomicU64>) -> ChannelSink {
        ChannelSink { tx, taken, queued: 0 }
    }
}

fn gone() -> io::Error {
    io::ErrorKind::BrokenPipe.into()
}

impl Sink for ChannelSink {
    fn push(&mut self, out: &mut Outbox) -> io::Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        match self.tx.try_reserve() {
            Ok(permit) => {
                let batch = out.take_all();
                self.queued += batch.len() as u64;
                permit.send(batch);
                Ok(())
            }
            Err(TrySendError::Full(())) => Ok(()),
            Err(TrySendError::Closed(())) => Err(gone()),
        }
    }

    async fn ready(&self) -> io::Result<()> {
        self.tx.reserve().await.map(drop).map_err(|_| gone())
    }

    fn closed(&self) -> impl Future<Output = ()> + Send {
        self.tx.closed()
    }

    fn progress(&mut self, _written: u64, _fresh: bool) -> (u64, usize) {
        let taken = self.taken.load(Ordering::Relaxed);
        (taken, self.queued.saturating_sub(taken) as usize)
    }
}
