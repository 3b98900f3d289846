//! How a viewer's stream starts, black-box: the first RTMP / HTTP-FLV viewer of a WHIP stream
//! (H.264 + Opus, converted to AAC for it) that has been live for a while with nobody
//! watching. The WHIP publishers here make keyframes only when asked (as browsers do), so a
//! gateway that did not ask would serve the stream's whole age as its "cached GOP".
//!
//! What must hold: the viewer is told about the audio at its start (ffprobe and ffmpeg find
//! it), both tracks start together and their timestamps never go back, the start is a recent
//! GOP (not seconds of burst), and the conversion's `frames_in` counts what it was fed.

use crate::common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use common::ffmpeg::ffprobe;
use common::webrtc::{VideoFormat, WhipOptions, WhipPublisher};
use common::{Api, Gateway, HttpFlvReader, TagKind, TempDir};
use serde_json::Value;

/// How long the streams are live with no viewer before the first one comes.
const ALONE: Duration = Duration::from_secs(11);
const MEDIA: Duration = Duration::from_secs(20);

/// A publisher that makes a keyframe at its start and then only on PLI/FIR, like Chromium.
fn keyframes_on_request_only() -> WhipOptions {
    WhipOptions {
        format: VideoFormat { keyframe_interval: 100_000, ..VideoFormat::default() },
        ..WhipOptions::default()
    }
}

async fn whip(gw: &Gateway, key: &str) -> WhipPublisher {
    match WhipPublisher::start(&gw.http_url(&format!("/whip/{key}")), keyframes_on_request_only()).await {
        Ok(p) => p,
        Err(e) => panic!("WHIP publish to {key}: {e:#}"),
    }
}

/// `(frames_in, frames_out)` of the stream's audio opus→aac conversion.
async fn audio_conversion_counts(api: &Api, key: &str) -> Option<(u64, u64)> {
    let reply = api.get(&format!("/api/v1/streams/{key}")).await.ok()?;
    let json = reply.json?;
    let conversions = json.get("conversions")?.as_array()?;
    let c = conversions.iter().find(|c| c.get("track").and_then(Value::as_str) == Some("audio"))?;
    Some((c.get("frames_in")?.as_u64()?, c.get("frames_out")?.as_u64()?))
}

/// `(codec_type, pts seconds)` of every packet of an FLV file, in file order.
async fn packets(file: &std::path::Path) -> anyhow::Result<Vec<(String, f64)>> {
    let output = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "packet=codec_type,pts_time", "-of", "json"])
        .arg(file)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(20), output).await.context("ffprobe timed out")??;
    if !output.status.success() {
        bail!("ffprobe {}: {}", file.display(), String::from_utf8_lossy(&output.stderr));
    }
    let json: Value = serde_json::from_slice(&output.stdout)?;
    let list = json.get("packets").and_then(Value::as_array).context("no packets")?;
    Ok(list
        .iter()
        .filter_map(|p| {
            let kind = p.get("codec_type")?.as_str()?.to_string();
            let pts = p.get("pts_time")?.as_str()?.parse().ok()?;
            Some((kind, pts))
        })
        .collect())
}

