//! A small safe layer over libfdk-aac's encoder (the `fdk-aac-sys` bindings): AAC-LC, raw
//! access units out (no ADTS), CBR at a given bitrate, the afterburner switch, and the
//! end-of-stream flush (`numInSamples = -1`) that the `fdk-aac` crate's API does not offer.

use std::os::raw::{c_int, c_void};
use std::ptr;

use fdk_aac_sys as sys;

/// What the encoder is opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdkConfig {
    pub sample_rate: u32,
    /// 1 or 2.
    pub channels: u8,
    /// Target bitrate in bit/s (CBR); libfdk-aac clamps it to what the rate/channels allow.
    pub bitrate: u32,
    /// Better quality for more CPU.
    pub afterburner: bool,
}

/// What the opened encoder reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdkInfo {
    /// Samples per channel in one access unit (1024 for AAC-LC).
    pub frame_length: u32,
    /// Codec delay in samples per channel: decoded output lags the input by this much.
    pub delay: u32,
    /// The largest access unit, in bytes.
    pub max_out_bytes: usize,
    /// The AudioSpecificConfig.
    pub asc: Vec<u8>,
    /// The bitrate the encoder settled on (bit/s).
    pub bitrate: u32,
}

/// A libfdk-aac error code with its meaning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("libfdk-aac {context}: {} (code {code:#x})", describe(*.code))]
pub struct FdkError {
    pub context: &'static str,
    pub code: u32,
}

fn describe(code: u32) -> &'static str {
    match code {
        sys::AACENC_ERROR_AACENC_INVALID_HANDLE => "invalid handle",
        sys::AACENC_ERROR_AACENC_MEMORY_ERROR => "out of memory",
        sys::AACENC_ERROR_AACENC_UNSUPPORTED_PARAMETER => "unsupported parameter",
        sys::AACENC_ERROR_AACENC_INVALID_CONFIG => "invalid configuration",
        sys::AACENC_ERROR_AACENC_INIT_ERROR
        | sys::AACENC_ERROR_AACENC_INIT_AAC_ERROR
        | sys::AACENC_ERROR_AACENC_INIT_SBR_ERROR
        | sys::AACENC_ERROR_AACENC_INIT_TP_ERROR
        | sys::AACENC_ERROR_AACENC_INIT_META_ERROR
        | sys::AACENC_ERROR_AACENC_INIT_MPS_ERROR => "initialization failed",
        sys::AACENC_ERROR_AACENC_ENCODE_ERROR => "encoding failed",
        sys::AACENC_ERROR_AACENC_ENCODE_EOF => "end of stream",
        _ => "unknown error",
    }
}

fn check(context: &'static str, code: sys::AACENC_ERROR) -> Result<(), FdkError> {
    if code == sys::AACENC_ERROR_AACENC_OK {
        Ok(())
    } else {
        Err(FdkError { context, code })
    }
}

/// The result of one encode call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Input samples (all channels) the encoder took.
    pub consumed: usize,
    /// Bytes of one access unit written to the output (0: none yet).
    pub written: usize,
}

/// An open libfdk-aac encoder.
pub struct FdkEncoder {
    handle: sys::HANDLE_AACENCODER,
    config: FdkConfig,
}

// The handle is owned exclusively and only used through `&mut self` (or `&self` for the
// read-only info call), never shared between threads at once.
unsafe impl Send for FdkEncoder {}

impl FdkEncoder {
    /// Opens and configures an AAC-LC encoder producing raw access units.
    pub fn new(config: FdkConfig) -> Result<FdkEncoder, FdkError> {
        if !(1..=2).contains(&config.channels) {
            return Err(FdkError { context: "channels", code: sys::AACENC_ERROR_AACENC_INVALID_CONFIG });
        }
        let mut handle: sys::HANDLE_AACENCODER = ptr::null_mut();
        // SAFETY: aacEncOpen writes a fresh handle into `handle`.
        check("open", unsafe { sys::aacEncOpen(&mut handle, 0, u32::from(config.channels)) })?;
        let encoder = FdkEncoder { handle, config };
        encoder.set("audio object type", sys::AACENC_PARAM_AACENC_AOT, sys::AUDIO_OBJECT_TYPE_AOT_AAC_LC as u32)?;
        encoder.set("sample rate", sys::AACENC_PARAM_AACENC_SAMPLERATE, config.sample_rate)?;
        encoder.set("channel mode", sys::AACENC_PARAM_AACENC_CHANNELMODE, u32::from(config.channels))?;
        encoder.set("channel order", sys::AACENC_PARAM_AACENC_CHANNELORDER, 1)?; // WAV order
        encoder.set("bitrate mode", sys::AACENC_PARAM_AACENC_BITRATEMODE, 0)?; // CBR
        encoder.set("bitrate", sys::AACENC_PARAM_AACENC_BITRATE, config.bitrate)?;
        encoder.set("transport", sys::AACENC_PARAM_AACENC_TRANSMUX, 0)?; // raw access units
        encoder.set("afterburner", sys::AACENC_PARAM_AACENC_AFTERBURNER, u32::from(config.afterburner))?;
        // An encode call without buffers applies the configuration.
        // SAFETY: documented as the way to initialize; all pointers may be null.
        check("initialization", unsafe {
            sys::aacEncEncode(handle, ptr::null(), ptr::null(), ptr::null(), ptr::null_mut())
        })?;
        Ok(encoder)
    }

