//! Cuts a stream's frames into MPEG-TS segments for plain HLS (H.264 + AAC): pure, frames in,
//! segments out, time passed in, with the cut rules and the [`Segment`]s of the fMP4
//! [`Segmenter`](super::segmenter::Segmenter).
//!
//! Each segment starts with a PAT and a PMT (H.264 as stream type 0x1B on the video PID, AAC
//! in ADTS as 0x0F on the audio PID; the PCR on the video PID, or on the audio PID when there
//! is no video), then one PES per frame, packetized by the H5 muxer ([`write_pes`]). Video
//! goes out as Annex B with an access unit delimiter first and, before a keyframe that does
//! not carry them, the avcC's SPS and PPS; audio as one ADTS frame per PES, its header built
//! from the AudioSpecificConfig. Parts close every part target as the fMP4 ones do (a
//! segment's bytes are its parts'), though a TS playlist lists whole segments only. The
//! continuity counters run on across segments; a segment's `init` is a version that goes up
//! when a track's configuration or the set of tracks changes (a discontinuity).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::media::aac::{build_adts_header, build_asc, AacError, AudioSpecificConfig};
use crate::media::h264::{avcc_nals, nal_type, AvcConfig, H264Error, NAL_AUD, NAL_IDR, NAL_PPS, NAL_SPS};
use crate::media::{Codec, Frame, TrackInfo, TrackKind};
use crate::protocols::h5::ts::mux::{frame_pes, write_pes, ProgramTables};
use crate::protocols::h5::ts::{PACKET_SIZE, STREAM_TYPE_AAC_ADTS, STREAM_TYPE_H264};

use super::segmenter::{Part, Segment, SegmentList, SegmenterConfig};

