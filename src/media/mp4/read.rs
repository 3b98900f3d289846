//! Reading back a fragmented MP4 file (a recording): the `moov` gives each track's codec
//! configuration (avc1/avcC, mp4a/esds) and timescale, the `moof`s each sample's decode time,
//! duration, composition offset, sync flag and bytes (zero-copy slices of the input).
//!
//! Written for the files [`init_segment`](super::init_segment) + [`fragment`](super::fragment)
//! make, but it follows the general rules (trex/tfhd defaults, base data offsets, `tfdt`
//! absent, several `trun`s), so ffmpeg's fragmented MP4 reads too. Hostile input gives an
//! [`Mp4Error`], never a panic, and costs memory in proportion to its length: the samples'
//! bytes, all at least one byte long, add up to at most the file's length.

use std::sync::Arc;

use bytes::Bytes;

use super::parse::{boxes, descriptor, find, path, require, Cursor};
use super::{Mp4Error, Track, TrackConfig};
use crate::media::aac::AudioSpecificConfig;
use crate::media::h264::AvcConfig;
use crate::media::{AudioInfo, Codec, TrackInfo, VideoInfo};

/// A file's tracks, in `moov` order.
#[derive(Debug, Clone)]
pub struct FragmentedFile {
    pub tracks: Vec<ReadTrack>,
    /// Every box was read ([`read_fragmented_partial`] stops at the first bad one).
    pub complete: bool,
}

impl FragmentedFile {
    pub fn track(&self, id: u32) -> Option<&ReadTrack> {
        self.tracks.iter().find(|t| t.track.id == id)
    }
}

/// One track: its configuration (as [`Track`] for writing and [`TrackInfo`] for the hub) and
/// its samples in decode order.
#[derive(Debug, Clone)]
pub struct ReadTrack {
    pub track: Track,
    pub info: Arc<TrackInfo>,
    pub samples: Vec<ReadSample>,
}

impl ReadTrack {
    /// `ticks` of this track's timescale in nanoseconds (rounded to the nearest).
    pub fn nanos(&self, ticks: i64) -> i64 {
        let scale = i128::from(self.track.timescale.max(1));
        let ns = (i128::from(ticks) * 1_000_000_000 + scale / 2).div_euclid(scale);
        ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
}

/// One sample; times in the track's timescale.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadSample {
    pub dts: i64,
    pub composition_offset: i32,
    pub duration: u32,
    pub sync: bool,
    pub data: Bytes,
}

impl ReadSample {
    pub fn pts(&self) -> i64 {
        self.dts.saturating_add(i64::from(self.composition_offset))
    }
}

/// Sample defaults of a track (`trex`), overridden per fragment by `tfhd`.
#[derive(Debug, Clone, Copy, Default)]
struct Defaults {
    duration: u32,
    size: u32,
    flags: u32,
}

/// `sample_is_non_sync_sample` of the sample flags.
const NON_SYNC: u32 = 0x0001_0000;

/// Reads a fragmented MP4 file: `ftyp`/`styp`/`sidx`/`free` are skipped, `moov` must come
/// before the first `moof`. Any malformed box is an error.
pub fn read_fragmented(data: &Bytes) -> Result<FragmentedFile, Mp4Error> {
    read(data, false)
}

/// Reads a file that may be cut short (still being written, or its writer died): the
/// fragments before the first incomplete or malformed one (a fragment is taken whole or not
/// at all). The `moov` must be whole.
pub fn read_fragmented_partial(data: &Bytes) -> Result<FragmentedFile, Mp4Error> {
    read(data, true)
}

