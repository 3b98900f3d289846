//! What MPEG-1 allows and how other inputs are fitted to it: the frame rate (only eight
//! rates exist), the picture size (even, at most 4095, optionally scaled down to a maximum
//! width) and the bit rate handed to libavcodec's rate control. Pure functions, no IO.

/// The frame rates an MPEG-1 sequence header can declare (frame_rate_code 1..=8).
pub const MPEG1_RATES: [(i32, i32); 8] =
    [(24000, 1001), (24, 1), (25, 1), (30000, 1001), (30, 1), (50, 1), (60000, 1001), (60, 1)];

/// The rate used when the input's is unknown: variable (`0/1`), invalid, or absurd.
pub const FALLBACK_RATE: (i32, i32) = (30, 1);

/// Input rates above this are taken as nonsense (e.g. `1000000000/1`, a time base seen as a
/// rate) rather than as a real frame rate.
const MAX_PLAUSIBLE_FPS: f64 = 1000.0;

/// The largest picture side MPEG-1 can code (12-bit size fields), made even.
pub const MAX_SIDE: u32 = 4094;

/// An input frame rate as a number, if it is a real, plausible one.
pub fn known_fps(num: i32, den: i32) -> Option<f64> {
    if num <= 0 || den <= 0 {
        return None;
    }
    let fps = num as f64 / den as f64;
    (fps <= MAX_PLAUSIBLE_FPS).then_some(fps)
}

/// The MPEG-1 rate to encode with for an input rate `num/den`: the input's own rate if MPEG-1
/// has it, else the nearest allowed rate (ties go to the lower one); `FALLBACK_RATE` when the
/// input rate is unknown (see `known_fps`).
pub fn mpeg1_frame_rate(num: i32, den: i32) -> (i32, i32) {
    let Some(fps) = known_fps(num, den) else { return FALLBACK_RATE };
    let mut best = MPEG1_RATES[0];
    for rate in MPEG1_RATES {
        if (as_fps(rate) - fps).abs() < (as_fps(best) - fps).abs() {
            best = rate;
        }
    }
    best
}

/// A rate pair as frames per second.
pub fn as_fps((num, den): (i32, i32)) -> f64 {
    num as f64 / den as f64
}

/// The size cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("picture size {width}x{height} is too small for MPEG-1 (at least 2x2)")]
    TooSmall { width: u32, height: u32 },
    #[error("picture size {width}x{height} is too large for MPEG-1 (at most {MAX_SIDE}x{MAX_SIDE}; set max-width)")]
    TooLarge { width: u32, height: u32 },
}

/// The size encoded for an input of `width`x`height`.
///
/// With `max_width > 0` and a wider input, the picture is scaled to `max_width` keeping its
/// aspect ratio (height rounded to the nearest pixel). Then odd sides are cropped to even: the
/// last column and/or row of the (possibly scaled) picture is dropped.
pub fn encoded_size(width: u32, height: u32, max_width: u32) -> Result<(u32, u32), SizeError> {
    let (mut w, mut h) = (width, height);
    if max_width > 0 && width > max_width && height > 0 {
        w = max_width;
        h = ((height as u64 * max_width as u64 + width as u64 / 2) / width as u64) as u32;
    }
    let (w, h) = (w & !1, h & !1);
    if w < 2 || h < 2 {
        return Err(SizeError::TooSmall { width, height });
    }
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(SizeError::TooLarge { width: w, height: h });
    }
    Ok((w, h))
}

