use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::Serialize;

use super::{Codec, TrackKind, Ts};

/// What a track carries, as far as its receivers need to know. A new `Arc<TrackInfo>` is made
/// whenever the codec configuration changes (new SPS/PPS, new AudioSpecificConfig), so an
/// egress compares pointers (`Arc::ptr_eq`) to know when to resend its sequence header.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TrackInfo {
    Video(VideoInfo),
    Audio(AudioInfo),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoInfo {
    pub codec: Codec,
    pub width: u32,
    pub height: u32,
    /// Frames per second, when the source says or it can be measured.
    pub fps: Option<f64>,
    /// H.264: the AVCDecoderConfigurationRecord (`avcC`, as in FLV's sequence header).
    #[serde(skip)]
    pub config: Option<Bytes>,
    /// The source uses B-frames (frames whose pts differs from dts were seen).
    pub bframes: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AudioInfo {
    pub codec: Codec,
    pub sample_rate: u32,
    pub channels: u8,
    /// AAC: the AudioSpecificConfig (as in FLV's AAC sequence header); carries the true rate.
    #[serde(skip)]
    pub config: Option<Bytes>,
}

impl TrackInfo {
    pub fn codec(&self) -> Codec {
        match self {
            TrackInfo::Video(v) => v.codec,
            TrackInfo::Audio(a) => a.codec,
        }
    }

    pub fn kind(&self) -> TrackKind {
        match self {
            TrackInfo::Video(_) => TrackKind::Video,
            TrackInfo::Audio(_) => TrackKind::Audio,
        }
    }

    pub fn config(&self) -> Option<&Bytes> {
        match self {
            TrackInfo::Video(v) => v.config.as_ref(),
            TrackInfo::Audio(a) => a.config.as_ref(),
        }
    }
}

/// One access unit of one track: a whole video picture or one audio frame.
///
/// Payload layout per codec:
/// - H.264: AVCC, NAL units each prefixed by a 4-byte big-endian length (as in FLV/MP4);
///   SPS/PPS live in [`VideoInfo::config`].
/// - AAC: one raw access unit (no ADTS header).
/// - Opus, VP8, MP2, PCMU/PCMA: the codec's packet as RTP or the container carries it.
/// - MPEG-1 video: one picture of the elementary stream (sequence/GOP headers included
///   before I-pictures).
#[derive(Debug)]
pub struct Frame {
    pub info: Arc<TrackInfo>,
    pub dts: Ts,
    pub pts: Ts,
    /// A video frame a decoder can start at (IDR / I-picture). Always true for audio.
    pub keyframe: bool,
    pub data: Bytes,
    /// The frame serialized as an FLV tag, made once by the first FLV/RTMP consumer that
    /// needs it and shared by all the others.
    pub flv_tag: OnceLock<Bytes>,
    /// The frame's RTP payloads, made once by the first WebRTC viewer that sends it and
    /// shared by all the others (see [`crate::media::rtp::packetize`]).
    pub rtp: OnceLock<Vec<crate::media::rtp::packetize::Payload>>,
}

impl Frame {
    pub fn new(info: Arc<TrackInfo>, dts: Ts, pts: Ts, keyframe: bool, data: Bytes) -> Frame {
        Frame { info, dts, pts, keyframe, data, flv_tag: OnceLock::new(), rtp: OnceLock::new() }
    }

    pub fn kind(&self) -> TrackKind {
        self.info.kind()
    }

    pub fn codec(&self) -> Codec {
        self.info.codec()
    }

    /// Is this a video frame a new viewer can start at?
    pub fn is_video_keyframe(&self) -> bool {
        self.kind() == TrackKind::Video && self.keyframe
    }
}
