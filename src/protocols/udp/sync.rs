//! RTP timestamps → the ingest's clock (nanoseconds since the session started), with audio
//! and video aligned through the RTCP sender reports, as rtpbin does with `rtcp-sync`:
//!
//! - A track's first packet anchors its RTP timestamps at the packet's arrival; later
//!   packets are placed by their timestamp distance from it (the sender's clock, not arrival
//!   jitter). A timestamp that lands more than [`MAX_SKEW`] away from the arrival time (a
//!   sender restart, a hostile jump) re-anchors at the arrival.
//! - A sender report maps a track's RTP time to the sender's NTP time. The first one seen
//!   fixes the session's NTP → clock offset; each track is then placed so that its NTP time
//!   lands on that clock (at its first report, and again if it drifts more than
//!   [`RESYNC`] away). Both tracks of one sender thus share one clock.
//!
//! Pure: times are passed in.

/// A timestamp this far from the arrival time re-anchors the track.
pub const MAX_SKEW: i64 = 5_000_000_000;
/// A track whose report says it is this far off the shared clock is moved onto it.
pub const RESYNC: i64 = 40_000_000;

/// One sender report (RTCP SR, RFC 3550 §6.4.1): the sender's NTP time (nanoseconds since
/// 1900) of the RTP timestamp `rtp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport {
    pub ssrc: u32,
    pub ntp_ns: i64,
    pub rtp: u32,
}

/// The sender reports of a compound RTCP packet (already checked by `filter::valid_rtcp`;
/// anything that does not fit is skipped).
pub fn sender_reports(data: &[u8]) -> Vec<SenderReport> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 4 {
        let len = (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1) * 4;
        let Some((part, after)) = rest.split_at_checked(len) else { break };
        if part[1] == 200 && part.len() >= 28 {
            let word = |i: usize| u32::from_be_bytes([part[i], part[i + 1], part[i + 2], part[i + 3]]);
            let (secs, frac) = (i64::from(word(8)), i64::from(word(12)));
            out.push(SenderReport {
                ssrc: word(4),
                ntp_ns: secs * 1_000_000_000 + ((frac * 1_000_000_000) >> 32),
                rtp: word(16),
            });
        }
        rest = after;
    }
    out
}

/// The NTP → session clock offset shared by the tracks of one ingest.
#[derive(Debug, Default, Clone, Copy)]
pub struct SharedClock {
    offset: Option<i64>,
}

/// One track's RTP timestamps on the session clock.
#[derive(Debug, Clone)]
pub struct TrackClock {
    rate: i64,
    /// The last extended (unwrapped) timestamp.
    last: Option<i64>,
    /// (extended timestamp, clock time) of the anchor.
    anchor: Option<(i64, i64)>,
    /// The last sender report: (extended timestamp, NTP ns).
    report: Option<(i64, i64)>,
    synced: bool,
}

impl TrackClock {
    pub fn new(clock_rate: u32) -> TrackClock {
        TrackClock { rate: i64::from(clock_rate.max(1)), last: None, anchor: None, report: None, synced: false }
    }

    /// Forgets the anchor and the report (a new source).
    pub fn reset(&mut self) {
        *self = TrackClock::new(self.rate as u32);
    }

    fn extend(&self, ts: u32) -> i64 {
        match self.last {
            None => i64::from(ts),
            Some(last) => last.saturating_add(i64::from(ts.wrapping_sub(last as u32) as i32)),
        }
    }

    fn ticks_to_ns(&self, ticks: i64) -> i64 {
        (i128::from(ticks) * 1_000_000_000 / i128::from(self.rate)).clamp(i128::from(i64::MIN), i128::from(i64::MAX))
            as i64
    }

    fn at(&self, anchor: (i64, i64), ext: i64) -> i64 {
        anchor.1.saturating_add(self.ticks_to_ns(ext.saturating_sub(anchor.0)))
    }

    /// The clock time (ns) of timestamp `ts` of a packet that arrived at `now` (ns).
    pub fn time(&mut self, ts: u32, now: i64, shared: &mut SharedClock) -> i64 {
        let ext = self.extend(ts);
        self.last = Some(ext);
        let anchor = match self.anchor {
            Some(a) if self.at(a, ext).saturating_sub(now).saturating_abs() <= MAX_SKEW => a,
            _ => {
                let a = (ext, now);
                self.anchor = Some(a);
                self.synced = false;
                if self.report.is_some() {
                    self.sync(shared);
                }
                self.anchor.unwrap_or(a)
            }
        };
        self.at(anchor, ext)
    }

    /// Takes a sender report of this track's source.
    pub fn report(&mut self, sr: SenderReport, shared: &mut SharedClock) {
        let ext = self.extend(sr.rtp);
        self.report = Some((ext, sr.ntp_ns));
        if self.anchor.is_some() {
            self.sync(shared);
        }
    }

