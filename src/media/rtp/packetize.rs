//! RTP payloads of one frame, made once per frame and shared by every WebRTC viewer of its
//! track (each viewer only adds its RTP header and encrypts): H.264 per RFC 6184
//! (packetization mode 1: single NAL units, STAP-A for the SPS and PPS before a keyframe, FU-A
//! for NAL units larger than the packet), VP8 per RFC 7741 (a one-byte payload descriptor),
//! and one payload per frame for audio (Opus, RFC 7587).
//!
//! Pure: a frame in, payloads out. [`cached`] keeps them on the frame ([`Frame::rtp`]), so a
//! frame is packetized once however many viewers send it; [`frames_packetized`] counts how
//! often that happened.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::media::h264::{self, AvcConfig, NAL_AUD, NAL_SPS};
use crate::media::{Codec, Frame};

/// Largest RTP payload made (an RTP header, SRTP's tag and header extensions fit in 1280).
pub const MAX_PAYLOAD: usize = 1200;

const STAP_A: u8 = 24;
const FU_A: u8 = 28;
/// NAL unit type 12: filler data, never worth sending.
const NAL_FILLER: u8 = 12;

/// One RTP payload, shared (`Arc`) by every viewer that sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub data: Arc<[u8]>,
    /// The last packet of a video frame (RTP marker bit).
    pub marker: bool,
}

static FRAMES_PACKETIZED: AtomicU64 = AtomicU64::new(0);
static PAYLOADS_MADE: AtomicU64 = AtomicU64::new(0);

/// Frames packetized so far, in the whole process.
pub fn frames_packetized() -> u64 {
    FRAMES_PACKETIZED.load(Ordering::Relaxed)
}

/// RTP payloads made so far, in the whole process.
pub fn payloads_made() -> u64 {
    PAYLOADS_MADE.load(Ordering::Relaxed)
}

/// The frame's payloads, made by the first viewer that needs them and shared by the others.
pub fn cached(frame: &Frame) -> &[Payload] {
    frame.rtp.get_or_init(|| {
        let payloads = packetize(frame);
        FRAMES_PACKETIZED.fetch_add(1, Ordering::Relaxed);
        PAYLOADS_MADE.fetch_add(payloads.len() as u64, Ordering::Relaxed);
        payloads
    })
}

/// The RTP payloads of one frame (none for an empty or unreadable one).
pub fn packetize(frame: &Frame) -> Vec<Payload> {
    match frame.codec() {
        Codec::H264 => {
            let config = frame.info.config().and_then(|c| AvcConfig::parse(c).ok());
            let len_size = config.as_ref().map_or(4, |c| c.nal_length_size);
            let params = match (&config, frame.keyframe) {
                (Some(c), true) => Some((c.sps.as_slice(), c.pps.as_slice())),
                _ => None,
            };
            h264_payloads(&frame.data, len_size, params, MAX_PAYLOAD)
        }
        Codec::Vp8 => vp8_payloads(&frame.data, MAX_PAYLOAD),
        _ if frame.data.is_empty() => Vec::new(),
        _ => vec![Payload { data: Arc::from(&frame.data[..]), marker: false }],
    }
}

/// One AVCC access unit (NAL lengths of `len_size` bytes) as RFC 6184 payloads of at most
/// `max` bytes. `params` (SPS and PPS) go first, in a STAP-A, unless the access unit carries
/// its own. Access unit delimiters and filler are left out; a framing error ends the list at
/// the NAL units read so far.
pub fn h264_payloads(avcc: &[u8], len_size: u8, params: Option<(&[Bytes], &[Bytes])>, max: usize) -> Vec<Payload> {
    let nals: Vec<&[u8]> = h264::avcc_nals(avcc, len_size)
        .map_while(Result::ok)
        .filter(|n| !n.is_empty() && !matches!(h264::nal_type(n), Some(NAL_AUD | NAL_FILLER)))
        .collect();
    let mut out = Vec::new();
    if let Some((sps, pps)) = params {
        let in_band = nals.iter().any(|n| h264::nal_type(n) == Some(NAL_SPS));
        if !in_band && !nals.is_empty() {
            let sets: Vec<&[u8]> = sps.iter().chain(pps).map(|b| &b[..]).filter(|b| !b.is_empty()).collect();
            stap_a(&sets, max, &mut out);
        }
    }
    for nal in nals {
        if nal.len() <= max {
            out.push(Payload { data: Arc::from(nal), marker: false });
        } else {
            fu_a(nal, max, &mut out);
        }
    }
    if let Some(last) = out.last_mut() {
        last.marker = true;
    }
    out
}

/// The parameter sets in one STAP-A when they fit, else each on its own.
fn stap_a(nals: &[&[u8]], max: usize, out: &mut Vec<Payload>) {
    let size: usize = 1 + nals.iter().map(|n| 2 + n.len()).sum::<usize>();
    if nals.len() < 2 || size > max || nals.iter().any(|n| n.len() > usize::from(u16::MAX)) {
        for nal in nals {
            if nal.len() <= max {
                out.push(Payload { data: Arc::from(*nal), marker: false });
            } else {
                fu_a(nal, max, out);
            }
        }
        return;
    }
    // F is the OR of the aggregated units' F bits, NRI their maximum (RFC 6184 5.7.1).
    let f = nals.iter().fold(0, |a, n| a | (n[0] & 0x80));
    let nri = nals.iter().map(|n| n[0] & 0x60).max().unwrap_or(0x60);
    let mut data = Vec::with_capacity(size);
    data.push(f | nri | STAP_A);
    for nal in nals {
        data.extend_from_slice(&(nal.len() as u16).to_be_bytes());
        data.extend_from_slice(nal);
    }
    out.push(Payload { data: data.into(), marker: false });
}

/// A NAL unit larger than `max` in FU-A fragments (RFC 6184 5.8).
fn fu_a(nal: &[u8], max: usize, out: &mut Vec<Payload>) {
    let header = nal[0];
    let indicator = (header & 0xe0) | FU_A;
    let body = &nal[1..];
    let chunk = max.saturating_sub(2).max(1);
    let count = body.len().div_ceil(chunk);
    for (i, part) in body.chunks(chunk).enumerate() {
        let mut fu = header & 0x1f;
        if i == 0 {
            fu |= 0x80;
        }
        if i + 1 == count {
            fu |= 0x40;
        }
        let mut data = Vec::with_capacity(2 + part.len());
        data.push(indicator);
        data.push(fu);
        data.extend_from_slice(part);
        out.push(Payload { data: data.into(), marker: false });
    }
}

/// One VP8 frame as RFC 7741 payloads: a one-byte descriptor (S set on the first, partition 0)
/// before each piece of at most `max - 1` bytes.
pub fn vp8_payloads(frame: &[u8], max: usize) -> Vec<Payload> {
    let chunk = max.saturating_sub(1).max(1);
    let mut out: Vec<Payload> = frame
        .chunks(chunk)
        .enumerate()
        .map(|(i, part)| {
            let mut data = Vec::with_capacity(1 + part.len());
            data.push(if i == 0 { 0x10 } else { 0x00 });
            data.extend_from_slice(part);
            Payload { data: data.into(), marker: false }
        })
        .collect();
    if let Some(last) = out.last_mut() {
        last.marker = true;
    }
    out
}

#[cfg(test)]
mod tests;
