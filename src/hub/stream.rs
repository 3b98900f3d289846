//! One live stream: its publisher, its source tracks, the conversions made from them and the
//! consumers attached.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::conversion::{Conversion, ConversionKey};
use super::key::{SessionId, StreamKey};
use super::timeline::Timeline;
use super::track::{CacheLimits, TrackOutput};
use crate::media::{Protocol, TrackInfo, TrackKind, Ts};

/// Who publishes a stream.
#[derive(Debug, Clone)]
pub struct PublisherMeta {
    pub id: SessionId,
    pub protocol: Protocol,
    /// How it arrived, e.g. "rtmp", "whip", "rtmp-pull".
    pub transport: String,
    pub remote: Option<String>,
    pub started: SystemTime,
}

/// One attached consumer.
#[derive(Debug)]
pub struct ConsumerMeta {
    pub id: SessionId,
    pub protocol: Protocol,
    /// How it is served, e.g. "rtmp", "http-flv", "push".
    pub transport: String,
    pub remote: Option<String>,
    pub started: SystemTime,
    pub bytes_out: AtomicU64,
}

/// How long a stream waits for its second track before consumers plan without it.
const SECOND_TRACK_WAIT: Duration = Duration::from_millis(1500);

/// Who publishes the stream now, and what the last one left while it waits for another.
struct Life {
    publisher: PublisherMeta,
    /// A publisher is attached (false during the reconnect grace).
    attached: bool,
    /// Bumped whenever a publisher leaves or takes over: a grace timer only ends the stream
    /// if nothing happened since it was set.
    epoch: u64,
    /// The last publisher's newest timestamp and when that frame came.
    left: Option<(Option<Ts>, Instant)>,
    /// Publishers that took the stream over in its grace.
    takeovers: u64,
}

pub struct Stream {
    pub key: StreamKey,
    life: Mutex<Life>,
    pub(super) video: Arc<TrackOutput>,
    pub(super) audio: Arc<TrackOutput>,
    pub(super) conversions: Mutex<HashMap<ConversionKey, Arc<Conversion>>>,
    pub(super) consumers: Mutex<HashMap<SessionId, Arc<ConsumerMeta>>>,
    /// Cancelled when the publisher leaves: consumers end, conversions stop.
    pub(super) ended: CancellationToken,
    /// Cancelled to ask the publisher to disconnect (API kick).
    pub(super) kick: CancellationToken,
    pub(super) bytes_in: AtomicU64,
    /// Consumers asking the publisher for a keyframe (a WebRTC publisher turns it into PLI).
    pub(super) keyframe_wanted: Notify,
    keyframe_requests: AtomicU64,
    first_frame: Mutex<Option<Instant>>,
    ready: watch::Sender<bool>,
    /// Bumped when a publisher that took the stream over has shown its tracks: attached
    /// consumers re-plan (see `replan`).
    sources: watch::Sender<u64>,
}

impl Stream {
    pub(super) fn new(key: StreamKey, publisher: PublisherMeta, limits: CacheLimits) -> Stream {
        Stream {
            key,
            life: Mutex::new(Life { publisher, attached: true, epoch: 0, left: None, takeovers: 0 }),
            video: Arc::new(TrackOutput::new(TrackKind::Video, limits)),
            audio: Arc::new(TrackOutput::new(TrackKind::Audio, limits)),
            conversions: Mutex::new(HashMap::new()),
            consumers: Mutex::new(HashMap::new()),
            ended: CancellationToken::new(),
            kick: CancellationToken::new(),
            bytes_in: AtomicU64::new(0),
            keyframe_wanted: Notify::new(),
            keyframe_requests: AtomicU64::new(0),
            first_frame: Mutex::new(None),
            ready: watch::channel(false).0,
            sources: watch::channel(0).0,
        }
    }

    /// The current publisher (the last one while the stream waits for a reconnect).
    pub fn publisher(&self) -> PublisherMeta {
        lock(&self.life).publisher.clone()
    }

    /// The stream comes from another node of the cluster (its publisher is a relay).
    pub fn is_relayed(&self) -> bool {
        lock(&self.life).publisher.transport == super::RELAY_TRANSPORT
    }

    /// The publisher left and the stream waits, within its grace, for another.
    pub fn is_reconnecting(&self) -> bool {
        !lock(&self.life).attached && !self.is_ended()
    }

    /// How many publishers took this stream over after its first one left.
    pub fn takeovers(&self) -> u64 {
        lock(&self.life).takeovers
    }

    /// The publisher left (its timeline ended at `newest`, a frame that came at `at`): the
    /// stream waits for another. Returns the epoch a grace timer checks with
    /// [`Stream::idle_since`].
    pub(super) fn detach(&self, newest: Option<Ts>, at: Option<Instant>) -> u64 {
        let mut life = lock(&self.life);
        life.attached = false;
        life.epoch += 1;
        life.left = Some((newest, at.unwrap_or_else(Instant::now)));
        life.epoch
    }

