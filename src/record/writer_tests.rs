//! The writer on a real stream: an 8 s FLV (libx264 with B-frames, a keyframe every second,
//! 48 kHz AAC) through FlvIngest, 2 s segments, checked with ffprobe (decoding checks are
//! skipped, with a note, when ffprobe is missing). The fixture was made with
//! `ffmpeg -f lavfi -i testsrc=size=64x48:rate=25:duration=8 -f lavfi -i
//! sine=frequency=440:sample_rate=48000:duration=8 -c:v libx264 -preset veryfast -bf 2 -g 25
//! -keyint_min 25 -sc_threshold 0 -crf 40 -pix_fmt yuv420p -c:a aac -b:a 12k -ac 1 -f flv`.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::*;
use crate::media::{AudioInfo, Codec, Frame, TrackInfo, Ts};
use crate::protocols::flv::{FlvIngest, FlvReader};
use crate::record::{load_indexes, mark_interrupted, scan, vod_playlist};

/// Video frames in the fixture (8 s at 25 fps).
const VIDEO_FRAMES: u32 = 200;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("rec-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fixture() -> Vec<Arc<Frame>> {
    let mut reader = FlvReader::new();
    reader.push(include_bytes!("testdata/rec8_bf2_aac48k.flv"));
    let mut ingest = FlvIngest::new();
    let mut frames = Vec::new();
    while let Ok(Some(tag)) = reader.next_tag() {
        frames.extend(ingest.push(tag.kind, tag.timestamp, tag.body.clone()).unwrap_or_default());
    }
    assert!(frames.len() > 500, "{} frames", frames.len());
    frames
}

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_764_763_200_000)
}

/// The frame's arrival: the start plus its decode time (a live stream).
fn at(frame: &Frame) -> SystemTime {
    t0() + Duration::from_nanos(frame.dts.as_nanos().max(0) as u64)
}

fn have_ffprobe() -> bool {
    let ok = Command::new("ffprobe").arg("-version").output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("ffprobe not found: decoding checks skipped");
    }
    ok
}

/// Frames ffprobe decodes from `path`: (h264, aac).
fn decoded(path: &Path) -> (u32, u32) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries", "stream=codec_name,nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    let count = |codec: &str| -> u32 {
        let line = text.lines().find(|l| l.starts_with(codec)).unwrap_or("");
        line.rsplit(',').next().and_then(|n| n.trim().parse().ok()).unwrap_or(0)
    };
    (count("h264"), count("aac"))
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).expect("dir").flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Every listed file is on disk with its size, starts with its init, and (with ffprobe)
/// decodes alone with both tracks. Returns the frames decoded.
fn check_files(dir: &Path, index: &RecordingIndex, probe: bool) -> (u32, u32) {
    let (mut video, mut audio) = (0, 0);
    for f in &index.files {
        let data = std::fs::read(dir.join(&f.name)).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        assert_eq!(data.len() as u64, f.size, "{}", f.name);
        let s = scan(&data).expect("an fMP4");
        assert_eq!((s.init_size, s.whole), (f.init_size, f.size), "{}", f.name);
        assert_eq!(f.codecs, [Codec::H264, Codec::Aac]);
        if probe {
            let (v, a) = decoded(&dir.join(&f.name));
            assert!(v > 0 && a > 0, "{}: {v} pictures, {a} audio frames", f.name);
            video += v;
            audio += a;
        }
    }
    (video, audio)
}

