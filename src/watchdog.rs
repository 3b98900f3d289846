//! Who paused: the async runtime, or the whole process? Two probes ask to wake every
//! [`TICK`] and record how much later than asked they woke — a task on the tokio runtime, and a
//! plain thread. A runtime whose workers are blocked (a synchronous call in async code) delays
//! only the task; a process starved of CPU delays both. `/metrics` shows each probe's worst
//! delay since the previous scrape and counts the delays over [`LATE`], so a soak can tell its
//! viewers' stalls apart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// How often each probe asks to wake.
pub const TICK: Duration = Duration::from_millis(100);
/// A delay past this is counted as a pause.
pub const LATE: Duration = Duration::from_millis(250);

/// One probe's record: the worst delay since it was last taken, and pauses so far.
#[derive(Debug, Default)]
pub struct Lateness {
    worst_us: AtomicU64,
    pauses: AtomicU64,
}

impl Lateness {
    /// Notes one wake-up `delay` after the time asked for.
    pub fn record(&self, delay: Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.worst_us.fetch_max(us, Ordering::Relaxed);
        if delay > LATE {
            self.pauses.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The worst delay since the previous call (and starts a new window).
    pub fn take_worst(&self) -> Duration {
        Duration::from_micros(self.worst_us.swap(0, Ordering::Relaxed))
    }

    pub fn pauses(&self) -> u64 {
        self.pauses.load(Ordering::Relaxed)
    }
}

/// The two probes.
#[derive(Debug, Default)]
pub struct Watchdog {
    pub runtime: Lateness,
    pub thread: Lateness,
}

impl Watchdog {
    /// Starts both probes (the task on the current tokio runtime, when there is one); they end
    /// with `shutdown`.
    pub fn start(shutdown: CancellationToken) -> Arc<Watchdog> {
        let watch = Arc::new(Watchdog::default());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (w, stop) = (watch.clone(), shutdown.clone());
            rt.spawn(async move {
                loop {
                    let asked = tokio::time::Instant::now() + TICK;
                    tokio::select! {
                        _ = tokio::time::sleep_until(asked) => w.runtime.record(tokio::time::Instant::now() - asked),
                        _ = stop.cancelled() => return,
                    }
                }
            });
        }
        let w = Arc::downgrade(&watch);
        let spawned = std::thread::Builder::new().name("watchdog".into()).spawn(move || {
            while !shutdown.is_cancelled() {
                let asked = Instant::now() + TICK;
                std::thread::sleep(TICK);
                let Some(w) = w.upgrade() else { return };
                w.thread.record(Instant::now().saturating_duration_since(asked));
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "watchdog thread not started");
        }
        watch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_delay_is_per_window_and_pauses_add_up() {
        let l = Lateness::default();
        l.record(Duration::from_millis(3));
        l.record(Duration::from_millis(400));
        l.record(Duration::from_millis(20));
        assert_eq!(l.take_worst(), Duration::from_millis(400));
        assert_eq!(l.take_worst(), Duration::ZERO, "a new window");
        l.record(Duration::from_millis(300));
        assert_eq!(l.pauses(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_blocked_runtime_shows_on_the_task_probe_only() {
        let stop = CancellationToken::new();
        let w = Watchdog::start(stop.clone());
        tokio::time::sleep(Duration::from_millis(250)).await;
        // Block the only worker, as a synchronous call in async code would (the test's own
        // future runs on the test thread, so the blocking call goes in a task).
        tokio::spawn(async { std::thread::sleep(Duration::from_millis(600)) }).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        let (runtime, thread) = (w.runtime.take_worst(), w.thread.take_worst());
        stop.cancel();
        assert!(runtime >= Duration::from_millis(300), "runtime probe saw {runtime:?}");
        assert!(thread < Duration::from_millis(300), "thread probe saw {thread:?}");
    }
}
