//! The live side of HLS: one packager per stream and variant, shared by all its HLS viewers.
//! A packager is one hub consumer (protocol `hls`, so the matrix decides what is copied and
//! what converted) feeding a segmenter; it starts on the first playlist request and stops
//! `hls.idle_seconds` after the last request, or when its stream ends.
//!
//! Requests read the segmenter under a short lock and wait on a version counter that moves
//! whenever a part or segment is added (blocking playlist reloads, preload-hinted parts).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::{watch, OnceCell};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::segmenter::{Segment, Segmenter};
use super::settings::HlsSettings;
use super::ts::TsSegmenter;
use crate::hub::{ConsumerRequest, Hub, HubError, StreamKey, Subscription};
use crate::media::{Frame, Protocol, TrackInfo, TrackKind};

/// The two ways a stream is packaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// fMP4 (CMAF) segments with LL-HLS parts.
    Fmp4,
    /// MPEG-TS segments, plain HLS, for old players.
    Ts,
}

impl Variant {
    fn transport(self) -> &'static str {
        match self {
            Variant::Fmp4 => "hls-fmp4",
            Variant::Ts => "hls-ts",
        }
    }
}

/// The segmenter of one variant.
pub enum Packaging {
    Fmp4(Segmenter),
    Ts(TsSegmenter),
}

impl Packaging {
    fn push(&mut self, frame: &Frame, now: SystemTime) -> Result<(), String> {
        match self {
            Packaging::Fmp4(s) => s.push(frame, now).map_err(|e| e.to_string()),
            Packaging::Ts(s) => s.push(frame, now).map_err(|e| e.to_string()),
        }
    }

    pub fn segments(&self) -> impl DoubleEndedIterator<Item = &Segment> + ExactSizeIterator {
        match self {
            Packaging::Fmp4(s) => s.segments().iter(),
            Packaging::Ts(s) => s.segments().iter(),
        }
    }

    pub fn segment(&self, msn: u64) -> Option<&Segment> {
        self.segments().find(|s| s.msn == msn)
    }

    /// The fMP4 init segment of this version (none for TS).
    pub fn init(&self, version: u32) -> Option<Bytes> {
        match self {
            Packaging::Fmp4(s) => s.init_of(version).cloned(),
            Packaging::Ts(_) => None,
        }
    }

    fn prepare(&mut self, infos: &[Arc<TrackInfo>]) -> Result<(), String> {
        match self {
            Packaging::Fmp4(s) => s.prepare(infos).map_err(|e| e.to_string()),
            Packaging::Ts(s) => s.prepare(infos).map_err(|e| e.to_string()),
        }
    }

    /// Where the newest media is: (msn of the last segment, its parts, whether complete).
    fn head(&self) -> Option<(u64, usize, bool)> {
        self.segments().next_back().map(|s| (s.msn, s.parts.len(), s.complete))
    }

    /// Whether segment `msn` has part `part` (or is complete, for `None`), or a later
    /// segment exists.
    pub fn has(&self, msn: u64, part: Option<usize>) -> bool {
        match self.head() {
            None => false,
            Some((last, parts, complete)) => {
                last > msn || (last == msn && part.map_or(complete, |p| p < parts || complete))
            }
        }
    }
}

/// What requests read: the segmenter, the tracks it is fed, whether the stream ended.
pub struct Packed {
    pub packaging: Packaging,
    pub video: Option<Arc<TrackInfo>>,
    pub audio: Option<Arc<TrackInfo>>,
    pub ended: bool,
    /// Bytes of media packaged, for the master playlist's BANDWIDTH.
    bytes: u64,
    first_dts: Option<i64>,
    last_dts: i64,
}

impl Packed {
    /// Bits per second of the media so far (0 before a second of it).
    pub fn bitrate(&self) -> u64 {
        let span = self.first_dts.map_or(0, |f| self.last_dts - f);
        if span < 1_000_000_000 {
            return 0;
        }
        (self.bytes as u128 * 8 * 1_000_000_000 / span as u128) as u64
    }
}

pub struct Packager {
    pub key: StreamKey,
    pub variant: Variant,
    /// A path segment unique to this packager, so a restarted stream's segments never share
    /// a URL (and a CDN cache entry) with an earlier one's.
    pub instance: String,
    state: Mutex<Packed>,
    version: watch::Sender<u64>,
    last_request: Mutex<Instant>,
    stopped: CancellationToken,
}