fn read(data: &Bytes, partial: bool) -> Result<FragmentedFile, Mp4Error> {
    let mut complete = true;
    let mut tracks: Vec<ReadTrack> = Vec::new();
    let mut defaults: Vec<(u32, Defaults)> = Vec::new();
    let mut next_dts: Vec<i64> = Vec::new();
    let mut moov_seen = false;
    // Sample bytes so far: at most the file's length.
    let mut budget = data.len();
    for b in boxes(data) {
        let b = match b {
            Ok(b) => b,
            Err(_) if partial && moov_seen => {
                complete = false;
                break;
            }
            Err(e) => return Err(e),
        };
        match &b.fourcc {
            b"moov" if moov_seen => return Err(Mp4Error::Malformed("a second moov")),
            b"moov" => {
                moov_seen = true;
                for t in boxes(b.body) {
                    let t = t?;
                    if &t.fourcc == b"trak" {
                        let track = trak(t.body)?;
                        if tracks.iter().any(|x| x.track.id == track.track.id) {
                            return Err(Mp4Error::Malformed("two tracks with one id"));
                        }
                        tracks.push(track);
                        next_dts.push(0);
                    }
                }
                if let Some(mvex) = find(b.body, b"mvex")? {
                    defaults = trex(mvex)?;
                }
            }
            b"moof" if !moov_seen => return Err(Mp4Error::Malformed("moof before moov")),
            b"moof" => {
                let counts: Vec<usize> = tracks.iter().map(|t| t.samples.len()).collect();
                if let Err(e) = moof(data, b.start, b.body, &mut tracks, &mut next_dts, &defaults, &mut budget) {
                    if !partial {
                        return Err(e);
                    }
                    // Whole fragments only: this one's samples go, and reading ends here.
                    for (t, n) in tracks.iter_mut().zip(counts) {
                        t.samples.truncate(n);
                    }
                    complete = false;
                    break;
                }
            }
            _ => {}
        }
    }
    if !moov_seen {
        return Err(Mp4Error::Malformed("no moov"));
    }
    for t in &mut tracks {
        if let TrackInfo::Video(v) = Arc::make_mut(&mut t.info) {
            v.bframes = t.samples.iter().any(|s| s.composition_offset != 0);
        }
    }
    Ok(FragmentedFile { tracks, complete })
}

fn trak(body: &[u8]) -> Result<ReadTrack, Mp4Error> {
    let mut c = Cursor::new(require(body, b"tkhd", "tkhd")?);
    let (version, _) = c.version_flags("tkhd")?;
    c.skip(if version == 1 { 16 } else { 8 }, "tkhd")?;
    let id = c.u32("tkhd")?;
    let mdia = require(body, b"mdia", "mdia")?;
    let mut c = Cursor::new(require(mdia, b"mdhd", "mdhd")?);
    let (version, _) = c.version_flags("mdhd")?;
    c.skip(if version == 1 { 16 } else { 8 }, "mdhd")?;
    let timescale = c.u32("mdhd")?;
    if timescale == 0 {
        return Err(Mp4Error::Malformed("timescale 0"));
    }
    let mut c = Cursor::new(path(mdia, &[b"minf", b"stbl", b"stsd"], "stsd")?);
    c.skip(4, "stsd")?;
    if c.u32("stsd")? == 0 {
        return Err(Mp4Error::Malformed("no sample entry"));
    }
    let entry = boxes(c.rest()).next().ok_or(Mp4Error::Malformed("no sample entry"))??;
    let (config, info) = match &entry.fourcc {
        b"avc1" | b"avc3" => avc1(entry.body)?,
        b"mp4a" => mp4a(entry.body)?,
        other => return Err(Mp4Error::UnsupportedEntry(String::from_utf8_lossy(other).into_owned())),
    };
    Ok(ReadTrack { track: Track { id, timescale, config }, info: Arc::new(info), samples: Vec::new() })
}

fn avc1(body: &[u8]) -> Result<(TrackConfig, TrackInfo), Mp4Error> {
    let mut c = Cursor::new(body);
    c.skip(24, "avc1")?;
    let (mut width, mut height) = (c.u16("avc1")?, c.u16("avc1")?);
    c.skip(50, "avc1")?;
    let avcc = require(c.rest(), b"avcC", "avcC")?;
    let parsed = AvcConfig::parse(avcc).map_err(|_| Mp4Error::Malformed("avcC"))?;
    if width == 0 || height == 0 {
        let sps = parsed.first_sps().map_err(|_| Mp4Error::Malformed("avcC"))?;
        let size = |n: u32| u16::try_from(n).map_err(|_| Mp4Error::Size(sps.width, sps.height));
        (width, height) = (size(sps.width)?, size(sps.height)?);
    }
    let avcc = Bytes::copy_from_slice(avcc);
    let info = TrackInfo::Video(VideoInfo {
        codec: Codec::H264,
        width: u32::from(width),
        height: u32::from(height),
        fps: None,
        config: Some(avcc.clone()),
        bframes: false,
    });
    Ok((TrackConfig::H264 { width, height, avcc }, info))
}

