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

/// Length, pitch and amplitude of the beep at each whole second.
pub const BEEP_MS: f64 = 100.0;
pub const BEEP_HZ: f64 = 1000.0;
pub const BEEP_AMPLITUDE: f64 = 0.5;
/// A sample above this (absolute) after [`QUIET_MS`] of samples below it is a beep onset.
const ONSET_LEVEL: f32 = 0.2;
const QUIET_MS: f64 = 400.0;

/// Wall-clock time in milliseconds since the Unix epoch.
pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
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
        let y = ((band * height as f64) as usize, (((top + bottom) / 2.0 + (bottom - top) * 0.25) * height as f64) as usize);
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

/// The test audio at wall-clock time `t_ms`: the beep during the first [`BEEP_MS`] of every
/// second, else silence.
pub fn beep_sample(t_ms: f64) -> f64 {
    let into_second = t_ms.rem_euclid(1000.0);
    if into_second < BEEP_MS {
        BEEP_AMPLITUDE * (2.0 * std::f64::consts::PI * BEEP_HZ * into_second / 1000.0).sin()
    } else {
        0.0
    }
}

/// Finds beep onsets in a decoded mono stream, buffer by buffer.
pub struct Onsets {
    rate: f64,
    /// Samples below the level since the last loud one (starts at 0: a receiver joining
    /// mid-beep does not report that beep).
    quiet: u64,
}

impl Onsets {
    /// A detector for `rate` samples per second.
    pub fn new(rate: u32) -> Onsets {
        Onsets { rate: f64::from(rate), quiet: 0 }
    }

    /// Indices of the onsets in `samples`.
    pub fn push(&mut self, samples: &[f32]) -> Vec<usize> {
        let need = (QUIET_MS / 1000.0 * self.rate) as u64;
        let mut found = Vec::new();
        for (i, s) in samples.iter().enumerate() {
            if s.abs() > ONSET_LEVEL {
                if self.quiet >= need {
                    found.push(i);
                }
                self.quiet = 0;
            } else {
                self.quiet += 1;
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
        let second: Vec<f32> = (0..rate).map(|i| beep_sample(i as f64 * 1000.0 / rate as f64) as f32).collect();
        assert!(d.push(&second).is_empty(), "no quiet before the first beep");
        let found = d.push(&second);
        assert_eq!(found.len(), 1);
        assert!(found[0] < 10, "onset at sample {}", found[0]);
    }
}
