//! Maps a publisher's timestamps onto the stream's timeline: it starts at 0, never goes
//! backwards per track, and survives jumps (timestamp wraps, publisher-side restarts). A
//! publisher that takes over a stream in its reconnect grace continues the timeline where the
//! last one left it, the gap included ([`Timeline::resume`]).

use std::time::{Duration, Instant};

use crate::media::{TrackKind, Ts};

/// A jump larger than this (either way) is a discontinuity, not media timing.
const MAX_JUMP: Ts = Ts(5_000_000_000);
/// After a discontinuity, the next frame lands this far after the last one.
const STEP_AFTER_JUMP: Ts = Ts(20_000_000);

#[derive(Debug, Default)]
pub struct Timeline {
    offset: Option<i64>,
    last: [Option<Ts>; 2],
    discontinuities: u64,
    /// Where the first frame lands (0 for a new stream).
    start: Ts,
    /// No frame of a track lands before this (the end of the previous publisher's timeline).
    floor: Option<Ts>,
    /// The previous publisher's newest timestamp and when that frame came: `start` is set
    /// when this publisher's first frame comes (see [`Timeline::resume_from`]).
    pending: Option<(Ts, Instant)>,
}

impl Timeline {
    /// The timeline of a publisher taking over a stream whose last publisher's newest frame was
    /// at `last`, `gap` ago: its first frame lands `gap` (at least a frame step) after `last`,
    /// so the stream's time keeps pace with the wall clock, and nothing lands before `last`.
    pub fn resume(last: Option<Ts>, gap: Duration) -> Timeline {
        let Some(last) = last else { return Timeline::default() };
        let gap = Ts(i64::try_from(gap.as_nanos()).unwrap_or(i64::MAX / 4).min(i64::MAX / 4));
        let floor = last + STEP_AFTER_JUMP;
        Timeline { start: floor.max(last + gap), floor: Some(floor), ..Timeline::default() }
    }

    /// Like [`Timeline::resume`], with the gap measured from `at` (when the previous
    /// publisher's newest frame came) to when this publisher's first frame comes: the stream's
    /// time moves on by the real pause, however long the new publisher takes to send media.
    pub fn resume_from(last: Option<Ts>, at: Instant) -> Timeline {
        match last {
            Some(last) => Timeline { pending: Some((last, at)), ..Timeline::resume(Some(last), Duration::ZERO) },
            None => Timeline::default(),
        }
    }

    /// The newest mapped dts of any track (None before the first frame).
    pub fn newest(&self) -> Option<Ts> {
        self.last.iter().flatten().max().copied()
    }

    /// Maps one frame's (dts, pts); pts keeps its distance to dts.
    pub fn map(&mut self, kind: TrackKind, dts: Ts, pts: Ts) -> (Ts, Ts) {
        let slot = kind as usize;
        if let Some((last, at)) = self.pending.take() {
            self.start = Timeline::resume(Some(last), at.elapsed()).start;
        }
        let offset = *self.offset.get_or_insert(self.start.0 - dts.0);
        let mut out = Ts(dts.0 + offset);
        if let Some(floor) = self.floor.filter(|_| self.last[slot].is_none()) {
            // A track's first frame after a takeover (e.g. audio slightly before the video
            // that set the offset) does not go back into the previous publisher's time.
            out = out.max(floor);
        }
        if let Some(last) = self.last[slot] {
            if out < last - MAX_JUMP || out > last + MAX_JUMP {
                let target = last + STEP_AFTER_JUMP;
                self.offset = Some(target.0 - dts.0);
                self.discontinuities += 1;
                out = target;
            } else if out < last {
                out = last;
            }
        }
        self.last[slot] = Some(out);
        (out, out + (pts - dts))
    }

    pub fn discontinuities(&self) -> u64 {
        self.discontinuities
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: i64) -> Ts {
        Ts::from_millis(v)
    }

    #[test]
    fn starts_at_zero_and_keeps_cts() {
        let mut t = Timeline::default();
        assert_eq!(t.map(TrackKind::Video, ms(5000), ms(5066)), (ms(0), ms(66)));
        assert_eq!(t.map(TrackKind::Audio, ms(5010), ms(5010)), (ms(10), ms(10)));
        assert_eq!(t.map(TrackKind::Video, ms(5033), ms(5033)), (ms(33), ms(33)));
    }

