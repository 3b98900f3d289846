//! When audio that waits for the next picture must go out without it: a batching consumer
//! (see [`super::Batching`]) holds audio found without video until the next video frame, so
//! both go out in one write, but audio that the publisher already delivered late (an
//! interleaving muxer releases it in bursts between video frames) would then be more than one
//! frame late. So the hold ends when the audio is one frame interval late against the
//! stream's clock, as the consumer knows it: the earliest video frames arrived against their
//! timestamps.
//!
//! Sans-IO: the time is passed in.

use std::time::Duration;

use tokio::time::Instant;

use crate::media::Ts;

/// A video frame later than this against the anchor is a jump (a new publisher, a gap), not
/// lateness: the clock starts again from it.
const JUMP: Duration = Duration::from_secs(1);
/// How far the anchor creeps toward later per video frame (at most): publisher clocks drift,
/// and an anchor set once by an early frame would make everything look late after a while.
const CREEP: Duration = Duration::from_micros(100);
/// Frame intervals outside these are not believed (timestamp gaps, bursts).
const SHORTEST: Duration = Duration::from_millis(5);
const LONGEST_VIDEO: Duration = Duration::from_millis(100);
const LONGEST_AUDIO: Duration = Duration::from_millis(200);

/// See the module doc.
#[derive(Debug, Default, Clone)]
pub struct AudioDue {
    /// When a video frame stamped `.1` arrived, the earliest (creeping later, see [`CREEP`]).
    anchor: Option<(Instant, Ts)>,
    last_video: Option<Ts>,
    video_interval: Option<Duration>,
    last_audio: Option<Ts>,
    audio_interval: Option<Duration>,
}

fn interval(from: Option<Ts>, to: Ts, longest: Duration) -> Option<Duration> {
    let delta = Duration::from_nanos(u64::try_from((to - from?).as_nanos()).ok()?);
    (SHORTEST..=longest).contains(&delta).then_some(delta)
}

impl AudioDue {
    /// A video frame stamped `dts` handed out at `now` (woken by it: about when it arrived).
    pub fn video(&mut self, now: Instant, dts: Ts) {
        if let Some(d) = interval(self.last_video, dts, LONGEST_VIDEO) {
            self.video_interval = Some(d);
        }
        self.last_video = Some(dts);
        self.anchor = Some(match self.anchor {
            Some((at, stamp)) => {
                let lateness = now.duration_since(at).as_nanos() as i128 - i128::from((dts - stamp).as_nanos());
                if lateness <= 0 || lateness > JUMP.as_nanos() as i128 {
                    (now, dts)
                } else {
                    let creep = CREEP.min(Duration::from_nanos(lateness as u64));
                    (at + creep, stamp)
                }
            }
            None => (now, dts),
        });
    }

    /// An audio frame stamped `dts` handed out.
    pub fn audio(&mut self, dts: Ts) {
        if let Some(d) = interval(self.last_audio, dts, LONGEST_AUDIO) {
            self.audio_interval = Some(d);
        }
        self.last_audio = Some(dts);
    }

    /// When audio stamped `dts` is one video frame interval (at most `budget`) late; None
    /// before the picture's clock is known.
    pub fn due(&self, dts: Ts, budget: Duration) -> Option<Instant> {
        let (at, stamp) = self.anchor?;
        let frame = self.video_interval.map_or(budget, |d| d.min(budget));
        let ahead = (dts - stamp).as_nanos();
        let on_time = match u64::try_from(ahead) {
            Ok(ns) => at.checked_add(Duration::from_nanos(ns)),
            Err(_) => at.checked_sub(Duration::from_nanos(ahead.unsigned_abs())),
        };
        Some(on_time.unwrap_or(at) + frame)
    }

    /// When the audio frame expected next (one audio interval after the last) is due, if
    /// that is after `now`: a consumer waiting for video looks for audio then.
    pub fn next_due(&self, now: Instant, budget: Duration) -> Option<Instant> {
        let next = self.last_audio? + Ts(i64::try_from(self.audio_interval?.as_nanos()).ok()?);
        self.due(next, budget).filter(|&at| at > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn audio_is_due_one_frame_after_its_time_on_the_earliest_pictures_clock() {
        let t0 = Instant::now();
        let mut d = AudioDue::default();
        assert_eq!(d.due(Ts::from_millis(10), ms(40)), None, "no picture yet");
        d.video(t0, Ts::from_millis(1000));
        // A late picture does not move the clock (but for the creep)...
        d.video(t0 + ms(45), Ts::from_millis(1033));
        // ...an early one does.
        d.video(t0 + ms(60), Ts::from_millis(1066));
        assert_eq!(d.due(Ts::from_millis(1070), ms(40)), Some(t0 + ms(60) + ms(4) + ms(33)));
        assert_eq!(d.due(Ts::from_millis(1070), ms(20)), Some(t0 + ms(60) + ms(4) + ms(20)), "at most the budget");
        assert!(d.due(Ts::from_millis(500), ms(40)).is_some(), "an old stamp is due at once, not a panic");
    }

    #[test]
    fn the_next_audio_frame_is_expected_one_audio_interval_on() {
        let t0 = Instant::now();
        let mut d = AudioDue::default();
        d.video(t0, Ts::from_millis(0));
        d.video(t0 + ms(33), Ts::from_millis(33));
        d.audio(Ts::from_millis(0));
        assert_eq!(d.next_due(t0, ms(40)), None, "no interval yet");
        d.audio(Ts::from_millis(23));
        assert_eq!(d.next_due(t0, ms(40)), Some(t0 + ms(46) + ms(33)));
        assert_eq!(d.next_due(t0 + ms(100), ms(40)), None, "already past");
    }

    #[test]
    fn a_jump_restarts_the_clock_and_the_anchor_creeps() {
        let t0 = Instant::now();
        let mut d = AudioDue::default();
        d.video(t0, Ts::from_millis(0));
        d.video(t0 + ms(5000), Ts::from_millis(33));
        assert_eq!(d.due(Ts::from_millis(33), ms(40)), Some(t0 + ms(5000) + ms(33)));
        let mut e = AudioDue::default();
        e.video(t0, Ts::from_millis(0));
        for i in 1..=10u64 {
            e.video(t0 + ms(33 * i + 10), Ts::from_millis(33 * i as i64));
        }
        assert_eq!(e.anchor, Some((t0 + ms(1), Ts::from_millis(0))));
    }
}
