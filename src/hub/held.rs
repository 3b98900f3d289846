//! What a consumer's output holds, in media time: a player is bounded by how far behind live
//! its queue has fallen, not by bytes (1 MiB is 16 s of a 500 kb/s classroom but 1 s of an
//! 8 Mb/s one). Pure: the caller says what it queued (its end as a byte offset, and its
//! timestamp) and how many bytes still wait for the peer; [`HeldMedia::span`] is the media
//! time between the oldest frame not yet taken and the newest queued.
//!
//! A byte cap stays as a backstop: timestamps come from publishers, and a stream whose
//! timestamps stand still would otherwise never fill the bound.

use std::collections::VecDeque;
use std::time::Duration;

/// The media time a player's queue may hold before a new frame waits (bounded) for room.
pub const MAX_HELD: Duration = Duration::from_secs(2);
/// The bytes a player's queue may hold whatever the timestamps say.
pub const MAX_HELD_BYTES: usize = 8 * 1024 * 1024;

/// Frames queued toward one peer and not yet taken (see the module doc).
#[derive(Debug, Default)]
pub struct HeldMedia {
    /// (byte offset where the frame ends, its timestamp in ms), oldest first.
    frames: VecDeque<(u64, u32)>,
    queued_to: u64,
    waiting: usize,
}

impl HeldMedia {
    pub fn new() -> HeldMedia {
        HeldMedia::default()
    }

    /// Notes `len` bytes queued for a frame stamped `timestamp_ms`.
    pub fn queued(&mut self, len: usize, timestamp_ms: u32) {
        self.queued_to += len as u64;
        self.waiting = self.waiting.saturating_add(len);
        self.frames.push_back((self.queued_to, timestamp_ms));
    }

    /// Notes that `waiting` bytes of the output are still not taken by the peer (the newest
    /// ones; an output's own framing may make it a little more than what was queued here).
    pub fn still_waiting(&mut self, waiting: usize) {
        self.waiting = waiting;
        let taken = self.queued_to.saturating_sub(waiting as u64);
        while self.frames.front().is_some_and(|&(end, _)| end <= taken) {
            self.frames.pop_front();
        }
    }

    /// Bytes not yet taken.
    pub fn bytes(&self) -> usize {
        self.waiting
    }

    /// Media time from the oldest frame not yet taken to the newest queued (zero if the
    /// timestamps went back, as they may across a publisher's reconnect).
    pub fn span(&self) -> Duration {
        match (self.frames.front(), self.frames.back()) {
            (Some(&(_, first)), Some(&(_, last))) if last >= first => Duration::from_millis(u64::from(last - first)),
            _ => Duration::ZERO,
        }
    }

    /// Whether another frame may be queued: under both bounds.
    pub fn has_room(&self) -> bool {
        self.span() <= MAX_HELD && self.bytes() <= MAX_HELD_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_span_runs_from_the_oldest_frame_not_taken_to_the_newest() {
        let mut h = HeldMedia::new();
        for i in 0..100u32 {
            h.queued(1000, i * 40);
        }
        assert_eq!(h.span(), Duration::from_millis(99 * 40));
        assert!(!h.has_room(), "3.96 s held");
        h.still_waiting(39_500); // 60 frames and half of the 61st taken
        assert_eq!(h.span(), Duration::from_millis(39 * 40));
        assert_eq!(h.bytes(), 39_500);
        assert!(h.has_room());
        h.still_waiting(0);
        assert_eq!((h.span(), h.bytes()), (Duration::ZERO, 0));
    }

    #[test]
    fn a_low_bitrate_stream_is_bounded_by_time_and_standing_timestamps_by_bytes() {
        let mut slow = HeldMedia::new();
        for i in 0..=75u32 {
            slow.queued(2000, i * 40); // 400 kb/s: 150 KB over 3 s
        }
        assert!(!slow.has_room());
        let mut frozen = HeldMedia::new();
        for _ in 0..=MAX_HELD_BYTES / 65536 {
            frozen.queued(65536, 1234);
        }
        assert_eq!(frozen.span(), Duration::ZERO);
        assert!(!frozen.has_room(), "the byte backstop");
    }

    #[test]
    fn timestamps_that_go_back_and_framing_bytes_do_not_wedge_the_bound() {
        let mut h = HeldMedia::new();
        h.queued(100, 90_000);
        h.queued(100, 10);
        assert_eq!(h.span(), Duration::ZERO, "a publisher's reconnect");
        h.still_waiting(250); // chunk headers on top of the 200 queued
        assert_eq!(h.bytes(), 250);
        h.still_waiting(100);
        h.queued(100, 3000);
        assert_eq!(h.span(), Duration::from_millis(2990));
        h.still_waiting(100);
        assert_eq!(h.span(), Duration::ZERO);
        assert!(h.has_room());
    }
}