    #[test]
    fn jumps_never_go_backwards() {
        let mut t = Timeline::default();
        t.map(TrackKind::Video, ms(100_000), ms(100_000));
        t.map(TrackKind::Video, ms(100_033), ms(100_033));
        // Publisher restarted its clock at 0.
        let (d, _) = t.map(TrackKind::Video, ms(0), ms(0));
        assert_eq!(d, ms(53));
        let (d2, _) = t.map(TrackKind::Video, ms(33), ms(33));
        assert_eq!(d2, ms(86));
        // Audio follows the same new offset.
        let (a, _) = t.map(TrackKind::Audio, ms(40), ms(40));
        assert_eq!(a, ms(93));
        // A forward jump of a minute is flattened too.
        let (d3, _) = t.map(TrackKind::Video, ms(60_066), ms(60_066));
        assert_eq!(d3, ms(106));
        assert_eq!(t.discontinuities(), 2);
        // Small reordering is clamped, not passed backwards.
        let (d4, _) = t.map(TrackKind::Video, ms(60_050), ms(60_050));
        assert_eq!(d4, ms(106));
    }

    #[test]
    fn a_publisher_taking_over_continues_after_the_gap() {
        let mut old = Timeline::default();
        old.map(TrackKind::Video, ms(1_000), ms(1_000));
        old.map(TrackKind::Audio, ms(4_990), ms(4_990));
        old.map(TrackKind::Video, ms(5_000), ms(5_080));
        assert_eq!(old.newest(), Some(ms(4_000)));
        // The new publisher's clock starts anywhere (here 0), 3 s after the last frame.
        let mut new = Timeline::resume(old.newest(), Duration::from_secs(3));
        assert_eq!(new.map(TrackKind::Video, ms(0), ms(40)), (ms(7_000), ms(7_040)));
        // Audio from a little before the first video frame keeps its place.
        let (a, _) = new.map(TrackKind::Audio, ms(-30), ms(-30));
        assert_eq!(a, ms(6_970));
        assert!(a > old.newest().unwrap());
        // Its own timing is kept from there on, and a later gap of 6 s is media time, not a jump.
        assert_eq!(new.map(TrackKind::Video, ms(33), ms(33)).0, ms(7_033));
        assert_eq!(new.map(TrackKind::Audio, ms(23), ms(23)).0, ms(7_023));
        assert_eq!(new.discontinuities(), 0);
    }

    #[test]
    fn the_gap_is_measured_up_to_the_new_publishers_first_frame() {
        let last_frame_at = Instant::now() - Duration::from_secs(2);
        let mut new = Timeline::resume_from(Some(ms(10_000)), last_frame_at);
        std::thread::sleep(Duration::from_millis(300));
        let (d, _) = new.map(TrackKind::Video, ms(0), ms(0));
        assert!(d >= ms(12_300) && d < ms(13_000), "{d}");
        assert_eq!(new.map(TrackKind::Video, ms(40), ms(40)).0, d + ms(40));
    }

    #[test]
    fn an_immediate_takeover_still_moves_forward() {
        let mut old = Timeline::default();
        old.map(TrackKind::Video, ms(90_000), ms(90_000));
        old.map(TrackKind::Video, ms(92_000), ms(92_000));
        let mut new = Timeline::resume(old.newest(), Duration::ZERO);
        // The same clock as before (an RTMP relay reconnecting): still after the last frame.
        let (d, _) = new.map(TrackKind::Video, ms(91_000), ms(91_000));
        assert_eq!(d, ms(2_020));
        assert_eq!(new.map(TrackKind::Audio, ms(90_990), ms(90_990)).0, ms(2_020));
        // Without a previous timeline it is a fresh start.
        let mut fresh = Timeline::resume(None, Duration::from_secs(3));
        assert_eq!(fresh.map(TrackKind::Video, ms(500), ms(500)).0, ms(0));
    }
}
