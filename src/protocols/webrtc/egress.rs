//! WHEP media into webrtcbin: one `appsrc ! (h264parse !) payloader` per negotiated track,
//! linked to the transceiver's sink pad after the answer is set. A viewer's PLI comes back as
//! an upstream force-key-unit event, seen by a probe on the payloader's sink pad.

use std::sync::Arc;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_webrtc as gst_webrtc;
use tokio::sync::Notify;

use super::peer::{Peer, PeerError};
use super::sdp::Choice;
use crate::media::{Codec, Frame, TrackInfo, TrackKind, Ts};
use crate::pipeline::input_caps;

/// One track being sent to the viewer.
pub struct Output {
    pub kind: TrackKind,
    src: gst_app::AppSrc,
    /// The info the appsrc caps were made from.
    info: Option<Arc<TrackInfo>>,
}

impl Output {
    /// Builds the sending chain for `choice` and links it to its transceiver's pad.
    pub fn link(
        peer: &Peer,
        choice: &Choice,
        transceiver: &gst_webrtc::WebRTCRTPTransceiver,
        keyframe_wanted: Arc<Notify>,
    ) -> Result<Output, PeerError> {
        let pt = choice.pt;
        let payloader = match choice.codec {
            Codec::H264 => format!("h264parse ! rtph264pay name=pay pt={pt} config-interval=-1 aggregate-mode=zero-latency"),
            Codec::Vp8 => format!("rtpvp8pay name=pay pt={pt} picture-id-mode=15-bit"),
            Codec::Opus => format!("rtpopuspay name=pay pt={pt}"),
            other => return Err(PeerError::Build(format!("cannot send {other} over WebRTC"))),
        };
        let description = format!("appsrc name=src format=time is-live=true do-timestamp=false ! {payloader}");
        let fail = |e: String| PeerError::Build(format!("{description}: {e}"));
        let bin = gst::parse::bin_from_description(&description, true).map_err(|e| fail(e.to_string()))?;
        let src = bin
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| fail("no appsrc".into()))?;
        // Unbounded here; the feeder holds back when the level grows (see `queued_bytes`).
        src.set_max_bytes(0);
        let pay_sink = bin.by_name("pay").and_then(|p| p.static_pad("sink")).ok_or_else(|| fail("no payloader".into()))?;
        if choice.kind == TrackKind::Video {
            pay_sink.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
                if let Some(gst::PadProbeData::Event(event)) = &info.data {
                    if gstreamer_video::ForceKeyUnitEvent::is(event) {
                        keyframe_wanted.notify_one();
                    }
                }
                gst::PadProbeReturn::Ok
            });
        }
        let mline = transceiver.mlineindex();
        let target = peer
            .webrtcbin
            .static_pad(&format!("sink_{mline}"))
            .ok_or_else(|| fail(format!("webrtcbin has no pad for m-line {mline}")))?;
        peer.pipeline.add(&bin).map_err(|e| fail(e.to_string()))?;
        let out = bin.static_pad("src").ok_or_else(|| fail("no source pad".into()))?;
        out.link(&target).map_err(|e| fail(format!("{e:?}")))?;
        bin.sync_state_with_parent().map_err(|e| fail(e.to_string()))?;
        Ok(Output { kind: choice.kind, src, info: None })
    }

    /// Bytes waiting in the appsrc.
    pub fn queued_bytes(&self) -> u64 {
        self.src.current_level_bytes()
    }

    /// Sends one frame with timestamps already on the pipeline's running time.
    pub fn push(&mut self, frame: &Frame, dts: gst::ClockTime, pts: gst::ClockTime) -> Result<(), gst::FlowError> {
        if !self.info.as_ref().is_some_and(|i| Arc::ptr_eq(i, &frame.info)) {
            self.src.set_caps(Some(&input_caps(&frame.info)));
            self.info = Some(frame.info.clone());
        }
        let mut buffer = gst::Buffer::from_slice(frame.data.clone());
        if let Some(b) = buffer.get_mut() {
            b.set_pts(pts);
            b.set_dts(dts);
            if frame.kind() == TrackKind::Video && !frame.keyframe {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        self.src.push_buffer(buffer).map(|_| ())
    }
}

/// Maps the stream's timeline onto the pipeline's running time: the first frame sent is
/// stamped "now", and the rest keep their distance to it.
#[derive(Default)]
pub struct TimeMap {
    origin: Option<(Ts, u64)>,
}

impl TimeMap {
    pub fn map(&mut self, ts: Ts, now: impl FnOnce() -> u64) -> gst::ClockTime {
        let (first, base) = *self.origin.get_or_insert_with(|| (ts, now()));
        let offset = (ts - first).0;
        gst::ClockTime::from_nseconds(base.saturating_add_signed(offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_map_starts_now_and_keeps_distances() {
        let mut m = TimeMap::default();
        let ms = |v: i64| Ts::from_millis(v);
        assert_eq!(m.map(ms(5000), || 2_000_000_000).mseconds(), 2000);
        assert_eq!(m.map(ms(5040), || unreachable!()).mseconds(), 2040);
        // Audio from before the first video frame is clamped at zero, never wraps.
        let mut early = TimeMap { origin: Some((ms(5000), 10_000_000)) };
        assert_eq!(early.map(ms(4000), || 0).nseconds(), 0);
    }
}
