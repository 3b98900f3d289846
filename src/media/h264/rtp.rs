//! H.264 RTP payloads (RFC 6184) checked before a GStreamer depayloader sees them.
//!
//! Single NAL units (1–23) and STAP-A (24) must hold only units [`check_nal`] accepts; FU-A
//! (28) fragments must be long enough to carry data (a one- or two-byte FU-A makes GStreamer
//! 1.22's `rtph264depay` read past its buffer), carry a passed NAL type, and continue a
//! fragmented unit that was started and accepted. STAP-B, MTAP and FU-B (25–27, 29), which
//! make the depayloader post a fatal error, and the reserved types are refused.
//!
//! A refused packet keeps its RTP header (so the sequence has no gap and the jitter buffer
//! does not wait for it) with its payload emptied or, for STAP-A, the refused units taken out.
//! Pure and stateful per RTP stream: packets in sequence order in, verdicts out.

use super::sanitize::{check_nal, Reject};

const STAP_A: u8 = 24;
const FU_A: u8 = 28;

/// What to do with one RTP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtpVerdict {
    /// Pass it unchanged.
    Pass,
    /// Pass this packet instead (same header, payload cleaned or empty).
    Replace { packet: Vec<u8>, reason: Reject },
}

/// The checker of one H.264 RTP stream.
#[derive(Debug, Default, Clone)]
pub struct RtpH264Check {
    /// The NAL type of the fragmented unit in progress, when its start was accepted.
    fu: Option<u8>,
}

impl RtpH264Check {
    pub fn new() -> RtpH264Check {
        RtpH264Check::default()
    }

    /// Judges one RTP packet (header included). A packet whose RTP header does not parse is
    /// replaced by nothing it could hold: its payload is emptied when the header can be found,
    /// else the caller gets an empty packet to drop.
    pub fn check(&mut self, packet: &[u8]) -> RtpVerdict {
        let Some((start, end)) = payload_bounds(packet) else {
            self.fu = None;
            return RtpVerdict::Replace { packet: Vec::new(), reason: Reject::Malformed };
        };
        match self.check_payload(&packet[start..end]) {
            Ok(()) => RtpVerdict::Pass,
            Err((reason, payload)) => RtpVerdict::Replace { packet: rebuild(packet, start, &payload), reason },
        }
    }

    /// `Err((why, the payload to pass instead))` when the payload cannot pass as is.
    fn check_payload(&mut self, payload: &[u8]) -> Result<(), (Reject, Vec<u8>)> {
        let Some(&header) = payload.first() else {
            return Ok(()); // Nothing in it for the depayloader to misread.
        };
        if header & 0x80 != 0 {
            self.fu = None;
            return Err((Reject::Malformed, Vec::new()));
        }
        match header & 0x1f {
            1..=23 => {
                self.fu = None;
                check_nal(payload).map_err(|r| (r, Vec::new()))
            }
            STAP_A => {
                self.fu = None;
                check_stap_a(payload)
            }
            FU_A => self.check_fu_a(payload).map_err(|r| (r, Vec::new())),
            t => {
                self.fu = None;
                Err((Reject::Type(t), Vec::new()))
            }
        }
    }

    fn check_fu_a(&mut self, payload: &[u8]) -> Result<(), Reject> {
        let [_, fu_header, _, ..] = *payload else {
            self.fu = None;
            return Err(Reject::Malformed);
        };
        let (start, end, nal) = (fu_header & 0x80 != 0, fu_header & 0x40 != 0, fu_header & 0x1f);
        if start && end {
            self.fu = None;
            return Err(Reject::Malformed);
        }
        if start {
            // Parameter sets are checked whole; fragmented ones cannot be, so they are refused.
            let accepted = matches!(nal, 1..=5);
            self.fu = accepted.then_some(nal);
            return if accepted { Ok(()) } else { Err(Reject::Type(nal)) };
        }
        if self.fu != Some(nal) {
            // A fragment of a unit whose start was lost or refused.
            self.fu = None;
            return Err(Reject::Malformed);
        }
        if end {
            self.fu = None;
        }
        Ok(())
    }
}

/// STAP-A: passed as is when every unit is accepted; else the accepted units only.
fn check_stap_a(payload: &[u8]) -> Result<(), (Reject, Vec<u8>)> {
    let mut rest = &payload[1..];
    let mut kept = vec![payload[0]];
    let mut first_reason = None;
    while !rest.is_empty() {
        let [a, b, ref tail @ ..] = *rest else {
            return Err((Reject::Framing, Vec::new()));
        };
        let len = usize::from(u16::from_be_bytes([a, b]));
        let Some((nal, after)) = tail.split_at_checked(len) else {
            return Err((Reject::Framing, Vec::new()));
        };
        match check_nal(nal) {
            Ok(()) => {
                kept.extend_from_slice(&[a, b]);
                kept.extend_from_slice(nal);
            }
            Err(r) => first_reason = first_reason.or(Some(r)),
        }
        rest = after;
    }
    match first_reason {
        None if kept.len() > 1 => Ok(()),
        None => Err((Reject::Framing, Vec::new())),
        Some(r) if kept.len() > 1 => Err((r, kept)),
        Some(r) => Err((r, Vec::new())),
    }
}

/// Where the payload of an RTP packet starts and ends (after CSRCs and the header
/// extension, before padding); `None` when the header does not fit.
pub fn payload_bounds(packet: &[u8]) -> Option<(usize, usize)> {
    if packet.len() < 12 || packet[0] >> 6 != 2 {
        return None;
    }
    let mut start = 12 + usize::from(packet[0] & 0x0f) * 4;
    if packet[0] & 0x10 != 0 {
        let ext = packet.get(start + 2..start + 4)?;
        start += 4 + usize::from(u16::from_be_bytes([ext[0], ext[1]])) * 4;
    }
    let mut end = packet.len();
    if packet[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*packet.last()?))?;
    }
    (start <= end).then_some((start, end))
}

/// The packet's header (padding flag cleared) followed by `payload`.
fn rebuild(packet: &[u8], payload_start: usize, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_start + payload.len());
    out.extend_from_slice(&packet[..payload_start]);
    out[0] &= !0x20;
    out.extend_from_slice(payload);
    out
}
