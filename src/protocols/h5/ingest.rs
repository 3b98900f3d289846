//! H5 ingest without IO: MPEG-TS bytes in (any chunking), frames for the hub out.
//!
//! Nothing comes out before the first MPEG-1 I-picture, so a caller that publishes to the hub
//! only once frames come out never leaves a half-made stream behind. Refused: input that is
//! not MPEG-TS, a program without MPEG-1 video (e.g. H.264 in TS), MPEG-2 video, and a stream
//! with no I-picture within [`MAX_PROBE_BYTES`]. Audio other than MP2 is dropped (logged).

use crate::media::{Frame, Ts};

use super::mp2_audio::{AudioError, Mp2Audio};
use super::mpeg1_video::{Mpeg1Video, VideoError};
use super::ts::demux::{DemuxError, DemuxEvent, TsDemuxer, TsLimits};
use super::ts::{
    stream_type_name, EsEntry, CLOCK_HZ, STREAM_TYPE_MPEG1_AUDIO, STREAM_TYPE_MPEG1_VIDEO, STREAM_TYPE_MPEG2_AUDIO,
    STREAM_TYPE_MPEG2_VIDEO,
};

/// How much input may go by without a PMT or an I-picture before it is refused.
pub const MAX_PROBE_BYTES: u64 = 4 << 20;

/// Why an H5 publish is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Demux(#[from] DemuxError),
    #[error("the MPEG-TS program has no MPEG-1 video; it carries {0}")]
    NoMpeg1Video(String),
    #[error("{0}")]
    Video(#[from] VideoError),
    #[error("no PAT/PMT in the first {0} bytes of MPEG-TS")]
    NoProgram(u64),
    #[error("no MPEG-1 I-picture in the first {0} bytes of MPEG-TS")]
    NoKeyframe(u64),
    #[error("the input ended after {0} bytes without an MPEG-1 I-picture")]
    EndedEarly(u64),
}

impl IngestError {
    /// The input is media of a kind H5 does not take (HTTP 415), rather than broken (400).
    pub fn is_unsupported_media(&self) -> bool {
        !self.is_over_limit()
            && matches!(
                self,
                IngestError::Demux(DemuxError::NotTs(_)) | IngestError::NoMpeg1Video(_) | IngestError::Video(_)
            )
    }

    /// The input passed a configured limit (`limits:`; HTTP 413).
    pub fn is_over_limit(&self) -> bool {
        matches!(
            self,
            IngestError::Video(VideoError::TooLarge(_))
                | IngestError::Demux(DemuxError::PesTooLarge { .. } | DemuxError::TooMuchBuffered { .. })
        )
    }
}

/// Extends 33-bit 90 kHz timestamps to a continuous count (one clock for the program).
#[derive(Debug, Default)]
struct Unwrap {
    last: Option<i64>,
}

impl Unwrap {
    fn ts(&mut self, raw: u64) -> Ts {
        const PERIOD: i64 = 1 << 33;
        let raw = raw as i64;
        let value = match self.last {
            None => raw,
            Some(last) => {
                let base = last - last.rem_euclid(PERIOD);
                [base - PERIOD + raw, base + raw, base + PERIOD + raw]
                    .into_iter()
                    .min_by_key(|v| (v - last).abs())
                    .unwrap_or(raw)
            }
        };
        self.last = Some(value);
        Ts::from_ticks(value, CLOCK_HZ)
    }
}

#[derive(Debug, Default)]
pub struct TsIngest {
    demux: TsDemuxer,
    events: Vec<DemuxEvent>,
    video_pid: Option<u16>,
    audio_pid: Option<u16>,
    video: Mpeg1Video,
    audio: Mp2Audio,
    clock: Unwrap,
    started: bool,
    audio_off: bool,
    bytes: u64,
    frames: u64,
}

impl TsIngest {
    pub fn new() -> TsIngest {
        TsIngest::default()
    }

    /// An ingest that refuses input passing `limits` (a PES or a picture over `max_pes`).
    pub fn with_limits(limits: TsLimits) -> TsIngest {
        let mut ingest = TsIngest { demux: TsDemuxer::with_limits(limits), ..TsIngest::default() };
        ingest.video.set_max_picture(limits.max_pes);
        ingest
    }

