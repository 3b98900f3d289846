//! An Opus RTP payload (RFC 7587) is one Opus packet, whose framing must be valid
//! (RFC 6716 section 3.4, rules R1–R7): a TOC byte, frame lengths within the packet and at most
//! 1275 bytes each, code 1 with an even length, code 3 with 1–48 frames and at most 120 ms of
//! audio, its padding within the packet.

use super::PayloadReject;

const MAX_FRAME: usize = 1275;
/// 120 ms, in tenths of a millisecond.
const MAX_DURATION: u32 = 1200;

/// Checks one Opus RTP payload.
pub fn check(payload: &[u8]) -> Result<(), PayloadReject> {
    let toc = *payload.first().ok_or(PayloadReject::Empty)?;
    let rest = &payload[1..];
    let one = |len: usize| {
        if len <= MAX_FRAME {
            Ok(())
        } else {
            Err(PayloadReject::BadField)
        }
    };
    match toc & 0x03 {
        0 => one(rest.len()),
        1 if rest.len() % 2 == 0 => one(rest.len() / 2),
        1 => Err(PayloadReject::BadField),
        2 => {
            let (first, used) = frame_length(rest)?;
            let left = rest.len() - used;
            if first > left {
                return Err(PayloadReject::LengthPastEnd);
            }
            one(first).and(one(left - first))
        }
        _ => code3(toc, rest),
    }
}

fn code3(toc: u8, rest: &[u8]) -> Result<(), PayloadReject> {
    let count_byte = *rest.first().ok_or(PayloadReject::ShortHeader)?;
    let frames = usize::from(count_byte & 0x3f);
    if frames == 0 || frames as u32 * frame_duration(toc) > MAX_DURATION {
        return Err(PayloadReject::BadField);
    }
    let mut at = 1;
    let mut padding = 0usize;
    if count_byte & 0x40 != 0 {
        loop {
            let b = *rest.get(at).ok_or(PayloadReject::ShortHeader)?;
            at += 1;
            padding += if b == 255 { 254 } else { usize::from(b) };
            if b != 255 {
                break;
            }
        }
    }
    let mut left = rest.len().checked_sub(at + padding).ok_or(PayloadReject::LengthPastEnd)?;
    if count_byte & 0x80 != 0 {
        // VBR: the lengths of all frames but the last.
        for _ in 1..frames {
            let (len, used) = frame_length(&rest[at..])?;
            at += used;
            left = left.checked_sub(used + len).ok_or(PayloadReject::LengthPastEnd)?;
            if len > MAX_FRAME {
                return Err(PayloadReject::BadField);
            }
        }
        (left <= MAX_FRAME).then_some(()).ok_or(PayloadReject::BadField)
    } else if left % frames != 0 || left / frames > MAX_FRAME {
        Err(PayloadReject::BadField)
    } else {
        Ok(())
    }
}

/// A frame length (one byte, or two when the first is 252 or more) and the bytes it took.
fn frame_length(data: &[u8]) -> Result<(usize, usize), PayloadReject> {
    match *data.first().ok_or(PayloadReject::ShortHeader)? {
        b @ 0..=251 => Ok((usize::from(b), 1)),
        b => {
            let second = *data.get(1).ok_or(PayloadReject::ShortHeader)?;
            Ok((usize::from(second) * 4 + usize::from(b), 2))
        }
    }
}

/// One frame's duration for the TOC's configuration, in tenths of a millisecond.
fn frame_duration(toc: u8) -> u32 {
    let config = toc >> 3;
    match config {
        0..=11 => [100, 200, 400, 600][usize::from(config % 4)],
        12..=15 => [100, 200][usize::from(config % 2)],
        _ => [25, 50, 100, 200][usize::from(config % 4)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_packets_pass() {
        // Code 0: CELT FB 20 ms, as browsers send; and a DTX packet (TOC only).
        assert_eq!(check(&[0xfc, 1, 2, 3]), Ok(()));
        assert_eq!(check(&[0xf8]), Ok(()));
        // Code 1: two frames of equal size.
        assert_eq!(check(&[0xfd, 1, 2, 3, 4]), Ok(()));
        // Code 2: first frame 2 bytes, second 1.
        assert_eq!(check(&[0xfe, 2, 9, 9, 9]), Ok(()));
        // Code 3, CBR, 3 frames of 2 bytes, with 1 byte of padding.
        assert_eq!(check(&[0xff, 0x43, 1, 5, 5, 6, 6, 7, 7, 0]), Ok(()));
        // Code 3, VBR, 2 frames: 1 then 3 bytes.
        assert_eq!(check(&[0xff, 0x82, 1, 5, 6, 6, 6]), Ok(()));
    }

    #[test]
    fn broken_framing_is_refused() {
        assert_eq!(check(&[]), Err(PayloadReject::Empty));
        assert_eq!(check(&[0xfd, 1, 2, 3]), Err(PayloadReject::BadField));
        assert_eq!(check(&[0xfe]), Err(PayloadReject::ShortHeader));
        assert_eq!(check(&[0xfe, 252]), Err(PayloadReject::ShortHeader));
        assert_eq!(check(&[0xfe, 9, 1]), Err(PayloadReject::LengthPastEnd));
        assert_eq!(check(&[0xff]), Err(PayloadReject::ShortHeader));
        // Zero frames; 49 frames of 20 ms (over 120 ms); 7 frames of 20 ms.
        assert_eq!(check(&[0xff, 0x00]), Err(PayloadReject::BadField));
        assert_eq!(check(&[0xff, 0x31]), Err(PayloadReject::BadField));
        assert_eq!(check(&[0xff, 0x07, 1, 1, 1, 1, 1, 1, 1]), Err(PayloadReject::BadField));
        // Padding past the end; CBR bytes not a multiple of the count; VBR length past the end.
        assert_eq!(check(&[0xff, 0x41, 200, 1]), Err(PayloadReject::LengthPastEnd));
        assert_eq!(check(&[0xff, 0x41, 255]), Err(PayloadReject::ShortHeader));
        assert_eq!(check(&[0xff, 0x02, 1, 2, 3]), Err(PayloadReject::BadField));
        assert_eq!(check(&[0xff, 0x82, 9, 1]), Err(PayloadReject::LengthPastEnd));
        // A frame over 1275 bytes.
        assert_eq!(check(&[0xfc; 1277]), Err(PayloadReject::BadField));
    }

    #[test]
    fn sixty_ms_silk_frames_count_toward_the_limit() {
        // SILK NB 60 ms (config 3): 2 frames pass, 3 (180 ms) do not.
        assert_eq!(check(&[0x1b, 0x02, 1, 1]), Ok(()));
        assert_eq!(check(&[0x1b, 0x03, 1, 1, 1]), Err(PayloadReject::BadField));
    }
}
