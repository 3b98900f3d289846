//! Cutting: where a clip starts and ends, its timing and alignment, its errors, and the same
//! cut from recording files.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};

use super::testing::{audio_info, secs, stream, wall, AAC_NS, FRAME_NS};
use super::*;
use crate::media::mp4::boxes::children;
use crate::media::{AudioInfo, Frame, Ts};
use crate::protocols::hls::segmenter::{Segmenter, SegmenterConfig};
use crate::record::window::{ClipWindow, WindowConfig};

fn window_of(frames: &[Arc<Frame>]) -> ClipWindow {
    let mut w = ClipWindow::new(WindowConfig::default());
    for f in frames {
        w.push(f.clone(), wall(f.dts.as_nanos()));
    }
    w
}

/// Bodies of the boxes along `path`, each step every box of that type.
fn all<'a>(data: &'a [u8], path: &[&[u8; 4]]) -> Vec<&'a [u8]> {
    let Some((first, rest)) = path.split_first() else { return vec![data] };
    children(data).into_iter().filter(|(f, _)| f == *first).flat_map(|(_, b)| all(b, rest)).collect()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

#[test]
fn a_clip_starts_at_the_keyframe_at_or_before_from_and_ends_before_to() {
    let w = window_of(&stream(0, 10_000_000_000, 25, 100, true, true));
    let clip = clip_from_window(&w, secs(3.5), secs(6.2), MAX_CLIP).unwrap();
    assert_eq!(clip.start, secs(3.0), "the keyframe at 3 s");
    // Pictures 3.00, 3.04, ... 6.16: 80 of them, 3.2 s.
    assert_eq!(clip.video_frames, 80);
    assert_eq!(clip.duration, Duration::from_millis(3200));
    assert_eq!(clip.end, secs(6.2));
    // Audio from 3.0 s to 6.2 s: the frames that start and end in it.
    let expected = (0..300).map(|k| k * AAC_NS).filter(|t| *t >= 3_000_000_000 && t + AAC_NS <= 6_200_000_000).count();
    assert_eq!(clip.audio_frames, expected);
    // The file: both tracks, the sample counts above, the movie 3.2 s long.
    let moov = all(&clip.mp4, &[b"moov"])[0];
    let stsz = all(moov, &[b"trak", b"mdia", b"minf", b"stbl", b"stsz"]);
    assert_eq!((u32_at(stsz[0], 8), u32_at(stsz[1], 8)), (80, expected as u32));
    let mvhd = all(moov, &[b"mvhd"])[0];
    assert_eq!(u32_at(mvhd, 16), 3200);
    // Audio starts within a frame of the picture: an empty edit of that much.
    let elst = all(moov, &[b"trak", b"edts", b"elst"]);
    assert_eq!(elst.len(), 1, "video needs no edit (no B-frames); audio is delayed");
    let first_audio = (0..).map(|k| k * AAC_NS).find(|t| *t >= 3_000_000_000).unwrap();
    assert_eq!(u32_at(elst[0], 8), ((first_audio - 3_000_000_000) as f64 / 1e6).round() as u32);
}

#[test]
fn from_before_the_window_starts_at_its_first_keyframe() {
    let frames = stream(0, 10_000_000_000, 25, 100, true, true);
    // Only the last 4 s are kept.
    let mut w = ClipWindow::new(WindowConfig { window: Duration::from_secs(4), ..WindowConfig::default() });
    for f in &frames {
        w.push(f.clone(), wall(f.dts.as_nanos()));
    }
    let clip = clip_from_window(&w, secs(1.0), secs(9.0), MAX_CLIP).unwrap();
    assert_eq!(clip.start, secs(5.0));
    assert_eq!(clip.video_frames, 100);
    // `to` past the end: up to the last picture.
    let clip = clip_from_window(&w, secs(8.5), secs(30.0), MAX_CLIP).unwrap();
    assert_eq!((clip.start, clip.video_frames), (secs(8.0), 50));
}

