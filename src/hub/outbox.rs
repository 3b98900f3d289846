//! One viewer's pending output as a list of byte segments: the frame bodies every viewer of a
//! stream shares (reference-counted, never copied per viewer) between the viewer's own small
//! headers (its timestamps), written with one vectored system call for a whole batch.
//!
//! Sans-IO but for [`Outbox::write_to`], the one `writev`.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Segments shorter than this are copied next to the viewer's headers rather than referenced:
/// an I/O vector entry costs more than copying a few dozen bytes.
const COPY_BELOW: usize = 64;
/// The most segments one write takes (Linux allows 1024).
pub const MAX_SLICES: usize = 256;
/// The viewer's own bytes (headers) are written into blocks of this size, each split into
/// many segments, rather than into an allocation per batch.
const SCRATCH_BLOCK: usize = 4096;

/// See the module doc.
#[derive(Debug, Default)]
pub struct Outbox {
    segments: VecDeque<Bytes>,
    /// The viewer's own bytes since the last shared segment.
    scratch: BytesMut,
    /// Bytes waiting in `segments` and `scratch`.
    pending: usize,
    /// Bytes written so far.
    written: u64,
}

impl Outbox {
    pub fn new() -> Outbox {
        Outbox::default()
    }

    /// Appends bytes of this viewer's own (copied).
    pub fn put_slice(&mut self, bytes: &[u8]) {
        if self.scratch.capacity() - self.scratch.len() < bytes.len() {
            self.scratch.reserve(bytes.len().max(SCRATCH_BLOCK));
        }
        self.scratch.extend_from_slice(bytes);
        self.pending += bytes.len();
    }

    /// Appends shared bytes (referenced, not copied, unless tiny).
    pub fn put_shared(&mut self, bytes: Bytes) {
        if bytes.len() < COPY_BELOW {
            self.put_slice(&bytes);
            return;
        }
        self.seal();
        self.pending += bytes.len();
        self.segments.push_back(bytes);
    }

    /// Bytes waiting to be written.
    pub fn pending(&self) -> usize {
        self.pending
    }

    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Drops everything waiting (the viewer is gone).
    pub fn clear(&mut self) {
        self.segments.clear();
        self.scratch.clear();
        self.pending = 0;
    }

    /// Moves the viewer's own bytes into the segment list, after what is there.
    fn seal(&mut self) {
        if !self.scratch.is_empty() {
            self.segments.push_back(self.scratch.split().freeze());
        }
    }

    /// Fills `dst` with the waiting bytes, in order; how many slices it filled.
    pub fn slices<'a>(&'a mut self, dst: &mut [IoSlice<'a>]) -> usize {
        self.seal();
        let mut n = 0;
        for (slot, segment) in dst.iter_mut().zip(self.segments.iter()) {
            *slot = IoSlice::new(segment);
            n += 1;
        }
        n
    }

    /// Drops the first `n` waiting bytes (they were written).
    pub fn advance(&mut self, mut n: usize) {
        self.seal();
        n = n.min(self.pending);
        self.pending -= n;
        self.written += n as u64;
        while n > 0 {
            let Some(front) = self.segments.front_mut() else { break };
            if front.len() > n {
                front.advance(n);
                break;
            }
            n -= front.len();
            self.segments.pop_front();
        }
    }

