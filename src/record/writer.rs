//! Writes one recording of a stream: frames in, fMP4 files and their index out. Sans-network,
//! blocking file IO (run it on a blocking thread).
//!
//! The HLS [`Segmenter`] cuts the frames: a file per segment (cut at the first keyframe after
//! the segment length; a new codec configuration starts a new file), a fragment (`moof` +
//! `mdat`) about every second. Each file starts with the init segment its fragments need, so
//! it plays alone; decode times (`tfdt`) run on across the files of a recording. The open
//! file is `<name>.mp4.part`, appended a fragment at a time (it plays up to its last one);
//! when its segment completes it is fsync'ed and renamed to `<name>.mp4`, then the index is
//! rewritten. A crash loses at most the open segment ([`super::mark_interrupted`] recovers
//! its whole fragments on start-up).
//!
//! Any IO error fails the writer: the open file is cut back to its last whole fragment and
//! kept, the index says `failed` (written in the room a 64 KiB reserve file kept while
//! recording frees), and every later call returns the same error. Frames the MP4 writer cannot carry (codecs other than H.264 and AAC) are
//! skipped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tracing::{info, warn};

use super::error::{io_err, RecordError};
use super::fs::Io;
use super::index::{check_stream, file_name, save, stream_dir, unix_ms};
use super::index::{RecordedFile, RecordingId, RecordingIndex, RecordingState};
use super::recover::scan;
use crate::media::Frame;
use crate::protocols::hls::segmenter::{Part, Segmenter, SegmenterConfig};

/// Fragments of about this much media (less when the segment is shorter).
const FRAGMENT: Duration = Duration::from_secs(1);

/// Bytes set aside while recording (`.{id}.reserve`, zeros) and freed when the recording
/// fails, so that a full disk still takes the index saying so.
const RESERVE: usize = 64 << 10;

/// The file being written.
struct OpenFile {
    file: File,
    path: PathBuf,
    /// `name` is the final one (without `.part`); size and duration count whole writes.
    entry: RecordedFile,
}

/// A new part of the segmenter's output, copied out (parts are cheap `Bytes` clones).
struct NewParts {
    msn: u64,
    init: u32,
    started: SystemTime,
    parts: Vec<Part>,
    total: usize,
    complete: bool,
}

pub struct SegmentWriter {
    dir: PathBuf,
    index_path: PathBuf,
    reserve: PathBuf,
    segmenter: Segmenter,
    /// Recent init segments by the segmenter's version (a segment names the one it needs).
    inits: Vec<(u32, Bytes)>,
    /// The init written last and its number in the recording ([`RecordedFile::init_version`]).
    last_init: Option<(u32, Bytes)>,
    /// Segment being written and how many of its parts are in the file.
    cursor: (u64, usize),
    open: Option<OpenFile>,
    next_seq: u32,
    index: RecordingIndex,
    failed: Option<RecordError>,
    last_now: SystemTime,
    skipped: u64,
    io: Io,
}

impl SegmentWriter {
    /// Starts recording `id` of `stream` into `{root}/{stream}/` (created), files of about
    /// `segment` each, and writes its index (state `recording`).
    pub fn new(
        root: &Path,
        stream: &str,
        id: RecordingId,
        segment: Duration,
        now: SystemTime,
    ) -> Result<SegmentWriter, RecordError> {
        check_stream(stream)?;
        let dir = stream_dir(root, stream);
        let mut io = Io::default();
        io.create_dir_all(&dir)?;
        let index_path = dir.join(format!("{id}.json"));
        if index_path.symlink_metadata().is_ok() {
            return Err(RecordError::Exists { id: id.to_string(), path: index_path });
        }
        let reserve = dir.join(format!(".{id}.reserve"));
        std::fs::write(&reserve, vec![0u8; RESERVE]).map_err(io_err("write", &reserve))?;
        let segment = segment.max(Duration::from_millis(100));
        let config = SegmenterConfig { target: segment, part: FRAGMENT.min(segment), keep: 1 };
        let index = RecordingIndex {
            id,
            stream: stream.to_string(),
            started_ms: unix_ms(now),
            ended_ms: None,
            state: RecordingState::Recording,
            files: Vec::new(),
        };
        if let Err(e) = save(&mut io, &index_path, &index) {
            let _ = std::fs::remove_file(&reserve);
            return Err(e);
        }
        info!(id = %index.id, stream, dir = %dir.display(), "recording");
        Ok(SegmentWriter {
            dir,
            index_path,
            reserve,
            segmenter: Segmenter::new(config),
            inits: Vec::new(),
            last_init: None,
            cursor: (0, 0),
            open: None,
            next_seq: 0,
            index,
            failed: None,
            last_now: now,
            skipped: 0,
            io,
        })
    }

