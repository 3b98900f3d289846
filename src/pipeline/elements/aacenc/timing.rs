//! Where the encoder's delay goes. libfdk-aac's decoded output lags its input by `delay`
//! samples, so access unit `k` of an encoder session decodes to input samples
//! `[k*frame - delay, (k+1)*frame - delay)`. The element stamps each unit with the time of
//! its first input sample (the base class's time minus the delay) and drops the units that
//! hold only priming (before the first input sample) or only end padding (after the last).

use gstreamer as gst;

/// Whether access unit `index` of a session holds no input at all: only the priming before
/// the first sample, or only the padding after `fed` samples (per channel) at the end.
pub fn is_filler(index: u64, frame: u64, delay: u64, fed: u64) -> bool {
    let start = index * frame;
    start < delay || start - delay >= fed
}

/// A unit's timestamp moved back by the encoder delay (never below zero).
pub fn shifted(ts: gst::ClockTime, delay: gst::ClockTime) -> gst::ClockTime {
    ts.saturating_sub(delay)
}

/// `samples` at `rate` as a duration.
pub fn samples_to_time(samples: u64, rate: u32) -> gst::ClockTime {
    gst::ClockTime::from_nseconds(
        (u128::from(samples) * 1_000_000_000 / u128::from(rate.max(1))).min(u128::from(u64::MAX)) as u64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_priming_units_only_while_they_precede_the_input() {
        // delay 2048: units 0 and 1 decode to samples before the input, unit 2 to its start.
        assert!(is_filler(0, 1024, 2048, 1024 * 10));
        assert!(is_filler(1, 1024, 2048, 1024 * 10));
        assert!(!is_filler(2, 1024, 2048, 1024 * 10));
        // A delay that is no multiple of the frame keeps the unit that straddles the start
        // only when it begins at or after it.
        assert!(is_filler(2, 1024, 2100, 1024 * 10));
        assert!(!is_filler(3, 1024, 2100, 1024 * 10));
    }

    #[test]
    fn drops_padding_units_after_the_last_input_sample() {
        // 1500 samples fed, delay 2048: units 2 (samples 0..1024) and 3 (1024..2048) carry
        // input, unit 4 (2048..) only padding.
        assert!(!is_filler(2, 1024, 2048, 1500));
        assert!(!is_filler(3, 1024, 2048, 1500));
        assert!(is_filler(4, 1024, 2048, 1500));
        // While input keeps coming no unit counts as padding.
        for k in 2..100 {
            assert!(!is_filler(k, 1024, 2048, (k + 1) * 1024));
        }
    }

    #[test]
    fn shift_and_durations() {
        let ms = gst::ClockTime::from_mseconds;
        assert_eq!(shifted(ms(100), ms(40)), ms(60));
        assert_eq!(shifted(ms(10), ms(40)), gst::ClockTime::ZERO);
        assert_eq!(samples_to_time(48000, 48000), gst::ClockTime::SECOND);
        assert_eq!(samples_to_time(2048, 48000).nseconds(), 42_666_666);
        assert_eq!(samples_to_time(1, 0), gst::ClockTime::from_seconds(1));
    }
}
