//! The consumer side: one consumer's view of a stream, merging its video and audio outputs
//! (copied or converted), starting at the cached GOP, skipping to the next keyframe when it
//! falls behind and ending when it falls behind too often.
//!
//! Sound and picture start together: a consumer with video gets no audio from before its first
//! video frame. When that frame is not cached (a conversion that has just started, whose
//! output comes live: typically its audio well before its video, which has a GOP to decode and
//! encode first), audio that comes first is held until the picture does, for at most
//! [`FIRST_PICTURE_WAIT`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::time::Instant;

use super::lease::ConsumerLease;
use super::replan::{self, PlanInputs, Replan, Replanner};
use super::track::TrackJoin;
use super::HubError;
use crate::matrix::{Leg, Plan};
use crate::media::{Frame, TrackInfo, TrackKind, Ts};

/// How long audio that comes before a consumer's first video frame is held for it; after that
/// the audio goes out alone (as it would without video).
pub const FIRST_PICTURE_WAIT: Duration = Duration::from_secs(3);

/// How a consumer that writes to a socket gathers frames into one write (see
/// [`Subscription::next_batch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// How long audio found without video waits for the next video frame, so that both go
    /// out in one write: about one frame (a video frame itself never waits).
    pub audio_hold: Duration,
    /// The least time between two writes to one consumer (SRS's `mw_latency`): what arrives
    /// meanwhile waits and goes out together. Zero (the default): every video frame is
    /// written when it arrives.
    pub merge_window: Duration,
}

/// Audio waits at most one frame (at 25 fps) for the picture it goes out with.
pub const AUDIO_HOLD: Duration = Duration::from_millis(40);
/// While the picture flows a batching consumer wakes for video only; audio that comes
/// without video for this long (the picture paused) goes out on its own.
pub const VIDEO_GAP: Duration = Duration::from_millis(80);

impl Default for Batching {
    fn default() -> Self {
        Batching { audio_hold: AUDIO_HOLD, merge_window: Duration::ZERO }
    }
}

/// Why a subscription ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The publisher left (or was disconnected).
    StreamEnded,
    /// The consumer fell behind more often than allowed.
    TooSlow,
    /// Another publisher took the stream over, and what it sends cannot be served to this
    /// consumer (the matrix has no route, or another output codec would be needed): why.
    Unsupported(String),
}

struct Track {
    receiver: broadcast::Receiver<Arc<Frame>>,
    open: bool,
}

/// Where the consumer's media starts (see the module doc).
enum Start {
    /// No video frame yet: audio is held (until the wait's deadline, set by the first one).
    AwaitingPicture { held: VecDeque<Arc<Frame>>, until: Option<Instant> },
    /// The picture starts at this dts: audio from before it is dropped.
    PictureAt(Ts),
    /// No alignment: no video, or the wait for it ran out.
    Free,
}