    /// One vectored write of what is waiting (at most [`MAX_SLICES`] segments); the bytes
    /// written. Cancel-safe: a cancelled call wrote nothing.
    pub async fn write_to<W: AsyncWrite + Unpin>(&mut self, io: &mut W) -> std::io::Result<usize> {
        if self.is_empty() {
            return Ok(0);
        }
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let filled = self.slices(&mut slices);
        let n = io.write_vectored(&slices[..filled]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        self.advance(n);
        Ok(n)
    }

    /// Writes without waiting, as `write` (e.g. `TcpStream::try_write_vectored`) takes it,
    /// until nothing waits or `write` would block: the bytes written. Errors but
    /// `WouldBlock` are the caller's.
    pub fn write_now(
        &mut self,
        mut write: impl FnMut(&[IoSlice<'_>]) -> std::io::Result<usize>,
    ) -> std::io::Result<usize> {
        let mut total = 0;
        while !self.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let filled = self.slices(&mut slices);
            match write(&slices[..filled]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.advance(n);
                    total += n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    /// Writes until nothing waits. Cancel-safe: what was not written stays.
    pub async fn flush_to<W: AsyncWrite + Unpin>(&mut self, io: &mut W) -> std::io::Result<()> {
        while !self.is_empty() {
            self.write_to(io).await?;
        }
        Ok(())
    }

    /// Everything waiting as one buffer (copied), leaving the outbox empty but for its count
    /// of bytes written: for outputs that take whole buffers (a channel to an HTTP body).
    pub fn take_all(&mut self) -> Bytes {
        self.seal();
        let n = self.pending;
        let bytes = match self.segments.len() {
            0 => Bytes::new(),
            1 => self.segments.pop_front().unwrap_or_default(),
            _ => {
                let mut all = BytesMut::with_capacity(n);
                for segment in self.segments.drain(..) {
                    all.extend_from_slice(&segment);
                }
                all.freeze()
            }
        };
        self.segments.clear();
        self.pending = 0;
        self.written += n as u64;
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(n: usize, byte: u8) -> Bytes {
        Bytes::from(vec![byte; n])
    }

    fn contents(o: &mut Outbox) -> Vec<u8> {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let n = o.slices(&mut slices);
        slices[..n].iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn own_bytes_and_shared_bodies_keep_their_order_and_bodies_are_not_copied() {
        let body = shared(1000, 7);
        let mut o = Outbox::new();
        o.put_slice(b"head");
        o.put_shared(body.clone());
        o.put_slice(b"tail+head2");
        o.put_shared(body.clone());
        assert_eq!(o.pending(), 2 * 1000 + 14);
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let n = o.slices(&mut slices);
        assert_eq!(n, 4);
        assert_eq!(slices[1].as_ptr(), body.as_ptr(), "the body is referenced, not copied");
        let all: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(&all[..4], b"head");
        assert_eq!(&all[1004..1014], b"tail+head2");
    }

    #[test]
    fn tiny_shared_segments_are_copied_beside_the_headers() {
        let mut o = Outbox::new();
        o.put_slice(b"h");
        o.put_shared(shared(10, 1));
        o.put_slice(b"t");
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        assert_eq!(o.slices(&mut slices), 1);
        assert_eq!(o.pending(), 12);
    }

    #[test]
    fn partial_writes_advance_across_segments() {
        let mut o = Outbox::new();
        o.put_slice(b"ab");
        o.put_shared(shared(100, 3));
        o.put_slice(b"cd");
        o.advance(1);
        assert_eq!(contents(&mut o)[0], b'b');
        o.advance(50);
        assert_eq!(o.pending(), 53);
        assert_eq!(o.written(), 51);
        o.advance(51);
        assert_eq!(contents(&mut o), b"cd");
        o.advance(10);
        assert!(o.is_empty());
        assert_eq!(o.written(), 104);
        o.put_slice(b"x");
        assert_eq!(contents(&mut o), b"x");
    }

    #[test]
    fn take_all_joins_everything_and_counts_it_written() {
        let mut o = Outbox::new();
        o.put_slice(b"a");
        o.put_shared(shared(70, 2));
        o.put_slice(b"z");
        let all = o.take_all();
        assert_eq!(all.len(), 72);
        assert_eq!((all[0], all[71]), (b'a', b'z'));
        assert!(o.is_empty());
        assert_eq!(o.written(), 72);
    }

    #[tokio::test]
    async fn a_write_takes_what_the_peer_takes_and_the_rest_waits() {
        let (mut near, mut far) = tokio::io::duplex(64);
        let mut o = Outbox::new();
        o.put_slice(b"head");
        o.put_shared(shared(200, 9));
        let n = o.write_to(&mut near).await.unwrap();
        assert!(n > 0 && n <= 64, "the pipe holds 64 bytes: {n}");
        assert_eq!(o.pending(), 204 - n);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut far, &mut got).await.unwrap();
            got
        });
        o.flush_to(&mut near).await.unwrap();
        drop(near);
        let got = reader.await.unwrap();
        assert_eq!(got.len(), 204);
        assert_eq!(&got[..4], b"head");
        assert!(got[4..].iter().all(|&b| b == 9));
    }
}
