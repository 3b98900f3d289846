//! The planner: given the matrix and what a stream really carries, decide per track whether
//! a receiver of another protocol gets it copied or converted, and why. Pure: no GStreamer.

use serde::{Deserialize, Serialize};

use super::model::Matrix;
use super::rule::Rule;
use crate::media::{AudioInfo, Codec, Protocol, TrackKind, VideoInfo};

/// One track of a real (or assumed) source stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceTrack {
    pub codec: Codec,
    /// The track has B-frames (only meaningful for video).
    pub bframes: bool,
    /// The longest gap between keyframes seen so far, in milliseconds (video; `None`: unknown).
    #[serde(default)]
    pub keyframe_interval_ms: Option<u32>,
    /// The publisher makes a keyframe when asked (WebRTC: PLI), so a long GOP can be shortened
    /// without re-encoding.
    #[serde(default)]
    pub keyframes_on_request: bool,
}

impl SourceTrack {
    /// A track of `codec` with nothing else known.
    pub fn new(codec: Codec) -> SourceTrack {
        SourceTrack { codec, bframes: false, keyframe_interval_ms: None, keyframes_on_request: false }
    }
}

/// What a source stream carries; `None` for a track it does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Source {
    pub video: Option<SourceTrack>,
    pub audio: Option<SourceTrack>,
}

impl Source {
    /// The stream a `protocol` publisher would typically send: the first codec of each of its
    /// tracks in the matrix, no B-frames. For planning when no real stream exists.
    pub fn default_for(matrix: &Matrix, protocol: Protocol) -> Source {
        let first = |track| matrix.codecs(protocol, track).first().map(|&codec| SourceTrack::new(codec));
        Source { video: first(TrackKind::Video), audio: first(TrackKind::Audio) }
    }

    /// The source as a live stream describes its tracks.
    pub fn from_infos(video: Option<&VideoInfo>, audio: Option<&AudioInfo>) -> Source {
        Source {
            video: video.map(|v| SourceTrack { bframes: v.bframes, ..SourceTrack::new(v.codec) }),
            audio: audio.map(|a| SourceTrack::new(a.codec)),
        }
    }

    /// The source's track of this kind, if it has one.
    pub fn track(&self, track: TrackKind) -> Option<SourceTrack> {
        match track {
            TrackKind::Video => self.video,
            TrackKind::Audio => self.audio,
        }
    }
}

/// Why a track is converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Reason {
    /// The matrix names this conversion (`X->Y` and the stream carries X).
    #[serde(rename = "rule")]
    Rule,
    /// An `auto` cell, and the receiver cannot carry the stream's codec.
    #[serde(rename = "auto")]
    Auto,
    /// The rule says `copy` (or converts another input codec), but the receiver cannot carry
    /// this stream's codec: converted to the rule's target or the receiver's first codec.
    #[serde(rename = "copy_impossible")]
    CopyImpossible,
    /// The stream has B-frames and the receiver's protocol does not take them: re-encoded to
    /// the same codec without B-frames.
    #[serde(rename = "bframes")]
    BFrames,
    /// The stream's keyframes are further apart than the receiver's protocol accepts and its
    /// publisher cannot be asked for more: re-encoded to the same codec with shorter GOPs.
    #[serde(rename = "keyframe_interval")]
    KeyframeInterval,
}

impl Reason {
    /// A short human explanation, for `interop-gateway plan`.
    pub fn describe(self) -> &'static str {
        match self {
            Reason::Rule => "the matrix rule",
            Reason::Auto => "auto: the receiver cannot carry the source codec",
            Reason::CopyImpossible => "the receiver cannot carry the source codec",
            Reason::BFrames => "the source has B-frames, the receiver takes none",
            Reason::KeyframeInterval => "the source's keyframes are too far apart for the receiver",
        }
    }
}

/// What happens to one track on its way to a receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Leg {
    /// `{"action":"copy","codec":"h264"}`
    Copy { codec: Codec },
    /// `{"action":"convert","from":"opus","to":"aac","reason":"rule"}`
    Convert { from: Codec, to: Codec, reason: Reason },
}

