//! Datagrams a viewer's `Rtc` made while it was driven, sent together: one `sendmmsg(2)` per
//! batch instead of one `sendto(2)` per packet. Never blocks: what the socket's buffer cannot
//! take is dropped (and counted), as a congested link would drop it.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use socket2::SockAddr;

/// Most datagrams handed to the kernel per call (a cached GOP is sent in several calls).
const MAX_PER_CALL: usize = 64;

#[derive(Default)]
pub struct Outbox {
    queued: Vec<(Vec<u8>, SocketAddr)>,
}

impl Outbox {
    pub fn push(&mut self, datagram: Vec<u8>, to: SocketAddr) {
        self.queued.push((datagram, to));
    }

    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Sends what is queued on `socket`; returns the datagrams it could not take.
    pub fn flush(&mut self, socket: &impl AsRawFd) -> u64 {
        let mut dropped = 0;
        let queued = std::mem::take(&mut self.queued);
        for chunk in queued.chunks(MAX_PER_CALL) {
            let sent = send_many(socket.as_raw_fd(), chunk);
            dropped += (chunk.len() - sent) as u64;
        }
        // Keep the allocation for the next batch.
        self.queued = queued;
        self.queued.clear();
        dropped
    }
}

/// `sendmmsg` of `datagrams`; returns how many the kernel took (the rest are dropped: a full
/// buffer, or an error on one of them).
fn send_many(fd: std::os::fd::RawFd, datagrams: &[(Vec<u8>, SocketAddr)]) -> usize {
    let addrs: Vec<SockAddr> = datagrams.iter().map(|(_, to)| SockAddr::from(*to)).collect();
    let mut iovs: Vec<libc::iovec> = datagrams
        .iter()
        .map(|(d, _)| libc::iovec { iov_base: d.as_ptr() as *mut libc::c_void, iov_len: d.len() })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .zip(&addrs)
        .map(|(iov, addr)| {
            // SAFETY: an all-zero msghdr is valid (no name, no control data).
            let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
            h.msg_name = addr.as_ptr() as *mut libc::c_void;
            h.msg_namelen = addr.len();
            h.msg_iov = iov as *mut libc::iovec;
            h.msg_iovlen = 1;
            libc::mmsghdr { msg_hdr: h, msg_len: 0 }
        })
        .collect();
    let mut done = 0;
    while done < headers.len() {
        let rest = &mut headers[done..];
        // SAFETY: every header points at an address and an iovec that outlive the call (`addrs`,
        // `iovs`, the datagrams); the count matches the slice.
        let n = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as libc::c_uint, libc::MSG_DONTWAIT) };
        if n <= 0 {
            let err = std::io::Error::last_os_error();
            if n < 0 && err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            if n < 0 && err.kind() != std::io::ErrorKind::WouldBlock {
                // One datagram the kernel refuses (e.g. no route): skip it, send the rest.
                done += 1;
                continue;
            }
            break;
        }
        done += n as usize;
    }
    done.min(datagrams.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_arrives_whole_and_in_order() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let mut out = Outbox::default();
        for i in 0..100u8 {
            out.push(vec![i; 100 + usize::from(i)], to);
        }
        assert_eq!(out.flush(&tx), 0);
        assert!(out.is_empty());
        let mut buf = [0u8; 512];
        for i in 0..100u8 {
            let (n, _) = rx.recv_from(&mut buf).unwrap();
            assert_eq!((n, buf[0]), (100 + usize::from(i), i));
        }
    }
}
