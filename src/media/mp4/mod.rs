//! MP4 (ISO BMFF) for H.264 and AAC, as HLS segments, recordings and clips carry it:
//! fragmented MP4 (CMAF) written as an initialization segment ([`init`]) and fragments
//! ([`fragment`]) and read back ([`read`]), and progressive MP4 with the index first
//! ([`progressive`]) for clips. Pure: samples in, bytes out. The hub's frame payloads are what
//! MP4 stores as they are (H.264 as length-prefixed NAL units, AAC raw access units), so
//! nothing is rewritten.

pub mod boxes;
pub mod fragment;
pub mod init;
mod parse;
pub mod progressive;
pub mod read;

pub use fragment::{fragment, Run, Sample};
pub use init::{init_segment, Track, TrackConfig, VIDEO_TIMESCALE};
pub use progressive::{progressive, ProgressiveTrack};
pub use read::{read_fragmented, read_fragmented_partial, FragmentedFile, ReadSample, ReadTrack};

use crate::media::Codec;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mp4Error {
    #[error("MP4 here carries H.264 and AAC, not {0}")]
    Unsupported(Codec),
    #[error("{0} track without its codec configuration")]
    NoConfig(Codec),
    #[error("picture size {0}x{1} does not fit MP4's 16-bit fields")]
    Size(u32, u32),
    #[error("malformed MP4: {0}")]
    Malformed(&'static str),
    #[error("MP4 sample entry `{0}` is not H.264 or AAC")]
    UnsupportedEntry(String),
    #[error("no samples to write")]
    NoSamples,
    #[error("too large for MP4: {0}")]
    TooLarge(&'static str),
}

#[cfg(test)]
mod tests;
