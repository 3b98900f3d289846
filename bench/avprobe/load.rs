//! Load without decoding, for cost and fan-out runs, and the codec floor.
//!
//! - `load-whep N WARMUP SECONDS URL...`: N WHEP viewers (webrtcbins in one process, ICE on
//!   127.0.0.1), spread round-robin over the URLs; each depayloads and counts what it gets.
//! - `load-rtmp N WARMUP SECONDS URL...`: N RTMP players (the gateway's own RTMP client, one
//!   tokio task each), counting video messages.
//!
//! Both print `{"ready":..}` when started, then one line at the end with the slowest and
//! fastest viewer's video frames per second over the last SECONDS and the longest stall.
//!
//! - `floor DESCRIPTION`: runs a whole GStreamer pipeline (the gateway's elements registered)
//!   to EOS and prints the CPU seconds this process spent between PLAYING and EOS.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use interop_gateway::protocols::rtmp::{ClientConn, ClientEvent, MediaKind, RtmpUrl};

use crate::{webrtc, Result};

/// Per viewer: video frames, audio packets, last arrival (µs since start), longest gap (µs).
#[derive(Default)]
struct Viewer {
    video: AtomicU64,
    audio: AtomicU64,
    last_us: AtomicU64,
    stall_us: AtomicU64,
}

impl Viewer {
    fn note(&self, video: bool, start: Instant, counting: Instant) {
        let now = Instant::now();
        let us = now.duration_since(start).as_micros() as u64;
        if now >= counting {
            if video {
                self.video.fetch_add(1, Ordering::Relaxed);
            } else {
                self.audio.fetch_add(1, Ordering::Relaxed);
            }
            let last = self.last_us.load(Ordering::Relaxed);
            if last > 0 {
                self.stall_us.fetch_max(us.saturating_sub(last), Ordering::Relaxed);
            }
        }
        self.last_us.store(us, Ordering::Relaxed);
    }
}

fn summary(viewers: &[Arc<Viewer>], connected: usize, seconds: f64) -> String {
    let fps: Vec<f64> = viewers.iter().map(|v| v.video.load(Ordering::Relaxed) as f64 / seconds).collect();
    let aps: Vec<f64> = viewers.iter().map(|v| v.audio.load(Ordering::Relaxed) as f64 / seconds).collect();
    let min = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    format!(
        "{{\"viewers\":{},\"connected\":{connected},\"with_video\":{},\"min_fps\":{:.2},\"max_fps\":{:.2},\"min_audio_per_s\":{:.2},\"max_stall_ms\":{}}}",
        viewers.len(),
        fps.iter().filter(|f| **f > 0.0).count(),
        if fps.is_empty() { 0.0 } else { min(&fps) },
        max(&fps),
        if aps.is_empty() { 0.0 } else { min(&aps) },
        viewers.iter().map(|v| v.stall_us.load(Ordering::Relaxed)).max().unwrap_or(0) / 1000
    )
}

/// N WHEP viewers without decoding.
pub async fn whep(n: usize, warmup: f64, seconds: f64, urls: &[String]) -> Result<()> {
    let pipeline = gst::Pipeline::new();
    let start = Instant::now();
    let counting = start + Duration::from_secs_f64(warmup);
    let mut viewers = Vec::new();
    let mut bins = Vec::new();
    for k in 0..n {
        let w = webrtc::webrtcbin(&format!("w{k}"), 50)?;
        pipeline.add(&w)?;
        for video in [true, false] {
            w.emit_by_name::<gstreamer_webrtc::WebRTCRTPTransceiver>(
                "add-transceiver",
                &[&gstreamer_webrtc::WebRTCRTPTransceiverDirection::Recvonly, &webrtc::rtp_caps(video, true)],
            );
        }
        let viewer = Arc::new(Viewer::default());
        let (p, v) = (pipeline.downgrade(), viewer.clone());
        w.connect_pad_added(move |_, pad| {
            let Some(p) = p.upgrade() else { return };
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            let name =
                caps.structure(0).and_then(|s| s.get::<&str>("encoding-name").ok()).unwrap_or("").to_ascii_uppercase();
            let video = name == "H264";
            let depay = if video { "rtph264depay request-keyframe=true" } else { "rtpopusdepay" };
            let Ok(bin) = gst::parse::bin_from_description(&format!("{depay} name=d ! fakesink sync=false"), true)
            else {
                return;
            };
            if let Some(src) = bin.by_name("d").and_then(|d| d.static_pad("src")) {
                let v = v.clone();
                src.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                    v.note(video, start, counting);
                    gst::PadProbeReturn::Ok
                });
            }
            let _ = p.add(&bin);
            let _ = bin.sync_state_with_parent();
            if let Some(sink) = bin.static_pad("sink") {
                let _ = pad.link(&sink);
            }
        });
        viewers.push(viewer);
        bins.push(w);
    }
    pipeline.set_state(gst::State::Playing)?;
    let client = reqwest::Client::builder().timeout(webrtc::STEP).build()?;
    let mut locations = Vec::new();
    for (k, w) in bins.iter().enumerate() {
        locations.push(webrtc::negotiate(&client, w, &urls[k % urls.len()]).await?);
    }
    let _ = webrtc::poll(Duration::from_secs(30), "all connected", || bins.iter().all(webrtc::connected)).await;
    let connected = bins.iter().filter(|w| webrtc::connected(w)).count();
    println!("{{\"ready\":{n},\"connected\":{connected},\"connect_ms\":{}}}", start.elapsed().as_millis());
    let end = counting + Duration::from_secs_f64(seconds);
    tokio::time::sleep(end.saturating_duration_since(Instant::now())).await;
    for location in &locations {
        webrtc::delete(&client, location).await;
    }
    let _ = tokio::task::spawn_blocking(move || pipeline.set_state(gst::State::Null)).await;
    println!("{}", summary(&viewers, connected, seconds));
    Ok(())
}

