//! Caps for the internal frame format, both ways: what an `appsrc` announces for a track, and
//! what an `appsink`'s caps say about a conversion's output.

use bytes::Bytes;
use gstreamer as gst;

use crate::media::{AudioInfo, Codec, TrackInfo, VideoInfo};

/// The caps an appsrc carrying frames of this track announces.
pub fn input_caps(info: &TrackInfo) -> gst::Caps {
    match info {
        TrackInfo::Video(v) => video_caps(v),
        TrackInfo::Audio(a) => audio_caps(a),
    }
}

fn video_caps(v: &VideoInfo) -> gst::Caps {
    let mut b = match v.codec {
        Codec::H264 => gst::Caps::builder("video/x-h264").field("stream-format", "avc").field("alignment", "au"),
        Codec::Vp8 => gst::Caps::builder("video/x-vp8"),
        _ => gst::Caps::builder("video/mpeg").field("mpegversion", 1i32).field("systemstream", false),
    };
    if v.width > 0 && v.height > 0 {
        b = b.field("width", v.width as i32).field("height", v.height as i32);
    }
    if let Some(config) = &v.config {
        b = b.field("codec_data", gst::Buffer::from_slice(config.clone()));
    }
    b.build()
}

fn audio_caps(a: &AudioInfo) -> gst::Caps {
    let rate = a.sample_rate as i32;
    let channels = a.channels.max(1) as i32;
    let b = match a.codec {
        Codec::Aac => {
            let b = gst::Caps::builder("audio/mpeg").field("mpegversion", 4i32).field("stream-format", "raw");
            match &a.config {
                Some(c) => b.field("codec_data", gst::Buffer::from_slice(c.clone())),
                None => b,
            }
        }
        Codec::Opus => gst::Caps::builder("audio/x-opus").field("channel-mapping-family", 0i32),
        Codec::Mp2 => gst::Caps::builder("audio/mpeg").field("mpegversion", 1i32).field("layer", 2i32),
        Codec::Pcma => gst::Caps::builder("audio/x-alaw"),
        _ => gst::Caps::builder("audio/x-mulaw"),
    };
    b.field("rate", rate).field("channels", channels).build()
}

/// What a conversion's output caps say about the track (None if the caps lack the basics).
pub fn output_info(caps: &gst::CapsRef, codec: Codec) -> Option<TrackInfo> {
    let s = caps.structure(0)?;
    let config = s
        .get::<gst::Buffer>("codec_data")
        .ok()
        .and_then(|b| b.map_readable().ok().map(|m| Bytes::copy_from_slice(m.as_slice())));
    if s.name().starts_with("video/") {
        let fps = s.get::<gst::Fraction>("framerate").ok().filter(|f| f.numer() > 0 && f.denom() > 0);
        Some(TrackInfo::Video(VideoInfo {
            codec,
            width: s.get::<i32>("width").unwrap_or(0).max(0) as u32,
            height: s.get::<i32>("height").unwrap_or(0).max(0) as u32,
            fps: fps.map(|f| f.numer() as f64 / f.denom() as f64),
            config,
            bframes: false,
        }))
    } else {
        Some(TrackInfo::Audio(AudioInfo {
            codec,
            sample_rate: s.get::<i32>("rate").ok()?.max(0) as u32,
            channels: s.get::<i32>("channels").unwrap_or(1).clamp(1, 255) as u8,
            config,
        }))
    }
}
