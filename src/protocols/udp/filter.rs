//! What reaches the jitter buffer from a bound UDP port: well-formed RTP of the SDP's payload
//! type from one sender. Garbage, other payload types, other senders and huge sequence jumps
//! are dropped here (with a reason, for the metrics) before GStreamer sees them.
//!
//! Pure: bytes and the arrival time (milliseconds since the session started) in, a verdict out.
//! The sequence checks follow RFC 3550 appendix A.1: a new source is accepted after
//! [`MIN_SEQUENTIAL`] packets in sequence; a jump of [`MAX_DROPOUT`] or more is dropped unless
//! the next packet continues from it (the sender restarted); small reordering passes (the
//! jitter buffer puts it back in order). A sender that switches SSRC (a restart) is accepted
//! once the old one has been silent for [`SOURCE_SILENCE_MS`].

/// Packets in sequence before a new source is accepted.
pub const MIN_SEQUENTIAL: u16 = 2;
/// Sequence numbers ahead of the highest seen that still count as the same run.
pub const MAX_DROPOUT: u16 = 3000;
/// Sequence numbers behind the highest seen that count as reordering, not a jump.
pub const MAX_MISORDER: u16 = 100;
/// How long the accepted source must be silent before another one can take over.
pub const SOURCE_SILENCE_MS: u64 = 2000;

/// Why a packet was dropped (the label of `interop_udp_packets_dropped_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not an RTP (or RTCP) packet: too short, wrong version, inconsistent header.
    Malformed,
    /// RTP of a payload type the SDP did not announce for this port.
    PayloadType,
    /// RTP from another sender (SSRC) than the accepted one.
    ForeignSource,
    /// A new source's first packets, before it is accepted.
    Probation,
    /// A sequence number far from the expected one.
    SequenceJump,
    /// RTCP arriving on an RTP port (rtcp-mux), which the gateway does not use.
    RtcpOnRtpPort,
}

impl DropReason {
    pub const ALL: [DropReason; 6] = [
        DropReason::Malformed,
        DropReason::PayloadType,
        DropReason::ForeignSource,
        DropReason::Probation,
        DropReason::SequenceJump,
        DropReason::RtcpOnRtpPort,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::PayloadType => "payload_type",
            DropReason::ForeignSource => "foreign_source",
            DropReason::Probation => "probation",
            DropReason::SequenceJump => "sequence_jump",
            DropReason::RtcpOnRtpPort => "rtcp_on_rtp_port",
        }
    }
}

/// What to do with one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Passed, but it arrived after a later one (the jitter buffer reorders it).
    Reordered,
    Drop(DropReason),
}

/// The fixed RTP header fields the filter looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub pt: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// Reads an RTP header, checking that the CSRC list, extension and padding fit the packet.
pub fn parse_rtp(data: &[u8]) -> Option<RtpHeader> {
    if data.len() < 12 || data[0] >> 6 != 2 {
        return None;
    }
    let csrc = usize::from(data[0] & 0x0f) * 4;
    let mut header = 12 + csrc;
    if data[0] & 0x10 != 0 {
        let ext = data.get(header + 2..header + 4)?;
        header += 4 + usize::from(u16::from_be_bytes([ext[0], ext[1]])) * 4;
    }
    if header > data.len() {
        return None;
    }
    if data[0] & 0x20 != 0 {
        let padding = usize::from(*data.last()?);
        if padding == 0 || header + padding > data.len() {
            return None;
        }
    }
    Some(RtpHeader {
        pt: data[1] & 0x7f,
        seq: u16::from_be_bytes([data[2], data[3]]),
        timestamp: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
        ssrc: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
    })
}

/// Whether the second byte says RTCP (packet types 192-223; RFC 5761 §4).
pub fn looks_like_rtcp(data: &[u8]) -> bool {
    data.len() >= 2 && data[0] >> 6 == 2 && (192..=223).contains(&data[1])
}

