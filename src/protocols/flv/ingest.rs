//! FLV tag bodies in (from RTMP messages or an FLV file), [`Frame`]s out.
use std::sync::Arc;

use bytes::Bytes;
use tracing::{debug, warn};

use super::fps::FpsProbe;
use super::tag::{parse_audio, parse_video, AudioTag, VideoTag};
use super::{check_size, FlvError, MetaHints, TagKind};
use crate::media::aac::AudioSpecificConfig;
use crate::media::h264::{avcc_nal_list, convert_nal_length_size, nal_type, AvcConfig, NAL_IDR};
use crate::media::{AudioInfo, Codec, Frame, TrackInfo, Ts, VideoInfo};

/// Turns one publisher's FLV tag bodies into frames (sans-IO).
///
/// Sequence headers make new track infos (no frame); media before its sequence header is
/// dropped and counted. H.264 payloads are kept as sent, except that NAL lengths of other
/// than 4 bytes are rewritten to 4 (the internal format), the avcC with them.
#[derive(Debug, Default)]
pub struct FlvIngest {
    video: Option<Arc<TrackInfo>>,
    audio: Option<Arc<TrackInfo>>,
    /// NAL length size of the publisher's AVCC payloads (from its avcC).
    nal_length_size: u8,
    /// The avcC as the publisher sent it, to tell a resent sequence header from a new one.
    sent_avcc: Option<Bytes>,
    meta: MetaHints,
    fps_probe: FpsProbe,
    bframes: bool,
    dropped: u64,
    bad_scripts: u64,
}

impl FlvIngest {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one tag body (`timestamp_ms` is the tag's / RTMP message's timestamp) and returns
    /// the frames it completes: zero or one. Errors for unsupported codecs (named) and
    /// malformed media; the caller decides whether to reject the publisher.
    pub fn push(&mut self, kind: TagKind, timestamp_ms: u32, body: Bytes) -> Result<Vec<Arc<Frame>>, FlvError> {
        check_size(kind, body.len())?;
        if body.is_empty() {
            return Ok(Vec::new()); // some publishers send empty media messages
        }
        let dts = Ts::from_millis(i64::from(timestamp_ms));
        let frame = match kind {
            TagKind::Video => self.video_tag(dts, &body)?,
            TagKind::Audio => self.audio_tag(dts, &body)?,
            TagKind::Script => {
                self.script_tag(&body);
                None
            }
        };
        Ok(frame.map(Arc::new).into_iter().collect())
    }

    /// The current video track info (from the last AVC sequence header).
    pub fn video_info(&self) -> Option<&Arc<TrackInfo>> {
        self.video.as_ref()
    }

    /// The current audio track info (from the last AAC sequence header).
    pub fn audio_info(&self) -> Option<&Arc<TrackInfo>> {
        self.audio.as_ref()
    }

    /// What the publisher's `onMetaData` said.
    pub fn metadata(&self) -> &MetaHints {
        &self.meta
    }

    /// Media tags dropped because their sequence header had not come yet.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Script tags whose AMF0 could not be read (ignored).
    pub fn bad_scripts(&self) -> u64 {
        self.bad_scripts
    }

    fn video_tag(&mut self, dts: Ts, body: &Bytes) -> Result<Option<Frame>, FlvError> {
        match parse_video(body)? {
            VideoTag::AvcSequenceHeader(avcc) => {
                self.avc_sequence_header(avcc)?;
                Ok(None)
            }
            VideoTag::AvcNalu { keyframe, composition_ms, data } => {
                let Some(info) = self.video.clone() else {
                    self.dropped += 1;
                    return Ok(None);
                };
                let nals = avcc_nal_list(&data, self.nal_length_size)?;
                if nals.is_empty() {
                    return Ok(None);
                }
                let keyframe = keyframe || nals.iter().any(|n| nal_type(n) == Some(NAL_IDR));
                let data = if self.nal_length_size == 4 {
                    data
                } else {
                    convert_nal_length_size(&data, self.nal_length_size, 4)?
                };
                let pts = dts + Ts::from_millis(i64::from(composition_ms));
                let info = self.update_video_timing(info, dts, pts != dts);
                Ok(Some(Frame::new(info, dts, pts, keyframe, data)))
            }
            VideoTag::AvcEndOfSequence | VideoTag::Command => Ok(None),
        }
    }

