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

#[cfg(test)]
mod tests {
    use std::io::Write;

    #[test]
    fn bytes_the_peer_has_not_read_are_counted_until_it_reads() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut tx = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (rx, _) = listener.accept().unwrap();
        assert_eq!(super::unacknowledged(&tx), 0);
        tx.write_all(&[7u8; 5000]).unwrap();
        // On loopback the peer's kernel acknowledges at once: what it has not read yet sits in
        // its receive queue, and the sender's queue empties.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(super::unacknowledged(&tx), 0);
        drop(rx);
        assert_eq!(super::unacknowledged(&std::fs::File::open("/dev/null").unwrap()), 0, "not a socket");
    }
}