    /// Is the stream still without a publisher since `epoch`?
    pub(super) fn idle_since(&self, epoch: u64) -> bool {
        let life = lock(&self.life);
        !life.attached && life.epoch == epoch
    }

    /// A new publisher takes over a stream in its grace: it gets the timeline that continues
    /// the last one's. None if the stream has a publisher, ended or was kicked.
    pub(super) fn take_over(&self, publisher: PublisherMeta) -> Option<Timeline> {
        let mut life = lock(&self.life);
        if life.attached || self.is_ended() || self.kick.is_cancelled() {
            return None;
        }
        let timeline = match life.left {
            Some((newest, at)) => Timeline::resume_from(newest, at),
            None => Timeline::default(),
        };
        life.publisher = publisher;
        life.attached = true;
        life.epoch += 1;
        life.takeovers += 1;
        Some(timeline)
    }

    /// The publisher's tracks changed (another publisher took over and its tracks are known):
    /// attached consumers decide their plans again.
    pub(super) fn sources_changed(&self) {
        self.sources.send_modify(|n| *n += 1);
    }

    /// Notified on [`Stream::sources_changed`] after this call.
    pub(super) fn watch_sources(&self) -> watch::Receiver<u64> {
        self.sources.subscribe()
    }

    pub fn video_info(&self) -> Option<Arc<TrackInfo>> {
        self.video.info()
    }

    pub fn audio_info(&self) -> Option<Arc<TrackInfo>> {
        self.audio.info()
    }

    pub fn source(&self, kind: TrackKind) -> &Arc<TrackOutput> {
        match kind {
            TrackKind::Video => &self.video,
            TrackKind::Audio => &self.audio,
        }
    }

    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }

    pub fn is_ended(&self) -> bool {
        self.ended.is_cancelled()
    }

    /// Asks the publisher for a keyframe (publishers that cannot be asked ignore it).
    pub fn request_keyframe(&self) {
        self.keyframe_requests.fetch_add(1, Ordering::Relaxed);
        self.keyframe_wanted.notify_one();
    }

    pub fn keyframe_requests(&self) -> u64 {
        self.keyframe_requests.load(Ordering::Relaxed)
    }

    /// Resolves when the API asks the publisher to disconnect.
    pub fn kicked(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.kick.cancelled()
    }

    /// Asks the publisher to disconnect; the stream ends at once, without a reconnect grace
    /// (also when it is in one).
    pub fn kick(&self) {
        self.kick.cancel();
    }

    /// Its consumers, but taps ([`super::TAP_TRANSPORT`]): viewers and outputs.
    pub fn consumers(&self) -> Vec<Arc<ConsumerMeta>> {
        let mut list: Vec<_> =
            lock(&self.consumers).values().filter(|c| c.transport != super::TAP_TRANSPORT).cloned().collect();
        list.sort_by_key(|c| c.id);
        list
    }

    pub fn conversions(&self) -> Vec<Arc<Conversion>> {
        let mut list: Vec<_> = lock(&self.conversions).values().cloned().collect();
        list.sort_by(|a, b| a.key.cmp(&b.key));
        list
    }

    /// Called on every source frame: the stream is ready for consumers once both tracks are
    /// known, or once one is and the other has not shown up for a while.
    pub(super) fn note_frame(&self) {
        if *self.ready.borrow() {
            return;
        }
        let both = self.video.info().is_some() && self.audio.info().is_some();
        let first = *lock(&self.first_frame).get_or_insert_with(Instant::now);
        if both || first.elapsed() >= SECOND_TRACK_WAIT {
            self.ready.send_replace(true);
        }
    }

    /// Waits until the stream's tracks are known (see `note_frame`); false on timeout or end.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut rx = self.ready.subscribe();
        let wait = async {
            loop {
                if *rx.borrow_and_update() {
                    return true;
                }
                tokio::select! {
                    r = rx.changed() => if r.is_err() { return false },
                    _ = self.ended.cancelled() => return false,
                    // A single-track stream becomes ready by time, not by a frame.
                    _ = tokio::time::sleep(Duration::from_millis(100)) => self.note_frame_if_started(),
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }

    fn note_frame_if_started(&self) {
        if lock(&self.first_frame).is_some() {
            self.note_frame();
        }
    }

    /// The publisher left: end consumers and stop conversions.
    pub(super) fn finish(&self) {
        self.ended.cancel();
        self.video.close();
        self.audio.close();
        let conversions: Vec<_> = lock(&self.conversions).drain().map(|(_, c)| c).collect();
        for c in conversions {
            c.stop();
        }
    }
}

pub(super) use crate::sync::lock;
