//! Synthetic streams for the window and clip tests: 25 fps H.264 (keyframe every `gop`
//! pictures) and 48 kHz AAC, interleaved by time, payloads not decodable (the box layout and
//! the cutting are what these tests check; the real-media tests decode).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::media::{AudioInfo, Codec, Frame, TrackInfo, Ts, VideoInfo};

pub const FRAME_NS: i64 = 40_000_000;
pub const AAC_NS: i64 = 1024 * 1_000_000_000 / 48_000;

pub fn video_info(width: u32) -> Arc<TrackInfo> {
    let avcc =
        crate::auth::secret::unhex("0142c00affe100166742c00ad902c4ec0440000003004000000783c4899201000568cb83cb20")
            .expect("hex");
    Arc::new(TrackInfo::Video(VideoInfo {
        codec: Codec::H264,
        width,
        height: 144,
        fps: Some(25.0),
        config: Some(avcc.into()),
        bframes: false,
    }))
}

pub fn audio_info() -> Arc<TrackInfo> {
    Arc::new(TrackInfo::Audio(AudioInfo {
        codec: Codec::Aac,
        sample_rate: 48000,
        channels: 2,
        config: Some(Bytes::from_static(&[0x11, 0x90])),
    }))
}

/// Frames from `start` to `end` (ns of the stream's timeline), video every 40 ms (a keyframe
/// every `gop`, `size` bytes each) and audio every 21.3 ms, interleaved by decode time.
pub fn stream(start: i64, end: i64, gop: i64, size: usize, video: bool, audio: bool) -> Vec<Arc<Frame>> {
    let (vi, ai) = (video_info(176), audio_info());
    let mut frames = Vec::new();
    let up = |t: i64, step: i64| (t + step - 1) / step * step;
    let (mut v, mut a) = (up(start, FRAME_NS), up(start, AAC_NS));
    while (video && v < end) || (audio && a < end) {
        if video && v < end && (!audio || v <= a || a >= end) {
            let n = v / FRAME_NS;
            let data = Bytes::from(vec![n as u8; size]);
            frames.push(Arc::new(Frame::new(vi.clone(), Ts(v), Ts(v), n % gop == 0, data)));
            v += FRAME_NS;
        } else {
            frames.push(Arc::new(Frame::new(ai.clone(), Ts(a), Ts(a), true, Bytes::from(vec![0xa5; 12]))));
            a += AAC_NS;
        }
    }
    frames
}

pub fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// The wall-clock time a frame at `ns` of the stream arrives at: `t0 + ns`.
pub fn wall(ns: i64) -> SystemTime {
    t0() + Duration::from_nanos(ns as u64)
}

pub fn secs(s: f64) -> SystemTime {
    wall((s * 1e9) as i64)
}
