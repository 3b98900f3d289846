//! What the kernel still holds for a peer: bytes written to a TCP socket that the peer has not
//! acknowledged yet (Linux `SIOCOUTQ`). A consumer's backlog is its own queue plus these, so a
//! player that stopped reading is seen as behind even while the kernel's send buffer (which
//! grows to megabytes on its own) takes what it is sent.

use std::os::fd::AsRawFd;

/// Bytes in `socket`'s send queue not yet acknowledged by the peer (0 if the kernel will not
/// say).
pub fn unacknowledged(socket: &impl AsRawFd) -> usize {
    let mut queued: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (= TIOCOUTQ) writes one int through the pointer, which outlives the
    // call; an fd that is not a TCP socket makes it fail with an error, not write.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
    if rc == 0 {
        usize::try_from(queued).unwrap_or(0)
    } else {
        0
    }
}

/// How often [`KernelQueue`] asks the kernel (one system call): often enough for the
/// second-scale bounds it feeds.
pub const KERNEL_QUERY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// [`unacknowledged`] asked at most every [`KERNEL_QUERY_INTERVAL`] (or when told to ask
/// afresh): what a viewer's socket holds that it has not taken, cheap enough to look at once
/// per batch of frames.
#[derive(Debug, Default)]
pub struct KernelQueue {
    in_kernel: usize,
    asked: Option<tokio::time::Instant>,
}

impl KernelQueue {
    /// `(bytes taken by the peer, bytes waiting in the kernel)` of the `written` bytes handed
    /// to `socket` so far; `fresh`: ask the kernel now whatever the interval.
    pub fn progress(&mut self, socket: &impl AsRawFd, written: u64, fresh: bool) -> (u64, usize) {
        let now = tokio::time::Instant::now();
        if fresh || self.asked.is_none_or(|at| now.duration_since(at) >= KERNEL_QUERY_INTERVAL) {
            self.in_kernel = unacknowledged(socket);
            self.asked = Some(now);
        }
        let in_kernel = (self.in_kernel as u64).min(written);
        (written - in_kernel, in_kernel as usize)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{ErrorKind, Read, Write};
    use std::time::{Duration, Instant};

    use super::unacknowledged;

    #[test]
    fn bytes_the_peer_has_not_read_are_counted_until_it_reads() {
        // A receiver with a small buffer that does not read: what it cannot take stays in the
        // sender's queue.
        let listener = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        listener.set_recv_buffer_size(4096).unwrap();
        listener.bind(&"127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
        listener.listen(1).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        let mut tx = std::net::TcpStream::connect(addr).unwrap();
        let (rx, _) = listener.accept().unwrap();
        let mut rx = std::net::TcpStream::from(rx);
        assert_eq!(unacknowledged(&tx), 0);
        tx.set_nonblocking(true).unwrap();
        let mut sent = 0;
        loop {
            match tx.write(&[7u8; 16384]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("write: {e}"),
            }
        }
        let waiting = unacknowledged(&tx);
        assert!(waiting > 0 && waiting <= sent, "{waiting} of {sent} bytes waiting");
        // Once the peer reads it all, the queue empties.
        let mut buf = vec![0u8; 65536];
        let (mut read, deadline) = (0, Instant::now() + Duration::from_secs(10));
        while read < sent && Instant::now() < deadline {
            read += rx.read(&mut buf).unwrap();
        }
        assert_eq!(read, sent);
        while unacknowledged(&tx) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(unacknowledged(&tx), 0);
        assert_eq!(unacknowledged(&std::fs::File::open("/dev/null").unwrap()), 0, "not a socket");
    }
}