    fn avc_sequence_header(&mut self, avcc: Bytes) -> Result<(), FlvError> {
        if self.video.is_some() && self.sent_avcc.as_ref() == Some(&avcc) {
            return Ok(()); // resent unchanged: keep the same info
        }
        let mut config = AvcConfig::parse(&avcc)?;
        let sps = config.first_sps()?;
        self.nal_length_size = config.nal_length_size;
        let stored = if config.nal_length_size == 4 {
            avcc.clone()
        } else {
            config.nal_length_size = 4;
            config.to_bytes()?
        };
        let previous_fps = self.video.as_deref().and_then(video_fps);
        let fps = sane_fps(sps.fps).or(self.meta.framerate).or(previous_fps);
        if fps.is_none() {
            self.fps_probe = FpsProbe::default();
        }
        debug!(width = sps.width, height = sps.height, ?fps, profile = sps.profile_idc, "AVC sequence header");
        self.video = Some(Arc::new(TrackInfo::Video(VideoInfo {
            codec: Codec::H264,
            width: sps.width,
            height: sps.height,
            fps,
            config: Some(stored),
            bframes: self.bframes,
        })));
        self.sent_avcc = Some(avcc);
        Ok(())
    }

    /// Marks B-frames and fills in a measured frame rate, each as a new info when it changes.
    fn update_video_timing(&mut self, info: Arc<TrackInfo>, dts: Ts, reordered: bool) -> Arc<TrackInfo> {
        let TrackInfo::Video(v) = info.as_ref() else { return info };
        let measured = if v.fps.is_none() { self.fps_probe.add(dts) } else { None };
        let newly_bframes = reordered && !v.bframes;
        if measured.is_none() && !newly_bframes {
            return info;
        }
        self.bframes |= reordered;
        let mut updated = v.clone();
        updated.bframes |= reordered;
        if let Some(fps) = measured {
            debug!(fps, "measured video frame rate");
            updated.fps = Some(fps);
        }
        let info = Arc::new(TrackInfo::Video(updated));
        self.video = Some(info.clone());
        info
    }

    fn audio_tag(&mut self, dts: Ts, body: &Bytes) -> Result<Option<Frame>, FlvError> {
        match parse_audio(body)? {
            AudioTag::AacSequenceHeader { config, stereo } => {
                if self.audio.as_ref().and_then(|a| a.config()) == Some(&config) {
                    return Ok(None);
                }
                let asc = AudioSpecificConfig::parse(&config)?;
                let channels = match asc.output_channels() {
                    0 => {
                        if stereo {
                            2
                        } else {
                            1
                        }
                    }
                    n => n,
                };
                let sample_rate = asc.output_sample_rate();
                debug!(sample_rate, channels, object_type = asc.object_type, "AAC sequence header");
                self.audio = Some(Arc::new(TrackInfo::Audio(AudioInfo {
                    codec: Codec::Aac,
                    sample_rate,
                    channels,
                    config: Some(config),
                })));
                Ok(None)
            }
            AudioTag::AacRaw(data) => {
                let Some(info) = self.audio.clone() else {
                    self.dropped += 1;
                    return Ok(None);
                };
                Ok(Some(Frame::new(info, dts, dts, true, data)))
            }
        }
    }

    fn script_tag(&mut self, body: &[u8]) {
        match MetaHints::from_script(body) {
            Ok(Some(hints)) => {
                debug!(?hints, "onMetaData");
                self.meta = hints;
                self.apply_meta_framerate();
            }
            Ok(None) => {}
            Err(e) => {
                self.bad_scripts += 1;
                warn!("ignoring a script tag with bad AMF0: {e}");
            }
        }
    }

    /// A video info still without a frame rate takes the one metadata gives.
    fn apply_meta_framerate(&mut self) {
        let (Some(fps), Some(TrackInfo::Video(v))) = (self.meta.framerate, self.video.as_deref()) else {
            return;
        };
        if v.fps.is_none() {
            let mut updated = v.clone();
            updated.fps = Some(fps);
            self.video = Some(Arc::new(TrackInfo::Video(updated)));
        }
    }
}

fn video_fps(info: &TrackInfo) -> Option<f64> {
    match info {
        TrackInfo::Video(v) => v.fps,
        TrackInfo::Audio(_) => None,
    }
}

/// A frame rate from the SPS, if it is plausible (some encoders write field rates or junk).
fn sane_fps(fps: Option<f64>) -> Option<f64> {
    fps.filter(|f| f.is_finite() && *f >= 1.0 && *f <= 240.0)
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
