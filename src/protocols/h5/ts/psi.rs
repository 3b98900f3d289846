//! Program-specific information: the PAT and PMT sections, built and parsed, and their CRC.

use super::{
    STREAM_TYPE_AAC_ADTS, STREAM_TYPE_H264, STREAM_TYPE_MPEG1_AUDIO, STREAM_TYPE_MPEG1_VIDEO, STREAM_TYPE_MPEG2_AUDIO,
    STREAM_TYPE_MPEG2_VIDEO,
};

/// CRC-32/MPEG-2 (polynomial 0x04C11DB7, initial 0xFFFFFFFF, no reflection, no final xor),
/// as closing every PSI section. A whole section including its CRC checks to 0.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= (byte as u32) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 { (crc << 1) ^ 0x04C1_1DB7 } else { crc << 1 };
        }
    }
    crc
}

/// One elementary stream listed in a PMT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EsEntry {
    pub stream_type: u8,
    pub pid: u16,
}

/// A readable name for a PMT stream_type (for refusals and logs).
pub fn stream_type_name(stream_type: u8) -> &'static str {
    match stream_type {
        STREAM_TYPE_MPEG1_VIDEO => "MPEG-1 video",
        STREAM_TYPE_MPEG2_VIDEO => "MPEG-2 video",
        STREAM_TYPE_MPEG1_AUDIO => "MPEG-1 audio",
        STREAM_TYPE_MPEG2_AUDIO => "MPEG-2 audio",
        STREAM_TYPE_AAC_ADTS => "AAC audio (ADTS)",
        0x11 => "AAC audio (LATM)",
        0x10 => "MPEG-4 video",
        STREAM_TYPE_H264 => "H.264 video",
        0x24 => "H.265 video",
        0x81 => "AC-3 audio",
        0x06 => "private data (e.g. Opus, subtitles)",
        0x15 => "metadata",
        _ => "unknown stream type",
    }
}

/// Wraps a section body (from table_id_extension on, without CRC) into a whole long-form
/// section: table_id, section_length, the body, CRC.
fn section(table_id: u8, body: &[u8]) -> Vec<u8> {
    // section_length counts the bytes after it, the CRC included.
    let length = body.len() + 4;
    let mut s = Vec::with_capacity(3 + length);
    s.push(table_id);
    s.push(0xB0 | ((length >> 8) as u8 & 0x0F)); // syntax indicator, '0', reserved '11'
    s.push(length as u8);
    s.extend_from_slice(body);
    let crc = crc32_mpeg2(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

/// The 5 bytes after section_length: an id, version 0 (current), section 0 of 0.
fn section_header(id: u16, body: &mut Vec<u8>) {
    body.extend_from_slice(&id.to_be_bytes());
    body.push(0xC1); // reserved '11', version 0, current_next_indicator 1
    body.push(0); // section_number
    body.push(0); // last_section_number
}

/// A PAT announcing one program and its PMT PID.
pub fn pat(transport_stream_id: u16, program_number: u16, pmt_pid: u16) -> Vec<u8> {
    let mut body = Vec::with_capacity(9);
    section_header(transport_stream_id, &mut body);
    body.extend_from_slice(&program_number.to_be_bytes());
    body.extend_from_slice(&(0xE000 | pmt_pid).to_be_bytes());
    section(0x00, &body)
}

/// A PMT for one program: its PCR PID and its elementary streams.
pub fn pmt(program_number: u16, pcr_pid: u16, streams: &[EsEntry]) -> Vec<u8> {
    let mut body = Vec::with_capacity(9 + 5 * streams.len());
    section_header(program_number, &mut body);
    body.extend_from_slice(&(0xE000 | pcr_pid).to_be_bytes());
    body.extend_from_slice(&0xF000u16.to_be_bytes()); // program_info_length 0
    for s in streams {
        body.push(s.stream_type);
        body.extend_from_slice(&(0xE000 | s.pid).to_be_bytes());
        body.extend_from_slice(&0xF000u16.to_be_bytes()); // ES_info_length 0
    }
    section(0x02, &body)
}

/// Why a section was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SectionError {
    #[error("section too short")]
    Short,
    #[error("section CRC mismatch")]
    Crc,
    #[error("unexpected table id {0:#04x}")]
    TableId(u8),
}

/// Checks a whole section (table_id .. CRC) and returns its body between the 5-byte
/// extended header and the CRC.
fn section_body(section: &[u8], table_id: u8) -> Result<&[u8], SectionError> {
    if section.len() < 12 {
        return Err(SectionError::Short);
    }
    if section[0] != table_id {
        return Err(SectionError::TableId(section[0]));
    }
    let length = (((section[1] & 0x0F) as usize) << 8) | section[2] as usize;
    let whole = section.get(..3 + length).ok_or(SectionError::Short)?;
    if length < 9 {
        return Err(SectionError::Short);
    }
    if crc32_mpeg2(whole) != 0 {
        return Err(SectionError::Crc);
    }
    Ok(&whole[8..whole.len() - 4])
}

/// The PMT PID of the first program of a PAT (program 0, the network PID, is skipped).
pub fn parse_pat(section: &[u8]) -> Result<Option<u16>, SectionError> {
    let body = section_body(section, 0x00)?;
    Ok(body
        .chunks_exact(4)
        .find(|e| u16::from_be_bytes([e[0], e[1]]) != 0)
        .map(|e| u16::from_be_bytes([e[2], e[3]]) & 0x1FFF))
}

/// The elementary streams of a PMT.
pub fn parse_pmt(section: &[u8]) -> Result<Vec<EsEntry>, SectionError> {
    let body = section_body(section, 0x02)?;
    if body.len() < 4 {
        return Err(SectionError::Short);
    }
    let info_len = ((u16::from_be_bytes([body[2], body[3]]) & 0x0FFF) as usize).min(body.len() - 4);
    let mut rest = &body[4 + info_len..];
    let mut streams = Vec::new();
    while rest.len() >= 5 {
        let pid = u16::from_be_bytes([rest[1], rest[2]]) & 0x1FFF;
        let es_len = (u16::from_be_bytes([rest[3], rest[4]]) & 0x0FFF) as usize;
        streams.push(EsEntry { stream_type: rest[0], pid });
        rest = rest.get(5 + es_len..).unwrap_or(&[]);
    }
    Ok(streams)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_standard_check_value() {
        // CRC-32/MPEG-2 of "123456789".
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
    }

    #[test]
    fn pat_and_pmt_round_trip() {
        let pat = pat(1, 1, 0x1000);
        assert_eq!(crc32_mpeg2(&pat), 0);
        assert_eq!(parse_pat(&pat), Ok(Some(0x1000)));
        let streams = [EsEntry { stream_type: 0x01, pid: 0x100 }, EsEntry { stream_type: 0x03, pid: 0x101 }];
        let pmt = pmt(1, 0x100, &streams);
        assert_eq!(parse_pmt(&pmt), Ok(streams.to_vec()));
    }

    #[test]
    fn a_damaged_section_is_refused() {
        let mut pat = pat(1, 1, 0x1000);
        pat[9] ^= 0x01;
        assert_eq!(parse_pat(&pat), Err(SectionError::Crc));
        assert_eq!(parse_pmt(&pat[..5]), Err(SectionError::Short));
        assert_eq!(parse_pmt(&super::pat(1, 1, 0x1000)), Err(SectionError::TableId(0)));
    }
}
