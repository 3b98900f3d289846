//! AAC helpers: the AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) and ADTS headers
//! (§1.A.2.2). Pure and bounds-checked: malformed input gives an [`AacError`].
use bytes::Bytes;

use super::bits::{BitReader, BitWriter, BitsError};

/// AAC Main.
pub const AOT_AAC_MAIN: u8 = 1;
/// AAC Low Complexity, what nearly every encoder produces.
pub const AOT_AAC_LC: u8 = 2;
/// Spectral Band Replication (HE-AAC).
pub const AOT_SBR: u8 = 5;
/// Parametric Stereo (HE-AAC v2).
pub const AOT_PS: u8 = 29;

/// The sampling frequencies of `samplingFrequencyIndex` 0..=12.
pub const SAMPLE_RATES: [u32; 13] =
    [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

/// Malformed AAC configuration or ADTS data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AacError {
    #[error("AAC {0} truncated")]
    Truncated(&'static str),
    #[error("AAC: {0}")]
    Invalid(String),
}

impl From<BitsError> for AacError {
    fn from(_: BitsError) -> Self {
        AacError::Truncated("AudioSpecificConfig")
    }
}

/// The `samplingFrequencyIndex` of a rate, when it has one.
pub fn sample_rate_index(rate: u32) -> Option<u8> {
    SAMPLE_RATES.iter().position(|&r| r == rate).map(|i| i as u8)
}

/// Channels of a `channelConfiguration` (0 = defined in a program config element: unknown).
fn channels_of_config(config: u8) -> u8 {
    match config {
        1..=6 => config,
        7 => 8,
        _ => 0,
    }
}

/// A parsed AudioSpecificConfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// The core audio object type (2 = AAC-LC), after explicit SBR/PS signalling is unwrapped.
    pub object_type: u8,
    /// The core sampling rate.
    pub sample_rate: u32,
    /// `channelConfiguration` (0 = given by a program config element).
    pub channel_config: u8,
    /// SBR (HE-AAC) signalled explicitly, with its output rate.
    pub sbr_sample_rate: Option<u32>,
    /// Parametric stereo (HE-AAC v2) signalled explicitly.
    pub ps: bool,
}

impl AudioSpecificConfig {
    /// Parses an AudioSpecificConfig (as in FLV's AAC sequence header or MP4's esds).
    pub fn parse(data: &[u8]) -> Result<AudioSpecificConfig, AacError> {
        let mut r = BitReader::new(data);
        let mut object_type = read_object_type(&mut r)?;
        let sample_rate = read_sample_rate(&mut r)?;
        let channel_config = r.bits(4)? as u8;
        if channel_config > 7 {
            return Err(AacError::Invalid(format!("channel configuration {channel_config}")));
        }
        let mut asc =
            AudioSpecificConfig { object_type, sample_rate, channel_config, sbr_sample_rate: None, ps: false };
        if object_type == AOT_SBR || object_type == AOT_PS {
            // Explicit hierarchical signalling: the extension rate, then the core type.
            asc.ps = object_type == AOT_PS;
            asc.sbr_sample_rate = Some(read_sample_rate(&mut r)?);
            object_type = read_object_type(&mut r)?;
            asc.object_type = object_type;
            if object_type == 22 {
                r.skip(4)?; // extensionChannelConfiguration (ER BSAC)
            }
        }
        if object_type == 0 || object_type == 31 {
            return Err(AacError::Invalid(format!("audio object type {object_type}")));
        }
        // GASpecificConfig of the AAC family; anything after it is optional to us.
        if matches!(object_type, 1..=4 | 6 | 7 | 17 | 19..=23) && channel_config != 0 {
            r.skip(1)?; // frameLengthFlag
            if r.bit()? {
                r.skip(14)?; // coreCoderDelay
            }
            let extension = r.bit()?;
            if extension && matches!(object_type, 17 | 19 | 20 | 23) {
                return Ok(asc); // ER extension fields: not needed for rate/channels
            }
            if asc.sbr_sample_rate.is_none() {
                read_backward_compatible_sbr(&mut r, &mut asc);
            }
        }
        Ok(asc)
    }