    /// Puts the anchor where the last report says, or makes this track the reference.
    fn sync(&mut self, shared: &mut SharedClock) {
        let (Some(anchor), Some((sr_ext, ntp))) = (self.anchor, self.report) else { return };
        let now_at_sr = self.at(anchor, sr_ext);
        let Some(offset) = shared.offset else {
            shared.offset = Some(now_at_sr.saturating_sub(ntp));
            self.synced = true;
            return;
        };
        let wanted = ntp.saturating_add(offset);
        let off_by = wanted.saturating_sub(now_at_sr);
        if off_by.saturating_abs() > MAX_SKEW {
            // The report does not fit what arrives (a hostile or stale report): ignored.
            return;
        }
        if !self.synced || off_by.abs() > RESYNC {
            self.anchor = Some((anchor.0, anchor.1 + off_by));
            self.synced = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    fn sr(ssrc: u32, ntp_ms: i64, rtp: u32) -> SenderReport {
        SenderReport { ssrc, ntp_ns: 3_900_000_000 * 1_000_000_000 + ntp_ms * MS, rtp }
    }

    #[test]
    fn sender_reports_are_read_from_compound_packets() {
        let mut p = vec![0x80, 200, 0, 6, 0, 0, 0, 7];
        p.extend_from_slice(&3_900_000_000u32.to_be_bytes());
        p.extend_from_slice(&0x8000_0000u32.to_be_bytes());
        p.extend_from_slice(&90_000u32.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(&[0x81, 202, 0, 1, 0, 0, 0, 7]);
        let srs = sender_reports(&p);
        assert_eq!(srs, [SenderReport { ssrc: 7, ntp_ns: 3_900_000_000 * 1_000_000_000 + 500 * MS, rtp: 90_000 }]);
        assert!(sender_reports(&[0x80, 200, 0, 6, 1]).is_empty());
        assert!(sender_reports(&[0x80, 201, 0, 1, 0, 0, 0, 1]).is_empty());
    }

    #[test]
    fn timestamps_follow_the_sender_clock_from_the_first_arrival() {
        let mut shared = SharedClock::default();
        let mut c = TrackClock::new(90_000);
        assert_eq!(c.time(1000, 50 * MS, &mut shared), 50 * MS);
        // Jitter in arrival does not move the time; 3000 ticks are 33.3 ms.
        assert_eq!(c.time(4000, 90 * MS, &mut shared), 50 * MS + 33_333_333);
        // Wrapping timestamps keep going forward; B-frames may go back a little.
        let mut w = TrackClock::new(1000);
        assert_eq!(w.time(u32::MAX - 9, 0, &mut shared), 0);
        assert_eq!(w.time(10, 20 * MS, &mut shared), 20 * MS);
        assert_eq!(w.time(5, 20 * MS, &mut shared), 15 * MS);
    }

    #[test]
    fn a_jump_far_from_the_arrival_time_re_anchors() {
        let mut shared = SharedClock::default();
        let mut c = TrackClock::new(1000);
        c.time(0, 0, &mut shared);
        assert_eq!(c.time(100, 100 * MS, &mut shared), 100 * MS);
        assert_eq!(c.time(2_000_000, 140 * MS, &mut shared), 140 * MS);
        assert_eq!(c.time(2_000_020, 160 * MS, &mut shared), 160 * MS);
    }

    #[test]
    fn sender_reports_put_audio_and_video_on_one_clock() {
        let mut shared = SharedClock::default();
        let (mut video, mut audio) = (TrackClock::new(90_000), TrackClock::new(48_000));
        // The sender: video ts 0 and audio ts 0 are both NTP 1000 ms. Audio arrives 30 ms
        // after the video (a later first packet), so without the reports it would lag.
        video.report(sr(1, 1000, 0), &mut shared);
        audio.report(sr(2, 1000, 0), &mut shared);
        assert_eq!(video.time(0, 10 * MS, &mut shared), 10 * MS);
        assert_eq!(audio.time(0, 40 * MS, &mut shared), 10 * MS, "aligned with the video");
        assert_eq!(audio.time(960, 60 * MS, &mut shared), 30 * MS);
        // Reports arriving after the media: the second track moves onto the first's clock.
        let mut shared = SharedClock::default();
        let (mut video, mut audio) = (TrackClock::new(90_000), TrackClock::new(48_000));
        video.time(9000, 100 * MS, &mut shared);
        audio.time(4800, 150 * MS, &mut shared);
        video.report(sr(1, 2000, 9000), &mut shared);
        audio.report(sr(2, 2000, 4800), &mut shared);
        assert_eq!(audio.time(4800 + 480, 170 * MS, &mut shared), 110 * MS);
        // A small drift is left alone; a large one is corrected.
        audio.report(sr(2, 2010, 4800 + 480 * 2), &mut shared);
        assert_eq!(audio.time(4800 + 480 * 2, 180 * MS, &mut shared), 120 * MS);
        audio.report(sr(2, 2100, 4800 + 480 * 3), &mut shared);
        assert_eq!(audio.time(4800 + 480 * 3, 190 * MS, &mut shared), 200 * MS);
        // A report that is far off is ignored.
        audio.report(sr(2, 900_000, 4800 + 480 * 4), &mut shared);
        assert_eq!(audio.time(4800 + 480 * 4, 200 * MS, &mut shared), 210 * MS);
    }
}
