//! What of a publisher's H.264 may reach a GStreamer parser: only the NAL unit types the
//! gateway needs (slices 1–5, SPS, PPS, access unit delimiter), and parameter sets only when
//! our own parsers accept them. Everything else — SEI, subset SPS (MVC/SVC, type 15), the
//! reserved and unspecified types, end-of-sequence, filler — is removed, so a crafted unit
//! cannot reach `h264parse` (GStreamer 1.22 crashes on a truncated subset SPS).
//!
//! Pure: bytes in, a verdict or the cleaned bytes out.

use bytes::{BufMut, Bytes, BytesMut};

use super::{avcc_nals, nal_type, AvcConfig, Pps, Sps, NAL_AUD, NAL_PPS, NAL_SPS};

/// Why a NAL unit (or a whole payload) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reject {
    /// An empty NAL unit, or one with the forbidden_zero_bit set.
    Malformed,
    /// A NAL unit type the gateway does not pass on.
    Type(u8),
    /// An SPS our parser refuses.
    BadSps,
    /// A PPS our parser refuses.
    BadPps,
    /// AVCC length prefixes that do not add up to the payload.
    Framing,
    /// An avcC record that does not parse, or names no SPS.
    BadConfig,
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reject::Malformed => f.write_str("malformed NAL unit"),
            Reject::Type(t) => write!(f, "NAL unit type {t} not passed on"),
            Reject::BadSps => f.write_str("SPS does not parse"),
            Reject::BadPps => f.write_str("PPS does not parse"),
            Reject::Framing => f.write_str("AVCC NAL lengths do not fit the payload"),
            Reject::BadConfig => f.write_str("avcC does not parse"),
        }
    }
}

/// NAL unit types passed on: coded slices (1–5), SPS, PPS and access unit delimiters.
pub fn passed_type(t: u8) -> bool {
    matches!(t, 1..=5 | NAL_SPS | NAL_PPS | NAL_AUD)
}

/// Checks one NAL unit (with its header byte): a passed type, and parameter sets that parse.
pub fn check_nal(nal: &[u8]) -> Result<(), Reject> {
    let header = *nal.first().ok_or(Reject::Malformed)?;
    if header & 0x80 != 0 {
        return Err(Reject::Malformed);
    }
    match nal_type(nal) {
        Some(NAL_SPS) => Sps::parse(nal).map(drop).map_err(|_| Reject::BadSps),
        Some(NAL_PPS) => Pps::parse(nal).map(drop).map_err(|_| Reject::BadPps),
        // A slice needs at least one byte of header after the NAL header.
        Some(1..=5) if nal.len() < 2 => Err(Reject::Malformed),
        Some(t) if passed_type(t) => Ok(()),
        Some(t) => Err(Reject::Type(t)),
        None => Err(Reject::Malformed),
    }
}

/// The result of cleaning an AVCC payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleaned {
    /// The payload to pass on; `None` when nothing of it is left.
    pub data: Option<Bytes>,
    /// The NAL units removed, with why (the first few are enough to log).
    pub removed: Vec<Reject>,
}

/// Removes the NAL units [`check_nal`] refuses from an AVCC payload (`len_size`-byte lengths).
/// The payload is returned as is (no copy) when nothing was removed. A framing error refuses
/// the whole payload: its units cannot be told apart.
pub fn clean_avcc(data: &Bytes, len_size: u8) -> Result<Cleaned, Reject> {
    let mut removed = Vec::new();
    let mut kept = Vec::new();
    for nal in avcc_nals(data, len_size) {
        let nal = nal.map_err(|_| Reject::Framing)?;
        match check_nal(nal) {
            Ok(()) => kept.push(nal),
            Err(reason) => removed.push(reason),
        }
    }
    if removed.is_empty() {
        let data = (!kept.is_empty()).then(|| data.clone());
        return Ok(Cleaned { data, removed });
    }
    if kept.is_empty() {
        return Ok(Cleaned { data: None, removed });
    }
    let size = usize::from(len_size);
    let mut out = BytesMut::with_capacity(data.len());
    for nal in kept {
        let len = (nal.len() as u64).to_be_bytes();
        out.put_slice(&len[8 - size..]);
        out.put_slice(nal);
    }
    Ok(Cleaned { data: Some(out.freeze()), removed })
}

/// Checks an avcC record: it parses, names at least one SPS, and every SPS and PPS in it
/// parses with our own parsers.
pub fn check_config(avcc: &[u8]) -> Result<(), Reject> {
    let config = AvcConfig::parse(avcc).map_err(|_| Reject::BadConfig)?;
    if config.sps.is_empty() {
        return Err(Reject::BadConfig);
    }
    config.sps.iter().chain(&config.pps).try_for_each(|nal| check_nal(nal))
}
