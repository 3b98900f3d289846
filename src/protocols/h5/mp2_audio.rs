//! MPEG audio elementary stream → frames: one MPEG-1/2 Layer II frame each, found by its
//! header (sync word, bit rate, sample rate, padding), across PES boundaries. The PES PTS goes
//! to the first frame starting in that PES; the frames after it follow at 1152 samples each.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use crate::media::{AudioInfo, Codec, Frame, TrackInfo, Ts};

/// Samples in one Layer II frame.
pub const SAMPLES_PER_FRAME: u32 = 1152;
/// Garbage tolerated while looking for a frame header before the stream is refused.
const MAX_SEARCH: usize = 64 * 1024;
/// PES timestamps waiting for their frame.
const MAX_MARKS: usize = 1024;

/// The audio is MPEG audio but not something carried as MP2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudioError {
    #[error("the audio is MPEG audio layer {0}, not Layer II (MP2)")]
    NotLayer2(u8),
    #[error("no MPEG audio frame header in {0} bytes of audio")]
    NoHeader(usize),
}

/// A parsed Layer II frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mp2Header {
    pub sample_rate: u32,
    pub channels: u8,
    pub bitrate_kbps: u32,
    /// The whole frame, header included.
    pub frame_len: usize,
}

/// Reads a frame header. `Ok(None)`: not a header here; `Err`: a header of another layer.
pub fn parse_header(b: &[u8]) -> Result<Option<Mp2Header>, AudioError> {
    let Some(&[b0, b1, b2, b3]) = b.get(..4).and_then(|s| <&[u8; 4]>::try_from(s).ok()) else {
        return Ok(None);
    };
    if b0 != 0xFF || b1 & 0xE0 != 0xE0 {
        return Ok(None);
    }
    let version = (b1 >> 3) & 0x03; // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5, 1: reserved
    let layer = match (b1 >> 1) & 0x03 {
        3 => 1,
        2 => 2,
        1 => 3,
        _ => return Ok(None),
    };
    let bitrate_index = (b2 >> 4) as usize;
    let rate_index = ((b2 >> 2) & 0x03) as usize;
    if version == 1 || bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        return Ok(None);
    }
    if layer != 2 {
        return Err(AudioError::NotLayer2(layer));
    }
    const MPEG1: [u32; 15] = [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384];
    const MPEG2: [u32; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    let bitrate_kbps = if version == 3 { MPEG1[bitrate_index] } else { MPEG2[bitrate_index] };
    let base = [44_100, 48_000, 32_000][rate_index];
    let sample_rate = match version {
        3 => base,
        2 => base / 2,
        _ => base / 4,
    };
    let padding = ((b2 >> 1) & 0x01) as usize;
    let frame_len = (144_000 * bitrate_kbps / sample_rate) as usize + padding;
    let channels = if b3 >> 6 == 3 { 1 } else { 2 };
    Ok(Some(Mp2Header { sample_rate, channels, bitrate_kbps, frame_len }))
}

#[derive(Debug, Default)]
pub struct Mp2Audio {
    buf: Vec<u8>,
    /// Absolute stream offset of `buf[0]`.
    base: u64,
    /// (absolute offset where a PES began, its PTS).
    marks: VecDeque<(u64, Ts)>,
    next_pts: Option<Ts>,
    info: Option<Arc<TrackInfo>>,
    searched: usize,
}

impl Mp2Audio {
    pub fn new() -> Mp2Audio {
        Mp2Audio::default()
    }

    /// The current track description (None before the first frame).
    pub fn info(&self) -> Option<&Arc<TrackInfo>> {
        self.info.as_ref()
    }

    /// Feeds one PES payload; appends the frames it completes.
    pub fn push_pes(&mut self, pts: Option<Ts>, data: &[u8], out: &mut Vec<Frame>) -> Result<(), AudioError> {
        if let Some(pts) = pts {
            // Empty PES with timestamps must not make the marks grow without bound.
            if self.marks.len() >= MAX_MARKS {
                self.marks.pop_front();
            }
            self.marks.push_back((self.base + self.buf.len() as u64, pts));
        }
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        while pos + 4 <= self.buf.len() {
            let Some(header) = parse_header(&self.buf[pos..])? else {
                pos += 1;
                self.searched += 1;
                if self.searched > MAX_SEARCH {
                    return Err(AudioError::NoHeader(self.searched));
                }
                continue;
            };
            if pos + header.frame_len > self.buf.len() {
                break;
            }
            self.searched = 0;
            let start = self.base + pos as u64;
            let data = Bytes::copy_from_slice(&self.buf[pos..pos + header.frame_len]);
            out.push(self.frame(start, header, data));
            pos += header.frame_len;
        }
        self.buf.drain(..pos);
        self.base += pos as u64;
        Ok(())
    }

