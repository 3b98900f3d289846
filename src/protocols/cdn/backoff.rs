//! Retry delays for relays: doubling from a minimum to a maximum, reset once a relay got
//! going again (went live), however briefly: a flapping origin is retried after the minimum
//! delay, not after one that grew while it was briefly up.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    /// Failed attempts in a row.
    pub failures: u32,
}

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
        b.reset();
        assert_eq!((b.fail().as_millis(), b.failures), (500, 1));
    }
}
