//! Real media: an FLV ffmpeg encodes (libx264 with B-frames, a keyframe every second, AAC)
//! goes through FlvIngest into a window and into recording files; clips cut from both are
//! checked with ffprobe (codecs, duration, frames decoded) and decoded by ffmpeg without an
//! error. Skipped where ffmpeg is missing.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;

use super::testing::wall;
use super::tests::recording;
use super::*;
use crate::media::Frame;
use crate::protocols::flv::{FlvIngest, FlvReader};
use crate::record::window::{ClipWindow, WindowConfig};

/// 12 s of 320x180 at 25 fps (GOP 25, two B-frames) and 48 kHz stereo AAC, as frames.
fn real_frames() -> Option<&'static Vec<Arc<Frame>>> {
    static FRAMES: OnceLock<Option<Vec<Arc<Frame>>>> = OnceLock::new();
    FRAMES
        .get_or_init(|| {
            let path = temp("source.flv");
            let status = Command::new("ffmpeg")
                .args(["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25"])
                .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "12"])
                .args(["-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "25", "-keyint_min", "25"])
                .args(["-sc_threshold", "0", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2", "-f", "flv"])
                .arg(&path)
                .status();
            if !status.is_ok_and(|s| s.success()) {
                return None;
            }
            let data = std::fs::read(&path).ok()?;
            let _ = std::fs::remove_file(&path);
            let mut reader = FlvReader::new();
            reader.push(&data);
            let mut ingest = FlvIngest::new();
            let mut frames = Vec::new();
            while let Ok(Some(tag)) = reader.next_tag() {
                frames.extend(ingest.push(tag.kind, tag.timestamp, tag.body.clone()).expect("ingest"));
            }
            Some(frames)
        })
        .as_ref()
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ig-clip-{}-{name}", std::process::id()))
}

/// What ffprobe and ffmpeg say of a clip.
#[derive(Debug)]
struct Probe {
    duration: f64,
    video: (String, u64, u64, f64),
    audio: (String, u64, f64),
    decode_errors: String,
}

fn probe(clip: &Clip, name: &str) -> Probe {
    let path = temp(name);
    std::fs::write(&path, &clip.mp4).expect("write");
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-of", "json", "-show_entries"])
        .arg("format=duration:stream=codec_name,codec_type,width,nb_read_frames,start_time")
        .arg(&path)
        .output()
        .expect("ffprobe");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let decode = Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(&path).args(["-f", "null", "-"]).output();
    let _ = std::fs::remove_file(&path);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let num = |v: &serde_json::Value| -> f64 {
        v.as_str().and_then(|s| s.parse().ok()).or_else(|| v.as_f64()).unwrap_or(f64::NAN)
    };
    let streams = json["streams"].as_array().cloned().unwrap_or_default();
    let stream = |kind: &str| streams.iter().find(|s| s["codec_type"] == kind).cloned().unwrap_or_default();
    let (v, a) = (stream("video"), stream("audio"));
    Probe {
        duration: num(&json["format"]["duration"]),
        video: (
            v["codec_name"].as_str().unwrap_or("").to_string(),
            v["width"].as_u64().unwrap_or(0),
            num(&v["nb_read_frames"]) as u64,
            num(&v["start_time"]),
        ),
        audio: (
            a["codec_name"].as_str().unwrap_or("").to_string(),
            num(&a["nb_read_frames"]) as u64,
            num(&a["start_time"]),
        ),
        decode_errors: decode
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .unwrap_or_else(|e| e.to_string()),
    }
}

/// The checks every real clip passes: H.264 and AAC, the asked duration give or take the
/// GOP, the frames the clip holds all decoded, video from 0, audio with it, no decoder error.
fn check(clip: &Clip, asked: f64, name: &str) -> Probe {
    let p = probe(clip, name);
    eprintln!(
        "{name}: {p:?}, clip {:?} {} pictures {} audio frames",
        clip.duration, clip.video_frames, clip.audio_frames
    );
    assert_eq!((p.video.0.as_str(), p.video.1, p.audio.0.as_str()), ("h264", 320, "aac"), "{p:?}");
    assert!((p.duration - asked).abs() <= 1.0, "asked {asked} s, got {p:?}");
    assert!((p.duration - clip.duration.as_secs_f64()).abs() < 0.05, "{p:?} vs {:?}", clip.duration);
    assert_eq!(p.video.2, clip.video_frames as u64, "{p:?}");
    assert!(p.audio.1.abs_diff(clip.audio_frames as u64) <= 1, "{p:?} vs {}", clip.audio_frames);
    assert!(p.video.3.abs() < 0.001, "the first picture at 0: {p:?}");
    assert!((0.0..0.03).contains(&p.audio.2), "audio within a frame of it: {p:?}");
    assert!(p.decode_errors.trim().is_empty(), "ffmpeg: {}", p.decode_errors);
    p
}

#[test]
fn a_real_stream_clips_from_its_window() {
    let Some(frames) = real_frames() else { return };
    assert!(frames.iter().any(|f| f.pts != f.dts), "B-frames in the source");
    let mut window = ClipWindow::new(WindowConfig::default());
    for f in frames {
        window.push(f.clone(), wall(f.dts.as_nanos()));
    }
    let (_, newest) = window.span().expect("frames");
    // The last 5 s.
    let to = newest + Duration::from_millis(40);
    let clip = clip_from_window(&window, to - Duration::from_secs(5), to, MAX_CLIP).expect("clip");
    check(&clip, 5.0, "last5.mp4");
    // A range in the middle.
    let clip = clip_from_window(&window, wall(2_300_000_000), wall(6_800_000_000), MAX_CLIP).expect("clip");
    assert!(clip.start <= wall(2_300_000_000) && clip.start > wall(1_200_000_000), "{:?}", clip.start);
    check(&clip, 4.5, "range.mp4");
}

#[test]
fn a_real_recording_clips_across_its_files() {
    let Some(frames) = real_frames() else { return };
    let files = recording(frames, &[6.0]);
    assert_eq!(files.len(), 2, "split at 6 s");
    let (from, to) = (wall(4_500_000_000), wall(8_500_000_000));
    let clip = clip_from_files(&files, from, to, MAX_CLIP).expect("clip");
    assert!(clip.start < files[1].0 && clip.end > files[1].0, "across the boundary: {clip:?}");
    check(&clip, 4.0, "files.mp4");
    let mut window = ClipWindow::new(WindowConfig::default());
    for f in frames {
        window.push(f.clone(), wall(f.dts.as_nanos()));
    }
    let live = clip_from_window(&window, from, to, MAX_CLIP).expect("clip");
    assert_eq!((clip.start, clip.video_frames), (live.start, live.video_frames));
    let _: Bytes = clip.mp4;
}
