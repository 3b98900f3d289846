//! Retry delays for relays: doubling from a minimum to a maximum, reset after a good run.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    /// Failed attempts in a row.
    pub failures: u32,
}

/// A connection that stayed up this long counts as a success: the next failure starts over.
pub const GOOD_RUN: Duration = Duration::from_secs(10);

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max: max.max(min), next: min, failures: 0 }
    }

    /// The delay before the next attempt, after a failure.
    pub fn fail(&mut self) -> Duration {
        self.failures += 1;
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// A run that lasted `lasted` ended; a long one resets the delays.
    pub fn ended_after(&mut self, lasted: Duration) {
        if lasted >= GOOD_RUN {
            self.reset();
        }
    }

    pub fn reset(&mut self) {
        self.next = self.min;
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_max_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(3));
        let delays: Vec<_> = (0..5).map(|_| b.fail().as_millis()).collect();
        assert_eq!(delays, [500, 1000, 2000, 3000, 3000]);
        assert_eq!(b.failures, 5);
        b.ended_after(Duration::from_secs(1));
        assert_eq!(b.fail().as_millis(), 3000);
        b.ended_after(GOOD_RUN);
        assert_eq!(b.fail().as_millis(), 500);
    }
}
