//! `igaacenc`: an AAC-LC encoder element on libfdk-aac (Debian's GStreamer has no
//! fdkaacenc). Input: interleaved S16LE, mono or stereo, at any AAC sampling rate. Output: raw
//! access units (`audio/mpeg, mpegversion=4, stream-format=raw, base-profile=lc`) with the
//! AudioSpecificConfig as `codec_data`, so the true rate travels with the stream.
//!
//! Properties: `bitrate` (bit/s, CBR, default 128000) and `afterburner` (default true), both
//! applied when the input format is (re)negotiated. Timestamps: each access unit carries the
//! time of its first input sample (the encoder delay is taken off, priming and end padding
//! units are dropped), so the audio stays in sync with passed-through video.

mod fdk;
mod imp;
mod timing;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;

pub use imp::{DEFAULT_BITRATE, MAX_BITRATE, MIN_BITRATE, RATES};

/// The element's factory name.
pub const ELEMENT_NAME: &str = "igaacenc";

glib::wrapper! {
    /// The `igaacenc` element.
    pub struct AacEnc(ObjectSubclass<imp::AacEnc>)
        @extends gstreamer_audio::AudioEncoder, gst::Element, gst::Object;
}

/// Registers `igaacenc` (rank none: only used when named) with GStreamer, without a plugin.
/// Safe to call more than once.
pub fn register() -> Result<(), glib::BoolError> {
    gst::Element::register(None, ELEMENT_NAME, gst::Rank::NONE, AacEnc::static_type())
}
