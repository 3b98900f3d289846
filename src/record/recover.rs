//! Reading recorded files back: [`scan`] walks a fragmented MP4's boxes (init size, codecs,
//! each track's decode-time span, where the last whole fragment ends), and
//! [`mark_interrupted`] uses it on start-up to close the recordings a dead process left open.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::Path;

use tracing::{info, warn};

use super::error::{io_err, RecordError};
use super::fs::{sync_dir, Io};
use super::index::{index_path, load_indexes, parse_file_name, save, stream_dir};
use super::index::{RecordedFile, RecordingIndex, RecordingState};
use crate::media::mp4::boxes::children;
use crate::media::Codec;

/// One track's decode times in a file, in its timescale.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackSpan {
    pub track_id: u32,
    pub timescale: u32,
    /// The first fragment's `tfdt`.
    pub start: u64,
    /// The last sample's decode time plus its duration.
    pub end: u64,
    pub samples: u64,
}

/// What a fragmented MP4 holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Scan {
    /// Bytes of `ftyp` + `moov`.
    pub init_size: u64,
    /// Where the last whole `moof` + `mdat` ends (the init's end when there is none).
    pub whole: u64,
    pub fragments: usize,
    pub codecs: Vec<Codec>,
    /// Tracks by id.
    pub tracks: Vec<TrackSpan>,
}

impl Scan {
    /// Seconds of the first track with samples (video when there is video).
    pub fn duration_s(&self) -> f64 {
        self.tracks
            .iter()
            .find(|t| t.samples > 0 && t.timescale > 0)
            .map_or(0.0, |t| (t.end - t.start) as f64 / f64::from(t.timescale))
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn child<'a>(data: &'a [u8], fourcc: &[u8; 4]) -> Option<&'a [u8]> {
    children(data).into_iter().find(|(f, _)| f == fourcc).map(|(_, b)| b)
}

/// Scans `data` (a file as the writer makes it); `None` when it does not start with an init
/// segment.
pub fn scan(data: &[u8]) -> Option<Scan> {
    let mut out = Scan { init_size: 0, whole: 0, fragments: 0, codecs: Vec::new(), tracks: Vec::new() };
    let mut pos = 0usize;
    let mut moof: Option<&[u8]> = None;
    while let Some(size) = be32(data, pos) {
        let size = size as usize;
        if size < 8 || pos + size > data.len() {
            break; // torn at the end
        }
        let body = &data[pos + 8..pos + size];
        match &data[pos + 4..pos + 8] {
            b"moov" => {
                read_moov(body, &mut out);
                out.init_size = (pos + size) as u64;
                out.whole = out.init_size;
            }
            b"moof" => moof = Some(body),
            b"mdat" => {
                if let Some(moof) = moof.take() {
                    if out.init_size > 0 {
                        read_moof(moof, &mut out);
                        out.fragments += 1;
                        out.whole = (pos + size) as u64;
                    }
                }
            }
            _ => {}
        }
        pos += size;
    }
    (out.init_size > 0).then_some(out)
}

fn read_moov(moov: &[u8], out: &mut Scan) {
    for (fourcc, trak) in children(moov) {
        if &fourcc != b"trak" {
            continue;
        }
        let Some(tkhd) = child(trak, b"tkhd") else { continue };
        let v1 = tkhd.first() == Some(&1);
        let Some(track_id) = be32(tkhd, if v1 { 20 } else { 12 }) else { continue };
        let Some(mdia) = child(trak, b"mdia") else { continue };
        let timescale =
            child(mdia, b"mdhd").and_then(|m| be32(m, if m.first() == Some(&1) { 20 } else { 12 })).unwrap_or(0);
        let stsd = child(mdia, b"minf").and_then(|m| child(m, b"stbl")).and_then(|s| child(s, b"stsd"));
        for (entry, _) in stsd.and_then(|s| s.get(8..)).map(children).unwrap_or_default() {
            match &entry {
                b"avc1" | b"avc3" => out.codecs.push(Codec::H264),
                b"mp4a" => out.codecs.push(Codec::Aac),
                _ => {}
            }
        }
        out.tracks.push(TrackSpan { track_id, timescale, start: 0, end: 0, samples: 0 });
    }
    out.codecs.sort();
    out.codecs.dedup();
    out.tracks.sort_by_key(|t| t.track_id);
}

