//! MPEG-1 video elementary stream → frames: one picture each, with the sequence and GOP
//! headers before it kept in front, I-pictures made self-contained (the last sequence
//! header is put in front of an I-picture that lacks one).
//!
//! Muxers put one picture per PES; that case costs no delay: a PES that starts at a picture
//! boundary is emitted as soon as it is complete. If a PES ever continues a picture (does not
//! start at a boundary), the assembler switches to cutting at the start codes only, one
//! picture later.

use std::sync::Arc;

use bytes::Bytes;

use crate::media::{Codec, Frame, TrackInfo, Ts, VideoInfo};

const SEQUENCE_HEADER: u8 = 0xB3;
const EXTENSION: u8 = 0xB5;
const GROUP_OF_PICTURES: u8 = 0xB8;
const PICTURE: u8 = 0x00;

/// The elementary stream is not one this gateway can carry as H5.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VideoError {
    #[error("the video is MPEG-2 (a sequence extension follows the sequence header); H5 carries MPEG-1 video only")]
    Mpeg2,
    #[error("an MPEG-1 picture passes the limit of {0} bytes")]
    TooLarge(usize),
}

/// Largest picture a [`Mpeg1Video`] assembles unless told otherwise.
pub const MAX_PICTURE: usize = 8 << 20;

/// The frame rates of frame_rate_code 1..=8 as (numerator, denominator).
const FRAME_RATES: [(u32, u32); 8] =
    [(24000, 1001), (24, 1), (25, 1), (30000, 1001), (30, 1), (50, 1), (60000, 1001), (60, 1)];

#[derive(Debug, Clone, PartialEq)]
struct Sequence {
    width: u32,
    height: u32,
    rate: Option<(u32, u32)>,
    /// The header's bytes (start code to the next start code), to put in front of I-pictures.
    bytes: Bytes,
}

impl Sequence {
    fn frame_duration(&self) -> Ts {
        let (num, den) = self.rate.unwrap_or((30, 1));
        Ts((1_000_000_000i64 * den as i64) / num as i64)
    }
}

/// Picture coding types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PictureType {
    I,
    P,
    B,
    Other,
}

#[derive(Debug, Default)]
pub struct Mpeg1Video {
    sequence: Option<Sequence>,
    info: Option<Arc<TrackInfo>>,
    bframes: bool,
    /// The picture being assembled (split mode), with the timestamps of the PES it began in.
    pending: Vec<u8>,
    pending_ts: (Option<Ts>, Option<Ts>),
    split: bool,
    last: Option<(Ts, Ts)>,
    dropped: u64,
    /// Largest picture assembled (default [`MAX_PICTURE`]).
    max_picture: Option<usize>,
}

impl Mpeg1Video {
    pub fn new() -> Mpeg1Video {
        Mpeg1Video::default()
    }

    /// Refuses pictures (with what precedes them) longer than `max` bytes.
    pub fn set_max_picture(&mut self, max: usize) {
        self.max_picture = Some(max);
    }

    /// The current track description (None before a sequence header).
    pub fn info(&self) -> Option<&Arc<TrackInfo>> {
        self.info.as_ref()
    }

    /// Pictures dropped: before the first sequence header, or a continuation whose start
    /// was already sent.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Feeds one PES payload; appends the pictures it completes.
    pub fn push_pes(
        &mut self,
        pts: Option<Ts>,
        dts: Option<Ts>,
        data: &[u8],
        out: &mut Vec<Frame>,
    ) -> Result<(), VideoError> {
        let starts = first_start_code(data).filter(|&(p, code)| is_boundary(code) && data[..p].iter().all(|b| *b == 0));
        let mut rest = data;
        match starts {
            Some((p, _)) => {
                self.flush_pending(out, false)?;
                if self.pending.is_empty() {
                    self.pending_ts = (pts, dts);
                }
                rest = &data[p..];
            }
            None if self.pending.is_empty() => {
                if !self.split {
                    tracing::warn!("an MPEG-1 picture continues in a second PES; cutting at start codes from now on");
                    self.split = true;
                }
                // Skip to the next picture start in this PES.
                match boundaries(data, 0).into_iter().next() {
                    Some(p) => {
                        self.dropped += 1;
                        self.pending_ts = (None, None);
                        rest = &data[p..];
                    }
                    None => return Ok(()),
                }
            }
            None => {}
        }
        let max = self.max_picture.unwrap_or(MAX_PICTURE);
        if self.pending.len() + rest.len() > max {
            self.pending = Vec::new();
            return Err(VideoError::TooLarge(max));
        }
        let scan_from = self.pending.len().saturating_sub(3);
        self.pending.extend_from_slice(rest);
        // Cut every whole picture; the last one stays pending.
        let cuts = picture_cuts(&self.pending, scan_from);
        if !cuts.is_empty() {
            let mut start = 0;
            let mut ts = self.pending_ts;
            let all = std::mem::take(&mut self.pending);
            for cut in cuts {
                self.emit(&all[start..cut], ts, out)?;
                ts = (None, None);
                start = cut;
            }
            self.pending = all[start..].to_vec();
            self.pending_ts = ts;
        }
        if !self.split {
            self.flush_pending(out, false)?;
        }
        Ok(())
    }

    /// End of the stream: emits the picture still pending.
    pub fn finish(&mut self, out: &mut Vec<Frame>) -> Result<(), VideoError> {
        self.flush_pending(out, true)
    }

    /// Emits the pending access unit if it holds a picture (headers alone wait for theirs),
    /// or whatever it holds when `all`.
    fn flush_pending(&mut self, out: &mut Vec<Frame>, all: bool) -> Result<(), VideoError> {
        if self.pending.is_empty() || !(all || start_codes(&self.pending).any(|(_, c)| c == PICTURE)) {
            return Ok(());
        }
        let au = std::mem::take(&mut self.pending);
        let ts = std::mem::take(&mut self.pending_ts);
        self.emit(&au, ts, out)
    }