/// The bit rate to give libavcodec so that the stream really averages `bitrate` bit/s.
///
/// libavcodec budgets `bit_rate / encoded fps` bits per frame; when the input's real rate
/// differs from the encoded (mapped) rate, e.g. 15 fps coded as 23.976, the budget is scaled
/// by `encoded / input` (bounded to 1/4..4). Unknown input rates get no correction.
pub fn codec_bit_rate(bitrate: u32, input_fps: Option<f64>, encoded: (i32, i32)) -> u64 {
    let ratio = match input_fps {
        Some(fps) if fps > 0.0 => (as_fps(encoded) / fps).clamp(0.25, 4.0),
        _ => 1.0,
    };
    (bitrate as f64 * ratio).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_rates_are_kept() {
        for rate in MPEG1_RATES {
            assert_eq!(mpeg1_frame_rate(rate.0, rate.1), rate);
        }
        // The same rates written differently.
        assert_eq!(mpeg1_frame_rate(60, 2), (30, 1));
        assert_eq!(mpeg1_frame_rate(2997, 100), (30000, 1001));
    }

    #[test]
    fn other_rates_go_to_the_nearest_allowed() {
        assert_eq!(mpeg1_frame_rate(15, 1), (24000, 1001));
        assert_eq!(mpeg1_frame_rate(20, 1), (24000, 1001));
        assert_eq!(mpeg1_frame_rate(1, 1), (24000, 1001));
        assert_eq!(mpeg1_frame_rate(28, 1), (30000, 1001));
        assert_eq!(mpeg1_frame_rate(48, 1), (50, 1));
        assert_eq!(mpeg1_frame_rate(120, 1), (60, 1));
        assert_eq!(mpeg1_frame_rate(25000, 1001), (25, 1));
    }

    #[test]
    fn unknown_rates_fall_back() {
        assert_eq!(mpeg1_frame_rate(0, 1), FALLBACK_RATE);
        assert_eq!(mpeg1_frame_rate(30, 0), FALLBACK_RATE);
        assert_eq!(mpeg1_frame_rate(-30, 1), FALLBACK_RATE);
        assert_eq!(mpeg1_frame_rate(1_000_000_000, 1), FALLBACK_RATE);
        assert_eq!(known_fps(1_000_000_000, 1), None);
    }

    #[test]
    fn sizes_are_made_even_by_cropping() {
        assert_eq!(encoded_size(640, 360, 0), Ok((640, 360)));
        assert_eq!(encoded_size(321, 241, 0), Ok((320, 240)));
        assert_eq!(encoded_size(3, 3, 0), Ok((2, 2)));
        assert!(matches!(encoded_size(1, 100, 0), Err(SizeError::TooSmall { .. })));
        assert!(matches!(encoded_size(4096, 2160, 0), Err(SizeError::TooLarge { .. })));
        assert_eq!(encoded_size(4095, 2161, 0), Ok((4094, 2160)));
    }

    #[test]
    fn wide_inputs_are_scaled_keeping_aspect() {
        assert_eq!(encoded_size(1920, 1080, 640), Ok((640, 360)));
        assert_eq!(encoded_size(1280, 720, 640), Ok((640, 360)));
        // 480 * 640 / 1000 = 307.2 -> 307 -> even 306.
        assert_eq!(encoded_size(1000, 480, 640), Ok((640, 306)));
        // Not wider than the maximum: untouched.
        assert_eq!(encoded_size(320, 240, 640), Ok((320, 240)));
        // An odd maximum still gives an even width.
        assert_eq!(encoded_size(1920, 1080, 641), Ok((640, 360)));
        // A 4K input is fine once scaled.
        assert_eq!(encoded_size(4096, 2160, 1280), Ok((1280, 674)));
    }

    #[test]
    fn bit_rate_is_corrected_for_the_mapped_rate() {
        assert_eq!(codec_bit_rate(1_000_000, Some(30.0), (30, 1)), 1_000_000);
        assert_eq!(codec_bit_rate(1_000_000, Some(15.0), (30, 1)), 2_000_000);
        assert_eq!(codec_bit_rate(1_000_000, Some(20.0), (24000, 1001)), 1_198_801);
        assert_eq!(codec_bit_rate(1_000_000, None, (30, 1)), 1_000_000);
        assert_eq!(codec_bit_rate(1_000_000, Some(1.0), (60, 1)), 4_000_000);
    }
}
