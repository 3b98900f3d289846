//! WHIP media out of webrtcbin: each incoming pad gets `depayloader ! (parser !) appsink`, and
//! every sample becomes a [`Frame`] sent to the session's task (never blocking: a full queue
//! drops the frame and counts it).
//!
//! Timestamps are the buffers' running time: rtpbin has already mapped the RTP timestamps of
//! audio and video onto one clock through the RTCP sender reports, so both tracks share one
//! timeline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::mpsc;

use crate::media::{AudioInfo, Codec, Frame, TrackInfo, TrackKind, Ts};
use crate::pipeline::output_info;

/// The receiving chain for an RTP encoding, and what it yields.
fn chain_for(encoding: &str) -> Option<(TrackKind, Codec, &'static str)> {
    match encoding {
        "H264" => Some((
            TrackKind::Video,
            Codec::H264,
            "rtph264depay name=depay ! h264parse ! video/x-h264,stream-format=avc,alignment=au ! appsink name=sink",
        )),
        "VP8" => Some((TrackKind::Video, Codec::Vp8, "rtpvp8depay name=depay ! appsink name=sink")),
        "OPUS" => Some((TrackKind::Audio, Codec::Opus, "rtpopusdepay name=depay ! appsink name=sink")),
        _ => None,
    }
}

/// Shared between webrtcbin's pad-added callback (a streaming thread) and the session task.
pub struct Ingest {
    frames: mpsc::Sender<Frame>,
    /// The video depayloader's sink pad: keyframe requests go upstream from there.
    video_depay: Mutex<Option<gst::Pad>>,
    audio_linked: Mutex<bool>,
    dropped: AtomicU64,
    /// RTP packets whose H.264 payload our own check refused.
    refused: Arc<AtomicU64>,
    /// RTP packets whose VP8 or Opus payload our own check refused.
    payload_refused: Arc<AtomicU64>,
}

