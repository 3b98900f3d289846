//! Progressive (non-fragmented) MP4 with the index first ("faststart"), as clips are served:
//! `ftyp`, then `moov` with every sample's time, size, sync flag and position, then one
//! `mdat` with the samples, the tracks interleaved in chunks of about half a second so a
//! player streaming the file has both tracks at hand.
//!
//! Timing: each track's first sample decodes at media time 0; an edit list starts the
//! presentation at the earliest presentation time (the composition offset of the first
//! picture when there are B-frames) and delays a track that starts later than the movie (an
//! empty edit), so video and audio stay aligned and the movie starts at 0.

use bytes::{BufMut, Bytes, BytesMut};

use super::boxes::BoxWriter;
use super::init::{mvhd, trak, Edit, TrakTimes, MOVIE_TIMESCALE};
use super::{Mp4Error, Sample, Track};

/// One track of a progressive file.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressiveTrack {
    pub track: Track,
    /// Where the track's first presented sample shows on the movie's timeline, in the track's
    /// timescale (0 for the track that starts the movie).
    pub delay: u64,
    /// In decode order, each lasting its `duration` (the first decodes at 0).
    pub samples: Vec<Sample>,
}

/// A chunk closes after this much media (in seconds: half a second) or this many bytes.
const CHUNK_SECONDS_DIVISOR: u64 = 2;
const CHUNK_BYTES: usize = 1 << 20;

/// Consecutive samples of one track stored together.
struct Chunk {
    track: usize,
    first: usize,
    count: usize,
    /// Decode time of its first sample, in nanoseconds (to interleave tracks).
    start_ns: i128,
    /// From the start of the mdat's payload.
    offset: u64,
}

/// Writes `tracks` (those with samples; at least one) as one progressive MP4.
pub fn progressive(tracks: &[ProgressiveTrack]) -> Result<Bytes, Mp4Error> {
    let tracks: Vec<&ProgressiveTrack> = tracks.iter().filter(|t| !t.samples.is_empty()).collect();
    if tracks.is_empty() {
        return Err(Mp4Error::NoSamples);
    }
    for t in &tracks {
        if u32::try_from(t.samples.len()).is_err() || t.samples.iter().any(|s| u32::try_from(s.data.len()).is_err()) {
            return Err(Mp4Error::TooLarge("a sample or the sample count"));
        }
    }
    let (chunks, payload) = layout(&tracks);
    let ftyp = ftyp();
    let mdat_header: u64 = if payload + 8 > u64::from(u32::MAX) { 16 } else { 8 };
    let fixed = ftyp.len() as u64 + mdat_header + payload;
    // Offsets do not change a box's size; whether they need 64 bits does.
    let mut co64 = false;
    let mut moov_len = moov(&tracks, &chunks, 0, co64).len() as u64;
    if fixed + moov_len > u64::from(u32::MAX) {
        co64 = true;
        moov_len = moov(&tracks, &chunks, 0, co64).len() as u64;
    }
    let base = ftyp.len() as u64 + moov_len + mdat_header;
    let moov = moov(&tracks, &chunks, base, co64);
    let total = usize::try_from(fixed + moov_len).map_err(|_| Mp4Error::TooLarge("the file"))?;
    let mut out = BytesMut::with_capacity(total);
    out.put_slice(&ftyp);
    out.put_slice(&moov);
    if mdat_header == 16 {
        out.put_u32(1);
        out.put_slice(b"mdat");
        out.put_u64(payload + 16);
    } else {
        out.put_u32((payload + 8) as u32);
        out.put_slice(b"mdat");
    }
    for c in &chunks {
        for s in &tracks[c.track].samples[c.first..c.first + c.count] {
            out.put_slice(&s.data);
        }
    }
    debug_assert_eq!(out.len(), total);
    Ok(out.freeze())
}

fn ftyp() -> Bytes {
    let mut w = BoxWriter::new();
    w.open(b"ftyp").bytes(b"isom").u32(0x200);
    for brand in [b"isom", b"iso2", b"avc1", b"mp41"] {
        w.bytes(brand);
    }
    w.close();
    w.finish().freeze()
}

/// Cuts each track into chunks, interleaves them by decode time and places them in the mdat;
/// returns the chunks in file order and the payload's length.
fn layout(tracks: &[&ProgressiveTrack]) -> (Vec<Chunk>, u64) {
    let mut chunks = Vec::new();
    for (index, t) in tracks.iter().enumerate() {
        let scale = u64::from(t.track.timescale.max(1));
        let limit = (scale / CHUNK_SECONDS_DIVISOR).max(1);
        let mut dts = 0u64;
        let mut open: Option<(Chunk, u64, usize)> = None;
        for (i, s) in t.samples.iter().enumerate() {
            let full = open.as_ref().is_some_and(|(_, length, bytes)| *length >= limit || *bytes >= CHUNK_BYTES);
            if full {
                chunks.extend(open.take().map(|(c, _, _)| c));
            }
            let (chunk, length, bytes) = open.get_or_insert_with(|| {
                let start_ns = i128::from(dts) * 1_000_000_000 / i128::from(scale);
                (Chunk { track: index, first: i, count: 0, start_ns, offset: 0 }, 0, 0)
            });
            chunk.count += 1;
            *length += u64::from(s.duration);
            *bytes += s.data.len();
            dts += u64::from(s.duration);
        }
        chunks.extend(open.map(|(c, _, _)| c));
    }
    chunks.sort_by_key(|c| (c.start_ns, c.track));
    let mut offset = 0u64;
    for c in &mut chunks {
        c.offset = offset;
        offset += tracks[c.track].samples[c.first..c.first + c.count].iter().map(|s| s.data.len() as u64).sum::<u64>();
    }
    (chunks, offset)
}

