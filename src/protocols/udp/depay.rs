//! RTP payloads → access units, for the codecs the light receive path handles itself
//! (see [`super::light`]): H.264 (RFC 6184 single NAL units, STAP-A, FU-A → AVCC access
//! units), AAC (RFC 3640 mpeg4-generic AU headers, fragmented AUs) and the codecs whose RTP
//! payload is the frame (Opus, PCMU, PCMA).
//!
//! Pure and sans-IO: packets in sequence order (their payload already vetted by the payload
//! checks of `media::rtp` / `media::h264::rtp`), with whether packets were lost just before,
//! in; units out. Sizes are bounded: a hostile stream can waste a unit, never memory.

use crate::media::rtp::aac::AuHeaderLayout;

/// Largest access unit assembled (bytes); a bigger one is dropped.
pub const MAX_UNIT: usize = 8 << 20;

/// One packet as the depacketizers see it.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub timestamp: u32,
    pub marker: bool,
    pub payload: &'a [u8],
}

/// One access unit: an H.264 picture (AVCC, 4-byte lengths), an AAC AU, an Opus packet...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub timestamp: u32,
    pub data: Vec<u8>,
    /// H.264: the picture has an IDR slice. Always true for audio.
    pub keyframe: bool,
}

/// A depacketizer for one track.
#[derive(Debug)]
pub enum Depay {
    H264(H264Depay),
    Aac(AacDepay),
    /// The payload is the frame (Opus, PCMU, PCMA).
    Whole,
}

impl Depay {
    /// Takes one packet; `lost`: packets before it never came. Finished units go to `out`.
    pub fn push(&mut self, packet: Packet<'_>, lost: bool, out: &mut Vec<Unit>) {
        match self {
            Depay::H264(d) => d.push(packet, lost, out),
            Depay::Aac(d) => d.push(packet, lost, out),
            Depay::Whole => {
                if !packet.payload.is_empty() {
                    out.push(Unit { timestamp: packet.timestamp, data: packet.payload.to_vec(), keyframe: true });
                }
            }
        }
    }

    /// Forgets any unit in progress (the source changed).
    pub fn reset(&mut self) {
        match self {
            Depay::H264(d) => {
                d.au = None;
                d.fu = None;
            }
            Depay::Aac(d) => d.fragment = None,
            Depay::Whole => {}
        }
    }
}

/// H.264 access unit being assembled.
#[derive(Debug)]
struct Au {
    timestamp: u32,
    data: Vec<u8>,
    keyframe: bool,
}

/// RFC 6184 packetization modes 0 and 1 → AVCC access units. An access unit ends at the
/// marker bit or when the timestamp changes. The last SPS and PPS seen in band are kept
/// (see [`H264Depay::take_parameter_sets`]); they stay in the access unit as well.
///
/// Each payload byte is copied once, into the access unit: an FU-A NAL unit is put back
/// together in place behind its length field (filled in at its last fragment, cut off if it
/// never comes), and a new access unit starts with room for about as much as the last one.
#[derive(Debug, Default)]
pub struct H264Depay {
    au: Option<Au>,
    /// Where, in the access unit, the NAL unit being reassembled from FU-A fragments starts
    /// (its length field).
    fu: Option<usize>,
    /// The size of the last access unit, for the next one's first allocation.
    last_size: usize,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    /// An SPS or PPS that differs from the last one arrived.
    params_changed: bool,
}

impl H264Depay {
    pub fn new() -> H264Depay {
        H264Depay::default()
    }

    /// Starts with parameter sets from the SDP (`sprop-parameter-sets`).
    pub fn with_parameter_sets(sets: &[Vec<u8>]) -> H264Depay {
        let mut d = H264Depay::new();
        for nal in sets {
            d.note_parameter_set(nal);
        }
        d
    }

    /// The current SPS and PPS when either changed since the last call.
    pub fn take_parameter_sets(&mut self) -> Option<(&[u8], &[u8])> {
        if !self.params_changed {
            return None;
        }
        self.params_changed = false;
        Some((self.sps.as_deref()?, self.pps.as_deref()?))
    }

    fn push(&mut self, packet: Packet<'_>, lost: bool, out: &mut Vec<Unit>) {
        if lost {
            // A fragment of the unit in progress is missing.
            self.drop_fu();
        }
        if self.au.as_ref().is_some_and(|au| au.timestamp != packet.timestamp) {
            self.drop_fu();
            self.finish(out);
        }
        let payload = packet.payload;
        if let Some(&header) = payload.first() {
            match header & 0x1f {
                1..=23 => self.add_nal(packet.timestamp, payload),
                24 => {
                    let mut rest = &payload[1..];
                    while let [a, b, tail @ ..] = rest {
                        let len = usize::from(u16::from_be_bytes([*a, *b]));
                        let Some((nal, after)) = tail.split_at_checked(len) else { break };
                        if !nal.is_empty() {
                            self.add_nal(packet.timestamp, nal);
                        }
                        rest = after;
                    }
                }
                28 => self.fu_a(packet.timestamp, payload),
                _ => {}
            }
        }
        if packet.marker {
            self.drop_fu();
            self.finish(out);
        }
    }

