//! The publisher's handle on its stream: frames in; when it is dropped the stream waits the
//! reconnect grace for another publisher, then ends (at once when kicked).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::h264_gate::H264Gate;
use super::metrics::Metrics;
use super::stream::Stream;
use super::timeline::Timeline;
use super::Hub;
use crate::media::{Frame, Protocol, TrackKind};

pub struct Publisher {
    pub(super) hub: Hub,
    pub(super) stream: Arc<Stream>,
    pub(super) timeline: Timeline,
    pub(super) protocol: Protocol,
    /// A publisher that took a stream over sends no video until its first keyframe: the
    /// consumers' decoders have nothing its other frames refer to.
    pub(super) awaiting_keyframe: bool,
    /// When the newest frame came (where a reconnect gap starts).
    pub(super) last_frame_at: Option<Instant>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) h264: H264Gate,
    /// A publisher that took a stream over: which of its tracks came yet. Once both have (or
    /// one has for [`SETTLE_WAIT`]) the stream's consumers re-plan from its tracks.
    pub(super) settling: Option<Settling>,
    /// The claim on the key (cluster-wide in a cluster), given back when the publisher leaves.
    pub(super) claim: Option<super::Claim>,
    /// A relay from another node (no publish hooks: that node tells them).
    pub(super) relayed: bool,
}

/// How long a takeover's second track is waited for before consumers re-plan without it.
const SETTLE_WAIT: Duration = Duration::from_millis(1500);

#[derive(Debug, Default)]
pub(super) struct Settling {
    video: bool,
    audio: bool,
    since: Option<Instant>,
}

impl Settling {
    /// Notes a frame of `kind`; true when the publisher's tracks are known.
    fn settled(&mut self, kind: TrackKind) -> bool {
        match kind {
            TrackKind::Video => self.video = true,
            TrackKind::Audio => self.audio = true,
        }
        let since = *self.since.get_or_insert_with(Instant::now);
        (self.video && self.audio) || since.elapsed() >= SETTLE_WAIT
    }
}

impl Publisher {
    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    /// Publishes one frame (timestamps mapped onto the stream's timeline). Never blocks.
    /// H.264 passes the [`H264Gate`] first: what our own parsers refuse never gets further.
    pub fn push(&mut self, frame: Frame) {
        let (frame, refused) = self.h264.admit(frame);
        if refused > 0 {
            self.metrics.note_h264_refused(self.protocol, refused as u64);
        }
        let Some(frame) = frame else { return };
        if self.awaiting_keyframe && frame.kind() == TrackKind::Video {
            if !frame.keyframe {
                return;
            }
            self.awaiting_keyframe = false;
        }
        let (dts, pts) = self.timeline.map(frame.kind(), frame.dts, frame.pts);
        self.last_frame_at = Some(Instant::now());
        let frame = Frame::new(frame.info, dts, pts, frame.keyframe, frame.data);
        let kind = frame.kind();
        self.stream.source(kind).push(Arc::new(frame));
        self.stream.note_frame();
        if self.settling.as_mut().is_some_and(|s| s.settled(kind)) {
            self.settling = None;
            tracing::debug!(stream = %self.stream.key, "the new publisher's tracks are known; consumers re-plan");
            self.stream.sources_changed();
        }
    }

    /// Publishes a frame made elsewhere (e.g. by an ingest demuxer that returns `Arc`s).
    pub fn push_arc(&mut self, frame: Arc<Frame>) {
        match Arc::try_unwrap(frame) {
            Ok(frame) => self.push(frame),
            Err(shared) => {
                let copy =
                    Frame::new(shared.info.clone(), shared.dts, shared.pts, shared.keyframe, shared.data.clone());
                self.push(copy)
            }
        }
    }

    /// Counts RTP packets whose payload header was refused before their depayloader.
    pub fn note_rtp_payload_refused(&self, n: u64) {
        self.metrics.note_rtp_payload_refused(self.protocol, n);
    }

    /// Counts H.264 refused before it reached the hub (e.g. RTP packets an ingest emptied).
    pub fn note_h264_refused(&self, n: u64) {
        self.metrics.note_h264_refused(self.protocol, n);
    }

    /// Counts bytes received from the publisher (metrics).
    pub fn add_bytes_in(&self, n: usize) {
        self.stream.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        self.metrics.add_bytes_in(self.protocol, n as u64);
    }

    /// Resolves when a consumer asks for a keyframe (see `Stream::request_keyframe`).
    pub async fn keyframe_requested(&self) {
        self.stream.keyframe_wanted.notified().await
    }

    /// Resolves when the API asks this publisher to disconnect.
    pub async fn kicked(&self) {
        self.stream.kick.cancelled().await
    }

    /// [`kicked`](Self::kicked) as one future a receive loop keeps across its turns (not
    /// registered again on every packet).
    pub fn kicked_owned(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.stream.kick.clone().cancelled_owned()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if !self.relayed {
            let remote = self.stream.publisher().remote;
            self.hub.observer().notify(
                super::observer::Activity::Unpublish,
                self.protocol,
                &self.stream.key,
                remote.as_deref(),
            );
        }
        self.hub.publisher_left(&self.stream, self.timeline.newest(), self.last_frame_at);
        // Given back after the stream went into its grace: a publisher may continue it here
        // or on any other node.
        drop(self.claim.take());
    }
}
