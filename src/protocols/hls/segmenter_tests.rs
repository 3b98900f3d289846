use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::*;
use crate::media::{AudioInfo, Codec, Frame, TrackInfo, Ts, VideoInfo};

fn video_info() -> Arc<TrackInfo> {
    let avcc =
        crate::auth::secret::unhex("0142c00affe100166742c00ad902c4ec0440000003004000000783c4899201000568cb83cb20")
            .expect("hex");
    Arc::new(TrackInfo::Video(VideoInfo {
        codec: Codec::H264,
        width: 176,
        height: 144,
        fps: Some(25.0),
        config: Some(avcc.into()),
        bframes: false,
    }))
}

fn audio_info() -> Arc<TrackInfo> {
    Arc::new(TrackInfo::Audio(AudioInfo {
        codec: Codec::Aac,
        sample_rate: 48000,
        channels: 2,
        config: Some(Bytes::from_static(&[0x11, 0x90])),
    }))
}

/// `seconds` of 25 fps video (a keyframe every `gop` frames) and 48 kHz AAC (1024 samples a
/// frame), interleaved by time.
fn stream(seconds: f64, gop: u64) -> Vec<Frame> {
    let (video, audio) = (video_info(), audio_info());
    let mut frames = Vec::new();
    let video_ns = 40_000_000i64;
    let audio_ns = 1024 * 1_000_000_000 / 48_000;
    let end = (seconds * 1e9) as i64;
    let (mut v, mut a) = (0i64, 0i64);
    while v < end || a < end {
        if v <= a && v < end {
            let n = (v / video_ns) as u64;
            frames.push(Frame::new(video.clone(), Ts(v), Ts(v), n % gop == 0, Bytes::from(vec![n as u8; 50])));
            v += video_ns;
        } else {
            frames.push(Frame::new(audio.clone(), Ts(a), Ts(a), true, Bytes::from(vec![1u8; 8])));
            a += audio_ns;
        }
    }
    frames
}

fn run(frames: &[Frame], config: SegmenterConfig) -> Segmenter {
    let mut s = Segmenter::new(config);
    let now = SystemTime::now();
    for f in frames {
        s.push(f, now).expect("push");
    }
    s
}

#[test]
fn segments_start_on_keyframes_after_the_target_and_parts_every_part_target() {
    // Keyframes every second, target 2 s: segments of 2 s.
    let s = run(&stream(9.0, 25), SegmenterConfig::default());
    let complete: Vec<&Segment> = s.segments().iter().filter(|x| x.complete).collect();
    assert_eq!(complete.len(), 4, "{:?}", s.segments().iter().map(|x| x.duration()).collect::<Vec<_>>());
    for (i, seg) in complete.iter().enumerate() {
        assert_eq!(seg.msn, i as u64);
        assert!((seg.duration() - 2.0).abs() < 0.01, "segment {i}: {}", seg.duration());
        assert!(seg.parts[0].independent, "a segment starts with a keyframe");
        assert_eq!(seg.parts.len(), 10, "parts of 200 ms");
        // Parts that start on a keyframe (every second here) are independent, the others not.
        let independent: Vec<usize> = (0..seg.parts.len()).filter(|&k| seg.parts[k].independent).collect();
        assert_eq!(independent, [0, 5]);
    }
    // The open segment has the parts so far.
    let open = s.segments().back().unwrap();
    assert!(!open.complete && !open.parts.is_empty());
}

#[test]
fn long_gops_make_long_segments_and_nothing_before_the_first_keyframe() {
    // Keyframes every 3 s; the viewer's frames start 1 s in, mid-GOP.
    let frames: Vec<Frame> = stream(10.0, 75).into_iter().filter(|f| f.dts.as_nanos() >= 1_000_000_000).collect();
    let s = run(&frames, SegmenterConfig::default());
    let complete: Vec<f64> = s.segments().iter().filter(|x| x.complete).map(|x| x.duration()).collect();
    assert_eq!(complete.len(), 2, "{complete:?}");
    assert!(complete.iter().all(|d| (d - 3.0).abs() < 0.01), "cut on the 3 s keyframes: {complete:?}");
    assert_eq!(s.segments()[0].msn, 0);
}

#[test]
fn a_part_holds_every_track_up_to_its_end() {
    let s = run(&stream(3.0, 25), SegmenterConfig::default());
    let first = &s.segments()[0];
    let data = first.bytes();
    // Each part is a moof + mdat with both tracks.
    let boxes = crate::media::mp4::boxes::children(&data);
    assert_eq!(boxes.len(), 2 * first.parts.len());
    let moof = boxes[0].1;
    let trafs = crate::media::mp4::boxes::children(moof).into_iter().filter(|(f, _)| f == b"traf").count();
    assert_eq!(trafs, 2);
    let init = &s.init().unwrap().1;
    assert!(init.windows(4).any(|w| w == b"avc1") && init.windows(4).any(|w| w == b"mp4a"));
}

#[test]
fn only_the_newest_segments_are_kept() {
    let config = SegmenterConfig { keep: 3, ..SegmenterConfig::default() };
    let s = run(&stream(20.0, 25), config);
    let msns: Vec<u64> = s.segments().iter().map(|x| x.msn).collect();
    assert_eq!(msns, [6, 7, 8, 9]);
    assert!(s.segment(5).is_none() && s.segment(9).is_some());
}