impl Packager {
    /// Reads the packaged state.
    pub fn read<R>(&self, f: impl FnOnce(&Packed) -> R) -> R {
        f(&self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Notes a request: the packager lives on `idle` after the last one.
    pub fn touch(&self) {
        *self.last_request.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Waits (at most `timeout`) until `ready` holds or the stream ended; the final answer
    /// of `ready`.
    pub async fn wait_until(&self, timeout: Duration, ready: impl Fn(&Packed) -> bool) -> bool {
        let mut changes = self.version.subscribe();
        let deadline = Instant::now() + timeout;
        loop {
            let (done, ended) = self.read(|p| (ready(p), p.ended));
            if done || ended {
                return done;
            }
            let changed = tokio::time::timeout_at(deadline, changes.changed()).await;
            self.touch();
            if !matches!(changed, Ok(Ok(()))) {
                return self.read(&ready);
            }
        }
    }

    fn idle_for(&self) -> Duration {
        self.last_request.lock().unwrap_or_else(|e| e.into_inner()).elapsed()
    }

    /// Feeds the subscription into the segmenter until the stream ends, the packager has
    /// been idle too long, or the gateway shuts down.
    async fn run(self: Arc<Self>, mut sub: Subscription, idle: Duration, shutdown: CancellationToken) {
        if !self.start_tracks(&mut sub, &shutdown).await {
            self.end();
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                frame = sub.next() => match frame {
                    Some(frame) => self.push(&frame),
                    None => {
                        tracing::info!(reason = ?sub.end_reason(), "the stream ended for the packager");
                        break;
                    }
                },
                // A request waiting on it (a blocking reload) counts as a request.
                _ = tick.tick() => if self.idle_for() > idle && self.version.receiver_count() == 0 {
                    tracing::info!("no HLS request for {idle:?}; packager stops");
                    break;
                },
                _ = shutdown.cancelled() => break,
            }
        }
        self.end();
    }

    fn end(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).ended = true;
        self.version.send_modify(|v| *v += 1);
        self.stopped.cancel();
    }

    /// Holds the first frames until every track of the subscription has shown one (at most
    /// [`START_WAIT`]: a video conversion's cached GOP comes at once while an audio one is
    /// still starting), declares the tracks, then packages what was held. False: the stream
    /// ended first.
    async fn start_tracks(&self, sub: &mut Subscription, shutdown: &CancellationToken) -> bool {
        let wanted = usize::from(sub.has_video()) + usize::from(sub.has_audio());
        let deadline = Instant::now() + START_WAIT;
        let mut held: Vec<Arc<Frame>> = Vec::new();
        let mut infos: Vec<Arc<TrackInfo>> = Vec::new();
        while infos.len() < wanted && held.len() < START_FRAMES {
            let frame = tokio::select! {
                frame = sub.next() => frame,
                _ = tokio::time::sleep_until(deadline) => break,
                _ = shutdown.cancelled() => None,
            };
            let Some(frame) = frame else { return false };
            if !infos.iter().any(|i| i.kind() == frame.kind()) {
                infos.push(frame.info.clone());
            }
            held.push(frame);
        }
        infos.sort_by_key(|i| i.kind().index());
        if let Err(e) = self.state.lock().unwrap_or_else(|e| e.into_inner()).packaging.prepare(&infos) {
            tracing::debug!(error = %e, "tracks not declared ahead");
        }
        for frame in &held {
            self.push(frame);
        }
        true
    }

    fn push(&self, frame: &Frame) {
        let moved = {
            let mut p = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let before = p.packaging.head();
            if let Err(e) = p.packaging.push(frame, SystemTime::now()) {
                tracing::debug!(error = %e, "frame not packaged");
                return;
            }
            match frame.kind() {
                TrackKind::Video => p.video = Some(frame.info.clone()),
                TrackKind::Audio => p.audio = Some(frame.info.clone()),
            }
            p.bytes += frame.data.len() as u64;
            let dts = frame.dts.as_nanos();
            p.first_dts.get_or_insert(dts);
            p.last_dts = p.last_dts.max(dts);
            p.packaging.head() != before
        };
        if moved {
            self.version.send_modify(|v| *v += 1);
        }
    }
}

/// How long a new packager waits for a frame of every track before it starts segments.
const START_WAIT: Duration = Duration::from_secs(3);
/// Frames it holds meanwhile at most.
const START_FRAMES: usize = 2000;

type Slot = Arc<OnceCell<Arc<Packager>>>;

/// Every running packager, by stream and variant.
#[derive(Clone)]
pub struct HlsOutputs {
    hub: Hub,
    settings: HlsSettings,
    shutdown: CancellationToken,
    running: Arc<Mutex<HashMap<(StreamKey, Variant), Slot>>>,
}

impl HlsOutputs {
    pub fn new(hub: Hub, settings: HlsSettings, shutdown: CancellationToken) -> HlsOutputs {
        HlsOutputs { hub, settings, shutdown, running: Arc::default() }
    }

