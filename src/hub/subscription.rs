//! The consumer side: one consumer's view of a stream, merging its video and audio outputs
//! (copied or converted), starting at the cached GOP, skipping to the next keyframe when it
//! falls behind and ending when it falls behind too often.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError};

use super::lease::ConsumerLease;
use super::track::TrackJoin;
use crate::media::{Frame, TrackInfo, TrackKind};
use crate::matrix::Plan;

/// Why a subscription ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The publisher left (or was disconnected).
    StreamEnded,
    /// The consumer fell behind more often than allowed.
    TooSlow,
}

struct Track {
    receiver: broadcast::Receiver<Arc<Frame>>,
    open: bool,
}

pub struct Subscription {
    plan: Plan,
    video_info: Option<Arc<TrackInfo>>,
    audio_info: Option<Arc<TrackInfo>>,
    backlog: VecDeque<Arc<Frame>>,
    video: Option<Track>,
    audio: Option<Track>,
    skipping: bool,
    lag_events: u32,
    max_lag_events: u32,
    ended: Option<EndReason>,
    lease: ConsumerLease,
}

impl Subscription {
    pub(super) fn new(
        plan: Plan,
        video: Option<TrackJoin>,
        audio: Option<TrackJoin>,
        max_lag_events: u32,
        lease: ConsumerLease,
    ) -> Subscription {
        let video_start = video.as_ref().and_then(|v| v.backlog.first()).map(|f| f.dts);
        let has_video = video.is_some();
        let mut backlog: Vec<Arc<Frame>> = Vec::new();
        let mut open = |join: Option<TrackJoin>, keep: &dyn Fn(&Frame) -> bool| {
            join.map(|j| {
                backlog.extend(j.backlog.into_iter().filter(|f| keep(f)));
                (j.info, Track { receiver: j.receiver, open: true })
            })
        };
        let video = open(video, &|_| true);
        // Audio from where the cached GOP starts, so sound and picture start together.
        let audio = open(audio, &|f| !has_video || video_start.is_some_and(|start| f.dts >= start));
        backlog.sort_by_key(|f| f.dts);
        let (video_info, video) = video.map_or((None, None), |(i, t)| (i, Some(t)));
        let (audio_info, audio) = audio.map_or((None, None), |(i, t)| (i, Some(t)));
        Subscription {
            plan,
            video_info,
            audio_info,
            backlog: backlog.into(),
            video,
            audio,
            skipping: false,
            lag_events: 0,
            max_lag_events,
            ended: None,
            lease,
        }
    }

    /// What this consumer gets per track (copy or conversion), as planned from the matrix.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn has_video(&self) -> bool {
        self.video.is_some()
    }

    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// The track infos known when the consumer joined (frames carry the current one).
    pub fn video_info(&self) -> Option<&Arc<TrackInfo>> {
        self.video_info.as_ref()
    }

    pub fn audio_info(&self) -> Option<&Arc<TrackInfo>> {
        self.audio_info.as_ref()
    }

    pub fn end_reason(&self) -> Option<&EndReason> {
        self.ended.as_ref()
    }

    /// Asks for a keyframe where this consumer's video comes from: the publisher for a copied
    /// track, the encoder for a converted one.
    pub fn request_keyframe(&self) {
        match self.lease.conversions.iter().find(|c| c.key.track == TrackKind::Video) {
            Some(conversion) => conversion.request_keyframe(),
            None => self.lease.stream.request_keyframe(),
        }
    }

    /// Counts bytes sent to this consumer (metrics).
    pub fn add_bytes_out(&self, n: usize) {
        self.lease.add_bytes_out(n);
    }

    /// The next frame for this consumer, in arrival order; None when the stream ended or the
    /// consumer is dropped for being too slow (see [`Subscription::end_reason`]).
    pub async fn next(&mut self) -> Option<Arc<Frame>> {
        if let Some(frame) = self.backlog.pop_front() {
            return Some(frame);
        }
        loop {
            if self.ended.is_some() {
                return None;
            }
            let video_open = self.video.as_ref().is_some_and(|t| t.open);
            let audio_open = self.audio.as_ref().is_some_and(|t| t.open);
            if !video_open && !audio_open {
                self.ended = Some(EndReason::StreamEnded);
                return None;
            }
            // When the stream ends its outputs close, and both receivers see `Closed`.
            let (kind, result) = tokio::select! {
                r = recv(&mut self.video), if video_open => (TrackKind::Video, r),
                r = recv(&mut self.audio), if audio_open => (TrackKind::Audio, r),
            };
            match result {
                Ok(frame) => {
                    if let Some(frame) = self.admit(frame) {
                        return Some(frame);
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    self.lag_events += 1;
                    if self.lag_events > self.max_lag_events {
                        self.ended = Some(EndReason::TooSlow);
                        return None;
                    }
                    self.skipping = self.video.is_some();
                }
                Err(RecvError::Closed) => {
                    let track = match kind {
                        TrackKind::Video => &mut self.video,
                        TrackKind::Audio => &mut self.audio,
                    };
                    if let Some(t) = track {
                        t.open = false;
                    }
                }
            }
        }
    }

    /// After a lag, drop everything until the next video keyframe.
    fn admit(&mut self, frame: Arc<Frame>) -> Option<Arc<Frame>> {
        if !self.skipping {
            return Some(frame);
        }
        if frame.is_video_keyframe() {
            self.skipping = false;
            return Some(frame);
        }
        None
    }
}

async fn recv(track: &mut Option<Track>) -> Result<Arc<Frame>, RecvError> {
    match track {
        Some(t) => t.receiver.recv().await,
        None => std::future::pending().await,
    }
}
