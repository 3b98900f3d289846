//! Measures a video frame rate from decode timestamps when nothing states it.
use crate::media::Ts;

/// Frames whose dts the measurement spans.
const FRAMES: u32 = 30;
/// Common rates a measurement within 1.5 % is snapped to (ms timestamps cannot say 29.97).
const COMMON_RATES: [f64; 15] = [
    10.0,
    12.0,
    15.0,
    20.0,
    24000.0 / 1001.0,
    24.0,
    25.0,
    30000.0 / 1001.0,
    30.0,
    48.0,
    50.0,
    60000.0 / 1001.0,
    60.0,
    90.0,
    120.0,
];

/// Collects the dts of the first [`FRAMES`] video frames (in decode order, so B-frames do not
/// matter) and then gives their average rate once.
#[derive(Debug, Default)]
pub(super) struct FpsProbe {
    first: Option<Ts>,
    last: Option<Ts>,
    count: u32,
    done: bool,
}

impl FpsProbe {
    /// Adds a frame's dts; returns the measured rate once enough frames were seen.
    /// Timestamps that do not advance are ignored; a jump back or of more than a second
    /// restarts the measurement.
    pub(super) fn add(&mut self, dts: Ts) -> Option<f64> {
        if self.done {
            return None;
        }
        match self.last {
            Some(last) if dts <= last => {
                if dts < last {
                    *self = FpsProbe::default();
                    self.start(dts);
                }
                return None;
            }
            Some(last) if dts - last > Ts::from_millis(1000) => {
                *self = FpsProbe::default();
                self.start(dts);
                return None;
            }
            Some(_) => {
                self.last = Some(dts);
                self.count += 1;
            }
            None => {
                self.start(dts);
                return None;
            }
        }
        let first = self.first?;
        if self.count + 1 < FRAMES {
            return None;
        }
        self.done = true;
        let span = (dts - first).as_nanos() as f64 / 1e9;
        Some(snap(f64::from(self.count) / span))
    }

    fn start(&mut self, dts: Ts) {
        self.first = Some(dts);
        self.last = Some(dts);
        self.count = 0;
    }
}

fn snap(fps: f64) -> f64 {
    let nearest = COMMON_RATES
        .iter()
        .copied()
        .min_by(|a, b| (a - fps).abs().total_cmp(&(b - fps).abs()))
        .filter(|r| (r - fps).abs() / r < 0.015);
    nearest.unwrap_or_else(|| (fps * 100.0).round() / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measure(dts_ms: impl IntoIterator<Item = i64>) -> Option<f64> {
        let mut probe = FpsProbe::default();
        dts_ms.into_iter().find_map(|ms| probe.add(Ts::from_millis(ms)))
    }

    #[test]
    fn measures_25_fps() {
        assert_eq!(measure((0..40).map(|i| i * 40)), Some(25.0));
    }

    #[test]
    fn measures_ntsc_rate_from_jittery_ms_timestamps() {
        // 29.97 fps rounded to ms: 33/34 ms steps.
        let fps = measure((0..40).map(|i| (i as f64 * 1001.0 / 30.0).round() as i64)).expect("fps");
        assert!((fps - 29.97).abs() < 0.01 || fps == 30.0, "{fps}");
    }

    #[test]
    fn unusual_rate_is_rounded_not_snapped() {
        assert_eq!(measure((0..40).map(|i| i * 140)), Some(7.14));
    }

    #[test]
    fn gaps_and_repeats_restart_or_are_skipped() {
        let mut ts: Vec<i64> = vec![0, 40, 40, 80, 5000]; // repeat, then a 5 s gap
        ts.extend((1..40).map(|i| 5000 + i * 20));
        assert_eq!(measure(ts), Some(50.0));
        assert_eq!(measure([0, 40, 80]), None, "too few frames");
    }
}
