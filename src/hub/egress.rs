//! Bounded egress, shared by every consumer that writes to a peer (HTTP-FLV, RTMP play, CDN
//! push, H5): no peer can make the gateway wait on it for long or hold unbounded output.
//!
//! The consumer's output (a queue, a socket's send buffer) is watched for progress: the bytes
//! the peer has taken so far and the bytes still waiting. A frame that finds the output full
//! waits at most [`FRAME_WAIT`] for room; without room it is a lag: the consumer skips to the
//! next keyframe, and is dropped after `hub.max_lag_events` lags. An output with bytes waiting
//! that the peer takes nothing of for the stall bound (`hub.write_stall_seconds`, for pushes
//! `relay.write_stall_seconds`) drops the consumer whatever the lags.
//!
//! [`EgressPacer`] decides, without IO (the time is passed in); [`within`] is the bounded wait.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// The longest a frame waits for room in a full output before the consumer has lagged.
pub const FRAME_WAIT: Duration = Duration::from_secs(1);
/// The default stall bound: an output that takes nothing for this long ends its consumer.
pub const WRITE_STALL: Duration = Duration::from_secs(8);

/// What to do with the next frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The output has room: write it.
    Write,
    /// The consumer lagged: drop what is pending for it and go on at the next keyframe.
    SkipToKeyframe,
    /// End the consumer.
    Drop(DropReason),
}

/// Why a consumer is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Its output took nothing for the stall bound.
    Stalled,
    /// It lagged more often than allowed.
    LaggedTooOften,
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DropReason::Stalled => "took nothing for too long",
            DropReason::LaggedTooOften => "lagged too often",
        })
    }
}

/// One consumer's output bound (see the module doc).
#[derive(Debug, Clone)]
pub struct EgressPacer {
    stall: Duration,
    /// Bytes the peer had taken at the last look.
    taken: u64,
    /// Since when output has waited without the peer taking any of it.
    waiting_since: Option<Instant>,
}

impl EgressPacer {
    /// A bound of `stall` without progress (at least 100 ms).
    pub fn new(stall: Duration) -> EgressPacer {
        EgressPacer { stall: stall.max(Duration::from_millis(100)), taken: 0, waiting_since: None }
    }

    pub fn stall(&self) -> Duration {
        self.stall
    }

    /// Records how far the output is at `now`: `taken` bytes taken by the peer in all,
    /// `pending` bytes still waiting. Any byte taken is progress and restarts the stall clock;
    /// nothing waiting stops it.
    pub fn observe(&mut self, now: Instant, taken: u64, pending: usize) {
        let progressed = taken != self.taken;
        self.taken = taken;
        self.waiting_since = match (pending, self.waiting_since) {
            (0, _) => None,
            (_, Some(since)) if !progressed => Some(since),
            _ => Some(now),
        };
    }

    /// When the consumer is dropped unless its output takes something first (then observe
    /// again and ask [`EgressPacer::stalled`]).
    pub fn deadline(&self) -> Option<Instant> {
        self.waiting_since.map(|since| since + self.stall)
    }

    /// Whether the output has taken nothing for the stall bound, as of the last observation.
    pub fn stalled(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|at| now >= at)
    }

    /// How long a frame may wait for room at `now`: [`FRAME_WAIT`], less when the stall
    /// bound is nearer.
    pub fn frame_wait(&self, now: Instant) -> Duration {
        let wait = FRAME_WAIT.min(self.stall);
        self.deadline().map_or(wait, |at| at.saturating_duration_since(now).min(wait))
    }

    /// The verdict on a frame at `now`: `room` is whether the output had (or made, within
    /// [`EgressPacer::frame_wait`]) room for it. Without room, a stalled output drops the
    /// consumer; otherwise it lagged, and `lag` counts that lag (true: once too often).
    pub fn decide(&mut self, now: Instant, room: bool, lag: impl FnOnce() -> bool) -> Verdict {
        if room {
            Verdict::Write
        } else if self.stalled(now) {
            Verdict::Drop(DropReason::Stalled)
        } else if lag() {
            Verdict::Drop(DropReason::LaggedTooOften)
        } else {
            Verdict::SkipToKeyframe
        }
    }
}