    /// Takes a frame (tracks interleaved by arrival, each track's dts rising); `now` is its
    /// wall-clock arrival. Blocking: appends a fragment, and completes a file (fsync, rename,
    /// index) when a segment ends.
    pub fn push(&mut self, frame: &Frame, now: SystemTime) -> Result<(), RecordError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.last_now = now;
        if let Err(e) = self.segmenter.push(frame, now) {
            self.skipped += 1;
            if self.skipped.is_power_of_two() {
                warn!(id = %self.index.id, skipped = self.skipped, "recording skips a frame: {e}");
            }
            return Ok(());
        }
        if let Some((version, init)) = self.segmenter.init() {
            if self.inits.last().is_none_or(|(v, _)| v != version) {
                self.inits.push((*version, init.clone()));
                if self.inits.len() > 4 {
                    self.inits.remove(0);
                }
            }
        }
        self.drain().map_err(|e| self.fail(e))
    }

    /// Ends the recording: the frames held for their durations go into a last fragment, the
    /// open file completes and the index says `stopped`. The error of a failed writer.
    pub fn finish(mut self) -> Result<RecordingIndex, RecordError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.segmenter.flush();
        if let Err(e) = self.drain().and_then(|()| self.complete_file()) {
            return Err(self.fail(e));
        }
        self.index.state = RecordingState::Stopped;
        self.index.ended_ms = Some(unix_ms(self.last_now).max(self.index.started_ms));
        if let Err(e) = save(&mut self.io, &self.index_path, &self.index) {
            return Err(self.fail(e));
        }
        if let Err(e) = std::fs::remove_file(&self.reserve) {
            warn!(path = %self.reserve.display(), "recording's reserve not removed: {e}");
        }
        info!(id = %self.index.id, files = self.index.files.len(), seconds = self.index.duration_s(), "recording stopped");
        Ok(self.index)
    }

    /// The index as last written: the completed files.
    pub fn index(&self) -> &RecordingIndex {
        &self.index
    }

    /// The file being written (`name` is the final one; on disk it ends in `.part`).
    pub fn open_file(&self) -> Option<&RecordedFile> {
        self.open.as_ref().map(|o| &o.entry)
    }

    /// `{root}/{stream}`: where the files are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Frames skipped (a codec MP4 does not carry here).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The error that failed the writer, if one did.
    pub fn error(&self) -> Option<&RecordError> {
        self.failed.as_ref()
    }

    #[cfg(test)]
    pub(crate) fn set_fault(&mut self, hook: super::fs::FaultHook) {
        self.io.set_fault(hook);
    }

    /// Writes the parts the segmenter made since the last call, opening and completing files
    /// as segments start and end.
    fn drain(&mut self) -> Result<(), RecordError> {
        let (msn, done) = self.cursor;
        let work: Vec<NewParts> = self
            .segmenter
            .segments()
            .iter()
            .filter(|s| s.msn >= msn)
            .map(|s| NewParts {
                msn: s.msn,
                init: s.init,
                started: s.started,
                parts: s.parts[if s.msn == msn { done.min(s.parts.len()) } else { 0 }..].to_vec(),
                total: s.parts.len(),
                complete: s.complete,
            })
            .collect();
        for new in work {
            if new.msn != self.cursor.0 {
                self.complete_file()?;
                self.cursor = (new.msn, 0);
            }
            if !new.parts.is_empty() && self.open.is_none() {
                self.start_file(new.init, new.started)?;
            }
            for part in &new.parts {
                self.append(part)?;
            }
            self.cursor.1 = new.total;
            if new.complete {
                self.complete_file()?;
                self.cursor = (new.msn + 1, 0);
            }
        }
        Ok(())
    }

    fn start_file(&mut self, version: u32, started: SystemTime) -> Result<(), RecordError> {
        let name = file_name(&self.index.stream, started, &self.index.id, self.next_seq);
        let path = self.dir.join(format!("{name}.part"));
        let init = self.inits.iter().rev().find(|(v, _)| *v == version).or(self.inits.last()).map(|(_, b)| b.clone());
        let Some(init) = init else {
            return Err(RecordError::io("init", &path, std::io::Error::other("no init segment for the fragments")));
        };
        let init_version = match &self.last_init {
            Some((n, last)) if *last == init => *n,
            Some((n, _)) => n + 1,
            None => 1,
        };
        self.last_init = Some((init_version, init.clone()));
        let mut file = self.io.create_new(&path)?;
        self.next_seq += 1;
        let codecs = scan(&init).map(|s| s.codecs).unwrap_or_default();
        let result = self.io.write(&mut file, &path, &init);
        let size = init.len() as u64;
        let entry = RecordedFile {
            name,
            start_ms: unix_ms(started),
            duration_s: 0.0,
            size: if result.is_ok() { size } else { 0 },
            init_size: size,
            codecs,
            init_version,
        };
        self.open = Some(OpenFile { file, path, entry });
        result
    }

    fn append(&mut self, part: &Part) -> Result<(), RecordError> {
        let Some(open) = self.open.as_mut() else { return Ok(()) };
        self.io.write(&mut open.file, &open.path, &part.data)?;
        open.entry.size += part.data.len() as u64;
        open.entry.duration_s += part.duration;
        Ok(())
    }

    /// The open file is complete: synced, renamed, listed in the index.
    fn complete_file(&mut self) -> Result<(), RecordError> {
        let Some(open) = self.open.as_ref() else { return Ok(()) };
        self.io.sync(&open.file, &open.path)?;
        let to = self.dir.join(&open.entry.name);
        self.io.rename(&open.path, &to)?;
        if let Some(open) = self.open.take() {
            self.index.files.push(open.entry);
        }
        save(&mut self.io, &self.index_path, &self.index)
    }

    /// Fails the writer with `e`: keeps the open file's whole fragments, writes the index as
    /// `failed` (best effort) and returns `e` (as every later call does).
    fn fail(&mut self, e: RecordError) -> RecordError {
        warn!(id = %self.index.id, stream = %self.index.stream, "recording failed: {e}");
        if let Some(open) = self.open.take() {
            match self.salvage(&open) {
                Ok(true) => self.index.files.push(open.entry),
                Ok(false) => {}
                Err(e2) => warn!(path = %open.path.display(), "open recording file not kept: {e2}"),
            }
        }
        // Room for the index on a full disk.
        let _ = std::fs::remove_file(&self.reserve);
        self.index.state = RecordingState::Failed { error: e.to_string() };
        self.index.ended_ms = Some(unix_ms(self.last_now).max(self.index.started_ms));
        if let Err(e2) = save(&mut self.io, &self.index_path, &self.index) {
            warn!(path = %self.index_path.display(), "failed recording's index not written: {e2}");
        }
        self.failed = Some(e.clone());
        e
    }

    /// Cuts the open file back to what was written whole and names it `.mp4` (true), or
    /// removes it when that is no media (false).
    fn salvage(&mut self, open: &OpenFile) -> Result<bool, RecordError> {
        if open.entry.size <= open.entry.init_size {
            std::fs::remove_file(&open.path).map_err(io_err("remove", &open.path))?;
            return Ok(false);
        }
        open.file.set_len(open.entry.size).map_err(io_err("truncate", &open.path))?;
        self.io.sync(&open.file, &open.path)?;
        self.io.rename(&open.path, &self.dir.join(&open.entry.name))?;
        Ok(true)
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
