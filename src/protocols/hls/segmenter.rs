//! Cuts a stream's frames into fMP4 parts and segments for (LL-)HLS: pure, frames in, parts
//! and segments out, time passed in (str0m style), so it is tested without sockets.
//!
//! A segment starts on a video keyframe once the one before is at least the target duration
//! long; a part closes every part target (about 200 ms). Each part is one `moof`+`mdat` with
//! every track's samples up to its end; a segment's bytes are its parts' in order. A sample's
//! duration is the next sample's dts minus its own, so each track holds its newest frame until
//! the next one comes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};

use crate::media::mp4::{self, Mp4Error, Run, Sample, Track};
use crate::media::{Frame, TrackInfo, TrackKind};

#[derive(Debug, Clone, Copy)]
pub struct SegmenterConfig {
    /// A segment is cut at the first keyframe after this much media.
    pub target: Duration,
    /// A part closes after this much media.
    pub part: Duration,
    /// Completed segments kept (for the playlist and late requests).
    pub keep: usize,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        SegmenterConfig { target: Duration::from_secs(2), part: Duration::from_millis(200), keep: 8 }
    }
}

/// One part: a fragment of a segment.
#[derive(Debug, Clone)]
pub struct Part {
    pub duration: f64,
    /// Starts with a video keyframe (or the stream has no video).
    pub independent: bool,
    pub data: Bytes,
}

#[derive(Debug, Clone)]
pub struct Segment {
    /// Media sequence number.
    pub msn: u64,
    pub parts: Vec<Part>,
    /// Wall-clock time of its first frame (EXT-X-PROGRAM-DATE-TIME).
    pub started: SystemTime,
    /// The init segment version its parts need; a change shows as a discontinuity.
    pub init: u32,
    pub complete: bool,
}

impl Segment {
    pub fn duration(&self) -> f64 {
        self.parts.iter().map(|p| p.duration).sum()
    }

    /// The segment's bytes: its parts' fragments in order.
    pub fn bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.parts.iter().map(|p| p.data.len()).sum());
        for p in &self.parts {
            out.extend_from_slice(&p.data);
        }
        out.freeze()
    }
}

/// The segments a segmenter keeps: the newest `keep` complete ones, then the open one,
/// numbered in order (a segment closed without a part gives its number to the next).
#[derive(Debug, Default)]
pub struct SegmentList {
    list: VecDeque<Segment>,
    next_msn: u64,
    keep: usize,
}

impl SegmentList {
    pub fn new(keep: usize) -> SegmentList {
        SegmentList { list: VecDeque::new(), next_msn: 0, keep }
    }

    pub fn all(&self) -> &VecDeque<Segment> {
        &self.list
    }

    pub fn find(&self, msn: u64) -> Option<&Segment> {
        self.list.iter().find(|s| s.msn == msn)
    }

    /// The open segment, if any.
    pub fn open_segment(&mut self) -> Option<&mut Segment> {
        self.list.back_mut().filter(|s| !s.complete)
    }

    /// Whether a segment is open without a part yet.
    pub fn is_fresh(&self) -> bool {
        self.list.back().is_some_and(|s| !s.complete && s.parts.is_empty())
    }

    /// Opens the next segment, started at `now`, needing init version `init`.
    pub fn open(&mut self, now: SystemTime, init: u32) {
        self.list.push_back(Segment { msn: self.next_msn, parts: Vec::new(), started: now, init, complete: false });
        self.next_msn += 1;
    }

    /// Completes the open segment and drops the oldest beyond `keep`.
    pub fn close(&mut self) {
        if let Some(segment) = self.list.back_mut() {
            segment.complete = true;
            if segment.parts.is_empty() {
                // Never listed: its number goes to the next one.
                self.list.pop_back();
                self.next_msn -= 1;
            }
        }
        while self.list.iter().filter(|s| s.complete).count() > self.keep {
            self.list.pop_front();
        }
    }
}

/// A sample waiting for the next one of its track (which gives its duration).
struct Held {
    dts: i64,
    pts: i64,
    sync: bool,
    data: Bytes,
}

struct TrackState {
    kind: TrackKind,
    track: Track,
    info: Arc<TrackInfo>,
    held: Option<Held>,
    /// Samples since the last part, with their decode times.
    pending: Vec<(i64, Sample)>,
    /// The duration of its last sample with a successor (track timescale): what [`Segmenter::flush`]
    /// gives the held one.
    last_duration: u32,
}

