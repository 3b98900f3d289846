//! The receiving pipeline of one UDP ingest: per track `udpsrc` (RTP) and `udpsrc` (RTCP)
//! into one `rtpbin` (jitter buffer, RTCP, lip sync through the sender reports), and on each
//! stream rtpbin finds, `depayloader ! parser ! appsink`. Every sample becomes a [`Frame`] on
//! a channel to the session task (never blocking: a full queue drops and counts).
//!
//! A pad probe on each `udpsrc` runs the packet [`filter`](super::filter) before rtpbin sees
//! anything: garbage, foreign payload types or senders and sequence jumps are dropped there.

use super::running::Running;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::mpsc;

use super::chains;
use super::error::UdpError;
use super::filter::{valid_rtcp, RtpFilter};
use super::frames::FrameMaker;
use super::metrics::UdpMetrics;
use super::payload::IngestTrack;
use crate::media::{Codec, Frame, TrackKind};

/// Most RTP streams (SSRCs) rtpbin keeps per session; the filter lets one through at a time.
const MAX_STREAMS: u32 = 4;

/// A running receiving pipeline; dropping it stops the pipeline.
pub struct Receiver {
    running: Running,
    started: Instant,
    /// Milliseconds after `started` (plus one) of the last accepted RTP packet; 0: none yet.
    last_packet: Arc<AtomicU64>,
}

impl Receiver {
    /// Binds every port of `tracks` on `bind` and starts receiving.
    pub fn start(
        name: &str,
        tracks: &[IngestTrack],
        bind: IpAddr,
        latency_ms: u32,
        metrics: Arc<UdpMetrics>,
        frames: mpsc::Sender<Frame>,
    ) -> Result<Receiver, UdpError> {
        crate::pipeline::init();
        check_ports_free(tracks, bind)?;
        let pipeline = gst::Pipeline::with_name(name);
        let build = |e: String| UdpError::Pipeline(e);
        let rtpbin = gst::ElementFactory::make("rtpbin")
            .name("rtpbin")
            .property("latency", latency_ms)
            .property("autoremove", true)
            .property("max-streams", MAX_STREAMS)
            .build()
            .map_err(|e| build(e.to_string()))?;
        // As in WHIP ingest: timestamps from the RTP timestamps (no skew estimation from
        // arrival times), tracks aligned through the RTCP sender reports.
        rtpbin.set_property_from_str("buffer-mode", "none");
        rtpbin.set_property_from_str("rtcp-sync", "always");
        pipeline.add(&rtpbin).map_err(|e| build(e.to_string()))?;

        let started = Instant::now();
        let last_packet = Arc::new(AtomicU64::new(0));
        let mut sinks: Vec<(u32, gst::Pad)> = Vec::new();
        let mut caps_by_session: Vec<(u32, u8, gst::Caps)> = Vec::new();
        for (session, track) in (0u32..).zip(tracks) {
            let caps = rtp_caps(track);
            let rtp = udpsrc(bind, track.rtp_port, &caps).map_err(build)?;
            let filter = Mutex::new(RtpFilter::new(track.pt, track.ssrc));
            let (m, last) = (metrics.clone(), last_packet.clone());
            probe_datagrams(&rtp, move |data| {
                let now = started.elapsed().as_millis() as u64;
                let verdict = filter.lock().unwrap_or_else(|e| e.into_inner()).check(data, now);
                m.note_rtp(verdict);
                let pass = !matches!(verdict, super::filter::Verdict::Drop(_));
                if pass {
                    last.store(now + 1, Ordering::Relaxed);
                }
                pass
            });
            pipeline.add(&rtp).map_err(|e| build(e.to_string()))?;
            link_request(&rtp, &rtpbin, &format!("recv_rtp_sink_{session}")).map_err(build)?;
            if let Some(port) = track.rtcp_port {
                let rtcp = udpsrc(bind, port, &gst::Caps::new_empty_simple("application/x-rtcp")).map_err(build)?;
                let m = metrics.clone();
                probe_datagrams(&rtcp, move |data| {
                    let valid = valid_rtcp(data);
                    m.note_rtcp(valid);
                    valid
                });
                pipeline.add(&rtcp).map_err(|e| build(e.to_string()))?;
                link_request(&rtcp, &rtpbin, &format!("recv_rtcp_sink_{session}")).map_err(build)?;
            }
            let sink = add_chain(&pipeline, track, metrics.clone(), frames.clone()).map_err(build)?;
            sinks.push((session, sink));
            caps_by_session.push((session, track.pt, caps));
        }
        rtpbin.connect("request-pt-map", false, move |args| {
            let session = args.get(1).and_then(|v| v.get::<u32>().ok())?;
            let pt = args.get(2).and_then(|v| v.get::<u32>().ok())?;
            caps_by_session
                .iter()
                .find(|(s, p, _)| *s == session && u32::from(*p) == pt)
                .map(|(_, _, caps)| caps.to_value())
        });
        rtpbin.connect_pad_added(move |_, pad| link_stream(pad, &sinks));

        let running = Running::start(pipeline).map_err(UdpError::Pipeline)?;
        let receiver = Receiver { running, started, last_packet };
        Ok(receiver)
    }

