//! `igmpeg1enc`: MPEG-1 video encoder through libavcodec, for JSMpeg viewers (no B-frames,
//! a sequence header on every I-frame). Replaces Debian's broken `avenc_mpeg1video`.
//!
//! - Sink: `video/x-raw, format=I420, width, height, framerate`.
//! - Src: `video/mpeg, mpegversion=1, systemstream=false, width, height, framerate,
//!   pixel-aspect-ratio`, with the encoded size and frame rate.
//! - Properties: `bitrate` (bit/s), `gop-size` (frames), `max-width` (0 keeps the size),
//!   `qmax` (1..31); read when the input format is (re)negotiated.
//! - Frame rate: the input's if MPEG-1 has it, else the nearest of the eight MPEG-1 rates,
//!   30 fps when unknown (variable `0/1`, absurd); output buffers keep the input
//!   timestamps and durations. Sizes: wider than `max-width` is scaled down keeping aspect;
//!   odd sides are cropped to even (the last column/row dropped). See `policy`.
//!
//! The libavcodec part is the plain [`Mpeg1Encoder`], usable and tested without GStreamer.

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;

mod avframe;
mod encoder;
mod imp;
pub mod policy;

pub use avframe::SharedPicture;
pub use encoder::{EncodedPacket, EncoderSettings, I420Picture, Mpeg1Encoder, Mpeg1Error};

glib::wrapper! {
    /// The `igmpeg1enc` element.
    pub struct Mpeg1Enc(ObjectSubclass<imp::Mpeg1Enc>)
        @extends gstreamer_video::VideoEncoder, gst::Element, gst::Object;
}

/// Registers `igmpeg1enc` (rank NONE: only used when named) with GStreamer.
///
/// Also quiets libav's own stderr logging to errors (process-wide; gst-libav, when loaded,
/// routes libav logs to the GStreamer debug log instead and is not affected).
pub fn register() -> Result<(), glib::BoolError> {
    ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
    gst::Element::register(None, "igmpeg1enc", gst::Rank::NONE, Mpeg1Enc::static_type())
}

#[cfg(test)]
mod tests;
