//! The `igaacenc` element: an `AudioEncoder` subclass feeding libfdk-aac one 1024-sample
//! frame at a time and handing its raw access units to the base class, which stamps them.

use std::sync::{LazyLock, Mutex};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer::subclass::prelude::*;
use gstreamer_audio as gst_audio;
use gstreamer_audio::prelude::*;
use gstreamer_audio::subclass::prelude::*;

use super::fdk::{FdkConfig, FdkEncoder, FdkInfo};
use super::timing::{is_filler, samples_to_time, shifted};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("igaacenc", gst::DebugColorFlags::empty(), Some("AAC-LC encoder (libfdk-aac)"))
});

/// Target bitrate when none is set, in bit/s.
pub const DEFAULT_BITRATE: u32 = 128_000;
/// Lowest and highest bitrate the property takes, in bit/s.
pub const MIN_BITRATE: u32 = 8_000;
pub const MAX_BITRATE: u32 = 512_000;
/// The sampling rates with an AAC `samplingFrequencyIndex` that AAC-LC encodes.
pub const RATES: [i32; 12] = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000];

#[derive(Debug, Clone, Copy)]
struct Settings {
    bitrate: u32,
    afterburner: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { bitrate: DEFAULT_BITRATE, afterburner: true }
    }
}

/// One negotiated format: the encoder and what is needed to time its output.
struct State {
    encoder: FdkEncoder,
    info: FdkInfo,
    channels: usize,
    /// Input converted to samples (reused between frames).
    pcm: Vec<i16>,
    /// The encoder was flushed (drained): reopen it before more input.
    spent: bool,
    /// Samples per channel handed to the encoder and not yet given back with `finish_frame`.
    pending: u64,
    /// Samples per channel fed to this encoder session.
    fed: u64,
    /// Access units this encoder session produced.
    produced: u64,
    /// The encoder delay as a time.
    delay: gst::ClockTime,
    /// A dropped unit carried DISCONT: mark the next one sent.
    discont_pending: bool,
}

impl State {
    fn open(config: FdkConfig) -> Result<State, String> {
        let encoder = FdkEncoder::new(config).map_err(|e| e.to_string())?;
        let info = encoder.info().map_err(|e| e.to_string())?;
        if info.frame_length == 0 || info.asc.len() < 2 {
            return Err(format!("unusable encoder info: {info:?}"));
        }
        Ok(State {
            encoder,
            delay: samples_to_time(u64::from(info.delay), config.sample_rate),
            info,
            channels: usize::from(config.channels),
            pcm: Vec::new(),
            spent: false,
            pending: 0,
            fed: 0,
            produced: 0,
            discont_pending: false,
        })
    }

    /// A fresh encoder session with the same configuration (after a drain or a flush).
    fn reopen(&mut self) -> Result<(), String> {
        let pcm = std::mem::take(&mut self.pcm);
        *self = State::open(self.encoder.config())?;
        self.pcm = pcm;
        Ok(())
    }

    fn frame(&self) -> u64 {
        u64::from(self.info.frame_length)
    }

    /// Whether the next access unit holds only priming or end padding.
    fn next_is_filler(&self) -> bool {
        is_filler(self.produced, self.frame(), u64::from(self.info.delay), self.fed)
    }
}

/// An access unit ready for `finish_frame`: its bytes and the input samples it stands for.
struct Unit {
    data: Vec<u8>,
    samples: i32,
    filler: bool,
}