pub struct Segmenter {
    config: SegmenterConfig,
    tracks: Vec<TrackState>,
    init: Option<(u32, Bytes)>,
    /// Earlier init segments, newest last, for segments still listed that need them.
    old_inits: VecDeque<(u32, Bytes)>,
    init_version: u32,
    segments: SegmentList,
    /// Where the open part and segment start, in ns of the stream's timeline.
    part_start: Option<i64>,
    segment_start: Option<i64>,
    sequence: u32,
}

impl Segmenter {
    pub fn new(config: SegmenterConfig) -> Segmenter {
        Segmenter {
            config,
            tracks: Vec::new(),
            init: None,
            old_inits: VecDeque::new(),
            init_version: 0,
            segments: SegmentList::new(config.keep),
            part_start: None,
            segment_start: None,
            sequence: 0,
        }
    }

    /// The current init segment and its version.
    pub fn init(&self) -> Option<&(u32, Bytes)> {
        self.init.as_ref()
    }

    /// The init segment of `version`, the current one or one a kept segment may still need.
    pub fn init_of(&self, version: u32) -> Option<&Bytes> {
        self.init.iter().chain(self.old_inits.iter()).find(|(v, _)| *v == version).map(|(_, b)| b)
    }

    /// Declares the tracks before any frame (each as its first frame would), so that a track
    /// whose first frame comes later (a conversion still starting) is in the first init
    /// segment instead of making a second one.
    pub fn prepare(&mut self, infos: &[Arc<TrackInfo>]) -> Result<(), Mp4Error> {
        for info in infos {
            if !self.tracks.iter().any(|t| t.kind == info.kind()) {
                self.retrack(info.kind(), info)?;
            }
        }
        Ok(())
    }

    /// Segments kept: completed ones, then the open one (if it has a part).
    pub fn segments(&self) -> &VecDeque<Segment> {
        self.segments.all()
    }

    pub fn segment(&self, msn: u64) -> Option<&Segment> {
        self.segments.find(msn)
    }

    /// Takes a frame (video and audio interleaved by arrival, each track's dts rising).
    pub fn push(&mut self, frame: &Frame, now: SystemTime) -> Result<(), Mp4Error> {
        let kind = frame.kind();
        let changed = self
            .tracks
            .iter()
            .find(|t| t.kind == kind)
            .is_none_or(|t| !Arc::ptr_eq(&t.info, &frame.info) && *t.info != *frame.info);
        if changed {
            self.retrack(kind, &frame.info)?;
        }
        let has_video = self.tracks.iter().any(|t| t.kind == TrackKind::Video);
        let dts = frame.dts.as_nanos();
        // The clock that cuts: video when there is video, else audio.
        let leads = kind == TrackKind::Video || !has_video;
        if !leads {
            // Audio waits for the first picture.
            if self.segment_start.is_some() {
                self.hold(kind, frame);
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
                self.hold(kind, frame);
            }
            return Ok(());
        };
        // The sample before this one now has its duration and is pending: cuts fall after it.
        self.hold(kind, frame);
        let part_age = dts - self.part_start.unwrap_or(dts);
        if keyframe && dts - segment_start >= self.config.target.as_nanos() as i64 {
            self.close_part(dts);
            self.close_segment();
            self.segment_start = Some(dts);
            self.open_segment(now);
        } else if part_age >= self.config.part.as_nanos() as i64 {
            self.close_part(dts);
        }
        Ok(())
    }

    /// A track appears or its configuration changed: a new init segment; the open segment
    /// ends (the next one starts at a keyframe with the new configuration).
    fn retrack(&mut self, kind: TrackKind, info: &Arc<TrackInfo>) -> Result<(), Mp4Error> {
        let id = match kind {
            TrackKind::Video => 1,
            TrackKind::Audio => 2,
        };
        let track = Track::from_info(id, info)?;
        // A segment with no part yet takes the new init (the second track showing up).
        let fresh = self.segments.is_fresh();
        if self.segment_start.is_some() && !fresh {
            if let Some(at) = self.tracks.iter().filter_map(|t| t.held.as_ref().map(|h| h.dts)).max() {
                self.close_part(at + 1);
            }
            self.close_segment();
            self.segment_start = None;
            self.part_start = None;
        }
        self.tracks.retain(|t| t.kind != kind);
        self.tracks.push(TrackState {
            kind,
            track,
            info: info.clone(),
            held: None,
            pending: Vec::new(),
            last_duration: 0,
        });
        self.tracks.sort_by_key(|t| t.track.id);
        self.init_version += 1;
        let tracks: Vec<Track> = self.tracks.iter().map(|t| t.track.clone()).collect();
        if let Some(old) = self.init.replace((self.init_version, mp4::init_segment(&tracks))) {
            self.old_inits.push_back(old);
            if self.old_inits.len() > self.config.keep {
                self.old_inits.pop_front();
            }
        }
        if fresh {
            if let Some(open) = self.segments.open_segment() {
                open.init = self.init_version;
            }
        }
        Ok(())
    }

