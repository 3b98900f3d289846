//! The stream hub: one publisher per stream key; consumers of any protocol attach and leave
//! at any time. A conversion is built the first time a consumer needs it, shared by all that
//! need the same output, and torn down a grace period after the last one leaves.

mod conversion;
pub mod egress;
mod h264_gate;
pub mod held;
mod key;
mod lease;
mod metrics;
pub mod observer;
pub mod outbox;
mod publisher;
pub mod remote;
mod replan;
mod stream;
mod subscription;
mod timeline;
mod track;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

pub use conversion::{Conversion, ConversionKey};
pub use key::{InvalidStreamKey, SessionId, StreamKey};
pub use lease::ConsumerLease;
pub use metrics::Metrics;
pub use publisher::Publisher;
pub use remote::{Claim, ClaimError, Remote, RELAY_TRANSPORT};
pub use replan::{decide as decide_replan, PlanInputs, Replan};
pub use stream::{ConsumerMeta, PublisherMeta, Stream};
pub use subscription::{Batching, EndReason, Subscription};
pub use timeline::Timeline;
pub use track::{CacheLimits, TrackJoin, TrackOutput};

use crate::matrix::{self, Leg, Matrix, Plan, PlanError, Source, SourceTrack};
use crate::media::{Protocol, TrackInfo, TrackKind, Ts};
use crate::pipeline::Pipelines;
use stream::lock;

/// How long a new consumer waits for a conversion it just started (or joined) to produce.
const CONVERSION_START_WAIT: Duration = Duration::from_secs(3);
/// A conversion's pipeline that takes longer than this to build and start is logged.
const SLOW_PIPELINE_START: Duration = Duration::from_millis(250);
/// A converted audio output is caught up with its source this close to it (an encoder holds
/// back a frame or two).
const AUDIO_CATCH_UP_SLACK: crate::media::Ts = crate::media::Ts(300_000_000);

#[derive(Debug, Clone)]
pub struct HubConfig {
    /// How long an unused conversion lives on (a viewer that reconnects reuses it).
    pub grace: Duration,
    pub limits: CacheLimits,
    /// Times a consumer may fall behind (and skip to a keyframe) before it is disconnected.
    pub max_lag_events: u32,
    /// How long a consumer waits for a just-started stream's tracks to be known.
    pub ready_timeout: Duration,
    /// How long a stream whose publisher left keeps its consumers, waiting for a publisher
    /// (of any protocol) to continue it (ZLMediaKit's `continue_push_ms`); zero: it ends at once.
    pub reconnect_grace: Duration,
    /// A viewer whose output takes nothing for this long is disconnected (see [`egress`]).
    pub write_stall: Duration,
    /// Streams with a publisher at once; a new one past it is refused (0: no limit).
    pub max_publishers: usize,
    /// How HTTP-FLV and RTMP viewers gather frames into writes.
    pub batching: Batching,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            grace: Duration::from_secs(5),
            limits: CacheLimits::default(),
            max_lag_events: 5,
            ready_timeout: Duration::from_secs(10),
            reconnect_grace: Duration::from_secs(10),
            write_stall: egress::WRITE_STALL,
            batching: Batching::default(),
            max_publishers: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("stream `{0}` is not live")]
    NotFound(StreamKey),
    #[error("stream `{0}` already has a publisher")]
    AlreadyPublishing(StreamKey),
    #[error("stream `{0}` has no media yet")]
    NotReady(StreamKey),
    #[error("stream `{0}` refused: the gateway already has its maximum of {1} publishers (limits.max_publishers)")]
    TooManyPublishers(StreamKey, usize),
    #[error("stream `{0}` already has a publisher: {1}")]
    ClaimedElsewhere(StreamKey, ClaimError),
    #[error("stream `{0}` refused: {1}")]
    ClusterUnavailable(StreamKey, ClaimError),
    #[error("stream `{key}`: {source}")]
    Plan { key: StreamKey, source: PlanError },
    #[error("stream `{key}`: cannot convert {track} {from}->{to}: {reason}")]
    Conversion { key: StreamKey, track: TrackKind, from: String, to: String, reason: String },
}