fn read_moof(moof: &[u8], out: &mut Scan) {
    for (fourcc, traf) in children(moof) {
        if &fourcc != b"traf" {
            continue;
        }
        let Some(tfhd) = child(traf, b"tfhd") else { continue };
        let (Some(flags), Some(id)) = (be32(tfhd, 0), be32(tfhd, 4)) else { continue };
        let mut at = 8;
        at += if flags & 0x01 != 0 { 8 } else { 0 };
        at += if flags & 0x02 != 0 { 4 } else { 0 };
        let default_duration = if flags & 0x08 != 0 { be32(tfhd, at).unwrap_or(0) } else { 0 };
        let base =
            child(traf, b"tfdt")
                .and_then(|t| if t.first() == Some(&1) { be64(t, 4) } else { be32(t, 4).map(u64::from) });
        let (mut duration, mut samples) = (0u64, 0u64);
        for (f, trun) in children(traf) {
            if &f != b"trun" {
                continue;
            }
            let (Some(flags), Some(count)) = (be32(trun, 0), be32(trun, 4)) else { continue };
            let mut at = 8 + if flags & 0x01 != 0 { 4 } else { 0 } + if flags & 0x04 != 0 { 4 } else { 0 };
            let per = [0x100u32, 0x200, 0x400, 0x800].iter().filter(|&&bit| flags & bit != 0).count() * 4;
            for _ in 0..count {
                duration += u64::from(if flags & 0x100 != 0 { be32(trun, at).unwrap_or(0) } else { default_duration });
                at += per;
            }
            samples += u64::from(count);
        }
        let (Some(track), Some(base)) = (out.tracks.iter_mut().find(|t| t.track_id == id), base) else { continue };
        if track.samples == 0 {
            track.start = base;
        }
        track.start = track.start.min(base);
        track.end = track.end.max(base + duration);
        track.samples += samples;
    }
}

/// Marks every recording under `root` still in state `recording` as `interrupted` (its
/// process died): files of it on disk that the index does not list (the open `.part`, or
/// one completed just before the crash) are cut back to their last whole fragment, named
/// `.mp4` and listed; a file with no whole fragment is removed (as is the writer's reserve). Call on start-up, before
/// recording anything (a live recording would be marked too). Returns the indexes changed.
pub fn mark_interrupted(root: &Path) -> Vec<RecordingIndex> {
    let mut changed = Vec::new();
    for mut index in load_indexes(root) {
        if index.state != RecordingState::Recording {
            continue;
        }
        let dir = stream_dir(root, &index.stream);
        recover_files(&dir, &mut index);
        let _ = fs::remove_file(dir.join(format!(".{}.reserve", index.id)));
        index.state = RecordingState::Interrupted;
        index.ended_ms = Some(index.files.last().map_or(index.started_ms, RecordedFile::end_ms));
        let path = index_path(root, &index.stream, &index.id);
        if let Err(e) = save(&mut Io::default(), &path, &index) {
            warn!(id = %index.id, "could not mark recording interrupted: {e}");
            continue;
        }
        info!(id = %index.id, stream = %index.stream, files = index.files.len(), "recording was interrupted");
        changed.push(index);
    }
    changed
}

fn recover_files(dir: &Path, index: &mut RecordingIndex) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mut found: Vec<(u32, String)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let seq = parse_file_name(&name, &index.stream, &index.id)?;
            let listed = index.files.iter().any(|f| f.name == name.strip_suffix(".part").unwrap_or(&name));
            (!listed).then_some((seq, name))
        })
        .collect();
    found.sort();
    for (_, name) in found {
        match recover_file(dir, &name, index) {
            Ok(Some(file)) => index.files.push(file),
            Ok(None) => {}
            Err(e) => warn!(id = %index.id, "recording file {name} not recovered: {e}"),
        }
    }
}

fn recover_file(dir: &Path, name: &str, index: &RecordingIndex) -> Result<Option<RecordedFile>, RecordError> {
    let path = dir.join(name);
    let data = fs::read(&path).map_err(io_err("read", &path))?;
    let Some(scan) = scan(&data) else {
        warn!(path = %path.display(), "not a recording file (no init segment), left alone");
        return Ok(None);
    };
    if scan.fragments == 0 {
        info!(path = %path.display(), "recording file without media removed");
        fs::remove_file(&path).map_err(io_err("remove", &path))?;
        return Ok(None);
    }
    if scan.whole < data.len() as u64 {
        warn!(path = %path.display(), bytes = data.len() as u64 - scan.whole, "torn fragment cut off");
        let file = OpenOptions::new().write(true).open(&path).map_err(io_err("open", &path))?;
        file.set_len(scan.whole).map_err(io_err("truncate", &path))?;
        file.sync_all().map_err(io_err("sync", &path))?;
    }
    let final_name = name.strip_suffix(".part").unwrap_or(name);
    if final_name != name {
        let to = dir.join(final_name);
        fs::rename(&path, &to).map_err(io_err("rename", &path))?;
        sync_dir(&to)?;
    }
    let init = &data[..scan.init_size as usize];
    let prev = index.files.last();
    let init_version = match prev {
        None => 1,
        Some(p) if read_prefix(&dir.join(&p.name), p.init_size).is_some_and(|i| i == init) => p.init_version,
        Some(p) => p.init_version + 1,
    };
    Ok(Some(RecordedFile {
        name: final_name.to_string(),
        // The recording is continuous: a file starts where the one before ended.
        start_ms: prev.map_or(index.started_ms, RecordedFile::end_ms),
        duration_s: scan.duration_s(),
        size: scan.whole,
        init_size: scan.init_size,
        codecs: scan.codecs,
        init_version,
    }))
}

fn read_prefix(path: &Path, len: u64) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    File::open(path).ok()?.take(len).read_to_end(&mut buf).ok()?;
    Some(buf)
}
