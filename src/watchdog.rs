//! Who paused: the async runtime, or the whole process? One plain thread wakes every [`TICK`]
//! and records how much later than asked it woke (the `thread` probe). The `runtime` probe is a
//! tokio task that thread pings: it records how late, against the same asked wake-up, the
//! runtime got to run it. A runtime whose workers are blocked (a synchronous call in async code)
//! delays only the task; a process starved of CPU delays both. `/metrics` shows each probe's
//! worst delay since the previous scrape and counts the delays over [`LATE`], so a soak can tell
//! its viewers' stalls apart.
//!
//! An idle runtime is not woken for this: when every worker is parked (tokio's park/unpark
//! count, read without waking anyone) a ping would run at once, as late as the thread itself
//! woke, so that is what the runtime probe records. Only a tick that finds a worker busy pings
//! the task, and no new ping goes out while one is pending: a blocked runtime shows as the age
//! of the ping it answers late. An idle gateway so wakes once a [`TICK`] for the watchdog (its
//! thread), not three or four times (the thread, and a worker for the task's timer).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::runtime::RuntimeMetrics;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How often the probe thread asks to wake.
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
    /// Pings sent to the runtime task so far.
    pings: AtomicU64,
}

/// The runtime probe's side of the thread: the pending ping and the runtime's workers.
struct Ping {
    /// When the pending ping's tick was asked for, in nanoseconds after `base` plus one; 0: none.
    asked: AtomicU64,
    base: Instant,
    notify: Notify,
}

impl Ping {
    fn at(&self, asked: Instant) -> u64 {
        u64::try_from(asked.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    /// The task's side: how late the pending ping (if any) ran.
    fn answer(&self) -> Option<Duration> {
        let asked = self.asked.swap(0, Ordering::AcqRel).checked_sub(1)?;
        Some(self.base.elapsed().saturating_sub(Duration::from_nanos(asked)))
    }
}

/// Whether every worker of the runtime is parked (waiting for work), as of its last report.
fn all_parked(metrics: &RuntimeMetrics) -> bool {
    (0..metrics.num_workers()).all(|w| metrics.worker_park_unpark_count(w) % 2 == 1)
}

impl Watchdog {
    /// Starts the probe thread, and the runtime probe's task on the current tokio runtime when
    /// there is one; they end with `shutdown`.
    pub fn start(shutdown: CancellationToken) -> Arc<Watchdog> {
        let watch = Arc::new(Watchdog::default());
        let runtime = tokio::runtime::Handle::try_current().ok().map(|rt| {
            let ping = Arc::new(Ping { asked: AtomicU64::new(0), base: Instant::now(), notify: Notify::new() });
            let (w, p, stop) = (watch.clone(), ping.clone(), shutdown.clone());
            rt.spawn(async move {
                loop {
                    tokio::select! {
                        _ = p.notify.notified() => if let Some(late) = p.answer() { w.runtime.record(late) },
                        _ = stop.cancelled() => return,
                    }
                }
            });
            (rt.metrics(), ping)
        });
        let w = Arc::downgrade(&watch);
        let spawned = std::thread::Builder::new().name("watchdog".into()).spawn(move || probe(w, runtime, shutdown));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "watchdog thread not started");
        }
        watch
    }

    /// Pings sent to the runtime task so far (ticks that found a worker busy).
    pub fn pings(&self) -> u64 {
        self.pings.load(Ordering::Relaxed)
    }
}

/// The probe thread: wakes every [`TICK`], records its own delay, looks after the runtime's.
fn probe(w: Weak<Watchdog>, runtime: Option<(RuntimeMetrics, Arc<Ping>)>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let asked = Instant::now() + TICK;
        std::thread::sleep(TICK);
        let Some(w) = w.upgrade() else { return };
        let late = Instant::now().saturating_duration_since(asked);
        w.thread.record(late);
        let Some((metrics, ping)) = &runtime else { continue };
        if ping.asked.load(Ordering::Acquire) != 0 {
            // Still pending: the task records its whole wait when it runs.
        } else if all_parked(metrics) {
            // Nothing in the way: a ping would run as late as this thread woke.
            w.runtime.record(late);
        } else {
            ping.asked.store(ping.at(asked), Ordering::Release);
            w.pings.fetch_add(1, Ordering::Relaxed);
            ping.notify.notify_one();
        }
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

    #[test]
    fn an_idle_runtime_is_not_woken() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let stop = CancellationToken::new();
        let w = {
            let _in = rt.enter();
            Watchdog::start(stop.clone())
        };
        // Nothing runs on the runtime: every tick finds its workers parked.
        std::thread::sleep(Duration::from_millis(650));
        let (pings, runtime) = (w.pings(), w.runtime.take_worst());
        stop.cancel();
        assert_eq!(pings, 0, "the probe pinged an idle runtime");
        assert!(runtime < Duration::from_millis(300), "runtime probe saw {runtime:?}");
    }
}
