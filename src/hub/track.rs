//! One track output: the frames of one track in one codec variant (the publisher's own, or a
//! conversion's), fanned out to any number of consumers, with the last GOP kept for joiners.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, Notify};

use crate::media::{Frame, TrackInfo, TrackKind, Ts};

/// How much a track output keeps for late joiners.
#[derive(Debug, Clone, Copy)]
pub struct CacheLimits {
    /// Frames kept at most for one GOP; past it the GOP cache is dropped until the next keyframe.
    pub max_gop_frames: usize,
    /// The longest GOP kept: past it the GOP cache is dropped until the next keyframe, so a
    /// joiner starts at most this far back (a publisher that sends a keyframe only on request
    /// must not make it start at the stream's first picture).
    pub max_gop_age: Ts,
    /// Audio kept behind the newest audio frame, so joiners get the audio of the cached GOP.
    pub audio_window: Ts,
    /// Broadcast queue length per track: a consumer this far behind has lagged.
    pub queue_frames: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            max_gop_frames: 900,
            max_gop_age: Ts::from_millis(10_000),
            audio_window: Ts::from_millis(10_000),
            queue_frames: 512,
        }
    }
}

struct Cache {
    info: Option<Arc<TrackInfo>>,
    frames: VecDeque<Arc<Frame>>,
    /// Video only: the cache holds a whole GOP from a keyframe on.
    gop_valid: bool,
    sender: Option<broadcast::Sender<Arc<Frame>>>,
    /// Video: the last keyframe's dts and the longest gap between two keyframes seen.
    last_keyframe: Option<Ts>,
    longest_gop: Option<Ts>,
    /// The newest frame's dts (either kind).
    newest: Option<Ts>,
}

/// What a new consumer of a track gets: the info known now, what was cached, and the live queue.
pub struct TrackJoin {
    pub info: Option<Arc<TrackInfo>>,
    pub backlog: Vec<Arc<Frame>>,
    pub receiver: broadcast::Receiver<Arc<Frame>>,
}

pub struct TrackOutput {
    kind: TrackKind,
    limits: CacheLimits,
    cache: Mutex<Cache>,
    /// Woken on every frame and on close (see [`TrackOutput::wait_for`]).
    pushed: Notify,
}

impl TrackOutput {
    pub fn new(kind: TrackKind, limits: CacheLimits) -> TrackOutput {
        let (sender, _) = broadcast::channel(limits.queue_frames.max(16));
        TrackOutput {
            kind,
            limits,
            cache: Mutex::new(Cache {
                info: None,
                frames: VecDeque::new(),
                gop_valid: false,
                sender: Some(sender),
                last_keyframe: None,
                longest_gop: None,
                newest: None,
            }),
            pushed: Notify::new(),
        }
    }

    pub fn kind(&self) -> TrackKind {
        self.kind
    }

    pub fn info(&self) -> Option<Arc<TrackInfo>> {
        self.lock().info.clone()
    }

    /// Hands a frame to every consumer. Never blocks: a consumer that is behind lags.
    pub fn push(&self, frame: Arc<Frame>) {
        let mut cache = self.lock();
        if cache.info.as_ref().is_none_or(|i| !Arc::ptr_eq(i, &frame.info)) {
            cache.info = Some(frame.info.clone());
        }
        cache.newest = Some(frame.dts);
        match self.kind {
            TrackKind::Video => {
                if frame.keyframe {
                    if let Some(last) = cache.last_keyframe {
                        let gap = frame.dts - last;
                        cache.longest_gop = Some(cache.longest_gop.map_or(gap, |g| g.max(gap)));
                    }
                    cache.last_keyframe = Some(frame.dts);
                    cache.frames.clear();
                    cache.gop_valid = true;
                }
                if cache.gop_valid {
                    let too_old = cache.frames.front().is_some_and(|k| frame.dts - k.dts > self.limits.max_gop_age);
                    if cache.frames.len() >= self.limits.max_gop_frames || too_old {
                        cache.frames.clear();
                        cache.gop_valid = false;
                    } else {
                        cache.frames.push_back(frame.clone());
                    }
                }
            }
            TrackKind::Audio => {
                let horizon = frame.dts - self.limits.audio_window;
                while cache.frames.front().is_some_and(|f| f.dts < horizon) {
                    cache.frames.pop_front();
                }
                if cache.frames.len() >= self.limits.max_gop_frames * 2 {
                    cache.frames.pop_front();
                }
                cache.frames.push_back(frame.clone());
            }
        }
        if let Some(sender) = &cache.sender {
            // An error only means nobody listens right now.
            let _ = sender.send(frame);
        }
        drop(cache);
        self.pushed.notify_waiters();
    }

