//! Fragmented MP4 (ISO BMFF, CMAF profile) for H.264 and AAC, as HLS segments, recordings and
//! clips carry them: an initialization segment ([`init`]) and fragments ([`fragment`]). Pure:
//! frames in, bytes out. The hub's frame payloads are what MP4 stores as they are (H.264 as
//! length-prefixed NAL units, AAC raw access units), so nothing is rewritten.

pub mod boxes;
pub mod fragment;
pub mod init;

pub use fragment::{fragment, Run, Sample};
pub use init::{init_segment, Track, TrackConfig, VIDEO_TIMESCALE};

use crate::media::Codec;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mp4Error {
    #[error("MP4 here carries H.264 and AAC, not {0}")]
    Unsupported(Codec),
    #[error("{0} track without its codec configuration")]
    NoConfig(Codec),
    #[error("picture size {0}x{1} does not fit MP4's 16-bit fields")]
    Size(u32, u32),
}

#[cfg(test)]
mod tests;
