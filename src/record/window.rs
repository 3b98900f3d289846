//! The rolling window a live stream's clips are cut from: its newest frames (`window` of them,
//! 60 s by default) with the wall-clock time each arrived at. Pure and sans-IO: the caller
//! passes the time in with each frame (str0m style), so tests run without a clock.
//!
//! The window always starts at a video keyframe (an audio-only stream's by time), so any clip
//! cut from it decodes; whole GOPs leave it once the next keyframe is older than the window.
//! Memory is bounded by bytes too (64 MiB by default): a stream whose bitrate would exceed it
//! loses its oldest GOPs early, and a single GOP over the bound empties the window until the
//! next keyframe. A new track configuration (SPS/PPS, resolution, AudioSpecificConfig) or a
//! timeline that goes back restarts the window at the next keyframe: a clip has one
//! configuration.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::clip::{same_config, SourceTrack, TimedSample};
use crate::media::{Frame, TrackInfo, TrackKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    /// How much of the stream is kept (at least: it starts at the keyframe before).
    pub window: Duration,
    /// Bound on the frames' bytes (payloads plus [`FRAME_OVERHEAD`] each).
    pub max_bytes: usize,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig { window: Duration::from_secs(60), max_bytes: 64 << 20 }
    }
}

/// What a kept frame costs beyond its payload (the `Arc<Frame>` and its queue entry), so a
/// flood of tiny frames is bounded too.
pub const FRAME_OVERHEAD: usize = 128;

/// One track's frames, oldest first.
#[derive(Debug, Default)]
struct Lane {
    info: Option<Arc<TrackInfo>>,
    frames: VecDeque<(SystemTime, Arc<Frame>)>,
    /// Sequence number of the front frame; keyframes are known by theirs.
    front_seq: u64,
    /// The keyframes' sequence numbers and arrival times (video).
    keys: VecDeque<(u64, SystemTime)>,
}

impl Lane {
    fn push(&mut self, frame: Arc<Frame>, now: SystemTime) {
        if frame.keyframe {
            self.keys.push_back((self.front_seq + self.frames.len() as u64, now));
        }
        self.frames.push_back((now, frame));
    }

    /// Drops the front frame; returns its cost.
    fn pop(&mut self) -> usize {
        let Some((_, frame)) = self.frames.pop_front() else { return 0 };
        if self.keys.front().is_some_and(|(seq, _)| *seq == self.front_seq) {
            self.keys.pop_front();
        }
        self.front_seq += 1;
        cost(&frame)
    }

    /// Drops the oldest GOP (up to the second keyframe); returns its cost.
    fn pop_gop(&mut self) -> usize {
        let Some(&(next, _)) = self.keys.get(1) else { return 0 };
        let mut freed = 0;
        while self.front_seq < next && !self.frames.is_empty() {
            freed += self.pop();
        }
        freed
    }

    fn clear(&mut self) -> usize {
        let freed = self.frames.iter().map(|(_, f)| cost(f)).sum();
        self.front_seq += self.frames.len() as u64;
        self.frames.clear();
        self.keys.clear();
        freed
    }

    fn last_wall(&self) -> Option<SystemTime> {
        self.frames.back().map(|(t, _)| *t)
    }
}

fn cost(frame: &Frame) -> usize {
    frame.data.len() + FRAME_OVERHEAD
}

/// A live stream's recent frames, for clips.
#[derive(Debug, Default)]
pub struct ClipWindow {
    config: WindowConfig,
    video: Lane,
    audio: Lane,
    /// When the last video frame came: while video flows, audio waits for its keyframe.
    last_video: Option<SystemTime>,
    bytes: usize,
}

impl ClipWindow {
    pub fn new(config: WindowConfig) -> ClipWindow {
        ClipWindow { config, ..ClipWindow::default() }
    }

    pub fn config(&self) -> WindowConfig {
        self.config
    }