/// N RTMP players.
pub async fn rtmp(n: usize, warmup: f64, seconds: f64, urls: &[String]) -> Result<()> {
    let start = Instant::now();
    let counting = start + Duration::from_secs_f64(warmup);
    let end = counting + Duration::from_secs_f64(seconds);
    let connected = Arc::new(AtomicU64::new(0));
    let mut viewers = Vec::new();
    let mut tasks = Vec::new();
    for k in 0..n {
        let url: RtmpUrl = urls[k % urls.len()].parse().map_err(|e| format!("{e:?}"))?;
        let viewer = Arc::new(Viewer::default());
        let (v, c) = (viewer.clone(), connected.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(mut conn) = ClientConn::connect(&url, Duration::from_secs(10)).await else { return };
            if conn.play().await.is_err() {
                return;
            }
            c.fetch_add(1, Ordering::Relaxed);
            while let Ok(Ok(Some(event))) =
                tokio::time::timeout(end.saturating_duration_since(Instant::now()), conn.next_event()).await
            {
                if let ClientEvent::Media(m) = event {
                    // Video tags other than sequence headers (AVCPacketType 1) are frames.
                    if m.kind == MediaKind::Video && m.payload.get(1) == Some(&1) {
                        v.note(true, start, counting);
                    } else if m.kind == MediaKind::Audio {
                        v.note(false, start, counting);
                    }
                }
            }
        }));
        viewers.push(viewer);
    }
    tokio::time::sleep(Duration::from_secs_f64(warmup.min(5.0))).await;
    println!("{{\"ready\":{n},\"connected\":{}}}", connected.load(Ordering::Relaxed));
    for t in tasks {
        let _ = t.await;
    }
    println!("{}", summary(&viewers, connected.load(Ordering::Relaxed) as usize, seconds));
    Ok(())
}

/// CPU seconds (user + system) of this process, from /proc/self/stat (USER_HZ = 100).
fn process_cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let fields: Vec<&str> = stat.rsplit_once(')').ok_or("bad /proc/self/stat")?.1.split_whitespace().collect();
    let ticks: u64 =
        fields.get(11).ok_or("no utime")?.parse::<u64>()? + fields.get(12).ok_or("no stime")?.parse::<u64>()?;
    Ok(ticks as f64 / 100.0)
}

/// Runs `description` to EOS and prints the CPU it took.
pub fn floor(description: &str) -> Result<()> {
    interop_gateway::pipeline::init();
    let pipeline = gst::parse::launch(description)?;
    let bus = pipeline.bus().ok_or("no bus")?;
    pipeline.set_state(gst::State::Paused)?;
    let (cpu0, wall) = (process_cpu_seconds()?, Instant::now());
    pipeline.set_state(gst::State::Playing)?;
    let msg =
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(900), &[gst::MessageType::Eos, gst::MessageType::Error]);
    let (cpu, wall) = (process_cpu_seconds()? - cpu0, wall.elapsed().as_secs_f64());
    pipeline.set_state(gst::State::Null)?;
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {
            println!("{{\"cpu_s\":{cpu:.3},\"wall_s\":{wall:.3}}}");
            Ok(())
        }
        Some(gst::MessageView::Error(e)) => Err(format!("{}: {:?}", e.error(), e.debug()).into()),
        _ => Err("no EOS within 900 s".into()),
    }
}