#[test]
fn a_real_stream_makes_segment_files_that_play_alone_and_as_one_vod_playlist() {
    let tmp = TempDir::new("real");
    let probe = have_ffprobe();
    let frames = fixture();
    let id: RecordingId = "r1".parse().expect("id");
    let mut w = SegmentWriter::new(&tmp.0, "cam.1", id, Duration::from_secs(2), t0()).expect("writer");
    let dir = tmp.0.join("cam.1");
    let opus =
        Arc::new(TrackInfo::Audio(AudioInfo { codec: Codec::Opus, sample_rate: 48000, channels: 2, config: None }));
    let mut seen_open = false;
    for (i, f) in frames.iter().enumerate() {
        w.push(f, at(f)).expect("push");
        if i == 100 {
            // A codec MP4 does not carry here: skipped, not fatal.
            w.push(&Frame::new(opus.clone(), f.dts, f.dts, true, Bytes::from_static(b"op")), at(f)).expect("opus");
        }
        if !seen_open && f.dts.as_nanos() > 3_300_000_000 {
            // Mid-segment: the open file is `.part`, on disk up to its last fragment.
            seen_open = true;
            let open = w.open_file().expect("an open file").clone();
            let part = dir.join(format!("{}.part", open.name));
            assert_eq!(std::fs::metadata(&part).expect("the .part").len(), open.size);
            assert_eq!(names_in(&dir).iter().filter(|n| n.ends_with(".part")).count(), 1);
            assert!(!w.index().files.is_empty() && !w.index().files.iter().any(|x| x.name == open.name));
            if probe {
                assert!(decoded(&part).0 >= 20, "the open file plays up to its last fragment");
            }
        }
    }
    assert!(seen_open);
    assert_eq!(w.skipped(), 1);
    let index = w.finish().expect("finish");

    assert_eq!(index.state, RecordingState::Stopped);
    assert!(index.files.len() >= 3, "{:?}", index.files);
    let mut expected: Vec<String> = index.files.iter().map(|f| f.name.clone()).collect();
    expected.push("r1.json".into());
    expected.sort();
    assert_eq!(names_in(&dir), expected, "no .part, no reserve, no temporary index left");
    assert_eq!(load_indexes(&tmp.0), std::slice::from_ref(&index), "the index on disk is the one returned");
    // Names sort in recording order.
    let names: Vec<&str> = index.files.iter().map(|f| f.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(names[0].starts_with("cam.1-20251203T120000Z-r1-0000"), "{names:?}");
    // Durations: 2 s segments, all of the 8 s in them (within a GOP), each starting where
    // the last ended.
    let total = index.duration_s();
    assert!((total - 8.0).abs() < 1.0, "{total} s recorded");
    for pair in index.files.windows(2) {
        assert!((pair[0].duration_s - 2.0).abs() < 0.05, "{:?}", pair[0]);
        assert!(pair[1].start_ms.abs_diff(pair[0].end_ms()) < 50, "{pair:?}");
    }
    // Decode times run on across the files, per track.
    let scans: Vec<_> =
        index.files.iter().map(|f| scan(&std::fs::read(dir.join(&f.name)).expect("read")).expect("scan")).collect();
    for pair in scans.windows(2) {
        for (a, b) in pair[0].tracks.iter().zip(&pair[1].tracks) {
            assert_eq!(a.end, b.start, "track {} continues", a.track_id);
        }
    }
    let (video, audio) = check_files(&dir, &index, probe);
    if !probe {
        return;
    }
    assert_eq!(video, VIDEO_FRAMES, "every picture is in one file");
    assert!(audio >= 370, "{audio} audio frames");
    // The playlist over the files as they are (byte ranges): every frame, in one timeline.
    let playlist = dir.join("vod.m3u8");
    std::fs::write(&playlist, vod_playlist(&index, |n| n.to_string())).expect("playlist");
    assert_eq!(decoded(&playlist), (video, audio));
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&playlist)
        .args(["-c", "copy", "-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_recording_dropped_without_finish_keeps_its_files_and_is_marked_interrupted() {
    let tmp = TempDir::new("interrupted");
    let probe = have_ffprobe();
    let id: RecordingId = "r2".parse().expect("id");
    let mut w = SegmentWriter::new(&tmp.0, "cam", id, Duration::from_secs(2), t0()).expect("writer");
    for f in fixture().iter().filter(|f| f.dts.as_nanos() < 5_500_000_000) {
        w.push(f, at(f)).expect("push");
    }
    let open = w.open_file().expect("open").clone();
    drop(w); // as a killed process leaves it
    let dir = tmp.0.join("cam");
    let before = load_indexes(&tmp.0);
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].state, RecordingState::Recording);
    assert_eq!(before[0].files.len(), 2, "the completed files");
    check_files(&dir, &before[0], probe);
    // The open file, with a torn fragment at its end (a write cut short).
    let part = dir.join(format!("{}.part", open.name));
    let mut data = std::fs::read(&part).expect("the .part");
    assert_eq!(data.len() as u64, open.size);
    data.extend_from_slice(&[0, 0, 0x20, 0, b'm', b'o', b'o', b'f', 1, 2, 3]);
    std::fs::write(&part, &data).expect("tear");

    assert!(dir.join(".r2.reserve").exists());
    let changed = mark_interrupted(&tmp.0);
    assert_eq!(changed.len(), 1);
    let index = &changed[0];
    assert_eq!(index.state, RecordingState::Interrupted);
    assert_eq!(index.files.len(), 3);
    let last = &index.files[2];
    assert_eq!((last.name.as_str(), last.size, last.init_size), (open.name.as_str(), open.size, open.init_size));
    assert!((last.duration_s - open.duration_s).abs() < 0.1, "{} vs {}", last.duration_s, open.duration_s);
    assert_eq!(last.start_ms, index.files[1].end_ms());
    assert_eq!(index.ended_ms, Some(last.end_ms()));
    assert!(!part.exists() && !dir.join(".r2.reserve").exists());
    assert_eq!(load_indexes(&tmp.0), changed);
    let (video, _) = check_files(&dir, index, probe);
    assert!(!probe || (120..=140).contains(&video), "{video} pictures of about 5.5 s");
    assert!(mark_interrupted(&tmp.0).is_empty(), "done once");
}

