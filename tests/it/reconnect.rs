//! A publisher that reconnects keeps its viewers (the hub's reconnect grace): real ffmpeg
//! readers (HTTP-FLV and RTMP, `-c copy` to files) keep running while an ffmpeg RTMP
//! publisher stops and another (at a different frame size) continues the same key; their files
//! cover both publishes on one monotonic timeline; after the grace without a publisher they
//! end; a kick ends a stream in its grace at once. An H5 WebSocket viewer (MPEG-1/MP2 TS from a
//! conversion fed both frame sizes) and a UDP output read by ffmpeg from its SDP do the same.
//! And a Chromium WHEP viewer's framesDecoded grows again right after the gap (that test
//! re-runs itself in a loopback network namespace, see `common::chromium::in_loopback_netns`;
//! run with `--nocapture` to see its figures). A teacher that drops from RTMP (H.264 + AAC)
//! and comes back over WHIP (H.264 + Opus) keeps its RTMP and HTTP-FLV readers: they are
//! re-planned onto an Opus→AAC conversion and their files have AAC that decodes after the gap.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use common::chromium::{in_loopback_netns, Chromium, PageServer};
use common::{wait_until, Api, Ffmpeg, Gateway, PublishOptions, TempDir};
use serde_json::Value;

/// The grace the gateway runs with here.
const GRACE: Duration = Duration::from_secs(4);
/// How long each publisher sends.
const PUBLISH: Duration = Duration::from_secs(4);
/// How long nobody publishes between the two.
const GAP: Duration = Duration::from_millis(1500);

fn gateway() -> Gateway {
    Gateway::start_with(&["--reconnect-grace", &GRACE.as_secs_f64().to_string()], None)
}

/// `ffmpeg -i URL -c copy -f flv FILE`: a real player that keeps what it got.
fn reader(url: &str, file: &Path) -> Ffmpeg {
    let args = ["-hide_banner", "-nostdin", "-loglevel", "warning", "-i", url, "-c", "copy", "-f", "flv", "-y"];
    let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    args.push(file.display().to_string());
    Ffmpeg::run(args, url)
}

/// An ffmpeg HTTP-FLV reader and an ffmpeg RTMP reader of `key`, writing into `dir`, once
/// both are attached: (HTTP-FLV reader, RTMP reader, HTTP-FLV file, RTMP file).
async fn attach_readers(gw: &Gateway, api: &Api, key: &str, dir: &Path) -> (Ffmpeg, Ffmpeg, PathBuf, PathBuf) {
    let flv_file = dir.join("http-flv.flv");
    let rtmp_file = dir.join("rtmp.flv");
    let flv = reader(&gw.http_url(&format!("/live/{key}.flv")), &flv_file);
    let rtmp = reader(&gw.rtmp_url(&format!("/live/{key}")), &rtmp_file);
    wait_until(Duration::from_secs(10), "both readers attached", || async {
        match consumers(api, key).await {
            2 => Ok(()),
            n => Err(format!("{n} consumers")),
        }
    })
    .await
    .unwrap();
    (flv, rtmp, flv_file, rtmp_file)
}

fn publish(gw: &Gateway, key: &str, width: u32, height: u32) -> Ffmpeg {
    let opts = PublishOptions { duration: Some(PUBLISH), width, height, ..PublishOptions::default() };
    Ffmpeg::publish(&gw.rtmp_url(&format!("/live/{key}")), opts)
}

/// The times of the audio frames ffprobe decodes from a file.
async fn decoded_audio(file: &Path) -> anyhow::Result<Vec<f64>> {
    let json = ffprobe_json(&["-select_streams", "a", "-show_entries", "frame=pts_time"], file).await?;
    let frames = json["frames"].as_array().context("frames")?;
    Ok(frames.iter().filter_map(|f| f["pts_time"].as_str()?.parse().ok()).collect())
}

/// The codec ffprobe names for a file's audio stream.
async fn audio_codec(file: &Path) -> anyhow::Result<String> {
    let json = ffprobe_json(&["-select_streams", "a", "-show_entries", "stream=codec_name"], file).await?;
    Ok(json["streams"][0]["codec_name"].as_str().unwrap_or("none").to_string())
}