#[test]
fn what_cannot_be_cut() {
    let w = window_of(&stream(0, 5_000_000_000, 25, 100, true, true));
    let err = |from: f64, to: f64, max: u64| clip_from_window(&w, secs(from), secs(to), Duration::from_secs(max));
    assert!(matches!(err(3.0, 3.0, 600), Err(ClipError::EmptyRange)));
    assert!(matches!(err(3.0, 2.0, 600), Err(ClipError::EmptyRange)));
    assert!(matches!(err(0.0, 11.0, 10), Err(ClipError::TooLong { .. })));
    assert!(matches!(err(6.0, 8.0, 600), Err(ClipError::NothingInRange)));
    assert!(matches!(
        clip_from_window(&ClipWindow::new(WindowConfig::default()), secs(0.0), secs(1.0), MAX_CLIP),
        Err(ClipError::NothingInRange)
    ));
    // Pictures but no keyframe among them.
    let mut tracks = w.tracks();
    tracks[0].samples.iter_mut().for_each(|s| s.sync = false);
    assert!(matches!(cut(&tracks, secs(1.0), secs(2.0), MAX_CLIP), Err(ClipError::NoKeyframe)));
    // Opus has no place in these MP4s.
    let opus =
        Arc::new(TrackInfo::Audio(AudioInfo { codec: Codec::Opus, sample_rate: 48000, channels: 2, config: None }));
    let mut tracks = vec![SourceTrack { info: opus, samples: w.tracks()[1].samples.clone() }];
    assert!(matches!(cut(&tracks, secs(1.0), secs(2.0), MAX_CLIP), Err(ClipError::Unsupported(Codec::Opus))));
    // Beside H.264 it is left out: a clip of the pictures.
    tracks.insert(0, w.tracks()[0].clone());
    let clip = cut(&tracks, secs(1.0), secs(2.0), MAX_CLIP).unwrap();
    assert_eq!((clip.video_frames, clip.audio_frames, clip.left_out), (25, 0, Some(Codec::Opus)));
}

/// Pictures in decode order I P B B P B B ... (shown `[0, 3, 1, 2, 6, 4, 5, ...]`, one
/// frame late), a keyframe every 24.
fn b_frame_track(n: i64) -> SourceTrack {
    let samples = (0..n)
        .map(|k| {
            let shown = match k % 3 {
                1 => k + 2,
                _ if k == 0 => 0,
                _ => k - 1,
            };
            let (dts, pts) = (k * FRAME_NS, (shown + 1) * FRAME_NS);
            TimedSample { wall: wall(dts), dts, pts, sync: k % 24 == 0, data: Bytes::from(vec![k as u8; 50]) }
        })
        .collect();
    SourceTrack { info: super::testing::video_info(176), samples }
}

#[test]
fn with_b_frames_the_end_keeps_every_picture_shown_before_it() {
    let track = b_frame_track(100);
    // The last picture before `to` in decode order is a P (k = 31, shown as 33): its B-frames
    // (k = 32, 33) come after `to`, so the clip ends at k = 30 (shown as 29: 0..=29 all in).
    let to = wall(31 * FRAME_NS + 1);
    let clip = cut(std::slice::from_ref(&track), wall(0), to, MAX_CLIP).unwrap();
    assert_eq!(clip.video_frames, 31);
    assert_eq!(clip.duration, Duration::from_nanos(31 * FRAME_NS as u64));
    // The first picture is shown one frame after it decodes: the edit starts there.
    let moov = all(&clip.mp4, &[b"moov"])[0];
    let elst = all(moov, &[b"trak", b"edts", b"elst"])[0];
    assert_eq!((u32_at(elst, 8), u32_at(elst, 12)), (1240, 3600));
    assert_eq!(clip.start, wall(FRAME_NS), "the first picture is shown 40 ms after it decodes");
}

