//! Highlight clips: a wall-clock range of a stream cut into a progressive MP4, from the live
//! window ([`clip_from_window`]) or from recording files ([`clip_from_files`]), both through
//! one cutter ([`cut`]).
//!
//! The cut: the lead track (video, else audio) starts at its keyframe at or before `from` (the
//! first keyframe when `from` is older than what is there) and ends with the last sample that
//! came before `to`, moved back (with B-frames) to where every picture shown before it is in.
//! Audio joins from the first presented picture to the video's end. Times are rebased so the
//! clip starts at 0 with video and audio as they were aligned. Wall-clock times only choose
//! the samples; the clip's timing is the media's own.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::media::mp4::{self, read_fragmented_partial, Mp4Error, ProgressiveTrack, Sample, Track};
use crate::media::{Codec, TrackInfo, TrackKind, Ts};

use super::window::ClipWindow;

/// The longest clip by default.
pub const MAX_CLIP: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    #[error("the clip's range is empty (it must end after it starts)")]
    EmptyRange,
    #[error("a clip is at most {max:?} long; {asked:?} was asked for")]
    TooLong { asked: Duration, max: Duration },
    #[error("nothing of the stream between the range's ends")]
    NothingInRange,
    #[error("no keyframe to start the clip at")]
    NoKeyframe,
    #[error("clips carry H.264 and AAC, not {0}")]
    Unsupported(Codec),
    #[error(transparent)]
    Mp4(Mp4Error),
}

impl From<Mp4Error> for ClipError {
    fn from(e: Mp4Error) -> Self {
        match e {
            Mp4Error::Unsupported(codec) => ClipError::Unsupported(codec),
            other => ClipError::Mp4(other),
        }
    }
}

/// A sample with its arrival on the wall clock (to choose the range) and its decode and
/// presentation times on the stream's timeline (nanoseconds, for the clip's timing).
#[derive(Debug, Clone)]
pub struct TimedSample {
    pub wall: SystemTime,
    pub dts: i64,
    pub pts: i64,
    /// A keyframe (every audio frame).
    pub sync: bool,
    pub data: Bytes,
}

/// One track of a clip's source: its configuration and its samples in decode order.
#[derive(Debug, Clone)]
pub struct SourceTrack {
    pub info: Arc<TrackInfo>,
    pub samples: Vec<TimedSample>,
}

/// A cut clip.
#[derive(Debug, Clone)]
pub struct Clip {
    /// The progressive MP4.
    pub mp4: Bytes,
    /// Wall-clock time of its first picture (or audio frame).
    pub start: SystemTime,
    pub end: SystemTime,
    pub duration: Duration,
    pub video_frames: usize,
    pub audio_frames: usize,
    /// The audio codec left out of a video clip because MP4 here does not carry it (Opus).
    pub left_out: Option<Codec>,
}

/// Same codec configuration (what the MP4 sample entry holds): frame rate and B-frame hints
/// that the hub updates as it learns them do not count.
pub fn same_config(a: &Arc<TrackInfo>, b: &Arc<TrackInfo>) -> bool {
    if Arc::ptr_eq(a, b) {
        return true;
    }
    match (a.as_ref(), b.as_ref()) {
        (TrackInfo::Video(x), TrackInfo::Video(y)) => {
            (x.codec, x.width, x.height, &x.config) == (y.codec, y.width, y.height, &y.config)
        }
        (TrackInfo::Audio(x), TrackInfo::Audio(y)) => {
            (x.codec, x.sample_rate, x.channels, &x.config) == (y.codec, y.sample_rate, y.channels, &y.config)
        }
        _ => false,
    }
}

/// Cuts `[from, to)` of the live window (at most `max` long).
pub fn clip_from_window(
    window: &ClipWindow,
    from: SystemTime,
    to: SystemTime,
    max: Duration,
) -> Result<Clip, ClipError> {
    check_range(from, to, max)?; // before copying the window's sample list
    cut(&window.tracks(), from, to, max)
}

fn check_range(from: SystemTime, to: SystemTime, max: Duration) -> Result<(), ClipError> {
    let asked = to.duration_since(from).map_err(|_| ClipError::EmptyRange)?;
    if asked.is_zero() {
        return Err(ClipError::EmptyRange);
    }
    if asked > max {
        return Err(ClipError::TooLong { asked, max });
    }
    Ok(())
}