impl Leg {
    /// The codec the receiver gets.
    pub fn output_codec(&self) -> Codec {
        match *self {
            Leg::Copy { codec } => codec,
            Leg::Convert { to, .. } => to,
        }
    }

    /// Whether the track passes through unchanged.
    pub fn is_copy(&self) -> bool {
        matches!(self, Leg::Copy { .. })
    }
}

/// How a stream from one protocol reaches receivers of another, track by track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Plan {
    pub from: Protocol,
    pub to: Protocol,
    /// `None` when the source has no video track.
    pub video: Option<Leg>,
    /// `None` when the source has no audio track.
    pub audio: Option<Leg>,
}

impl Plan {
    /// The leg of one track (`None` when the source lacks it).
    pub fn leg(&self, track: TrackKind) -> Option<&Leg> {
        match track {
            TrackKind::Video => self.video.as_ref(),
            TrackKind::Audio => self.audio.as_ref(),
        }
    }

    /// The converted tracks: `(track, from, to, reason)`.
    pub fn conversions(&self) -> impl Iterator<Item = (TrackKind, Codec, Codec, Reason)> + '_ {
        TrackKind::ALL.into_iter().filter_map(|track| match self.leg(track) {
            Some(&Leg::Convert { from, to, reason }) => Some((track, from, to, reason)),
            _ => None,
        })
    }
}

/// A source that cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A track's codec is of the other kind (e.g. an audio codec as the video track).
    #[error("the source's {track} track is {codec}, which is not a {track} codec")]
    WrongKind { track: TrackKind, codec: Codec },
    /// Nothing is published by this protocol (HLS is play only).
    #[error("{0} is play only: nothing is published by it")]
    PlayOnly(Protocol),
}

/// Plans how `source`, published over `from`, reaches receivers over `to`.
pub fn plan(matrix: &Matrix, from: Protocol, source: &Source, to: Protocol) -> Result<Plan, PlanError> {
    if !from.publishes() {
        return Err(PlanError::PlayOnly(from));
    }
    let mut legs = [None, None];
    for (slot, track) in legs.iter_mut().zip(TrackKind::ALL) {
        if let Some(src) = source.track(track) {
            if src.codec.kind() != track {
                return Err(PlanError::WrongKind { track, codec: src.codec });
            }
            *slot = Some(plan_leg(matrix, from, to, track, src));
        }
    }
    let [video, audio] = legs;
    Ok(Plan { from, to, video, audio })
}

fn plan_leg(matrix: &Matrix, from: Protocol, to: Protocol, track: TrackKind, src: SourceTrack) -> Leg {
    let receiver = matrix.codecs(to, track);
    let carried = receiver.contains(&src.codec);
    // Validation guarantees a non-empty list; the fallback only avoids a panic path.
    let preferred = receiver.first().copied().unwrap_or(src.codec);
    let convert = |to, reason| Leg::Convert { from: src.codec, to, reason };
    let decided = match *matrix.rule(from, to, track) {
        Rule::Copy if carried => Leg::Copy { codec: src.codec },
        Rule::Copy => convert(preferred, Reason::CopyImpossible),
        Rule::Auto if carried => Leg::Copy { codec: src.codec },
        Rule::Auto => convert(preferred, Reason::Auto),
        Rule::Convert { to: target, .. } if src.codec == target && carried => Leg::Copy { codec: src.codec },
        Rule::Convert { from: named, to: target } if src.codec == named => convert(target, Reason::Rule),
        Rule::Convert { to: target, .. } => convert(target, Reason::CopyImpossible),
    };
    let gop_too_long = track == TrackKind::Video
        && !src.keyframes_on_request
        && matches!((src.keyframe_interval_ms, matrix.max_keyframe_interval_ms(to)), (Some(gop), Some(max)) if gop > max);
    match decided {
        Leg::Copy { codec } if src.bframes && !matrix.allows_bframes(to) => convert(codec, Reason::BFrames),
        Leg::Copy { codec } if gop_too_long => convert(codec, Reason::KeyframeInterval),
        other => other,
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
