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
mod tests {
    use std::sync::atomic::AtomicU64;
    use std::time::SystemTime;

    use bytes::Bytes;

    use super::*;
    use crate::hub::stream::{ConsumerMeta, PublisherMeta, Stream};
    use crate::hub::track::{CacheLimits, TrackOutput};
    use crate::hub::{Metrics, SessionId};
    use crate::matrix::Leg;
    use crate::media::{AudioInfo, Codec, Protocol, VideoInfo};

    fn infos() -> (Arc<TrackInfo>, Arc<TrackInfo>) {
        let v = TrackInfo::Video(VideoInfo {
            codec: Codec::Mpeg1,
            width: 2,
            height: 2,
            fps: None,
            config: None,
            bframes: false,
        });
        let a = TrackInfo::Audio(AudioInfo { codec: Codec::Mp2, sample_rate: 44_100, channels: 1, config: None });
        (Arc::new(v), Arc::new(a))
    }

    fn frame(info: &Arc<TrackInfo>, ms: i64, key: bool) -> Arc<Frame> {
        Arc::new(Frame::new(info.clone(), Ts::from_millis(ms), Ts::from_millis(ms), key, Bytes::from_static(b"x")))
    }

    /// A subscription to two fresh outputs (nothing cached: a conversion that just started).
    fn subscribe(video: &TrackOutput, audio: &TrackOutput) -> Subscription {
        let publisher = PublisherMeta {
            id: SessionId::next(),
            protocol: Protocol::Rtmp,
            transport: "rtmp".into(),
            remote: None,
            started: SystemTime::now(),
        };
        let stream = Arc::new(Stream::new("k".parse().unwrap(), publisher, CacheLimits::default()));
        let meta = Arc::new(ConsumerMeta {
            id: SessionId::next(),
            protocol: Protocol::H5,
            transport: "ws".into(),
            remote: None,
            started: SystemTime::now(),
            bytes_out: AtomicU64::new(0),
        });
        let lease = ConsumerLease {
            stream,
            meta,
            conversions: Vec::new(),
            grace: Duration::ZERO,
            metrics: Arc::new(Metrics::default()),
            observer: Default::default(),
        };
        let leg = |from, to| Leg::Convert { from, to, reason: crate::matrix::Reason::Rule };
        let plan = Plan {
            from: Protocol::Rtmp,
            to: Protocol::H5,
            video: Some(leg(Codec::H264, Codec::Mpeg1)),
            audio: Some(leg(Codec::Aac, Codec::Mp2)),
        };
        Subscription::new(plan, video.join(), audio.join(), 5, lease)
    }

    async fn next_ms(sub: &mut Subscription) -> (TrackKind, i64) {
        let f =
            tokio::time::timeout(Duration::from_secs(5), sub.next()).await.expect("a frame in time").expect("a frame");
        (f.kind(), f.dts.as_millis())
    }

