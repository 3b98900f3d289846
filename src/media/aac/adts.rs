//! ADTS: the self-describing AAC framing of MPEG-TS and `.aac` files (ISO/IEC 14496-3 §1.A.2.2).
use bytes::Bytes;

use super::{build_asc_fields, table_rate, AacError, AudioSpecificConfig};

/// A parsed ADTS header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdtsHeader {
    /// Audio object type (ADTS profile + 1; 2 = AAC-LC).
    pub object_type: u8,
    pub sample_rate_index: u8,
    pub sample_rate: u32,
    pub channel_config: u8,
    /// The whole frame: header, optional CRC and payload.
    pub frame_length: usize,
    /// 7 bytes, or 9 with a CRC.
    pub header_length: usize,
}

impl AdtsHeader {
    /// Parses the ADTS header at the start of `data`. Frames that carry several raw data
    /// blocks are refused: the gateway moves one access unit per frame.
    pub fn parse(data: &[u8]) -> Result<AdtsHeader, AacError> {
        let h: &[u8; 7] = data.get(..7).and_then(|s| s.try_into().ok()).ok_or(AacError::Truncated("ADTS header"))?;
        if h[0] != 0xff || h[1] & 0xf6 != 0xf0 {
            return Err(AacError::Invalid("no ADTS syncword".into()));
        }
        let protection_absent = h[1] & 0x01 == 1;
        let object_type = (h[2] >> 6) + 1;
        let sample_rate_index = (h[2] >> 2) & 0x0f;
        let sample_rate = table_rate(u32::from(sample_rate_index))
            .ok_or_else(|| AacError::Invalid(format!("ADTS sampling frequency index {sample_rate_index}")))?;
        let channel_config = ((h[2] & 0x01) << 2) | (h[3] >> 6);
        let frame_length = (usize::from(h[3] & 0x03) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        let raw_blocks = h[6] & 0x03;
        if raw_blocks != 0 {
            return Err(AacError::Invalid(format!("ADTS frame with {} raw data blocks", raw_blocks + 1)));
        }
        let header_length = if protection_absent { 7 } else { 9 };
        if frame_length < header_length {
            return Err(AacError::Invalid(format!("ADTS frame length {frame_length}")));
        }
        Ok(AdtsHeader { object_type, sample_rate_index, sample_rate, channel_config, frame_length, header_length })
    }

    /// The AudioSpecificConfig this header describes.
    pub fn to_asc(&self) -> Result<Bytes, AacError> {
        build_asc_fields(self.object_type, self.sample_rate, self.channel_config)
    }

    /// The header's facts as a parsed AudioSpecificConfig.
    pub fn config(&self) -> AudioSpecificConfig {
        AudioSpecificConfig {
            object_type: self.object_type,
            sample_rate: self.sample_rate,
            channel_config: self.channel_config,
            sbr_sample_rate: None,
            ps: false,
        }
    }
}

/// The header and raw access unit of the ADTS frame at the start of `data` (bytes after
/// that frame are left alone).
pub fn strip_adts(data: &[u8]) -> Result<(AdtsHeader, &[u8]), AacError> {
    let header = AdtsHeader::parse(data)?;
    let frame = data.get(..header.frame_length).ok_or(AacError::Truncated("ADTS frame"))?;
    let payload = &frame[header.header_length..];
    Ok((header, payload))
}

/// Iterates the frames of an ADTS stream as (header, raw access unit). Yields an error, then
/// stops, at a bad header or a frame running past the end.
pub struct AdtsFrames<'a> {
    data: &'a [u8],
    failed: bool,
}

/// The ADTS frames of `data` (which must start at a frame).
pub fn adts_frames(data: &[u8]) -> AdtsFrames<'_> {
    AdtsFrames { data, failed: false }
}

impl<'a> Iterator for AdtsFrames<'a> {
    type Item = Result<(AdtsHeader, &'a [u8]), AacError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.data.is_empty() {
            return None;
        }
        match strip_adts(self.data) {
            Ok((header, payload)) => {
                self.data = self.data.get(header.frame_length..).unwrap_or_default();
                Some(Ok((header, payload)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// The 7-byte ADTS header (no CRC) for a raw access unit of `payload_len` bytes of the stream
/// `asc` describes. Errors for what ADTS cannot say: object types above 4, rates without a
/// table index, channel configuration 0, frames over 8191 bytes.
pub fn build_adts_header(asc: &AudioSpecificConfig, payload_len: usize) -> Result<[u8; 7], AacError> {
    if !(1..=4).contains(&asc.object_type) {
        return Err(AacError::Invalid(format!("object type {} in ADTS", asc.object_type)));
    }
    let index = super::sample_rate_index(asc.sample_rate)
        .ok_or_else(|| AacError::Invalid(format!("sample rate {} in ADTS", asc.sample_rate)))?;
    if !(1..=7).contains(&asc.channel_config) {
        return Err(AacError::Invalid(format!("channel configuration {} in ADTS", asc.channel_config)));
    }
    let len = payload_len + 7;
    if len > 0x1fff {
        return Err(AacError::Invalid(format!("ADTS frame of {len} bytes")));
    }
    let profile = asc.object_type - 1;
    let ch = asc.channel_config;
    Ok([
        0xff,
        0xf1, // MPEG-4, layer 0, no CRC
        (profile << 6) | (index << 2) | (ch >> 2),
        ((ch & 0x03) << 6) | (len >> 11) as u8,
        (len >> 3) as u8,
        (((len & 0x07) as u8) << 5) | 0x1f, // buffer fullness 0x7ff: variable rate
        0xfc,
    ])
}
