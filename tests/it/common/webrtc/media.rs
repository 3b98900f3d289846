//! The media ends of a peer: test-signal encoders feeding webrtcbin, and decoders behind its
//! source pads, with counters the tests read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gstreamer as gst;

/// A video codec the test peers can send and receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264, constrained baseline, packetization-mode 1.
    H264,
    /// VP8.
    Vp8,
}

impl VideoCodec {
    /// The SDP/caps encoding name (`H264`, `VP8`).
    pub fn encoding_name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "H264",
            VideoCodec::Vp8 => "VP8",
        }
    }

    /// The RTP caps webrtcbin negotiates for this codec on payload type `pt`. H.264 carries
    /// packetization-mode 1 and, when given, `profile_level_id` (without it the caps intersect
    /// with any profile the other side offers).
    pub fn rtp_caps(self, pt: u32, profile_level_id: Option<&str>) -> gst::Caps {
        let mut builder = gst::Caps::builder("application/x-rtp")
            .field("media", "video")
            .field("encoding-name", self.encoding_name())
            .field("payload", pt as i32)
            .field("clock-rate", 90_000i32);
        if self == VideoCodec::H264 {
            builder = builder.field("packetization-mode", "1");
            if let Some(id) = profile_level_id {
                builder = builder.field("profile-level-id", id).field("level-asymmetry-allowed", "1");
            }
        }
        builder.build()
    }
}

/// The Opus RTP caps on payload type `pt`.
pub fn opus_caps(pt: u32) -> gst::Caps {
    gst::Caps::builder("application/x-rtp")
        .field("media", "audio")
        .field("encoding-name", "OPUS")
        .field("payload", pt as i32)
        .field("clock-rate", 48_000i32)
        .field("encoding-params", "2")
        .build()
}

/// Size, rate and keyframe interval of the test-pattern video a peer sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoFormat {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// A keyframe every this many frames (PLI/FIR force one too).
    pub keyframe_interval: u32,
}

impl Default for VideoFormat {
    /// 320x240 at 30 fps, a keyframe every 30 frames.
    fn default() -> Self {
        VideoFormat { width: 320, height: 240, fps: 30, keyframe_interval: 30 }
    }
}

/// What a sending peer's encoders produced (counted at the encoders' source pads).
#[derive(Debug, Default)]
pub struct SendCounters {
    /// Encoded video frames.
    pub video_frames: AtomicU64,
    /// Encoded video keyframes (initial, periodic and requested by PLI/FIR).
    pub video_keyframes: AtomicU64,
    /// Encoded audio packets.
    pub audio_packets: AtomicU64,
}

/// gst-launch text of the video branch: live test pattern → encoder `venc` → payloader on `pt`
/// → capsfilter `rtpcaps` (set it to [`VideoCodec::rtp_caps`] after parsing: caps with types
/// do not survive gst-launch syntax).
pub fn video_branch(codec: VideoCodec, pt: u32, format: VideoFormat) -> String {
    let VideoFormat { width, height, fps, keyframe_interval } = format;
    let source =
        format!("videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate={fps}/1");
    match codec {
        VideoCodec::H264 => format!(
            "{source} ! x264enc name=venc tune=zerolatency speed-preset=ultrafast key-int-max={keyframe_interval} bframes=0 \
             ! video/x-h264,profile=constrained-baseline \
             ! rtph264pay config-interval=-1 aggregate-mode=zero-latency pt={pt} ! capsfilter name=rtpcaps"
        ),
        VideoCodec::Vp8 => format!(
            "{source} ! vp8enc name=venc deadline=1 cpu-used=8 keyframe-max-dist={keyframe_interval} \
             ! rtpvp8pay pt={pt} ! capsfilter name=rtpcaps"
        ),
    }
}

/// gst-launch text of the audio branch: live sine → Opus encoder `aenc` → payloader on `pt` →
/// capsfilter `rtpcaps` (set it to [`opus_caps`]).
pub fn audio_branch(pt: u32) -> String {
    format!(
        "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc name=aenc \
         ! rtpopuspay pt={pt} ! capsfilter name=rtpcaps"
    )
}

/// Counts encoded frames and keyframes at `bin`'s `venc`/`aenc` source pads into `counters`.
pub fn count_encoded(bin: &gst::Bin, counters: &Arc<SendCounters>) {
    if let Some(pad) = bin.by_name("venc").and_then(|e| e.static_pad("src")) {
        let counters = Arc::downgrade(counters);
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let (Some(counters), Some(buffer)) = (counters.upgrade(), info.buffer()) {
                counters.video_frames.fetch_add(1, Ordering::Relaxed);
                if !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT) {
                    counters.video_keyframes.fetch_add(1, Ordering::Relaxed);
                }
            }
            gst::PadProbeReturn::Ok
        });
    }
    if let Some(pad) = bin.by_name("aenc").and_then(|e| e.static_pad("src")) {
        let counters = Arc::downgrade(counters);
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            if let Some(counters) = counters.upgrade() {
                counters.audio_packets.fetch_add(1, Ordering::Relaxed);
            }
            gst::PadProbeReturn::Ok
        });
    }
}