/// Whether `data` is a well-formed compound RTCP packet: every part version 2, an RTCP
/// packet type, and lengths that add up to the datagram exactly.
pub fn valid_rtcp(data: &[u8]) -> bool {
    let mut rest = data;
    if rest.len() < 8 {
        return false;
    }
    while !rest.is_empty() {
        if rest.len() < 4 || rest[0] >> 6 != 2 || !(192..=223).contains(&rest[1]) {
            return false;
        }
        let len = (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1) * 4;
        if len > rest.len() {
            return false;
        }
        rest = &rest[len..];
    }
    true
}

/// Sequence state of the accepted source (RFC 3550 A.1).
#[derive(Debug, Clone)]
struct Source {
    ssrc: u32,
    max_seq: u16,
    /// The sequence number that would confirm a jump as a restart.
    bad_seq: Option<u16>,
    last_seen_ms: u64,
}

/// A source trying to get accepted.
#[derive(Debug, Clone)]
struct Candidate {
    ssrc: u32,
    last_seq: u16,
    in_sequence: u16,
}

/// The per-port packet filter.
#[derive(Debug, Clone)]
pub struct RtpFilter {
    pt: u8,
    source: Option<Source>,
    candidate: Option<Candidate>,
    /// A source the SDP named is accepted without probation.
    announced: Option<u32>,
}

impl RtpFilter {
    /// Accepts payload type `pt`; `ssrc` when the SDP names the sender's source.
    pub fn new(pt: u8, ssrc: Option<u32>) -> RtpFilter {
        RtpFilter { pt, source: None, candidate: None, announced: ssrc }
    }

    /// The accepted sender, once there is one.
    pub fn ssrc(&self) -> Option<u32> {
        self.source.as_ref().map(|s| s.ssrc)
    }

    /// Judges one datagram that arrived at `now_ms`.
    pub fn check(&mut self, data: &[u8], now_ms: u64) -> Verdict {
        if looks_like_rtcp(data) {
            return Verdict::Drop(DropReason::RtcpOnRtpPort);
        }
        let Some(h) = parse_rtp(data) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if h.pt != self.pt {
            return Verdict::Drop(DropReason::PayloadType);
        }
        match &mut self.source {
            Some(source) if source.ssrc == h.ssrc => {
                source.last_seen_ms = now_ms;
                update_seq(source, h.seq)
            }
            Some(source) if now_ms.saturating_sub(source.last_seen_ms) < SOURCE_SILENCE_MS => {
                Verdict::Drop(DropReason::ForeignSource)
            }
            _ => self.admit(h, now_ms),
        }
    }

    /// A packet of a source not (yet) accepted: probation, or the SDP's named source.
    fn admit(&mut self, h: RtpHeader, now_ms: u64) -> Verdict {
        let accept = |filter: &mut RtpFilter| {
            filter.source = Some(Source { ssrc: h.ssrc, max_seq: h.seq, bad_seq: None, last_seen_ms: now_ms });
            filter.candidate = None;
            Verdict::Pass
        };
        if self.announced == Some(h.ssrc) {
            return accept(self);
        }
        match &mut self.candidate {
            Some(c) if c.ssrc == h.ssrc && h.seq == c.last_seq.wrapping_add(1) => {
                c.in_sequence += 1;
                c.last_seq = h.seq;
                if c.in_sequence >= MIN_SEQUENTIAL {
                    return accept(self);
                }
            }
            _ => self.candidate = Some(Candidate { ssrc: h.ssrc, last_seq: h.seq, in_sequence: 1 }),
        }
        Verdict::Drop(DropReason::Probation)
    }
}

fn update_seq(source: &mut Source, seq: u16) -> Verdict {
    let delta = seq.wrapping_sub(source.max_seq);
    if delta == 0 {
        // A duplicate: the jitter buffer discards it.
        return Verdict::Reordered;
    }
    if delta < MAX_DROPOUT {
        source.max_seq = seq;
        source.bad_seq = None;
        return Verdict::Pass;
    }
    if delta <= u16::MAX - MAX_MISORDER {
        // A large jump: accepted only when the next packet continues from it (a restart).
        if source.bad_seq == Some(seq) {
            source.max_seq = seq;
            source.bad_seq = None;
            return Verdict::Pass;
        }
        source.bad_seq = Some(seq.wrapping_add(1));
        return Verdict::Drop(DropReason::SequenceJump);
    }
    Verdict::Reordered
}

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;