    fn fu_a(&mut self, timestamp: u32, payload: &[u8]) {
        let [indicator, fu_header, data @ ..] = payload else { return };
        let (start, end) = (fu_header & 0x80 != 0, fu_header & 0x40 != 0);
        if start {
            self.drop_fu();
            let au = self.au_at(timestamp);
            if au.data.len() + 5 + data.len() > MAX_UNIT {
                return;
            }
            let at = au.data.len();
            au.data.extend_from_slice(&[0; 4]);
            au.data.push((indicator & 0xe0) | (fu_header & 0x1f));
            au.data.extend_from_slice(data);
            self.fu = Some(at);
        } else if let (Some(_), Some(au)) = (self.fu, self.au.as_mut()) {
            if au.data.len() + data.len() > MAX_UNIT {
                self.drop_fu();
                return;
            }
            au.data.extend_from_slice(data);
        }
        if end {
            self.end_fu();
        }
    }

    /// The last fragment came: the NAL unit's length goes in front of it.
    fn end_fu(&mut self) {
        let (Some(at), Some(au)) = (self.fu.take(), self.au.as_mut()) else { return };
        let Some(nal) = au.data.get(at + 4..) else { return };
        let (len, t) = (nal.len() as u32, nal.first().map_or(0, |b| b & 0x1f));
        let parameter_set = (t == 7 || t == 8).then(|| nal.to_vec());
        au.data[at..at + 4].copy_from_slice(&len.to_be_bytes());
        au.keyframe |= t == 5;
        if let Some(nal) = parameter_set {
            self.note_parameter_set(&nal);
        }
    }

    /// Forgets the NAL unit being reassembled (a fragment is missing): its bytes come off the
    /// access unit.
    fn drop_fu(&mut self) {
        if let (Some(at), Some(au)) = (self.fu.take(), self.au.as_mut()) {
            au.data.truncate(at);
        }
    }

    /// The access unit in progress, or a new one at `timestamp`.
    fn au_at(&mut self, timestamp: u32) -> &mut Au {
        let room = (self.last_size + self.last_size / 4).clamp(1500, MAX_UNIT);
        self.au.get_or_insert_with(|| Au { timestamp, data: Vec::with_capacity(room), keyframe: false })
    }

    fn add_nal(&mut self, timestamp: u32, nal: &[u8]) {
        // Between the fragments of another NAL unit (RFC 6184 forbids it): that one is broken.
        self.drop_fu();
        let t = nal[0] & 0x1f;
        if t == 7 || t == 8 {
            self.note_parameter_set(nal);
        }
        let au = self.au_at(timestamp);
        if au.data.len() + nal.len() + 4 > MAX_UNIT {
            return;
        }
        au.keyframe |= t == 5;
        au.data.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        au.data.extend_from_slice(nal);
    }

    fn note_parameter_set(&mut self, nal: &[u8]) {
        let slot = match nal.first().map(|b| b & 0x1f) {
            Some(7) => &mut self.sps,
            Some(8) => &mut self.pps,
            _ => return,
        };
        if slot.as_deref() != Some(nal) {
            *slot = Some(nal.to_vec());
            self.params_changed = true;
        }
    }

    fn finish(&mut self, out: &mut Vec<Unit>) {
        if let Some(au) = self.au.take() {
            if !au.data.is_empty() {
                self.last_size = au.data.len();
                out.push(Unit { timestamp: au.timestamp, data: au.data, keyframe: au.keyframe });
            }
        }
    }
}

/// An AU fragmented over several packets (RFC 3640 §3.2.3.1).
#[derive(Debug)]
struct Fragment {
    timestamp: u32,
    size: usize,
    data: Vec<u8>,
}

/// mpeg4-generic (RFC 3640) with AU headers as the fmtp describes: one or more whole AUs per
/// packet, or one AU fragmented over packets of the same timestamp.
#[derive(Debug)]
pub struct AacDepay {
    layout: AuHeaderLayout,
    /// RTP clock ticks per AU (1024 samples at the clock rate for AAC).
    ticks_per_au: u32,
    fragment: Option<Fragment>,
}

impl AacDepay {
    pub fn new(layout: AuHeaderLayout, ticks_per_au: u32) -> AacDepay {
        AacDepay { layout, ticks_per_au, fragment: None }
    }