    pub fn settings(&self) -> &HlsSettings {
        &self.settings
    }

    /// The running packager of `key` and `variant`, if any (segment requests never start one).
    pub fn running(&self, key: &StreamKey, variant: Variant) -> Option<Arc<Packager>> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let packager = running.get(&(key.clone(), variant))?.get()?.clone();
        (!packager.stopped.is_cancelled()).then_some(packager)
    }

    /// Media bytes served to HLS viewers (`interop_bytes_out_total{protocol="hls"}`).
    pub fn count_bytes_out(&self, n: usize) {
        self.hub.metrics().add_bytes_out(Protocol::Hls, n as u64);
    }

    /// How many packagers run (for `/metrics`).
    pub fn count(&self) -> usize {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).values().filter(|s| s.get().is_some()).count()
    }

    /// The packager of `key` and `variant`, started (as a hub consumer) if none runs.
    pub async fn get_or_start(&self, key: &StreamKey, variant: Variant) -> Result<Arc<Packager>, HubError> {
        loop {
            let slot: Slot = {
                let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
                running.entry((key.clone(), variant)).or_default().clone()
            };
            let started = slot.get_or_try_init(|| self.start(key, variant)).await;
            match started {
                Ok(p) if !p.stopped.is_cancelled() => return Ok(p.clone()),
                Ok(_) => {
                    // Stopped since: make way for a new one.
                    self.forget(key, variant, &slot);
                }
                Err(e) => {
                    self.forget(key, variant, &slot);
                    return Err(e);
                }
            }
        }
    }

    fn forget(&self, key: &StreamKey, variant: Variant, slot: &Slot) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.get(&(key.clone(), variant)).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            running.remove(&(key.clone(), variant));
        }
    }

    async fn start(&self, key: &StreamKey, variant: Variant) -> Result<Arc<Packager>, HubError> {
        let who = ConsumerRequest { protocol: Protocol::Hls, transport: variant.transport().into(), remote: None };
        let sub = self.hub.subscribe(key, who).await?;
        let config = self.settings.segmenter();
        let packaging = match variant {
            Variant::Fmp4 => Packaging::Fmp4(Segmenter::new(config)),
            Variant::Ts => Packaging::Ts(TsSegmenter::new(config)),
        };
        let packager = Arc::new(Packager {
            key: key.clone(),
            variant,
            instance: format!("{:08x}", rand::random::<u32>()),
            state: Mutex::new(Packed {
                packaging,
                video: None,
                audio: None,
                ended: false,
                bytes: 0,
                first_dts: None,
                last_dts: 0,
            }),
            version: watch::channel(0).0,
            last_request: Mutex::new(Instant::now()),
            stopped: CancellationToken::new(),
        });
        let span = tracing::info_span!("hls", stream = %key, protocol = "hls", variant = variant.transport());
        let this = self.clone();
        let run = packager.clone();
        let (idle, shutdown) = (self.settings.idle(), self.shutdown.clone());
        let (key, slot_key) = (key.clone(), variant);
        tokio::spawn(
            async move {
                tracing::info!("packager starts");
                run.run(sub, idle, shutdown).await;
                let mut running = this.running.lock().unwrap_or_else(|e| e.into_inner());
                if running.get(&(key.clone(), slot_key)).and_then(|s| s.get()).is_some_and(|p| p.stopped.is_cancelled())
                {
                    running.remove(&(key, slot_key));
                }
                tracing::info!("packager stopped");
            }
            .instrument(span),
        );
        Ok(packager)
    }
}
