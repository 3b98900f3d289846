//! The AVCDecoderConfigurationRecord (`avcC`, ISO/IEC 14496-15 §5.3.3): what FLV's AVC
//! sequence header and MP4's avcC box carry.
use bytes::{BufMut, Bytes, BytesMut};

use super::{nal_type, H264Error, Sps, NAL_PPS, NAL_SPS};

/// A parsed avcC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    pub profile_idc: u8,
    /// The SPS constraint flags byte (`profile_compatibility`).
    pub profile_compat: u8,
    pub level_idc: u8,
    /// Bytes in each NAL length prefix of the stream's AVCC payloads (1, 2 or 4).
    pub nal_length_size: u8,
    /// Sequence parameter set NAL units, with their NAL header bytes.
    pub sps: Vec<Bytes>,
    /// Picture parameter set NAL units, with their NAL header bytes.
    pub pps: Vec<Bytes>,
    /// High-profile extension (chroma_format, bit_depth_luma_minus8, bit_depth_chroma_minus8),
    /// when present.
    pub high_ext: Option<(u8, u8, u8)>,
}

/// Profiles whose avcC carries the chroma format / bit depth extension (as ffmpeg writes it:
/// every profile but baseline, main and extended).
fn is_high_profile(profile_idc: u8) -> bool {
    !matches!(profile_idc, 66 | 77 | 88)
}

impl AvcConfig {
    /// Parses an avcC record.
    pub fn parse(data: &[u8]) -> Result<AvcConfig, H264Error> {
        let mut r = Reader(data);
        let version = r.u8()?;
        if version != 1 {
            return Err(H264Error::Invalid(format!("avcC version {version}")));
        }
        let profile_idc = r.u8()?;
        let profile_compat = r.u8()?;
        let level_idc = r.u8()?;
        let nal_length_size = (r.u8()? & 0x03) + 1;
        if nal_length_size == 3 {
            return Err(H264Error::Invalid("avcC NAL length size 3".into()));
        }
        let sps_count = usize::from(r.u8()? & 0x1f);
        let mut sps = Vec::with_capacity(sps_count);
        for _ in 0..sps_count {
            let nal = r.param_set()?;
            if nal_type(nal) != Some(NAL_SPS) {
                return Err(H264Error::Invalid("avcC SPS entry is not an SPS".into()));
            }
            sps.push(Bytes::copy_from_slice(nal));
        }
        let pps_count = usize::from(r.u8()?);
        let mut pps = Vec::with_capacity(pps_count);
        for _ in 0..pps_count {
            let nal = r.param_set()?;
            if nal_type(nal) != Some(NAL_PPS) {
                return Err(H264Error::Invalid("avcC PPS entry is not a PPS".into()));
            }
            pps.push(Bytes::copy_from_slice(nal));
        }
        // The high-profile extension is optional in practice (many muxers leave it out).
        let high_ext = match (is_high_profile(profile_idc), r.0) {
            (true, [a, b, c, ..]) => Some((a & 0x03, b & 0x07, c & 0x07)),
            _ => None,
        };
        Ok(AvcConfig { profile_idc, profile_compat, level_idc, nal_length_size, sps, pps, high_ext })
    }

    /// The first SPS, parsed.
    pub fn first_sps(&self) -> Result<Sps, H264Error> {
        let nal = self.sps.first().ok_or_else(|| H264Error::Invalid("avcC has no SPS".into()))?;
        Sps::parse(nal)
    }

    /// Builds an avcC (4-byte NAL lengths) from one SPS and one PPS NAL unit (without start
    /// codes). Profile and level come from the SPS.
    pub fn from_sps_pps(sps: &[u8], pps: &[u8]) -> Result<AvcConfig, H264Error> {
        if nal_type(pps) != Some(NAL_PPS) {
            return Err(H264Error::Invalid("not a PPS".into()));
        }
        let parsed = Sps::parse(sps)?;
        let high_ext = is_high_profile(parsed.profile_idc)
            .then(|| (parsed.chroma_format_idc as u8, parsed.bit_depth_luma - 8, parsed.bit_depth_chroma - 8));
        Ok(AvcConfig {
            profile_idc: parsed.profile_idc,
            profile_compat: parsed.constraint_flags,
            level_idc: parsed.level_idc,
            nal_length_size: 4,
            sps: vec![Bytes::copy_from_slice(sps)],
            pps: vec![Bytes::copy_from_slice(pps)],
            high_ext,
        })
    }

    /// Builds the avcC bytes for one SPS and one PPS: `from_sps_pps(..)?.to_bytes()`.
    pub fn build(sps: &[u8], pps: &[u8]) -> Result<Bytes, H264Error> {
        Self::from_sps_pps(sps, pps)?.to_bytes()
    }

    /// Serializes the record.
    pub fn to_bytes(&self) -> Result<Bytes, H264Error> {
        if self.sps.len() > 31 || self.pps.len() > 255 {
            return Err(H264Error::Invalid("too many parameter sets for avcC".into()));
        }
        if !matches!(self.nal_length_size, 1 | 2 | 4) {
            return Err(H264Error::Invalid(format!("NAL length size {}", self.nal_length_size)));
        }
        let mut out = BytesMut::with_capacity(16 + self.sps.iter().chain(&self.pps).map(Bytes::len).sum::<usize>());
        out.put_u8(1);
        out.put_u8(self.profile_idc);
        out.put_u8(self.profile_compat);
        out.put_u8(self.level_idc);
        out.put_u8(0xfc | (self.nal_length_size - 1));
        out.put_u8(0xe0 | self.sps.len() as u8);
        for nal in &self.sps {
            put_param_set(&mut out, nal)?;
        }
        out.put_u8(self.pps.len() as u8);
        for nal in &self.pps {
            put_param_set(&mut out, nal)?;
        }
        if let Some((chroma, luma8, chroma8)) = self.high_ext {
            out.put_u8(0xfc | (chroma & 0x03));
            out.put_u8(0xf8 | (luma8 & 0x07));
            out.put_u8(0xf8 | (chroma8 & 0x07));
            out.put_u8(0); // numOfSequenceParameterSetExt
        }
        Ok(out.freeze())
    }
}

fn put_param_set(out: &mut BytesMut, nal: &[u8]) -> Result<(), H264Error> {
    let len =
        u16::try_from(nal.len()).map_err(|_| H264Error::Invalid("parameter set longer than 65535 bytes".into()))?;
    out.put_u16(len);
    out.put_slice(nal);
    Ok(())
}

/// A byte cursor whose reads fail at the end instead of panicking.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, H264Error> {
        let (&b, rest) = self.0.split_first().ok_or(H264Error::Truncated("avcC"))?;
        self.0 = rest;
        Ok(b)
    }

    fn param_set(&mut self) -> Result<&'a [u8], H264Error> {
        let len = usize::from(u16::from_be_bytes([self.u8()?, self.u8()?]));
        let (nal, rest) = self.0.split_at_checked(len).ok_or(H264Error::Truncated("avcC parameter set"))?;
        self.0 = rest;
        Ok(nal)
    }
}