    /// Takes the stream's next frame, which arrived at `now`.
    pub fn push(&mut self, frame: Arc<Frame>, now: SystemTime) {
        let kind = frame.kind();
        let lane = self.lane(kind);
        let changed = lane.info.as_ref().is_some_and(|info| !same_config(info, &frame.info));
        let back_in_time = lane.frames.back().is_some_and(|(_, last)| frame.dts < last.dts);
        if changed || back_in_time {
            self.restart();
        }
        let lane = self.lane(kind);
        lane.info = Some(frame.info.clone());
        let accept = match kind {
            // Nothing decodes before a keyframe.
            TrackKind::Video => !lane.frames.is_empty() || frame.keyframe,
            // Audio starts with the video's first keyframe, unless video has stopped.
            TrackKind::Audio => !self.video.frames.is_empty() || !self.video_flows(now),
        };
        if kind == TrackKind::Video {
            self.last_video = Some(now);
        }
        if accept {
            self.bytes += cost(&frame);
            self.lane(kind).push(frame, now);
        }
        self.prune(now);
    }

    /// Empties the window; it starts again at the next keyframe.
    pub fn restart(&mut self) {
        self.video.clear();
        self.audio.clear();
        self.bytes = 0;
    }

    /// Bytes held (payloads plus [`FRAME_OVERHEAD`] per frame).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Arrival times of the oldest and the newest frame.
    pub fn span(&self) -> Option<(SystemTime, SystemTime)> {
        let first = [&self.video, &self.audio].into_iter().filter_map(|l| l.frames.front().map(|(t, _)| *t)).min()?;
        let last = [&self.video, &self.audio].into_iter().filter_map(Lane::last_wall).max()?;
        Some((first, last))
    }

    /// A track's frames with their arrival times, oldest first.
    pub fn frames(&self, kind: TrackKind) -> impl Iterator<Item = &(SystemTime, Arc<Frame>)> {
        match kind {
            TrackKind::Video => self.video.frames.iter(),
            TrackKind::Audio => self.audio.frames.iter(),
        }
    }

    /// The window's tracks as clip sources (a track without frames is left out).
    pub fn tracks(&self) -> Vec<SourceTrack> {
        [&self.video, &self.audio]
            .into_iter()
            .filter_map(|lane| {
                let info = lane.info.clone().filter(|_| !lane.frames.is_empty())?;
                let samples = lane
                    .frames
                    .iter()
                    .map(|(wall, f)| TimedSample {
                        wall: *wall,
                        dts: f.dts.as_nanos(),
                        pts: f.pts.as_nanos(),
                        sync: f.keyframe || f.kind() == TrackKind::Audio,
                        data: f.data.clone(),
                    })
                    .collect();
                Some(SourceTrack { info, samples })
            })
            .collect()
    }

    fn lane(&mut self, kind: TrackKind) -> &mut Lane {
        match kind {
            TrackKind::Video => &mut self.video,
            TrackKind::Audio => &mut self.audio,
        }
    }

    /// Video came within the window.
    fn video_flows(&self, now: SystemTime) -> bool {
        self.last_video.is_some_and(|t| now.duration_since(t).unwrap_or(Duration::ZERO) <= self.config.window)
    }

    fn prune(&mut self, now: SystemTime) {
        let cutoff = now.checked_sub(self.config.window);
        let old = |t: SystemTime| cutoff.is_some_and(|c| t <= c);
        // Whole GOPs, while the next keyframe is old enough to start the window.
        while self.video.keys.get(1).is_some_and(|(_, t)| old(*t)) {
            self.bytes -= self.video.pop_gop();
        }
        // Video that stopped long ago.
        if self.video.last_wall().is_some_and(|t| cutoff.is_some_and(|c| t < c)) {
            self.bytes -= self.video.clear();
        }
        while self.bytes > self.config.max_bytes && self.video.keys.len() >= 2 {
            self.bytes -= self.video.pop_gop();
        }
        if self.bytes > self.config.max_bytes && !self.video.frames.is_empty() {
            // One GOP over the bound: nothing to keep until the next keyframe.
            self.restart();
            return;
        }
        match self.video.frames.front() {
            // Audio from the first picture on.
            Some((_, first)) => {
                let start = first.dts;
                while self.audio.frames.front().is_some_and(|(_, a)| a.dts < start) {
                    self.bytes -= self.audio.pop();
                }
            }
            None => {
                while self.audio.frames.front().is_some_and(|(t, _)| old(*t)) || self.bytes > self.config.max_bytes {
                    let freed = self.audio.pop();
                    if freed == 0 {
                        break;
                    }
                    self.bytes -= freed;
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "window_tests.rs"]
mod tests;
