//! One track of one viewer: its own sequence numbers and RTP clock over the shared payloads.

use std::time::Instant;

use str0m::media::{Mid, Pt};
use str0m::rtp::RtpWrite;
use str0m::Rtc;

use super::negotiate::NegotiatedTrack;
use crate::media::rtp::packetize::Payload;
use crate::media::TrackKind;

pub struct Track {
    pub kind: TrackKind,
    mid: Mid,
    pt: Pt,
    clock_rate: u32,
    /// The next sequence number (str0m extends it to 64 bits; starts below 2^15 so the
    /// first rollover counter is 0).
    seq: u64,
    /// A random start of the RTP clock (RFC 3550).
    rtp_offset: u32,
    pub packets: u64,
}

impl Track {
    pub fn new(t: &NegotiatedTrack) -> Track {
        Track {
            kind: t.kind,
            mid: t.mid,
            pt: t.pt,
            clock_rate: t.clock_rate.max(1),
            seq: u64::from(rand::random::<u16>() >> 1),
            rtp_offset: rand::random(),
            packets: 0,
        }
    }

    /// The RTP timestamp of `running` ns of the session's running time.
    pub fn rtp_time(&self, running: u64) -> u32 {
        let ticks = u128::from(running) * u128::from(self.clock_rate) / 1_000_000_000;
        self.rtp_offset.wrapping_add(ticks as u32)
    }

    /// Queues one frame's payloads on the track's send stream (looked up once per frame);
    /// false when str0m has no such stream.
    pub fn write(&mut self, rtc: &mut Rtc, payloads: &[Payload], time: u32, wallclock: Instant) -> bool {
        let mut api = rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(self.mid, None) else {
            return false;
        };
        let nackable = self.kind == TrackKind::Video;
        for payload in payloads {
            let write = RtpWrite::new(self.pt, self.seq.into(), time, wallclock, payload.data.clone())
                .marker(payload.marker)
                .nackable(nackable);
            tx.write_rtp(write);
            self.seq += 1;
        }
        self.packets += payloads.len() as u64;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_time_runs_at_the_clock_rate_from_a_random_start() {
        let t = NegotiatedTrack { kind: TrackKind::Video, mid: Mid::from("0"), pt: 102.into(), clock_rate: 90_000 };
        let track = Track::new(&t);
        let zero = track.rtp_time(0);
        assert_eq!(track.rtp_time(1_000_000_000).wrapping_sub(zero), 90_000);
        assert_eq!(track.rtp_time(33_333_333).wrapping_sub(zero), 2_999);
        // Hours in, it wraps instead of overflowing.
        assert_eq!(track.rtp_time(48 * 3_600 * 1_000_000_000).wrapping_sub(zero), (48u64 * 3600 * 90_000) as u32);
        assert!(track.seq < 1 << 15);
    }
}