impl Ingest {
    pub fn new(frames: mpsc::Sender<Frame>) -> Arc<Ingest> {
        Arc::new(Ingest {
            frames,
            video_depay: Mutex::new(None),
            audio_linked: Mutex::new(false),
            dropped: AtomicU64::new(0),
            refused: Arc::new(AtomicU64::new(0)),
            payload_refused: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Links every pad webrtcbin adds from now on.
    pub fn attach(self: &Arc<Self>, pipeline: &gst::Pipeline, webrtcbin: &gst::Element) {
        let this = self.clone();
        let pipeline = pipeline.downgrade();
        webrtcbin.connect_pad_added(move |_, pad| {
            if pad.direction() != gst::PadDirection::Src {
                return;
            }
            let Some(pipeline) = pipeline.upgrade() else {
                return;
            };
            if let Err(e) = this.link(&pipeline, pad) {
                tracing::warn!(pad = %pad.name(), error = %e, "incoming pad not linked");
            }
        });
    }

    /// Frames dropped because the session task fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// RTP packets whose H.264 payload was refused before the depayloader.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// RTP packets whose VP8 or Opus payload was refused (dropped) before the depayloader.
    pub fn payload_refused(&self) -> u64 {
        self.payload_refused.load(Ordering::Relaxed)
    }

    /// Asks the publisher for a keyframe: webrtcbin turns the event into RTCP PLI (or FIR).
    pub fn request_keyframe(&self) -> bool {
        let pad = lock(&self.video_depay).clone();
        match pad {
            Some(pad) => {
                let event = gstreamer_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build();
                pad.push_event(event)
            }
            None => false,
        }
    }

    fn link(self: &Arc<Self>, pipeline: &gst::Pipeline, pad: &gst::Pad) -> Result<(), String> {
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let encoding = caps
            .structure(0)
            .and_then(|s| s.get::<&str>("encoding-name").ok())
            .map(str::to_ascii_uppercase)
            .unwrap_or_default();
        let chain = chain_for(&encoding).filter(|(kind, _, _)| self.claim(*kind));
        let Some((kind, codec, description)) = chain else {
            // Unused pads still need a sink, or webrtcbin stops on not-linked.
            let sink = gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .property("async", false)
                .build()
                .map_err(|e| e.to_string())?;
            pipeline.add(&sink).map_err(|e| e.to_string())?;
            sink.sync_state_with_parent().map_err(|e| e.to_string())?;
            let target = sink.static_pad("sink").ok_or("fakesink has no pad")?;
            pad.link(&target).map_err(|e| e.to_string())?;
            tracing::info!(pad = %pad.name(), encoding, "pad not used; discarded");
            return Ok(());
        };
        let bin = gst::parse::bin_from_description(description, true).map_err(|e| e.to_string())?;
        let appsink = bin
            .by_name("sink")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or("no appsink in the receiving chain")?;
        appsink.set_property("sync", false);
        appsink.set_property("enable-last-sample", false);
        let maker = FrameMaker { codec, last: Mutex::new(None) };
        let this = Arc::downgrade(self);
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let Some(this) = this.upgrade() else {
                        return Err(gst::FlowError::Flushing);
                    };
                    if let Some(frame) = maker.frame(&sample) {
                        if this.frames.try_send(frame).is_err() {
                            this.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let sink = bin.static_pad("sink").ok_or("receiving chain has no sink pad")?;
        if codec == Codec::H264 {
            // webrtcbin's jitter buffer has ordered the packets; the depayloader comes next.
            let refused = self.refused.clone();
            crate::pipeline::guard_h264_rtp(&sink, move |reason| {
                refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%reason, "RTP packet's H.264 payload refused");
            });
        }
        if let Some(check) = crate::media::rtp::PayloadCheck::for_codec(codec, &[]) {
            // VP8 and Opus: their payload headers are checked before the depayloader.
            let refused = self.payload_refused.clone();
            crate::pipeline::guard_rtp_payload(&sink, check, move |reason| {
                refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%codec, %reason, "RTP payload refused");
            });
        }
        pipeline.add(&bin).map_err(|e| e.to_string())?;
        bin.sync_state_with_parent().map_err(|e| e.to_string())?;
        pad.link(&sink).map_err(|e| format!("{e:?}"))?;
        if kind == TrackKind::Video {
            let depay_sink = bin.by_name("depay").and_then(|d| d.static_pad("sink"));
            *lock(&self.video_depay) = depay_sink;
            // A decoder can only start at a keyframe: ask for one now.
            self.request_keyframe();
        }
        tracing::info!(pad = %pad.name(), %codec, "receiving {kind}");
        Ok(())
    }

    /// Takes the first pad of each kind; later ones are discarded.
    fn claim(&self, kind: TrackKind) -> bool {
        match kind {
            TrackKind::Video => lock(&self.video_depay).is_none(),
            TrackKind::Audio => !std::mem::replace(&mut *lock(&self.audio_linked), true),
        }
    }
}

/// Samples → frames, with one `Arc<TrackInfo>` per distinct caps (so egresses see a config
/// change exactly when the caps change).
struct FrameMaker {
    codec: Codec,
    last: Mutex<Option<(gst::Caps, Arc<TrackInfo>)>>,
}

impl FrameMaker {
    fn frame(&self, sample: &gst::Sample) -> Option<Frame> {
        let buffer = sample.buffer()?;
        let caps = sample.caps()?;
        let info = {
            let mut last = lock(&self.last);
            match last.as_ref() {
                Some((c, info)) if c.as_ref() == caps => info.clone(),
                _ => {
                    let info = Arc::new(output_info(caps, self.codec).or_else(|| self.fallback_info())?);
                    *last = Some((caps.to_owned(), info.clone()));
                    info
                }
            }
        };
        let pts = buffer.pts().or(buffer.dts())?;
        let running = sample
            .segment()
            .and_then(|s| s.downcast_ref::<gst::format::Time>())
            .and_then(|s| s.to_running_time(pts))
            .unwrap_or(pts);
        let ts = Ts(running.nseconds() as i64);
        tracing::trace!(codec = %self.codec, pts = %pts, running = %running, flags = ?buffer.flags(), "ingest sample");
        let keyframe = info.kind() == TrackKind::Audio || !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let map = buffer.map_readable().ok()?;
        Some(Frame::new(info, ts, ts, keyframe, Bytes::copy_from_slice(map.as_slice())))
    }

    /// Opus caps without a rate still mean 48 kHz.
    fn fallback_info(&self) -> Option<TrackInfo> {
        (self.codec == Codec::Opus).then_some(TrackInfo::Audio(AudioInfo {
            codec: Codec::Opus,
            sample_rate: 48_000,
            channels: 2,
            config: None,
        }))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
