//! Recordings and clips (issue 13): a recording by the API across a publisher reconnect plays
//! end to end (its VOD playlist decoded by ffmpeg); a rule records a stream from publish to
//! unpublish; an unwritable directory fails the recording with a clear error and leaves the
//! stream alone; clips cut from the live window and from a recording last what was asked,
//! within one GOP.

use crate::common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use common::ffmpeg::ffprobe;
use common::{Ffmpeg, Gateway, PublishOptions, TempDir};
use serde_json::{json, Value};

const MEDIA: Duration = Duration::from_secs(20);

fn config(dir: &std::path::Path, extra: &str) -> String {
    format!(
        "recording: {{ dir: \"{0}/rec\", segment_seconds: 2 }}\nclips: {{ dir: \"{0}/clips\" }}\n{extra}",
        dir.display()
    )
}

/// ffprobe with frame counting of a finished file or VOD playlist: (duration, video frames,
/// audio frames).
async fn count(url: &str) -> anyhow::Result<(f64, u64, u64)> {
    let out = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries", "format=duration:stream=codec_type,nb_read_frames"])
        .args(["-of", "json", url])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out).await.context("ffprobe timed out")??;
    let json: Value =
        serde_json::from_slice(&out.stdout).with_context(|| String::from_utf8_lossy(&out.stderr).to_string())?;
    let frames = |kind: &str| -> u64 {
        json["streams"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["codec_type"] == kind))
            .and_then(|s| s["nb_read_frames"].as_str())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let duration = json["format"]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0);
    Ok((duration, frames("video"), frames("audio")))
}

/// `ffmpeg -v error -i URL -f null -`: decodes all of it; what it printed.
async fn decode_errors(url: &str) -> anyhow::Result<String> {
    let out = tokio::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i", url, "-f", "null", "-"])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out).await.context("ffmpeg timed out")??;
    Ok(String::from_utf8_lossy(&out.stderr).to_string())
}

async fn recordings(gw: &Gateway) -> anyhow::Result<Vec<Value>> {
    let reply = gw.api().get("/api/v1/recordings").await?;
    let json = reply.json.context("json")?;
    Ok(json["recordings"].as_array().cloned().unwrap_or_default())
}

