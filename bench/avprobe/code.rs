//! The test signal that survives conversion: each picture carries its send time (wall-clock
//! milliseconds modulo 2^24) as two rows of 24 black/white blocks (the second row is the first
//! inverted, so a misread frame is rejected), the lower part of the picture flashes white for
//! the frame sent at each whole second, and the audio beeps (1 kHz, 100 ms) from each whole
//! second on. The receiver reads the blocks back from decoded pictures and finds beep onsets
//! in decoded audio.

use std::time::{SystemTime, UNIX_EPOCH};

/// Bits of the time code; codes wrap every 2^24 ms (4.66 hours).
pub const BITS: usize = 24;
/// Mask of a time code.
pub const MASK: u64 = (1 << BITS) - 1;
/// Rows (fractions of the picture height) of the code and of its inverse.
const ROW_CODE: (f64, f64) = (0.03, 0.13);
const ROW_INVERSE: (f64, f64) = (0.15, 0.25);
/// A grey bar moving sideways, so that consecutive pictures differ like real video.
const ROW_BAR: (f64, f64) = (0.28, 0.33);
/// The flash area: from here to the bottom.
const FLASH_TOP: f64 = 0.38;
/// Luma levels (video range).
const BLACK: u8 = 16;
const WHITE: u8 = 235;

/// Pitch and amplitude of the beep at each whole second. Its length says which second it is,
/// modulo 4: `BEEP_MIN_MS + BEEP_STEP_MS * (second % 4)` (60, 100, 140, 180 ms), so a receiver
/// pairs a beep with its own flash even when sound and picture reach it seconds apart.
pub const BEEP_MIN_MS: f64 = 60.0;
pub const BEEP_STEP_MS: f64 = 40.0;
pub const BEEP_HZ: f64 = 1000.0;
pub const BEEP_AMPLITUDE: f64 = 0.5;
/// A sample above this (absolute) after [`QUIET_MS`] of samples below it is a beep onset; the
/// beep ends at the last loud sample before [`END_MS`] of quiet.
const ONSET_LEVEL: f32 = 0.2;
const QUIET_MS: f64 = 400.0;
const END_MS: f64 = 20.0;

/// Wall-clock time in milliseconds since the Unix epoch.
pub fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

/// Draws a picture into a luma plane (`stride` bytes per row): the code rows for `code`, the
/// moving bar for picture number `frame`, and the flash area white when `flash`.
pub fn draw(luma: &mut [u8], stride: usize, width: usize, height: usize, code: u64, flash: bool, frame: u64) {
    let rows = |(top, bottom): (f64, f64)| ((top * height as f64) as usize, (bottom * height as f64) as usize);
    for row in luma.chunks_mut(stride).take(height) {
        row[..width].fill(BLACK);
    }
    for (band, invert) in [(ROW_CODE, false), (ROW_INVERSE, true)] {
        let (y0, y1) = rows(band);
        for bit in 0..BITS {
            let one = (code >> (BITS - 1 - bit)) & 1 == 1;
            let level = if one != invert { WHITE } else { BLACK };
            let (x0, x1) = (bit * width / BITS, (bit + 1) * width / BITS);
            for y in y0..y1 {
                luma[y * stride + x0..y * stride + x1].fill(level);
            }
        }
    }
    let (y0, y1) = rows(ROW_BAR);
    let bar = width / 8;
    let x0 = (frame as usize * 8) % (width - bar);
    for y in y0..y1 {
        luma[y * stride + x0..y * stride + x0 + bar].fill(128);
    }
    if flash {
        let (y0, _) = rows((FLASH_TOP, 1.0));
        for y in y0..height {
            luma[y * stride..y * stride + width].fill(WHITE);
        }
    }
}

/// Mean luma of a rectangle, sampled every other pixel.
fn mean(luma: &[u8], stride: usize, x: (usize, usize), y: (usize, usize)) -> f64 {
    let (mut sum, mut count) = (0u64, 0u64);
    for row in (y.0..y.1).step_by(2) {
        for col in (x.0..x.1).step_by(2) {
            if let Some(v) = luma.get(row * stride + col) {
                sum += u64::from(*v);
                count += 1;
            }
        }
    }
    if count == 0 {
        0.0
    } else {
        sum as f64 / count as f64
    }
}

/// Reads a picture back: the code when both rows agree (else `None`), and whether it flashes.
pub fn read(luma: &[u8], stride: usize, width: usize, height: usize) -> (Option<u64>, bool) {
    let mut words = [0u64; 2];
    for (word, (top, bottom)) in words.iter_mut().zip([ROW_CODE, ROW_INVERSE]) {
        let band = top + (bottom - top) * 0.25;
        let y = (
            (band * height as f64) as usize,
            (((top + bottom) / 2.0 + (bottom - top) * 0.25) * height as f64) as usize,
        );
        for bit in 0..BITS {
            let w = width as f64 / BITS as f64;
            let x = (((bit as f64 + 0.3) * w) as usize, ((bit as f64 + 0.7) * w) as usize);
            *word = (*word << 1) | u64::from(mean(luma, stride, x, y) >= 126.0);
        }
    }
    let code = (words[0] ^ words[1] == MASK).then_some(words[0]);
    let flash_rows = ((((FLASH_TOP + 1.0) / 2.0) * height as f64) as usize, height - height / 20);
    let flash = mean(luma, stride, (width / 10, width - width / 10), flash_rows) >= 126.0;
    (code, flash)
}

