//! TS packets made once per frame and shared by every H5 viewer of a stream.
//!
//! The first viewer to send a frame packetizes it; the others send the same bytes. The
//! continuity counters of the media PIDs belong to the stream, not the viewer: every viewer
//! receives a PID's frames in the same order, so they stay continuous for each of them (a
//! viewer that skipped frames after falling behind sees one jump, as after any loss). PAT and
//! PMT are per viewer (see `play`), with their own counters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;

use super::ts::mux::write_frame;
use crate::hub::Stream;
use crate::media::{Frame, TrackKind};

/// Inserts between two sweeps of entries whose frames are gone.
const PRUNE_EVERY: usize = 256;

struct Entry {
    frame: Weak<Frame>,
    bytes: Bytes,
}

#[derive(Default)]
struct Inner {
    video_cc: u8,
    audio_cc: u8,
    /// By the frame's address; an entry is valid while its frame lives (the weak reference
    /// keeps the address from being reused until the entry goes).
    cache: HashMap<usize, Entry>,
    inserts: usize,
    made: u64,
    shared: u64,
}

/// The packet cache of one stream.
#[derive(Default)]
pub struct SharedPackets {
    inner: Mutex<Inner>,
}

impl SharedPackets {
    /// The frame's TS packets (one PES). `pcr_on_audio`: the program has no video, so audio
    /// carries the PCR.
    pub fn packets(&self, frame: &Arc<Frame>, pcr_on_audio: bool) -> Bytes {
        let key = Arc::as_ptr(frame) as usize;
        let mut inner = lock(&self.inner);
        if let Some(entry) = inner.cache.get(&key) {
            if entry.frame.strong_count() > 0 {
                let bytes = entry.bytes.clone();
                inner.shared += 1;
                return bytes;
            }
        }
        let mut out = Vec::new();
        let inner = &mut *inner;
        let (cc, pcr) = match frame.kind() {
            TrackKind::Video => (&mut inner.video_cc, true),
            TrackKind::Audio => (&mut inner.audio_cc, pcr_on_audio),
        };
        write_frame(frame, pcr, cc, &mut out);
        let bytes = Bytes::from(out);
        inner.cache.insert(key, Entry { frame: Arc::downgrade(frame), bytes: bytes.clone() });
        inner.made += 1;
        inner.inserts += 1;
        if inner.inserts >= PRUNE_EVERY {
            inner.inserts = 0;
            inner.cache.retain(|_, e| e.frame.strong_count() > 0);
        }
        bytes
    }

    /// (frames packetized, frames served from the cache) so far.
    pub fn counts(&self) -> (u64, u64) {
        let inner = lock(&self.inner);
        (inner.made, inner.shared)
    }

    /// Entries held now (frames still alive in the hub or in a viewer's queue).
    pub fn cached(&self) -> usize {
        lock(&self.inner).cache.len()
    }
}

/// A stream (to tell a live one from a gone one at the same address) and its cache.
type CacheEntry = (Weak<Stream>, Weak<SharedPackets>);

/// The packet caches of all streams with H5 viewers, by stream.
#[derive(Default)]
pub struct PacketCaches {
    by_stream: Mutex<HashMap<usize, CacheEntry>>,
}

impl PacketCaches {
    /// The cache of `stream`, made by its first H5 viewer and gone with its last.
    pub fn for_stream(&self, stream: &Arc<Stream>) -> Arc<SharedPackets> {
        let mut map = lock(&self.by_stream);
        map.retain(|_, (s, p)| s.strong_count() > 0 && p.strong_count() > 0);
        let key = Arc::as_ptr(stream) as usize;
        if let Some(cache) = map.get(&key).and_then(|(_, p)| p.upgrade()) {
            return cache;
        }
        let cache = Arc::new(SharedPackets::default());
        map.insert(key, (Arc::downgrade(stream), Arc::downgrade(&cache)));
        cache
    }
}

use crate::sync::lock;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{Codec, TrackInfo, Ts, VideoInfo};

    fn frame(ms: i64) -> Arc<Frame> {
        let info = Arc::new(TrackInfo::Video(VideoInfo {
            codec: Codec::Mpeg1,
            width: 2,
            height: 2,
            fps: None,
            config: None,
            bframes: false,
        }));
        Arc::new(Frame::new(info, Ts::from_millis(ms), Ts::from_millis(ms), false, Bytes::from(vec![1u8; 400])))
    }

    #[test]
    fn a_frame_is_packetized_once_and_counters_run_on_across_frames() {
        let cache = SharedPackets::default();
        let a = frame(0);
        let b = frame(33);
        let first = cache.packets(&a, false);
        let again = cache.packets(&a, false);
        assert_eq!(first.as_ptr(), again.as_ptr(), "the same bytes, not a copy");
        let next = cache.packets(&b, false);
        // 400 bytes + PES header + PCR: 3 packets each; counters 0,1,2 then 3,4,5.
        let counters: Vec<u8> = first.chunks(188).chain(next.chunks(188)).map(|p| p[3] & 0x0F).collect();
        assert_eq!(counters, [0, 1, 2, 3, 4, 5]);
        assert_eq!(cache.counts(), (2, 1));
        drop(a);
        for i in 0..PRUNE_EVERY {
            cache.packets(&frame(100 + i as i64), false);
        }
        assert!(cache.cached() < 10, "entries of dropped frames are swept: {}", cache.cached());
    }
}
