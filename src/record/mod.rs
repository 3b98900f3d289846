//! Recordings and highlight clips.
//!
//! A recording is fMP4 files (one per segment, each an init segment plus fragments, playable
//! alone, decode times continuing across them) and a JSON index beside them, under
//! `{recording.dir}/{stream}/`:
//! - [`writer`]: frames in, files and index out ([`SegmentWriter`]; blocking file IO);
//! - [`index`]: the index, file names, [`load_indexes`];
//! - [`recover`]: reading files back ([`scan`]) and [`mark_interrupted`] on start-up;
//! - [`vod`]: the HLS playlist over a recording's files ([`vod_playlist`]);
//! - [`recorder`], [`recordings`]: running recordings (hub consumers), by API or by rule.
//!
//! Clips: [`window`] keeps a live stream's recent frames, [`clip`] cuts an MP4 from it or
//! from recording files, [`clips`] runs both for the API. [`autostart`] starts what begins
//! with a stream; [`http`] serves files and playlists; [`settings`] is the configuration.

pub mod autostart;
pub mod clip;
pub mod clips;
pub mod error;
mod fs;
pub mod http;
pub mod index;
pub mod recorder;
pub mod recordings;
pub mod recover;
pub mod settings;
pub mod vod;
pub mod window;
pub mod writer;

pub use error::RecordError;
pub use index::{find_index, load_indexes, RecordedFile, RecordingId, RecordingIndex, RecordingState};
pub use recover::{mark_interrupted, scan};
pub use vod::vod_playlist;
pub use writer::SegmentWriter;