/// The beep's length in the second that starts at wall-clock `second_ms`.
pub fn beep_ms(second_ms: f64) -> f64 {
    let index = (second_ms / 1000.0).floor().rem_euclid(4.0);
    BEEP_MIN_MS + BEEP_STEP_MS * index
}

/// The test audio at wall-clock time `t_ms`: the beep at the start of every second, else silence.
pub fn beep_sample(t_ms: f64) -> f64 {
    let into_second = t_ms.rem_euclid(1000.0);
    if into_second < beep_ms(t_ms - into_second) {
        BEEP_AMPLITUDE * (2.0 * std::f64::consts::PI * BEEP_HZ * into_second / 1000.0).sin()
    } else {
        0.0
    }
}

/// A beep found in decoded audio: where it started and how long it lasted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Beep<T> {
    /// What the caller attached to the buffer the onset was in (e.g. its PTS and arrival).
    pub tag: T,
    /// The onset's index in that buffer.
    pub index: usize,
    /// Samples in that buffer from the onset on.
    pub rest: usize,
    /// From the onset to the last loud sample, in ms.
    pub length_ms: f64,
}

/// Finds beeps in a decoded mono stream, buffer by buffer; a beep is reported once it ended.
pub struct Onsets<T> {
    rate: f64,
    /// Samples below the level since the last loud one (starts at 0: a receiver joining
    /// mid-beep does not report that beep).
    quiet: u64,
    /// The beep in progress: its start, and samples from its onset to its last loud one.
    current: Option<(Beep<T>, u64)>,
    /// Samples since the onset of the beep in progress.
    since: u64,
}

impl<T: Copy> Onsets<T> {
    /// A detector for `rate` samples per second.
    pub fn new(rate: u32) -> Onsets<T> {
        Onsets { rate: f64::from(rate), quiet: 0, current: None, since: 0 }
    }

    /// The beeps that ended in `samples` (a buffer tagged `tag`).
    pub fn push(&mut self, samples: &[f32], tag: T) -> Vec<Beep<T>> {
        let need = (QUIET_MS / 1000.0 * self.rate) as u64;
        let end = (END_MS / 1000.0 * self.rate) as u64;
        let mut found = Vec::new();
        for (i, s) in samples.iter().enumerate() {
            if let Some((_, last)) = &mut self.current {
                self.since += 1;
                if s.abs() > ONSET_LEVEL {
                    *last = self.since;
                }
            }
            if s.abs() > ONSET_LEVEL {
                if self.quiet >= need {
                    let beep = Beep { tag, index: i, rest: samples.len() - i, length_ms: 0.0 };
                    self.current = Some((beep, 0));
                    self.since = 0;
                }
                self.quiet = 0;
            } else {
                self.quiet += 1;
                if self.quiet == end {
                    if let Some((mut beep, last)) = self.current.take() {
                        beep.length_ms = last as f64 * 1000.0 / self.rate;
                        found.push(beep);
                    }
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drawn_code_reads_back() {
        let (w, h) = (640, 360);
        let mut luma = vec![0u8; w * h];
        for (code, flash) in [(0x00ABCDEF, false), (MASK, true), (0, false), (1_234_567, true)] {
            draw(&mut luma, w, w, h, code, flash, 17);
            assert_eq!(read(&luma, w, w, h), (Some(code), flash));
        }
        // Half-size (scaled) pictures read back as well.
        let mut small = vec![0u8; 320 * 180];
        draw(&mut small, 320, 320, 180, 0x5A5A5A, false, 3);
        assert_eq!(read(&small, 320, 320, 180).0, Some(0x5A5A5A));
    }

    #[test]
    fn onsets_need_quiet_before() {
        let rate = 48_000;
        let mut d = Onsets::new(rate);
        let second = |k: u32| -> Vec<f32> {
            (0..rate)
                .map(|i| beep_sample(f64::from(k) * 1000.0 + f64::from(i) * 1000.0 / f64::from(rate)) as f32)
                .collect()
        };
        assert!(d.push(&second(0), 0).is_empty(), "no quiet before the first beep");
        for k in 1..6 {
            let found = d.push(&second(k), k);
            assert_eq!(found.len(), 1);
            let beep = found[0];
            assert!(beep.index < 10, "onset at sample {}", beep.index);
            assert_eq!(beep.tag, k);
            let want = beep_ms(f64::from(k) * 1000.0);
            assert!((beep.length_ms - want).abs() < 1.0, "second {k}: {} ms, want {want}", beep.length_ms);
        }
    }
}
