use std::fmt;
use std::ops::{Add, Sub};

/// A media timestamp in nanoseconds on the stream's own timeline (0 = first frame the hub saw).
/// Nanoseconds because that is GStreamer's unit; FLV (ms) and RTP (clock-rate ticks) convert
/// at the edges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ts(pub i64);

impl Ts {
    pub const ZERO: Ts = Ts(0);

    pub fn from_millis(ms: i64) -> Ts {
        Ts(ms * 1_000_000)
    }

    pub fn from_micros(us: i64) -> Ts {
        Ts(us * 1_000)
    }

    /// `ticks` of a clock running at `rate` Hz (RTP timestamps, sample counts).
    pub fn from_ticks(ticks: i64, rate: u32) -> Ts {
        Ts(((ticks as i128) * 1_000_000_000 / rate as i128) as i64)
    }

    pub fn as_millis(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    pub fn as_nanos(self) -> i64 {
        self.0
    }

    pub fn to_ticks(self, rate: u32) -> i64 {
        ((self.0 as i128) * rate as i128 / 1_000_000_000) as i64
    }
}

impl Add for Ts {
    type Output = Ts;
    fn add(self, rhs: Ts) -> Ts {
        Ts(self.0 + rhs.0)
    }
}

impl Sub for Ts {
    type Output = Ts;
    fn sub(self, rhs: Ts) -> Ts {
        Ts(self.0 - rhs.0)
    }
}

impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1_000_000_000, (self.0 / 1_000_000).rem_euclid(1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_round_trip() {
        let t = Ts::from_ticks(90_000 * 3 + 45_000, 90_000);
        assert_eq!(t.as_millis(), 3500);
        assert_eq!(t.to_ticks(48_000), 168_000);
        assert_eq!(Ts::from_millis(-1).as_millis(), -1);
    }
}