#[test]
fn an_unwritable_directory_is_a_clear_error() {
    let tmp = TempDir::new("unwritable");
    let id = || RecordingId::random();
    // The recordings directory is a regular file.
    let file = tmp.0.join("not-a-dir");
    std::fs::write(&file, b"x").expect("file");
    let Err(e) = SegmentWriter::new(&file, "cam", id(), Duration::from_secs(2), t0()) else { panic!("a file") };
    assert!(matches!(e, RecordError::NotADirectory { .. }), "{e:?}");
    assert_eq!(e.to_string(), format!("cannot record into {}/cam: it or a parent is not a directory", file.display()));
    // The stream's directory is a regular file.
    std::fs::write(tmp.0.join("cam"), b"x").expect("file");
    let Err(e) = SegmentWriter::new(&tmp.0, "cam", id(), Duration::from_secs(2), t0()) else { panic!("a file") };
    assert!(matches!(e, RecordError::NotADirectory { .. }), "{e:?}");
    // Names that are not file names.
    let Err(e) = SegmentWriter::new(&tmp.0, "../x", id(), Duration::from_secs(2), t0()) else { panic!("..") };
    assert!(matches!(e, RecordError::InvalidName { .. }), "{e:?}");
    // An id used before.
    let w = SegmentWriter::new(&tmp.0, "cam2", "same".parse().expect("id"), Duration::from_secs(2), t0());
    w.expect("first").finish().expect("finish");
    let again = SegmentWriter::new(&tmp.0, "cam2", "same".parse().expect("id"), Duration::from_secs(2), t0());
    assert!(matches!(again, Err(RecordError::Exists { .. })));
    // Permissions (root ignores them).
    if unsafe { libc::geteuid() } == 0 {
        eprintln!("running as root: the permission-denied case is not testable, skipped");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let locked = tmp.0.join("locked");
    std::fs::create_dir(&locked).expect("dir");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).expect("chmod");
    let Err(e) = SegmentWriter::new(&locked, "cam", id(), Duration::from_secs(2), t0()) else { panic!("locked") };
    assert!(matches!(e, RecordError::PermissionDenied { .. }), "{e:?}");
    let _ = std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700));
}

/// After a failure: the index on disk says `failed`, every listed file is whole and plays,
/// nothing is left `.part`.
fn check_failed(root: &Path, w: &SegmentWriter, probe: bool) -> RecordingIndex {
    let on_disk = load_indexes(root);
    assert_eq!(on_disk.len(), 1);
    let index = on_disk[0].clone();
    assert_eq!(&index, w.index());
    let RecordingState::Failed { error } = &index.state else { panic!("{:?}", index.state) };
    assert!(error.starts_with("disk full writing ") && error.contains(".mp4.part"), "{error}");
    let dir = root.join(&index.stream);
    assert!(names_in(&dir).iter().all(|n| !n.ends_with(".part")), "{:?}", names_in(&dir));
    check_files(&dir, &index, probe);
    index
}

#[test]
fn a_full_disk_fails_the_recording_and_keeps_what_was_written() {
    let tmp = TempDir::new("enospc");
    let probe = have_ffprobe();
    let mut w = SegmentWriter::new(&tmp.0, "cam", "r3".parse().expect("id"), Duration::from_secs(2), t0()).expect("w");
    // The 9th write to a recording file fails as a full disk does (the index still writes).
    let mut writes = 0;
    w.set_fault(Box::new(move |path: &Path| {
        if path.to_string_lossy().ends_with(".part") {
            writes += 1;
            if writes >= 9 {
                return Err(io::Error::from_raw_os_error(28));
            }
        }
        Ok(())
    }));
    let frames = fixture();
    let mut error = None;
    for f in &frames {
        if let Err(e) = w.push(f, at(f)) {
            error = Some(e);
            break;
        }
    }
    let error = error.expect("the disk fills");
    assert!(error.is_storage_full(), "{error:?}");
    // Failed for good: the same error, at once.
    let again = w.push(&frames[frames.len() - 1], SystemTime::now()).expect_err("failed");
    assert_eq!(again.to_string(), error.to_string());
    let index = check_failed(&tmp.0, &w, probe);
    // Two complete files, and the whole fragments of the third.
    assert_eq!(index.files.len(), 3, "{:?}", index.files);
    assert!(index.files[2].duration_s > 0.5 && index.files[2].duration_s < 1.9, "{:?}", index.files[2]);
    assert!(w.finish().is_err());
}

