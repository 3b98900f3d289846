//! Frame times → the sending pipeline's running time, for UDP outputs: the payloaders derive
//! RTP timestamps from it and rtpbin's sender reports map it to wall-clock time, so audio and
//! video must keep the distances they have on the stream's timeline.

use crate::media::{TrackKind, Ts};

/// Tracks this far apart at their first frames are on different clocks (e.g. an encoder that
/// starts its timestamps at 1000 hours) and are anchored separately.
pub const MAX_SPREAD: Ts = Ts(60_000_000_000);

/// Maps stream timestamps to running time (nanoseconds).
#[derive(Debug, Default)]
pub struct SendClock {
    /// (stream time, running time) of the shared anchor.
    anchor: Option<(Ts, u64)>,
    /// Per track: `Some(None)` uses the shared anchor, `Some(Some(_))` its own.
    own: [Option<Option<(Ts, u64)>>; 2],
}

impl SendClock {
    /// Anchors so that `newest` (the last frame ready at the start) maps to `now`: frames
    /// cached before it are stamped in the past, sent at once, not a GOP late for good.
    pub fn start(&mut self, first: Ts, newest: Ts, now: u64) {
        let age = (newest - first).0.clamp(0, MAX_SPREAD.0) as u64;
        self.anchor.get_or_insert((first, now.saturating_sub(age)));
    }

    /// `(dts, pts)` in running time; `now` is read only when an anchor is made.
    pub fn map(&mut self, kind: TrackKind, dts: Ts, pts: Ts, now: impl FnOnce() -> u64) -> (u64, u64) {
        let mut now = Some(now);
        let mut read_now = || now.take().map_or(0, |f| f());
        let shared = *self.anchor.get_or_insert_with(|| (dts, read_now()));
        let slot = &mut self.own[kind as usize];
        let own = *slot.get_or_insert_with(|| {
            let spread = (dts - shared.0).0.abs();
            (spread > MAX_SPREAD.0).then(|| (dts, read_now()))
        });
        let (first, base) = own.unwrap_or(shared);
        let at = |ts: Ts| base.saturating_add_signed((ts - first).0);
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
    fn distances_are_kept_and_the_start_is_now() {
        let mut c = SendClock::default();
        assert_eq!(c.map(TrackKind::Video, ms(1000), ms(1040), || 5_000_000_000), (5_000_000_000, 5_040_000_000));
        assert_eq!(c.map(TrackKind::Audio, ms(1010), ms(1010), || panic!("anchored")).0, 5_010_000_000);
        // Earlier than the anchor clamps at zero instead of wrapping.
        let mut early = SendClock::default();
        early.map(TrackKind::Video, ms(5000), ms(5000), || 1_000_000);
        assert_eq!(early.map(TrackKind::Audio, ms(4000), ms(4000), || 0).0, 0);
    }

    #[test]
    fn a_cached_gop_is_stamped_in_the_past() {
        let mut c = SendClock::default();
        c.start(ms(0), ms(2000), 10_000_000_000);
        assert_eq!(c.map(TrackKind::Video, ms(0), ms(0), || 0).0, 8_000_000_000);
        assert_eq!(c.map(TrackKind::Video, ms(2000), ms(2000), || 0).0, 10_000_000_000);
    }

    #[test]
    fn a_track_on_another_clock_gets_its_own_anchor() {
        let mut c = SendClock::default();
        c.map(TrackKind::Audio, ms(500), ms(500), || 1_000_000_000);
        let far = ms(3_600_000_000);
        assert_eq!(c.map(TrackKind::Video, far, far, || 1_200_000_000).0, 1_200_000_000);
        assert_eq!(c.map(TrackKind::Video, far + ms(40), far + ms(40), || 0).0, 1_240_000_000);
        assert_eq!(c.map(TrackKind::Audio, ms(520), ms(520), || 0).0, 1_020_000_000);
    }
}
