//! H.264 helpers: NAL unit types, AVCC (length-prefixed) and Annex-B (start-code) payloads,
//! the avcC decoder configuration record, and the SPS (see [`Sps`]).
//!
//! All functions are pure and bounds-checked: malformed input gives an [`H264Error`].
use bytes::{BufMut, Bytes, BytesMut};

mod avcc_config;
mod pps;
pub mod rtp;
pub mod sanitize;
mod sps;

pub use avcc_config::AvcConfig;
pub use pps::Pps;
pub use sps::Sps;

/// Non-IDR coded slice.
pub const NAL_SLICE: u8 = 1;
/// Coded slice of an IDR picture (a keyframe).
pub const NAL_IDR: u8 = 5;
/// Supplemental enhancement information.
pub const NAL_SEI: u8 = 6;
/// Sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// Picture parameter set.
pub const NAL_PPS: u8 = 8;
/// Access unit delimiter.
pub const NAL_AUD: u8 = 9;
/// End of sequence.
pub const NAL_END_OF_SEQUENCE: u8 = 10;

/// Malformed H.264 data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum H264Error {
    #[error("H.264 {0} truncated")]
    Truncated(&'static str),
    #[error("H.264: {0}")]
    Invalid(String),
}

/// The `nal_unit_type` of a NAL unit (its first byte's low 5 bits); `None` for an empty one.
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}

/// Removes emulation prevention bytes (`00 00 03` → `00 00`) from a NAL payload.
pub fn unescape_rbsp(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Iterates the NAL units of an AVCC payload (each prefixed by a big-endian length of
/// `len_size` bytes). Yields an error, then stops, at a length running past the end.
pub struct AvccNals<'a> {
    data: &'a [u8],
    len_size: usize,
    failed: bool,
}

/// The NAL units of an AVCC payload; `len_size` is 1, 2, 3 or 4 (avcC's lengthSizeMinusOne + 1).
pub fn avcc_nals(data: &[u8], len_size: u8) -> AvccNals<'_> {
    AvccNals { data, len_size: usize::from(len_size), failed: false }
}

impl<'a> Iterator for AvccNals<'a> {
    type Item = Result<&'a [u8], H264Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.data.is_empty() {
            return None;
        }
        if !(1..=4).contains(&self.len_size) {
            self.failed = true;
            return Some(Err(H264Error::Invalid(format!("NAL length size {}", self.len_size))));
        }
        let Some((prefix, rest)) = self.data.split_at_checked(self.len_size) else {
            self.failed = true;
            return Some(Err(H264Error::Truncated("AVCC NAL length")));
        };
        let len = prefix.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let Some((nal, rest)) = rest.split_at_checked(len) else {
            self.failed = true;
            return Some(Err(H264Error::Invalid(format!(
                "AVCC NAL length {len} exceeds the {} bytes left",
                rest.len()
            ))));
        };
        self.data = rest;
        Some(Ok(nal))
    }
}

/// All NAL units of an AVCC payload, or the first framing error.
pub fn avcc_nal_list(data: &[u8], len_size: u8) -> Result<Vec<&[u8]>, H264Error> {
    avcc_nals(data, len_size).collect()
}

/// Does the AVCC payload hold an IDR slice?
pub fn is_keyframe(avcc: &[u8], len_size: u8) -> Result<bool, H264Error> {
    for nal in avcc_nals(avcc, len_size) {
        if nal_type(nal?) == Some(NAL_IDR) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Rewrites an AVCC payload with `from`-byte NAL lengths to one with `to`-byte lengths.
pub fn convert_nal_length_size(data: &[u8], from: u8, to: u8) -> Result<Bytes, H264Error> {
    if !(1..=4).contains(&to) {
        return Err(H264Error::Invalid(format!("NAL length size {to}")));
    }
    let mut out = BytesMut::with_capacity(data.len() + 8);
    for nal in avcc_nals(data, from) {
        let nal = nal?;
        put_nal_length(&mut out, nal.len(), to)?;
        out.put_slice(nal);
    }
    Ok(out.freeze())
}

fn put_nal_length(out: &mut BytesMut, len: usize, size: u8) -> Result<(), H264Error> {
    let bits = 8 * u32::from(size);
    if bits < usize::BITS && len >> bits != 0 {
        return Err(H264Error::Invalid(format!("NAL of {len} bytes too long for {size}-byte length")));
    }
    let bytes = (len as u64).to_be_bytes();
    out.put_slice(&bytes[8 - usize::from(size)..]);
    Ok(())
}

/// The NAL units of an Annex-B byte stream (`00 00 01` / `00 00 00 01` start codes), without
/// start codes or trailing zero bytes. Empty NAL units are left out. Errors when the data
/// does not begin with a start code (after optional zero bytes).
pub fn annexb_nals(data: &[u8]) -> Result<Vec<&[u8]>, H264Error> {
    let starts = start_code_positions(data);
    match starts.first() {
        None => return Err(H264Error::Invalid("no Annex-B start code".into())),
        Some(&(first, _)) if data[..first].iter().any(|&b| b != 0) => {
            return Err(H264Error::Invalid("data before the first Annex-B start code".into()))
        }
        Some(_) => {}
    }
    let mut nals = Vec::with_capacity(starts.len());
    for (i, &(_, body_start)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(data.len(), |&(next, _)| next);
        let mut nal = &data[body_start..end];
        while let [rest @ .., 0] = nal {
            nal = rest;
        }
        if !nal.is_empty() {
            nals.push(nal);
        }
    }
    Ok(nals)
}

/// Each start code `00 00 01` as (index of its first zero, index after the `01`).
fn start_code_positions(data: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            out.push((i, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    out
}

/// Converts an Annex-B access unit to AVCC with 4-byte NAL lengths.
pub fn annexb_to_avcc(data: &[u8]) -> Result<Bytes, H264Error> {
    let nals = annexb_nals(data)?;
    let mut out = BytesMut::with_capacity(data.len() + 4 * nals.len());
    for nal in nals {
        put_nal_length(&mut out, nal.len(), 4)?;
        out.put_slice(nal);
    }
    Ok(out.freeze())
}

/// Converts an AVCC payload (`len_size`-byte NAL lengths) to Annex-B with 4-byte start codes.
pub fn avcc_to_annexb(data: &[u8], len_size: u8) -> Result<Bytes, H264Error> {
    let mut out = BytesMut::with_capacity(data.len() + 16);
    for nal in avcc_nals(data, len_size) {
        out.put_slice(&[0, 0, 0, 1]);
        out.put_slice(nal?);
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod sanitize_tests;
#[cfg(test)]
mod tests;
