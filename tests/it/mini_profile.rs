//! The mini-program profile (WeChat live-player): H.264 + AAC only, a keyframe at least every
//! 2 s, no B-frames — re-encoded only for mini-program viewers and only when the source needs
//! it; RTMP viewers of the same stream keep the copy.

use crate::common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Ffmpeg, Gateway, HttpFlvReader, PublishOptions};

/// Seconds between the coded keyframes an HTTP-FLV viewer receives over `span`.
async fn keyframe_gaps(url: &str, span: Duration) -> Vec<f64> {
    let mut reader = HttpFlvReader::connect(url).await.expect("HTTP-FLV");
    let start = Instant::now();
    let mut keys = Vec::new();
    while start.elapsed() < span {
        let tag = reader.next_tag(Duration::from_secs(5)).await.expect("tags keep coming");
        if tag.keyframe {
            keys.push(tag.timestamp_ms as f64 / 1000.0);
        }
    }
    keys.windows(2).map(|w| w[1] - w[0]).collect()
}

fn conversions(stream: &common::api::StreamInfo) -> Vec<(String, String, String)> {
    stream.conversions.iter().map(|c| (c.track.clone(), c.from.clone(), c.to.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_gops_are_shortened_for_mini_program_viewers_only() {
    let gw = Gateway::start();
    let api = gw.api();
    // A 5 s GOP, as many encoders default to; no B-frames.
    let _ffmpeg = Ffmpeg::publish(&gw.rtmp_url("/mini/gop"), PublishOptions { gop: 150, ..PublishOptions::default() });
    api.wait_live("gop", Duration::from_secs(20)).await.expect("live");
    tokio::time::sleep(Duration::from_millis(2500)).await; // the GOP is known to be > 2 s by now

    // 10 s of media: at least four keyframes even when a loaded machine slows the re-encode.
    let mini = keyframe_gaps(&gw.http_url("/mini/gop.flv"), Duration::from_secs(10)).await;
    assert!(mini.len() >= 2, "several keyframes in 10 s: {mini:?}");
    assert!(mini.iter().all(|g| *g <= 2.1), "mini-program viewers get a keyframe at least every 2 s: {mini:?}");
    let stream = api.stream("gop").await.unwrap().expect("listed");
    assert_eq!(conversions(&stream), vec![("video".into(), "h264".into(), "h264".into())]);
    let raw = api.get("/api/v1/streams/gop").await.unwrap().json.expect("json");
    assert_eq!(raw["conversions"][0]["reason"], "keyframe_interval");

    // An RTMP-protocol viewer of the same key (HTTP-FLV on /live) keeps the source's GOP.
    let live = keyframe_gaps(&gw.http_url("/live/gop.flv"), Duration::from_secs(7)).await;
    assert!(live.iter().all(|g| *g > 4.0), "RTMP viewers get the copy: {live:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_frames_are_removed_for_mini_program_viewers_only() {
    let gw = Gateway::start();
    let api = gw.api();
    let _ffmpeg =
        Ffmpeg::publish(&gw.rtmp_url("/live/bf"), PublishOptions { bframes: true, ..PublishOptions::default() });
    api.wait_live("bf", Duration::from_secs(20)).await.expect("live");
    let count_b = |url: String| {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-rw_timeout", "5000000", "-read_intervals", "%+3", "-select_streams", "v"])
            .args(["-show_entries", "frame=pict_type", "-of", "csv=p=0", &url])
            .output()
            .expect("ffprobe runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let frames = text.lines().filter(|l| !l.trim().is_empty()).count();
        (frames, text.lines().filter(|l| l.trim() == "B").count())
    };
    let (frames, b) = tokio::task::spawn_blocking({
        let url = gw.http_url("/mini/bf.flv");
        move || count_b(url)
    })
    .await
    .unwrap();
    assert!(frames > 30, "ffprobe decoded frames from /mini: {frames}");
    assert_eq!(b, 0, "no B-frames toward the mini-program");
    let raw = api.get("/api/v1/streams/bf").await.unwrap().json.expect("json");
    assert_eq!(raw["conversions"][0]["reason"], "bframes", "{raw}");

    let (frames, b) = tokio::task::spawn_blocking({
        let url = gw.http_url("/live/bf.flv");
        move || count_b(url)
    })
    .await
    .unwrap();
    assert!(frames > 30 && b > 0, "RTMP viewers keep the B-frames: {frames} frames, {b} B");
}
