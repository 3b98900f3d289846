//! RFC 2250 MPEG payload headers: video (section 3.4) carries a 4-byte MPEG video-specific
//! header, plus a 4-byte MPEG-2 extension when its T bit is set; audio (section 3.5) a 4-byte
//! header whose first 16 bits must be zero. Both must be followed by some data.

use super::PayloadReject;

/// Checks one MPV (MPEG-1/2 video) RTP payload.
pub fn check_video(payload: &[u8]) -> Result<(), PayloadReject> {
    if payload.is_empty() {
        return Err(PayloadReject::Empty);
    }
    let header = payload.get(..4).ok_or(PayloadReject::ShortHeader)?;
    if header[0] & 0xf8 != 0 {
        return Err(PayloadReject::BadField); // MBZ
    }
    let len = if header[0] & 0x04 != 0 { 8 } else { 4 };
    match payload.len() {
        n if n < len => Err(PayloadReject::ShortHeader),
        n if n == len => Err(PayloadReject::Empty),
        _ => Ok(()),
    }
}

/// Checks one MPA (MPEG audio) RTP payload.
pub fn check_audio(payload: &[u8]) -> Result<(), PayloadReject> {
    if payload.is_empty() {
        return Err(PayloadReject::Empty);
    }
    let header = payload.get(..4).ok_or(PayloadReject::ShortHeader)?;
    if header[..2] != [0, 0] {
        return Err(PayloadReject::BadField);
    }
    if payload.len() == 4 {
        return Err(PayloadReject::Empty);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_headers() {
        // ffmpeg's: TR 0, S, B, E, I picture, then a sequence header.
        assert_eq!(check_video(&[0x00, 0x00, 0x1c, 0x01, 0x00, 0x00, 0x01, 0xb3]), Ok(()));
        assert_eq!(check_video(&[]), Err(PayloadReject::Empty));
        assert_eq!(check_video(&[0x00, 0x00, 0x1c]), Err(PayloadReject::ShortHeader));
        assert_eq!(check_video(&[0x00, 0x00, 0x1c, 0x01]), Err(PayloadReject::Empty));
        assert_eq!(check_video(&[0x80, 0x00, 0x1c, 0x01, 0x00]), Err(PayloadReject::BadField));
        // T set: the MPEG-2 extension must be there too.
        assert_eq!(check_video(&[0x04, 0x00, 0x1c, 0x01, 0x00, 0x00]), Err(PayloadReject::ShortHeader));
        assert_eq!(check_video(&[0x04, 0x00, 0x1c, 0x01, 0, 0, 0, 0]), Err(PayloadReject::Empty));
        assert_eq!(check_video(&[0x04, 0x00, 0x1c, 0x01, 0, 0, 0, 0, 0]), Ok(()));
    }

    #[test]
    fn audio_headers() {
        assert_eq!(check_audio(&[0, 0, 0, 0, 0xff, 0xfd]), Ok(()));
        assert_eq!(check_audio(&[0, 0, 0x01, 0x00, 0x55]), Ok(()));
        assert_eq!(check_audio(&[]), Err(PayloadReject::Empty));
        assert_eq!(check_audio(&[0, 0, 0]), Err(PayloadReject::ShortHeader));
        assert_eq!(check_audio(&[0, 0, 0, 0]), Err(PayloadReject::Empty));
        assert_eq!(check_audio(&[0, 1, 0, 0, 0xff]), Err(PayloadReject::BadField));
    }
}
