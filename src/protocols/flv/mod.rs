//! FLV tags ↔ [`Frame`](crate::media::Frame)s.
//!
//! An FLV tag body is exactly the payload of an RTMP audio (8), video (9) or data (18)
//! message, so this one module serves RTMP and HTTP-FLV alike:
//! - [`FlvIngest`]: tag bodies in, frames out (sequence headers become new track infos);
//! - [`tag_body`] / [`cached_tag_body`] / [`sequence_header`] / [`metadata_body`]: frames and
//!   track infos back to tag bodies; [`FlvEgress`] sequences them for one viewer;
//! - [`file_header`] / [`file_tag`] / [`FlvReader`]: the FLV file framing (HTTP-FLV, tests).
//!
//! Everything here is sans-IO but [`http`], the HTTP-FLV handler built on it.

mod egress;
mod file;
mod fps;
pub mod http;
mod ingest;
mod meta;
pub mod raw;
mod sink;
mod tag;
mod viewer;

use bytes::Bytes;

use crate::media::aac::AacError;
use crate::media::h264::H264Error;
use crate::media::TrackKind;

pub use egress::FlvEgress;
pub use file::{file_header, file_tag, put_file_tag, FlvHeader, FlvReader};
pub use ingest::FlvIngest;
pub use meta::{metadata_body, MetaHints};
pub use tag::{
    cached_tag_body, end_of_sequence_body, parse_audio, parse_video, sequence_header, tag_body, AudioTag, VideoTag,
};

/// The kind of an FLV tag, and of the RTMP message carrying the same body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagKind {
    Audio,
    Video,
    /// Script data (AMF0), e.g. `onMetaData`.
    Script,
}

impl TagKind {
    /// The FLV tag type, which is also the RTMP message type id: 8, 9 or 18.
    pub fn type_id(self) -> u8 {
        match self {
            TagKind::Audio => 8,
            TagKind::Video => 9,
            TagKind::Script => 18,
        }
    }

    /// The kind of FLV tag type / RTMP message type `id`, if it is one of the three.
    pub fn from_type_id(id: u8) -> Option<TagKind> {
        match id {
            8 => Some(TagKind::Audio),
            9 => Some(TagKind::Video),
            18 => Some(TagKind::Script),
            _ => None,
        }
    }

    /// The largest tag body accepted for this kind, in bytes.
    pub fn max_body(self) -> usize {
        match self {
            TagKind::Video => MAX_VIDEO_BODY,
            TagKind::Audio => MAX_AUDIO_BODY,
            TagKind::Script => MAX_SCRIPT_BODY,
        }
    }
}

impl From<TrackKind> for TagKind {
    fn from(kind: TrackKind) -> TagKind {
        match kind {
            TrackKind::Video => TagKind::Video,
            TrackKind::Audio => TagKind::Audio,
        }
    }
}

/// One FLV tag: what [`FlvReader`] reads and [`FlvEgress`] emits (an RTMP message, too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    pub kind: TagKind,
    /// Milliseconds (the tag's 24-bit timestamp plus its extension byte).
    pub timestamp: u32,
    pub body: Bytes,
}

/// Largest video tag body: 8 MiB, far above any sane access unit.
pub const MAX_VIDEO_BODY: usize = 8 << 20;
/// Largest audio tag body: 64 KiB (an AAC access unit of 8 channels is under 7 KB).
pub const MAX_AUDIO_BODY: usize = 64 << 10;
/// Largest script tag body: 1 MiB.
pub const MAX_SCRIPT_BODY: usize = 1 << 20;

/// What can go wrong turning FLV into frames or back.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FlvError {
    /// A codec or feature this gateway does not take in or put out as FLV (named).
    #[error("unsupported in FLV: {0}")]
    Unsupported(String),
    #[error("malformed FLV: {0}")]
    Malformed(String),
    #[error("FLV {kind:?} tag body of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge { kind: TagKind, size: usize, limit: usize },
    /// The track info has no codec configuration to make a sequence header from.
    #[error("{0} track has no codec configuration")]
    MissingConfig(crate::media::Codec),
    #[error(transparent)]
    H264(#[from] H264Error),
    #[error(transparent)]
    Aac(#[from] AacError),
}

/// Errors unless `size` fits `kind`'s limit.
pub(crate) fn check_size(kind: TagKind, size: usize) -> Result<(), FlvError> {
    let limit = kind.max_body();
    if size > limit {
        return Err(FlvError::TooLarge { kind, size, limit });
    }
    Ok(())
}

#[cfg(test)]
mod test_vectors;
