//! Maps a publisher's timestamps onto the stream's timeline: it starts at 0, never goes
//! backwards per track, and survives jumps (timestamp wraps, publisher-side restarts).

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
}

impl Timeline {
    /// Maps one frame's (dts, pts); pts keeps its distance to dts.
    pub fn map(&mut self, kind: TrackKind, dts: Ts, pts: Ts) -> (Ts, Ts) {
        let slot = kind as usize;
        let offset = *self.offset.get_or_insert(-dts.0);
        let mut out = Ts(dts.0 + offset);
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
}