    /// How long since the last accepted RTP packet (or since the start, before the first).
    pub fn silence(&self) -> Duration {
        let elapsed = self.started.elapsed();
        match self.last_packet.load(Ordering::Relaxed) {
            0 => elapsed,
            at => elapsed.saturating_sub(Duration::from_millis(at - 1)),
        }
    }

    /// Stops the pipeline (off the async workers) and waits until it has; the ports are free
    /// once this returns.
    pub async fn stop(&self) {
        self.running.stop().await
    }

    /// The next error the pipeline reports; pending forever if none does.
    pub async fn next_error(&mut self) -> String {
        self.running.next_error().await
    }
}

/// Refuses ports someone else holds, naming the first (409), before GStreamer tries.
fn check_ports_free(tracks: &[IngestTrack], bind: IpAddr) -> Result<(), UdpError> {
    let ports = tracks.iter().flat_map(|t| std::iter::once(t.rtp_port).chain(t.rtcp_port));
    // All held at once, so ports of the same SDP cannot pass one by one; released on return.
    let mut held = Vec::new();
    for port in ports {
        match UdpSocket::bind(SocketAddr::new(bind, port)) {
            Ok(socket) => held.push(socket),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(UdpError::PortInUse(format!("UDP port {port} on {bind} is already in use")))
            }
            Err(e) => return Err(UdpError::Bind(format!("cannot bind UDP port {port} on {bind}: {e}"))),
        }
    }
    Ok(())
}

/// The RTP caps of a track: what rtpbin and the depayloader need (clock rate, fmtp).
pub fn rtp_caps(track: &IngestTrack) -> gst::Caps {
    let media = match track.kind {
        TrackKind::Video => "video",
        TrackKind::Audio => "audio",
    };
    let mut s = gst::Structure::builder("application/x-rtp")
        .field("media", media)
        .field("clock-rate", track.clock_rate as i32)
        .field("encoding-name", track.encoding.as_str())
        .field("payload", i32::from(track.pt))
        .build();
    if let Some(channels) = track.channels {
        s.set("encoding-params", channels.to_string());
    }
    for (key, value) in &track.params {
        let reserved = ["media", "clock-rate", "encoding-name", "payload", "encoding-params"].contains(&key.as_str());
        let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if plain && !reserved && key.starts_with(|c: char| c.is_ascii_alphabetic()) {
            s.set(key.as_str(), value.as_str());
        }
    }
    gst::Caps::builder_full().structure(s).build()
}

fn udpsrc(bind: IpAddr, port: u16, caps: &gst::Caps) -> Result<gst::Element, String> {
    gst::ElementFactory::make("udpsrc")
        .property("address", bind.to_string())
        .property("port", i32::from(port))
        // A port bound twice would split the packets between the two: refuse instead.
        .property("reuse", false)
        .property("caps", caps)
        .property("buffer-size", 1i32 << 20)
        .build()
        .map_err(|e| e.to_string())
}

/// Runs `keep` on every datagram `src` produces; false drops it.
fn probe_datagrams(src: &gst::Element, keep: impl Fn(&[u8]) -> bool + Send + Sync + 'static) {
    let Some(pad) = src.static_pad("src") else {
        return;
    };
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(gst::PadProbeData::Buffer(buffer)) = &info.data else {
            return gst::PadProbeReturn::Ok;
        };
        let keep = match buffer.map_readable() {
            Ok(map) => keep(map.as_slice()),
            Err(_) => false,
        };
        if keep {
            gst::PadProbeReturn::Ok
        } else {
            // `Handled` consumes the buffer, as the payload guards do (see
            // `pipeline::rtp_payload_guard` for why `Drop` is avoided on pads).
            gst::PadProbeReturn::Handled
        }
    });
}

