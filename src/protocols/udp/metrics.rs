//! Counters of the UDP side, rendered into `/metrics` next to the gateway's own.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use super::filter::{DropReason, Verdict};

/// Packet counters over all UDP ingests and outputs since start.
#[derive(Debug, Default)]
pub struct UdpMetrics {
    dropped: [AtomicU64; DropReason::ALL.len()],
    rtcp_dropped: AtomicU64,
    rtp_received: AtomicU64,
    reordered: AtomicU64,
    rtcp_received: AtomicU64,
    frames_dropped: AtomicU64,
    rtp_sent: AtomicU64,
    h264_refused: AtomicU64,
    payload_refused: AtomicU64,
}

impl UdpMetrics {
    /// Counts one RTP-port datagram by what the filter decided.
    pub fn note_rtp(&self, verdict: Verdict) {
        match verdict {
            Verdict::Pass => self.rtp_received.fetch_add(1, Ordering::Relaxed),
            Verdict::Reordered => {
                self.rtp_received.fetch_add(1, Ordering::Relaxed);
                self.reordered.fetch_add(1, Ordering::Relaxed)
            }
            Verdict::Drop(reason) => self.dropped[reason as usize].fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Counts one RTCP-port datagram.
    pub fn note_rtcp(&self, valid: bool) {
        let counter = if valid { &self.rtcp_received } else { &self.rtcp_dropped };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A depayloaded frame the session could not take in time.
    pub fn note_frame_dropped(&self) {
        self.frames_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// An accepted RTP packet whose H.264 payload our own check refused (emptied or cleaned
    /// before the depayloader saw it).
    pub fn note_h264_refused(&self) {
        self.h264_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// An accepted RTP packet whose VP8, Opus, AAC or MPEG payload header our own check
    /// refused (dropped before the depayloader saw it).
    pub fn note_payload_refused(&self) {
        self.payload_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn payload_refused(&self) -> u64 {
        self.payload_refused.load(Ordering::Relaxed)
    }

    pub fn h264_refused(&self) -> u64 {
        self.h264_refused.load(Ordering::Relaxed)
    }

    pub fn add_rtp_sent(&self, n: u64) {
        self.rtp_sent.fetch_add(n, Ordering::Relaxed);
    }

    /// Packets dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize].load(Ordering::Relaxed)
    }

    /// Packets dropped for any reason (RTP and RTCP ports).
    pub fn dropped_total(&self) -> u64 {
        DropReason::ALL.iter().map(|r| self.dropped(*r)).sum::<u64>() + self.rtcp_dropped.load(Ordering::Relaxed)
    }

    /// Appends the Prometheus text of these counters (and the session gauges).
    pub fn render(&self, text: &mut String, ingests: usize, outputs: usize) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let _ = writeln!(
            text,
            "# HELP interop_udp_ingests UDP (RTP) ingest sessions running.\n# TYPE interop_udp_ingests gauge"
        );
        let _ = writeln!(text, "interop_udp_ingests {ingests}");
        let _ =
            writeln!(text, "# HELP interop_udp_outputs UDP (RTP) outputs running.\n# TYPE interop_udp_outputs gauge");
        let _ = writeln!(text, "interop_udp_outputs {outputs}");
        let name = "interop_udp_packets_dropped_total";
        let _ =
            writeln!(text, "# HELP {name} Datagrams dropped on UDP ingest ports, by reason.\n# TYPE {name} counter");
        for reason in DropReason::ALL {
            let _ = writeln!(text, "{name}{{port=\"rtp\",reason=\"{}\"}} {}", reason.as_str(), self.dropped(reason));
        }
        let _ = writeln!(text, "{name}{{port=\"rtcp\",reason=\"malformed\"}} {}", get(&self.rtcp_dropped));
        // Counted as received too: the filter accepted them before the H.264 check refused them.
        let _ = writeln!(text, "{name}{{port=\"rtp\",reason=\"h264_payload\"}} {}", get(&self.h264_refused));
        let _ = writeln!(text, "{name}{{port=\"rtp\",reason=\"payload\"}} {}", get(&self.payload_refused));
        for (name, help, value) in [
            (
                "interop_udp_rtp_packets_received_total",
                "RTP packets accepted on UDP ingest ports.",
                get(&self.rtp_received),
            ),
            (
                "interop_udp_rtp_packets_reordered_total",
                "Accepted RTP packets that arrived out of order.",
                get(&self.reordered),
            ),
            (
                "interop_udp_rtcp_packets_received_total",
                "RTCP packets accepted on UDP ingest ports.",
                get(&self.rtcp_received),
            ),
            (
                "interop_udp_frames_dropped_total",
                "Depayloaded frames dropped because the session fell behind.",
                get(&self.frames_dropped),
            ),
            ("interop_udp_rtp_packets_sent_total", "RTP packets sent by UDP outputs.", get(&self.rtp_sent)),
        ] {
            let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        }
    }
}