    /// True once the first I-picture came out (from then on the stream is live).
    pub fn started(&self) -> bool {
        self.started
    }

    /// Bytes fed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Frames handed out so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Feeds bytes; appends the frames they complete (in stream order) to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<Frame>) -> Result<(), IngestError> {
        self.bytes += data.len() as u64;
        let mut events = std::mem::take(&mut self.events);
        let result =
            self.demux.push(data, &mut events).map_err(IngestError::from).and_then(|()| self.handle(&mut events, out));
        events.clear();
        self.events = events;
        result?;
        if !self.started && self.bytes > MAX_PROBE_BYTES {
            return Err(if self.video_pid.is_none() {
                IngestError::NoProgram(self.bytes)
            } else {
                IngestError::NoKeyframe(self.bytes)
            });
        }
        Ok(())
    }

    /// End of input: flushes what is pending. An input that never started is an error.
    pub fn finish(&mut self, out: &mut Vec<Frame>) -> Result<(), IngestError> {
        let mut events = Vec::new();
        self.demux.finish(&mut events);
        self.handle(&mut events, out)?;
        let before = out.len();
        self.video.finish(out)?;
        self.admit(before, out);
        if !self.started {
            return Err(IngestError::EndedEarly(self.bytes));
        }
        Ok(())
    }

    fn handle(&mut self, events: &mut Vec<DemuxEvent>, out: &mut Vec<Frame>) -> Result<(), IngestError> {
        for event in events.drain(..) {
            match event {
                DemuxEvent::Program(streams) => self.program(&streams)?,
                DemuxEvent::Pes(pes) => {
                    let pts = pes.pts.map(|t| self.clock.ts(t));
                    let dts = pes.dts.map(|t| self.clock.ts(t));
                    let before = out.len();
                    if Some(pes.pid) == self.video_pid {
                        self.video.push_pes(pts, dts, &pes.data, out)?;
                    } else if Some(pes.pid) == self.audio_pid && !self.audio_off {
                        if let Err(e) = self.audio.push_pes(pts, &pes.data, out) {
                            self.audio_dropped(&e);
                        }
                    }
                    self.admit(before, out);
                }
            }
        }
        Ok(())
    }

    /// Drops what came out before the first I-picture (audio included).
    fn admit(&mut self, before: usize, out: &mut Vec<Frame>) {
        if !self.started {
            match out[before..].iter().position(|f| f.is_video_keyframe()) {
                Some(i) => {
                    out.drain(before..before + i);
                    self.started = true;
                }
                None => out.truncate(before),
            }
        }
        self.frames += (out.len() - before) as u64;
    }

    fn program(&mut self, streams: &[EsEntry]) -> Result<(), IngestError> {
        let video = streams.iter().find(|s| matches!(s.stream_type, STREAM_TYPE_MPEG1_VIDEO | STREAM_TYPE_MPEG2_VIDEO));
        let Some(video) = video else {
            let carried: Vec<String> = streams
                .iter()
                .map(|s| format!("{} (stream type {:#04x})", stream_type_name(s.stream_type), s.stream_type))
                .collect();
            let carried = if carried.is_empty() { "no streams".to_string() } else { carried.join(", ") };
            return Err(IngestError::NoMpeg1Video(carried));
        };
        self.video_pid = Some(video.pid);
        let audio = streams.iter().find(|s| matches!(s.stream_type, STREAM_TYPE_MPEG1_AUDIO | STREAM_TYPE_MPEG2_AUDIO));
        self.audio_pid = audio.map(|a| a.pid);
        if audio.is_none() {
            if let Some(other) = streams.iter().find(|s| s.pid != video.pid) {
                tracing::warn!(
                    stream_type = other.stream_type,
                    "H5 publish: audio {} is not MP2; dropped",
                    stream_type_name(other.stream_type)
                );
            }
        }
        Ok(())
    }

    fn audio_dropped(&mut self, error: &AudioError) {
        tracing::warn!(%error, "H5 publish: audio dropped");
        self.audio_off = true;
    }
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
