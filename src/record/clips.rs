//! Highlight clips: an MP4 cut without re-encoding from a live stream's rolling window (kept
//! in memory, `clips.window_seconds`) or from its recordings, starting at the keyframe at or
//! before `from`. Clips are written under `{clips.dir}/{stream}/` and served over HTTP.
//!
//! The window is a hub consumer of protocol `hls` (H.264 + AAC) started when the stream is
//! published, a tap ([`crate::hub::TAP_TRANSPORT`]) that the API does not list. Where that needs a conversion (WebRTC's Opus, H5's MPEG-1) it is kept only if
//! `clips.convert` says so; otherwise such streams are clipped from their recordings.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::clip::{clip_from_files, clip_from_window, Clip, ClipError};
use super::recordings::Recordings;
use super::settings::ClipSettings;
use super::window::{ClipWindow, WindowConfig};
use crate::hub::{ConsumerRequest, Hub, StreamKey};
use crate::matrix::Leg;
use crate::media::Protocol;

/// The hub consumer's transport name: a tap, not listed among the stream's consumers.
pub const TRANSPORT: &str = crate::hub::TAP_TRANSPORT;

#[derive(Debug, thiserror::Error)]
pub enum ClipRequestError {
    #[error("nothing of stream `{0}` covers that time: no live window and no recording")]
    NoSource(String),
    #[error(transparent)]
    Clip(#[from] ClipError),
    #[error("cannot write the clip: {0}")]
    Io(String),
}

/// A clip written to disk.
pub struct WrittenClip {
    pub stream: String,
    pub file: String,
    pub clip: Clip,
}

#[derive(Clone)]
pub struct Clips {
    hub: Hub,
    settings: ClipSettings,
    dir: Arc<PathBuf>,
    recordings: Recordings,
    windows: Arc<Mutex<HashMap<StreamKey, Arc<Mutex<ClipWindow>>>>>,
}

impl Clips {
    pub fn new(hub: Hub, settings: ClipSettings, recordings: Recordings) -> Clips {
        let dir = Arc::new(settings.dir.clone());
        Clips { hub, settings, dir, recordings, windows: Arc::default() }
    }

    pub fn dir(&self) -> &PathBuf {
        &self.dir
    }

    /// A stream was published: keep its window (once) if configured and free of conversions.
    pub async fn on_publish(&self, key: &StreamKey) {
        if self.settings.window_seconds <= 0.0 || self.window(key).is_some() {
            return;
        }
        let Some(stream) = self.hub.stream(key) else { return };
        if !self.settings.convert {
            // Planned on the stream's real tracks: a window that would convert is left to
            // recordings.
            if !stream.wait_ready(self.hub.config().ready_timeout).await {
                return;
            }
            match self.hub.plan_for(&stream, Protocol::Hls) {
                Ok(plan) if !converts(&plan) => {}
                _ => {
                    tracing::debug!(stream = %key, "no clip window: HLS tracks need a conversion (clips.convert is off)");
                    return;
                }
            }
        }
        let who = ConsumerRequest { protocol: Protocol::Hls, transport: TRANSPORT.into(), remote: None };
        let hub = self.hub.clone();
        let this = self.clone();
        let key = key.clone();
        tokio::spawn(async move {
            let mut sub = match hub.subscribe(&key, who).await {
                Ok(sub) => sub,
                Err(e) => {
                    tracing::debug!(stream = %key, error = %e, "no clip window");
                    return;
                }
            };
            let config = WindowConfig {
                window: Duration::from_secs_f64(this.settings.window_seconds),
                ..WindowConfig::default()
            };
            let window = Arc::new(Mutex::new(ClipWindow::new(config)));
            this.windows.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone(), window.clone());
            let convert = this.settings.convert;
            while let Some(frame) = sub.next().await {
                if !convert && converts(sub.plan()) {
                    // A new publisher (a takeover in the grace) needs a conversion: not for this.
                    tracing::debug!(stream = %key, "clip window stops: its tracks now need a conversion");
                    break;
                }
                window.lock().unwrap_or_else(|e| e.into_inner()).push(frame, SystemTime::now());
            }
            let mut windows = this.windows.lock().unwrap_or_else(|e| e.into_inner());
            if windows.get(&key).is_some_and(|w| Arc::ptr_eq(w, &window)) {
                windows.remove(&key);
            }
        });
    }