    /// Ends the stream (a recording stops): each track's held sample goes in with the duration
    /// of the sample before it, and the open part and segment close, so nothing pushed is
    /// lost. Frames pushed later start a new segment at a keyframe.
    pub fn flush(&mut self) {
        if self.segment_start.is_none() {
            return;
        }
        let mut end = None::<i64>;
        for state in &mut self.tracks {
            let Some(held) = state.held.take() else { continue };
            let scale = i64::from(state.track.timescale);
            let ticks = |ns: i64| ((ns as i128) * scale as i128 / 1_000_000_000) as i64;
            let duration = state.last_duration.max(1);
            let composition_offset = (ticks(held.pts) - ticks(held.dts)).clamp(i32::MIN as i64, i32::MAX as i64) as i32;
            let sync = held.sync || state.kind == TrackKind::Audio;
            let ns = (i128::from(duration) * 1_000_000_000 / i128::from(scale.max(1))) as i64;
            end = Some(end.map_or(held.dts + ns.max(1), |e| e.max(held.dts + ns.max(1))));
            state.pending.push((held.dts, Sample { duration, composition_offset, sync, data: held.data }));
        }
        if let Some(end) = end {
            self.close_part(end);
        }
        self.close_segment();
        self.segment_start = None;
        self.part_start = None;
    }

    /// Holds the frame; the one it replaces now has its duration and joins the pending part.
    fn hold(&mut self, kind: TrackKind, frame: &Frame) {
        let Some(state) = self.tracks.iter_mut().find(|t| t.kind == kind) else { return };
        let scale = i64::from(state.track.timescale);
        let ticks = |ns: i64| ((ns as i128) * scale as i128 / 1_000_000_000) as i64;
        let next = Held {
            dts: frame.dts.as_nanos(),
            pts: frame.pts.as_nanos(),
            sync: frame.keyframe,
            data: frame.data.clone(),
        };
        if let Some(prev) = state.held.replace(next) {
            let duration = (ticks(frame.dts.as_nanos()) - ticks(prev.dts)).clamp(1, u32::MAX as i64) as u32;
            let composition_offset = (ticks(prev.pts) - ticks(prev.dts)).clamp(i32::MIN as i64, i32::MAX as i64) as i32;
            let sync = prev.sync || kind == TrackKind::Audio;
            state.last_duration = duration;
            state.pending.push((prev.dts, Sample { duration, composition_offset, sync, data: prev.data }));
        }
    }

    /// Closes the open part at `end` (ns): every pending sample before it goes in.
    fn close_part(&mut self, end: i64) {
        let Some(start) = self.part_start else { return };
        let mut runs = Vec::new();
        let mut independent = true;
        for state in &mut self.tracks {
            let scale = i64::from(state.track.timescale);
            let split = state.pending.iter().position(|(dts, _)| *dts >= end).unwrap_or(state.pending.len());
            let taken: Vec<(i64, Sample)> = state.pending.drain(..split).collect();
            let Some((first_dts, first)) = taken.first() else { continue };
            if state.kind == TrackKind::Video && !first.sync {
                independent = false;
            }
            let base = ((*first_dts as i128) * scale as i128 / 1_000_000_000).max(0) as u64;
            runs.push(Run {
                track_id: state.track.id,
                base_decode_time: base,
                samples: taken.into_iter().map(|(_, s)| s).collect(),
            });
        }
        self.part_start = Some(end);
        if runs.is_empty() {
            return;
        }
        self.sequence += 1;
        let data = mp4::fragment(self.sequence, &runs);
        let duration = (end - start).max(0) as f64 / 1e9;
        if let Some(segment) = self.segments.open_segment() {
            segment.parts.push(Part { duration, independent, data });
        }
    }

    fn open_segment(&mut self, now: SystemTime) {
        let init = self.init.as_ref().map_or(0, |(v, _)| *v);
        self.segments.open(now, init);
    }

    fn close_segment(&mut self) {
        self.segments.close();
    }
}

#[cfg(test)]
#[path = "segmenter_tests.rs"]
mod tests;
