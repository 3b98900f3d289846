//! Stream recording, the file side: a recording is fMP4 files (one per segment, each an init
//! segment plus fragments, playable alone, decode times continuing across them) and a JSON
//! index beside them, under `{dir}/{stream}/`.
//!
//! - [`writer`]: frames in, files and index out ([`SegmentWriter`]; blocking file IO).
//! - [`index`]: the index, file names, [`load_indexes`].
//! - [`recover`]: reading files back ([`scan`]) and [`mark_interrupted`] on start-up.
//! - [`vod`]: the HLS playlist over a recording's files ([`vod_playlist`]).

pub mod autostart;
pub mod clips;
pub mod error;
mod fs;
pub mod index;
pub mod recorder;
pub mod recordings;
pub mod recover;
pub mod settings;
pub mod http;
pub mod vod;
pub mod writer;

pub use error::RecordError;
pub use index::{load_indexes, RecordedFile, RecordingId, RecordingIndex, RecordingState};
pub use recover::{mark_interrupted, scan};
pub use vod::vod_playlist;
pub use writer::SegmentWriter;
