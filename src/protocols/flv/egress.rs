//! One viewer's FLV tag sequence: metadata and sequence headers first, a new sequence header
//! whenever a track's info changes, then the frames with timestamps starting at 0.
use std::sync::Arc;

use super::tag::{cached_tag_body, sequence_header};
use super::{metadata_body, FlvError, FlvTag, TagKind};
use crate::media::{Frame, TrackInfo, TrackKind, Ts};

/// Turns frames into the FLV tags (= RTMP messages) one viewer gets (sans-IO).
#[derive(Debug, Default)]
pub struct FlvEgress {
    /// The info whose sequence header the viewer has, per track.
    video: Option<Arc<TrackInfo>>,
    audio: Option<Arc<TrackInfo>>,
    /// The first frame's dts: the viewer's timestamps count from it.
    base: Option<Ts>,
    /// Video is held back until its first keyframe.
    video_started: bool,
}

impl FlvEgress {
    pub fn new() -> Self {
        Self::default()
    }

    /// The opening tags: `onMetaData` and the sequence headers of the tracks known now
    /// (tracks FLV cannot carry are left out).
    pub fn start(&mut self, video: Option<&Arc<TrackInfo>>, audio: Option<&Arc<TrackInfo>>, out: &mut Vec<FlvTag>) {
        let video_info = video.and_then(|i| match i.as_ref() {
            TrackInfo::Video(v) => Some(v),
            TrackInfo::Audio(_) => None,
        });
        let audio_info = audio.and_then(|i| match i.as_ref() {
            TrackInfo::Audio(a) => Some(a),
            TrackInfo::Video(_) => None,
        });
        out.push(FlvTag { kind: TagKind::Script, timestamp: 0, body: metadata_body(video_info, audio_info) });
        for info in [video, audio].into_iter().flatten() {
            if let Ok(body) = sequence_header(info) {
                out.push(FlvTag { kind: info.kind().into(), timestamp: 0, body });
                self.remember(info);
            }
        }
    }

    /// The tags for one frame: its sequence header first when its track info is new to this
    /// viewer, then the frame. Video before the first keyframe gives nothing. Errors (nothing
    /// pushed) for codecs FLV cannot carry and infos without a configuration.
    pub fn frame(&mut self, frame: &Frame, out: &mut Vec<FlvTag>) -> Result<(), FlvError> {
        let kind = TagKind::from(frame.kind());
        if kind == TagKind::Video && !self.video_started {
            if !frame.keyframe {
                return Ok(());
            }
            self.video_started = true;
        }
        let body = cached_tag_body(frame)?.clone();
        let base = *self.base.get_or_insert(frame.dts);
        let timestamp = (frame.dts - base).as_millis().max(0) as u32;
        if !self.has_header_for(&frame.info) {
            let header = sequence_header(&frame.info)?;
            out.push(FlvTag { kind, timestamp, body: header });
            self.remember(&frame.info);
        }
        out.push(FlvTag { kind, timestamp, body });
        Ok(())
    }

    /// The viewer lost tags (its output was full): sequence headers go out again with the
    /// next frame of each track, and video waits for a keyframe.
    pub fn resync(&mut self) {
        self.video = None;
        self.audio = None;
        self.video_started = false;
    }

    fn has_header_for(&self, info: &Arc<TrackInfo>) -> bool {
        let sent = match info.kind() {
            TrackKind::Video => &self.video,
            TrackKind::Audio => &self.audio,
        };
        // Same Arc, or an equal config (a new Arc only for a frame rate or B-frame update).
        sent.as_ref().is_some_and(|s| {
            Arc::ptr_eq(s, info) || (s.codec() == info.codec() && s.config() == info.config() && s.config().is_some())
        })
    }

    fn remember(&mut self, info: &Arc<TrackInfo>) {
        match info.kind() {
            TrackKind::Video => self.video = Some(info.clone()),
            TrackKind::Audio => self.audio = Some(info.clone()),
        }
    }
}

#[cfg(test)]
#[path = "egress_tests.rs"]
mod tests;
