//! The GStreamer side of `igmpeg1enc`: a thin `VideoEncoder` subclass over `Mpeg1Encoder`.
//!
//! libavcodec is given the input's frame numbers (`system_frame_number`) as pts in a time base
//! of one tick per encoded frame; each packet is matched back to its `VideoCodecFrame` by that
//! number, and the base class stamps the output with the input frame's PTS, DTS (= PTS, no
//! reordering) and duration.

use std::sync::{LazyLock, Mutex};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer::subclass::prelude::*;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use gstreamer_video::subclass::prelude::*;

use super::avframe::SharedPicture;
use super::encoder::{EncodedPacket, EncoderSettings, I420Picture, Mpeg1Encoder};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("igmpeg1enc", gst::DebugColorFlags::empty(), Some("MPEG-1 video encoder (libavcodec)"))
});

struct State {
    encoder: Mpeg1Encoder,
    info: gst_video::VideoInfo,
}

#[derive(Default)]
pub struct Mpeg1Enc {
    settings: Mutex<EncoderSettings>,
    state: Mutex<Option<State>>,
}

use crate::sync::lock;

#[glib::object_subclass]
impl ObjectSubclass for Mpeg1Enc {
    const NAME: &'static str = "IgMpeg1Enc";
    type Type = super::Mpeg1Enc;
    type ParentType = gst_video::VideoEncoder;
}

impl ObjectImpl for Mpeg1Enc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = EncoderSettings::default();
            vec![
                glib::ParamSpecUInt::builder("bitrate")
                    .nick("Bit rate")
                    .blurb("Target average bit rate in bit/s")
                    .minimum(16_000)
                    .maximum(100_000_000)
                    .default_value(d.bitrate)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("gop-size")
                    .nick("GOP size")
                    .blurb("At most this many frames from one I-frame to the next")
                    .minimum(1)
                    .maximum(1000)
                    .default_value(d.gop_size)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-width")
                    .nick("Maximum width")
                    .blurb("Scale wider input down to this width keeping the aspect (0: keep the size)")
                    .maximum(4094)
                    .default_value(d.max_width)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("qmax")
                    .nick("Maximum quantizer")
                    .blurb("Largest quantizer (lower: better worst-case quality, may exceed the bit rate)")
                    .minimum(1)
                    .maximum(31)
                    .default_value(d.qmax)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = lock(&self.settings);
        let Ok(v) = value.get::<u32>() else { return };
        match pspec.name() {
            "bitrate" => settings.bitrate = v,
            "gop-size" => settings.gop_size = v,
            "max-width" => settings.max_width = v,
            "qmax" => settings.qmax = v,
            _ => {}
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
        match pspec.name() {
            "bitrate" => settings.bitrate.to_value(),
            "gop-size" => settings.gop_size.to_value(),
            "max-width" => settings.max_width.to_value(),
            _ => settings.qmax.to_value(),
        }
    }
}

impl GstObjectImpl for Mpeg1Enc {}

impl ElementImpl for Mpeg1Enc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "MPEG-1 video encoder (libavcodec)",
                "Codec/Encoder/Video",
                "Encodes I420 video to MPEG-1 without B-frames, a sequence header on every I-frame",
                "interop-gateway",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let sink_caps = gst_video::VideoCapsBuilder::new().format(gst_video::VideoFormat::I420).build();
            let src_caps = gst::Caps::builder("video/mpeg")
                .field("mpegversion", 1i32)
                .field("systemstream", false)
                .field("width", gst::IntRange::new(2, 4094))
                .field("height", gst::IntRange::new(2, 4094))
                .field("framerate", gst::FractionRange::new(gst::Fraction::new(0, 1), gst::Fraction::new(i32::MAX, 1)))
                .build();
            let templates = [
                gst::PadTemplate::new("sink", gst::PadDirection::Sink, gst::PadPresence::Always, &sink_caps),
                gst::PadTemplate::new("src", gst::PadDirection::Src, gst::PadPresence::Always, &src_caps),
            ];
            templates.into_iter().filter_map(Result::ok).collect()
        });
        TEMPLATES.as_ref()
    }
}

