//! Real browsers through the gateway: Debian's headless Chromium (fake camera and microphone)
//! publishes by WHIP and another Chromium page plays by WHEP; and a Chromium WHEP viewer of an
//! ffmpeg RTMP publisher (AAC converted to Opus by the gateway; with B-frames, the video
//! re-encoded for the browser). Browsers and gateway run inside
//! one loopback-only network namespace (each test re-runs itself there, see
//! `common::chromium::in_loopback_netns`); the pages POST their `getStats()` once a second.
//!
//! Besides asserting, each test measures the viewer's start: time from the WHEP answer to the
//! first decoded frame, the frame rate after that, keyframes decoded and PLIs sent, and the
//! publisher's PLIs received. The figures are printed by the outer test (run with
//! `--nocapture` to see them on success) and kept in `$CARGO_TARGET_TMPDIR`.

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use common::chromium::{in_loopback_netns, Chromium, PageReport, PageServer, PageStats};
use common::ffmpeg::probe_until_h264_aac;
use common::webrtc::{WhepOptions, WhepViewer};
use common::{Api, BackgroundReader, Ffmpeg, Gateway, PublishOptions};
use serde_json::Value;

/// Bound on each wait for a page (answer, media, stats).
const BROWSER: Duration = Duration::from_secs(40);
/// How long the viewer keeps playing after the media condition, to measure its frame rate.
const STEADY: Duration = Duration::from_secs(6);

/// Where the inner run leaves its measurements for the outer run to print.
fn measurements_file(test_name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("webrtc_browser-{test_name}.txt"))
}

