//! Orders one viewer's frames by time across the two tracks, as a TS muxer does.
//!
//! The video conversion (decode, encode, one picture held by the MPEG-1 encoder) gives out a
//! picture later than the audio conversion gives out the sound of the same instant. JSMpeg
//! plays a WebSocket stream as it arrives, ignoring timestamps, so sound sent as soon as it is
//! ready would be heard before its picture is shown. An audio frame therefore waits until the
//! video has reached its time, for at most [`MAX_HOLD`] (the video may stall or end).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::media::{Frame, TrackKind, Ts};

/// Audio is held at most this far ahead of the last picture sent.
pub const MAX_HOLD: Ts = Ts(300_000_000);

pub struct Interleave {
    /// Streams without video pass straight through.
    has_video: bool,
    /// The time of the last picture given out.
    video_at: Option<Ts>,
    held: VecDeque<Arc<Frame>>,
}

impl Interleave {
    pub fn new(has_video: bool) -> Interleave {
        Interleave { has_video, video_at: None, held: VecDeque::new() }
    }

    /// Takes the next frame from the subscription; appends to `out` what may go now, in order.
    pub fn push(&mut self, frame: Arc<Frame>, out: &mut Vec<Arc<Frame>>) {
        if !self.has_video {
            out.push(frame);
            return;
        }
        match frame.kind() {
            TrackKind::Video => {
                let at = frame.dts;
                self.video_at = Some(self.video_at.map_or(at, |v| v.max(at)));
                self.release(out, |a| a.dts <= at);
                out.push(frame);
            }
            TrackKind::Audio => {
                if self.held.is_empty() && self.video_at.is_some_and(|v| frame.dts <= v) {
                    out.push(frame);
                    return;
                }
                self.held.push_back(frame);
                // Video late beyond the bound (stalled, ended, or no picture yet): let the
                // oldest sound go rather than hold it without end.
                let limit = match self.video_at {
                    Some(v) => v + MAX_HOLD,
                    None => self.held.front().map_or(Ts(0), |f| f.dts) + MAX_HOLD,
                };
                let newest = self.held.back().map_or(Ts(0), |f| f.dts);
                if newest > limit {
                    let cut = newest - MAX_HOLD;
                    self.release(out, |a| a.dts <= cut);
                }
            }
        }
    }

    fn release(&mut self, out: &mut Vec<Arc<Frame>>, due: impl Fn(&Frame) -> bool) {
        while self.held.front().is_some_and(|a| due(a)) {
            out.extend(self.held.pop_front());
        }
    }

    /// Audio frames waiting for their picture.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::media::{AudioInfo, Codec, TrackInfo, VideoInfo};

    fn video(ms: i64) -> Arc<Frame> {
        let info = TrackInfo::Video(VideoInfo {
            codec: Codec::Mpeg1,
            width: 2,
            height: 2,
            fps: None,
            config: None,
            bframes: false,
        });
        Arc::new(Frame::new(Arc::new(info), Ts::from_millis(ms), Ts::from_millis(ms), true, Bytes::new()))
    }

    fn audio(ms: i64) -> Arc<Frame> {
        let info = TrackInfo::Audio(AudioInfo { codec: Codec::Mp2, sample_rate: 44100, channels: 1, config: None });
        Arc::new(Frame::new(Arc::new(info), Ts::from_millis(ms), Ts::from_millis(ms), true, Bytes::new()))
    }

    fn run(il: &mut Interleave, frames: Vec<Arc<Frame>>) -> Vec<(TrackKind, i64)> {
        let mut out = Vec::new();
        for f in frames {
            il.push(f, &mut out);
        }
        out.iter().map(|f| (f.kind(), f.dts.as_millis())).collect()
    }

    #[test]
    fn sound_waits_for_the_picture_of_its_time() {
        use TrackKind::{Audio as A, Video as V};
        let mut il = Interleave::new(true);
        // The audio conversion is ahead: its frames of 26..78 ms come before the picture of 33 ms.
        let got = run(
            &mut il,
            vec![video(0), audio(0), audio(26), audio(52), audio(78), video(33), video(66), audio(104), video(100)],
        );
        assert_eq!(got, [(V, 0), (A, 0), (A, 26), (V, 33), (A, 52), (V, 66), (A, 78), (V, 100)]);
        assert_eq!(il.held(), 1, "104 ms waits for a picture at or after it");
    }

    #[test]
    fn a_stalled_picture_holds_sound_only_so_long() {
        let mut il = Interleave::new(true);
        let mut got = run(&mut il, vec![video(0)]);
        for ms in (26..=1000).step_by(26) {
            got.extend(run(&mut il, vec![audio(ms)]));
        }
        let last_out = got.last().expect("sound released").1;
        assert!(il.held() > 0 && last_out >= 1000 - MAX_HOLD.as_millis() - 26, "released up to {last_out}");
        assert!(got.windows(2).all(|w| w[0].1 <= w[1].1), "in time order: {got:?}");
    }

    #[test]
    fn without_video_sound_passes_through() {
        let mut il = Interleave::new(false);
        assert_eq!(run(&mut il, vec![audio(0), audio(26)]).len(), 2);
        assert_eq!(il.held(), 0);
    }
}