/// What a receiving peer decoded, filled from its decoders' output.
#[derive(Debug, Default)]
pub struct ReceiveCounters {
    /// Decoded video frames.
    pub video_frames: AtomicU64,
    /// Decoded audio buffers.
    pub audio_buffers: AtomicU64,
    /// Encoding name of the video that arrived (`H264`, `VP8`), from the RTP pad's caps.
    pub video_codec: Mutex<Option<String>>,
    /// Encoding name of the audio that arrived (`OPUS`).
    pub audio_codec: Mutex<Option<String>>,
    /// Width and height of the decoded video.
    pub video_size: Mutex<Option<(i32, i32)>>,
    /// The webrtcbin source pad that carries video (for keyframe requests upstream).
    pub video_pad: Mutex<Option<gst::Pad>>,
    /// Source pads we could not decode, as their caps.
    pub unhandled: Mutex<Vec<String>>,
}

impl ReceiveCounters {
    /// Handles one new webrtcbin source pad: depayload, decode and count into fake sinks.
    /// Runs on a streaming thread: it only builds and links elements, never waits.
    pub fn on_pad_added(self: &Arc<Self>, pipeline: &gst::Pipeline, pad: &gst::Pad) {
        let Some(caps) = pad.current_caps().or_else(|| Some(pad.query_caps(None))) else {
            return;
        };
        let Some(s) = caps.structure(0) else { return };
        let media = s.get::<&str>("media").unwrap_or("");
        let encoding = s.get::<&str>("encoding-name").unwrap_or("").to_ascii_uppercase();
        let chain = match (media, encoding.as_str()) {
            ("video", "H264") => {
                "queue ! rtph264depay ! h264parse ! avdec_h264 name=dec ! fakesink name=sink sync=false async=false"
            }
            ("video", "VP8") => "queue ! rtpvp8depay ! vp8dec name=dec ! fakesink name=sink sync=false async=false",
            ("audio", "OPUS") => "queue ! rtpopusdepay ! opusdec name=dec ! fakesink name=sink sync=false async=false",
            _ => {
                if let Ok(mut unhandled) = self.unhandled.lock() {
                    unhandled.push(caps.to_string());
                }
                return;
            }
        };
        let Ok(bin) = gst::parse::bin_from_description(chain, true) else {
            return;
        };
        let is_video = media == "video";
        if let Some(sink_pad) = bin.by_name("sink").and_then(|e| e.static_pad("sink")) {
            let counters = Arc::downgrade(self);
            sink_pad.add_probe(gst::PadProbeType::BUFFER, move |probe_pad, _| {
                let Some(counters) = counters.upgrade() else {
                    return gst::PadProbeReturn::Ok;
                };
                if is_video {
                    if counters.video_frames.fetch_add(1, Ordering::Relaxed) == 0 {
                        let size = probe_pad.current_caps().and_then(|c| {
                            let s = c.structure(0)?;
                            Some((s.get::<i32>("width").ok()?, s.get::<i32>("height").ok()?))
                        });
                        if let Ok(mut slot) = counters.video_size.lock() {
                            *slot = size;
                        }
                    }
                } else {
                    counters.audio_buffers.fetch_add(1, Ordering::Relaxed);
                }
                gst::PadProbeReturn::Ok
            });
        }
        let slot = if is_video { &self.video_codec } else { &self.audio_codec };
        if let Ok(mut slot) = slot.lock() {
            *slot = Some(encoding);
        }
        if is_video {
            if let Ok(mut slot) = self.video_pad.lock() {
                *slot = Some(pad.clone());
            }
        }
        if pipeline.add(&bin).is_err() {
            return;
        }
        let _ = bin.sync_state_with_parent();
        if let Some(sink) = bin.static_pad("sink") {
            if let Err(error) = pad.link(&sink) {
                if let Ok(mut unhandled) = self.unhandled.lock() {
                    unhandled.push(format!("link {caps}: {error:?}"));
                }
            }
        }
    }

    /// Decoded video frames so far.
    pub fn frames(&self) -> u64 {
        self.video_frames.load(Ordering::Relaxed)
    }

    /// Decoded audio buffers so far.
    pub fn audio(&self) -> u64 {
        self.audio_buffers.load(Ordering::Relaxed)
    }
}