    /// The rate a decoder outputs (the SBR rate for explicitly signalled HE-AAC).
    pub fn output_sample_rate(&self) -> u32 {
        self.sbr_sample_rate.unwrap_or(self.sample_rate)
    }

    /// Channels a decoder outputs (stereo for parametric stereo); 0 when only a program
    /// config element says.
    pub fn output_channels(&self) -> u8 {
        if self.ps && self.channel_config == 1 {
            2
        } else {
            channels_of_config(self.channel_config)
        }
    }
}

/// Backward-compatible explicit SBR/PS signalling after the GASpecificConfig (sync extension
/// 0x2b7). Best effort: a short or odd tail leaves `asc` as it is.
fn read_backward_compatible_sbr(r: &mut BitReader<'_>, asc: &mut AudioSpecificConfig) {
    let mut tail = || -> Result<(), BitsError> {
        if r.remaining() < 16 || r.bits(11)? != 0x2b7 {
            return Ok(());
        }
        let ext_type = r.bits(5)? as u8;
        if ext_type == AOT_SBR && r.bit()? {
            let rate_index = r.bits(4)?;
            let rate = if rate_index == 0xf { r.bits(24)? } else { table_rate(rate_index).ok_or(BitsError)? };
            asc.sbr_sample_rate = Some(rate);
            if r.remaining() >= 12 && r.bits(11)? == 0x548 {
                asc.ps = r.bit()?;
            }
        }
        Ok(())
    };
    let _ = tail();
}

fn table_rate(index: u32) -> Option<u32> {
    SAMPLE_RATES.get(index as usize).copied()
}

fn read_object_type(r: &mut BitReader<'_>) -> Result<u8, AacError> {
    let t = r.bits(5)? as u8;
    Ok(if t == 31 { 32 + r.bits(6)? as u8 } else { t })
}

fn read_sample_rate(r: &mut BitReader<'_>) -> Result<u32, AacError> {
    let index = r.bits(4)?;
    let rate = match index {
        0xf => r.bits(24)?,
        i => table_rate(i).ok_or_else(|| AacError::Invalid(format!("sampling frequency index {i}")))?,
    };
    if rate == 0 {
        return Err(AacError::Invalid("sampling rate 0".into()));
    }
    Ok(rate)
}

/// Builds an AAC-LC AudioSpecificConfig for `sample_rate` (an explicit 24-bit rate when it
/// has no table index) and `channels` (1-6 or 8).
pub fn build_asc(sample_rate: u32, channels: u8) -> Result<Bytes, AacError> {
    let channel_config = match channels {
        1..=6 => channels,
        8 => 7,
        _ => return Err(AacError::Invalid(format!("{channels} channels have no AAC channel configuration"))),
    };
    build_asc_fields(AOT_AAC_LC, sample_rate, channel_config)
}

/// An AudioSpecificConfig of a GA object type (1-4) with a plain GASpecificConfig.
fn build_asc_fields(object_type: u8, sample_rate: u32, channel_config: u8) -> Result<Bytes, AacError> {
    if !(1..=4).contains(&object_type) || channel_config > 7 {
        return Err(AacError::Invalid(format!("object type {object_type}, channel configuration {channel_config}")));
    }
    if sample_rate == 0 || sample_rate >= 1 << 24 {
        return Err(AacError::Invalid(format!("sample rate {sample_rate}")));
    }
    let mut w = BitWriter::new();
    w.put(5, u32::from(object_type));
    match sample_rate_index(sample_rate) {
        Some(i) => w.put(4, u32::from(i)),
        None => {
            w.put(4, 0xf);
            w.put(24, sample_rate);
        }
    }
    w.put(4, u32::from(channel_config));
    w.put(3, 0); // frameLengthFlag, dependsOnCoreCoder, extensionFlag
    Ok(Bytes::from(w.finish()))
}

mod adts;
pub use adts::{adts_frames, build_adts_header, strip_adts, AdtsFrames, AdtsHeader};

#[cfg(test)]
mod tests;