/// Recording files of `frames` split at `split_s`: init + fragments from the HLS segmenter
/// (2 s segments), each file starting on a segment, with the wall-clock time of its first
/// sample in milliseconds (as an index keeps it).
pub(super) fn recording(frames: &[Arc<Frame>], split_s: &[f64]) -> Vec<(SystemTime, Bytes)> {
    let mut segmenter = Segmenter::new(SegmenterConfig { keep: 1000, ..SegmenterConfig::default() });
    for f in frames {
        segmenter.push(f, wall(f.dts.as_nanos())).expect("push");
    }
    let init = segmenter.init().expect("init").1.clone();
    let mut files: Vec<(SystemTime, BytesMut)> = Vec::new();
    let mut elapsed = 0.0;
    for segment in segmenter.segments() {
        if files.is_empty() || split_s.iter().any(|s| (s - elapsed).abs() < 1e-6) {
            let ms = segment.started.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;
            files.push((SystemTime::UNIX_EPOCH + Duration::from_millis(ms), BytesMut::from(&init[..])));
        }
        files.last_mut().unwrap().1.extend_from_slice(&segment.bytes());
        elapsed += segment.duration();
    }
    files.into_iter().map(|(t, b)| (t, b.freeze())).collect()
}

#[test]
fn recording_files_cut_like_the_window_across_their_boundary() {
    let frames = stream(0, 12_000_000_000, 25, 100, true, true);
    let files = recording(&frames, &[6.0]);
    assert_eq!(files.len(), 2);
    assert_eq!(files[1].0, secs(6.0));
    let w = window_of(&frames);
    for (from, to) in [(4.5, 8.3), (0.0, 3.0), (7.0, 9.0)] {
        let live = clip_from_window(&w, secs(from), secs(to), MAX_CLIP).unwrap();
        let recorded = clip_from_files(&files, secs(from), secs(to), MAX_CLIP).unwrap();
        assert_eq!(recorded.start, live.start, "{from}..{to}");
        assert_eq!((recorded.video_frames, recorded.duration), (live.video_frames, live.duration), "{from}..{to}");
        assert!(recorded.audio_frames.abs_diff(live.audio_frames) <= 1, "{from}..{to}");
    }
    // The file still being written, cut mid-fragment, gives its whole fragments.
    let mut open = files.clone();
    open[1].1 = open[1].1.slice(..open[1].1.len() - 100);
    let cut_short = clip_from_files(&open, secs(7.0), secs(9.0), MAX_CLIP).unwrap();
    assert_eq!(cut_short.video_frames, clip_from_window(&w, secs(7.0), secs(9.0), MAX_CLIP).unwrap().video_frames);
    // Only the files around the range are read: a broken file far before it does no harm.
    let mut with_junk = vec![(secs(-60.0), Bytes::from_static(b"junk")), (secs(-30.0), Bytes::from_static(b"junk"))];
    with_junk.extend(files.iter().cloned());
    assert!(clip_from_files(&with_junk, secs(7.0), secs(9.0), MAX_CLIP).is_ok());
    assert!(matches!(clip_from_files(&files, secs(20.0), secs(25.0), MAX_CLIP), Err(ClipError::NothingInRange)));
}

#[test]
fn a_new_configuration_between_files_starts_the_clip_after_it() {
    let mut frames = stream(0, 4_000_000_000, 25, 100, true, true);
    let other = super::testing::video_info(320);
    for f in stream(4_000_000_000, 8_000_000_000, 25, 100, true, true) {
        let info = if f.kind() == TrackKind::Video { other.clone() } else { audio_info() };
        frames.push(Arc::new(Frame::new(info, f.dts, f.pts, f.keyframe, f.data.clone())));
    }
    let mut files = recording(&frames[..frames.iter().position(|f| f.dts >= Ts(4_000_000_000)).unwrap()], &[]);
    let second: Vec<Arc<Frame>> = frames.iter().filter(|f| f.dts >= Ts(4_000_000_000)).cloned().collect();
    files.extend(recording(&second, &[]));
    assert_eq!(files.len(), 2);
    let clip = clip_from_files(&files, secs(2.0), secs(6.0), MAX_CLIP).unwrap();
    assert_eq!(clip.start, secs(4.0), "from the new configuration's first keyframe");
    let moov = all(&clip.mp4, &[b"moov"])[0];
    let tkhd = all(moov, &[b"trak", b"tkhd"])[0];
    assert_eq!(u32_at(tkhd, tkhd.len() - 8) >> 16, 320);
}
