//! One running recording: a hub consumer (protocol `hls`: H.264 + AAC, converted only where
//! the matrix says) whose frames go, through a bounded queue, to a thread that owns the
//! blocking [`SegmentWriter`]. A publisher that reconnects within the hub's grace continues
//! the same subscription, so the recording goes on across it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{RecordError, RecordingId, RecordingIndex, RecordingState, SegmentWriter};
use crate::hub::Subscription;
use crate::media::Frame;

/// Frames queued toward the writer thread (several seconds of a stream): a slow disk stall
/// does not make the hub subscription lag.
const QUEUE: usize = 1024;

/// What the API sees of a running recording.
pub struct Running {
    pub id: RecordingId,
    pub stream: String,
    /// The index as of the last completed file or state change.
    pub snapshot: Mutex<RecordingIndex>,
    /// Frames dropped because the writer fell behind.
    pub dropped: AtomicU64,
    pub stop: CancellationToken,
    /// Cancelled when the writer thread is done (index final).
    pub done: CancellationToken,
}

impl Running {
    pub fn snapshot(&self) -> RecordingIndex {
        self.snapshot.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, index: RecordingIndex) {
        *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = index;
    }
}

/// Starts the writer (files under `dir`) and the task feeding it from `sub`; `ended` is
/// called once with the final index when the recording is over.
pub fn start(
    dir: PathBuf,
    sub: Subscription,
    id: RecordingId,
    segment: Duration,
    ended: impl FnOnce(&Running) + Send + 'static,
) -> Result<Arc<Running>, RecordError> {
    let stream = sub.stream().key.to_string();
    let writer = SegmentWriter::new(&dir, &stream, id.clone(), segment, SystemTime::now())?;
    let running = Arc::new(Running {
        id,
        stream,
        snapshot: Mutex::new(writer.index().clone()),
        dropped: AtomicU64::new(0),
        stop: CancellationToken::new(),
        done: CancellationToken::new(),
    });
    let (tx, rx) = mpsc::channel::<Arc<Frame>>(QUEUE);
    let thread_view = running.clone();
    std::thread::Builder::new()
        .name("recording".into())
        .spawn(move || {
            write(writer, rx, &thread_view);
            ended(&thread_view);
            thread_view.done.cancel();
        })
        .map_err(|e| RecordError::io("spawn the writer thread", &dir, e))?;
    tokio::spawn(feed(sub, tx, running.clone()));
    Ok(running)
}

/// The hub side: frames into the queue until the stream ends or the recording is stopped.
async fn feed(mut sub: Subscription, tx: mpsc::Sender<Arc<Frame>>, running: Arc<Running>) {
    loop {
        let frame = tokio::select! {
            frame = sub.next() => frame,
            _ = running.stop.cancelled() => None,
            _ = tx.closed() => None,
        };
        let Some(frame) = frame else { break };
        if tx.try_send(frame).is_err() && !tx.is_closed() {
            let n = running.dropped.fetch_add(1, Ordering::Relaxed);
            if n % 100 == 0 {
                tracing::warn!(stream = %running.stream, id = %running.id.as_str(), "recording: the disk falls behind; frames dropped");
            }
        }
    }
}

/// The writer thread: frames to files; the index goes to the snapshot as files complete.
fn write(mut writer: SegmentWriter, mut rx: mpsc::Receiver<Arc<Frame>>, running: &Running) {
    let mut files = 0;
    while let Some(frame) = rx.blocking_recv() {
        if let Err(e) = writer.push(&frame, SystemTime::now()) {
            tracing::warn!(stream = %running.stream, id = %running.id.as_str(), error = %e, "recording failed; the live stream goes on");
            running.set(writer.index().clone());
            return;
        }
        if writer.index().files.len() != files {
            files = writer.index().files.len();
            running.set(writer.index().clone());
        }
    }
    let last = writer.index().clone();
    match writer.finish() {
        Ok(index) => running.set(index),
        Err(e) => {
            let mut index = last;
            index.state = RecordingState::Failed { error: e.to_string() };
            running.set(index);
        }
    }
}