/// Mounts a tmpfs (as root) and unmounts it when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, options: &str) -> Option<Mount> {
        std::fs::create_dir_all(dir).ok()?;
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", options, "tmpfs"]).arg(dir).output();
        match out {
            Ok(o) if o.status.success() => Some(Mount(dir.to_path_buf())),
            Ok(o) => {
                eprintln!("cannot mount a tmpfs ({}), test skipped", String::from_utf8_lossy(&o.stderr).trim());
                None
            }
            Err(e) => {
                eprintln!("cannot run mount ({e}), test skipped");
                None
            }
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_real_full_disk_and_a_read_only_one() {
    let tmp = TempDir::new("tmpfs");
    let probe = have_ffprobe();
    let Some(_full) = Mount::tmpfs(&tmp.0.join("small"), "size=256k") else { return };
    let root = tmp.0.join("small");
    let mut w = SegmentWriter::new(&root, "cam", "r4".parse().expect("id"), Duration::from_secs(2), t0()).expect("w");
    let frames = fixture();
    let mut error = None;
    // The 8 s stream again and again (timestamps running on) until the disk is full.
    'fill: for lap in 0..40i64 {
        let offset = lap * 8_200_000_000;
        for f in &frames {
            let (dts, pts) = (Ts(f.dts.as_nanos() + offset), Ts(f.pts.as_nanos() + offset));
            let frame = Frame::new(f.info.clone(), dts, pts, f.keyframe, f.data.clone());
            if let Err(e) = w.push(&frame, at(&frame)) {
                error = Some(e);
                break 'fill;
            }
        }
    }
    let error = error.expect("256 KiB fill up");
    assert!(error.is_storage_full(), "{error:?}");
    let index = check_failed(&root, &w, probe);
    assert!(index.files.len() >= 5, "{} files before the disk filled", index.files.len());
    drop(w);

    let Some(_ro) = Mount::tmpfs(&tmp.0.join("ro"), "ro,size=64k") else { return };
    let Err(e) = SegmentWriter::new(&tmp.0.join("ro"), "cam", RecordingId::random(), Duration::from_secs(2), t0())
    else {
        panic!("read-only")
    };
    assert!(matches!(e, RecordError::ReadOnly { .. }), "{e:?}");
}

#[test]
fn garbage_beside_the_indexes_is_ignored() {
    let tmp = TempDir::new("garbage");
    assert!(load_indexes(&tmp.0.join("missing")).is_empty());
    let w = SegmentWriter::new(&tmp.0, "cam", "good".parse().expect("id"), Duration::from_secs(2), t0());
    let good = w.expect("writer").finish().expect("finish");
    assert!(good.files.is_empty() && good.state == RecordingState::Stopped);
    let dir = tmp.0.join("cam");
    std::fs::write(dir.join("bad.json"), b"{not json").expect("write");
    std::fs::write(dir.join("shape.json"), br#"{"id": 5, "files": "x"}"#).expect("write");
    std::fs::write(
        dir.join("evil.json"),
        br#"{"id":"../../x","stream":"cam","started_ms":0,"ended_ms":null,"state":"stopped","files":[]}"#,
    )
    .expect("write");
    // A valid index under another recording's name.
    let json = serde_json::to_string(&good).expect("json");
    std::fs::write(dir.join("other.json"), &json).expect("write");
    std::fs::write(dir.join(".good.json.tmp"), b"{").expect("write");
    std::fs::write(dir.join("empty.json"), b"").expect("write");
    std::fs::write(tmp.0.join("stray.json"), &json).expect("write");
    std::fs::create_dir(dir.join("sub.json")).expect("dir");
    assert_eq!(load_indexes(&tmp.0), [good]);
    assert!(mark_interrupted(&tmp.0).is_empty());
}

#[test]
fn the_writer_moves_to_a_blocking_thread() {
    fn send<T: Send>() {}
    send::<SegmentWriter>();
}
