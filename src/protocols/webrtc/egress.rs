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
        let description = format!("appsrc name=src format=time is-live=true do-timestamp=false ! {payloader}");
        let fail = |e: String| PeerError::Build(format!("{description}: {e}"));
        let bin = gst::parse::bin_from_description(&description, true).map_err(|e| fail(e.to_string()))?;
        let src = bin
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| fail("no appsrc".into()))?;
        // Unbounded here; the feeder holds back when the level grows (see `queued_bytes`).
        src.set_max_bytes(0);
        let pay_sink =
            bin.by_name("pay").and_then(|p| p.static_pad("sink")).ok_or_else(|| fail("no payloader".into()))?;
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
            crate::pipeline::buffer_count::count_buffers(&pay_src, move |n| {
                packets.fetch_add(n, Ordering::Relaxed);
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
        Ok(Output { kind: choice.kind, src, info: None, packets })
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

/// A track whose first frame is this far from the other track's is on a clock of its own.
const MAX_TRACK_SPREAD: Ts = Ts(60_000_000_000);
/// Running time between two cached video frames once the burst is squeezed: the viewer
/// decodes them at once and shows the newest at once, and each keeps an RTP timestamp of its
/// own (9 ticks of the 90 kHz clock; browsers tell H.264 frames apart by timestamp). A receiver
/// that anchors its playout on the first packet stays this much per cached frame behind.
const BURST_STEP: Ts = Ts(100_000);

/// Where one clock's live point lands on the running time, and how the frames before it
/// (the cached burst) are squeezed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Anchor {
    /// The live point on the stream's timeline, stamped `at`.
    live: Ts,
    at: u64,
    /// The cached video frames before `live`, ascending, with their distance to it once
    /// squeezed (ns, negative): `BURST_STEP` apart, or their real distance if that is less.
    burst: Vec<(Ts, i64)>,
}

impl Anchor {
    fn plain(live: Ts, at: u64) -> Anchor {
        Anchor { live, at, burst: Vec::new() }
    }

    /// The anchor for the frames (`(kind, dts)`) ready at `now`: the newest video frame is
    /// the live point (the newest frame when there is no video), the video frames before it
    /// are squeezed.
    fn of_ready(frames: &[(TrackKind, Ts)], now: u64) -> Anchor {
        let mut video: Vec<Ts> = frames.iter().filter(|(k, _)| *k == TrackKind::Video).map(|(_, t)| *t).collect();
        video.sort_unstable();
        video.dedup();
        let Some(live) = video.pop() else {
            let live = frames.iter().map(|(_, t)| *t).max().unwrap_or(Ts::ZERO);
            return Anchor::plain(live, now);
        };
        let n = video.len() as i64;
        let burst = video
            .into_iter()
            .zip((1..=n).rev())
            .map(|(t, steps)| (t, (t - live).0.max(-steps * BURST_STEP.0)))
            .collect();
        Anchor { live, at: now, burst }
    }

    /// The running time of `ts`: its distance to the live point kept from the live point on,
    /// squeezed before it (linear between two cached frames, so reordered pts stay in order);
    /// never below 0.
    fn stamp(&self, ts: Ts) -> gst::ClockTime {
        let distance = match self.burst.partition_point(|(t, _)| *t <= ts) {
            _ if ts >= self.live => (ts - self.live).0,
            // Older than the whole burst: the real distance to its first frame.
            0 => match self.burst.first() {
                Some(&(first, at)) => at - (first - ts).0,
                None => (ts - self.live).0,
            },
            i => {
                let (t0, d0) = self.burst[i - 1];
                let (t1, d1) = self.burst.get(i).copied().unwrap_or((self.live, 0));
                let part = i128::from((ts - t0).0) * i128::from(d1 - d0) / i128::from((t1 - t0).0);
                d0 + part as i64
            }
        };
        gst::ClockTime::from_nseconds(self.at.saturating_add_signed(distance))
    }
}

/// Maps the stream's timeline onto the pipeline's running time so that a new viewer is live.
///
/// The frames ready when sending starts (the cached GOP, and what queued while ICE and DTLS
/// connected) go out at once. If they kept their real spacing, a receiver that plays by RTP
/// timestamp would play them at real time and stay as far behind as the GOP was old, for good.
/// So the newest video frame (the live point) is stamped "now", the video frames before it are
/// squeezed into the moment just before (`BURST_STEP` apart: decoded at once, the newest
/// shown at once), the cached audio older than the live point is dropped (it would be played out
/// late or squeezed into noise), and everything after the live point keeps its distance to it:
/// live frames that follow go out with the same offset, so audio and video stay aligned.
///
/// A track whose timestamps start far away from the other's (a conversion that emits its
/// encoder's offset timestamps, e.g. x264enc's 1000 hours) cannot be aligned with it; it gets
/// a live point of its own instead of stalling the sender for that long.
#[derive(Default)]
pub struct TimeMap {
    shared: Option<Anchor>,
    /// Per track, once its first frame was seen: its own anchor (None inside: the shared one).
    tracks: [Option<Option<Anchor>>; 2],
}

impl TimeMap {
    /// Anchors the timeline on the frames ready when sending starts (`(kind, dts)` in the
    /// order they will be sent); `now` is the running time at this moment. Does nothing once
    /// anchored.
    pub fn start(&mut self, ready: &[(TrackKind, Ts)], now: u64) {
        let Some(&(_, reference)) = ready.first() else {
            return;
        };
        if self.shared.is_some() {
            return;
        }
        let mut shared = Vec::with_capacity(ready.len());
        for kind in TrackKind::ALL {
            let frames: Vec<(TrackKind, Ts)> = ready.iter().filter(|(k, _)| *k == kind).copied().collect();
            let Some(&(_, first)) = frames.first() else {
                continue;
            };
            let own = far_apart(first, reference).then(|| {
                tracing::warn!(%kind, first = %first, other = %reference, "track timestamps far from the other track's; anchored on their own");
                Anchor::of_ready(&frames, now)
            });
            if own.is_none() {
                shared.extend(frames);
            }
            self.tracks[kind as usize] = Some(own);
        }
        self.shared = Some(Anchor::of_ready(&shared, now));
    }

    /// `(dts, pts)` on the running time, or None for audio older than the live point (not
    /// sent); `now` is the running time at this moment, asked for only when a frame has to
    /// anchor a clock (no `start`, or a track first seen later on a clock of its own).
    pub fn map(
        &mut self,
        kind: TrackKind,
        dts: Ts,
        pts: Ts,
        now: impl FnOnce() -> u64,
    ) -> Option<(gst::ClockTime, gst::ClockTime)> {
        let mut now = Some(now);
        let mut take_now = || now.take().map_or(0, |f| f());
        let shared = self.shared.get_or_insert_with(|| Anchor::plain(dts, take_now()));
        let own = self.tracks[kind as usize].get_or_insert_with(|| {
            far_apart(dts, shared.live).then(|| {
                tracing::warn!(%kind, first = %dts, other = %shared.live, "track timestamps far from the other track's; anchored on their own");
                Anchor::plain(dts, take_now())
            })
        });
        let anchor = own.as_ref().unwrap_or(shared);
        if kind == TrackKind::Audio && dts < anchor.live {
            return None;
        }
        Some((anchor.stamp(dts), anchor.stamp(pts)))
    }
}

fn far_apart(a: Ts, b: Ts) -> bool {
    let spread = a - b;
    spread > MAX_TRACK_SPREAD || spread < Ts(-MAX_TRACK_SPREAD.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: TrackKind = TrackKind::Video;
    const A: TrackKind = TrackKind::Audio;

    fn ms(v: i64) -> Ts {
        Ts::from_millis(v)
    }

    /// `(dts, pts)` in ms (rounded down) on the running time, None when not sent.
    fn at(m: &mut TimeMap, kind: TrackKind, dts: i64, pts: i64) -> Option<(u64, u64)> {
        m.map(kind, ms(dts), ms(pts), || unreachable!()).map(|(d, p)| (d.mseconds(), p.mseconds()))
    }

    /// `(dts, pts)` in µs on the running time.
    fn at_us(m: &mut TimeMap, kind: TrackKind, dts: i64, pts: i64) -> (u64, u64) {
        let (d, p) = m.map(kind, ms(dts), ms(pts), || unreachable!()).expect("sent");
        (d.useconds(), p.useconds())
    }

    /// A cached GOP of `n` video frames 33 ms apart from `from` ms, and audio 20 ms apart
    /// over the same time, in dts order (as the subscription hands them out).
    fn cached(from: i64, n: i64) -> Vec<(TrackKind, Ts)> {
        let mut frames: Vec<(TrackKind, Ts)> = (0..n).map(|i| (V, ms(from + 33 * i))).collect();
        frames.extend((0..n * 33 / 20).map(|i| (A, ms(from + 20 * i))));
        frames.sort_by_key(|(_, t)| *t);
        frames
    }

    #[test]
    fn without_a_burst_the_first_frame_is_now_and_distances_are_kept() {
        let mut m = TimeMap::default();
        let (d, p) = m.map(V, ms(5000), ms(5066), || 2_000_000_000).expect("sent");
        assert_eq!((d.mseconds(), p.mseconds()), (2000, 2066));
        assert_eq!(at(&mut m, A, 5040, 5040), Some((2040, 2040)), "audio keeps its distance to video");
        assert_eq!(at(&mut m, V, 5033, 5100), Some((2033, 2100)));
        // Audio from before the first video frame is older than the live point: not sent.
        assert_eq!(at(&mut m, A, 4990, 4990), None);
    }

    #[test]
    fn the_cached_gop_is_squeezed_just_before_now_and_the_newest_frame_is_now() {
        // 60 frames (2 s old GOP: 1000 ms .. 2947 ms), ready at running time 10 s.
        let ready = cached(1000, 60);
        let mut m = TimeMap::default();
        m.start(&ready, 10_000_000_000);
        // The newest picture is the live point: "now".
        assert_eq!(at(&mut m, V, 2947, 2947), Some((10_000, 10_000)));
        // The 59 before it are BURST_STEP (0.1 ms) apart: the keyframe 5.9 ms before now.
        assert_eq!(at_us(&mut m, V, 1000, 1000), (9_994_100, 9_994_100));
        assert_eq!(at_us(&mut m, V, 2914, 2914), (9_999_900, 9_999_900));
        // Between two cached frames (a reordered pts), in proportion.
        assert_eq!(at_us(&mut m, V, 2914, 2930).1, 9_999_948);
        // Every cached picture keeps a timestamp of its own, in order, on the 90 kHz RTP clock.
        let ticks: Vec<u64> = ready
            .iter()
            .filter(|(k, _)| *k == V)
            .map(|(_, t)| m.map(V, *t, *t, || unreachable!()).unwrap().0.nseconds() * 9 / 100_000)
            .collect();
        assert!(ticks.windows(2).all(|w| w[1] > w[0]), "{ticks:?}");
        // Cached audio older than the live point is dropped; from it on, it is aligned.
        assert_eq!(at(&mut m, A, 1000, 1000), None);
        assert_eq!(at(&mut m, A, 2940, 2940), None);
        assert_eq!(at(&mut m, A, 2960, 2960), Some((10_013, 10_013)));
        // Live frames that follow keep the same offset: A/V stay aligned.
        assert_eq!(at(&mut m, V, 2980, 2980), Some((10_033, 10_033)));
        assert_eq!(at(&mut m, A, 2980, 2980), Some((10_033, 10_033)));
        assert_eq!(at(&mut m, V, 4013, 4013), Some((11_066, 11_066)));
        // Starting again does not move the anchor.
        m.start(&cached(5000, 3), 99_000_000_000);
        assert_eq!(at(&mut m, V, 4046, 4046), Some((11_099, 11_099)));
    }

    #[test]
    fn reordered_frames_keep_their_order_and_pts_after_dts() {
        // B-frames: pts differs from dts; the squeeze is one monotonic map for both.
        let ready = vec![(V, ms(0)), (V, ms(33)), (V, ms(66)), (V, ms(100)), (V, ms(133))];
        let mut m = TimeMap::default();
        m.start(&ready, 1_000_000_000);
        let frames = [(0, 66), (33, 133), (66, 100), (100, 200), (133, 166)];
        let mapped: Vec<(u64, u64)> = frames.iter().map(|&(d, p)| at_us(&mut m, V, d, p)).collect();
        for ((d, p), (sd, sp)) in frames.iter().zip(&mapped) {
            assert!(sp >= sd, "pts before dts: {d}/{p} -> {sd}/{sp}");
        }
        let mut pts: Vec<_> = frames.iter().zip(&mapped).map(|(f, m)| (f.1, m.1)).collect();
        pts.sort();
        assert!(pts.windows(2).all(|w| w[1].1 > w[0].1), "pts order lost: {pts:?}");
        assert_eq!(mapped[4], (1_000_000, 1_033_000), "after the live point distances are kept");
    }

    #[test]
    fn a_young_burst_keeps_its_spacing() {
        // Frames closer than BURST_STEP keep their real distance.
        let mut m = TimeMap::default();
        let next = Ts(ms(500).0 + 40_000);
        m.start(&[(V, ms(500)), (A, ms(500)), (V, next)], 3_000_000_000);
        assert_eq!(at_us(&mut m, V, 500, 500).0, 2_999_960);
        let (d, _) = m.map(V, next, next, || unreachable!()).expect("sent");
        assert_eq!(d.useconds(), 3_000_000);
        // A burst older than the running time is squeezed, then held at zero, never wrapped.
        let mut early = TimeMap::default();
        early.start(&cached(1000, 600), 50_000_000);
        assert_eq!(at(&mut early, V, 1000, 1000), Some((0, 0)));
        assert_eq!(at(&mut early, V, 1000 + 33 * 599, 1000 + 33 * 599), Some((50, 50)));
        assert_eq!(at_us(&mut early, V, 1000 + 33 * 99, 1000 + 33 * 99).0, 0);
        assert_eq!(at_us(&mut early, V, 1000 + 33 * 100, 1000 + 33 * 100).0, 100);
    }

    #[test]
    fn audio_only_starts_at_its_newest_frame() {
        let mut m = TimeMap::default();
        let ready: Vec<_> = (0..50).map(|i| (A, ms(1000 + 20 * i))).collect();
        m.start(&ready, 5_000_000_000);
        assert_eq!(at(&mut m, A, 1960, 1960), None);
        assert_eq!(at(&mut m, A, 1980, 1980), Some((5000, 5000)));
        assert_eq!(at(&mut m, A, 2000, 2000), Some((5020, 5020)));
    }

    #[test]
    fn a_track_on_another_clock_is_anchored_on_its_own() {
        // First seen live: anchored at the running time it comes at.
        let mut m = TimeMap::default();
        m.map(A, ms(2000), ms(2000), || 7_000_000_000);
        let hours = 3_600_000_000 + 2500;
        let (d, _) = m.map(V, ms(hours), ms(hours), || 7_100_000_000).expect("sent");
        assert_eq!(d.mseconds(), 7100);
        assert_eq!(at(&mut m, V, hours + 33, hours + 33), Some((7133, 7133)));
        assert_eq!(at(&mut m, A, 2020, 2020), Some((7020, 7020)));

        // In the cached burst: each clock gets its own live point, both "now".
        let mut m = TimeMap::default();
        let mut ready: Vec<_> = (0..10).map(|i| (A, ms(2000 + 20 * i))).collect();
        ready.extend((0..30).map(|i| (V, ms(hours + 33 * i))));
        m.start(&ready, 9_000_000_000);
        assert_eq!(at(&mut m, A, 2180, 2180), Some((9000, 9000)));
        assert_eq!(at(&mut m, A, 2160, 2160), None);
        assert_eq!(at(&mut m, V, hours + 33 * 29, hours + 33 * 29), Some((9000, 9000)));
        assert_eq!(at_us(&mut m, V, hours, hours).0, 9_000_000 - 29 * 100);
        assert_eq!(at(&mut m, V, hours + 33 * 30, hours + 33 * 30), Some((9033, 9033)));
    }
}