fn mp4a(body: &[u8]) -> Result<(TrackConfig, TrackInfo), Mp4Error> {
    let mut c = Cursor::new(body);
    c.skip(16, "mp4a")?;
    let entry_channels = c.u16("mp4a")?;
    c.skip(10, "mp4a")?;
    let mut c = Cursor::new(require(c.rest(), b"esds", "esds")?);
    c.skip(4, "esds")?;
    let asc = esds(&mut c)?;
    let parsed = AudioSpecificConfig::parse(asc).map_err(|_| Mp4Error::Malformed("AudioSpecificConfig"))?;
    let sample_rate = parsed.output_sample_rate();
    let channels = match parsed.output_channels() {
        0 => u8::try_from(entry_channels.clamp(1, 8)).unwrap_or(2),
        n => n,
    };
    let asc = Bytes::copy_from_slice(asc);
    let info = TrackInfo::Audio(AudioInfo { codec: Codec::Aac, sample_rate, channels, config: Some(asc.clone()) });
    Ok((TrackConfig::Aac { sample_rate, channels: u16::from(channels), asc }, info))
}

/// The AudioSpecificConfig in an ES descriptor: ES_Descriptor → DecoderConfigDescriptor (an
/// AAC object type) → DecoderSpecificInfo.
fn esds<'a>(c: &mut Cursor<'a>) -> Result<&'a [u8], Mp4Error> {
    let (tag, es) = descriptor(c)?;
    if tag != 0x03 {
        return Err(Mp4Error::Malformed("ES descriptor"));
    }
    let mut es = Cursor::new(es);
    es.skip(2, "ES descriptor")?;
    let flags = es.u8("ES descriptor")?;
    if flags & 0x80 != 0 {
        es.skip(2, "ES descriptor")?;
    }
    if flags & 0x40 != 0 {
        let len = es.u8("ES descriptor")?;
        es.skip(usize::from(len), "ES descriptor")?;
    }
    if flags & 0x20 != 0 {
        es.skip(2, "ES descriptor")?;
    }
    let decoder = loop {
        match descriptor(&mut es)? {
            (0x04, body) => break body,
            _ => continue,
        }
    };
    let mut d = Cursor::new(decoder);
    // MPEG-4 audio, or MPEG-2 AAC (Main, LC, SSR).
    let object_type = d.u8("decoder config")?;
    if !matches!(object_type, 0x40 | 0x66..=0x68) {
        return Err(Mp4Error::UnsupportedEntry(format!("mp4a object type {object_type:#x}")));
    }
    d.skip(12, "decoder config")?;
    loop {
        if let (0x05, asc) = descriptor(&mut d)? {
            return Ok(asc);
        }
    }
}

fn trex(mvex: &[u8]) -> Result<Vec<(u32, Defaults)>, Mp4Error> {
    let mut out = Vec::new();
    for b in boxes(mvex) {
        let b = b?;
        if &b.fourcc == b"trex" {
            let mut c = Cursor::new(b.body);
            c.skip(4, "trex")?;
            let id = c.u32("trex")?;
            c.skip(4, "trex")?;
            let d = Defaults { duration: c.u32("trex")?, size: c.u32("trex")?, flags: c.u32("trex")? };
            out.push((id, d));
        }
    }
    Ok(out)
}

