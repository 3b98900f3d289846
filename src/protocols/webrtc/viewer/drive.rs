//! The tasks that drive connected WHEP viewers: up to one per core (started with a viewer,
//! ended when its last viewer leaves), each holding many viewers' str0m sessions and waking once every `TICK` for all of
//! them, instead of one task per viewer waking for itself. At each tick a viewer handles what its
//! receive task read (RTCP, NACK, PLI, consent checks), takes the frames its subscription has ready,
//! moves its `Rtc` on with one clock read shared by the whole tick, and sends with one
//! `sendmmsg`.
//!
//! A viewer comes here once ICE and DTLS are up (its own task answers the handshake without
//! waiting for a tick) and leaves when its session ends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::Viewer;
use crate::sync::lock;

/// How often a driver wakes: what its viewers' subscriptions have ready then goes out, for at
/// most this much delay. Short, so packets leave close to their frame's time (receivers with
/// a small jitterbuffer drop what comes late); a tick where a viewer has nothing to send and
/// no str0m timer due costs it almost nothing.
pub const TICK: Duration = Duration::from_millis(5);

/// One driver task: where to hand it viewers, and how many it holds.
struct Driver {
    tx: mpsc::UnboundedSender<Viewer>,
    load: Arc<AtomicUsize>,
}

/// The gateway's drivers (cheap to clone), started on first use in the runtime of the caller.
#[derive(Clone, Default)]
pub struct Drivers {
    running: Arc<Mutex<Vec<Driver>>>,
}

impl Drivers {
    /// Hands a connected viewer to the least loaded driver (starting drivers up to one per
    /// core; a driver whose task is gone is replaced).
    pub fn adopt(&self, viewer: Viewer) {
        let mut running = lock(&self.running);
        // A driver that ended (its last viewer left) takes no more.
        running.retain(|d| !d.tx.is_closed());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let loads: Vec<usize> = running.iter().map(|d| d.load.load(Ordering::Relaxed)).collect();
        let viewer = match pick(&loads, cores) {
            Some(i) => {
                let driver = &running[i];
                driver.load.fetch_add(1, Ordering::Relaxed);
                match driver.tx.send(viewer) {
                    Ok(()) => return,
                    // It ended just now: a new driver takes the viewer.
                    Err(mpsc::error::SendError(viewer)) => {
                        driver.load.fetch_sub(1, Ordering::Relaxed);
                        viewer
                    }
                }
            }
            None => viewer,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let load = Arc::new(AtomicUsize::new(1));
        tokio::spawn(run(viewer, rx, load.clone()));
        running.push(Driver { tx, load });
    }

    /// Viewers held by the drivers now.
    pub fn viewers(&self) -> usize {
        let running = lock(&self.running);
        running.iter().map(|d| d.load.load(Ordering::Relaxed)).sum()
    }
}

/// Which of the drivers with `loads` takes the next viewer: an idle one, else a new one while
/// there are fewer than `max`, else the least loaded (None: start a new one).
fn pick(loads: &[usize], max: usize) -> Option<usize> {
    let least = loads.iter().enumerate().min_by_key(|(_, l)| **l).map(|(i, _)| i);
    match least {
        Some(i) if loads[i] == 0 => Some(i),
        _ if loads.len() < max.max(1) => None,
        least => least,
    }
}

/// When the tick after the one due at `due` is, at `now`: one `TICK` later, or one `TICK` from
/// now when the driver fell behind (no catching up with a burst of ticks).
fn next_tick(due: Instant, now: Instant) -> Instant {
    let next = due + TICK;
    if next <= now {
        now + TICK
    } else {
        next
    }
}

/// A driver: ticks while it has viewers, ends when the last one leaves.
async fn run(first: Viewer, mut rx: mpsc::UnboundedReceiver<Viewer>, load: Arc<AtomicUsize>) {
    let mut viewers: Vec<Viewer> = vec![first];
    let mut due = Instant::now() + TICK;
    let mut open = true;
    loop {
        if viewers.is_empty() {
            // The last viewer left: the task ends (no idle task stays behind), unless a viewer
            // was handed over meanwhile; `adopt` starts a new driver for the next ones.
            rx.close();
            open = false;
            while let Ok(v) = rx.try_recv() {
                viewers.push(v);
            }
            if viewers.is_empty() {
                return;
            }
        }
        tokio::select! {
            biased;
            v = rx.recv(), if open => {
                match v {
                    Some(v) => viewers.push(v),
                    None => open = false,
                }
                continue;
            }
            _ = tokio::time::sleep_until(due.into()) => {}
        }
        let now = Instant::now();
        due = next_tick(due, now);
        viewers.retain_mut(|v| match v.drive(now) {
            Ok(()) => true,
            Err(reason) => {
                v.end(reason);
                load.fetch_sub(1, Ordering::Relaxed);
                false
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_viewer_goes_to_an_idle_driver_else_a_new_one_up_to_the_cores_else_the_least_loaded() {
        assert_eq!(pick(&[], 2), None, "the first driver");
        assert_eq!(pick(&[3], 2), None, "a second core");
        assert_eq!(pick(&[3, 0], 2), Some(1), "an idle driver first");
        assert_eq!(pick(&[3, 2], 2), Some(1));
        assert_eq!(pick(&[5, 2, 4], 2), Some(1), "never more than the cores (after a shrink)");
        assert_eq!(pick(&[7], 0), Some(0), "at least one");
    }

    #[test]
    fn ticks_keep_their_pace_and_do_not_catch_up() {
        let t0 = Instant::now();
        assert_eq!(next_tick(t0, t0 + Duration::from_millis(3)), t0 + TICK, "on time: one TICK after the last");
        let late = t0 + 3 * TICK + Duration::from_millis(1);
        assert_eq!(next_tick(t0, late), late + TICK, "late: one TICK from now, not three at once");
    }
}
