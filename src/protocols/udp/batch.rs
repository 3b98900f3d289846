//! Reading a socket's queued datagrams a batch at a time: one `recvmmsg` brings up to
//! [`SLOTS`] of them, where `recv` took a system call each and one more to learn the queue was
//! empty. A batch that comes back short emptied the queue (the kernel stopped at "would
//! block"), so the socket's readiness is cleared then and there, without that last call.

use std::io::ErrorKind;

use tokio::net::UdpSocket;

/// Datagrams one read brings at most.
pub const SLOTS: usize = 8;

/// Room for [`SLOTS`] datagrams of up to `max` bytes each (bigger ones are cut).
pub struct Batch {
    bufs: Vec<Vec<u8>>,
    lens: [usize; SLOTS],
    len: usize,
}

impl Batch {
    pub fn new(max: usize) -> Batch {
        Batch { bufs: (0..SLOTS).map(|_| vec![0; max]).collect(), lens: [0; SLOTS], len: 0 }
    }

    /// The datagrams the last [`read`](Self::read) brought, in arrival order.
    pub fn datagrams(&self) -> impl Iterator<Item = &[u8]> {
        self.bufs.iter().zip(self.lens).take(self.len).map(|(b, n)| &b[..n.min(b.len())])
    }

    /// Reads what `socket` has queued, up to [`SLOTS`] datagrams; true when the queue is empty
    /// now (or the socket failed: nothing more to read this time).
    pub fn read(&mut self, socket: &UdpSocket) -> bool {
        self.len = 0;
        let read = socket.try_io(tokio::io::Interest::READABLE, || {
            self.len = recv_many(socket, &mut self.bufs, &mut self.lens)?;
            if self.len < SLOTS {
                // Short: the kernel found the queue empty (tokio clears the readiness).
                return Err(ErrorKind::WouldBlock.into());
            }
            Ok(())
        });
        read.is_err()
    }
}

#[cfg(target_os = "linux")]
fn recv_many(socket: &UdpSocket, bufs: &mut [Vec<u8>], lens: &mut [usize; SLOTS]) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut iovs: [libc::iovec; SLOTS] = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; SLOTS];
    // SAFETY: mmsghdr is plain data (pointers and sizes); all zeros is a valid empty header.
    let mut msgs: [libc::mmsghdr; SLOTS] = unsafe { std::mem::zeroed() };
    let n = bufs.len().min(SLOTS);
    for i in 0..n {
        iovs[i] = libc::iovec { iov_base: bufs[i].as_mut_ptr().cast(), iov_len: bufs[i].len() };
        msgs[i].msg_hdr.msg_iov = &mut iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: every header points at one iovec over a live buffer of its stated length, all
    // of them outliving the call; no address or control buffers are asked for.
    let got = unsafe {
        libc::recvmmsg(socket.as_raw_fd(), msgs.as_mut_ptr(), n as _, libc::MSG_DONTWAIT, std::ptr::null_mut())
    };
    if got < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let got = got as usize;
    for (len, msg) in lens.iter_mut().zip(&msgs).take(got) {
        *len = msg.msg_len as usize;
    }
    Ok(got)
}

/// Elsewhere: one datagram per read (a read of one is short, so the next call finds the queue
/// empty through `recv` itself).
#[cfg(not(target_os = "linux"))]
fn recv_many(socket: &UdpSocket, bufs: &mut [Vec<u8>], lens: &mut [usize; SLOTS]) -> std::io::Result<usize> {
    let Some(buf) = bufs.first_mut() else { return Ok(0) };
    lens[0] = socket.try_recv(buf)?;
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_brings_what_is_queued_in_order_and_cuts_big_datagrams() {
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let mut batch = Batch::new(16);
        assert!(batch.read(&rx), "nothing queued yet");
        assert_eq!(batch.datagrams().count(), 0);
        let sent: Vec<Vec<u8>> = (0..SLOTS as u8 + 3).map(|i| vec![i; 1 + usize::from(i) * 2]).collect();
        for d in &sent {
            tx.send_to(d, to).unwrap();
        }
        let mut got = Vec::new();
        while got.len() < sent.len() {
            rx.readable().await.unwrap();
            let empty = batch.read(&rx);
            got.extend(batch.datagrams().map(<[u8]>::to_vec));
            assert!(empty || batch.datagrams().count() == SLOTS);
        }
        let cut: Vec<Vec<u8>> = sent.iter().map(|d| d[..d.len().min(16)].to_vec()).collect();
        assert_eq!(got, cut);
        // Empty again: the readiness was cleared, the next wait waits.
        let wait = tokio::time::timeout(std::time::Duration::from_millis(50), rx.readable()).await;
        assert!(wait.is_err(), "still readable with nothing queued");
    }
}
