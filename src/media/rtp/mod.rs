//! RTP payload headers of the non-H.264 encodings the gateway depayloads, checked by our own
//! code before a GStreamer 1.22 depayloader sees them (H.264 has its own check,
//! [`crate::media::h264::rtp`]). Each check is pure: one RTP packet in, `Ok` or the reason
//! to drop it out. A refused packet is dropped (and counted) by the caller, never fatal.

pub mod aac;
pub mod mpeg;
pub mod opus;
pub mod packetize;
pub mod vp8;

use crate::media::h264::rtp::payload_bounds;
use crate::media::Codec;

/// Why a payload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PayloadReject {
    #[error("the RTP header does not parse")]
    RtpHeader,
    #[error("empty payload")]
    Empty,
    #[error("the payload header is cut short")]
    ShortHeader,
    #[error("a length in the payload points past its end")]
    LengthPastEnd,
    #[error("a field holds a value the RFC does not allow")]
    BadField,
}

/// The check for one RTP stream of `codec`, built from its fmtp parameters (keys lowercased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadCheck {
    Vp8,
    Opus,
    Aac(aac::AuHeaderLayout),
    MpegVideo,
    MpegAudio,
}

impl PayloadCheck {
    /// The check for `codec`, or None for codecs that need none here (H.264 has its own;
    /// PCMU/PCMA carry raw samples that any byte string is).
    pub fn for_codec(codec: Codec, params: &[(String, String)]) -> Option<PayloadCheck> {
        Some(match codec {
            Codec::Vp8 => PayloadCheck::Vp8,
            Codec::Opus => PayloadCheck::Opus,
            Codec::Aac => PayloadCheck::Aac(aac::AuHeaderLayout::from_fmtp(params)),
            Codec::Mpeg1 => PayloadCheck::MpegVideo,
            Codec::Mp2 => PayloadCheck::MpegAudio,
            _ => return None,
        })
    }

    /// Judges one RTP packet, header included.
    pub fn check(&self, packet: &[u8]) -> Result<(), PayloadReject> {
        let (start, end) = payload_bounds(packet).ok_or(PayloadReject::RtpHeader)?;
        self.check_payload(&packet[start..end])
    }

    /// Judges one RTP payload (what follows the RTP header, padding removed).
    pub fn check_payload(&self, payload: &[u8]) -> Result<(), PayloadReject> {
        match self {
            PayloadCheck::Vp8 => vp8::check(payload),
            PayloadCheck::Opus => opus::check(payload),
            PayloadCheck::Aac(layout) => layout.check(payload),
            PayloadCheck::MpegVideo => mpeg::check_video(payload),
            PayloadCheck::MpegAudio => mpeg::check_audio(payload),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn packets_are_judged_by_their_payload() {
        let vp8 = PayloadCheck::for_codec(Codec::Vp8, &[]).unwrap();
        assert_eq!(vp8.check(&rtp(&[0x00, 0x01, 0x02, 0x03])), Ok(()));
        assert_eq!(vp8.check(&rtp(&[0x00])), Err(PayloadReject::Empty));
        assert_eq!(vp8.check(&[0x80, 96, 0]), Err(PayloadReject::RtpHeader));
        // Padding longer than the packet.
        let mut padded = rtp(&[0x00, 0x01]);
        padded[0] |= 0x20;
        padded.push(200);
        assert_eq!(vp8.check(&padded), Err(PayloadReject::RtpHeader));
        assert!(PayloadCheck::for_codec(Codec::H264, &[]).is_none());
        assert!(PayloadCheck::for_codec(Codec::Pcmu, &[]).is_none());
    }
}