    /// Turns one access unit (headers + one picture) into a frame.
    fn emit(
        &mut self,
        au: &[u8],
        (pts, dts): (Option<Ts>, Option<Ts>),
        out: &mut Vec<Frame>,
    ) -> Result<(), VideoError> {
        let mut picture = None;
        let mut has_sequence = false;
        let mut codes = start_codes(au).peekable();
        while let Some((pos, code)) = codes.next() {
            match code {
                SEQUENCE_HEADER => {
                    let end = codes.peek().map_or(au.len(), |&(p, _)| p);
                    if codes.peek().is_some_and(|&(_, c)| c == EXTENSION) {
                        return Err(VideoError::Mpeg2);
                    }
                    if let Some(seq) = parse_sequence(&au[pos..end]) {
                        self.set_sequence(seq);
                        has_sequence = true;
                    }
                }
                EXTENSION => return Err(VideoError::Mpeg2),
                PICTURE if picture.is_none() => picture = au.get(pos + 5).map(|b| picture_type((b >> 3) & 0x07)),
                _ => {}
            }
        }
        let (Some(kind), Some(seq)) = (picture, self.sequence.clone()) else {
            self.dropped += 1;
            return Ok(());
        };
        let keyframe = kind == PictureType::I;
        if kind == PictureType::B && !self.bframes {
            self.bframes = true;
            self.refresh_info();
        }
        let step = seq.frame_duration();
        let data = if keyframe && !has_sequence {
            let mut whole = Vec::with_capacity(seq.bytes.len() + au.len());
            whole.extend_from_slice(&seq.bytes);
            whole.extend_from_slice(au);
            Bytes::from(whole)
        } else {
            Bytes::copy_from_slice(au)
        };
        let (pts, dts) = match (pts, dts, self.last) {
            (Some(p), Some(d), _) => (p, d),
            (Some(p), None, _) => (p, p),
            (None, _, Some((lp, ld))) => (lp + step, ld + step),
            (None, _, None) => (Ts::ZERO, Ts::ZERO),
        };
        self.last = Some((pts, dts));
        let Some(info) = self.info.clone() else { return Ok(()) };
        out.push(Frame::new(info, dts, pts, keyframe, data));
        Ok(())
    }

    fn set_sequence(&mut self, seq: Sequence) {
        let changed =
            self.sequence.as_ref().is_none_or(|s| (s.width, s.height, s.rate) != (seq.width, seq.height, seq.rate));
        self.sequence = Some(seq);
        if changed {
            self.refresh_info();
        }
    }

    fn refresh_info(&mut self) {
        let Some(seq) = &self.sequence else { return };
        self.info = Some(Arc::new(TrackInfo::Video(VideoInfo {
            codec: Codec::Mpeg1,
            width: seq.width,
            height: seq.height,
            fps: seq.rate.map(|(n, d)| n as f64 / d as f64),
            config: None,
            bframes: self.bframes,
        })));
    }
}

fn picture_type(code: u8) -> PictureType {
    match code {
        1 => PictureType::I,
        2 => PictureType::P,
        3 => PictureType::B,
        _ => PictureType::Other,
    }
}

/// Start codes that begin an access unit.
fn is_boundary(code: u8) -> bool {
    matches!(code, SEQUENCE_HEADER | GROUP_OF_PICTURES | PICTURE)
}

/// Every start code (`00 00 01 xx`) from `from` on: (position of the first 00, xx).
fn start_codes(data: &[u8]) -> impl Iterator<Item = (usize, u8)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i + 3 < data.len() {
            if data[i + 2] > 1 {
                i += 3;
            } else if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
                let found = (i, data[i + 3]);
                i += 4;
                return Some(found);
            } else {
                i += 1;
            }
        }
        None
    })
}

fn first_start_code(data: &[u8]) -> Option<(usize, u8)> {
    start_codes(data).next()
}

/// Positions in `data` (at or after `from`) where a boundary start code begins.
fn boundaries(data: &[u8], from: usize) -> Vec<usize> {
    start_codes(data).filter(|&(p, c)| p >= from && is_boundary(c)).map(|(p, _)| p).collect()
}

/// Where access units end in `data` (which starts at an access unit): each boundary start
/// code that follows a picture start code of the same unit. Only cuts at or after `from`
/// are new; earlier ones were taken already.
fn picture_cuts(data: &[u8], from: usize) -> Vec<usize> {
    let mut cuts = Vec::new();
    let mut seen_picture = false;
    for (pos, code) in start_codes(data) {
        if is_boundary(code) && seen_picture {
            if pos >= from {
                cuts.push(pos);
            }
            seen_picture = false;
        }
        if code == PICTURE {
            seen_picture = true;
        }
    }
    cuts
}

/// Reads a sequence header (starting at its start code).
fn parse_sequence(bytes: &[u8]) -> Option<Sequence> {
    let b = bytes.get(4..8)?;
    let width = ((b[0] as u32) << 4) | (b[1] as u32 >> 4);
    let height = (((b[1] & 0x0F) as u32) << 8) | b[2] as u32;
    let code = (b[3] & 0x0F) as usize;
    if width == 0 || height == 0 {
        return None;
    }
    let rate = code.checked_sub(1).and_then(|i| FRAME_RATES.get(i)).copied();
    Some(Sequence { width, height, rate, bytes: Bytes::copy_from_slice(bytes) })
}

#[cfg(test)]
#[path = "mpeg1_video_tests.rs"]
mod tests;
