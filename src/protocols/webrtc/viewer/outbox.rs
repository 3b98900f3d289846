//! Datagrams a viewer's `Rtc` made while it was driven, sent together: one `sendmmsg(2)` per
//! batch instead of one `sendto(2)` per packet, and the packets of one frame that have the
//! same size (FU-A fragments) as one UDP GSO message (`UDP_SEGMENT`): the kernel's UDP/IP path
//! runs once for them. Never blocks: what the socket's buffer cannot
//! take is dropped (and counted), as a congested link would drop it.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Whether the kernel took UDP GSO so far (cleared at its first refusal, for the process).
static GSO: AtomicBool = AtomicBool::new(true);

/// Largest UDP payload one GSO send may carry in all.
const MAX_GSO_BYTES: usize = 65_000;
/// Most segments in one GSO send.
const MAX_GSO_SEGMENTS: usize = 64;

/// Consecutive datagrams to the same address that one UDP GSO send carries: all of the first
/// one's size but the last, which may be shorter (`UDP_SEGMENT` cuts at that size).
fn groups(datagrams: &[(Vec<u8>, SocketAddr)], gso: bool) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < datagrams.len() {
        let (first, to) = (&datagrams[i].0, datagrams[i].1);
        let size = first.len().max(1);
        let max = if gso { MAX_GSO_SEGMENTS.min(MAX_GSO_BYTES / size).max(1) } else { 1 };
        let mut end = i + 1;
        while end < datagrams.len() && end - i < max && datagrams[end].1 == to && datagrams[end - 1].0.len() == size {
            let len = datagrams[end].0.len();
            if len > size || len == 0 {
                break;
            }
            end += 1;
            if len < size {
                break;
            }
        }
        out.push(i..end);
        i = end;
    }
    out
}

/// Sends `datagrams` with one `sendmmsg`, runs of equal size as one UDP GSO message each;
/// returns how many datagrams the kernel took (the rest are dropped: a full buffer, or an
/// error on one of them).
fn send_many(fd: std::os::fd::RawFd, datagrams: &[(Vec<u8>, SocketAddr)]) -> usize {
    let gso = GSO.load(Ordering::Relaxed);
    let groups = groups(datagrams, gso);
    let addrs: Vec<SockAddr> = groups.iter().map(|g| SockAddr::from(datagrams[g.start].1)).collect();
    let mut iovs: Vec<libc::iovec> = datagrams
        .iter()
        .map(|(d, _)| libc::iovec { iov_base: d.as_ptr() as *mut libc::c_void, iov_len: d.len() })
        .collect();
    // One control message per group (UDP_SEGMENT with the segment size), 8-byte aligned.
    let mut controls: Vec<[u64; 4]> = vec![[0; 4]; groups.len()];
    let mut headers: Vec<libc::mmsghdr> = Vec::with_capacity(groups.len());
    for ((group, addr), control) in groups.iter().zip(&addrs).zip(controls.iter_mut()) {
        // SAFETY: an all-zero msghdr is valid (no name, no control data).
        let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
        h.msg_name = addr.as_ptr() as *mut libc::c_void;
        h.msg_namelen = addr.len();
        h.msg_iov = iovs[group.start..].as_mut_ptr();
        h.msg_iovlen = group.len();
        if group.len() > 1 {
            let size = datagrams[group.start].0.len() as u16;
            h.msg_control = control.as_mut_ptr() as *mut libc::c_void;
            // SAFETY: CMSG_SPACE of a u16 (24 bytes) fits the 32-byte, 8-aligned buffer;
            // CMSG_FIRSTHDR of a msghdr with that control buffer points into it.
            unsafe {
                h.msg_controllen = libc::CMSG_SPACE(2) as usize;
                let c = libc::CMSG_FIRSTHDR(&h);
                (*c).cmsg_level = libc::SOL_UDP;
                (*c).cmsg_type = libc::UDP_SEGMENT;
                (*c).cmsg_len = libc::CMSG_LEN(2) as usize;
                std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, size);
            }
        }
        headers.push(libc::mmsghdr { msg_hdr: h, msg_len: 0 });
    }
    let mut done = 0;
    let mut sent = 0;
    while done < headers.len() {
        let rest = &mut headers[done..];
        // SAFETY: every header points at an address, iovecs and a control buffer that outlive
        // the call (`addrs`, `iovs`, `controls`, the datagrams); the count matches the slice.
        let n = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as libc::c_uint, libc::MSG_DONTWAIT) };
        if n > 0 {
            sent += groups[done..done + n as usize].iter().map(|g| g.len()).sum::<usize>();
            done += n as usize;
            continue;
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => break,
            // A kernel or device without UDP GSO: send one by one from now on.
            Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT) if groups[done].len() > 1 => {
                GSO.store(false, Ordering::Relaxed);
                return sent + send_many(fd, &datagrams[groups[done].start..]);
            }
            // One message the kernel refuses (e.g. no route): skip it, send the rest.
            _ => done += 1,
        }
    }
    sent.min(datagrams.len())
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
        let mut buf = [0u8; 2048];
        for i in 0..100u8 {
            let (n, _) = rx.recv_from(&mut buf).unwrap();
            assert_eq!((n, buf[0]), (100 + usize::from(i), i));
        }
        // Runs of one size (GSO), a shorter last one, then single ones: each arrives as sent.
        let sizes = [1200, 1200, 1200, 700, 1200, 1200, 90, 90, 1300, 1200];
        for (i, size) in sizes.iter().enumerate() {
            out.push(vec![i as u8; *size], to);
        }
        assert_eq!(out.flush(&tx), 0);
        for (i, size) in sizes.iter().enumerate() {
            let (n, _) = rx.recv_from(&mut buf).unwrap();
            assert_eq!((n, buf[0], buf[n - 1]), (*size, i as u8, i as u8));
        }
    }

    #[test]
    fn groups_are_runs_of_one_size_ending_with_a_shorter_one() {
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let other: SocketAddr = "127.0.0.1:10".parse().unwrap();
        let d = |sizes: &[(usize, SocketAddr)]| sizes.iter().map(|(n, a)| (vec![0u8; *n], *a)).collect::<Vec<_>>();
        let list =
            d(&[(1200, to), (1200, to), (500, to), (1200, to), (1300, to), (1300, other), (80, other), (80, other)]);
        assert_eq!(groups(&list, true), vec![0..3, 3..4, 4..5, 5..7, 7..8]);
        assert_eq!(groups(&list, false).len(), list.len());
        let many = d(&[(1240, to); 120]);
        assert_eq!(groups(&many, true), vec![0..52, 52..104, 104..120], "at most 65,000 bytes per send");
    }
}