    /// The newest frame's dts (None before the first).
    pub fn newest(&self) -> Option<Ts> {
        self.lock().newest
    }

    /// Waits until `done` holds for the newest dts (checked now and after every frame), the
    /// output closes (false) or `timeout` passes (false).
    pub async fn wait_for(&self, timeout: std::time::Duration, done: impl Fn(Option<Ts>) -> bool) -> bool {
        let wait = async {
            loop {
                let pushed = self.pushed.notified();
                tokio::pin!(pushed);
                pushed.as_mut().enable();
                {
                    let cache = self.lock();
                    if done(cache.newest) {
                        return true;
                    }
                    if cache.sender.is_none() {
                        return false;
                    }
                }
                pushed.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }

    /// Video: the longest gap between keyframes so far, or the time since the only keyframe
    /// if that is longer already (None before the first keyframe).
    pub fn keyframe_interval(&self) -> Option<Ts> {
        let cache = self.lock();
        let open = match (cache.last_keyframe, cache.newest) {
            (Some(k), Some(n)) => Some(n - k),
            _ => None,
        };
        match (cache.longest_gop, open) {
            (Some(g), Some(o)) => Some(g.max(o)),
            (g, o) => g.or(o),
        }
    }

    /// Video: the dts of the cached GOP's keyframe, where a new consumer of this output
    /// starts (None without a whole GOP cached).
    pub fn gop_start(&self) -> Option<Ts> {
        let cache = self.lock();
        match self.kind {
            TrackKind::Video if cache.gop_valid => cache.frames.front().map(|f| f.dts),
            _ => None,
        }
    }

    /// Joins the output: the cached frames (for video, the GOP from its keyframe) and a
    /// receiver that continues exactly after them. None once the output is closed.
    pub fn join(&self) -> Option<TrackJoin> {
        let cache = self.lock();
        let sender = cache.sender.as_ref()?;
        let backlog = match self.kind {
            TrackKind::Video if cache.gop_valid => cache.frames.iter().cloned().collect(),
            TrackKind::Video => Vec::new(),
            TrackKind::Audio => cache.frames.iter().cloned().collect(),
        };
        Some(TrackJoin { info: cache.info.clone(), backlog, receiver: sender.subscribe() })
    }

    /// Ends the output: consumers drain what is queued and then see the end.
    pub fn close(&self) {
        let mut cache = self.lock();
        cache.sender = None;
        cache.frames.clear();
        drop(cache);
        self.pushed.notify_waiters();
    }

    pub fn is_closed(&self) -> bool {
        self.lock().sender.is_none()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A poisoned lock only means a panic elsewhere mid-push; the cache is still usable.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::media::{AudioInfo, Codec, VideoInfo};

    pub(crate) fn video_frame(info: &Arc<TrackInfo>, ms: i64, key: bool) -> Arc<Frame> {
        Arc::new(Frame::new(info.clone(), Ts::from_millis(ms), Ts::from_millis(ms), key, Bytes::from_static(b"v")))
    }

    fn infos() -> (Arc<TrackInfo>, Arc<TrackInfo>) {
        let v = TrackInfo::Video(VideoInfo {
            codec: Codec::H264,
            width: 2,
            height: 2,
            fps: None,
            config: None,
            bframes: false,
        });
        let a = TrackInfo::Audio(AudioInfo { codec: Codec::Aac, sample_rate: 44_100, channels: 1, config: None });
        (Arc::new(v), Arc::new(a))
    }

    #[test]
    fn joiner_gets_gop_from_keyframe_then_live() {
        let (v, _) = infos();
        let out = TrackOutput::new(TrackKind::Video, CacheLimits::default());
        out.push(video_frame(&v, 0, false)); // before any keyframe: not cached
        out.push(video_frame(&v, 33, true));
        out.push(video_frame(&v, 66, false));
        let mut join = out.join().unwrap();
        assert_eq!(join.backlog.len(), 2);
        assert!(join.backlog[0].keyframe);
        assert_eq!(out.gop_start(), Some(Ts::from_millis(33)));
        out.push(video_frame(&v, 99, false));
        let live = join.receiver.try_recv().unwrap();
        assert_eq!(live.dts, Ts::from_millis(99));
        out.close();
        assert!(out.join().is_none());
    }

    #[test]
    fn gop_cache_is_bounded() {
        let (v, _) = infos();
        let limits = CacheLimits { max_gop_frames: 3, ..CacheLimits::default() };
        let out = TrackOutput::new(TrackKind::Video, limits);
        out.push(video_frame(&v, 0, true));
        for i in 1..5 {
            out.push(video_frame(&v, i * 33, false));
        }
        assert!(out.join().unwrap().backlog.is_empty(), "an over-long GOP is not served half");
        out.push(video_frame(&v, 200, true));
        assert_eq!(out.join().unwrap().backlog.len(), 1);
    }

    #[test]
    fn a_gop_older_than_the_limit_is_not_served() {
        let (v, _) = infos();
        let limits = CacheLimits { max_gop_age: Ts::from_millis(1000), ..CacheLimits::default() };
        let out = TrackOutput::new(TrackKind::Video, limits);
        out.push(video_frame(&v, 0, true));
        out.push(video_frame(&v, 900, false));
        assert_eq!(out.join().unwrap().backlog.len(), 2);
        out.push(video_frame(&v, 1100, false));
        assert!(out.join().unwrap().backlog.is_empty(), "a joiner never starts more than max_gop_age back");
        assert_eq!(out.gop_start(), None);
        out.push(video_frame(&v, 1200, true));
        assert_eq!(out.gop_start(), Some(Ts::from_millis(1200)));
    }

    #[tokio::test]
    async fn wait_for_sees_frames_and_close() {
        let (v, _) = infos();
        let out = Arc::new(TrackOutput::new(TrackKind::Video, CacheLimits::default()));
        let waiter = {
            let out = out.clone();
            tokio::spawn(async move {
                out.wait_for(std::time::Duration::from_secs(5), |n| n >= Some(Ts::from_millis(66))).await
            })
        };
        for ms in [0, 33, 66] {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            out.push(video_frame(&v, ms, ms == 0));
        }
        assert!(waiter.await.unwrap());
        assert!(!out.wait_for(std::time::Duration::from_millis(20), |n| n >= Some(Ts::from_millis(99))).await);
        out.close();
        assert!(!out.wait_for(std::time::Duration::from_secs(5), |_| false).await);
    }

    #[test]
    fn audio_window_slides() {
        let (_, a) = infos();
        let limits = CacheLimits { audio_window: Ts::from_millis(100), ..CacheLimits::default() };
        let out = TrackOutput::new(TrackKind::Audio, limits);
        for i in 0..10 {
            out.push(Arc::new(Frame::new(
                a.clone(),
                Ts::from_millis(i * 23),
                Ts::from_millis(i * 23),
                true,
                Bytes::new(),
            )));
        }
        let join = out.join().unwrap();
        assert!(join.backlog.iter().all(|f| f.dts >= Ts::from_millis(207 - 100)));
        assert!(!join.backlog.is_empty());
    }
}