#[derive(Default)]
pub struct AacEnc {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

use crate::sync::lock;

#[glib::object_subclass]
impl ObjectSubclass for AacEnc {
    const NAME: &'static str = "IgAacEnc";
    type Type = super::AacEnc;
    type ParentType = gst_audio::AudioEncoder;
}

impl ObjectImpl for AacEnc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecUInt::builder("bitrate")
                    .nick("Bitrate")
                    .blurb("Target bitrate in bit/s (CBR; libfdk-aac lowers what the rate and channels cannot carry)")
                    .minimum(MIN_BITRATE)
                    .maximum(MAX_BITRATE)
                    .default_value(DEFAULT_BITRATE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("afterburner")
                    .nick("Afterburner")
                    .blurb("Analysis by synthesis: better quality for more CPU")
                    .default_value(true)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = lock(&self.settings);
        match pspec.name() {
            "bitrate" => settings.bitrate = value.get().unwrap_or(DEFAULT_BITRATE),
            "afterburner" => settings.afterburner = value.get().unwrap_or(true),
            other => gst::warning!(CAT, imp = self, "no property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
        match pspec.name() {
            "bitrate" => settings.bitrate.to_value(),
            "afterburner" => settings.afterburner.to_value(),
            // GObject only asks for the properties declared above.
            _ => glib::Value::from_type(pspec.value_type()),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        self.obj().set_drainable(true);
    }
}

impl GstObjectImpl for AacEnc {}

impl ElementImpl for AacEnc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "AAC-LC encoder (libfdk-aac)",
                "Codec/Encoder/Audio",
                "Encodes 16-bit PCM to raw AAC-LC access units with libfdk-aac",
                "interop-gateway",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let rates = gst::List::new(RATES);
            let sink_caps = gst::Caps::builder("audio/x-raw")
                .field("format", gst_audio::AUDIO_FORMAT_S16.to_str())
                .field("layout", "interleaved")
                .field("rate", rates.clone())
                .field("channels", gst::IntRange::new(1, 2))
                .build();
            let src_caps = gst::Caps::builder("audio/mpeg")
                .field("mpegversion", 4i32)
                .field("stream-format", "raw")
                .field("framed", true)
                .field("base-profile", "lc")
                .field("rate", rates)
                .field("channels", gst::IntRange::new(1, 2))
                .build();
            let sink = gst::PadTemplate::new("sink", gst::PadDirection::Sink, gst::PadPresence::Always, &sink_caps);
            let src = gst::PadTemplate::new("src", gst::PadDirection::Src, gst::PadPresence::Always, &src_caps);
            match (sink, src) {
                (Ok(sink), Ok(src)) => vec![sink, src],
                // Only reachable if the caps above were malformed.
                _ => Vec::new(),
            }
        });
        TEMPLATES.as_ref()
    }
}

impl AudioEncoderImpl for AacEnc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = None;
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = None;
        Ok(())
    }

    fn set_format(&self, info: &gst_audio::AudioInfo) -> Result<(), gst::LoggableError> {
        let settings = *lock(&self.settings);
        let channels = u8::try_from(info.channels()).unwrap_or(0);
        let config = FdkConfig {
            sample_rate: info.rate(),
            channels,
            bitrate: settings.bitrate,
            afterburner: settings.afterburner,
        };
        let state = State::open(config).map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                ["cannot encode {} Hz x{}: {}", info.rate(), info.channels(), e]
            );
            gst::loggable_error!(CAT, "cannot open libfdk-aac: {}", e)
        })?;
        gst::info!(
            CAT,
            imp = self,
            "{} Hz x{}: {} bit/s (asked {}), delay {} samples, afterburner {}",
            info.rate(),
            channels,
            state.info.bitrate,
            settings.bitrate,
            state.info.delay,
            settings.afterburner
        );
        let caps = gst::Caps::builder("audio/mpeg")
            .field("mpegversion", 4i32)
            .field("stream-format", "raw")
            .field("framed", true)
            .field("base-profile", "lc")
            .field("profile", "lc")
            .field("rate", info.rate() as i32)
            .field("channels", i32::from(channels))
            .field("codec_data", gst::Buffer::from_slice(state.info.asc.clone()))
            .build();
        let obj = self.obj();
        let frame = state.info.frame_length as i32;
        obj.set_frame_samples_min(frame);
        obj.set_frame_samples_max(frame);
        obj.set_frame_max(1);
        // A unit leaves once its frame is complete and the encoder delay has passed.
        let latency = samples_to_time(u64::from(state.info.delay) + state.frame(), info.rate());
        obj.set_latency(latency, Some(latency));
        *lock(&self.state) = Some(state);
        obj.set_output_format(&caps).map_err(|e| gst::loggable_error!(CAT, "output caps refused: {:?}", e))?;
        Ok(())
    }

    fn handle_frame(&self, buffer: Option<&gst::Buffer>) -> Result<gst::FlowSuccess, gst::FlowError> {
        let units = {
            let mut guard = lock(&self.state);
            let Some(state) = guard.as_mut() else {
                if buffer.is_none() {
                    return Ok(gst::FlowSuccess::Ok); // nothing to drain
                }
                gst::element_imp_error!(self, gst::CoreError::Negotiation, ["no input format before data"]);
                return Err(gst::FlowError::NotNegotiated);
            };
            let result = match buffer {
                Some(buffer) => self.encode(state, buffer),
                None => self.drain(state),
            };
            result.map_err(|e| {
                gst::element_imp_error!(self, gst::StreamError::Encode, ["{}", e]);
                gst::FlowError::Error
            })?
        };
        let obj = self.obj();
        for unit in units {
            let mut out = gst::Buffer::from_mut_slice(unit.data);
            if unit.filler {
                // Given to the base class so its timestamps stay right; `pre_push` drops it.
                out.make_mut().set_flags(gst::BufferFlags::DECODE_ONLY);
            }
            obj.finish_frame(Some(out), unit.samples)?;
        }
        Ok(gst::FlowSuccess::Ok)
    }

    fn pre_push(&self, mut buffer: gst::Buffer) -> Result<Option<gst::Buffer>, gst::FlowError> {
        let mut guard = lock(&self.state);
        let drop_unit = buffer.flags().contains(gst::BufferFlags::DECODE_ONLY);
        let discont = buffer.flags().contains(gst::BufferFlags::DISCONT);
        let Some(state) = guard.as_mut() else {
            return Ok((!drop_unit).then_some(buffer));
        };
        if drop_unit {
            gst::trace!(CAT, imp = self, "dropping priming/padding unit at {:?}", buffer.pts());
            // A discontinuity the base class marked goes on the next unit sent.
            state.discont_pending |= discont;
            return Ok(None);
        }
        let b = buffer.make_mut();
        if let Some(pts) = b.pts() {
            let ts = shifted(pts, state.delay);
            b.set_pts(ts);
            b.set_dts(ts);
        }
        if std::mem::take(&mut state.discont_pending) {
            b.set_flags(gst::BufferFlags::DISCONT);
        }
        Ok(Some(buffer))
    }

    fn flush(&self) {
        if let Some(state) = lock(&self.state).as_mut() {
            if let Err(e) = state.reopen() {
                gst::element_imp_error!(self, gst::StreamError::Encode, ["cannot reset the encoder: {}", e]);
            }
        }
    }
}