#[test]
fn a_new_configuration_ends_the_segment_and_versions_the_init() {
    let mut frames = stream(3.0, 25);
    let other = Arc::new(TrackInfo::Video(VideoInfo {
        width: 320,
        height: 240,
        ..match video_info().as_ref() {
            TrackInfo::Video(v) => v.clone(),
            _ => unreachable!(),
        }
    }));
    for f in stream(3.0, 25).into_iter().skip(1) {
        let dts = Ts(f.dts.as_nanos() + 3_000_000_000);
        let info = if f.kind() == TrackKind::Video { other.clone() } else { f.info.clone() };
        frames.push(Frame::new(info, dts, dts, f.keyframe, f.data.clone()));
    }
    let s = run(&frames, SegmenterConfig::default());
    assert_eq!(s.init().unwrap().0, 3, "video, audio, then the new video");
    let inits: Vec<u32> = s.segments().iter().map(|x| x.init).collect();
    assert!(inits.contains(&2) && inits.contains(&3), "{inits:?}");
    let msns: Vec<u64> = s.segments().iter().map(|x| x.msn).collect();
    assert!(msns.windows(2).all(|w| w[1] == w[0] + 1), "no gap in sequence numbers: {msns:?}");
    let _ = Duration::ZERO;
}

#[test]
fn flush_closes_the_open_segment_with_every_frame() {
    let frames = stream(3.0, 25);
    let mut s = run(&frames, SegmenterConfig::default());
    let before: f64 = s.segments().iter().map(|x| x.duration()).sum();
    s.flush();
    assert!(s.segments().iter().all(|x| x.complete));
    let total: f64 = s.segments().iter().map(|x| x.duration()).sum();
    assert!(before < 2.95 && (total - 3.0).abs() < 0.025, "before {before}, after {total}");
    let samples: usize = s
        .segments()
        .iter()
        .flat_map(|x| &x.parts)
        .map(|p| {
            let boxes = crate::media::mp4::boxes::children(&p.data);
            boxes.iter().filter(|(f, _)| f == b"mdat").map(|(_, b)| b.len()).sum::<usize>()
        })
        .sum();
    // Every frame's bytes are in an mdat (50 per picture, 8 per audio frame).
    let expected: usize = frames.iter().map(|f| f.data.len()).sum();
    assert_eq!(samples, expected);
}

/// A real FLV (ffmpeg/libx264 + AAC, B-frames) through FlvIngest and the segmenter: the init
/// segment and the first segment written as one file that ffprobe reads back (skipped
/// without ffprobe).
#[test]
fn a_real_stream_segments_into_fmp4_that_ffprobe_reads() {
    use crate::protocols::flv::{FlvIngest, FlvReader};
    let Ok(probe) = std::process::Command::new("ffprobe").arg("-version").output() else { return };
    if !probe.status.success() {
        return;
    }
    let mut reader = FlvReader::new();
    reader.push(include_bytes!("../flv/testdata/color64_bf2_aac48k.flv"));
    let mut ingest = FlvIngest::new();
    let mut segmenter = Segmenter::new(SegmenterConfig::default());
    while let Ok(Some(tag)) = reader.next_tag() {
        for frame in ingest.push(tag.kind, tag.timestamp, tag.body.clone()).unwrap_or_default() {
            segmenter.push(&frame, SystemTime::now()).expect("push");
        }
    }
    let segment = segmenter.segments().front().expect("a segment").bytes();
    let mut file = segmenter.init().expect("init").1.to_vec();
    file.extend_from_slice(&segment);
    let path = std::env::temp_dir().join(format!("segmenter-{}.mp4", std::process::id()));
    std::fs::write(&path, &file).expect("write");
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,width,height,sample_rate,nb_read_frames",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&path)
        .output()
        .expect("ffprobe");
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Decoded, not only described: the parts' samples are where the moof says.
    let frames = |codec: &str| -> u32 {
        let line = text.lines().find(|l| l.starts_with(codec)).unwrap_or("");
        line.rsplit(',').next().and_then(|n| n.trim().parse().ok()).unwrap_or(0)
    };
    assert!(text.contains("h264,64,64") && text.contains("aac,48000"), "{text}");
    assert!(frames("h264") >= 4 && frames("aac") >= 4, "{text}");
}

#[test]
fn declared_tracks_make_one_init_and_earlier_inits_stay_served() {
    let frames = stream(4.0, 25);
    let mut s = Segmenter::new(SegmenterConfig::default());
    s.prepare(&[video_info(), audio_info()]).expect("prepare");
    let declared = s.init().map(|(v, _)| *v).expect("an init once declared");
    let now = SystemTime::now();
    // Video first (a cached GOP), audio only later: still one init with both tracks.
    for f in frames.iter().filter(|f| f.kind() == TrackKind::Video) {
        s.push(f, now).expect("video");
    }
    for f in frames.iter().filter(|f| f.kind() == TrackKind::Audio) {
        s.push(f, now).expect("audio");
    }
    assert_eq!(s.init().map(|(v, _)| *v), Some(declared), "no second init when audio comes");
    assert!(s.segments().iter().all(|seg| seg.init == declared));
    // A new configuration makes init 2; init 1 is still there for the segments that need it.
    let mut other = video_info().as_ref().clone();
    if let TrackInfo::Video(v) = &mut other {
        v.width = 352;
    }
    let other = Arc::new(other);
    s.push(
        &Frame::new(other, Ts(5_000_000_000), Ts(5_000_000_000), true, Bytes::from_static(&[0, 0, 0, 1, 0x65])),
        now,
    )
    .expect("new configuration");
    assert_eq!(s.init().map(|(v, _)| *v), Some(declared + 1));
    assert!(s.init_of(declared).is_some() && s.init_of(declared + 1).is_some() && s.init_of(declared + 2).is_none());
}