/// Each track's timestamps never go back.
fn monotonic(label: &str, stamps: &[(bool, f64)]) -> anyhow::Result<()> {
    for audio in [false, true] {
        let track: Vec<f64> = stamps.iter().filter(|(a, _)| *a == audio).map(|(_, t)| *t).collect();
        if let Some(w) = track.windows(2).find(|w| w[1] < w[0]) {
            bail!("{label}: {} timestamps go back: {} then {}", if audio { "audio" } else { "video" }, w[0], w[1]);
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_viewer_of_a_whip_stream_gets_audio_from_a_recent_start() {
    let gw = Gateway::start();
    let api = gw.api();
    let probed = ["probe1", "probe2", "probe3"];
    let keys: Vec<&str> = probed.iter().copied().chain(["copy", "flv"]).collect();
    let mut publishers = Vec::new();
    for key in &keys {
        publishers.push(whip(&gw, key).await);
    }
    let born = Instant::now();
    for (key, p) in keys.iter().zip(&publishers) {
        p.wait_connected(MEDIA).await.unwrap_or_else(|e| panic!("{key} connected: {e:#}"));
        api.wait_live(key, MEDIA).await.unwrap_or_else(|e| panic!("{key} live: {e:#}"));
    }
    tokio::time::sleep(ALONE.saturating_sub(born.elapsed())).await;

    // ffprobe as the first viewer, three times (a fresh key each): audio and video, once.
    for key in probed {
        let url = gw.rtmp_url(&format!("/live/{key}"));
        let probe = ffprobe(&url, Duration::from_secs(20)).await.unwrap_or_else(|e| panic!("{key}: {e:#}"));
        probe
            .expect_h264_aac(320, 240, 48_000)
            .unwrap_or_else(|e| panic!("first RTMP viewer of {key}: {e:#}\n{}", gw.stderr_tail()));
    }
    // frames_in counts the cached frames fed at the conversion's start: never fewer than out
    // (20 ms Opus frames in, 21.3 ms AAC frames out).
    let (frames_in, frames_out) =
        audio_conversion_counts(&api, "probe1").await.expect("probe1's audio conversion, within its grace");
    assert!(frames_out > 0 && frames_in >= frames_out, "frames_in {frames_in}, frames_out {frames_out}");

    // ffmpeg -c copy to a file: audio is in it, and both tracks start together.
    let dir = TempDir::new("egress-start");
    let file = dir.path().join("out.flv");
    let url = gw.rtmp_url("/live/copy");
    let copy = tokio::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-rw_timeout",
            "10000000",
            "-i",
            &url,
            "-t",
            "4",
            "-c",
            "copy",
            "-y",
        ])
        .arg(&file)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out =
        tokio::time::timeout(Duration::from_secs(30), copy).await.expect("ffmpeg copy finishes").expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg copy: {}", String::from_utf8_lossy(&out.stderr));
    let list = packets(&file).await.expect("packets of the copy");
    let first = |kind: &str| list.iter().find(|(k, _)| k == kind).map(|(_, t)| *t);
    let (video, audio) = (first("video").expect("video in the copy"), first("audio").expect("audio in the copy"));
    assert!((video - audio).abs() <= 0.3, "first video at {video} s, first audio at {audio} s");
    let stamps: Vec<(bool, f64)> = list.iter().map(|(k, t)| (k == "audio", *t)).collect();
    monotonic("ffmpeg copy", &stamps).unwrap();

    // HTTP-FLV: the header and the opening tags name the audio, and the start is recent.
    let mut reader = HttpFlvReader::connect(&gw.http_url("/live/flv.flv")).await.expect("HTTP-FLV");
    let mut tags = Vec::new();
    let reading = Instant::now();
    while reading.elapsed() < Duration::from_secs(3) {
        tags.push(reader.next_tag(Duration::from_secs(5)).await.expect("a tag"));
    }
    assert_eq!(reader.header_flags(), 5, "FLV header flags: audio and video");
    let opening: Vec<_> = tags.iter().take_while(|t| t.kind == TagKind::Script || t.sequence_header).collect();
    assert!(
        opening.iter().any(|t| t.kind == TagKind::Audio && t.codec == 10),
        "AAC sequence header before the first frame: {opening:?}"
    );
    let media: Vec<(bool, f64)> = tags
        .iter()
        .filter(|t| !t.sequence_header && t.kind != TagKind::Script)
        .map(|t| (t.kind == TagKind::Audio, f64::from(t.timestamp_ms) / 1000.0))
        .collect();
    monotonic("HTTP-FLV", &media).unwrap();
    let first_of = |audio: bool| media.iter().find(|(a, _)| *a == audio).map(|(_, t)| *t);
    let (v0, a0) = (first_of(false).expect("video"), first_of(true).expect("audio"));
    assert!((v0 - a0).abs() <= 0.3, "first video at {v0} s, first audio at {a0} s");
    // Read in real time for 3 s: a start one recent GOP back (keyframes asked for every 2 s)
    // puts the newest timestamp at most ~2 s ahead of the wall clock, not the stream's age.
    let newest = media.iter().map(|(_, t)| *t).fold(0.0, f64::max);
    let ahead = newest - reading.elapsed().as_secs_f64();
    assert!(ahead <= 2.5, "the viewer got {ahead:.1} s more than real time: its start was not a recent GOP");
    drop(publishers);
}
