//! Which payload type of each m-line the gateway answers with. The chosen payload type
//! becomes the codec preferences of that m-line's transceiver; webrtcbin intersects them with
//! the offer, so the answer carries the offered fmtp of that payload type.

use gstreamer as gst;

use super::{Direction, Offer, OfferedCodec, OfferedMedia, SdpError};
use crate::media::{Codec, TrackKind};

/// The payload type answered for one m-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub mline: u32,
    pub kind: TrackKind,
    pub codec: Codec,
    pub pt: u8,
    pub clock_rate: u32,
    /// H.264: the `profile-level-id` the offer gave this payload type.
    pub profile_level_id: Option<String>,
}

impl Choice {
    fn new(media: &OfferedMedia, kind: TrackKind, codec: &OfferedCodec) -> Choice {
        Choice {
            mline: media.mline,
            kind,
            codec: codec.codec().unwrap_or(Codec::H264),
            pt: codec.pt,
            clock_rate: codec.clock_rate,
            profile_level_id: codec.param("profile-level-id").map(str::to_string),
        }
    }

    /// Codec preferences for this m-line's transceiver. They name the payload type only: the
    /// answer takes its fmtp (profile, packetization mode) from the offer, and the sending
    /// side is not held to the viewer's profile (browsers decode higher profiles anyway).
    pub fn preference_caps(&self) -> gst::Caps {
        let (media, name) = match self.codec {
            Codec::Vp8 => ("video", "VP8"),
            Codec::Opus => ("audio", "OPUS"),
            _ => ("video", "H264"),
        };
        let mut b = gst::Caps::builder("application/x-rtp")
            .field("media", media)
            .field("encoding-name", name)
            .field("payload", self.pt as i32)
            .field("clock-rate", self.clock_rate as i32);
        if self.codec == Codec::H264 {
            b = b.field("packetization-mode", "1");
        }
        b.build()
    }
}

/// WHIP: the publisher sends. Per kind, the first m-line is taken: H.264 with packetization
/// mode 1 (any profile, the first offered) before VP8 for video, Opus for audio.
pub fn choose_for_ingest(offer: &Offer) -> Result<Vec<Choice>, SdpError> {
    let mut choices: Vec<Choice> = Vec::new();
    let mut unusable = Vec::new();
    for media in offer.medias.iter().filter(|m| !m.rejected) {
        let Some(kind) = media.track() else { continue };
        if choices.iter().any(|c| c.kind == kind) {
            continue;
        }
        if !matches!(media.direction, Direction::SendOnly | Direction::SendRecv) {
            return Err(SdpError::Invalid(format!(
                "m-line {} ({}) is {}: a WHIP offer sends media (sendonly)",
                media.mline,
                media.kind,
                media.direction.as_str()
            )));
        }
        let preference: &[Codec] = match kind {
            TrackKind::Video => &[Codec::H264, Codec::Vp8],
            TrackKind::Audio => &[Codec::Opus],
        };
        let found = preference.iter().find_map(|want| media.codecs.iter().find(|c| c.codec() == Some(*want)));
        match found {
            Some(codec) => choices.push(Choice::new(media, kind, codec)),
            None => unusable.push(media.describe()),
        }
    }
    if !unusable.is_empty() || choices.is_empty() {
        return Err(SdpError::NoUsableCodec(format!(
            "offered {}; the gateway takes H264 (packetization-mode=1) or VP8 video and Opus audio",
            if unusable.is_empty() { offer.describe() } else { unusable.join("; ") }
        )));
    }
    Ok(choices)
}

/// What a WHEP viewer is sent: the codec of each track, and for H.264 the stream's
/// `profile_idc` (a payload type of the same profile is preferred).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EgressTracks {
    pub video: Option<(Codec, Option<u8>)>,
    pub audio: Option<Codec>,
}

/// WHEP: the viewer receives. Per track the stream has, the first m-line of that kind must
/// offer its codec; m-lines for tracks the stream lacks are left unanswered (rejected).
pub fn choose_for_egress(offer: &Offer, tracks: EgressTracks) -> Result<Vec<Choice>, SdpError> {
    let mut choices: Vec<Choice> = Vec::new();
    for media in offer.medias.iter().filter(|m| !m.rejected) {
        let Some(kind) = media.track() else { continue };
        if choices.iter().any(|c| c.kind == kind) {
            continue;
        }
        let (want, profile) = match kind {
            TrackKind::Video => match tracks.video {
                Some((codec, profile)) => (codec, profile),
                None => continue,
            },
            TrackKind::Audio => match tracks.audio {
                Some(codec) => (codec, None),
                None => continue,
            },
        };
        if !matches!(media.direction, Direction::RecvOnly | Direction::SendRecv) {
            return Err(SdpError::Invalid(format!(
                "m-line {} ({}) is {}: a WHEP offer receives media (recvonly)",
                media.mline,
                media.kind,
                media.direction.as_str()
            )));
        }
        let usable: Vec<&OfferedCodec> = media.codecs.iter().filter(|c| c.codec() == Some(want)).collect();
        let same_profile = usable.iter().find(|c| profile.is_some() && c.profile_idc() == profile);
        match same_profile.or(usable.first()) {
            Some(codec) => choices.push(Choice::new(media, kind, codec)),
            None => {
                return Err(SdpError::NoUsableCodec(format!(
                    "the stream's {kind} is {want}, the viewer offered {}",
                    media.describe()
                )))
            }
        }
    }
    if choices.is_empty() {
        let tracks: Vec<String> =
            [tracks.video.map(|v| format!("video {}", v.0)), tracks.audio.map(|a| format!("audio {a}"))]
                .into_iter()
                .flatten()
                .collect();
        let stream = if tracks.is_empty() { "no track to send".to_string() } else { tracks.join(" and ") };
        return Err(SdpError::NoUsableCodec(format!(
            "the viewer offered {}; the stream has {stream}",
            offer.describe()
        )));
    }
    Ok(choices)
}
