//! A big-endian bit reader and writer for codec headers (H.264 SPS, AAC AudioSpecificConfig).
//! Every read is bounds-checked: running past the end is an error, never a panic.

/// Ran past the end of the data, or a value was out of range (e.g. an exp-Golomb code
/// longer than 32 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BitsError;

/// Reads bits most-significant first.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    /// Bits not yet read.
    pub(crate) fn remaining(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    pub(crate) fn bit(&mut self) -> Result<bool, BitsError> {
        let byte = self.data.get(self.pos / 8).ok_or(BitsError)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// Reads `n` bits (at most 32) as an unsigned number.
    pub(crate) fn bits(&mut self, n: u32) -> Result<u32, BitsError> {
        if n > 32 || (n as usize) > self.remaining() {
            return Err(BitsError);
        }
        let mut value: u64 = 0;
        for _ in 0..n {
            value = (value << 1) | u64::from(self.bit()?);
        }
        Ok(value as u32)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), BitsError> {
        if n > self.remaining() {
            return Err(BitsError);
        }
        self.pos += n;
        Ok(())
    }

    /// Unsigned exp-Golomb code, `ue(v)`.
    pub(crate) fn ue(&mut self) -> Result<u32, BitsError> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(BitsError);
            }
        }
        let rest = u64::from(self.bits(zeros)?);
        let value = (1u64 << zeros) - 1 + rest;
        u32::try_from(value).map_err(|_| BitsError)
    }

    /// Signed exp-Golomb code, `se(v)`.
    pub(crate) fn se(&mut self) -> Result<i32, BitsError> {
        let k = i64::from(self.ue()?);
        let value = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        i32::try_from(value).map_err(|_| BitsError)
    }
}

/// Writes bits most-significant first.
#[derive(Default)]
pub(crate) struct BitWriter {
    data: Vec<u8>,
    /// Bits used in the last byte of `data` (0 = start a new byte).
    used: u32,
}

impl BitWriter {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Writes the low `n` bits (at most 32) of `value`.
    pub(crate) fn put(&mut self, n: u32, value: u32) {
        for i in (0..n.min(32)).rev() {
            let bit = ((value >> i) & 1) as u8;
            if self.used == 0 {
                self.data.push(0);
            }
            if let Some(last) = self.data.last_mut() {
                *last |= bit << (7 - self.used);
            }
            self.used = (self.used + 1) % 8;
        }
    }

    /// The bytes written, the last one padded with zero bits.
    pub(crate) fn finish(self) -> Vec<u8> {
        self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fixed_width_fields_across_bytes() {
        let mut r = BitReader::new(&[0b1010_1100, 0b0101_0000]);
        assert_eq!(r.bits(3), Ok(0b101));
        assert_eq!(r.bits(6), Ok(0b01_1000));
        assert_eq!(r.remaining(), 7);
        assert_eq!(r.bits(8), Err(BitsError));
    }

    #[test]
    fn reads_exp_golomb() {
        // 1 | 010 | 011 | 00100 | 00101  -> ue 0, 1, 2, 3, 4 ; as se: 0, 1, -1, 2, -2
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data);
        let ue: Vec<u32> = (0..5).map(|_| r.ue().unwrap_or(u32::MAX)).collect();
        assert_eq!(ue, vec![0, 1, 2, 3, 4]);
        let mut r = BitReader::new(&data);
        let se: Vec<i32> = (0..5).map(|_| r.se().unwrap_or(i32::MAX)).collect();
        assert_eq!(se, vec![0, 1, -1, 2, -2]);
    }

    #[test]
    fn exp_golomb_errors_on_overlong_or_truncated_codes() {
        assert_eq!(BitReader::new(&[0, 0, 0, 0, 0]).ue(), Err(BitsError));
        assert_eq!(BitReader::new(&[0b0000_0001]).ue(), Err(BitsError));
    }

    #[test]
    fn writer_round_trips_with_reader() {
        let mut w = BitWriter::new();
        w.put(5, 2);
        w.put(4, 3);
        w.put(4, 2);
        w.put(24, 0x00AB_CDEF);
        let bytes = w.finish();
        assert_eq!(bytes.len(), 5);
        let mut r = BitReader::new(&bytes);
        assert_eq!(r.bits(5), Ok(2));
        assert_eq!(r.bits(4), Ok(3));
        assert_eq!(r.bits(4), Ok(2));
        assert_eq!(r.bits(24), Ok(0x00AB_CDEF));
    }
}