    fn window(&self, key: &StreamKey) -> Option<Arc<Mutex<ClipWindow>>> {
        self.windows.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    /// The clip of `key` from `from` to `to` (the window when it reaches back to `from`, else
    /// the recordings), written to disk.
    pub async fn cut(
        &self,
        key: &StreamKey,
        from: SystemTime,
        to: SystemTime,
    ) -> Result<WrittenClip, ClipRequestError> {
        let max = Duration::from_secs_f64(self.settings.max_seconds);
        let from_window = self.window(key).and_then(|w| {
            let w = w.lock().unwrap_or_else(|e| e.into_inner());
            let (start, _) = w.span()?;
            (start <= from).then(|| clip_from_window(&w, from, to, max))
        });
        let clip = match from_window {
            Some(clip) => clip?,
            None => self.cut_recordings(key, from, to, max).await?,
        };
        self.write(key, clip).await
    }

    async fn cut_recordings(
        &self,
        key: &StreamKey,
        from: SystemTime,
        to: SystemTime,
        max: Duration,
    ) -> Result<Clip, ClipRequestError> {
        let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let (from_ms, to_ms) = (ms(from), ms(to));
        // The recording of this stream whose files reach into the range (the newest first).
        let recordings = self.recordings.list().await;
        let Some(index) = recordings
            .into_iter()
            .find(|r| r.stream == key.as_str() && r.files.iter().any(|f| f.start_ms < to_ms && f.end_ms() > from_ms))
        else {
            return Err(ClipRequestError::NoSource(key.to_string()));
        };
        let dir = self.recordings.settings().dir.join(key.as_str());
        tokio::task::spawn_blocking(move || {
            // The files around the range: the one before `from`'s (its keyframe) to `to`'s.
            let wanted: Vec<_> =
                index.files.iter().filter(|f| f.end_ms() + 1000 * 60 > from_ms && f.start_ms < to_ms).collect();
            let mut files = Vec::new();
            for f in wanted {
                let data =
                    std::fs::read(dir.join(&f.name)).map_err(|e| ClipRequestError::Io(format!("{}: {e}", f.name)))?;
                files.push((UNIX_EPOCH + Duration::from_millis(f.start_ms), Bytes::from(data)));
            }
            clip_from_files(&files, from, to, max).map_err(ClipRequestError::from)
        })
        .await
        .map_err(|e| ClipRequestError::Io(e.to_string()))?
    }

    async fn write(&self, key: &StreamKey, clip: Clip) -> Result<WrittenClip, ClipRequestError> {
        let start = clip.start.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let file = format!("{key}-{start}-{:06x}.mp4", rand::random::<u32>() & 0xff_ffff);
        let dir = self.dir.join(key.as_str());
        let path = dir.join(&file);
        let data = clip.mp4.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            let tmp = path.with_extension("mp4.tmp");
            std::fs::write(&tmp, &data)?;
            std::fs::rename(&tmp, &path)
        })
        .await
        .map_err(|e| ClipRequestError::Io(e.to_string()))?
        .map_err(|e| ClipRequestError::Io(format!("{}: {e}", self.dir.display())))?;
        Ok(WrittenClip { stream: key.to_string(), file, clip })
    }

    /// Live windows kept (for `/metrics`).
    pub fn windows(&self) -> usize {
        self.windows.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Whether a plan converts a track.
fn converts(plan: &crate::matrix::Plan) -> bool {
    [&plan.video, &plan.audio].into_iter().flatten().any(|l| matches!(l, Leg::Convert { .. }))
}
