//! The VP8 payload descriptor (RFC 7741 section 4.2): the optional extension byte and the
//! fields it announces (PictureID of 7 or 15 bits, TL0PICIDX, TID/KEYIDX) must fit, some VP8
//! data must follow, and the first packet of a frame must hold its frame tag (and, for a key
//! frame, the start code and dimensions: RFC 6386 section 9.1).

use super::PayloadReject;

/// Checks one VP8 RTP payload.
pub fn check(payload: &[u8]) -> Result<(), PayloadReject> {
    let first = *payload.first().ok_or(PayloadReject::Empty)?;
    let mut at = 1;
    if first & 0x80 != 0 {
        let ext = *payload.get(at).ok_or(PayloadReject::ShortHeader)?;
        at += 1;
        if ext & 0x80 != 0 {
            // I: PictureID, 15 bits when its M bit is set, else 7.
            let id = *payload.get(at).ok_or(PayloadReject::ShortHeader)?;
            at += if id & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            at += 1; // L: TL0PICIDX
        }
        if ext & 0x30 != 0 {
            at += 1; // T or K: TID/Y/KEYIDX
        }
        if at > payload.len() {
            return Err(PayloadReject::ShortHeader);
        }
    }
    let data = &payload[at..];
    if data.is_empty() {
        return Err(PayloadReject::Empty);
    }
    let start_of_frame = first & 0x10 != 0 && first & 0x07 == 0;
    if start_of_frame {
        if data.len() < 3 {
            return Err(PayloadReject::ShortHeader);
        }
        let key_frame = data[0] & 0x01 == 0;
        if key_frame && (data.len() < 10 || data[3..6] != [0x9d, 0x01, 0x2a]) {
            return Err(PayloadReject::BadField);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 10] = [0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01];

    fn with(descriptor: &[u8], data: &[u8]) -> Vec<u8> {
        [descriptor, data].concat()
    }

    #[test]
    fn browser_descriptors_pass() {
        // X, S; I with a 15-bit PictureID; then a key frame's start.
        assert_eq!(check(&with(&[0x90, 0x80, 0x81, 0x23], &KEY)), Ok(()));
        // 7-bit PictureID, TL0PICIDX and TID.
        assert_eq!(check(&with(&[0x90, 0xe0, 0x05, 0x07, 0x40], &KEY)), Ok(()));
        // A continuation packet: any data.
        assert_eq!(check(&with(&[0x80, 0x80, 0x81, 0x23], &[0xaa])), Ok(()));
        // No descriptor extension, an inter frame's start.
        assert_eq!(check(&with(&[0x10], &[0x01, 0x00, 0x00, 0x55])), Ok(()));
    }

    #[test]
    fn cut_descriptors_are_refused() {
        assert_eq!(check(&[]), Err(PayloadReject::Empty));
        assert_eq!(check(&[0x90]), Err(PayloadReject::ShortHeader));
        assert_eq!(check(&[0x90, 0x80]), Err(PayloadReject::ShortHeader));
        assert_eq!(check(&[0x90, 0x80, 0x81]), Err(PayloadReject::ShortHeader));
        assert_eq!(check(&[0x90, 0xf0, 0x81, 0x23, 0x01]), Err(PayloadReject::ShortHeader));
        assert_eq!(check(&[0x90, 0x80, 0x81, 0x23]), Err(PayloadReject::Empty));
    }

    #[test]
    fn frame_starts_must_hold_their_header() {
        assert_eq!(check(&[0x10, 0x01, 0x00]), Err(PayloadReject::ShortHeader));
        assert_eq!(check(&with(&[0x10], &KEY[..9])), Err(PayloadReject::BadField));
        let mut bad_code = KEY;
        bad_code[4] = 0;
        assert_eq!(check(&with(&[0x10], &bad_code)), Err(PayloadReject::BadField));
        // Not a start (partition 1): the same bytes pass.
        assert_eq!(check(&with(&[0x11], &KEY[..2])), Ok(()));
    }
}
