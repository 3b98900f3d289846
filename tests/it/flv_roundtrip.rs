//! FLV round trip against real peers: ffmpeg writes an FLV (H.264 with B-frames + 48 kHz AAC),
//! `FlvReader` → `FlvIngest` turns it into frames, the frames are written back as FLV (once
//! with the tag builders directly, once through `FlvEgress`), and ffprobe must decode the
//! result as the same streams with the same frames.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use interop_gateway::media::{Frame, TrackInfo, TrackKind};
use interop_gateway::protocols::flv::{
    file_header, file_tag, metadata_body, sequence_header, tag_body, FlvEgress, FlvIngest, FlvReader, TagKind,
};
use serde_json::Value;

/// A unique temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let path = std::env::temp_dir().join(format!("flv-roundtrip-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// ffprobe's streams and decoded frames of a file.
fn probe(path: &Path) -> Value {
    let out =
        run(Command::new("ffprobe").args(["-v", "error", "-show_streams", "-show_frames", "-of", "json"]).arg(path));
    serde_json::from_slice(&out).expect("ffprobe JSON")
}

fn stream<'a>(probe: &'a Value, codec_type: &str) -> &'a Value {
    probe["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["codec_type"] == codec_type))
        .unwrap_or_else(|| panic!("no {codec_type} stream in {probe}"))
}

fn frames<'a>(probe: &'a Value, media_type: &str) -> Vec<&'a Value> {
    probe["frames"].as_array().map(|f| f.iter().filter(|f| f["media_type"] == media_type).collect()).unwrap_or_default()
}

/// Sorted presentation timestamps (ms) of the decoded video frames.
fn video_pts(probe: &Value) -> Vec<i64> {
    let mut pts: Vec<i64> = frames(probe, "video").iter().filter_map(|f| f["pts"].as_i64()).collect();
    pts.sort_unstable();
    pts
}

fn keyframes(probe: &Value) -> usize {
    frames(probe, "video").iter().filter(|f| f["key_frame"] == 1).count()
}

/// Packets per stream of the input, as ffprobe counts them.
fn packet_count(path: &Path, stream: &str) -> usize {
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream, "-count_packets"])
        .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(path));
    String::from_utf8_lossy(&out).trim().parse().expect("packet count")
}

#[test]
fn ffmpeg_flv_through_ingest_and_back_reads_the_same_in_ffprobe() {
    let dir = TempDir::new();
    let input = dir.0.join("in.flv");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-nostdin"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=sample_rate=48000"])
        .args(["-t", "2", "-c:v", "libx264", "-bf", "2", "-g", "25"])
        .args(["-c:a", "aac", "-ar", "48000", "-ac", "2"])
        .arg(&input));
    let source = probe(&input);

    // Read and ingest.
    let mut reader = FlvReader::new();
    let mut ingest = FlvIngest::new();
    let mut frames_out: Vec<Arc<Frame>> = Vec::new();
    for chunk in std::fs::read(&input).expect("read in.flv").chunks(4096) {
        reader.push(chunk);
        while let Some(tag) = reader.next_tag().expect("FLV tag") {
            frames_out.extend(ingest.push(tag.kind, tag.timestamp, tag.body).expect("ingest"));
        }
    }
    assert_eq!(reader.buffered(), 0, "whole file read");
    assert_eq!(ingest.dropped(), 0);

    let Some(TrackInfo::Video(video)) = ingest.video_info().map(|i| i.as_ref().clone()) else {
        panic!("no video info")
    };
    let Some(TrackInfo::Audio(audio)) = ingest.audio_info().map(|i| i.as_ref().clone()) else {
        panic!("no audio info")
    };
    assert_eq!((video.width, video.height, video.fps), (320, 240, Some(25.0)));
    assert!(video.bframes, "-bf 2 stream must be marked as having B-frames");
    assert_eq!((audio.sample_rate, audio.channels), (48000, 2), "rate from the ASC, not the FLV rate field");

    let (v, a): (Vec<&Arc<Frame>>, Vec<&Arc<Frame>>) = frames_out.iter().partition(|f| f.kind() == TrackKind::Video);
    assert_eq!(v.len(), packet_count(&input, "v:0"));
    assert_eq!(a.len(), packet_count(&input, "a:0"));
    assert_eq!(v.iter().filter(|f| f.keyframe).count(), keyframes(&source));
    assert!(v.iter().all(|f| f.pts >= f.dts), "pts >= dts");
    assert!(v.iter().any(|f| f.pts > f.dts), "some frames reordered");

    // Write back with the tag builders.
    let direct = dir.0.join("direct.flv");
    let mut out = file_header(true, true).to_vec();
    out.extend_from_slice(&file_tag(TagKind::Script, 0, &metadata_body(Some(&video), Some(&audio))));
    for info in [ingest.video_info(), ingest.audio_info()].into_iter().flatten() {
        let body = sequence_header(info).expect("sequence header");
        out.extend_from_slice(&file_tag(info.kind().into(), 0, &body));
    }
    for f in &frames_out {
        let body = tag_body(f).expect("tag body");
        out.extend_from_slice(&file_tag(f.kind().into(), f.dts.as_millis() as u32, &body));
    }
    std::fs::write(&direct, &out).expect("write direct.flv");

    // And through one viewer's egress.
    let via_egress = dir.0.join("egress.flv");
    let mut egress = FlvEgress::new();
    let mut tags = Vec::new();
    egress.start(ingest.video_info(), ingest.audio_info(), &mut tags);
    for f in &frames_out {
        egress.frame(f, &mut tags).expect("egress frame");
    }
    let mut out = file_header(true, true).to_vec();
    for t in &tags {
        out.extend_from_slice(&file_tag(t.kind, t.timestamp, &t.body));
    }
    std::fs::write(&via_egress, &out).expect("write egress.flv");

    for written in [&direct, &via_egress] {
        let p = probe(written);
        let vs = stream(&p, "video");
        assert_eq!(vs["codec_name"], "h264", "{written:?}");
        assert_eq!((vs["width"].as_i64(), vs["height"].as_i64()), (Some(320), Some(240)), "{written:?}");
        let aus = stream(&p, "audio");
        assert_eq!(aus["codec_name"], "aac", "{written:?}");
        assert_eq!(aus["sample_rate"], "48000", "{written:?}");
        assert_eq!(aus["channels"].as_i64(), Some(2), "{written:?}");
        assert_eq!(frames(&p, "video").len(), frames(&source, "video").len(), "{written:?} video frames");
        assert_eq!(frames(&p, "audio").len(), frames(&source, "audio").len(), "{written:?} audio frames");
        assert_eq!(keyframes(&p), keyframes(&source), "{written:?} keyframes");
        assert_eq!(video_pts(&p), video_pts(&source), "{written:?} presentation times");
    }
}