/// The transport of a tap: a consumer that only keeps what passes (the clip window), not
/// listed among a stream's consumers (the API, `/metrics`, a cluster relay's idle check).
pub const TAP_TRANSPORT: &str = "clip-window";

/// Who is asking to consume.
#[derive(Debug, Clone)]
pub struct ConsumerRequest {
    pub protocol: Protocol,
    pub transport: String,
    pub remote: Option<String>,
}

#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    streams: Mutex<HashMap<StreamKey, Arc<Stream>>>,
    matrix: RwLock<Arc<Matrix>>,
    pipelines: RwLock<Arc<Pipelines>>,
    config: HubConfig,
    metrics: Arc<Metrics>,
    published: Notify,
    generation: AtomicU64,
    observer: observer::ObserverSlot,
    remote: remote::RemoteSlot,
}

impl Hub {
    pub fn new(matrix: Matrix, pipelines: Pipelines, config: HubConfig) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                streams: Mutex::new(HashMap::new()),
                matrix: RwLock::new(Arc::new(matrix)),
                pipelines: RwLock::new(Arc::new(pipelines)),
                config,
                metrics: Arc::new(Metrics::default()),
                published: Notify::new(),
                generation: AtomicU64::new(0),
                observer: observer::ObserverSlot::default(),
                remote: remote::RemoteSlot::default(),
            }),
        }
    }

    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Tells `observer` of every publish, unpublish, play and stop from now on (set once).
    pub fn set_observer(&self, observer: Arc<dyn observer::Observer>) {
        self.inner.observer.set(observer);
    }

    pub(crate) fn observer(&self) -> &observer::ObserverSlot {
        &self.inner.observer
    }

    /// Makes this hub one node of a cluster (set once): publishers claim their keys through
    /// `remote`, and viewers of a key published elsewhere get it relayed here.
    pub fn set_remote(&self, remote: Arc<dyn Remote>) {
        self.inner.remote.set(remote);
    }

    /// Claims `key` for a publisher arriving from outside. In a cluster the claim is
    /// cluster-wide: refused while another node's publisher holds the key, or while the
    /// cluster's store cannot be asked. On one node it only checks the key is free here.
    pub async fn claim(&self, key: &StreamKey) -> Result<Claim, HubError> {
        // Live here already (published or relayed): refused at once, as on one node.
        if self.stream(key).is_some_and(|s| !s.is_reconnecting()) {
            self.inner.metrics.note_publish_refused();
            return Err(HubError::AlreadyPublishing(key.clone()));
        }
        let Some(cluster) = self.inner.remote.get().cloned() else {
            return Ok(Claim { key: key.clone(), cluster: None });
        };
        match cluster.claim(key).await {
            Ok(()) => Ok(Claim { key: key.clone(), cluster: Some(cluster) }),
            Err(e) => {
                self.inner.metrics.note_publish_refused();
                Err(match e {
                    ClaimError::Taken(_) => HubError::ClaimedElsewhere(key.clone(), e),
                    ClaimError::Unavailable(_) => HubError::ClusterUnavailable(key.clone(), e),
                })
            }
        }
    }

    /// [`Hub::publish`] with a claim from [`Hub::claim`]: the publisher holds it until it
    /// leaves (a refused publish gives it back at once).
    pub fn publish_claimed(
        &self,
        claim: Claim,
        protocol: Protocol,
        transport: &str,
        remote: Option<String>,
    ) -> Result<Publisher, HubError> {
        let mut publisher = self.publish(claim.key.clone(), protocol, transport, remote)?;
        publisher.claim = Some(claim);
        Ok(publisher)
    }

    /// [`Hub::claim`] then [`Hub::publish_claimed`]: how every way in publishes.
    pub async fn claim_and_publish(
        &self,
        key: StreamKey,
        protocol: Protocol,
        transport: &str,
        remote: Option<String>,
    ) -> Result<Publisher, HubError> {
        let claim = self.claim(&key).await?;
        self.publish_claimed(claim, protocol, transport, remote)
    }

    /// The stream of `key` here, or, in a cluster, brought here from the node that publishes
    /// it (one relay per key, shared by this node's viewers).
    pub async fn find(&self, key: &StreamKey) -> Option<Arc<Stream>> {
        if let Some(stream) = self.stream(key) {
            return Some(stream);
        }
        let cluster = self.inner.remote.get()?.clone();
        if cluster.fetch(key).await {
            self.stream(key)
        } else {
            None
        }
    }

    /// The matrix new sessions are planned with.
    pub fn matrix(&self) -> Arc<Matrix> {
        self.inner.matrix.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn pipelines(&self) -> Arc<Pipelines> {
        self.inner.pipelines.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Swaps in a new matrix (and fragments) for new sessions; running ones keep theirs.
    pub fn replace_matrix(&self, matrix: Matrix, pipelines: Pipelines) {
        *self.inner.matrix.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(matrix);
        *self.inner.pipelines.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pipelines);
        self.inner.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// How many times the matrix was replaced since start.
    pub fn matrix_generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Relaxed)
    }

    /// Makes `key` live with this publisher; a second publisher on a live key is refused. A
    /// stream whose publisher left within the reconnect grace is continued by this one: its
    /// consumers and conversions stay, and its timeline goes on after the gap.
    pub fn publish(
        &self,
        key: StreamKey,
        protocol: Protocol,
        transport: &str,
        remote: Option<String>,
    ) -> Result<Publisher, HubError> {
        let meta = PublisherMeta {
            id: SessionId::next(),
            protocol,
            transport: transport.to_string(),
            remote: remote.clone(),
            started: SystemTime::now(),
        };
        let (stream, timeline, took_over) = {
            let mut streams = lock(&self.inner.streams);
            let existing = streams.get(&key).cloned();
            let continued = existing.as_ref().and_then(|s| Some((s.clone(), s.take_over(meta.clone())?)));
            match (existing, continued) {
                (_, Some((stream, timeline))) => (stream, timeline, true),
                // Kicked in its grace: it ends now, and this publisher starts a new stream.
                (Some(old), None) if old.is_reconnecting() && old.kick.is_cancelled() => {
                    streams.remove(&key);
                    old.finish();
                    (self.insert_stream(&mut streams, key.clone(), meta), Timeline::default(), false)
                }
                (Some(_), None) => {
                    self.inner.metrics.note_publish_refused();
                    return Err(HubError::AlreadyPublishing(key));
                }
                (None, _) => {
                    let cap = self.inner.config.max_publishers;
                    if cap > 0 && streams.len() >= cap {
                        self.inner.metrics.note_publish_refused();
                        return Err(HubError::TooManyPublishers(key, cap));
                    }
                    (self.insert_stream(&mut streams, key.clone(), meta), Timeline::default(), false)
                }
            }
        };
        if took_over {
            // Viewers continue from the new publisher's first keyframe, and converted video
            // from a fresh keyframe of its encoder (a WHEP viewer decodes again at once). Its
            // protocol may differ and its codecs are only known from its first frames: once
            // they are, every consumer decides its plan again (`replan`, `Publisher::settling`).
            stream.request_keyframe();
            for conversion in stream.conversions() {
                conversion.request_keyframe();
            }
            tracing::info!(stream = %key, %protocol, transport, takeovers = stream.takeovers(), "publisher reconnected; stream continues");
        } else {
            tracing::info!(stream = %key, %protocol, transport, "stream published");
        }
        self.inner.published.notify_waiters();
        // A relay from another node is not a publish: the hooks hear it on that node.
        let relayed = transport == RELAY_TRANSPORT;
        if !relayed {
            self.inner.observer.notify(observer::Activity::Publish, protocol, &key, remote.as_deref());
        }
        Ok(Publisher {
            hub: self.clone(),
            stream,
            timeline,
            protocol,
            awaiting_keyframe: took_over,
            last_frame_at: None,
            metrics: self.inner.metrics.clone(),
            h264: Default::default(),
            settling: took_over.then(Default::default),
            claim: None,
            relayed,
        })
    }

    fn insert_stream(
        &self,
        streams: &mut HashMap<StreamKey, Arc<Stream>>,
        key: StreamKey,
        meta: PublisherMeta,
    ) -> Arc<Stream> {
        let stream = Arc::new(Stream::new(key.clone(), meta, self.inner.config.limits));
        streams.insert(key, stream.clone());
        stream
    }

    pub(crate) fn remove_stream(&self, stream: &Arc<Stream>) {
        let mut streams = lock(&self.inner.streams);
        if streams.get(&stream.key).is_some_and(|s| Arc::ptr_eq(s, stream)) {
            streams.remove(&stream.key);
        }
    }

    /// The publisher left, its timeline ending at `newest` (a frame that came at `at`): the
    /// stream waits the reconnect grace for another, unless it was kicked (API, shutdown) or
    /// there is no grace.
    pub(crate) fn publisher_left(&self, stream: &Arc<Stream>, newest: Option<Ts>, at: Option<std::time::Instant>) {
        let grace = self.inner.config.reconnect_grace;
        let runtime = tokio::runtime::Handle::try_current();
        let runtime = match runtime {
            Ok(handle) if !grace.is_zero() && !stream.kick.is_cancelled() && !stream.is_ended() => handle,
            _ => return self.end_stream(stream),
        };
        let epoch = stream.detach(newest, at);
        tracing::info!(stream = %stream.key, grace = ?grace, "publisher left; consumers wait for it to reconnect");
        let (hub, stream) = (self.clone(), stream.clone());
        runtime.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(grace) => {}
                _ = stream.kick.cancelled() => {}
            }
            let mut streams = lock(&hub.inner.streams);
            if !stream.idle_since(epoch) {
                return;
            }
            if streams.get(&stream.key).is_some_and(|s| Arc::ptr_eq(s, &stream)) {
                streams.remove(&stream.key);
            }
            drop(streams);
            stream.finish();
            tracing::info!(stream = %stream.key, "no publisher within the reconnect grace; stream ended");
        });
    }

    fn end_stream(&self, stream: &Arc<Stream>) {
        self.remove_stream(stream);
        stream.finish();
        tracing::info!(stream = %stream.key, protocol = %stream.publisher().protocol, "stream ended");
    }

    pub fn stream(&self, key: &StreamKey) -> Option<Arc<Stream>> {
        lock(&self.inner.streams).get(key).cloned()
    }

    pub fn streams(&self) -> Vec<Arc<Stream>> {
        let mut list: Vec<_> = lock(&self.inner.streams).values().cloned().collect();
        list.sort_by(|a, b| a.key.cmp(&b.key));
        list
    }

    /// Waits until `key` is live (returns at once if it is).
    pub async fn wait_for_stream(&self, key: &StreamKey) -> Arc<Stream> {
        loop {
            let notified = self.inner.published.notified();
            if let Some(stream) = self.stream(key) {
                return stream;
            }
            notified.await;
        }
    }

    /// Waits until `key` is published on this node, not relayed from another.
    pub async fn wait_for_published(&self, key: &StreamKey) -> Arc<Stream> {
        loop {
            let stream = self.wait_for_stream(key).await;
            if !stream.is_relayed() {
                return stream;
            }
            // A local publisher may take a relayed stream over: looked at again each second.
            tokio::select! {
                _ = stream.ended.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// What a consumer of `protocol` would get from this stream now.
    pub fn plan_for(&self, stream: &Stream, protocol: Protocol) -> Result<Plan, HubError> {
        let source = source_of(stream);
        matrix::plan(&self.matrix(), stream.publisher().protocol, &source, protocol)
            .map_err(|source| HubError::Plan { key: stream.key.clone(), source })
    }

    /// Attaches a consumer: plans its tracks from the matrix, joins (or starts) the outputs
    /// it needs, and returns its subscription starting at the cached GOP.
    pub async fn subscribe(&self, key: &StreamKey, who: ConsumerRequest) -> Result<Subscription, HubError> {
        self.attach(key, who, false).await
    }

    /// Attaches a relay to another node: every source track as it is (the matrix plans on
    /// the node that serves the viewers), never converted, on this node's stream only.
    pub async fn subscribe_relay(&self, key: &StreamKey, node: &str) -> Result<Subscription, HubError> {
        let stream = self.stream(key).ok_or_else(|| HubError::NotFound(key.clone()))?;
        let who = ConsumerRequest {
            protocol: stream.publisher().protocol,
            transport: RELAY_TRANSPORT.to_string(),
            remote: Some(node.to_string()),
        };
        self.attach(key, who, true).await
    }

    async fn attach(&self, key: &StreamKey, who: ConsumerRequest, relay: bool) -> Result<Subscription, HubError> {
        let stream = if relay { self.stream(key) } else { self.find(key).await };
        let stream = stream.ok_or_else(|| HubError::NotFound(key.clone()))?;
        // Watched before planning: a takeover that settles from here on re-plans this consumer.
        let sources = stream.watch_sources();
        if !stream.wait_ready(self.inner.config.ready_timeout).await {
            return Err(if stream.is_ended() {
                HubError::NotFound(key.clone())
            } else {
                HubError::NotReady(key.clone())
            });
        }
        let inputs = PlanInputs::of(&stream);
        let plan = if relay { copy_plan(&stream) } else { self.plan_for(&stream, who.protocol)? };
        let meta = Arc::new(ConsumerMeta {
            id: SessionId::next(),
            protocol: who.protocol,
            transport: who.transport,
            remote: who.remote,
            started: SystemTime::now(),
            bytes_out: AtomicU64::new(0),
        });
        let mut lease = ConsumerLease {
            stream: stream.clone(),
            meta: meta.clone(),
            conversions: Vec::new(),
            grace: self.inner.config.grace,
            metrics: self.inner.metrics.clone(),
            observer: self.inner.observer.clone(),
            unreported: Default::default(),
        };
        let video = self.leg_output(&stream, TrackKind::Video, plan.video.as_ref(), &mut lease)?;
        let audio = self.leg_output(&stream, TrackKind::Audio, plan.audio.as_ref(), &mut lease)?;
        // What a viewer is told at its start names every track it will get, and its tracks
        // start together: a conversion that has just started is waited for (bounded) before
        // joining, so its first output (codec configuration) and the cached frames it was fed
        // are in the backlog rather than arriving seconds behind the other track.
        for conversion in &lease.conversions {
            let caught_up = match conversion.key.track {
                // A converted picture only needs its first (key)frame: the rest flows live.
                TrackKind::Video => conversion.output.wait_for(CONVERSION_START_WAIT, |n| n.is_some()).await,
                TrackKind::Audio => conversion.wait_caught_up(AUDIO_CATCH_UP_SLACK, CONVERSION_START_WAIT).await,
            };
            if !caught_up {
                tracing::debug!(stream = %key, track = %conversion.key.track, "conversion output not there in time; joining anyway");
            }
        }
        let mut replanner =
            replan::Replanner { hub: self.clone(), inputs, video: video.clone(), audio: audio.clone(), sources };
        let video = video.and_then(|o| o.join());
        let mut audio = audio.and_then(|o| o.join());
        if audio.is_none() && awaits_late_audio(&stream) {
            // WeChat's live-pusher often starts its audio seconds after video: keep the
            // consumer on the source audio so it flows (on the same timeline) once it starts.
            audio = stream.source(TrackKind::Audio).join();
            replanner.audio = Some(stream.source(TrackKind::Audio).clone());
        }
        lock(&stream.consumers).insert(meta.id, meta.clone());
        tracing::info!(stream = %key, protocol = %meta.protocol, transport = %meta.transport, consumer = %meta.id, "consumer attached");
        if !relay {
            self.inner.observer.notify(observer::Activity::Play, meta.protocol, key, meta.remote.as_deref());
        }
        let mut sub = Subscription::new(plan, video, audio, self.inner.config.max_lag_events, lease);
        // A relay ends when its stream's publisher changes (see `crate::cluster::relay`).
        sub.replanner = (!relay).then_some(replanner);
        // A new viewer starts from the cached GOP, and a fresh keyframe shortens the wait of
        // the next one (and of a WebRTC publisher's long GOPs).
        sub.request_keyframe();
        Ok(sub)
    }

    /// The output a leg is served from: the source track, or a conversion (started if needed).
    pub(super) fn leg_output(
        &self,
        stream: &Arc<Stream>,
        track: TrackKind,
        leg: Option<&Leg>,
        lease: &mut ConsumerLease,
    ) -> Result<Option<Arc<TrackOutput>>, HubError> {
        let Some(leg) = leg else { return Ok(None) };
        let output = match leg {
            Leg::Copy { .. } => stream.source(track).clone(),
            Leg::Convert { from, to, reason } => {
                let conversion = self.conversion(stream, track, *from, *to, *reason, lease.meta.protocol)?;
                let output = conversion.output.clone();
                lease.conversions.push(conversion);
                output
            }
        };
        Ok(Some(output))
    }

    /// Gets the running conversion for this output, or starts it; counts one more consumer.
    fn conversion(
        &self,
        stream: &Arc<Stream>,
        track: TrackKind,
        from: crate::media::Codec,
        to: crate::media::Codec,
        reason: matrix::Reason,
        consumer: Protocol,
    ) -> Result<Arc<Conversion>, HubError> {
        let matrix = self.matrix();
        // Conversions are shared per output: consumers whose pairs give the same parameters
        // share one; different parameters (e.g. a scaled size) make another.
        let params = matrix.params(stream.publisher().protocol, consumer);
        let key = ConversionKey {
            track,
            from,
            to,
            params: params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
        };
        let mut conversions = lock(&stream.conversions);
        if let Some(existing) = conversions.get(&key).filter(|c| !c.output.is_closed()) {
            existing.consumers.fetch_add(1, Ordering::AcqRel);
            return Ok(existing.clone());
        }
        let fail = |reason: String| HubError::Conversion {
            key: stream.key.clone(),
            track,
            from: from.to_string(),
            to: to.to_string(),
            reason,
        };
        let source_info =
            stream.source(track).info().ok_or_else(|| fail("the source track has no media yet".into()))?;
        let description = self.pipelines().conversion(from, to, params).map_err(|e| fail(e.to_string()))?;
        // Converted audio starts where the stream's cached GOP does, as the video of every
        // consumer does, not seconds earlier (the audio cache holds `audio_window`).
        let start = match track {
            TrackKind::Audio => stream.source(TrackKind::Video).gop_start(),
            TrackKind::Video => None,
        };
        // Built and started on this (runtime) thread, under the stream's conversions lock: a
        // slow start holds both, so it is logged (see `crate::watchdog` for the runtime's view).
        let started = std::time::Instant::now();
        let conversion = Conversion::start(
            key.clone(),
            reason,
            description,
            stream.source(track).clone(),
            source_info,
            start,
            self.inner.config.limits,
            stream.key.as_str(),
        )
        .map_err(|e| fail(e.to_string()))?;
        let took = started.elapsed();
        if took > SLOW_PIPELINE_START {
            tracing::warn!(stream = %stream.key, %track, %from, %to, took_ms = took.as_millis() as u64,
                "a conversion's pipeline was slow to start");
        }
        conversion.consumers.fetch_add(1, Ordering::AcqRel);
        conversions.insert(key, conversion.clone());
        Ok(conversion)
    }
}

/// Every source track copied: what a relay to another node carries.
fn copy_plan(stream: &Stream) -> Plan {
    let protocol = stream.publisher().protocol;
    let copy = |info: Option<Arc<TrackInfo>>| info.map(|i| Leg::Copy { codec: i.codec() });
    Plan { from: protocol, to: protocol, video: copy(stream.video_info()), audio: copy(stream.audio_info()) }
}

/// A mini-program publisher with no audio yet is expected to start it late.
fn awaits_late_audio(stream: &Stream) -> bool {
    stream.publisher().protocol == Protocol::Miniprogram && stream.audio_info().is_none()
}

/// The planner's view of a stream's real tracks: codecs, B-frames, the keyframe interval
/// measured so far, and whether its publisher makes keyframes on request (WebRTC).
pub fn source_of(stream: &Stream) -> Source {
    let track = |info: Option<Arc<TrackInfo>>| info.map(|i| SourceTrack::new(i.codec()));
    let mut source = Source { video: track(stream.video_info()), audio: track(stream.audio_info()) };
    if let (Some(v), Some(info)) = (source.video.as_mut(), stream.video_info()) {
        v.bframes = matches!(info.as_ref(), TrackInfo::Video(i) if i.bframes);
        v.keyframe_interval_ms =
            stream.source(TrackKind::Video).keyframe_interval().map(|t| t.as_millis().clamp(0, u32::MAX as i64) as u32);
        v.keyframes_on_request = stream.publisher().protocol == Protocol::Webrtc;
    }
    source
}