impl AacEnc {
    /// Encodes one input frame (the last one of a stream may be short).
    fn encode(&self, state: &mut State, buffer: &gst::Buffer) -> Result<Vec<Unit>, String> {
        if state.spent {
            state.reopen()?;
        }
        let map = buffer.map_readable().map_err(|_| "input buffer not readable".to_string())?;
        state.pcm.clear();
        state.pcm.extend(map.as_slice().chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
        drop(map);
        let frames = (state.pcm.len() / state.channels.max(1)) as u64;
        state.pending += frames;
        state.fed += frames;

        let mut out = vec![0u8; state.info.max_out_bytes];
        let mut units = Vec::new();
        let mut offset = 0;
        while offset < state.pcm.len() {
            let step = state.encoder.encode(&state.pcm[offset..], &mut out).map_err(|e| e.to_string())?;
            if step.written > 0 {
                // One unit stands for one frame of input, or what is left of it.
                let samples = state.pending.min(state.frame());
                units.push(self.unit(state, &out[..step.written], samples));
            }
            if step.consumed == 0 && step.written == 0 {
                return Err(format!("encoder took none of {} samples", state.pcm.len() - offset));
            }
            offset += step.consumed;
        }
        Ok(units)
    }

    /// Flushes the encoder's delay line at the end of a stream or segment.
    fn drain(&self, state: &mut State) -> Result<Vec<Unit>, String> {
        if state.spent {
            return Ok(Vec::new());
        }
        let mut out = vec![0u8; state.info.max_out_bytes];
        let mut units = Vec::new();
        // The delay line holds a few frames; the bound only guards against a stuck encoder.
        let limit = 4 + u64::from(state.info.delay) / state.frame();
        while let Some(n) = state.encoder.flush(&mut out).map_err(|e| e.to_string())? {
            // Drained units stand for a whole frame each; the base class allows running past
            // the input it holds while draining.
            units.push(self.unit(state, &out[..n], state.frame()));
            if units.len() as u64 > limit {
                return Err("encoder kept producing while flushing".into());
            }
        }
        state.spent = true;
        gst::debug!(CAT, imp = self, "drained {} units after {} samples", units.len(), state.fed);
        Ok(units)
    }

    fn unit(&self, state: &mut State, data: &[u8], samples: u64) -> Unit {
        let filler = state.next_is_filler();
        state.produced += 1;
        state.pending -= samples.min(state.pending);
        Unit { data: data.to_vec(), samples: samples.min(i32::MAX as u64) as i32, filler }
    }
}