/// Run-length entries `(count, value)` of `values`.
fn runs<T: PartialEq + Copy>(values: impl Iterator<Item = T>) -> Vec<(u32, T)> {
    let mut out: Vec<(u32, T)> = Vec::new();
    for v in values {
        match out.last_mut() {
            Some((n, last)) if *last == v => *n += 1,
            _ => out.push((1, v)),
        }
    }
    out
}

/// Converts `t` ticks of `from` Hz to `to` Hz, rounded to the nearest.
fn rescale(t: u64, from: u32, to: u32) -> u64 {
    let from = u128::from(from.max(1));
    ((u128::from(t) * u128::from(to) + from / 2) / from) as u64
}

/// A track's durations and edit list from its samples.
fn times(t: &ProgressiveTrack) -> TrakTimes {
    let mut dts = 0i64;
    let (mut first_pts, mut end_pts) = (i64::MAX, i64::MIN);
    for s in &t.samples {
        let pts = dts + i64::from(s.composition_offset);
        first_pts = first_pts.min(pts);
        end_pts = end_pts.max(pts + i64::from(s.duration));
        dts += i64::from(s.duration);
    }
    let media_duration = dts as u64;
    let media_time = first_pts.max(0) as u64;
    let shown = (end_pts.max(0) as u64).saturating_sub(media_time);
    let scale = t.track.timescale;
    let delay = rescale(t.delay, scale, MOVIE_TIMESCALE);
    let shown_movie = rescale(shown, scale, MOVIE_TIMESCALE);
    let mut edits = Vec::new();
    if delay > 0 {
        edits.push(Edit { duration: delay, media_time: None });
    }
    if delay > 0 || media_time > 0 {
        edits.push(Edit { duration: shown_movie, media_time: Some(media_time) });
    }
    TrakTimes { duration: delay + shown_movie, media_duration, edits }
}

fn moov(tracks: &[&ProgressiveTrack], chunks: &[Chunk], base: u64, co64: bool) -> Bytes {
    let mut w = BoxWriter::new();
    let times: Vec<TrakTimes> = tracks.iter().map(|t| times(t)).collect();
    let duration = times.iter().map(|t| t.duration).max().unwrap_or(0);
    let ids: Vec<Track> = tracks.iter().map(|t| t.track.clone()).collect();
    w.open(b"moov");
    mvhd(&mut w, duration, &ids);
    for (index, (t, times)) in tracks.iter().zip(&times).enumerate() {
        let mine: Vec<&Chunk> = chunks.iter().filter(|c| c.track == index).collect();
        trak(&mut w, &t.track, times, |w| tables(w, t, &mine, base, co64));
    }
    w.close();
    w.finish().freeze()
}

/// `stts`, `ctts`, `stss`, `stsc`, `stsz` and `stco`/`co64` (after the `stsd`).
fn tables(w: &mut BoxWriter, t: &ProgressiveTrack, chunks: &[&Chunk], base: u64, co64: bool) {
    let samples = &t.samples;
    let stts = runs(samples.iter().map(|s| s.duration));
    w.open_full(b"stts", 0, 0).u32(stts.len() as u32);
    for (n, d) in stts {
        w.u32(n).u32(d);
    }
    w.close();
    if samples.iter().any(|s| s.composition_offset != 0) {
        // Version 1 (signed offsets) only when one is negative.
        let version = u8::from(samples.iter().any(|s| s.composition_offset < 0));
        let ctts = runs(samples.iter().map(|s| s.composition_offset));
        w.open_full(b"ctts", version, 0).u32(ctts.len() as u32);
        for (n, o) in ctts {
            w.u32(n).i32(o);
        }
        w.close();
    }
    if t.track.is_video() {
        let sync: Vec<u32> = (1..).zip(samples).filter(|(_, s)| s.sync).map(|(i, _)| i).collect();
        w.open_full(b"stss", 0, 0).u32(sync.len() as u32);
        for i in sync {
            w.u32(i);
        }
        w.close();
    }
    // Chunks with the same sample count share an entry (from its first chunk, 1-based).
    let mut stsc: Vec<(u32, u32)> = Vec::new();
    for (i, c) in (1u32..).zip(chunks) {
        if stsc.last().is_none_or(|(_, n)| *n != c.count as u32) {
            stsc.push((i, c.count as u32));
        }
    }
    w.open_full(b"stsc", 0, 0).u32(stsc.len() as u32);
    for (first, n) in stsc {
        w.u32(first).u32(n).u32(1);
    }
    w.close();
    let size = samples[0].data.len();
    if samples.iter().all(|s| s.data.len() == size) {
        w.open_full(b"stsz", 0, 0).u32(size as u32).u32(samples.len() as u32).close();
    } else {
        w.open_full(b"stsz", 0, 0).u32(0).u32(samples.len() as u32);
        for s in samples {
            w.u32(s.data.len() as u32);
        }
        w.close();
    }
    w.open_full(if co64 { b"co64" } else { b"stco" }, 0, 0).u32(chunks.len() as u32);
    for c in chunks {
        if co64 {
            w.u64(base + c.offset);
        } else {
            w.u32((base + c.offset) as u32);
        }
    }
    w.close();
}
