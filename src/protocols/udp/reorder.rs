//! A small reorder buffer for one RTP stream, bounded by the configured latency: a packet in
//! sequence goes out at once; after a gap, later packets wait until the missing ones arrive
//! or the first of them has waited `latency` (then the gap is given up as lost). Duplicates
//! and packets older than what already went out are dropped.
//!
//! Pure: sequence numbers, arrival times and items in, items in sequence order out.

use std::time::Duration;

/// Packets held at most; beyond this the oldest gap is given up at once.
pub const MAX_HELD: usize = 512;
/// A sequence number this far ahead of the expected one starts over (the sender restarted:
/// the packet filter let the jump through).
pub const RESTART_DISTANCE: u16 = 3000;

/// A sequence number at most this far behind the expected one is late (dropped); further
/// behind is a restart too.
pub const LATE_DISTANCE: u16 = 1000;

/// What [`Reorder::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Held (maybe ready at once: call [`Reorder::pop`]).
    Held,
    /// Already released or held: a duplicate or too late.
    Dropped,
}

/// The reorder buffer; `T` is the packet.
#[derive(Debug)]
pub struct Reorder<T> {
    latency: Duration,
    /// The next sequence number to release.
    next: Option<u16>,
    /// Held packets, sorted by distance from `next`.
    held: Vec<(u16, Duration, T)>,
}

impl<T> Reorder<T> {
    pub fn new(latency: Duration) -> Reorder<T> {
        Reorder { latency, next: None, held: Vec::new() }
    }

    /// Forgets everything (a new source).
    pub fn reset(&mut self) {
        self.next = None;
        self.held.clear();
    }

    /// True when `seq` is the next to release and nothing is held: the caller passes the
    /// packet on itself (no copy into the buffer), as if pushed and popped.
    pub fn pass(&mut self, seq: u16) -> bool {
        if !self.held.is_empty() || self.next.is_some_and(|next| next != seq) {
            return false;
        }
        self.next = Some(seq.wrapping_add(1));
        true
    }

    /// Takes one packet that arrived at `now`.
    pub fn push(&mut self, seq: u16, now: Duration, item: T) -> Pushed {
        let next = *self.next.get_or_insert(seq);
        let ahead = seq.wrapping_sub(next);
        if ahead > u16::MAX - LATE_DISTANCE {
            return Pushed::Dropped;
        }
        if ahead >= RESTART_DISTANCE {
            // What is held waits for a gap of the old run: given up with it.
            self.held.clear();
            self.next = Some(seq);
        }
        let base = self.next.unwrap_or(seq);
        let key = |s: u16| s.wrapping_sub(base);
        let mine = key(seq);
        match self.held.binary_search_by_key(&mine, |h| key(h.0)) {
            Ok(_) => Pushed::Dropped,
            Err(at) => {
                self.held.insert(at, (seq, now, item));
                Pushed::Held
            }
        }
    }

    /// The next packet to release at `now`, with whether packets before it were given up.
    pub fn pop(&mut self, now: Duration) -> Option<(T, bool)> {
        let next = self.next?;
        let (seq, arrived, _) = self.held.first()?;
        let lost = *seq != next;
        if lost && now < *arrived + self.latency && self.held.len() <= MAX_HELD {
            return None;
        }
        let (seq, _, item) = self.held.remove(0);
        self.next = Some(seq.wrapping_add(1));
        Some((item, lost))
    }

    /// When a held packet will be released even if the gap before it is not filled.
    pub fn deadline(&self) -> Option<Duration> {
        let next = self.next?;
        let (seq, arrived, _) = self.held.first()?;
        Some(if *seq == next { Duration::ZERO } else { *arrived + self.latency })
    }

    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn drain(r: &mut Reorder<u16>, now: Duration) -> Vec<(u16, bool)> {
        std::iter::from_fn(|| r.pop(now)).collect()
    }

    #[test]
    fn in_order_packets_go_out_at_once() {
        let mut r = Reorder::new(ms(200));
        for s in [65534u16, 65535, 0, 1] {
            assert_eq!(r.push(s, ms(0), s), Pushed::Held);
            assert_eq!(drain(&mut r, ms(0)), [(s, false)]);
        }
        assert_eq!(r.deadline(), None);
        // The same without the buffer: passed on while nothing is held.
        let mut r = Reorder::new(ms(200));
        assert!(r.pass(7) && r.pass(8));
        assert!(!r.pass(10), "a gap: buffered");
        r.push(10, ms(0), 10);
        assert!(!r.pass(9), "something is held");
        r.push(9, ms(0), 9);
        assert_eq!(drain(&mut r, ms(0)), [(9, false), (10, false)]);
        assert!(r.pass(11));
    }

    #[test]
    fn a_gap_waits_for_the_missing_packet_then_for_the_latency() {
        let mut r = Reorder::new(ms(200));
        r.push(10, ms(0), 10);
        assert_eq!(drain(&mut r, ms(0)), [(10, false)]);
        r.push(12, ms(5), 12);
        r.push(13, ms(6), 13);
        assert_eq!(drain(&mut r, ms(10)), []);
        assert_eq!(r.deadline(), Some(ms(205)));
        r.push(11, ms(20), 11);
        assert_eq!(drain(&mut r, ms(20)), [(11, false), (12, false), (13, false)]);
        // 15 never comes: 16 and 17 go out after the latency, 16 flagged.
        r.push(16, ms(30), 16);
        r.push(17, ms(31), 17);
        r.push(14, ms(32), 14);
        assert_eq!(drain(&mut r, ms(40)), [(14, false)]);
        assert_eq!(drain(&mut r, ms(229)), []);
        assert_eq!(drain(&mut r, ms(230)), [(16, true), (17, false)]);
    }

    #[test]
    fn duplicates_and_late_packets_are_dropped() {
        let mut r = Reorder::new(ms(100));
        r.push(5, ms(0), 5);
        assert_eq!(drain(&mut r, ms(0)), [(5, false)]);
        assert_eq!(r.push(5, ms(1), 5), Pushed::Dropped);
        assert_eq!(r.push(3, ms(1), 3), Pushed::Dropped);
        r.push(7, ms(1), 7);
        assert_eq!(r.push(7, ms(2), 7), Pushed::Dropped);
        assert_eq!(r.held(), 1);
    }

    #[test]
    fn a_restart_far_ahead_starts_a_new_run() {
        let mut r = Reorder::new(ms(100));
        r.push(100, ms(0), 100);
        drain(&mut r, ms(0));
        r.push(40_000, ms(1), 40_000);
        assert_eq!(drain(&mut r, ms(1)), [(40_000, false)]);
        r.push(40_001, ms(2), 40_001);
        assert_eq!(drain(&mut r, ms(2)), [(40_001, false)]);
        // Backwards by more than a late packet can be: a restart too.
        r.push(20_000, ms(3), 20_000);
        assert_eq!(drain(&mut r, ms(3)), [(20_000, false)]);
    }

    #[test]
    fn the_buffer_is_bounded() {
        let mut r = Reorder::new(ms(10_000));
        r.push(0, ms(0), 0);
        drain(&mut r, ms(0));
        for s in 2..(MAX_HELD as u16 + 3) {
            r.push(s, ms(1), s);
        }
        let out = drain(&mut r, ms(2));
        assert!(!out.is_empty() && out[0] == (2, true), "{:?}", &out[..3.min(out.len())]);
        assert!(r.held() <= MAX_HELD);
    }
}