    fn frame(&mut self, start: u64, header: Mp2Header, data: Bytes) -> Frame {
        let mut pts = None;
        while self.marks.front().is_some_and(|&(offset, _)| offset <= start) {
            pts = self.marks.pop_front().map(|(_, p)| p);
        }
        let pts = pts.or(self.next_pts).unwrap_or(Ts::ZERO);
        self.next_pts = Some(pts + Ts::from_ticks(SAMPLES_PER_FRAME as i64, header.sample_rate));
        let info = match &self.info {
            Some(i) if matches!(i.as_ref(), TrackInfo::Audio(a) if a.sample_rate == header.sample_rate && a.channels == header.channels) => {
                i.clone()
            }
            _ => {
                let info = Arc::new(TrackInfo::Audio(AudioInfo {
                    codec: Codec::Mp2,
                    sample_rate: header.sample_rate,
                    channels: header.channels,
                    config: None,
                }));
                self.info = Some(info.clone());
                info
            }
        };
        Frame::new(info, pts, pts, true, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Layer II frame header: MPEG-1, 128 kbit/s, 44.1 kHz, stereo or mono.
    fn frame(padding: bool, mono: bool, fill: u8) -> Vec<u8> {
        let b2 = 0x80 | if padding { 0x02 } else { 0 }; // bitrate index 8 (128k), rate 0 (44.1k)
        let b3 = if mono { 0xC4 } else { 0x04 };
        let len = 144_000 * 128 / 44_100 + padding as usize;
        let mut f = vec![0xFF, 0xFD, b2, b3];
        f.resize(len, fill);
        f
    }

    #[test]
    fn headers_give_sizes_rates_and_layers() {
        let h = parse_header(&frame(false, false, 0)).expect("layer 2").expect("a header");
        assert_eq!(h, Mp2Header { sample_rate: 44_100, channels: 2, bitrate_kbps: 128, frame_len: 417 });
        assert_eq!(parse_header(&frame(true, true, 0)).expect("ok").map(|h| (h.frame_len, h.channels)), Some((418, 1)));
        // MPEG-1 48 kHz 192 kbit/s: 576 bytes.
        assert_eq!(parse_header(&[0xFF, 0xFD, 0xA4, 0x00]).expect("ok").map(|h| h.frame_len), Some(576));
        // MPEG-2 LSF 24 kHz 64 kbit/s: 384 bytes.
        assert_eq!(
            parse_header(&[0xFF, 0xF5, 0x84, 0x00]).expect("ok").map(|h| (h.sample_rate, h.frame_len)),
            Some((24_000, 384))
        );
        assert_eq!(parse_header(&[0xFF, 0xFB, 0x90, 0x00]), Err(AudioError::NotLayer2(3)));
        assert_eq!(parse_header(&[0xFF, 0xFD, 0xF0, 0x00]), Ok(None), "bad bitrate index");
        assert_eq!(parse_header(&[0x12, 0xFD, 0x80, 0x00]), Ok(None));
    }

    #[test]
    fn frames_are_cut_across_pes_with_timestamps_from_the_pes() {
        let mut stream = Vec::new();
        for i in 0..4 {
            stream.extend(frame(i % 2 == 1, false, i as u8));
        }
        let mut a = Mp2Audio::new();
        let mut out = Vec::new();
        // PES 1: 1.5 frames at 1 s; PES 2: the rest, PTS of its first whole frame.
        let (one, two) = stream.split_at(600);
        a.push_pes(Some(Ts::from_millis(1000)), one, &mut out).expect("ok");
        assert_eq!(out.len(), 1);
        a.push_pes(Some(Ts::from_millis(1052)), two, &mut out).expect("ok");
        assert_eq!(out.len(), 4);
        assert_eq!(out.iter().map(|f| f.data.len()).collect::<Vec<_>>(), [417, 418, 417, 418]);
        assert_eq!(out.iter().map(|f| f.data[4]).collect::<Vec<_>>(), [0, 1, 2, 3]);
        let ms: Vec<i64> = out.iter().map(|f| f.pts.as_millis()).collect();
        // Frame 2 continues from frame 1 (the second PES began inside it); frame 3 takes 1052.
        assert_eq!(ms, [1000, 1026, 1052, 1078]);
        assert!(
            matches!(out[0].info.as_ref(), TrackInfo::Audio(a) if a.codec == Codec::Mp2 && a.sample_rate == 44_100)
        );
    }

    #[test]
    fn garbage_is_skipped_and_mp3_is_refused() {
        let mut a = Mp2Audio::new();
        let mut out = Vec::new();
        let mut data = vec![1, 2, 3];
        data.extend(frame(false, true, 9));
        a.push_pes(None, &data, &mut out).expect("ok");
        assert_eq!(out.len(), 1);
        let mut b = Mp2Audio::new();
        assert_eq!(b.push_pes(None, &[0xFF, 0xFB, 0x90, 0x00, 0, 0], &mut out), Err(AudioError::NotLayer2(3)));
        let mut c = Mp2Audio::new();
        assert!(matches!(c.push_pes(None, &vec![0u8; 70_000], &mut out), Err(AudioError::NoHeader(_))));
    }
}
