//! WHEP media into webrtcbin: one `appsrc ! (h264parse !) payloader` per negotiated track,
//! linked to the transceiver's sink pad after the answer is set. A viewer's PLI comes back as
//! an upstream force-key-unit event, seen by a probe on the payloader's sink pad.

use std::sync::atomic::{AtomicU64, Ordering};
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
    /// RTP packets the payloader produced.
    packets: Arc<AtomicU64>,
}

impl Output {
    /// Builds the sending chain for `choice` (RTP with `ssrc`, as the answer signalled) and
    /// links it to its transceiver's pad.
    pub fn link(
        peer: &Peer,
        choice: &Choice,
        transceiver: &gst_webrtc::WebRTCRTPTransceiver,
        ssrc: u32,
        keyframe_wanted: Arc<Notify>,
    ) -> Result<Output, PeerError> {
        let pt = choice.pt;
        let payloader = match choice.codec {
            Codec::H264 => {
                format!("h264parse ! rtph264pay name=pay pt={pt} ssrc={ssrc} config-interval=-1 aggregate-mode=zero-latency")
            }
            Codec::Vp8 => format!("rtpvp8pay name=pay pt={pt} ssrc={ssrc} picture-id-mode=15-bit"),
            Codec::Opus => format!("rtpopuspay name=pay pt={pt} ssrc={ssrc}"),
            other => return Err(PeerError::Build(format!("cannot send {other} over WebRTC"))),
        };
        let description =
            format!("appsrc name=src format=time is-live=true do-timestamp=false ! {payloader}");
        let fail = |e: String| PeerError::Build(format!("{description}: {e}"));
        let bin = gst::parse::bin_from_description(&description, true)
            .map_err(|e| fail(e.to_string()))?;
        let src = bin
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| fail("no appsrc".into()))?;
        // Unbounded here; the feeder holds back when the level grows (see `queued_bytes`).
        src.set_max_bytes(0);
        let pay_sink = bin
            .by_name("pay")
            .and_then(|p| p.static_pad("sink"))
            .ok_or_else(|| fail("no payloader".into()))?;
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
        let packets = Arc::new(AtomicU64::new(0));
        if let Some(pay_src) = bin.by_name("pay").and_then(|p| p.static_pad("src")) {
            let packets = packets.clone();
            pay_src.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
                move |_, info| {
                    let n = match &info.data {
                        Some(gst::PadProbeData::BufferList(list)) => list.len() as u64,
                        _ => 1,
                    };
                    packets.fetch_add(n, Ordering::Relaxed);
                    gst::PadProbeReturn::Ok
                },
            );
        }
        let mline = transceiver.mlineindex();
        let target = peer
            .webrtcbin
            .static_pad(&format!("sink_{mline}"))
            .ok_or_else(|| fail(format!("webrtcbin has no pad for m-line {mline}")))?;
        peer.pipeline.add(&bin).map_err(|e| fail(e.to_string()))?;
        let out = bin
            .static_pad("src")
            .ok_or_else(|| fail("no source pad".into()))?;
        out.link(&target).map_err(|e| fail(format!("{e:?}")))?;
        bin.sync_state_with_parent()
            .map_err(|e| fail(e.to_string()))?;
        Ok(Output {
            kind: choice.kind,
            src,
            info: None,
            packets,
        })
    }

    /// RTP packets sent so far.
    pub fn packets(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    /// Bytes waiting in the appsrc.
    pub fn queued_bytes(&self) -> u64 {
        self.src.current_level_bytes()
    }

    /// Sends one frame with timestamps already on the pipeline's running time.
    pub fn push(
        &mut self,
        frame: &Frame,
        dts: gst::ClockTime,
        pts: gst::ClockTime,
    ) -> Result<(), gst::FlowError> {
        if !self
            .info
            .as_ref()
            .is_some_and(|i| Arc::ptr_eq(i, &frame.info))
        {
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

/// A track whose first frame is this far from the other track's is on a clock of its own.
const MAX_TRACK_SPREAD: Ts = Ts(60_000_000_000);

/// Maps the stream's timeline onto the pipeline's running time: the first frame sent is
/// stamped "now", and the rest keep their distance to it, so audio and video stay aligned.
///
/// A track whose timestamps start far away from the other's (a conversion that emits its
/// encoder's offset timestamps, e.g. x264enc's 1000 hours) cannot be aligned with it; it is
/// anchored at "now" on its own instead of stalling the sender for that long.
#[derive(Default)]
pub struct TimeMap {
    origin: Option<(Ts, u64)>,
    /// Per track: its own origin, once its first frame was seen (None inside: the shared one).
    tracks: [Option<Option<(Ts, u64)>>; 2],
}

impl TimeMap {
    /// Anchors the timeline so that `newest` (the last frame ready now: the cached GOP's end)
    /// is stamped `now`: the cached frames before it go out at once instead of being paced
    /// out at real time, which would keep the viewer a GOP behind for good.
    pub fn start(&mut self, first: Ts, newest: Ts, now: u64) {
        let age = (newest - first).0.clamp(0, MAX_TRACK_SPREAD.0) as u64;
        self.origin.get_or_insert((first, now.saturating_sub(age)));
    }

    /// `(dts, pts)` on the running time; `now` is the running time at this moment.
    pub fn map(
        &mut self,
        kind: TrackKind,
        dts: Ts,
        pts: Ts,
        now: impl FnOnce() -> u64,
    ) -> (gst::ClockTime, gst::ClockTime) {
        let mut now = Some(now);
        let mut take_now = || now.take().map_or(0, |f| f());
        let shared = *self.origin.get_or_insert_with(|| (dts, take_now()));
        let slot = &mut self.tracks[kind as usize];
        let own = *slot.get_or_insert_with(|| {
            let spread = dts - shared.0;
            (spread > MAX_TRACK_SPREAD || spread < Ts(-MAX_TRACK_SPREAD.0)).then(|| {
                tracing::warn!(%kind, first = %dts, other = %shared.0, "track timestamps far from the other track's; anchored on their own");
                (dts, take_now())
            })
        });
        let (first, base) = own.unwrap_or(shared);
        let at = |ts: Ts| gst::ClockTime::from_nseconds(base.saturating_add_signed((ts - first).0));
        (at(dts), at(pts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: i64) -> Ts {
        Ts::from_millis(v)
    }

    #[test]
    fn time_map_starts_now_and_keeps_distances() {
        let mut m = TimeMap::default();
        let (d, p) = m.map(TrackKind::Video, ms(5000), ms(5066), || 2_000_000_000);
        assert_eq!((d.mseconds(), p.mseconds()), (2000, 2066));
        let (d, _) = m.map(TrackKind::Audio, ms(5040), ms(5040), || unreachable!());
        assert_eq!(d.mseconds(), 2040, "audio keeps its distance to video");
        // Audio from before the first video frame is clamped at zero, never wraps.
        let mut early = TimeMap::default();
        early.map(TrackKind::Video, ms(5000), ms(5000), || 10_000_000);
        assert_eq!(
            early
                .map(TrackKind::Audio, ms(4000), ms(4000), || 0)
                .0
                .nseconds(),
            0
        );
    }

    #[test]
    fn the_cached_gop_is_stamped_in_the_past() {
        let mut m = TimeMap::default();
        m.start(ms(1000), ms(2500), 10_000_000_000);
        assert_eq!(
            m.map(TrackKind::Video, ms(1000), ms(1000), || unreachable!())
                .0
                .mseconds(),
            8500
        );
        assert_eq!(
            m.map(TrackKind::Audio, ms(2500), ms(2500), || unreachable!())
                .0
                .mseconds(),
            10_000
        );
        let mut young = TimeMap::default();
        young.start(ms(1000), ms(900_000), 100_000_000);
        assert_eq!(
            young
                .map(TrackKind::Video, ms(1000), ms(1000), || unreachable!())
                .0
                .nseconds(),
            0
        );
    }

    #[test]
    fn a_track_on_another_clock_is_anchored_on_its_own() {
        let mut m = TimeMap::default();
        m.map(TrackKind::Audio, ms(2000), ms(2000), || 7_000_000_000);
        let hours = ms(3_600_000_000 + 2500);
        let (d, _) = m.map(TrackKind::Video, hours, hours, || 7_100_000_000);
        assert_eq!(d.mseconds(), 7100);
        let (d, _) = m.map(
            TrackKind::Video,
            hours + ms(33),
            hours + ms(33),
            || unreachable!(),
        );
        assert_eq!(d.mseconds(), 7133);
        let (a, _) = m.map(TrackKind::Audio, ms(2020), ms(2020), || unreachable!());
        assert_eq!(a.mseconds(), 7020);
    }
}
