//! Writing ISO BMFF boxes (ISO/IEC 14496-12): a size placeholder when a box opens, filled in
//! when it closes, so nested boxes are written in one pass.

use bytes::{BufMut, BytesMut};

#[derive(Default)]
pub struct BoxWriter {
    buf: BytesMut,
    open: Vec<usize>,
}

impl BoxWriter {
    pub fn new() -> BoxWriter {
        BoxWriter::default()
    }

    /// Opens a box; every `open` needs its `close`.
    pub fn open(&mut self, fourcc: &[u8; 4]) -> &mut Self {
        self.open.push(self.buf.len());
        self.buf.put_u32(0);
        self.buf.put_slice(fourcc);
        self
    }

    /// Opens a full box (version and flags).
    pub fn open_full(&mut self, fourcc: &[u8; 4], version: u8, flags: u32) -> &mut Self {
        self.open(fourcc);
        self.buf.put_u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
        self
    }

    pub fn close(&mut self) -> &mut Self {
        if let Some(start) = self.open.pop() {
            let size = (self.buf.len() - start) as u32;
            self.buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
        }
        self
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.put_u8(v);
        self
    }

    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.put_u16(v);
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.put_u32(v);
        self
    }

    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.put_i32(v);
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.put_u64(v);
        self
    }

    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.buf.put_slice(v);
        self
    }

    pub fn zeros(&mut self, n: usize) -> &mut Self {
        self.buf.put_bytes(0, n);
        self
    }

    /// Where the next byte goes (for offsets patched later).
    pub fn position(&self) -> usize {
        self.buf.len()
    }

    /// Overwrites four bytes at `at` (written earlier) with `v`.
    pub fn patch_u32(&mut self, at: usize, v: u32) {
        self.buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    /// The unity transformation matrix of `mvhd` and `tkhd`.
    pub fn unity_matrix(&mut self) -> &mut Self {
        for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
            self.buf.put_u32(v);
        }
        self
    }

    pub fn finish(self) -> BytesMut {
        debug_assert!(self.open.is_empty(), "a box left open");
        self.buf
    }
}

/// Reads the boxes of `data` (one level): `(fourcc, body)`; stops at a malformed size.
pub fn children(data: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 8 {
        let size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if size < 8 || size > rest.len() {
            break;
        }
        out.push(([rest[4], rest[5], rest[6], rest[7]], &rest[8..size]));
        rest = &rest[size..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_boxes_get_their_sizes() {
        let mut w = BoxWriter::new();
        w.open(b"moov").open_full(b"mvhd", 0, 0).u32(7).close().open(b"trak").close().close();
        let data = w.finish();
        let top = children(&data);
        assert_eq!(top.len(), 1);
        assert_eq!(&top[0].0, b"moov");
        let inner = children(top[0].1);
        assert_eq!(inner.iter().map(|(f, b)| (*f, b.len())).collect::<Vec<_>>(), [(*b"mvhd", 8), (*b"trak", 0)]);
    }
}
