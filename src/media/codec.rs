use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which track of a stream a frame or a rule belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackKind {
    Video,
    Audio,
}

impl TrackKind {
    pub const ALL: [TrackKind; 2] = [TrackKind::Video, TrackKind::Audio];

    /// Its place in [`TrackKind::ALL`] (video 0, audio 1): an index for per-track arrays.
    pub fn index(self) -> usize {
        match self {
            TrackKind::Video => 0,
            TrackKind::Audio => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TrackKind::Video => "video",
            TrackKind::Audio => "audio",
        }
    }
}

impl fmt::Display for TrackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every codec the gateway knows by name. The names (`h264`, `aac`, ...) are the ones used in
/// `matrix.yaml`, the API and the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    H264,
    Vp8,
    Mpeg1,
    Aac,
    Opus,
    Mp2,
    Pcmu,
    Pcma,
}

impl Codec {
    pub const ALL: [Codec; 8] =
        [Codec::H264, Codec::Vp8, Codec::Mpeg1, Codec::Aac, Codec::Opus, Codec::Mp2, Codec::Pcmu, Codec::Pcma];

    pub fn kind(self) -> TrackKind {
        match self {
            Codec::H264 | Codec::Vp8 | Codec::Mpeg1 => TrackKind::Video,
            Codec::Aac | Codec::Opus | Codec::Mp2 | Codec::Pcmu | Codec::Pcma => TrackKind::Audio,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::Vp8 => "vp8",
            Codec::Mpeg1 => "mpeg1",
            Codec::Aac => "aac",
            Codec::Opus => "opus",
            Codec::Mp2 => "mp2",
            Codec::Pcmu => "pcmu",
            Codec::Pcma => "pcma",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown codec `{0}` (known: h264, vp8, mpeg1, aac, opus, mp2, pcmu, pcma)")]
pub struct UnknownCodec(pub String);

impl FromStr for Codec {
    type Err = UnknownCodec;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Codec::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| UnknownCodec(s.to_string()))
    }
}
