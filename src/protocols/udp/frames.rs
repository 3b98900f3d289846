//! Depayloaded samples → [`Frame`]s: one `Arc<TrackInfo>` per distinct caps, timestamps on
//! the ingest pipeline's running time (rtpbin has put both tracks on one clock through the
//! RTCP sender reports), and decode times made up for H.264 with B-frames (RTP carries only
//! presentation times).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use gstreamer as gst;

use crate::media::h264::AvcConfig;
use crate::media::{AudioInfo, Codec, Frame, TrackInfo, TrackKind, Ts};
use crate::pipeline::output_info;

/// Decode timestamps for a stream that only has presentation timestamps.
///
/// Without reordering, dts = pts. Once the stream is known to reorder (the SPS says so, or a
/// frame arrives with a pts below an earlier one), dts is the largest pts seen before the
/// frame, capped at its own pts: never after pts, never backwards.
#[derive(Debug, Default)]
pub struct DtsFromPts {
    reorders: bool,
    max_pts: Option<Ts>,
    last_dts: Option<Ts>,
}

impl DtsFromPts {
    /// The stream has B-frames (e.g. from its SPS), before any reordering was seen.
    pub fn set_reorders(&mut self) {
        self.reorders = true;
    }

    pub fn reorders(&self) -> bool {
        self.reorders
    }

    /// The dts of the next frame in decode order.
    pub fn next(&mut self, pts: Ts) -> Ts {
        if self.max_pts.is_some_and(|m| pts < m) {
            self.reorders = true;
        }
        let mut dts = match (self.reorders, self.max_pts) {
            (true, Some(max)) => pts.min(max),
            _ => pts,
        };
        if let Some(last) = self.last_dts {
            if dts < last {
                dts = last;
            }
        }
        self.max_pts = Some(self.max_pts.map_or(pts, |m| m.max(pts)));
        self.last_dts = Some(dts);
        dts
    }
}

struct State {
    caps: Option<(gst::Caps, Arc<TrackInfo>)>,
    dts: DtsFromPts,
    /// Whether the current info was made knowing the stream reorders.
    info_reorders: bool,
}

/// Turns one track's samples into frames.
pub struct FrameMaker {
    codec: Codec,
    state: Mutex<State>,
}

/// A sample that cannot become a frame, and why (logged once per track).
#[derive(Debug)]
pub struct Unusable(pub String);

impl FrameMaker {
    pub fn new(codec: Codec) -> FrameMaker {
        FrameMaker { codec, state: Mutex::new(State { caps: None, dts: DtsFromPts::default(), info_reorders: false }) }
    }

    /// The frame of one sample; `Ok(None)` for samples without data or timestamps.
    pub fn frame(&self, sample: &gst::Sample) -> Result<Option<Frame>, Unusable> {
        let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
            return Ok(None);
        };
        let Some(pts) = buffer.pts().or(buffer.dts()) else {
            return Ok(None);
        };
        let running = sample
            .segment()
            .and_then(|s| s.downcast_ref::<gst::format::Time>())
            .and_then(|s| s.to_running_time(pts))
            .unwrap_or(pts);
        let pts = Ts(running.nseconds() as i64);
        let mut state = lock(&self.state);
        let same_caps = state.caps.as_ref().is_some_and(|(c, _)| c.as_ref() == caps);
        if !same_caps {
            let info = self.info_for(caps, &mut state)?;
            state.caps = Some((caps.to_owned(), Arc::new(info)));
        }
        let dts = if self.codec == Codec::H264 { state.dts.next(pts) } else { pts };
        if state.dts.reorders() && !state.info_reorders {
            // Reordering seen mid-stream: the track has B-frames after all.
            let info = self.info_for(caps, &mut state)?;
            state.caps = Some((caps.to_owned(), Arc::new(info)));
        }
        let Some((_, info)) = state.caps.as_ref() else {
            return Ok(None);
        };
        let keyframe = info.kind() == TrackKind::Audio || !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let map = buffer.map_readable().map_err(|_| Unusable("unreadable buffer".into()))?;
        Ok(Some(Frame::new(info.clone(), dts, pts, keyframe, Bytes::copy_from_slice(map.as_slice()))))
    }

    fn info_for(&self, caps: &gst::CapsRef, state: &mut State) -> Result<TrackInfo, Unusable> {
        if self.codec == Codec::Mp2 {
            let layer = caps.structure(0).and_then(|s| s.get::<i32>("layer").ok());
            if layer.is_some_and(|l| l != 2) {
                return Err(Unusable(format!("MPEG audio layer {} is not MP2", layer.unwrap_or(0))));
            }
        }
        let info = output_info(caps, self.codec).or_else(|| self.fallback_info());
        let Some(mut info) = info else {
            return Err(Unusable(format!("caps {caps} lack the basics")));
        };
        if let TrackInfo::Video(v) = &mut info {
            if self.codec == Codec::H264 && !state.dts.reorders() {
                let sps_says =
                    v.config.as_deref().and_then(|c| AvcConfig::parse(c).ok()).and_then(|c| c.first_sps().ok());
                if sps_says.and_then(|s| s.may_have_bframes()) == Some(true) {
                    state.dts.set_reorders();
                }
            }
            v.bframes = state.dts.reorders();
            state.info_reorders = v.bframes;
        }
        Ok(info)
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

use crate::sync::lock;

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: i64) -> Ts {
        Ts::from_millis(v)
    }

    #[test]
    fn without_reordering_dts_is_pts() {
        let mut d = DtsFromPts::default();
        for t in [0, 33, 66, 100] {
            assert_eq!(d.next(ms(t)), ms(t));
        }
        assert!(!d.reorders());
    }

    #[test]
    fn bframes_get_monotonic_dts_never_after_pts() {
        // Decode order I0 P3 B1 B2 P6 B4 B5 P9 (frame units of 10 ms).
        let pts = [0, 30, 10, 20, 60, 40, 50, 90];
        let mut d = DtsFromPts::default();
        d.set_reorders();
        let dts: Vec<i64> = pts.iter().map(|p| d.next(ms(*p)).as_millis()).collect();
        assert_eq!(dts, [0, 0, 10, 20, 30, 40, 50, 60]);
        assert!(dts.iter().zip(pts).all(|(d, p)| *d <= p));
    }

    #[test]
    fn reordering_seen_mid_stream_switches_on() {
        let mut d = DtsFromPts::default();
        assert_eq!(d.next(ms(0)), ms(0));
        assert_eq!(d.next(ms(30)), ms(30));
        // B-frame: its pts is below the last; dts cannot go back, so it stays at 30 once.
        assert_eq!(d.next(ms(10)), ms(30));
        assert!(d.reorders());
        assert_eq!(d.next(ms(20)), ms(30));
        assert_eq!(d.next(ms(60)), ms(30));
        assert_eq!(d.next(ms(40)), ms(40));
    }
}
