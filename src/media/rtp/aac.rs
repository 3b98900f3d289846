//! mpeg4-generic AU headers (RFC 3640 section 3.2): the AU-headers-length and the headers it
//! announces must fit the packet, each AU size must be non-zero, and the AUs must fit the data
//! that follows (a single AU may be a fragment of a larger one, whose size exceeds the packet).
//! The header layout comes from the SDP's fmtp (`sizelength`, `indexlength`, ...).

use super::PayloadReject;

/// AU headers a packet may hold (a 1500-byte packet cannot carry more AAC frames).
pub const MAX_AUS: usize = 128;

/// The AU header fields an mpeg4-generic stream's fmtp announces, in bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuHeaderLayout {
    pub size: u32,
    pub index: u32,
    pub index_delta: u32,
    pub cts_delta: u32,
    pub dts_delta: u32,
    pub random_access: bool,
    pub stream_state: u32,
}

impl AuHeaderLayout {
    /// Reads the layout from fmtp parameters (keys lowercased); absent or unreadable ones are 0.
    pub fn from_fmtp(params: &[(String, String)]) -> AuHeaderLayout {
        let get = |key: &str| {
            params.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.trim().parse::<u32>().ok()).unwrap_or(0).min(64)
        };
        AuHeaderLayout {
            size: get("sizelength"),
            index: get("indexlength"),
            index_delta: get("indexdeltalength"),
            cts_delta: get("ctsdeltalength"),
            dts_delta: get("dtsdeltalength"),
            random_access: get("randomaccessindication") == 1,
            stream_state: get("streamstateindication"),
        }
    }

    fn has_headers(&self) -> bool {
        self.size + self.index + self.index_delta + self.cts_delta + self.dts_delta + self.stream_state > 0
            || self.random_access
    }

    /// Checks one mpeg4-generic RTP payload.
    pub fn check(&self, payload: &[u8]) -> Result<(), PayloadReject> {
        if payload.is_empty() {
            return Err(PayloadReject::Empty);
        }
        if !self.has_headers() {
            return Ok(());
        }
        let bits = usize::from(u16::from_be_bytes([payload[0], *payload.get(1).ok_or(PayloadReject::ShortHeader)?]));
        if bits == 0 {
            return Err(PayloadReject::BadField);
        }
        let header_bytes = bits.div_ceil(8);
        let headers = payload.get(2..2 + header_bytes).ok_or(PayloadReject::LengthPastEnd)?;
        let data = payload.len() - 2 - header_bytes;
        let mut reader = Bits { data: headers, at: 0, end: bits };
        let mut sizes = Vec::new();
        while reader.at < bits {
            if sizes.len() == MAX_AUS {
                return Err(PayloadReject::BadField);
            }
            let size = reader.take(self.size)?;
            reader.take(if sizes.is_empty() { self.index } else { self.index_delta })?;
            for delta in [self.cts_delta, self.dts_delta] {
                if delta > 0 && reader.take(1)? == 1 {
                    reader.take(delta)?;
                }
            }
            reader.take(u32::from(self.random_access))?;
            reader.take(self.stream_state)?;
            sizes.push(size);
        }
        if self.size == 0 {
            return if data > 0 { Ok(()) } else { Err(PayloadReject::Empty) };
        }
        if sizes.contains(&0) || data == 0 {
            return Err(PayloadReject::BadField);
        }
        let total: u64 = sizes.iter().sum();
        // One AU may be a fragment; several must all be whole.
        if sizes.len() > 1 && total > data as u64 {
            return Err(PayloadReject::LengthPastEnd);
        }
        Ok(())
    }
}

/// Reads big-endian bit fields, never past `end` bits.
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
    end: usize,
}

impl Bits<'_> {
    fn take(&mut self, n: u32) -> Result<u64, PayloadReject> {
        let n = n as usize;
        if self.at + n > self.end {
            return Err(PayloadReject::LengthPastEnd);
        }
        let mut value = 0u64;
        for i in self.at..self.at + n {
            let bit = (self.data[i / 8] >> (7 - i % 8)) & 1;
            value = (value << 1) | u64::from(bit);
        }
        self.at += n;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hbr() -> AuHeaderLayout {
        let p = |k: &str, v: &str| (k.to_string(), v.to_string());
        AuHeaderLayout::from_fmtp(&[
            p("sizelength", "13"),
            p("indexlength", "3"),
            p("indexdeltalength", "3"),
            p("mode", "AAC-hbr"),
        ])
    }

    /// AAC-hbr AU header: 13-bit size, 3-bit index (delta).
    fn header(size: u16) -> [u8; 2] {
        (size << 3).to_be_bytes()
    }

    fn packet(sizes: &[u16], data: usize) -> Vec<u8> {
        let mut p = ((sizes.len() * 16) as u16).to_be_bytes().to_vec();
        for s in sizes {
            p.extend_from_slice(&header(*s));
        }
        p.extend(std::iter::repeat_n(0x21u8, data));
        p
    }

    #[test]
    fn ffmpeg_like_packets_pass() {
        assert_eq!(hbr().check(&packet(&[6], 6)), Ok(()));
        assert_eq!(hbr().check(&packet(&[3, 4], 7)), Ok(()));
        // A fragment of a larger AU.
        assert_eq!(hbr().check(&packet(&[3000], 1400)), Ok(()));
    }

    #[test]
    fn lengths_past_the_packet_are_refused() {
        assert_eq!(hbr().check(&[]), Err(PayloadReject::Empty));
        assert_eq!(hbr().check(&[0x00]), Err(PayloadReject::ShortHeader));
        assert_eq!(hbr().check(&[0x00, 0x00, 1]), Err(PayloadReject::BadField));
        // AU-headers-length of 0x1000 bits in a short packet.
        assert_eq!(hbr().check(&[0x10, 0x00, 0, 0, 1]), Err(PayloadReject::LengthPastEnd));
        // 20 bits: one header and 4 bits of a second one.
        let mut cut = packet(&[3], 3);
        cut[1] = 20;
        cut.insert(4, 0);
        assert_eq!(hbr().check(&cut), Err(PayloadReject::LengthPastEnd));
        // Two AUs that do not fit; a zero size; headers with no data.
        assert_eq!(hbr().check(&packet(&[3, 4], 6)), Err(PayloadReject::LengthPastEnd));
        assert_eq!(hbr().check(&packet(&[0], 4)), Err(PayloadReject::BadField));
        assert_eq!(hbr().check(&packet(&[4], 0)), Err(PayloadReject::BadField));
    }

    #[test]
    fn optional_fields_are_read() {
        let p = |k: &str, v: &str| (k.to_string(), v.to_string());
        let layout = AuHeaderLayout::from_fmtp(&[
            p("sizelength", "6"),
            p("ctsdeltalength", "4"),
            p("randomaccessindication", "1"),
        ]);
        // size 2, CTS flag 1 + delta 4 bits, RAP 1: 12 bits.
        let header = [0b0000_1010, 0b1011_0000];
        assert_eq!(layout.check(&[0, 12, header[0], header[1], 9, 9]), Ok(()));
        assert_eq!(layout.check(&[0, 11, header[0], header[1], 9, 9]), Err(PayloadReject::LengthPastEnd));
        let none = AuHeaderLayout::from_fmtp(&[]);
        assert_eq!(none.check(&[1]), Ok(()));
    }
}