/// Runs `body` inside the loopback namespace; outside, re-runs the test there and prints what
/// the inner run measured.
fn run_in_netns<F>(test_name: &str, body: impl FnOnce() -> F)
where
    F: std::future::Future<Output = anyhow::Result<String>>,
{
    let file = measurements_file(test_name);
    if !in_loopback_netns(test_name) {
        match std::fs::read_to_string(&file) {
            Ok(text) => println!("--- {test_name}: measurements ---\n{text}"),
            Err(e) => println!("{test_name}: no measurements in {} ({e})", file.display()),
        }
        return;
    }
    let _ = std::fs::remove_file(&file);
    // The only test in this process (the re-run is `--exact --test-threads=1`): the gateway's
    // WebRTC sessions log their keyframe requests at debug level.
    if std::env::var_os("GATEWAY_RUST_LOG").is_none() {
        std::env::set_var("GATEWAY_RUST_LOG", "info,interop_gateway::protocols::webrtc=debug");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    match runtime.block_on(body()) {
        Ok(text) => {
            println!("{text}");
            if let Err(e) = std::fs::write(&file, &text) {
                println!("cannot keep the measurements in {}: {e}", file.display());
            }
        }
        Err(error) => panic!("{error:#}"),
    }
}

/// A page's reports in order, with the page's own clock (`t`, ms since the epoch).
struct PageLog {
    reports: Vec<PageReport>,
}

impl PageLog {
    fn of(pages: &PageServer, id: &str) -> PageLog {
        PageLog { reports: pages.reports().into_iter().filter(|r| r.id == id).collect() }
    }

    fn time(report: &PageReport) -> Option<f64> {
        report.raw.get("t").and_then(Value::as_f64)
    }

    /// The page time of the first `name` event.
    fn event_time(&self, name: &str) -> Option<f64> {
        self.reports.iter().find(|r| r.event.as_deref() == Some(name)).and_then(Self::time)
    }

    /// `(page time, stats)` of every stats report.
    fn stats(&self) -> Vec<(f64, &PageStats)> {
        self.reports.iter().filter_map(|r| Some((Self::time(r)?, r.stats.as_ref()?))).collect()
    }
}

/// How a viewer's video started and ran, from its stats reports (one a second).
#[derive(Debug)]
struct Start {
    /// From the WHEP answer to the first report with a decoded frame (reports come once a
    /// second), and to the report before it (the first frame came in between).
    first_frame_ms: Option<f64>,
    before_first_frame_ms: Option<f64>,
    /// Frames decoded per second from the first report with frames to the last.
    fps: Option<f64>,
    frames: u64,
    key_frames: u64,
    plis_sent: u64,
    audio_packets: u64,
    /// framesDecoded per report, to see stalls.
    frames_per_report: Vec<u64>,
}

fn viewer_start(log: &PageLog) -> Start {
    let answered = log.event_time("answered");
    let stats = log.stats();
    let with_frames: Vec<_> = stats.iter().filter(|(_, s)| s.inbound("video").frames_decoded > 0).collect();
    let first_frame_ms = match (answered, with_frames.first()) {
        (Some(a), Some((t, _))) => Some(t - a),
        _ => None,
    };
    let before_first_frame_ms = match (answered, first_frame_ms) {
        (Some(a), Some(first)) => {
            let without = stats.iter().filter(|(t, _)| *t - a < first).map(|(t, _)| t - a).fold(0.0, f64::max);
            Some(without)
        }
        _ => None,
    };
    let fps = match (with_frames.first(), with_frames.last()) {
        (Some((t0, s0)), Some((t1, s1))) if t1 > t0 => {
            let frames = s1.inbound("video").frames_decoded - s0.inbound("video").frames_decoded;
            Some(frames as f64 * 1000.0 / (t1 - t0))
        }
        _ => None,
    };
    let last = stats.last().map(|(_, s)| s.inbound("video")).unwrap_or_default();
    let audio = stats.last().map(|(_, s)| s.inbound("audio")).unwrap_or_default();
    Start {
        first_frame_ms,
        before_first_frame_ms,
        fps,
        frames: last.frames_decoded,
        key_frames: last.key_frames_decoded,
        plis_sent: last.pli_count,
        audio_packets: audio.packets_received,
        frames_per_report: stats.iter().map(|(_, s)| s.inbound("video").frames_decoded).collect(),
    }
}

/// The gateway's log lines about WebRTC sessions and keyframes.
fn webrtc_log_lines(gw: &Gateway) -> String {
    let tail = gw.stderr_tail();
    let lines: Vec<&str> = tail
        .lines()
        .filter(|l| {
            ["WHIP", "WHEP", "keyframe", "PLI", "receiving", "conversion", "warn", "WARN", "ERROR"]
                .iter()
                .any(|k| l.contains(k))
        })
        .collect();
    let start = lines.len().saturating_sub(40);
    lines[start..].join("\n")
}

/// `(track, from, to)` of the conversions the API shows for `key`.
async fn conversions(api: &Api, key: &str) -> anyhow::Result<Vec<(String, String, String)>> {
    let stream = api.stream(key).await?.ok_or_else(|| anyhow::anyhow!("stream {key} not found"))?;
    Ok(stream.conversions.into_iter().map(|c| (c.track, c.from, c.to)).collect())
}

fn triples(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    list.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect()
}

/// Waits until the WHEP page `id` decoded more than 30 frames and got more than 20 audio
/// packets, lets it play `STEADY` longer, and returns its latest stats.
async fn wait_playing(pages: &PageServer, id: &str) -> anyhow::Result<PageStats> {
    pages
        .wait_stats(id, BROWSER, "more than 30 frames decoded and 20 audio packets", |s| {
            s.inbound("video").frames_decoded > 30 && s.inbound("audio").packets_received > 20
        })
        .await?;
    tokio::time::sleep(STEADY).await;
    pages.latest_stats(id).ok_or_else(|| anyhow::anyhow!("no stats from {id}"))
}

fn describe(start: &Start) -> String {
    format!(
        "first frame {} after the WHEP answer; {} fps after that; {} frames, {} keyframes decoded, {} PLIs sent, {} audio packets; framesDecoded per report {:?}",
        match (start.before_first_frame_ms, start.first_frame_ms) {
            (Some(lo), Some(hi)) => format!("{lo:.0}..{hi:.0} ms"),
            _ => "never".into(),
        },
        start.fps.map_or("?".into(), |f| format!("{f:.1}")),
        start.frames,
        start.key_frames,
        start.plis_sent,
        start.audio_packets,
        start.frames_per_report
    )
}

/// The viewer's start must be quick and its playback smooth: the first frame within 5 s of
/// the answer and, after it, at least `min_fps` frames per second (the fake camera makes
/// ~20 fps, the ffmpeg source 30); a gateway that loses packets shows here as a low rate with
/// many PLIs.
fn check_start(start: &Start, min_fps: f64, figures: &str) {
    assert!(start.first_frame_ms.is_some_and(|ms| ms <= 5000.0), "first frame too late: {figures}");
    assert!(start.fps.is_some_and(|fps| fps >= min_fps), "below {min_fps} fps: {figures}");
}

#[test]
fn chromium_whip_publisher_to_chromium_whep_viewer() {
    run_in_netns("chromium_whip_publisher_to_chromium_whep_viewer", || async {
        let gw = Gateway::start();
        let api = gw.api();
        let pages = PageServer::start().await?;
        let whip = gw.http_url("/whip/classroom");
        let _publisher = Chromium::start(&pages.url("whip.html", &[("whip", &whip), ("id", "pub")]))?;
        let location = pages.wait_event("pub", "answered", BROWSER).await?;
        assert!(location.starts_with(&format!("{whip}/")), "Location {location}");
        let stream = api.wait_live("classroom", BROWSER).await?;
        assert_eq!(stream.publisher.as_ref().map(|p| p.protocol.as_str()), Some("webrtc"));
        let video = stream.video.as_ref().expect("video");
        assert_eq!((video.codec.as_str(), video.width, video.height), ("h264", Some(640), Some(480)), "{stream:?}");
        assert_eq!(stream.audio.as_ref().map(|a| a.codec.as_str()), Some("opus"));

        let whep = gw.http_url("/whep/classroom");
        let _viewer = Chromium::start(&pages.url("whep.html", &[("whep", &whep), ("id", "view")]))?;
        pages.wait_event("view", "answered", BROWSER).await?;
        // WebRTC to WebRTC copies both tracks.
        let stream = api.stream("classroom").await?.expect("live");
        assert_eq!(stream.consumers.get("webrtc"), Some(&1), "{:?}", stream.consumers);
        assert_eq!(conversions(&api, "classroom").await?, [], "WHIP -> WHEP converts nothing");

        // Beside the browser, over the same window: a webrtcbin WHEP viewer and an HTTP-FLV
        // reader, to tell the gateway's output from the browser's playback.
        let window = std::time::Instant::now();
        let gst_viewer = WhepViewer::start(&whep, WhepOptions::default()).await?;
        let reader = BackgroundReader::start(&gw.http_url("/live/classroom.flv")).await?;
        let stats = wait_playing(&pages, "view").await;
        let seconds = window.elapsed().as_secs_f64();
        let start = viewer_start(&PageLog::of(&pages, "view"));
        let publisher = pages.latest_stats("pub").unwrap_or_default().outbound("video");
        let flv_frames = reader.tags().iter().filter(|t| t.is_video_frame()).count();
        let figures = format!(
            "WHIP(Chromium) -> gateway -> WHEP(Chromium): viewer {}\n\
             publisher (Chromium): {} frames encoded, {} keyframes encoded, {} PLIs received\n\
             same {seconds:.1} s window: webrtcbin WHEP viewer decoded {} frames ({:.1}/s); HTTP-FLV reader got {flv_frames} video frames ({:.1}/s)\n\
             --- gateway WebRTC log ---\n{}",
            describe(&start),
            publisher.frames_encoded,
            publisher.key_frames_encoded,
            publisher.pli_count,
            gst_viewer.frames_decoded(),
            gst_viewer.frames_decoded() as f64 / seconds,
            flv_frames as f64 / seconds,
            webrtc_log_lines(&gw)
        );
        let stats = stats.map_err(|e| e.context(figures.clone()))?;
        assert_eq!(stats.inbound("video").codec.as_deref(), Some("video/H264"), "{figures}");
        assert_eq!(stats.inbound("audio").codec.as_deref(), Some("audio/opus"), "{figures}");
        assert_eq!((stats.inbound("video").frame_width, stats.inbound("video").frame_height), (640, 480));
        assert!(stats.inbound("audio").total_samples_received > 0, "audio played out: {figures}");
        assert_eq!(publisher.codec.as_deref(), Some("video/H264"));
        check_start(&start, 10.0, &figures);

        // Toward RTMP-family players the browser's Opus becomes AAC; video is copied.
        assert_eq!(conversions(&api, "classroom").await?, triples(&[("audio", "opus", "aac")]));
        probe_until_h264_aac(&gw.http_url("/live/classroom.flv"), 640, 480, 48000, BROWSER).await?;
        Ok(figures)
    });
}

/// A Chromium WHEP viewer of an ffmpeg RTMP publisher (H.264 640x360 30 fps, AAC 44.1 kHz):
/// returns the measurements after asserting what it decoded and what the API shows.
async fn chromium_plays_rtmp(bframes: bool) -> anyhow::Result<String> {
    let gw = Gateway::start();
    let api = gw.api();
    let _ffmpeg =
        Ffmpeg::publish(&gw.rtmp_url("/live/teacher"), PublishOptions { bframes, ..PublishOptions::default() });
    let stream = api.wait_live("teacher", BROWSER).await?;
    assert_eq!(stream.publisher.as_ref().map(|p| p.protocol.as_str()), Some("rtmp"));
    assert_eq!(stream.audio.as_ref().map(|a| a.codec.as_str()), Some("aac"));

    let pages = PageServer::start().await?;
    let whep = gw.http_url("/whep/teacher");
    let _viewer = Chromium::start(&pages.url("whep.html", &[("whep", &whep), ("id", "view")]))?;
    let stats = wait_playing(&pages, "view").await;
    let start = viewer_start(&PageLog::of(&pages, "view"));
    let figures = format!(
        "RTMP(ffmpeg, H.264 640x360 30 fps GOP 30 {}, AAC 44.1 kHz) -> gateway -> WHEP(Chromium): viewer {}\n--- gateway WebRTC log ---\n{}",
        if bframes { "with B-frames" } else { "without B-frames" },
        describe(&start),
        webrtc_log_lines(&gw)
    );
    let stats = stats.map_err(|e| e.context(figures.clone()))?;
    assert_eq!(stats.inbound("video").codec.as_deref(), Some("video/H264"), "{figures}");
    assert_eq!(stats.inbound("audio").codec.as_deref(), Some("audio/opus"), "{figures}");
    assert_eq!((stats.inbound("video").frame_width, stats.inbound("video").frame_height), (640, 360));
    assert!(stats.inbound("audio").total_samples_received > 0, "audio played out: {figures}");
    check_start(&start, 20.0, &figures);

    let stream = api.stream("teacher").await?.expect("live");
    assert_eq!(stream.consumers.get("webrtc"), Some(&1), "{:?}", stream.consumers);
    let mut expected = vec![("audio", "aac", "opus")];
    if bframes {
        expected.push(("video", "h264", "h264"));
    }
    let mut running = conversions(&api, "teacher").await?;
    running.sort();
    assert_eq!(running, triples(&expected), "AAC -> Opus for the browser; video re-encoded only with B-frames");
    Ok(figures)
}

#[test]
fn chromium_whep_viewer_of_an_rtmp_publisher_gets_opus() {
    run_in_netns("chromium_whep_viewer_of_an_rtmp_publisher_gets_opus", || chromium_plays_rtmp(false));
}

#[test]
fn chromium_whep_viewer_of_an_rtmp_publisher_with_bframes_gets_them_reencoded() {
    run_in_netns("chromium_whep_viewer_of_an_rtmp_publisher_with_bframes_gets_them_reencoded", || {
        chromium_plays_rtmp(true)
    });
}
