//! The publisher's handle on its stream: frames in, and the stream ends when it is dropped.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::h264_gate::H264Gate;
use super::metrics::Metrics;
use super::stream::Stream;
use super::timeline::Timeline;
use super::Hub;
use crate::media::Frame;

pub struct Publisher {
    pub(super) hub: Hub,
    pub(super) stream: Arc<Stream>,
    pub(super) timeline: Timeline,
    pub(super) metrics: Arc<Metrics>,
    pub(super) h264: H264Gate,
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
            self.metrics.note_h264_refused(self.stream.publisher.protocol, refused as u64);
        }
        let Some(frame) = frame else { return };
        let (dts, pts) = self.timeline.map(frame.kind(), frame.dts, frame.pts);
        let frame = Frame::new(frame.info, dts, pts, frame.keyframe, frame.data);
        self.stream.source(frame.kind()).push(Arc::new(frame));
        self.stream.note_frame();
    }

    /// Publishes a frame made elsewhere (e.g. by an ingest demuxer that returns `Arc`s).
    pub fn push_arc(&mut self, frame: Arc<Frame>) {
        match Arc::try_unwrap(frame) {
            Ok(frame) => self.push(frame),
            Err(shared) => {
                let copy = Frame::new(shared.info.clone(), shared.dts, shared.pts, shared.keyframe, shared.data.clone());
                self.push(copy)
            }
        }
    }

    /// Counts H.264 refused before it reached the hub (e.g. RTP packets an ingest emptied).
    pub fn note_h264_refused(&self, n: u64) {
        self.metrics.note_h264_refused(self.stream.publisher.protocol, n);
    }

    /// Counts bytes received from the publisher (metrics).
    pub fn add_bytes_in(&self, n: usize) {
        self.stream.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        self.metrics.add_bytes_in(self.stream.publisher.protocol, n as u64);
    }

    /// Resolves when a consumer asks for a keyframe (see `Stream::request_keyframe`).
    pub async fn keyframe_requested(&self) {
        self.stream.keyframe_wanted.notified().await
    }

    /// Resolves when the API asks this publisher to disconnect.
    pub async fn kicked(&self) {
        self.stream.kick.cancelled().await
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.hub.remove_stream(&self.stream);
        self.stream.finish();
        tracing::info!(stream = %self.stream.key, protocol = %self.stream.publisher.protocol, "stream ended");
    }
}