    #[tokio::test]
    async fn audio_before_the_first_picture_waits_for_it_and_older_audio_is_dropped() {
        let (v, a) = infos();
        let (video, audio) = (
            TrackOutput::new(TrackKind::Video, CacheLimits::default()),
            TrackOutput::new(TrackKind::Audio, CacheLimits::default()),
        );
        let mut sub = subscribe(&video, &audio);
        // A fresh audio conversion's output comes first, from before the picture's start.
        for ms in [1000, 1026, 1052, 3000, 3026] {
            audio.push(frame(&a, ms, true));
        }
        video.push(frame(&v, 3000, true));
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(next_ms(&mut sub).await);
        }
        video.push(frame(&v, 3033, false));
        got.push(next_ms(&mut sub).await);
        audio.push(frame(&a, 3052, true));
        got.push(next_ms(&mut sub).await);
        use TrackKind::{Audio as A, Video as V};
        assert_eq!(got, [(V, 3000), (A, 3000), (A, 3026), (V, 3033), (A, 3052)]);
        // Later audio from before the picture's start (a late copy) is dropped too.
        audio.push(frame(&a, 2990, true));
        audio.push(frame(&a, 3078, true));
        assert_eq!(next_ms(&mut sub).await, (A, 3078));
    }

    async fn batch_ms(sub: &mut Subscription, batching: Batching) -> Vec<(TrackKind, i64)> {
        let mut out = Vec::new();
        let more = tokio::time::timeout(Duration::from_secs(5), sub.next_batch(&mut out, batching))
            .await
            .expect("a batch in time");
        assert!(more, "the subscription goes on");
        out.iter().map(|f| (f.kind(), f.dts.as_millis())).collect()
    }

    #[tokio::test]
    async fn a_batch_is_one_picture_with_the_audio_beside_it_and_audio_alone_waits_for_the_next() {
        use TrackKind::{Audio as A, Video as V};
        let (v, a) = infos();
        let (video, audio) = (
            TrackOutput::new(TrackKind::Video, CacheLimits::default()),
            TrackOutput::new(TrackKind::Audio, CacheLimits::default()),
        );
        let mut sub = subscribe(&video, &audio);
        let batching = Batching::default();
        video.push(frame(&v, 1000, true));
        audio.push(frame(&a, 1000, true));
        audio.push(frame(&a, 1020, true));
        assert_eq!(batch_ms(&mut sub, batching).await, [(V, 1000), (A, 1000), (A, 1020)], "what is ready, at once");
        // Audio alone does not make a batch: it goes out with the next picture, in dts order.
        audio.push(frame(&a, 1040, true));
        let pushing = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            audio.push(frame(&a, 1060, true));
            video.push(frame(&v, 1033, false));
        };
        let (got, ()) = tokio::join!(batch_ms(&mut sub, batching), pushing);
        assert_eq!(got, [(V, 1033), (A, 1040), (A, 1060)]);
        // The picture pauses: audio already waiting goes out on its own after the hold.
        audio.push(frame(&a, 1080, true));
        let started = Instant::now();
        assert_eq!(batch_ms(&mut sub, batching).await, [(A, 1080)]);
        let waited = started.elapsed();
        assert!(waited >= batching.audio_hold && waited < Duration::from_secs(2), "waited {waited:?}");
    }

    #[tokio::test]
    async fn audio_found_alone_waits_at_most_the_hold_for_its_picture() {
        use TrackKind::{Audio as A, Video as V};
        let (v, a) = infos();
        let (video, audio) = (
            TrackOutput::new(TrackKind::Video, CacheLimits::default()),
            TrackOutput::new(TrackKind::Audio, CacheLimits::default()),
        );
        let mut sub = subscribe(&video, &audio);
        let batching = Batching { audio_hold: Duration::from_millis(40), merge_window: Duration::ZERO };
        video.push(frame(&v, 1000, true));
        assert_eq!(batch_ms(&mut sub, batching).await, [(V, 1000)]);
        // Audio that comes while only video is awaited is found after the gap, then waits
        // the hold for a picture.
        let pushing = async {
            tokio::time::sleep(VIDEO_GAP / 2).await;
            audio.push(frame(&a, 1010, true));
        };
        let started = Instant::now();
        let (got, ()) = tokio::join!(batch_ms(&mut sub, batching), pushing);
        assert_eq!(got, [(A, 1010)]);
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        // The stream ends: what is left goes out, then no more batches.
        audio.push(frame(&a, 1030, true));
        drop((video, audio));
        let mut out = Vec::new();
        assert!(sub.next_batch(&mut out, batching).await);
        assert_eq!(out.len(), 1);
        assert!(!sub.next_batch(&mut out, batching).await);
        assert_eq!(sub.end_reason(), Some(&EndReason::StreamEnded));
    }

    #[tokio::test]
    async fn without_a_picture_audio_goes_out_alone_after_the_wait() {
        let (v, a) = infos();
        let (video, audio) = (
            TrackOutput::new(TrackKind::Video, CacheLimits::default()),
            TrackOutput::new(TrackKind::Audio, CacheLimits::default()),
        );
        let mut sub = subscribe(&video, &audio);
        sub.first_picture_wait = Duration::from_millis(50);
        audio.push(frame(&a, 1000, true));
        audio.push(frame(&a, 1026, true));
        assert_eq!(next_ms(&mut sub).await, (TrackKind::Audio, 1000));
        assert_eq!(next_ms(&mut sub).await, (TrackKind::Audio, 1026));
        // A picture that comes late does not hold back or drop audio any more.
        video.push(frame(&v, 2000, true));
        assert_eq!(next_ms(&mut sub).await, (TrackKind::Video, 2000));
        audio.push(frame(&a, 1052, true));
        assert_eq!(next_ms(&mut sub).await, (TrackKind::Audio, 1052));
    }

    #[tokio::test]
    async fn a_consumer_whose_output_is_full_skips_to_a_keyframe_then_ends() {
        let (v, a) = infos();
        let (video, audio) = (
            TrackOutput::new(TrackKind::Video, CacheLimits::default()),
            TrackOutput::new(TrackKind::Audio, CacheLimits::default()),
        );
        let mut sub = subscribe(&video, &audio);
        video.push(frame(&v, 0, true));
        assert_eq!(next_ms(&mut sub).await, (TrackKind::Video, 0));
        assert!(!sub.lagged());
        for (ms, key) in [(33, false), (66, true)] {
            video.push(frame(&v, ms, key));
        }
        assert_eq!(next_ms(&mut sub).await, (TrackKind::Video, 66), "skipped to the keyframe");
        // Sound that comes while skipping is dropped with the pictures; after the keyframe it flows.
        audio.push(frame(&a, 70, true));
        assert_eq!(next_ms(&mut sub).await, (TrackKind::Audio, 70));
        for _ in 1..5 {
            assert!(!sub.lagged());
        }
        assert!(sub.lagged(), "one lag more than max_lag_events (5) ends it");
        assert_eq!(sub.end_reason(), Some(&EndReason::TooSlow));
        assert!(sub.next().await.is_none());
    }

    #[tokio::test]
    async fn held_audio_goes_out_when_the_video_ends() {
        let (_, a) = infos();
        let (video, audio) = (
            TrackOutput::new(TrackKind::Video, CacheLimits::default()),
            TrackOutput::new(TrackKind::Audio, CacheLimits::default()),
        );
        let mut sub = subscribe(&video, &audio);
        audio.push(frame(&a, 1000, true));
        video.close();
        assert_eq!(next_ms(&mut sub).await, (TrackKind::Audio, 1000));
        audio.close();
        assert!(sub.next().await.is_none());
        assert_eq!(sub.end_reason(), Some(&EndReason::StreamEnded));
    }
}