/// Cuts `[from, to)` out of `tracks` (the first video and the first audio track are used).
pub fn cut(tracks: &[SourceTrack], from: SystemTime, to: SystemTime, max: Duration) -> Result<Clip, ClipError> {
    check_range(from, to, max)?;
    let pick = |kind: TrackKind| tracks.iter().find(|t| t.info.kind() == kind && !t.samples.is_empty());
    let (video, audio) = (pick(TrackKind::Video), pick(TrackKind::Audio));
    let Some(lead) = video.or(audio) else { return Err(ClipError::NothingInRange) };
    let lead_track = Track::from_info(if video.is_some() { 1 } else { 2 }, &lead.info)?;
    // Audio MP4 cannot carry (Opus from WebRTC) is left out of a video clip.
    let mut left_out = None;
    let other = match (video, audio) {
        (Some(_), Some(a)) => match Track::from_info(2, &a.info) {
            Ok(track) => Some((track, a)),
            Err(Mp4Error::Unsupported(codec)) => {
                left_out = Some(codec);
                None
            }
            Err(e) => return Err(e.into()),
        },
        _ => None,
    };
    let samples = &lead.samples;
    if !samples.iter().any(|s| s.wall >= from && s.wall < to) {
        return Err(ClipError::NothingInRange);
    }
    let start = samples
        .iter()
        .rposition(|s| s.sync && s.wall <= from)
        .or_else(|| samples.iter().position(|s| s.sync && s.wall < to))
        .ok_or(ClipError::NoKeyframe)?;
    let last = samples.iter().rposition(|s| s.wall < to).unwrap_or(start).max(start);
    let end = presentation_end(samples, start, last);
    let lead_out = convert(&lead_track, samples, start..end + 1, None);
    let mut out = vec![lead_out.track];
    if let Some((track, a)) = other {
        // Audio presented from the first picture to the last one's end (no further: the
        // movie is as long as its pictures).
        let first = a.samples.partition_point(|s| s.pts < lead_out.first_pts);
        let mut last = a.samples.partition_point(|s| s.pts < lead_out.end_pts);
        while last > first && end_of(&a.samples, last - 1) > lead_out.end_pts {
            last -= 1;
        }
        if first < last {
            out.push(convert(&track, &a.samples, first..last, Some(lead_out.first_pts)).track);
        }
    }
    let count = |k: usize| out.get(k).map_or(0, |t| t.samples.len());
    let (video_frames, audio_frames) = if video.is_some() { (count(0), count(1)) } else { (0, count(0)) };
    let mp4 = mp4::progressive(&out)?;
    let first = &samples[start];
    let start_wall = shift(first.wall, lead_out.first_pts.saturating_sub(first.dts));
    let duration = Duration::from_nanos(lead_out.end_pts.saturating_sub(lead_out.first_pts).max(0) as u64);
    Ok(Clip {
        mp4,
        start: start_wall,
        end: start_wall.checked_add(duration).unwrap_or(start_wall),
        duration,
        video_frames,
        audio_frames,
        left_out,
    })
}

/// When sample `k` ends (ns): where the next one starts, or as long after it as the one before.
fn end_of(samples: &[TimedSample], k: usize) -> i64 {
    let s = &samples[k];
    match (samples.get(k + 1), k.checked_sub(1).map(|p| &samples[p])) {
        (Some(next), _) => s.pts.saturating_add(next.dts.saturating_sub(s.dts)),
        (None, Some(before)) => s.pts.saturating_add(s.dts.saturating_sub(before.dts)),
        (None, None) => s.pts,
    }
}

/// `t` moved by `ns` nanoseconds (either way).
fn shift(t: SystemTime, ns: i64) -> SystemTime {
    let d = Duration::from_nanos(ns.unsigned_abs());
    if ns >= 0 { t.checked_add(d) } else { t.checked_sub(d) }.unwrap_or(t)
}

/// The last sample to take of `start..=last` so that no picture shown before the ones taken is
/// left out (B-frames decode after the picture shown after them): where every presentation
/// time so far is before the next sample's.
fn presentation_end(samples: &[TimedSample], start: usize, last: usize) -> usize {
    let mut latest = i64::MIN;
    let mut end = None;
    for (k, s) in samples.iter().enumerate().take(last + 1).skip(start) {
        latest = latest.max(s.pts);
        if samples.get(k + 1).is_none_or(|next| next.pts > latest) {
            end = Some(k);
        }
    }
    end.unwrap_or(last)
}

/// A track's part of the clip and where it is presented (ns of the stream's timeline).
struct Converted {
    track: ProgressiveTrack,
    first_pts: i64,
    end_pts: i64,
}