/// Why a frame was not taken (the caller skips it; the segmenter is as it was).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TsError {
    #[error("{0} does not go into HLS MPEG-TS (H.264 and AAC only)")]
    Unsupported(Codec),
    #[error(transparent)]
    H264(#[from] H264Error),
    #[error(transparent)]
    Aac(#[from] AacError),
}

/// An access unit delimiter NAL (primary_pic_type 7: any slice type) with its start code.
const AUD: [u8; 6] = [0, 0, 0, 1, NAL_AUD, 0xF0];
const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// How a track's frames become PES payloads.
#[derive(Debug, Clone)]
enum Conversion {
    /// The AVCC NAL length size, and the avcC's SPS and PPS as Annex B.
    H264 {
        len_size: u8,
        params: Vec<u8>,
    },
    Aac(AudioSpecificConfig),
}

impl Conversion {
    fn new(info: &TrackInfo) -> Result<Conversion, TsError> {
        match info {
            TrackInfo::Video(v) if v.codec == Codec::H264 => {
                // Without an avcC the frames must carry their parameter sets themselves.
                let Some(config) = &v.config else { return Ok(Conversion::H264 { len_size: 4, params: Vec::new() }) };
                let avc = AvcConfig::parse(config)?;
                let mut params = Vec::new();
                for nal in avc.sps.iter().chain(&avc.pps) {
                    params.extend_from_slice(&START_CODE);
                    params.extend_from_slice(nal);
                }
                Ok(Conversion::H264 { len_size: avc.nal_length_size, params })
            }
            TrackInfo::Audio(a) if a.codec == Codec::Aac => {
                let asc = match &a.config {
                    Some(config) => AudioSpecificConfig::parse(config)?,
                    None => AudioSpecificConfig::parse(&build_asc(a.sample_rate, a.channels)?)?,
                };
                // Refuse now what ADTS cannot say, not at every frame.
                build_adts_header(&asc, 0)?;
                Ok(Conversion::Aac(asc))
            }
            other => Err(TsError::Unsupported(other.codec())),
        }
    }

    /// The PES payload of a frame: an Annex B access unit or an ADTS frame.
    fn payload(&self, frame: &Frame) -> Result<Vec<u8>, TsError> {
        match self {
            Conversion::H264 { len_size, params } => annexb_access_unit(&frame.data, *len_size, frame.keyframe, params),
            Conversion::Aac(asc) => {
                let mut out = Vec::with_capacity(7 + frame.data.len());
                out.extend_from_slice(&build_adts_header(asc, frame.data.len())?);
                out.extend_from_slice(&frame.data);
                Ok(out)
            }
        }
    }
}

/// An AVCC access unit as Annex B: an access unit delimiter first (any in the input is
/// dropped), then `params` (SPS + PPS, Annex B) if it is a keyframe (or holds an IDR slice)
/// without both an SPS and a PPS of its own, then its NAL units. A NAL length running past
/// the end, or no NAL unit at all, is an error.
fn annexb_access_unit(avcc: &[u8], len_size: u8, keyframe: bool, params: &[u8]) -> Result<Vec<u8>, TsError> {
    let mut nals = Vec::new();
    let (mut sps, mut pps, mut idr) = (false, false, false);
    for nal in avcc_nals(avcc, len_size) {
        let nal = nal?;
        match nal_type(nal) {
            None | Some(NAL_AUD) => continue,
            Some(NAL_SPS) => sps = true,
            Some(NAL_PPS) => pps = true,
            Some(NAL_IDR) => idr = true,
            Some(_) => {}
        }
        nals.push(nal);
    }
    if nals.is_empty() {
        return Err(H264Error::Invalid("access unit without NAL units".into()).into());
    }
    let insert = (keyframe || idr) && !(sps && pps);
    let size = AUD.len() + if insert { params.len() } else { 0 } + nals.iter().map(|n| 4 + n.len()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&AUD);
    if insert {
        out.extend_from_slice(params);
    }
    for nal in nals {
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(nal);
    }
    Ok(out)
}

/// Do two track infos need the same conversion (codec and decoder configuration)?
fn same_config(a: &TrackInfo, b: &TrackInfo) -> bool {
    match (a, b) {
        (TrackInfo::Video(x), TrackInfo::Video(y)) => x.codec == y.codec && x.config == y.config,
        (TrackInfo::Audio(x), TrackInfo::Audio(y)) => {
            x.codec == y.codec
                && x.config == y.config
                && (x.config.is_some() || (x.sample_rate, x.channels) == (y.sample_rate, y.channels))
        }
        _ => false,
    }
}

struct Track {
    info: Arc<TrackInfo>,
    conversion: Conversion,
}

pub struct TsSegmenter {
    config: SegmenterConfig,
    /// Video and audio, by [`TrackKind::index`].
    tracks: [Option<Track>; 2],
    /// The video and audio PIDs' continuity counters.
    cc: [u8; 2],
    tables: ProgramTables,
    init_version: u32,
    segments: SegmentList,
    /// The open part's packets (the segment's PAT and PMT go in front when it closes).
    part: Vec<u8>,
    /// Whether the open part's first video frame is a keyframe (None: no video in it yet).
    part_keyframe: Option<bool>,
    /// Where the open part and segment start, in ns of the stream's timeline.
    part_start: Option<i64>,
    segment_start: Option<i64>,
}

impl TsSegmenter {
    pub fn new(config: SegmenterConfig) -> TsSegmenter {
        TsSegmenter {
            config,
            tracks: [None, None],
            cc: [0, 0],
            tables: ProgramTables::with_types(None, None),
            init_version: 0,
            segments: SegmentList::new(config.keep),
            part: Vec::new(),
            part_keyframe: None,
            part_start: None,
            segment_start: None,
        }
    }

    /// Segments kept: completed ones, then the open one.
    pub fn segments(&self) -> &VecDeque<Segment> {
        self.segments.all()
    }

    pub fn segment(&self, msn: u64) -> Option<&Segment> {
        self.segments.find(msn)
    }

    /// Declares the tracks before any frame (each as its first frame would), so that a track
    /// whose first frame comes later is in the first segment's program.
    pub fn prepare(&mut self, infos: &[Arc<TrackInfo>]) -> Result<(), TsError> {
        for info in infos {
            let kind = info.kind();
            if self.tracks[kind.index()].is_none() {
                let track = Track { info: info.clone(), conversion: Conversion::new(info)? };
                self.retrack(kind, track, 0);
            }
        }
        Ok(())
    }

    /// Takes a frame (video and audio interleaved by arrival, each track's dts rising). On an
    /// error (a codec TS does not carry here, a configuration or payload it cannot convert)
    /// nothing changed.
    pub fn push(&mut self, frame: &Frame, now: SystemTime) -> Result<(), TsError> {
        let kind = frame.kind();
        let slot = kind.index();
        let retrack = match &self.tracks[slot] {
            Some(t) if Arc::ptr_eq(&t.info, &frame.info) || same_config(&t.info, &frame.info) => None,
            _ => Some(Track { info: frame.info.clone(), conversion: Conversion::new(&frame.info)? }),
        };
        let payload = match (&retrack, &self.tracks[slot]) {
            (Some(track), _) | (None, Some(track)) => track.conversion.payload(frame)?,
            (None, None) => return Ok(()),
        };
        let dts = frame.dts.as_nanos();
        match retrack {
            Some(track) => self.retrack(kind, track, dts),
            None => {
                if let Some(t) = &mut self.tracks[slot] {
                    t.info = frame.info.clone();
                }
            }
        }
        let has_video = self.tracks[TrackKind::Video.index()].is_some();
        // The clock that cuts: video when there is video, else audio.
        let leads = kind == TrackKind::Video || !has_video;
        if !leads {
            // Audio waits for the first picture.
            if self.segment_start.is_some() {
                self.write(frame, &payload);
            }
            return Ok(());
        }
        let keyframe = frame.keyframe || kind == TrackKind::Audio;
        let Some(segment_start) = self.segment_start else {
            if keyframe {
                // Nothing decodes before the first keyframe.
                self.segment_start = Some(dts);
                self.part_start = Some(dts);
                self.open_segment(now);
                self.write(frame, &payload);
            }
            return Ok(());
        };
        let part_age = dts - self.part_start.unwrap_or(dts);
        if keyframe && dts - segment_start >= self.config.target.as_nanos() as i64 {
            self.close_part(dts);
            self.close_segment();
            self.segment_start = Some(dts);
            self.open_segment(now);
        } else if part_age >= self.config.part.as_nanos() as i64 {
            self.close_part(dts);
        }
        self.write(frame, &payload);
        Ok(())
    }

    /// A track appears or its configuration changed: a new init version; the open segment
    /// ends at `at` (the next one starts at a keyframe), unless nothing of it is out yet.
    fn retrack(&mut self, kind: TrackKind, track: Track, at: i64) {
        // A segment with no part yet takes the new version (the second track showing up).
        let fresh = self.segments.is_fresh();
        if self.segment_start.is_some() && !fresh {
            self.close_part(at.max(self.part_start.unwrap_or(at)));
            self.close_segment();
            self.segment_start = None;
            self.part_start = None;
        }
        let before = self.track_set();
        self.tracks[kind.index()] = Some(track);
        if self.track_set() != before {
            let (video, audio) = self.track_set();
            self.tables =
                ProgramTables::with_types(video.then_some(STREAM_TYPE_H264), audio.then_some(STREAM_TYPE_AAC_ADTS));
        }
        self.init_version += 1;
        if fresh {
            if let Some(open) = self.segments.open_segment() {
                open.init = self.init_version;
            }
        }
    }

    fn track_set(&self) -> (bool, bool) {
        (self.tracks[TrackKind::Video.index()].is_some(), self.tracks[TrackKind::Audio.index()].is_some())
    }

    /// Appends the frame's PES to the open part.
    fn write(&mut self, frame: &Frame, payload: &[u8]) {
        let kind = frame.kind();
        let carries_pcr = kind == TrackKind::Video || !self.track_set().0;
        if kind == TrackKind::Video && self.part_keyframe.is_none() {
            self.part_keyframe = Some(frame.keyframe);
        }
        write_pes(&frame_pes(frame, carries_pcr), payload, &mut self.cc[kind.index()], &mut self.part);
    }

    /// Closes the open part at `end` (ns); the first part of a segment gets its PAT and PMT.
    fn close_part(&mut self, end: i64) {
        let Some(start) = self.part_start else { return };
        self.part_start = Some(end);
        let independent = self.part_keyframe.take().unwrap_or(true);
        let packets = std::mem::take(&mut self.part);
        if packets.is_empty() {
            return;
        }
        let Some(segment) = self.segments.open_segment() else { return };
        let data = if segment.parts.is_empty() {
            let mut data = Vec::with_capacity(2 * PACKET_SIZE + packets.len());
            self.tables.write(&mut data);
            data.extend_from_slice(&packets);
            data
        } else {
            packets
        };
        let duration = (end - start).max(0) as f64 / 1e9;
        segment.parts.push(Part { duration, independent, data: Bytes::from(data) });
    }

    fn open_segment(&mut self, now: SystemTime) {
        let init = self.init_version;
        self.segments.open(now, init);
    }

    fn close_segment(&mut self) {
        self.segments.close();
    }
}

#[cfg(test)]
#[path = "ts_tests.rs"]
mod tests;
