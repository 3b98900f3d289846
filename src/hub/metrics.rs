//! Hub-wide counters for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::media::Protocol;

#[derive(Debug, Default)]
pub struct Metrics {
    bytes_in: [AtomicU64; Protocol::ALL.len()],
    bytes_out: [AtomicU64; Protocol::ALL.len()],
    publishes_refused: AtomicU64,
    consumers_too_slow: AtomicU64,
    h264_refused: [AtomicU64; Protocol::ALL.len()],
    rtp_payload_refused: [AtomicU64; Protocol::ALL.len()],
}

fn slot(p: Protocol) -> usize {
    p.index()
}

impl Metrics {
    pub fn add_bytes_in(&self, p: Protocol, n: u64) {
        self.bytes_in[slot(p)].fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_bytes_out(&self, p: Protocol, n: u64) {
        self.bytes_out[slot(p)].fetch_add(n, Ordering::Relaxed);
    }

    pub fn bytes_in(&self, p: Protocol) -> u64 {
        self.bytes_in[slot(p)].load(Ordering::Relaxed)
    }

    pub fn bytes_out(&self, p: Protocol) -> u64 {
        self.bytes_out[slot(p)].load(Ordering::Relaxed)
    }

    pub fn note_publish_refused(&self) {
        self.publishes_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn publishes_refused(&self) -> u64 {
        self.publishes_refused.load(Ordering::Relaxed)
    }

    pub fn note_consumer_too_slow(&self) {
        self.consumers_too_slow.fetch_add(1, Ordering::Relaxed);
    }

    /// H.264 refused from a publisher: NAL units removed, frames or RTP packets dropped.
    pub fn note_h264_refused(&self, p: Protocol, n: u64) {
        self.h264_refused[slot(p)].fetch_add(n, Ordering::Relaxed);
    }

    pub fn h264_refused(&self, p: Protocol) -> u64 {
        self.h264_refused[slot(p)].load(Ordering::Relaxed)
    }

    /// RTP packets whose VP8/Opus/AAC/MPEG payload header our own check refused.
    pub fn note_rtp_payload_refused(&self, p: Protocol, n: u64) {
        self.rtp_payload_refused[slot(p)].fetch_add(n, Ordering::Relaxed);
    }

    pub fn rtp_payload_refused(&self, p: Protocol) -> u64 {
        self.rtp_payload_refused[slot(p)].load(Ordering::Relaxed)
    }

    pub fn consumers_too_slow(&self) -> u64 {
        self.consumers_too_slow.load(Ordering::Relaxed)
    }
}
