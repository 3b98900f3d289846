//! Checked reading of ISO BMFF: a cursor whose every read is bounds-checked and a box iterator
//! that handles the 64-bit (`size == 1`) and to-the-end (`size == 0`) box sizes. Malformed
//! input gives [`Mp4Error::Malformed`], never a panic.

use super::Mp4Error;

/// Reads big-endian fields from a byte slice.
pub struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Cursor<'a> {
        Cursor { data, at: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.at
    }

    /// The next `n` bytes; `what` names the field in the error.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Mp4Error> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.data.len()).ok_or(Mp4Error::Malformed(what))?;
        let out = &self.data[self.at..end];
        self.at = end;
        Ok(out)
    }

    pub fn skip(&mut self, n: usize, what: &'static str) -> Result<(), Mp4Error> {
        self.take(n, what).map(|_| ())
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Mp4Error> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, Mp4Error> {
        Ok(self.array::<1>(what)?[0])
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16, Mp4Error> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, Mp4Error> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub fn i32(&mut self, what: &'static str) -> Result<i32, Mp4Error> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    pub fn u64(&mut self, what: &'static str) -> Result<u64, Mp4Error> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// A full box's version and flags.
    pub fn version_flags(&mut self, what: &'static str) -> Result<(u8, u32), Mp4Error> {
        let v = self.u32(what)?;
        Ok(((v >> 24) as u8, v & 0x00ff_ffff))
    }

    /// The rest of the data.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.data[self.at..];
        self.at = self.data.len();
        out
    }
}

/// One box: its type, where its header starts in the parent's data, and its body.
#[derive(Debug, Clone, Copy)]
pub struct BoxRef<'a> {
    pub fourcc: [u8; 4],
    pub start: usize,
    pub body: &'a [u8],
}

/// The boxes of `data`, one level, in order; an error ends the iteration.
pub struct Boxes<'a> {
    data: &'a [u8],
    at: usize,
    failed: bool,
}

pub fn boxes(data: &[u8]) -> Boxes<'_> {
    Boxes { data, at: 0, failed: false }
}

impl<'a> Boxes<'a> {
    fn next_box(&mut self) -> Result<BoxRef<'a>, Mp4Error> {
        let start = self.at;
        let mut c = Cursor::new(&self.data[start..]);
        let size = c.u32("box header")?;
        let fourcc: [u8; 4] = c.array("box header")?;
        let (header, size) = match size {
            // The box runs to the end of its parent.
            0 => (8, c.remaining() + 8),
            1 => {
                let large = c.u64("box size")?;
                (16, usize::try_from(large).map_err(|_| Mp4Error::Malformed("box size"))?)
            }
            n => (8, n as usize),
        };
        if size < header || size > self.data.len() - start {
            return Err(Mp4Error::Malformed("box size"));
        }
        self.at = start + size;
        Ok(BoxRef { fourcc, start, body: &self.data[start + header..start + size] })
    }
}

impl<'a> Iterator for Boxes<'a> {
    type Item = Result<BoxRef<'a>, Mp4Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.at >= self.data.len() {
            return None;
        }
        let item = self.next_box();
        self.failed = item.is_err();
        Some(item)
    }
}

/// The body of the first `fourcc` box of `data`, if any (malformed boxes are errors).
pub fn find<'a>(data: &'a [u8], fourcc: &[u8; 4]) -> Result<Option<&'a [u8]>, Mp4Error> {
    for b in boxes(data) {
        let b = b?;
        if &b.fourcc == fourcc {
            return Ok(Some(b.body));
        }
    }
    Ok(None)
}

/// The body of the `fourcc` box of `data`, which must be there (`what` names it in the error).
pub fn require<'a>(data: &'a [u8], fourcc: &[u8; 4], what: &'static str) -> Result<&'a [u8], Mp4Error> {
    find(data, fourcc)?.ok_or(Mp4Error::Malformed(what))
}

/// Follows `path` down from `data`, the first box of each type.
pub fn path<'a>(data: &'a [u8], path: &[&[u8; 4]], what: &'static str) -> Result<&'a [u8], Mp4Error> {
    path.iter().try_fold(data, |body, fourcc| require(body, fourcc, what))
}

/// One descriptor of an `esds` (ISO/IEC 14496-1 §8.3.3): its tag and body; the size takes up
/// to four bytes of seven bits.
pub fn descriptor<'a>(c: &mut Cursor<'a>) -> Result<(u8, &'a [u8]), Mp4Error> {
    let tag = c.u8("descriptor")?;
    let mut size = 0usize;
    for _ in 0..4 {
        let b = c.u8("descriptor size")?;
        size = (size << 7) | usize::from(b & 0x7f);
        if b & 0x80 == 0 {
            return Ok((tag, c.take(size, "descriptor")?));
        }
    }
    Err(Mp4Error::Malformed("descriptor size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_sizes_zero_and_one_and_bad_ones() {
        // size 1: a 64-bit size after the type.
        let mut data = vec![0, 0, 0, 1, b'f', b'r', b'e', b'e', 0, 0, 0, 0, 0, 0, 0, 18, 7, 7];
        // size 0: to the end.
        data.extend_from_slice(&[0, 0, 0, 0, b'm', b'd', b'a', b't', 1, 2, 3]);
        let got: Vec<([u8; 4], Vec<u8>)> =
            boxes(&data).map(|b| b.map(|b| (b.fourcc, b.body.to_vec()))).collect::<Result<_, _>>().unwrap();
        assert_eq!(got, [(*b"free", vec![7, 7]), (*b"mdat", vec![1, 2, 3])]);
        for bad in [
            &[0, 0, 0, 7, b'f', b'r', b'e', b'e'][..],
            &[0, 0, 0, 9, b'f', b'r', b'e', b'e'],
            &[0, 0, 0, 1, b'f', b'r', b'e', b'e', 0, 0, 0, 0, 0, 0, 0, 15],
            &[0, 0, 0, 1, b'f', b'r', b'e', b'e', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0, 0, 0],
        ] {
            assert!(boxes(bad).any(|b| b.is_err()), "{bad:?}");
        }
    }

    #[test]
    fn descriptors_take_multi_byte_sizes() {
        let data = [0x05, 0x80, 0x80, 0x02, 0x12, 0x10, 0x06];
        let mut c = Cursor::new(&data);
        assert_eq!(descriptor(&mut c).unwrap(), (0x05, &[0x12, 0x10][..]));
        assert!(descriptor(&mut c).is_err());
        let five = [0x05, 0x80, 0x80, 0x80, 0x80, 0x01, 0];
        assert!(descriptor(&mut Cursor::new(&five)).is_err());
    }
}