/// The samples of one `moof` (which starts at `moof_start` in `data`). `next_dts` holds each
/// track's next decode time (where its last sample ends), used when a traf has no `tfdt`.
fn moof(
    data: &Bytes,
    moof_start: usize,
    body: &[u8],
    tracks: &mut [ReadTrack],
    next_dts: &mut [i64],
    defaults: &[(u32, Defaults)],
    budget: &mut usize,
) -> Result<(), Mp4Error> {
    // Without an explicit base or default-base-is-moof, a track fragment's data follows the
    // previous one's (the first's starts at the moof).
    let mut implicit_base = moof_start;
    for traf in boxes(body) {
        let traf = traf?;
        if &traf.fourcc != b"traf" {
            continue;
        }
        let mut c = Cursor::new(require(traf.body, b"tfhd", "tfhd")?);
        let (_, flags) = c.version_flags("tfhd")?;
        let id = c.u32("tfhd")?;
        let index = tracks.iter().position(|t| t.track.id == id).ok_or(Mp4Error::Malformed("unknown track"))?;
        let mut d = defaults.iter().find(|(t, _)| *t == id).map(|(_, d)| *d).unwrap_or_default();
        let mut base = implicit_base;
        if flags & 0x01 != 0 {
            base = usize::try_from(c.u64("tfhd")?).map_err(|_| Mp4Error::Malformed("base data offset"))?;
        } else if flags & 0x02_0000 != 0 {
            base = moof_start;
        }
        if flags & 0x02 != 0 {
            c.skip(4, "tfhd")?;
        }
        if flags & 0x08 != 0 {
            d.duration = c.u32("tfhd")?;
        }
        if flags & 0x10 != 0 {
            d.size = c.u32("tfhd")?;
        }
        if flags & 0x20 != 0 {
            d.flags = c.u32("tfhd")?;
        }
        if let Some(tfdt) = find(traf.body, b"tfdt")? {
            let mut c = Cursor::new(tfdt);
            let (version, _) = c.version_flags("tfdt")?;
            let time = if version == 1 { c.u64("tfdt")? } else { u64::from(c.u32("tfdt")?) };
            next_dts[index] = i64::try_from(time).map_err(|_| Mp4Error::Malformed("tfdt"))?;
        }
        let mut next = base;
        for trun in boxes(traf.body) {
            let trun = trun?;
            if &trun.fourcc == b"trun" {
                let at = Run { base, next, defaults: d };
                next = run(data, trun.body, at, &mut tracks[index], &mut next_dts[index], budget)?;
            }
        }
        implicit_base = next;
    }
    Ok(())
}

/// Where a `trun`'s data is: `base` plus its data offset, else `next` (after the last run's).
struct Run {
    base: usize,
    next: usize,
    defaults: Defaults,
}

/// One `trun`'s samples; returns where its data ends.
fn run(
    data: &Bytes,
    body: &[u8],
    r: Run,
    track: &mut ReadTrack,
    dts: &mut i64,
    budget: &mut usize,
) -> Result<usize, Mp4Error> {
    let d = r.defaults;
    let mut c = Cursor::new(body);
    let (version, flags) = c.version_flags("trun")?;
    let count = c.u32("trun")? as usize;
    let mut at = r.next;
    if flags & 0x01 != 0 {
        let offset = c.i32("trun")?;
        at = r.base.checked_add_signed(offset as isize).ok_or(Mp4Error::Malformed("data offset"))?;
    }
    let first_flags = if flags & 0x04 != 0 { Some(c.u32("trun")?) } else { None };
    let per_sample = [0x100, 0x200, 0x400, 0x800].iter().filter(|&&f| flags & f != 0).count() * 4;
    if per_sample > 0 && count > c.remaining() / per_sample {
        return Err(Mp4Error::Malformed("trun sample count"));
    }
    // Every sample takes at least a byte of the budget: no more samples than bytes left.
    if count > *budget {
        return Err(Mp4Error::Malformed("more samples than bytes"));
    }
    track.samples.reserve(count);
    let video = track.track.is_video();
    for i in 0..count {
        let duration = if flags & 0x100 != 0 { c.u32("trun")? } else { d.duration };
        let size = if flags & 0x200 != 0 { c.u32("trun")? } else { d.size } as usize;
        let mut sample_flags = if flags & 0x400 != 0 { c.u32("trun")? } else { d.flags };
        if i == 0 {
            sample_flags = first_flags.unwrap_or(sample_flags);
        }
        let composition_offset = if flags & 0x800 == 0 {
            0
        } else if version == 0 {
            i32::try_from(c.u32("trun")?).map_err(|_| Mp4Error::Malformed("composition offset"))?
        } else {
            c.i32("trun")?
        };
        if size == 0 || size > *budget {
            return Err(Mp4Error::Malformed("sample size"));
        }
        *budget -= size;
        let end = at.checked_add(size).filter(|&e| e <= data.len()).ok_or(Mp4Error::Malformed("sample data"))?;
        let sync = !video || sample_flags & NON_SYNC == 0;
        track.samples.push(ReadSample { dts: *dts, composition_offset, duration, sync, data: data.slice(at..end) });
        *dts = dts.checked_add(i64::from(duration)).ok_or(Mp4Error::Malformed("decode time"))?;
        at = end;
    }
    Ok(at)
}
