//! A recording's index: which files it has, when they start, how long they are, and the
//! recording's state. Kept as `{dir}/{stream}/{id}.json` beside the files, replaced whole
//! (temporary file, fsync, rename) whenever a file completes and when the recording ends.
//!
//! Files are `{stream}-{YYYYMMDDTHHMMSSZ}-{id}-{seq:04}.mp4` (UTC start of the file), so a
//! directory listing sorts by time; the index is what orders them.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::error::RecordError;
use super::fs::Io;
use crate::hub::StreamKey;
use crate::media::Codec;

/// An index larger than this is not read (a garbage file, not an index).
const MAX_INDEX_BYTES: u64 = 64 << 20;

/// Names one recording: 1 to 64 letters, digits, `-` or `_` (it is part of file names).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RecordingId(String);

impl From<RecordingId> for String {
    fn from(id: RecordingId) -> String {
        id.0
    }
}

impl RecordingId {
    /// A fresh random id (12 hex digits).
    pub fn random() -> RecordingId {
        RecordingId(format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RecordingId {
    type Err = RecordError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(RecordingId(s.to_string()))
        } else {
            Err(RecordError::InvalidName { what: "recording id", value: s.chars().take(80).collect() })
        }
    }
}

impl TryFrom<String> for RecordingId {
    type Error = RecordError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for RecordingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum RecordingState {
    /// Being written (or its process died: see [`super::mark_interrupted`]).
    Recording,
    /// Finished normally.
    Stopped,
    /// Its process died while recording; found so on start-up.
    Interrupted,
    /// Writing failed (disk full, ...); the files listed are whole.
    Failed { error: String },
}

/// One file of a recording: a self-contained fragmented MP4 (init segment, then fragments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedFile {
    /// The file's name in the stream's directory.
    pub name: String,
    /// Wall clock (unix ms) of its first sample.
    pub start_ms: u64,
    pub duration_s: f64,
    /// Bytes, the init segment included.
    pub size: u64,
    /// Bytes of the init segment at the file's start; fragments follow.
    pub init_size: u64,
    pub codecs: Vec<Codec>,
    /// Counts init segments in the recording (1 first): a change is a new configuration
    /// (an HLS discontinuity).
    #[serde(default)]
    pub init_version: u32,
}

impl RecordedFile {
    /// Wall clock (unix ms) where it ends.
    pub fn end_ms(&self) -> u64 {
        self.start_ms + (self.duration_s * 1000.0).round() as u64
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingIndex {
    pub id: RecordingId,
    pub stream: String,
    /// Unix ms when recording began.
    pub started_ms: u64,
    /// Unix ms of its last frame, once it is not recording.
    pub ended_ms: Option<u64>,
    #[serde(flatten)]
    pub state: RecordingState,
    /// Completed files, in order.
    pub files: Vec<RecordedFile>,
}

impl RecordingIndex {
    pub fn duration_s(&self) -> f64 {
        self.files.iter().map(|f| f.duration_s).sum()
    }
}

/// Checks a stream key for use as a directory and file name part.
pub fn check_stream(stream: &str) -> Result<(), RecordError> {
    stream
        .parse::<StreamKey>()
        .map(|_| ())
        .map_err(|_| RecordError::InvalidName { what: "stream key", value: stream.chars().take(80).collect() })
}

/// `{root}/{stream}` (the stream key checked first: [`check_stream`]).
pub fn stream_dir(root: &Path, stream: &str) -> PathBuf {
    root.join(stream)
}

/// `{root}/{stream}/{id}.json`.
pub fn index_path(root: &Path, stream: &str, id: &RecordingId) -> PathBuf {
    stream_dir(root, stream).join(format!("{id}.json"))
}

pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `{stream}-{YYYYMMDDTHHMMSSZ}-{id}-{seq:04}.mp4`.
pub fn file_name(stream: &str, start: SystemTime, id: &RecordingId, seq: u32) -> String {
    // 2026-12-03T12:00:00.000Z -> 20261203T120000Z
    let stamp: String =
        crate::protocols::hls::playlist::rfc3339(start).chars().take(19).filter(|c| *c != '-' && *c != ':').collect();
    format!("{stream}-{stamp}Z-{id}-{seq:04}.mp4")
}

/// The sequence number of a file of recording `id` of `stream` (`.mp4`, or `.mp4.part` while
/// open), or `None` for any other name.
pub fn parse_file_name(name: &str, stream: &str, id: &RecordingId) -> Option<u32> {
    let base = name.strip_suffix(".part").unwrap_or(name).strip_suffix(".mp4")?;
    let (rest, seq) = base.rsplit_once('-')?;
    let stamp = rest.strip_prefix(stream)?.strip_prefix('-')?.strip_suffix(id.as_str())?.strip_suffix('-')?;
    let stamp_ok = stamp.len() == 16 && stamp.as_bytes()[8] == b'T' && stamp.ends_with('Z');
    (stamp_ok && seq.len() >= 4 && seq.bytes().all(|b| b.is_ascii_digit())).then(|| seq.parse().ok())?
}

/// Writes `index` to `path` whole or not at all.
pub(crate) fn save(io: &mut Io, path: &Path, index: &RecordingIndex) -> Result<(), RecordError> {
    let json = serde_json::to_vec_pretty(index).map_err(|e| RecordError::io("serialize", path, e.into()))?;
    io.write_atomic(path, &json)
}

/// Every recording's index under `root` (`{root}/{stream}/{id}.json`), oldest first. Files
/// that are not an index (unreadable, garbage, or naming another recording) are skipped
/// with a warning.
pub fn load_indexes(root: &Path) -> Vec<RecordingIndex> {
    let mut out = Vec::new();
    let streams = match fs::read_dir(root) {
        Ok(s) => s,
        Err(e) => {
            debug!(dir = %root.display(), "no recordings: {e}");
            return out;
        }
    };
    for stream in streams.flatten() {
        if !stream.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(files) = fs::read_dir(stream.path()) else { continue };
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".json") || name.starts_with('.') {
                continue;
            }
            if let Some(index) = read_index(&file.path(), &name, &stream.file_name().to_string_lossy()) {
                out.push(index);
            }
        }
    }
    out.sort_by(|a, b| (a.started_ms, &a.id).cmp(&(b.started_ms, &b.id)));
    out
}

/// The index of recording `id` (ids are unique across streams): looks for `{stream}/{id}.json`
/// under each stream's directory and reads that one file, not every index on disk.
pub fn find_index(root: &Path, id: &str) -> Option<RecordingIndex> {
    let id: RecordingId = id.parse().ok()?;
    let name = format!("{id}.json");
    let streams = fs::read_dir(root).ok()?;
    for stream in streams.flatten() {
        let path = stream.path().join(&name);
        if stream.file_type().is_ok_and(|t| t.is_dir()) && path.is_file() {
            return read_index(&path, &name, &stream.file_name().to_string_lossy());
        }
    }
    None
}

fn read_index(path: &Path, name: &str, stream: &str) -> Option<RecordingIndex> {
    let read = fs::metadata(path).and_then(|m| {
        if m.len() > MAX_INDEX_BYTES {
            Err(std::io::Error::other(format!("{} bytes: too large", m.len())))
        } else {
            fs::read(path)
        }
    });
    let data = match read {
        Ok(d) => d,
        Err(e) => {
            warn!(path = %path.display(), "recording index not readable, skipped: {e}");
            return None;
        }
    };
    match serde_json::from_slice::<RecordingIndex>(&data) {
        Ok(index) if index.stream == stream && name == format!("{}.json", index.id) => Some(index),
        Ok(index) => {
            warn!(path = %path.display(), id = %index.id, stream = %index.stream, "recording index names another recording, skipped");
            None
        }
        Err(e) => {
            warn!(path = %path.display(), "not a recording index, skipped: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn names_carry_stream_utc_time_id_and_sequence_and_parse_back() {
        let id: RecordingId = "r-1_a".parse().expect("id");
        let t = UNIX_EPOCH + Duration::from_millis(1_764_763_200_500); // 2025-12-03T12:00:00.5Z
        let name = file_name("cam.1", t, &id, 7);
        assert_eq!(name, "cam.1-20251203T120000Z-r-1_a-0007.mp4");
        assert_eq!(parse_file_name(&name, "cam.1", &id), Some(7));
        assert_eq!(parse_file_name(&format!("{name}.part"), "cam.1", &id), Some(7));
        assert_eq!(parse_file_name(&name, "cam", &id), None);
        assert_eq!(parse_file_name(&name, "cam.1", &"a".parse().expect("id")), None);
        assert_eq!(parse_file_name("cam.1-x-r-1_a-0007.mp4", "cam.1", &id), None);
        // Later files sort after earlier ones.
        let later = file_name("cam.1", t + Duration::from_secs(3600), &id, 8);
        assert!(later > name);
    }

    #[test]
    fn ids_and_stream_keys_are_checked_for_file_names() {
        for bad in ["", "a/b", "..", "a.b", "x y", &"a".repeat(65)] {
            assert!(bad.parse::<RecordingId>().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<RecordingId>("\"../x\"").is_err());
        assert!(RecordingId::random().as_str().len() == 12);
        assert!(check_stream("cam_1.hd-2").is_ok());
        for bad in ["", ".", "..", "a/b", "a\\b", "a b"] {
            let e = check_stream(bad).expect_err(bad);
            assert!(e.to_string().contains("invalid stream key"), "{e}");
        }
    }

    #[test]
    fn one_index_is_found_by_id_without_reading_the_others() {
        let root = std::env::temp_dir().join(format!("find-index-{}", RecordingId::random()));
        let index = |id: &str, stream: &str| RecordingIndex {
            id: id.parse().expect("id"),
            stream: stream.into(),
            started_ms: 1000,
            ended_ms: None,
            state: RecordingState::Recording,
            files: vec![],
        };
        for (id, stream) in [("aaa", "cam1"), ("bbb", "cam2")] {
            fs::create_dir_all(root.join(stream)).expect("dir");
            fs::write(
                root.join(stream).join(format!("{id}.json")),
                serde_json::to_vec(&index(id, stream)).expect("json"),
            )
            .expect("write");
        }
        // An unreadable neighbour does not matter: only the asked-for file is read.
        fs::write(root.join("cam1").join("zzz.json"), b"not json").expect("write");
        assert_eq!(find_index(&root, "bbb"), Some(index("bbb", "cam2")));
        assert_eq!(find_index(&root, "aaa"), Some(index("aaa", "cam1")));
        assert_eq!(find_index(&root, "ccc"), None);
        for bad in ["", "../cam1/aaa", "cam1/aaa", ".."] {
            assert_eq!(find_index(&root, bad), None, "{bad}");
        }
        // An index whose content names another recording is refused, as in the listing.
        fs::write(root.join("cam2").join("ddd.json"), serde_json::to_vec(&index("eee", "cam2")).expect("json"))
            .expect("write");
        assert_eq!(find_index(&root, "ddd"), None);
        fs::remove_dir_all(&root).expect("cleanup");
    }

    #[test]
    fn the_index_serializes_its_state_flat() {
        let index = RecordingIndex {
            id: "abc".parse().expect("id"),
            stream: "cam".into(),
            started_ms: 1000,
            ended_ms: Some(3000),
            state: RecordingState::Failed { error: "disk full".into() },
            files: vec![RecordedFile {
                name: "f.mp4".into(),
                start_ms: 1000,
                duration_s: 2.0,
                size: 900,
                init_size: 600,
                codecs: vec![Codec::H264, Codec::Aac],
                init_version: 1,
            }],
        };
        let json = serde_json::to_value(&index).expect("json");
        assert_eq!(json["state"], "failed");
        assert_eq!(json["error"], "disk full");
        assert_eq!(json["files"][0]["codecs"], serde_json::json!(["h264", "aac"]));
        let back: RecordingIndex = serde_json::from_value(json).expect("back");
        assert_eq!(back, index);
        assert_eq!(back.files[0].end_ms(), 3000);
        let recording = serde_json::to_string(&RecordingState::Recording).expect("json");
        assert_eq!(recording, r#"{"state":"recording"}"#);
    }
}