impl VideoEncoderImpl for Mpeg1Enc {
    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = None;
        Ok(())
    }

    fn set_format(
        &self,
        input: &gst_video::VideoCodecState<'static, gst_video::video_codec_state::Readable>,
    ) -> Result<(), gst::LoggableError> {
        // Finish what the previous format's encoder holds before replacing it.
        if let Err(e) = self.drain() {
            gst::warning!(CAT, imp = self, "draining before a format change: {e:?}");
        }
        let info = input.info().clone();
        let settings = *lock(&self.settings);
        let fps = info.fps();
        let par = info.par();
        let encoder = Mpeg1Encoder::new(
            &settings,
            info.width(),
            info.height(),
            (fps.numer(), fps.denom()),
            (par.numer(), par.denom()),
        )
        .map_err(|e| {
            gst::element_imp_error!(self, gst::StreamError::Format, ["{e}"]);
            gst::loggable_error!(CAT, "cannot make an MPEG-1 encoder: {e}")
        })?;
        let (w, h) = encoder.output_size();
        let rate = encoder.frame_rate();
        gst::info!(
            CAT,
            imp = self,
            "encoding {}x{} @ {}/{} as {w}x{h} @ {}/{} ({settings:?})",
            info.width(),
            info.height(),
            fps.numer(),
            fps.denom(),
            rate.0,
            rate.1
        );
        // One whole picture per buffer (with its sequence header on I-frames): no parser needed.
        let caps = gst::Caps::builder("video/mpeg")
            .field("mpegversion", 1i32)
            .field("systemstream", false)
            .field("parsed", true)
            .build();
        let out_info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Encoded, w, h)
            .fps(gst::Fraction::new(rate.0, rate.1))
            .par(par)
            .build()
            .map_err(|e| gst::loggable_error!(CAT, "output info: {e}"))?;
        // libavcodec holds pictures back (`delay`): tell live pipelines.
        let frame_ns = match super::policy::known_fps(fps.numer(), fps.denom()) {
            Some(f) => 1e9 / f,
            None => 1e9 / super::policy::as_fps(rate),
        };
        let latency = gst::ClockTime::from_nseconds((frame_ns * encoder.delay() as f64).round() as u64);
        *lock(&self.state) = Some(State { encoder, info });

        let obj = self.obj();
        obj.set_latency(latency, Some(latency));
        let mut out_state = obj
            .set_output_state(caps, Some(input))
            .map_err(|e| gst::loggable_error!(CAT, "cannot set output state: {e:?}"))?;
        // The base class writes width/height/framerate into the caps from this info.
        out_state.set_info(out_info);
        obj.negotiate(out_state).map_err(|e| gst::loggable_error!(CAT, "cannot negotiate: {e:?}"))?;
        Ok(())
    }

    fn handle_frame(&self, frame: gst_video::VideoCodecFrame) -> Result<gst::FlowSuccess, gst::FlowError> {
        let number = frame.system_frame_number();
        let force = frame.flags().contains(gst_video::VideoCodecFrameFlags::FORCE_KEYFRAME);
        let packets = {
            let mut state = lock(&self.state);
            let Some(state) = state.as_mut() else {
                gst::element_imp_error!(self, gst::CoreError::Negotiation, ["frame before caps"]);
                return Err(gst::FlowError::NotNegotiated);
            };
            let Some(input) = frame.input_buffer_owned() else {
                gst::element_imp_error!(self, gst::StreamError::Encode, ["frame without a buffer"]);
                return Err(gst::FlowError::Error);
            };
            let mapped = gst_video::VideoFrame::from_buffer_readable(input, &state.info).map_err(|_| {
                gst::element_imp_error!(self, gst::StreamError::Encode, ["cannot map the input frame"]);
                gst::FlowError::Error
            })?;
            // libavcodec reads the mapped buffer in place and lets go of it when done.
            state.encoder.encode_shared(Mapped(mapped), number as i64, force).map_err(|e| {
                gst::element_imp_error!(self, gst::StreamError::Encode, ["{e}"]);
                gst::FlowError::Error
            })?
        };
        // The frame is looked up again by number when its packet comes out.
        drop(frame);
        self.finish_packets(packets)
    }

    fn finish(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.drain()
    }

    fn flush(&self) -> bool {
        // Pending frames are discarded by the base class; start a fresh encoder (and sequence).
        let mut state = lock(&self.state);
        if let Some(s) = state.as_mut() {
            let settings = *lock(&self.settings);
            let fps = s.info.fps();
            let par = s.info.par();
            match Mpeg1Encoder::new(
                &settings,
                s.info.width(),
                s.info.height(),
                (fps.numer(), fps.denom()),
                (par.numer(), par.denom()),
            ) {
                Ok(encoder) => s.encoder = encoder,
                Err(e) => {
                    gst::element_imp_error!(self, gst::StreamError::Encode, ["{e}"]);
                    return false;
                }
            }
        }
        true
    }
}

impl Mpeg1Enc {
    /// Outputs whatever the encoder still holds.
    fn drain(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        let packets = match lock(&self.state).as_mut() {
            Some(state) => state.encoder.flush().map_err(|e| {
                gst::element_imp_error!(self, gst::StreamError::Encode, ["{e}"]);
                gst::FlowError::Error
            })?,
            None => return Ok(gst::FlowSuccess::Ok),
        };
        self.finish_packets(packets)
    }

    /// Hands each packet to the frame it was made from (found by its number).
    fn finish_packets(&self, packets: Vec<EncodedPacket>) -> Result<gst::FlowSuccess, gst::FlowError> {
        let obj = self.obj();
        for packet in packets {
            let Some(mut frame) = i32::try_from(packet.pts).ok().and_then(|n| obj.frame(n)) else {
                gst::warning!(CAT, imp = self, "no pending frame {} for a packet; dropped", packet.pts);
                continue;
            };
            if packet.keyframe {
                frame.set_flags(gst_video::VideoCodecFrameFlags::SYNC_POINT);
            }
            frame.set_output_buffer(gst::Buffer::from_mut_slice(packet.data));
            obj.finish_frame(frame)?;
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

/// A mapped input buffer, handed to libavcodec without a copy.
struct Mapped(gst_video::VideoFrame<gst_video::video_frame::Readable>);

impl SharedPicture for Mapped {
    fn picture(&self) -> I420Picture<'_> {
        let frame = &self.0;
        // A plane that cannot be read comes out empty and is refused by the encoder's checks.
        let plane = |i: u32| frame.plane_data(i).unwrap_or(&[]);
        // The mapped frame's strides: they follow the buffer's VideoMeta when it has one.
        let stride = |i: usize| frame.plane_stride().get(i).copied().unwrap_or(0).max(0) as usize;
        I420Picture {
            width: frame.width(),
            height: frame.height(),
            planes: [plane(0), plane(1), plane(2)],
            strides: [stride(0), stride(1), stride(2)],
        }
    }
}