pub struct Subscription {
    plan: Plan,
    video_info: Option<Arc<TrackInfo>>,
    audio_info: Option<Arc<TrackInfo>>,
    backlog: VecDeque<Arc<Frame>>,
    video: Option<Track>,
    audio: Option<Track>,
    skipping: bool,
    start: Start,
    first_picture_wait: Duration,
    lag_events: u32,
    max_lag_events: u32,
    ended: Option<EndReason>,
    lease: ConsumerLease,
    /// Re-plans this consumer when another publisher continues the stream (None in tests).
    pub(super) replanner: Option<Replanner>,
    /// The dts of the newest frame handed out, per track (video, audio).
    last_dts: [Option<Ts>; 2],
    /// After a re-plan, frames of a newly joined output at or before this dts are dropped: a
    /// track's timestamps never go back.
    floor: [Option<Ts>; 2],
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
        let start = match video_start {
            Some(at) => Start::PictureAt(at),
            None if has_video => Start::AwaitingPicture { held: VecDeque::new(), until: None },
            None => Start::Free,
        };
        Subscription {
            plan,
            video_info,
            audio_info,
            backlog: backlog.into(),
            video,
            audio,
            skipping: false,
            start,
            first_picture_wait: FIRST_PICTURE_WAIT,
            lag_events: 0,
            max_lag_events,
            ended: None,
            lease,
            replanner: None,
            last_dts: [None; 2],
            floor: [None; 2],
        }
    }

    /// The stream this consumer is attached to.
    pub fn stream(&self) -> &Arc<super::Stream> {
        &self.lease.stream
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

    /// The next frame for this consumer, in arrival order (but no audio from before its first
    /// video frame: see the module doc); None when the stream ended or the consumer is dropped
    /// for being too slow (see [`Subscription::end_reason`]).
    pub async fn next(&mut self) -> Option<Arc<Frame>> {
        loop {
            if let Some(frame) = self.backlog.pop_front() {
                return Some(self.sent(frame));
            }
            if self.ended.is_some() {
                return None;
            }
            let video_open = self.video.as_ref().is_some_and(|t| t.open);
            let audio_open = self.audio.as_ref().is_some_and(|t| t.open);
            if !video_open && matches!(self.start, Start::AwaitingPicture { .. }) {
                // No picture is coming: what was held goes out.
                self.stop_waiting();
                continue;
            }
            if !video_open && !audio_open {
                self.ended = Some(EndReason::StreamEnded);
                return None;
            }
            let deadline = match &self.start {
                Start::AwaitingPicture { until: Some(until), .. } => Some(*until),
                _ => None,
            };
            // When the stream ends its outputs close, and both receivers see `Closed`.
            let (kind, result) = tokio::select! {
                r = recv(&mut self.video), if video_open => (TrackKind::Video, r),
                r = recv(&mut self.audio), if audio_open => (TrackKind::Audio, r),
                _ = sleep_until(deadline), if deadline.is_some() => {
                    tracing::debug!(wait = ?self.first_picture_wait, "no picture in time; audio goes out alone");
                    self.stop_waiting();
                    continue;
                }
                _ = replan::sources_changed(&mut self.replanner) => {
                    self.replan();
                    continue;
                }
            };
            if let Some(frame) = self.take(kind, result) {
                return Some(self.sent(frame));
            }
        }
    }

    /// The frames ready for this consumer, gathered so that it wakes about once per video
    /// frame instead of once per frame (see [`Batching`]): waits as [`Subscription::next`] does
    /// for the first, then takes, without waiting, whatever else is ready. Audio found without
    /// video waits for the next video frame, for at most `batching.audio_hold`. `out` is
    /// cleared first and comes back in decode order; false when the subscription has ended
    /// and nothing is left (see [`Subscription::end_reason`]).
    pub async fn next_batch(&mut self, out: &mut Vec<Arc<Frame>>, batching: Batching) -> bool {
        out.clear();
        let mut hold_until: Option<Instant> = None;
        loop {
            self.take_ready(out);
            let video_open = self.video.as_ref().is_some_and(|t| t.open);
            if self.ended.is_some() || (!out.is_empty() && !video_open) {
                break;
            }
            if out.iter().any(|f| f.kind() == TrackKind::Video) {
                break;
            }
            if !out.is_empty() {
                let until = *hold_until.get_or_insert_with(|| Instant::now() + batching.audio_hold);
                if Instant::now() >= until {
                    break;
                }
                // Only video (or the hold running out) wakes it now; audio waits in its queue.
                tokio::select! {
                    biased;
                    r = recv(&mut self.video) => {
                        if let Some(frame) = self.take(TrackKind::Video, r) {
                            out.push(self.sent(frame));
                        }
                    }
                    _ = tokio::time::sleep_until(until) => break,
                    _ = replan::sources_changed(&mut self.replanner) => self.replan(),
                }
                continue;
            }
            if video_open && matches!(self.start, Start::PictureAt(_)) && self.backlog.is_empty() {
                // The picture flows: only video wakes the consumer, the audio beside it is
                // taken with it; audio alone is looked for after `VIDEO_GAP`.
                tokio::select! {
                    biased;
                    r = recv(&mut self.video) => {
                        if let Some(frame) = self.take(TrackKind::Video, r) {
                            out.push(self.sent(frame));
                        }
                    }
                    _ = tokio::time::sleep(VIDEO_GAP) => {
                        self.take_ready(out);
                        if !out.is_empty() {
                            break;
                        }
                    }
                    _ = replan::sources_changed(&mut self.replanner) => self.replan(),
                }
                continue;
            }
            match self.next().await {
                Some(frame) => out.push(frame),
                None => break,
            }
        }
        out.sort_by_key(|f| f.dts);
        !out.is_empty()
    }

    /// Takes every frame that is ready without waiting: the backlog, then what each track's
    /// queue holds.
    fn take_ready(&mut self, out: &mut Vec<Arc<Frame>>) {
        for kind in [TrackKind::Video, TrackKind::Audio] {
            while let Some(frame) = self.backlog.pop_front() {
                out.push(self.sent(frame));
            }
            loop {
                let track = match kind {
                    TrackKind::Video => &mut self.video,
                    TrackKind::Audio => &mut self.audio,
                };
                let result = match track {
                    Some(t) if t.open && self.ended.is_none() => match t.receiver.try_recv() {
                        Ok(frame) => Ok(frame),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                        Err(TryRecvError::Closed) => Err(RecvError::Closed),
                    },
                    _ => break,
                };
                if let Some(frame) = self.take(kind, result) {
                    out.push(self.sent(frame));
                }
            }
        }
        // A first picture releases the audio held for it (see `align`).
        while let Some(frame) = self.backlog.pop_front() {
            out.push(self.sent(frame));
        }
    }

    /// One receive's outcome on track `kind`: the frame if it goes out to this consumer.
    /// Counts lags (and ends the subscription past the allowance) and closes a finished track.
    fn take(&mut self, kind: TrackKind, result: Result<Arc<Frame>, RecvError>) -> Option<Arc<Frame>> {
        match result {
            Ok(frame) => {
                if !self.fits(&frame) {
                    return None;
                }
                self.admit(frame).and_then(|f| self.align(f))
            }
            Err(RecvError::Lagged(_)) => {
                self.lag_events += 1;
                if self.lag_events > self.max_lag_events {
                    self.ended = Some(EndReason::TooSlow);
                    return None;
                }
                self.skipping = self.video.is_some();
                None
            }
            Err(RecvError::Closed) => {
                let track = match kind {
                    TrackKind::Video => &mut self.video,
                    TrackKind::Audio => &mut self.audio,
                };
                if let Some(t) = track {
                    t.open = false;
                }
                None
            }
        }
    }

    /// The consumer's own output (socket, queue) could not take a frame: counts a lag, as
    /// falling behind the hub does, and skips to the next video keyframe. True when that was
    /// one lag too many: the subscription has ended ([`EndReason::TooSlow`]).
    pub fn lagged(&mut self) -> bool {
        self.lag_events += 1;
        if self.lag_events > self.max_lag_events {
            self.ended = Some(EndReason::TooSlow);
            self.backlog.clear();
            return true;
        }
        self.skipping = self.video.is_some();
        if self.skipping {
            // The rest of the cached start is from before the lag too.
            self.backlog.clear();
        }
        false
    }

    /// Notes what goes out (see `floor`).
    fn sent(&mut self, frame: Arc<Frame>) -> Arc<Frame> {
        self.last_dts[frame.kind().index()] = Some(frame.dts);
        frame
    }

    /// A frame this consumer can take: in the codec its plan delivers on that track (a new
    /// publisher's other codec on a copied track waits for the re-plan) and not older than
    /// what it already got from an output it left.
    fn fits(&self, frame: &Frame) -> bool {
        let codec_ok = self.plan.leg(frame.kind()).is_none_or(|leg| leg.output_codec() == frame.info.codec());
        codec_ok && self.floor[frame.kind().index()].is_none_or(|floor| frame.dts > floor)
    }

    /// The stream's publisher changed its tracks (another one took over): decide the plan
    /// again from the matrix and switch the tracks whose output changes, or end.
    fn replan(&mut self) {
        let Some(mut r) = self.replanner.take() else { return };
        let stream = self.lease.stream.clone();
        let inputs = PlanInputs::of(&stream);
        let planned = r.hub.plan_for(&stream, self.lease.meta.protocol).map_err(|e| e.to_string());
        let decision = replan::decide(&self.plan, &r.inputs, &inputs, planned);
        tracing::debug!(stream = %stream.key, consumer = %self.lease.meta.id, from = ?r.inputs, to = ?inputs, ?decision, "publisher changed");
        r.inputs = inputs;
        let outcome = match decision {
            Replan::Keep => Ok(()),
            Replan::End(reason) => Err(reason),
            Replan::Change(plan) => {
                self.plan = plan;
                [TrackKind::Video, TrackKind::Audio]
                    .into_iter()
                    .try_for_each(|kind| self.switch(&mut r, kind, plan.leg(kind)))
                    .map_err(|e| e.to_string())
                    .inspect(|_| tracing::info!(stream = %stream.key, consumer = %self.lease.meta.id, plan = ?self.plan, "consumer re-planned for the new publisher"))
            }
        };
        match outcome {
            Ok(()) => self.replanner = Some(r),
            Err(reason) => {
                tracing::info!(stream = %stream.key, consumer = %self.lease.meta.id, %reason, "the new publisher cannot be served to this consumer; it ends");
                self.backlog.clear();
                self.ended = Some(EndReason::Unsupported(reason));
            }
        }
    }

    /// Moves one track onto the output its new leg is served from (a conversion started if
    /// needed), leaving the old one; what the new output has cached joins from where this
    /// consumer is.
    fn switch(&mut self, r: &mut Replanner, kind: TrackKind, leg: Option<&Leg>) -> Result<(), HubError> {
        let Some(old) = r.output_mut(kind).clone() else { return Ok(()) };
        let has_track = match kind {
            TrackKind::Video => self.video.is_some(),
            TrackKind::Audio => self.audio.is_some(),
        };
        if leg.is_none() || !has_track {
            return Ok(());
        }
        let stream = self.lease.stream.clone();
        let Some(output) = r.hub.leg_output(&stream, kind, leg, &mut self.lease)? else { return Ok(()) };
        if Arc::ptr_eq(&output, &old) {
            // The same output (a conversion counted twice now): one share back.
            self.lease.release_output(&old);
            return Ok(());
        }
        let Some(join) = output.join() else {
            self.lease.release_output(&output);
            return Ok(());
        };
        let at = kind.index();
        self.floor[at] = self.last_dts[at];
        let backlog: Vec<_> = join.backlog.into_iter().filter(|f| self.fits(f)).collect();
        self.backlog.extend(backlog);
        let track = Track { receiver: join.receiver, open: true };
        match kind {
            TrackKind::Video => {
                self.video = Some(track);
                self.video_info = join.info.or(self.video_info.take());
            }
            TrackKind::Audio => {
                self.audio = Some(track);
                self.audio_info = join.info.or(self.audio_info.take());
            }
        }
        self.lease.release_output(&old);
        *r.output_mut(kind) = Some(output);
        Ok(())
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

    /// Starts sound with the picture: holds audio until the first video frame, then lets
    /// through only audio from that frame's dts on.
    fn align(&mut self, frame: Arc<Frame>) -> Option<Arc<Frame>> {
        let wait = self.first_picture_wait;
        match (&mut self.start, frame.kind()) {
            (Start::Free, _) => Some(frame),
            (Start::PictureAt(at), TrackKind::Audio) => (frame.dts >= *at).then_some(frame),
            (Start::PictureAt(_), TrackKind::Video) => Some(frame),
            (Start::AwaitingPicture { held, until }, TrackKind::Audio) => {
                until.get_or_insert_with(|| Instant::now() + wait);
                held.push_back(frame);
                None
            }
            (Start::AwaitingPicture { held, .. }, TrackKind::Video) => {
                let at = frame.dts;
                let held = std::mem::take(held);
                let dropped = held.iter().filter(|f| f.dts < at).count();
                if dropped > 0 {
                    tracing::debug!(dropped, "audio from before the first picture dropped");
                }
                self.backlog.extend(held.into_iter().filter(|f| f.dts >= at));
                self.start = Start::PictureAt(at);
                Some(frame)
            }
        }
    }

    /// Gives up waiting for the picture: held audio goes out, and audio is not aligned.
    fn stop_waiting(&mut self) {
        if let Start::AwaitingPicture { held, .. } = std::mem::replace(&mut self.start, Start::Free) {
            self.backlog.extend(held);
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn recv(track: &mut Option<Track>) -> Result<Arc<Frame>, RecvError> {
    match track {
        Some(t) => t.receiver.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[path = "subscription_tests.rs"]
mod tests;