/// `samples[range]` in `track`'s timescale, decode times from 0, each lasting until the next
/// sample of the source (the last source sample as long as the one before it). `origin`: the
/// movie's start (ns), when this track starts after it (an empty edit of the difference).
fn convert(track: &Track, samples: &[TimedSample], range: std::ops::Range<usize>, origin: Option<i64>) -> Converted {
    let scale = track.timescale;
    let ticks = |ns: i64| -> i64 {
        let t = (i128::from(ns) * i128::from(scale) + 500_000_000).div_euclid(1_000_000_000);
        t.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    };
    let duration_of = |k: usize| -> i64 {
        if let Some(next) = samples.get(k + 1) {
            ticks(next.dts).saturating_sub(ticks(samples[k].dts))
        } else if let Some(before) = k.checked_sub(1).and_then(|p| samples.get(p)) {
            ticks(samples[k].dts).saturating_sub(ticks(before.dts))
        } else if track.is_video() {
            i64::from(scale / 25)
        } else {
            1024 // an AAC frame
        }
    };
    let mut out = Vec::with_capacity(range.len());
    let (mut first_pts, mut end_pts) = (i64::MAX, i64::MIN);
    for k in range {
        let s = &samples[k];
        let duration = duration_of(k).clamp(1, i64::from(u32::MAX));
        let offset = ticks(s.pts).saturating_sub(ticks(s.dts));
        let composition_offset = offset.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        first_pts = first_pts.min(s.pts);
        end_pts = end_pts.max(s.pts.saturating_add(Ts::from_ticks(duration, scale).as_nanos()));
        out.push(Sample { duration: duration as u32, composition_offset, sync: s.sync, data: s.data.clone() });
    }
    let delay = origin.map_or(0, |o| ticks(first_pts.saturating_sub(o)).max(0) as u64);
    Converted { track: ProgressiveTrack { track: track.clone(), delay, samples: out }, first_pts, end_pts }
}

/// Cuts `[from, to)` out of a recording's files: `(wall-clock time of the file's first
/// picture (first audio frame without video), the file)`, in recording order, each a
/// fragmented MP4 whose decode times continue the one before's. Only the files around the
/// range are read; a file cut short (the one still being written) counts up to its last
/// whole fragment. When the configuration changes (or the timeline starts over) between
/// files, the clip comes from the files after the last such change before `to`, as from a
/// window that restarted.
pub fn clip_from_files(
    files: &[(SystemTime, Bytes)],
    from: SystemTime,
    to: SystemTime,
    max: Duration,
) -> Result<Clip, ClipError> {
    check_range(from, to, max)?;
    // From the file before the one `from` falls in (its keyframe may be there) to the last
    // one starting before `to`.
    let first = files.iter().rposition(|(start, _)| *start <= from).unwrap_or(0).saturating_sub(1);
    let last = files.iter().rposition(|(start, _)| *start < to).ok_or(ClipError::NothingInRange)?;
    let mut tracks: Vec<SourceTrack> = Vec::new();
    for (start, data) in files.iter().take(last + 1).skip(first) {
        // A file cut short (the one being written) gives its whole fragments.
        let file = read_fragmented_partial(data)?;
        // The file's start is its first picture's (as the segmenter's segment start, taken at
        // a keyframe), or first audio frame's without video.
        let lead = file.tracks.iter().filter(|t| !t.samples.is_empty()).min_by_key(|t| !t.track.is_video());
        let Some(anchor) = lead.map(|t| t.nanos(t.samples[0].dts)) else { continue };
        let mut parts: Vec<(Arc<TrackInfo>, Vec<TimedSample>)> = Vec::new();
        for kind in TrackKind::ALL {
            let Some(t) = file.tracks.iter().find(|t| t.info.kind() == kind && !t.samples.is_empty()) else {
                continue;
            };
            let samples = t.samples.iter().map(|s| {
                let dts = t.nanos(s.dts);
                let wall = shift(*start, dts.saturating_sub(anchor));
                TimedSample { wall, dts, pts: t.nanos(s.pts()), sync: s.sync, data: s.data.clone() }
            });
            parts.push((t.info.clone(), samples.collect()));
        }
        // A new configuration or timeline: what came before is left out.
        let breaks = parts.iter().any(|(info, samples)| {
            let first = samples.first().map_or(i64::MAX, |s| s.dts);
            tracks.iter().find(|x| x.info.kind() == info.kind()).is_some_and(|x| !continues(x, info, first))
        });
        if breaks {
            tracks.clear();
        }
        for (info, samples) in parts {
            match tracks.iter_mut().find(|x| x.info.kind() == info.kind()) {
                Some(x) => x.samples.extend(samples),
                None => tracks.push(SourceTrack { info, samples }),
            }
        }
    }
    cut(&tracks, from, to, max)
}

/// A file's track continues `track`: same configuration, decode times going on.
fn continues(track: &SourceTrack, info: &Arc<TrackInfo>, first_dts: i64) -> bool {
    same_config(&track.info, info) && track.samples.last().is_none_or(|s| s.dts < first_dts)
}

#[cfg(test)]
#[path = "clip_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "clip_media_tests.rs"]
mod media_tests;

/// Synthetic streams for the window's and the clip's tests.
#[cfg(test)]
#[path = "testing.rs"]
pub(super) mod testing;