async fn stream_json(api: &Api, key: &str) -> anyhow::Result<Option<Value>> {
    let reply = api.get(&format!("/api/v1/streams/{key}")).await?;
    if reply.status == 404 {
        return Ok(None);
    }
    reply.expect_success("get stream")?.json.context("stream JSON").map(Some)
}

async fn consumers(api: &Api, key: &str) -> u64 {
    match api.stream(key).await {
        Ok(Some(s)) => s.total_consumers(),
        _ => 0,
    }
}

/// One packet of a file, as ffprobe reads it.
#[derive(Debug)]
struct Packet {
    video: bool,
    dts: f64,
}

async fn ffprobe_json(args: &[&str], file: &Path) -> anyhow::Result<Value> {
    let output = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(file)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), output).await.context("ffprobe in time")??;
    if !output.status.success() {
        bail!("ffprobe {}: {}", file.display(), String::from_utf8_lossy(&output.stderr));
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

async fn packets(file: &Path) -> anyhow::Result<Vec<Packet>> {
    let json = ffprobe_json(&["-show_entries", "packet=codec_type,dts_time"], file).await?;
    let list = json["packets"].as_array().context("packets")?;
    Ok(list
        .iter()
        .filter_map(|p| {
            let dts = p["dts_time"].as_str()?.parse().ok()?;
            Some(Packet { video: p["codec_type"] == "video", dts })
        })
        .collect())
}

/// The decoded frame sizes, in order, each with how many frames had it.
async fn frame_sizes(file: &Path) -> anyhow::Result<Vec<((u64, u64), usize)>> {
    let json = ffprobe_json(&["-select_streams", "v", "-show_entries", "frame=width,height"], file).await?;
    let mut runs: Vec<((u64, u64), usize)> = Vec::new();
    for f in json["frames"].as_array().context("frames")? {
        let size = (f["width"].as_u64().unwrap_or(0), f["height"].as_u64().unwrap_or(0));
        match runs.last_mut() {
            Some((s, n)) if *s == size => *n += 1,
            _ => runs.push((size, 1)),
        }
    }
    Ok(runs)
}

/// What one reader's file shows: its video span, the largest gap between two video packets and
/// what came before and after it, and the frame sizes decoded.
#[derive(Debug)]
struct Coverage {
    span: f64,
    gap: f64,
    before_gap: f64,
    after_gap: f64,
    audio_span: f64,
    sizes: Vec<((u64, u64), usize)>,
}

async fn coverage(file: &Path) -> anyhow::Result<Coverage> {
    let packets = packets(file).await?;
    let video: Vec<f64> = packets.iter().filter(|p| p.video).map(|p| p.dts).collect();
    let audio: Vec<f64> = packets.iter().filter(|p| !p.video).map(|p| p.dts).collect();
    if video.len() < 30 || audio.len() < 30 {
        bail!("too little media in {}: {} video, {} audio packets", file.display(), video.len(), audio.len());
    }
    for (kind, list) in [("video", &video), ("audio", &audio)] {
        if let Some(w) = list.windows(2).find(|w| w[1] < w[0]) {
            bail!("{kind} dts goes back in {}: {} then {}", file.display(), w[0], w[1]);
        }
    }
    let (at, gap) = video.windows(2).enumerate().map(|(i, w)| (i, w[1] - w[0])).fold((0, 0.0), |best, (i, g)| {
        if g > best.1 {
            (i, g)
        } else {
            best
        }
    });
    Ok(Coverage {
        span: video[video.len() - 1] - video[0],
        gap,
        before_gap: video[at] - video[0],
        after_gap: video[video.len() - 1] - video[at + 1],
        audio_span: audio[audio.len() - 1] - audio[0],
        sizes: frame_sizes(file).await?,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_keep_running_across_a_publisher_restart_and_end_after_the_grace() {
    let gw = gateway();
    let api = gw.api();
    let dir = TempDir::new("reconnect");
    let mut first = publish(&gw, "k", 640, 360);
    api.wait_live("k", Duration::from_secs(15)).await.expect("first publish live");
    let (mut flv, mut rtmp, flv_file, rtmp_file) = attach_readers(&gw, &api, "k", dir.path()).await;

    // The first publisher finishes: the stream waits for it, readers stay attached.
    first.wait_exit(PUBLISH + Duration::from_secs(5)).expect("first publisher ends by itself");
    let left = Instant::now();
    let waiting = wait_until(Duration::from_secs(3), "the stream waiting for its publisher", || async {
        let s = stream_json(&api, "k").await.map_err(|e| e.to_string())?.ok_or("stream gone")?;
        match s["reconnecting"].as_bool() {
            Some(true) => Ok(s),
            _ => Err(s.to_string()),
        }
    })
    .await
    .unwrap();
    tokio::time::sleep(GAP.saturating_sub(left.elapsed())).await;
    assert_eq!(consumers(&api, "k").await, 2, "viewers stay through the gap: {waiting}");
    assert!(flv.is_running(), "HTTP-FLV reader ended in the gap: {}", flv.stderr_tail());
    assert!(rtmp.is_running(), "RTMP reader ended in the gap: {}", rtmp.stderr_tail());

    // Another publisher, at another frame size, continues the stream.
    let mut second = publish(&gw, "k", 320, 240);
    let resumed = Instant::now();
    let wall_gap = left.elapsed();
    wait_until(Duration::from_secs(10), "the stream continued", || async {
        let s = stream_json(&api, "k").await.map_err(|e| e.to_string())?.ok_or("stream gone")?;
        match (s["reconnecting"].as_bool(), s["reconnects"].as_u64()) {
            (Some(false), Some(1)) if s["video"]["width"] == 320 => Ok(()),
            _ => Err(s.to_string()),
        }
    })
    .await
    .unwrap();
    second.wait_exit(PUBLISH + Duration::from_secs(5)).expect("second publisher ends by itself");
    let second_left = Instant::now();
    assert!(flv.is_running() && rtmp.is_running(), "readers run until the grace is over");

    // No publisher within the grace: the stream ends and so do the readers.
    let flv_exit = flv.wait_exit(GRACE + Duration::from_secs(6)).expect("HTTP-FLV reader ends after the grace");
    let ended_after = second_left.elapsed();
    rtmp.wait_exit(Duration::from_secs(5)).expect("RTMP reader ends after the grace");
    assert!(flv_exit.success(), "HTTP-FLV reader: {}", flv.stderr_tail());
    assert!(
        ended_after >= GRACE - Duration::from_millis(500),
        "viewers ended {ended_after:?} after the publisher, before the grace"
    );
    assert!(api.stream("k").await.unwrap().is_none(), "stream gone after the grace");

    for file in [&flv_file, &rtmp_file] {
        let c = coverage(file).await.unwrap();
        let figures = format!(
            "{}: {c:?}; wall-clock gap {wall_gap:?}, second publish {:?}",
            file.display(),
            second_left - resumed
        );
        // One timeline, with the gap in it: the first publish, the pause, all of the second.
        assert!(c.gap > 0.8 * GAP.as_secs_f64() && c.gap < wall_gap.as_secs_f64() + 3.0, "{figures}");
        assert!(c.before_gap > 1.0, "{figures}");
        assert!(c.after_gap > PUBLISH.as_secs_f64() - 1.0, "{figures}");
        assert!(c.span >= c.before_gap + c.gap + c.after_gap - 0.01, "{figures}");
        assert!(c.audio_span > c.span - 1.0, "audio covers both publishes: {figures}");
        // The new sequence header reached the reader: both sizes decode, the new one last.
        let sizes: Vec<_> = c.sizes.iter().map(|(s, _)| *s).collect();
        assert_eq!(sizes, [(640, 360), (320, 240)], "{figures}");
        println!("{figures}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kick_ends_a_stream_at_once_even_in_its_grace() {
    let gw = gateway();
    let api = gw.api();
    let dir = TempDir::new("reconnect-kick");

    // Kicked while publishing: no grace.
    let _publisher = Ffmpeg::publish(&gw.rtmp_url("/live/kicked"), PublishOptions::default());
    api.wait_live("kicked", Duration::from_secs(15)).await.unwrap();
    let mut viewer = reader(&gw.http_url("/live/kicked.flv"), &dir.path().join("a.flv"));
    wait_until(Duration::from_secs(10), "viewer attached", || async {
        (consumers(&api, "kicked").await == 1).then_some(()).ok_or("no viewer".to_string())
    })
    .await
    .unwrap();
    let kicked = Instant::now();
    api.delete_stream("kicked").await.unwrap().expect_success("kick").unwrap();
    viewer.wait_exit(GRACE - Duration::from_secs(1)).expect("the viewer ends before any grace would");
    let viewer_ended = kicked.elapsed();
    assert!(api.stream("kicked").await.unwrap().is_none(), "no stream waiting after a kick");

    // Kicked while waiting for its publisher: ends at once too.
    let mut publisher = publish(&gw, "idle", 640, 360);
    api.wait_live("idle", Duration::from_secs(15)).await.unwrap();
    let mut viewer = reader(&gw.rtmp_url("/live/idle"), &dir.path().join("b.flv"));
    wait_until(Duration::from_secs(10), "viewer attached", || async {
        (consumers(&api, "idle").await == 1).then_some(()).ok_or("no viewer".to_string())
    })
    .await
    .unwrap();
    publisher.wait_exit(PUBLISH + Duration::from_secs(5)).expect("publisher ends by itself");
    wait_until(Duration::from_secs(3), "reconnecting", || async {
        let s = stream_json(&api, "idle").await.map_err(|e| e.to_string())?.ok_or("gone")?;
        (s["reconnecting"] == true).then_some(()).ok_or(s.to_string())
    })
    .await
    .unwrap();
    assert!(viewer.is_running(), "the viewer waits in the grace");
    let kicked = Instant::now();
    api.delete_stream("idle").await.unwrap().expect_success("kick in grace").unwrap();
    viewer.wait_exit(GRACE - Duration::from_secs(1)).expect("the viewer ends at once");
    println!("viewer ended {viewer_ended:?} after a kick while live, {:?} after a kick in the grace", kicked.elapsed());
    assert!(api.stream("idle").await.unwrap().is_none());

    // The key is free for a new stream right away.
    let _again = publish(&gw, "idle", 640, 360);
    let s = api.wait_live("idle", Duration::from_secs(15)).await.unwrap();
    assert_eq!(stream_json(&api, "idle").await.unwrap().unwrap()["reconnects"], 0, "a new stream: {s:?}");
}

/// A Chromium WHEP viewer of an RTMP publisher (AAC converted to Opus for it) whose publisher
/// drops (killed, as a lost connection) and comes back 1.5 s later at another frame size: the
/// PeerConnection stays up and framesDecoded grows again, from a keyframe, at the new size.
#[test]
fn chromium_whep_viewer_keeps_decoding_across_a_publisher_restart() {
    const NAME: &str = "chromium_whep_viewer_keeps_decoding_across_a_publisher_restart";
    let figures_file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{NAME}.txt"));
    if !in_loopback_netns(NAME) {
        // The re-run inside the namespace left its measurements here.
        println!("{}", std::fs::read_to_string(&figures_file).unwrap_or_default());
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    match runtime.block_on(whep_across_a_restart()) {
        Ok(figures) => {
            println!("{figures}");
            let _ = std::fs::write(&figures_file, figures);
        }
        Err(error) => panic!("{error:#}"),
    }
}

async fn whep_across_a_restart() -> anyhow::Result<String> {
    const BROWSER: Duration = Duration::from_secs(40);
    let gw = gateway();
    let api = gw.api();
    let url = gw.rtmp_url("/live/class");
    let first = Ffmpeg::publish(&url, PublishOptions::default());
    api.wait_live("class", BROWSER).await?;
    let pages = PageServer::start().await?;
    let whep = gw.http_url("/whep/class");
    let _viewer = Chromium::start(&pages.url("whep.html", &[("whep", &whep), ("id", "view")]))?;
    let video = |s: &common::chromium::PageStats| s.inbound("video");
    pages.wait_stats("view", BROWSER, "60 frames decoded", |s| video(s).frames_decoded > 60).await?;

    // The teacher's publisher goes away.
    drop(first);
    let dropped = Instant::now();
    tokio::time::sleep(GAP).await;
    let before = pages.latest_stats("view").context("stats before the restart")?;
    let stream = api.stream("class").await?.context("the stream waits in its grace")?;
    assert_eq!(stream.consumers.get("webrtc"), Some(&1), "the WHEP viewer stays attached: {:?}", stream.consumers);

    let _second = Ffmpeg::publish(&url, PublishOptions { width: 320, height: 240, ..PublishOptions::default() });
    let resumed = Instant::now();
    let base = video(&before).frames_decoded;
    let keys = video(&before).key_frames_decoded;
    let again = pages
        .wait_stats("view", Duration::from_secs(20), "frames decoded again after the restart", |s| {
            video(s).frames_decoded > base + 5
        })
        .await?;
    let first_growth = resumed.elapsed();
    let after = pages
        .wait_stats("view", Duration::from_secs(20), "60 more frames at 320x240", |s| {
            video(s).frames_decoded > base + 60 && video(s).frame_width == 320
        })
        .await?;
    let steady = resumed.elapsed();
    let figures = format!(
        "WHEP(Chromium) across an RTMP publisher restart (gap {:?}): framesDecoded {} before, {} at the first report that grew ({:?} after the new publisher started), {} after {:?}; keyframes decoded {} -> {}; size {}x{} -> {}x{}; PeerConnection {}",
        resumed - dropped,
        base,
        video(&again).frames_decoded,
        first_growth,
        video(&after).frames_decoded,
        steady,
        keys,
        video(&after).key_frames_decoded,
        video(&before).frame_width,
        video(&before).frame_height,
        video(&after).frame_width,
        video(&after).frame_height,
        after.connection_state,
    );
    assert_eq!(after.connection_state, "connected", "{figures}");
    assert!(video(&after).key_frames_decoded > keys, "a keyframe after the gap: {figures}");
    assert!(first_growth < Duration::from_secs(6), "decoding resumes promptly: {figures}");
    assert!(video(&after).packets_received > video(&before).packets_received, "{figures}");
    Ok(figures)
}

/// `N` consecutive UDP ports on 127.0.0.1 that were free a moment ago (the first is even).
fn free_udp_ports(n: u16) -> u16 {
    for _ in 0..200 {
        let Ok(probe) = std::net::UdpSocket::bind("127.0.0.1:0") else { continue };
        let Ok(addr) = probe.local_addr() else { continue };
        let first = addr.port() & !1;
        drop(probe);
        if first.checked_add(n).is_none() {
            continue;
        }
        let held: Vec<_> = (first..first + n).map(|p| std::net::UdpSocket::bind(("127.0.0.1", p))).collect();
        if held.iter().all(Result::is_ok) {
            return first;
        }
    }
    panic!("no {n} consecutive free UDP ports");
}

/// An H5 WebSocket viewer (as JSMpeg reads it): keeps every binary message until the socket
/// closes; returns the bytes and the close code it got.
fn h5_viewer(url: String) -> tokio::task::JoinHandle<anyhow::Result<(Vec<u8>, Option<u16>)>> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    tokio::spawn(async move {
        let (mut ws, _) =
            tokio::time::timeout(Duration::from_secs(15), tokio_tungstenite::connect_async(&url)).await??;
        let mut bytes = Vec::new();
        while let Some(msg) = ws.next().await {
            match msg? {
                Message::Binary(b) => bytes.extend_from_slice(&b),
                Message::Close(frame) => return Ok((bytes, frame.map(|f| u16::from(f.code)))),
                _ => {}
            }
        }
        Ok((bytes, None))
    })
}

/// `ffmpeg -i SDP -c copy -f mpegts FILE`: a real RTP receiver of a UDP output.
fn udp_reader(sdp: &Path, file: &Path) -> Ffmpeg {
    let args = ["-hide_banner", "-nostdin", "-loglevel", "warning", "-protocol_whitelist", "file,udp,rtp", "-i"];
    let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    args.push(sdp.display().to_string());
    args.extend(["-c", "copy", "-f", "mpegts", "-y"].map(String::from));
    args.push(file.display().to_string());
    Ffmpeg::run(args, "udp-output reader")
}

/// An H5 WebSocket viewer (MPEG-TS, a conversion to MPEG-1/MP2) and a UDP output read by ffmpeg
/// from its SDP both keep running while the RTMP publisher restarts at another frame size: each
/// output decodes both publishes, the new size last, on a monotonic timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h5_websocket_and_udp_readers_keep_running_across_a_publisher_restart() {
    let gw = gateway();
    let api = gw.api();
    let dir = TempDir::new("reconnect-h5-udp");
    let mut first = publish(&gw, "k", 640, 360);
    api.wait_live("k", Duration::from_secs(15)).await.expect("first publish live");
    let ws = h5_viewer(gw.http_url("/h5/k").replacen("http://", "ws://", 1));
    let port = free_udp_ports(4);
    let body = serde_json::json!({ "host": "127.0.0.1", "port": port });
    let reply = api.post_json("/api/v1/streams/k/udp-outputs", &body).await.expect("POST udp-outputs");
    assert_eq!(reply.status, 201, "{}", reply.body);
    let sdp = reply.json.as_ref().and_then(|j| j["sdp"].as_str()).expect("sdp").to_string();
    let sdp_path = dir.path().join("receiver.sdp");
    std::fs::write(&sdp_path, &sdp).expect("write sdp");
    let udp_file = dir.path().join("udp.ts");
    let mut udp = udp_reader(&sdp_path, &udp_file);
    wait_until(Duration::from_secs(10), "both viewers attached", || async {
        match consumers(&api, "k").await {
            2 => Ok(()),
            n => Err(format!("{n} consumers")),
        }
    })
    .await
    .unwrap();

    first.wait_exit(PUBLISH + Duration::from_secs(5)).expect("first publisher ends by itself");
    tokio::time::sleep(GAP).await;
    assert_eq!(consumers(&api, "k").await, 2, "viewers stay through the gap");
    assert!(!ws.is_finished(), "H5 viewer ended in the gap");
    assert!(udp.is_running(), "UDP reader ended in the gap: {}", udp.stderr_tail());

    // Not at another sample rate: the UDP output's SDP names the first one's RTP clock rate, and
    // ffmpeg then reads audio timestamps that go back (see the report of the `replan` branch).
    let mut second = publish(&gw, "k", 320, 240);
    second.wait_exit(PUBLISH + Duration::from_secs(8)).expect("second publisher ends by itself");
    assert!(!ws.is_finished() && udp.is_running(), "viewers run until the grace is over");

    // After the grace the H5 viewer gets a Close; the UDP reader is stopped by us (RTP has no end).
    let (bytes, close) = tokio::time::timeout(GRACE + Duration::from_secs(6), ws)
        .await
        .expect("H5 viewer ends after the grace")
        .expect("task")
        .expect("H5 viewer");
    assert!(close.is_some(), "the H5 viewer got a Close frame");
    drop(udp);
    let ws_file = dir.path().join("h5.ts");
    std::fs::write(&ws_file, &bytes).expect("write h5.ts");

    for file in [&ws_file, &udp_file] {
        let c = coverage(file).await.unwrap();
        let figures = format!("{}: {c:?}", file.display());
        assert!(c.gap > 0.8 * GAP.as_secs_f64(), "{figures}");
        assert!(c.before_gap > 1.0, "{figures}");
        assert!(c.after_gap > PUBLISH.as_secs_f64() - 1.5, "{figures}");
        assert!(c.audio_span > c.span - 1.0, "audio covers both publishes: {figures}");
        let sizes: Vec<_> = c.sizes.iter().map(|(s, _)| *s).collect();
        assert_eq!(sizes, [(640, 360), (320, 240)], "both publishes decode, the new size last: {figures}");
        println!("{figures}");
    }
    // The H5 viewer's MP2 (from the AAC->MP2 conversion) decodes after the gap.
    let c = coverage(&ws_file).await.unwrap();
    let times = decoded_audio(&ws_file).await.unwrap();
    let resumed_at = times.first().copied().unwrap_or(0.0) + c.before_gap + c.gap;
    let after = times.iter().filter(|t| **t >= resumed_at).count();
    println!("H5 MP2 across the restart: {} audio frames decoded, {after} after the gap", times.len());
    assert!(
        after as f64 > 0.6 * PUBLISH.as_secs_f64() * 44_100.0 / 1152.0,
        "MP2 decodes after the gap: {after} frames"
    );
}

/// A UDP output's receiver read its SDP once, and that SDP fixes the AAC clock rate and
/// config: a teacher who comes back at 48 kHz (after 44.1 kHz) ends the output with a reason
/// that says so, and a new output of the same stream describes the new rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_output_ends_clearly_when_the_returning_teacher_changes_the_sample_rate() {
    let gw = gateway();
    let api = gw.api();
    let mut first = publish(&gw, "k", 640, 360);
    api.wait_live("k", Duration::from_secs(15)).await.expect("first publish live");
    let body = serde_json::json!({ "host": "127.0.0.1", "port": free_udp_ports(4) });
    let reply = api.post_json("/api/v1/streams/k/udp-outputs", &body).await.expect("POST udp-outputs");
    assert_eq!(reply.status, 201, "{}", reply.body);
    let sdp =
        |reply: &common::Reply| reply.json.as_ref().and_then(|j| j["sdp"].as_str()).unwrap_or_default().to_string();
    assert!(sdp(&reply).contains("MPEG4-GENERIC/44100/1"), "{}", sdp(&reply));
    first.wait_exit(PUBLISH + Duration::from_secs(5)).expect("first publisher ends by itself");
    tokio::time::sleep(GAP).await;
    assert_eq!(consumers(&api, "k").await, 1, "the output stays through the gap");

    let url = gw.rtmp_url("/live/k");
    let opts = PublishOptions { duration: Some(PUBLISH * 2), ..PublishOptions::default() };
    let args = common::ffmpeg::publish_args(&url, &opts)
        .into_iter()
        .map(|a| a.replace("sample_rate=44100", "sample_rate=48000"))
        .collect();
    let _second = Ffmpeg::run(args, &url);
    wait_until(Duration::from_secs(10), "the UDP output ended", || async {
        match consumers(&api, "k").await {
            0 => Ok(()),
            n => Err(format!("{n} consumers")),
        }
    })
    .await
    .unwrap();
    let log = gw.stderr_tail();
    let ended = log.lines().find(|l| l.contains("UDP output ended")).unwrap_or_default().to_string();
    assert!(ended.contains("48000 Hz") && ended.contains("44100 Hz") && ended.contains("again"), "{ended}\n{log}");
    assert!(stream_json(&api, "k").await.unwrap().is_some(), "the stream itself goes on");

    let body = serde_json::json!({ "host": "127.0.0.1", "port": free_udp_ports(4) });
    let again = api.post_json("/api/v1/streams/k/udp-outputs", &body).await.expect("POST udp-outputs");
    assert_eq!(again.status, 201, "{}", again.body);
    assert!(sdp(&again).contains("MPEG4-GENERIC/48000/1"), "{}", sdp(&again));
}

/// A teacher publishing over RTMP (ffmpeg, H.264 + AAC) drops and comes back over WHIP (our
/// WHIP client, H.264 + Opus) on the same key: the attached HTTP-FLV and RTMP readers are
/// re-planned (their copied AAC becomes an Opus->AAC conversion), stay attached, and their
/// files have AAC that decodes after the gap, on monotonic timestamps, at the new frame size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_and_flv_readers_keep_aac_when_the_teacher_returns_over_whip() {
    use common::webrtc::{WhipOptions, WhipPublisher};
    let gw = gateway();
    let api = gw.api();
    let dir = TempDir::new("reconnect-whip");
    let mut first = publish(&gw, "t", 640, 360);
    api.wait_live("t", Duration::from_secs(15)).await.expect("RTMP publish live");
    let (mut flv, mut rtmp, flv_file, rtmp_file) = attach_readers(&gw, &api, "t", dir.path()).await;
    first.wait_exit(PUBLISH + Duration::from_secs(5)).expect("RTMP publisher ends by itself");
    tokio::time::sleep(GAP).await;
    assert_eq!(consumers(&api, "t").await, 2, "viewers stay through the gap");

    let whip = WhipPublisher::start(&gw.http_url("/whip/t"), WhipOptions::default()).await.expect("WHIP publish");
    let resumed = Instant::now();
    // The readers' audio now comes from an Opus->AAC conversion that produces.
    let converted = wait_until(Duration::from_secs(15), "an opus->aac conversion for the readers", || async {
        let s = stream_json(&api, "t").await.map_err(|e| e.to_string())?.ok_or("stream gone")?;
        let conversions = s["conversions"].as_array().cloned().unwrap_or_default();
        let c = conversions.iter().find(|c| c["from"] == "opus" && c["to"] == "aac").ok_or(s.to_string())?;
        match (s["reconnects"].as_u64(), c["consumers"].as_u64(), c["frames_out"].as_u64()) {
            (Some(1), Some(2), Some(n)) if n > 50 => Ok(c.clone()),
            _ => Err(s.to_string()),
        }
    })
    .await
    .unwrap();
    let replanned_after = resumed.elapsed();
    tokio::time::sleep(PUBLISH.saturating_sub(replanned_after)).await;
    assert!(flv.is_running() && rtmp.is_running(), "readers stay: {} / {}", flv.stderr_tail(), rtmp.stderr_tail());
    let whip_for = resumed.elapsed();
    // The teacher leaves for good: a kick ends the stream (and the readers) at once.
    drop(whip);
    api.delete_stream("t").await.unwrap();
    for (name, reader) in [("HTTP-FLV", &mut flv), ("RTMP", &mut rtmp)] {
        let exit = reader.wait_exit(Duration::from_secs(GRACE.as_secs() + 6)).expect("reader ends");
        assert!(exit.success(), "{name} reader: {}", reader.stderr_tail());
    }

    for file in [&flv_file, &rtmp_file] {
        let c = coverage(file).await.unwrap();
        let times = decoded_audio(file).await.unwrap();
        let codec = audio_codec(file).await.unwrap();
        let resumed_at = times.first().copied().unwrap_or(0.0) + c.before_gap + c.gap;
        let after = times.iter().filter(|t| **t >= resumed_at).count();
        let figures = format!(
            "{}: {c:?}; audio {codec}, {} frames decoded, {after} after the gap; conversion {converted} after {replanned_after:?}; WHIP for {whip_for:?}",
            file.display(),
            times.len()
        );
        println!("{figures}");
        assert_eq!(codec, "aac", "{figures}");
        assert!(c.gap > 0.8 * GAP.as_secs_f64() && c.before_gap > 1.0, "{figures}");
        // AAC (1024 samples a frame at 48 kHz) over most of the WHIP publish.
        assert!(after as f64 > 0.5 * whip_for.as_secs_f64() * 48_000.0 / 1024.0, "AAC after the gap: {figures}");
        assert!(c.audio_span > c.span - 1.5, "audio covers both publishes: {figures}");
        let sizes: Vec<_> = c.sizes.iter().map(|(s, _)| *s).collect();
        assert_eq!(sizes.last(), Some(&(320, 240)), "the WHIP publisher's picture last: {figures}");
    }
}