    fn push(&mut self, packet: Packet<'_>, lost: bool, out: &mut Vec<Unit>) {
        if lost || self.fragment.as_ref().is_some_and(|f| f.timestamp != packet.timestamp) {
            self.fragment = None;
        }
        let Some((sizes, data)) = self.split(packet.payload) else { return };
        if sizes.is_empty() {
            // No size field: the payload is one AU.
            if !data.is_empty() {
                out.push(Unit { timestamp: packet.timestamp, data: data.to_vec(), keyframe: true });
            }
            return;
        }
        if sizes.len() == 1 && sizes[0] > data.len() || self.fragment.is_some() {
            self.fragment_part(packet, sizes[0], data, out);
            return;
        }
        let mut at = 0usize;
        let mut timestamp = packet.timestamp;
        for size in sizes {
            let Some(au) = data.get(at..at + size) else { break };
            if !au.is_empty() {
                out.push(Unit { timestamp, data: au.to_vec(), keyframe: true });
            }
            at += size;
            timestamp = timestamp.wrapping_add(self.ticks_per_au);
        }
    }

    fn fragment_part(&mut self, packet: Packet<'_>, size: usize, data: &[u8], out: &mut Vec<Unit>) {
        if size > MAX_UNIT {
            self.fragment = None;
            return;
        }
        let f = self.fragment.get_or_insert_with(|| Fragment {
            timestamp: packet.timestamp,
            size,
            data: Vec::with_capacity(data.len()),
        });
        if f.size != size || f.data.len() + data.len() > size {
            self.fragment = None;
            return;
        }
        f.data.extend_from_slice(data);
        if f.data.len() == size {
            if let Some(f) = self.fragment.take() {
                out.push(Unit { timestamp: f.timestamp, data: f.data, keyframe: true });
            }
        } else if packet.marker {
            // The last fragment came, the AU is still short.
            self.fragment = None;
        }
    }

    /// The AU sizes (empty without a size field) and the data after the AU headers.
    fn split<'a>(&self, payload: &'a [u8]) -> Option<(Vec<usize>, &'a [u8])> {
        let l = &self.layout;
        let any = l.size + l.index + l.index_delta + l.cts_delta + l.dts_delta + l.stream_state > 0 || l.random_access;
        if !any {
            return Some((Vec::new(), payload));
        }
        let [a, b, rest @ ..] = payload else { return None };
        let bits = usize::from(u16::from_be_bytes([*a, *b]));
        let header_bytes = bits.div_ceil(8);
        let (headers, data) = rest.split_at_checked(header_bytes)?;
        let mut r = BitReader { data: headers, at: 0, end: bits };
        let mut sizes = Vec::new();
        while r.at < bits && sizes.len() < crate::media::rtp::aac::MAX_AUS {
            let size = r.take(l.size)?;
            r.take(if sizes.is_empty() { l.index } else { l.index_delta })?;
            for delta in [l.cts_delta, l.dts_delta] {
                if delta > 0 && r.take(1)? == 1 {
                    r.take(delta)?;
                }
            }
            r.take(u32::from(l.random_access))?;
            r.take(l.stream_state)?;
            if l.size > 0 {
                sizes.push(usize::try_from(size).ok()?);
            } else {
                break;
            }
        }
        Some((sizes, data))
    }
}

/// Big-endian bit fields, never past `end` bits.
struct BitReader<'a> {
    data: &'a [u8],
    at: usize,
    end: usize,
}

impl BitReader<'_> {
    fn take(&mut self, n: u32) -> Option<u64> {
        let n = n.min(64) as usize;
        if self.at + n > self.end || (self.at + n).div_ceil(8) > self.data.len() {
            return None;
        }
        let mut value = 0u64;
        for i in self.at..self.at + n {
            value = (value << 1) | u64::from((self.data[i / 8] >> (7 - i % 8)) & 1);
        }
        self.at += n;
        Some(value)
    }
}

/// Decodes standard base64 (padding optional); None for anything else.
pub fn base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim().bytes().take_while(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// The parameter sets of an H.264 fmtp's `sprop-parameter-sets` (SPS and PPS only).
pub fn sprop_parameter_sets(params: &[(String, String)]) -> Vec<Vec<u8>> {
    let Some((_, value)) = params.iter().find(|(k, _)| k == "sprop-parameter-sets") else {
        return Vec::new();
    };
    value
        .split(',')
        .filter_map(base64)
        .filter(|nal| matches!(nal.first().map(|b| b & 0x1f), Some(7 | 8)))
        .filter(|nal| crate::media::h264::sanitize::check_nal(nal).is_ok())
        .collect()
}

#[cfg(test)]
#[path = "depay_tests.rs"]
mod tests;
