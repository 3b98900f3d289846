//! Checks the test harness itself against real third-party peers (nginx-rtmp, ffmpeg,
//! ffprobe), without the gateway: if these fail, the black-box tests cannot be trusted.

use crate::common;

use std::time::Duration;

use common::ffmpeg::probe_until_h264_aac;
use common::flv::{check_join_start, max_arrival_gap, FlvParser};
use common::raw_rtmp::RawRtmp;
use common::{gateway::parse_listening, Ffmpeg, HttpFlvReader, Nginx, PublishOptions, TagKind, TempDir};

#[test]
fn parses_the_gateway_listening_line() {
    let line = "2025-01-01T00:00:00Z  INFO interop_gateway::server: listening http=127.0.0.1:4321 rtmp=127.0.0.1:1935";
    assert_eq!(parse_listening(line), Some(("127.0.0.1:4321".into(), "127.0.0.1:1935".into())));
    let colored = common::strip_ansi("\u{1b}[32m INFO\u{1b}[0m listening http=0.0.0.0:8080 rtmp=0.0.0.0:1935");
    assert_eq!(parse_listening(&colored), Some(("0.0.0.0:8080".into(), "0.0.0.0:1935".into())));
    assert_eq!(parse_listening("INFO starting up"), None);
}

/// Writes a short FLV file with ffmpeg (same encoder settings as the publisher).
fn write_flv(dir: &std::path::Path, name: &str, seconds: u32) -> std::path::PathBuf {
    let path = dir.join(name);
    let opts = PublishOptions { duration: Some(Duration::from_secs(seconds.into())), ..PublishOptions::default() };
    let mut args = common::ffmpeg::publish_args(path.to_str().expect("utf-8 path"), &opts);
    // No need to pace a file: drop every `-re`.
    args.retain(|a| a != "-re");
    let status = std::process::Command::new("ffmpeg").args(&args).status().expect("run ffmpeg");
    assert!(status.success(), "ffmpeg {args:?} failed: {status}");
    path
}

#[test]
fn flv_parser_reads_an_ffmpeg_file() {
    let dir = TempDir::new("flvfile");
    let path = write_flv(dir.path(), "a.flv", 3);
    let bytes = std::fs::read(&path).expect("read flv");
    let mut parser = FlvParser::default();
    let mut tags = Vec::new();
    // Feed in odd-sized pieces to exercise the incremental parsing.
    for piece in bytes.chunks(777) {
        parser.push(piece);
        while let Some(tag) = parser.next_tag().expect("valid FLV") {
            tags.push(tag);
        }
    }
    assert_eq!(parser.flags & 0x05, 0x05, "header says audio+video");
    assert_eq!(tags.first().map(|t| t.kind), Some(TagKind::Script), "onMetaData first");
    check_join_start(&tags).expect("ffmpeg's FLV starts with a sequence header then a keyframe");
    let frames: Vec<_> = tags.iter().filter(|t| t.is_video_frame()).collect();
    assert_eq!(frames.len(), 90, "3 s at 30 fps");
    assert_eq!(frames.iter().filter(|t| t.keyframe).count(), 3, "gop 30 → 3 keyframes");
    assert!(frames.iter().all(|t| t.codec == 7));
    let audio: Vec<_> = tags.iter().filter(|t| t.kind == TagKind::Audio).collect();
    assert_eq!(audio.iter().filter(|t| t.sequence_header).count(), 1);
    assert!(audio.iter().all(|t| t.codec == 10), "AAC");
    // 44100 Hz / 1024 samples per AU ≈ 43 AUs per second.
    assert!((125..=135).contains(&audio.len()), "audio tags: {}", audio.len());
    let last_ts = frames.last().map(|t| t.timestamp_ms).unwrap_or(0);
    assert!((2900..3000).contains(&last_ts), "last video timestamp {last_ts}");
}

#[test]
fn flv_parser_rejects_a_bad_previous_tag_size() {
    let dir = TempDir::new("flvbad");
    let path = write_flv(dir.path(), "b.flv", 1);
    let mut bytes = std::fs::read(&path).expect("read flv");
    // The first tag starts at 13; its PreviousTagSize follows its payload.
    let size = u32::from_be_bytes([0, bytes[14], bytes[15], bytes[16]]) as usize;
    bytes[13 + 11 + size + 3] ^= 0x01;
    let mut parser = FlvParser::default();
    parser.push(&bytes);
    assert!(parser.next_tag().is_err(), "a corrupted PreviousTagSize must be an error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_flv_reader_reads_a_file_served_by_nginx() {
    let nginx = Nginx::start();
    write_flv(&nginx.www(), "c.flv", 2);
    let mut reader = HttpFlvReader::connect(&nginx.http_url("/c.flv")).await.expect("GET c.flv");
    let mut tags = Vec::new();
    while let Ok(tag) = reader.next_tag(Duration::from_secs(5)).await {
        tags.push(tag);
    }
    check_join_start(&tags).expect("starts at a keyframe");
    assert_eq!(tags.iter().filter(|t| t.is_video_frame()).count(), 60);
    assert!(max_arrival_gap(&tags) < Duration::from_secs(1));
    let missing = HttpFlvReader::connect(&nginx.http_url("/missing.flv")).await;
    assert!(missing.is_err_and(|e| e.to_string().contains("404")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_origin_relays_an_ffmpeg_publish_and_restarts_on_the_same_port() {
    let mut nginx = Nginx::start();
    let url = nginx.rtmp_url("/live/h");
    let mut ffmpeg = Ffmpeg::publish(&url, PublishOptions::default());
    probe_until_h264_aac(&url, 640, 360, 44100, Duration::from_secs(20)).await.expect("ffprobe nginx");
    assert!(ffmpeg.is_running());

    nginx.stop();
    let status = ffmpeg.wait_exit(Duration::from_secs(10));
    assert!(status.is_some_and(|s| !s.success()), "ffmpeg should fail when nginx goes away: {status:?}");
    assert!(common::ffprobe(&url, Duration::from_secs(10)).await.is_err(), "nginx is stopped");

    nginx.restart();
    let _again = Ffmpeg::publish(&url, PublishOptions { bframes: true, ..PublishOptions::default() });
    probe_until_h264_aac(&url, 640, 360, 44100, Duration::from_secs(20)).await.expect("ffprobe restarted nginx");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_rtmp_client_completes_a_handshake_with_nginx() {
    let nginx = Nginx::start();
    let addr = nginx.rtmp_url("").trim_start_matches("rtmp://").to_string();
    let mut raw = RawRtmp::connect(&addr).await.expect("connect");
    raw.handshake().await.expect("handshake with nginx-rtmp");
    raw.finish().await;
    raw.expect_closed(Duration::from_secs(5)).await.expect("nginx closes after our EOF");
}