async fn wait_recording(gw: &Gateway, stream: &str, state: &str, timeout: Duration) -> anyhow::Result<Value> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let all = recordings(gw).await?;
        if let Some(r) = all.iter().find(|r| r["stream"] == stream && r["state"] == state) {
            return Ok(r.clone());
        }
        if std::time::Instant::now() > deadline {
            bail!("no recording of {stream} in state {state}: {all:#?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_across_a_publisher_reconnect_plays_end_to_end() {
    let dir = TempDir::new("recording");
    let gw = Gateway::start_with(&["--reconnect-grace", "6"], Some(&config(dir.path(), "")));
    let api = gw.api();
    let url = gw.rtmp_url("/live/rec1");
    let publisher = Ffmpeg::publish(&url, PublishOptions::default());
    api.wait_live("rec1", MEDIA).await.expect("live");
    let started = api.post_json("/api/v1/streams/rec1/recordings", &json!({})).await.expect("post");
    assert_eq!(started.status, 201, "{}", started.body);
    let id = started.json.as_ref().and_then(|j| j["id"].as_str()).expect("id").to_string();
    let again = api.post_json("/api/v1/streams/rec1/recordings", &json!({})).await.expect("post");
    assert_eq!(again.status, 409, "one recording per stream: {}", again.body);
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The publisher goes away and comes back within the hub's reconnect grace.
    drop(publisher);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _publisher = Ffmpeg::publish(&url, PublishOptions::default());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stopped = api.delete(&format!("/api/v1/streams/rec1/recordings/{id}")).await.expect("delete");
    assert_eq!(stopped.status, 200, "{}", stopped.body);
    let r = stopped.json.expect("json");
    assert_eq!(r["state"], "stopped", "{r:#}");
    let listed = recordings(&gw).await.expect("list");
    let entry = listed.iter().find(|e| e["id"] == id.as_str()).unwrap_or_else(|| panic!("listed: {listed:#?}"));
    assert_eq!(entry["stream"], "rec1");
    let files = entry["files"].as_array().expect("files");
    assert!(files.len() >= 3, "2 s files over ~10 s: {entry:#}");
    assert_eq!(entry["codecs"], json!(["h264", "aac"]), "{entry:#}");
    // Every file downloads; the VOD playlist over them decodes end to end, across the
    // reconnect, with the pictures of the whole recording.
    for f in files {
        let (_, video, audio) = count(f["url"].as_str().unwrap()).await.expect("file");
        assert!(video > 0 && audio > 0, "{f:#}");
    }
    let vod = entry["url"].as_str().expect("url");
    let (duration, video, audio) = count(vod).await.expect("vod");
    println!("recording across a reconnect: {duration:.2} s, {video} pictures, {audio} audio frames");
    assert!(duration >= 7.0, "{duration} s recorded of ~10 s: {entry:#}");
    // The reconnect's gap (about 1.5 s with ffmpeg's start) has no pictures.
    assert!(video as f64 >= (duration - 2.0) * 30.0 * 0.9, "{video} pictures in {duration} s at 30 fps");
    assert!(audio > 0);
    let errors = decode_errors(vod).await.expect("decode");
    assert!(errors.trim().is_empty(), "ffmpeg decoding the recording: {errors}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_records_from_publish_to_unpublish_and_a_bad_directory_leaves_the_stream_alone() {
    let dir = TempDir::new("recording-rule");
    let gw = Gateway::start_with(
        &[],
        Some(&format!(
            "recording: {{ dir: \"{}/rec\", segment_seconds: 2, rules: [{{ streams: \"class-*\" }}] }}\n",
            dir.path().display()
        )),
    );
    let _api = gw.api();
    let opts = PublishOptions { duration: Some(Duration::from_secs(5)), ..Default::default() };
    let _a = Ffmpeg::publish(&gw.rtmp_url("/live/class-1"), opts.clone());
    let _b = Ffmpeg::publish(&gw.rtmp_url("/live/other"), opts);
    wait_recording(&gw, "class-1", "recording", MEDIA).await.expect("recording by rule");
    let done =
        wait_recording(&gw, "class-1", "stopped", Duration::from_secs(30)).await.expect("stopped with the stream");
    assert!(done["duration"].as_f64().unwrap_or(0.0) >= 3.0, "{done:#}");
    assert!(recordings(&gw).await.unwrap().iter().all(|r| r["stream"] != "other"), "no rule for `other`");
    let (_, video, _) = count(done["url"].as_str().unwrap()).await.expect("vod");
    assert!(video >= 90, "{video} pictures");

    // A directory that cannot be written: the recording fails clearly, the stream plays on.
    let bad = TempDir::new("recording-bad");
    let file = bad.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let gw = Gateway::start_with(&[], Some(&format!("recording: {{ dir: \"{}\" }}\n", file.display())));
    let _c = Ffmpeg::publish(&gw.rtmp_url("/live/keep"), PublishOptions::default());
    gw.api().wait_live("keep", MEDIA).await.expect("live");
    let refused = gw.api().post_json("/api/v1/streams/keep/recordings", &json!({})).await.unwrap();
    assert_eq!(refused.status, 507, "{}", refused.body);
    assert!(refused.body.contains("not-a-dir"), "names the path: {}", refused.body);
    let probe = ffprobe(&gw.http_url("/live/keep.flv"), MEDIA).await.expect("still plays");
    probe.expect_h264_aac(640, 360, 44100).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clips_last_what_was_asked_within_a_gop() {
    let dir = TempDir::new("clips");
    let gw = Gateway::start_with(&["--reconnect-grace", "6"], Some(&config(dir.path(), "")));
    let api = gw.api();
    // GOP 1 s (30 frames at 30 fps).
    let publisher = Ffmpeg::publish(&gw.rtmp_url("/live/clip1"), PublishOptions::default());
    api.wait_live("clip1", MEDIA).await.expect("live");
    let rec = api.post_json("/api/v1/streams/clip1/recordings", &json!({})).await.unwrap();
    assert_eq!(rec.status, 201, "{}", rec.body);
    let id = rec.json.as_ref().and_then(|j| j["id"].as_str()).unwrap().to_string();
    tokio::time::sleep(Duration::from_secs(8)).await;

    // From the live window: the last 4 s, and a from/to range in the past.
    let t = now();
    for (body, asked) in [
        (json!({"stream": "clip1", "last_seconds": 4}), 4.0),
        (json!({"stream": "clip1", "from": t - 6.0, "to": t - 3.5}), 2.5),
    ] {
        let reply = api.post_json("/api/v1/clips", &body).await.unwrap();
        assert_eq!(reply.status, 201, "{body}: {}", reply.body);
        let url = reply.json.as_ref().and_then(|j| j["url"].as_str()).expect("url").to_string();
        assert!(url.ends_with(".mp4"), "{url}");
        let (duration, video, audio) = count(&url).await.expect("clip");
        println!("clip {body}: {duration:.2} s, {video} pictures, {audio} audio frames");
        // The clip starts at the keyframe at or before `from` (up to a GOP, 1 s, early) and
        // its last picture lasts one frame past it: one GOP and a couple of frames.
        assert!((duration - asked).abs() <= 1.07, "asked {asked} s, got {duration} s");
        assert!(video > 0 && audio > 0);
        assert!(decode_errors(&url).await.unwrap().trim().is_empty());
    }

    // From the recording once the stream is gone (no window left).
    let stop = api.delete(&format!("/api/v1/streams/clip1/recordings/{id}")).await.unwrap();
    let r = stop.json.expect("json");
    drop(publisher);
    let first = r["files"][0]["start"].as_f64().expect("a file");
    let (from, to) = (first + 2.5, first + 5.5);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let reply = api.post_json("/api/v1/clips", &json!({"stream": "clip1", "from": from, "to": to})).await.unwrap();
    assert_eq!(reply.status, 201, "{}", reply.body);
    let url = reply.json.as_ref().and_then(|j| j["url"].as_str()).unwrap().to_string();
    let (duration, video, _) = count(&url).await.expect("clip from the recording");
    println!("clip from the recording: {duration:.2} s, {video} pictures");
    assert!((duration - 3.0).abs() <= 1.07, "asked 3 s, got {duration} s");

    // Bad requests say what is wrong.
    for (body, status) in [
        (json!({"stream": "clip1"}), 400),
        (json!({"stream": "clip1", "last_seconds": -1}), 400),
        (json!({"stream": "nothing-here", "last_seconds": 3}), 404),
        (json!({"stream": "clip1", "from": to, "to": from}), 400),
        (json!({"stream": "clip1", "from": from, "to": from + 5000.0}), 422),
    ] {
        let reply = api.post_json("/api/v1/clips", &body).await.unwrap();
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
    }
}

/// A disk that fills while recording (a 1 MiB tmpfs, mounted in the test's own namespaces):
/// the recording stops as `failed` with the reason, and the stream plays on.
#[test]
fn a_full_disk_fails_the_recording_and_the_stream_plays_on() {
    if !common::chromium::in_loopback_netns("a_full_disk_fails_the_recording_and_the_stream_plays_on") {
        return;
    }
    let dir = TempDir::new("recording-full");
    let disk = dir.path().join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&disk)
        .status()
        .expect("mount");
    assert!(mounted.success(), "mount a tmpfs in the test's mount namespace");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    runtime.block_on(async {
        let gw = Gateway::start_with(
            &[],
            Some(&format!("recording: {{ dir: \"{}\", segment_seconds: 2 }}\n", disk.display())),
        );
        let api = gw.api();
        let _publisher = Ffmpeg::publish(&gw.rtmp_url("/live/full"), PublishOptions::default());
        api.wait_live("full", MEDIA).await.expect("live");
        let started = api.post_json("/api/v1/streams/full/recordings", &json!({})).await.unwrap();
        assert_eq!(started.status, 201, "{}", started.body);
        let failed = wait_recording(&gw, "full", "failed", Duration::from_secs(40)).await.expect("fails when full");
        let error = failed["error"].as_str().unwrap_or_default().to_lowercase();
        assert!(error.contains("full") || error.contains("space"), "says why: {failed:#}");
        assert!(!failed["files"].as_array().unwrap().is_empty(), "keeps what was written: {failed:#}");
        // The stream is untouched: still live and readable.
        let probe = ffprobe(&gw.http_url("/live/full.flv"), MEDIA).await.expect("still plays");
        probe.expect_h264_aac(640, 360, 44100).unwrap();
        println!("recording failed as expected: {error}");
    });
    let _ = std::process::Command::new("umount").arg(&disk).status();
}
