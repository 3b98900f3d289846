//! One running conversion of one track of a stream (e.g. audio opus→aac), shared by every
//! consumer that needs that output. Built on the first such consumer, stopped a grace period
//! after the last one leaves.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::track::{CacheLimits, TrackOutput};
use crate::matrix::Reason;
use crate::media::{Codec, Frame, TrackInfo, TrackKind, Ts};
use crate::pipeline::{KeyframeRequester, TranscodeError, TranscodeSink, Transcoder};

/// Bytes an input may queue ahead of a conversion before the feeder skips to a keyframe.
const MAX_QUEUED_BYTES: u64 = 8 * 1024 * 1024;

/// What makes two consumers' needs the same conversion.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConversionKey {
    pub track: TrackKind,
    pub from: Codec,
    pub to: Codec,
    /// The pipeline parameters, rendered `k=v,k=v` (sorted).
    pub params: String,
}

pub struct Conversion {
    pub key: ConversionKey,
    pub reason: Reason,
    pub description: String,
    pub started: SystemTime,
    pub output: Arc<TrackOutput>,
    pub(super) consumers: AtomicUsize,
    frames_in: Arc<AtomicU64>,
    frames_out: Arc<AtomicU64>,
    error: Arc<Mutex<Option<String>>>,
    stop: CancellationToken,
    keyframes: KeyframeRequester,
    /// The dts of the last cached source frame fed at the start: the output has caught up
    /// with the source once it gets near it (see [`Conversion::wait_caught_up`]).
    primed_until: Option<Ts>,
}

impl Conversion {
    /// Starts the pipeline and the task that feeds it from `source`: the source's cached
    /// frames from `start` on (all of them without), then live. `frames_in` counts both.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        key: ConversionKey,
        reason: Reason,
        description: String,
        source: Arc<TrackOutput>,
        source_info: Arc<TrackInfo>,
        start: Option<Ts>,
        limits: CacheLimits,
        stream: &str,
    ) -> Result<Arc<Conversion>, TranscodeError> {
        let output = Arc::new(TrackOutput::new(key.track, limits));
        let stop = CancellationToken::new();
        let error = Arc::new(Mutex::new(None));
        let frames_out = Arc::new(AtomicU64::new(0));
        let sink = TranscodeSink {
            on_frame: {
                let output = output.clone();
                let frames_out = frames_out.clone();
                Box::new(move |frame| {
                    frames_out.fetch_add(1, Ordering::Relaxed);
                    output.push(Arc::new(frame));
                })
            },
            on_error: {
                let (error, stop) = (error.clone(), stop.clone());
                Box::new(move |text| {
                    *error.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
                    stop.cancel();
                })
            },
        };
        let name = format!("{stream}-{}-{}-{}", key.track, key.from, key.to);
        let transcoder = Transcoder::start(&name, &description, source_info, key.to, sink)?;
        // Joined here, not in the feeding task, so the cached frames to feed are known now.
        let join = source.join();
        let backlog: Vec<_> = join
            .as_ref()
            .map(|j| j.backlog.iter().filter(|f| start.is_none_or(|s| f.dts >= s)).cloned().collect())
            .unwrap_or_default();
        let conversion = Arc::new(Conversion {
            key,
            reason,
            description,
            started: SystemTime::now(),
            output,
            consumers: AtomicUsize::new(0),
            frames_in: Arc::new(AtomicU64::new(0)),
            frames_out,
            error,
            stop,
            keyframes: transcoder.keyframe_requester(),
            primed_until: backlog.last().map(|f| f.dts),
        });
        let span = tracing::info_span!("conversion", stream, track = %conversion.key.track,
            from = %conversion.key.from, to = %conversion.key.to);
        tokio::spawn(feed(conversion.clone(), join.map(|j| (backlog, j.receiver)), transcoder).instrument(span));
        Ok(conversion)
    }

    pub fn consumers(&self) -> usize {
        self.consumers.load(Ordering::Relaxed)
    }

    pub fn frames_in(&self) -> u64 {
        self.frames_in.load(Ordering::Relaxed)
    }

    pub fn frames_out(&self) -> u64 {
        self.frames_out.load(Ordering::Relaxed)
    }

    /// Waits, at most `timeout`, until the output has caught up with what the source had
    /// cached when the conversion started (within `slack`: an encoder holds a frame or two).
    /// At once for a conversion that has (or had nothing to catch up with); false when it
    /// did not in time or stopped.
    pub async fn wait_caught_up(&self, slack: Ts, timeout: std::time::Duration) -> bool {
        match self.primed_until {
            Some(until) => self.output.wait_for(timeout, |newest| newest.is_some_and(|n| n >= until - slack)).await,
            None => self.output.wait_for(timeout, |newest| newest.is_some()).await,
        }
    }

    /// The pipeline's error, if it failed.
    pub fn error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Asks this conversion's encoder for a keyframe.
    pub fn request_keyframe(&self) {
        if self.key.track == TrackKind::Video {
            self.keyframes.request();
        }
    }

    pub fn stop(&self) {
        self.stop.cancel();
        self.output.close();
    }
}

type Input = (Vec<Arc<Frame>>, broadcast::Receiver<Arc<Frame>>);

/// Moves frames from the source track into the pipeline (the cached ones first, then live)
/// until stopped or the source ends.
async fn feed(conversion: Arc<Conversion>, input: Option<Input>, mut transcoder: Transcoder) {
    tracing::info!(description = %conversion.description, "conversion started");
    let Some((backlog, mut receiver)) = input else {
        conversion.stop();
        return;
    };
    let mut skipping = false;
    // A publisher that took the stream over may send another codec: its frames are not this
    // conversion's input (its consumers re-plan onto another).
    let from = conversion.key.from;
    for frame in backlog.into_iter().filter(|f| f.info.codec() == from) {
        conversion.frames_in.fetch_add(1, Ordering::Relaxed);
        if transcoder.push(&frame).is_err() {
            break;
        }
    }
    loop {
        let frame = tokio::select! {
            _ = conversion.stop.cancelled() => break,
            r = receiver.recv() => match r {
                Ok(frame) => frame,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "conversion input fell behind; waiting for a keyframe");
                    skipping = true;
                    continue;
                }
                Err(RecvError::Closed) => break,
            },
        };
        if transcoder.queued_bytes() > MAX_QUEUED_BYTES {
            skipping = true;
        }
        if frame.info.codec() != from {
            continue;
        }
        if skipping {
            if !frame.keyframe {
                continue;
            }
            skipping = false;
        }
        conversion.frames_in.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = transcoder.push(&frame) {
            tracing::warn!(error = %e, "conversion input refused");
            break;
        }
    }
    conversion.stop();
    // Setting a pipeline to NULL can wait on its threads: not on a runtime worker.
    tokio::task::spawn_blocking(move || drop(transcoder));
    tracing::info!("conversion stopped");
}