fn link_request(src: &gst::Element, rtpbin: &gst::Element, pad_name: &str) -> Result<(), String> {
    let sink = rtpbin.request_pad_simple(pad_name).ok_or_else(|| format!("rtpbin has no pad {pad_name}"))?;
    let out = src.static_pad("src").ok_or("udpsrc has no source pad")?;
    out.link(&sink).map(|_| ()).map_err(|e| format!("{pad_name}: {e:?}"))
}

/// Builds `depayloader ! parser ! appsink` for a track; returns its sink pad (linked later).
fn add_chain(
    pipeline: &gst::Pipeline,
    track: &IngestTrack,
    metrics: Arc<UdpMetrics>,
    frames: mpsc::Sender<Frame>,
) -> Result<gst::Pad, String> {
    let bin = gst::parse::bin_from_description(chains::depayload(track.codec), true).map_err(|e| e.to_string())?;
    let appsink = bin
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or("no appsink in the receiving chain")?;
    appsink.set_property("sync", false);
    appsink.set_property("enable-last-sample", false);
    let maker = FrameMaker::new(track.codec);
    let guard_metrics = metrics.clone();
    let payload_metrics = metrics.clone();
    let warned = AtomicBool::new(false);
    let codec = track.codec;
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                match maker.frame(&sample) {
                    Ok(Some(frame)) => {
                        if frames.try_send(frame).is_err() {
                            metrics.note_frame_dropped();
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        if !warned.swap(true, Ordering::Relaxed) {
                            tracing::warn!(%codec, reason = %e.0, "received media dropped");
                        }
                    }
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let sink = bin.static_pad("sink").ok_or_else(|| "receiving chain has no sink pad".to_string())?;
    if codec == Codec::H264 {
        // After the jitter buffer (packets in order), before the depayloader.
        crate::pipeline::guard_h264_rtp(&sink, move |reason| {
            guard_metrics.note_h264_refused();
            tracing::debug!(%reason, "RTP packet's H.264 payload refused");
        });
    }
    if let Some(check) = crate::media::rtp::PayloadCheck::for_codec(codec, &track.params) {
        // After the jitter buffer, before the VP8/Opus/AAC/MPEG depayloader.
        crate::pipeline::guard_rtp_payload(&sink, check, move |reason| {
            payload_metrics.note_payload_refused();
            tracing::debug!(%codec, %reason, "RTP payload refused");
        });
    }
    pipeline.add(&bin).map_err(|e| e.to_string())?;
    Ok(sink)
}

/// Links a stream rtpbin found (`recv_rtp_src_{session}_{ssrc}_{pt}`) to its session's chain;
/// a newer stream (the sender restarted with another SSRC) replaces the older one.
fn link_stream(pad: &gst::Pad, sinks: &[(u32, gst::Pad)]) {
    let name = pad.name();
    let Some(rest) = name.strip_prefix("recv_rtp_src_") else {
        return;
    };
    let Some(session) = rest.split('_').next().and_then(|s| s.parse::<u32>().ok()) else {
        return;
    };
    let Some((_, sink)) = sinks.iter().find(|(s, _)| *s == session) else {
        return;
    };
    if let Some(old) = sink.peer() {
        let _ = old.unlink(sink);
        // The replaced stream still flows until rtpbin times it out: into a fakesink, since
        // an unlinked pad would stop rtpbin's streaming.
        if let Some(parent) =
            pad.parent_element().and_then(|rtpbin| rtpbin.parent()).and_then(|p| p.downcast::<gst::Bin>().ok())
        {
            if let Ok(sink) =
                gst::ElementFactory::make("fakesink").property("sync", false).property("async", false).build()
            {
                let linked = parent.add(&sink).is_ok()
                    && sink.sync_state_with_parent().is_ok()
                    && sink.static_pad("sink").is_some_and(|p| old.link(&p).is_ok());
                if !linked {
                    tracing::debug!(pad = %old.name(), "replaced RTP stream left unlinked");
                }
            }
        }
    }
    match pad.link(sink) {
        Ok(_) => tracing::info!(pad = %name, "receiving RTP stream"),
        Err(e) => tracing::warn!(pad = %name, error = ?e, "RTP stream not linked"),
    }
}