    fn set(&self, context: &'static str, param: sys::AACENC_PARAM, value: u32) -> Result<(), FdkError> {
        // SAFETY: `handle` is a live encoder handle.
        check(context, unsafe { sys::aacEncoder_SetParam(self.handle, param, value) })
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> FdkConfig {
        self.config
    }

    /// Frame length, delay, AudioSpecificConfig and output size bound.
    pub fn info(&self) -> Result<FdkInfo, FdkError> {
        // SAFETY: a zeroed InfoStruct is valid plain data; aacEncInfo fills it.
        let mut info: sys::AACENC_InfoStruct = unsafe { std::mem::zeroed() };
        check("info", unsafe { sys::aacEncInfo(self.handle, &mut info) })?;
        let asc_len = (info.confSize as usize).min(info.confBuf.len());
        // SAFETY: `handle` is a live encoder handle.
        let bitrate = unsafe { sys::aacEncoder_GetParam(self.handle, sys::AACENC_PARAM_AACENC_BITRATE) };
        Ok(FdkInfo {
            frame_length: info.frameLength,
            delay: info.nDelay,
            max_out_bytes: (info.maxOutBufBytes as usize).max(1),
            asc: info.confBuf[..asc_len].to_vec(),
            bitrate,
        })
    }

    /// Feeds interleaved samples (all channels counted); writes at most one access unit.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<Step, FdkError> {
        let samples = c_int::try_from(pcm.len())
            .map_err(|_| FdkError { context: "input size", code: sys::AACENC_ERROR_AACENC_ENCODE_ERROR })?;
        self.call(Some(pcm), samples, out, "encode")
    }

    /// Encodes what is left at the end of the stream: one access unit per call, `None` once
    /// the encoder's delay line is empty. The encoder must be reopened to go on after that.
    pub fn flush(&mut self, out: &mut [u8]) -> Result<Option<usize>, FdkError> {
        match self.call(None, -1, out, "flush") {
            Ok(step) if step.written > 0 => Ok(Some(step.written)),
            Ok(_) => Ok(None),
            Err(e) if e.code == sys::AACENC_ERROR_AACENC_ENCODE_EOF => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn call(
        &mut self,
        pcm: Option<&[i16]>,
        samples: c_int,
        out: &mut [u8],
        context: &'static str,
    ) -> Result<Step, FdkError> {
        let out_size = c_int::try_from(out.len()).unwrap_or(c_int::MAX);
        let mut in_ptr = pcm.map_or(ptr::null_mut(), |p| p.as_ptr() as *mut c_void);
        let mut in_id = sys::AACENC_BufferIdentifier_IN_AUDIO_DATA as c_int;
        let mut in_size = pcm.map_or(0, |p| (p.len() * 2).min(c_int::MAX as usize) as c_int);
        let mut in_el_size = 2 as c_int;
        let in_desc = sys::AACENC_BufDesc {
            numBufs: c_int::from(pcm.is_some()),
            bufs: &mut in_ptr,
            bufferIdentifiers: &mut in_id,
            bufSizes: &mut in_size,
            bufElSizes: &mut in_el_size,
        };
        let mut out_ptr = out.as_mut_ptr() as *mut c_void;
        let mut out_id = sys::AACENC_BufferIdentifier_OUT_BITSTREAM_DATA as c_int;
        let mut out_size = out_size;
        let mut out_el_size = 1 as c_int;
        let out_desc = sys::AACENC_BufDesc {
            numBufs: 1,
            bufs: &mut out_ptr,
            bufferIdentifiers: &mut out_id,
            bufSizes: &mut out_size,
            bufElSizes: &mut out_el_size,
        };
        let in_args = sys::AACENC_InArgs { numInSamples: samples, numAncBytes: 0 };
        let mut out_args = sys::AACENC_OutArgs { numOutBytes: 0, numInSamples: 0, numAncBytes: 0, bitResState: 0 };
        // SAFETY: the descriptors point at locals and at `pcm`/`out`, which outlive the call;
        // the library reads at most `in_size` bytes and writes at most `out_size` bytes.
        check(context, unsafe { sys::aacEncEncode(self.handle, &in_desc, &out_desc, &in_args, &mut out_args) })?;
        Ok(Step {
            consumed: out_args.numInSamples.max(0) as usize,
            written: (out_args.numOutBytes.max(0) as usize).min(out.len()),
        })
    }
}

impl Drop for FdkEncoder {
    fn drop(&mut self) {
        // SAFETY: `handle` came from aacEncOpen and is closed once.
        unsafe {
            sys::aacEncClose(&mut self.handle);
        }
    }
}

#[cfg(test)]
#[path = "fdk_tests.rs"]
mod tests;