/// Runs `write` (waiting for room, flushing) for at most `wait`: `None` if it did not finish.
/// `write` must be cancel-safe (what it wrote before the bound stays written).
pub async fn within<T>(wait: Duration, write: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(wait, write).await.ok()
}

/// Sleeps until `at`, or for ever without one (a `select!` arm for [`EgressPacer::deadline`]).
pub async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_secs(8);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn an_output_that_keeps_taking_never_stalls() {
        let t0 = Instant::now();
        let mut p = EgressPacer::new(STALL);
        for i in 1..100u64 {
            // Always something waiting, but the peer takes a little every 200 ms.
            p.observe(t0 + ms(200 * i), i * 10, 4096);
            assert!(!p.stalled(t0 + ms(200 * i)));
            assert_eq!(p.decide(t0 + ms(200 * i), true, || unreachable!()), Verdict::Write);
        }
        assert_eq!(p.deadline(), Some(t0 + ms(200 * 99) + STALL));
    }

    #[test]
    fn an_output_that_takes_nothing_is_dropped_after_the_bound_from_when_it_started_waiting() {
        let t0 = Instant::now();
        let mut p = EgressPacer::new(STALL);
        p.observe(t0, 1000, 0);
        assert_eq!(p.deadline(), None, "nothing waiting: no clock");
        assert_eq!(p.frame_wait(t0), FRAME_WAIT);
        p.observe(t0 + ms(100), 1000, 500);
        p.observe(t0 + ms(5000), 1000, 9000);
        assert_eq!(p.deadline(), Some(t0 + ms(100) + STALL));
        assert_eq!(p.frame_wait(t0 + ms(7600)), ms(500), "the wait never passes the bound");
        let mut lags = 0;
        let mut lag = || {
            lags += 1;
            false
        };
        assert_eq!(p.decide(t0 + ms(7000), false, &mut lag), Verdict::SkipToKeyframe);
        assert_eq!(p.decide(t0 + ms(8100), false, &mut lag), Verdict::Drop(DropReason::Stalled));
        assert_eq!(lags, 1, "a stall is not counted as a lag");
    }

    #[test]
    fn progress_or_an_empty_output_restarts_the_clock() {
        let t0 = Instant::now();
        let mut p = EgressPacer::new(STALL);
        p.observe(t0, 0, 100);
        p.observe(t0 + ms(7000), 50, 100);
        assert_eq!(p.deadline(), Some(t0 + ms(7000) + STALL));
        p.observe(t0 + ms(7500), 50, 0);
        assert_eq!(p.deadline(), None);
        p.observe(t0 + ms(9000), 50, 10);
        assert!(!p.stalled(t0 + ms(16_000)));
        assert!(p.stalled(t0 + ms(17_000)));
    }

    #[test]
    fn lags_past_the_allowance_drop_the_consumer() {
        let t0 = Instant::now();
        let mut p = EgressPacer::new(STALL);
        let mut lags = 0;
        let verdicts: Vec<Verdict> = (0..3)
            .map(|_| {
                p.decide(t0, false, || {
                    lags += 1;
                    lags > 2
                })
            })
            .collect();
        assert_eq!(
            verdicts,
            [Verdict::SkipToKeyframe, Verdict::SkipToKeyframe, Verdict::Drop(DropReason::LaggedTooOften)]
        );
    }

    #[test]
    fn a_tiny_bound_is_raised_and_bounds_the_frame_wait() {
        let p = EgressPacer::new(Duration::ZERO);
        assert_eq!(p.stall(), ms(100));
        assert_eq!(p.frame_wait(Instant::now()), ms(100));
    }

    #[tokio::test]
    async fn within_bounds_a_write_that_never_ends() {
        assert_eq!(within(ms(20), std::future::pending::<()>()).await, None);
        assert_eq!(within(ms(20), async { 7 }).await, Some(7));
    }
}
