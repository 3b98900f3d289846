//! The initialization segment of fragmented MP4 (CMAF): `ftyp` + `moov` with one track per
//! codec configuration and `mvex`, no samples (they come in fragments).

use bytes::Bytes;

use super::boxes::BoxWriter;
use super::Mp4Error;
use crate::media::{Codec, TrackInfo};

/// H.264 in MP4 counts time in 90 kHz ticks (as RTP and MPEG-TS do).
pub const VIDEO_TIMESCALE: u32 = 90_000;

#[derive(Debug, Clone, PartialEq)]
pub enum TrackConfig {
    H264 { width: u16, height: u16, avcc: Bytes },
    Aac { sample_rate: u32, channels: u16, asc: Bytes },
}

/// One track of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub id: u32,
    pub timescale: u32,
    pub config: TrackConfig,
}

impl Track {
    /// The MP4 track for a hub track (H.264 and AAC, with their configurations).
    pub fn from_info(id: u32, info: &TrackInfo) -> Result<Track, Mp4Error> {
        match info {
            TrackInfo::Video(v) if v.codec == Codec::H264 => {
                let avcc = v.config.clone().ok_or(Mp4Error::NoConfig(Codec::H264))?;
                let size = |n: u32| u16::try_from(n).map_err(|_| Mp4Error::Size(v.width, v.height));
                let config = TrackConfig::H264 { width: size(v.width)?, height: size(v.height)?, avcc };
                Ok(Track { id, timescale: VIDEO_TIMESCALE, config })
            }
            TrackInfo::Audio(a) if a.codec == Codec::Aac => {
                let asc = a.config.clone().ok_or(Mp4Error::NoConfig(Codec::Aac))?;
                if a.sample_rate == 0 {
                    return Err(Mp4Error::NoConfig(Codec::Aac));
                }
                let config =
                    TrackConfig::Aac { sample_rate: a.sample_rate, channels: u16::from(a.channels.max(1)), asc };
                Ok(Track { id, timescale: a.sample_rate, config })
            }
            other => Err(Mp4Error::Unsupported(other.codec())),
        }
    }

    pub fn is_video(&self) -> bool {
        matches!(self.config, TrackConfig::H264 { .. })
    }
}

/// `ftyp` + `moov` for `tracks`.
pub fn init_segment(tracks: &[Track]) -> Bytes {
    let mut w = BoxWriter::new();
    w.open(b"ftyp").bytes(b"iso6").u32(0);
    for brand in [b"iso6", b"cmfc", b"isom", b"mp41"] {
        w.bytes(brand);
    }
    w.close();
    w.open(b"moov");
    mvhd(&mut w, 0, tracks);
    for track in tracks {
        // No samples here: every table is empty (the fragments hold them).
        trak(&mut w, track, &TrakTimes::default(), |w| {
            for empty in [b"stts", b"stsc", b"stco"] {
                w.open_full(empty, 0, 0).u32(0).close();
            }
            w.open_full(b"stsz", 0, 0).u32(0).u32(0).close();
        });
    }
    w.open(b"mvex");
    for track in tracks {
        w.open_full(b"trex", 0, 0).u32(track.id).u32(1).u32(0).u32(0).u32(0).close();
    }
    w.close();
    w.close();
    w.finish().freeze()
}

/// The movie's timescale (`mvhd`): milliseconds.
pub(super) const MOVIE_TIMESCALE: u32 = 1000;

/// A track's place on the movie's timeline, beyond its samples.
#[derive(Debug, Clone, Default)]
pub(super) struct TrakTimes {
    /// The track's length on the movie's timeline (`tkhd`), in [`MOVIE_TIMESCALE`] units.
    pub duration: u64,
    /// The length of its media (`mdhd`: the sum of its sample durations), in its timescale.
    pub media_duration: u64,
    /// The edit list (`elst`); none when empty.
    pub edits: Vec<Edit>,
}

/// One edit list entry: `duration` of the movie's timeline shows the media from `media_time`
/// (its timescale), or nothing (an empty edit: a delay) when `media_time` is `None`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Edit {
    pub duration: u64,
    pub media_time: Option<u64>,
}

/// Version 1 (64-bit times) only when a value needs it, so short files keep version 0.
fn version_for(values: &[u64]) -> u8 {
    u8::from(values.iter().any(|&v| v > u64::from(u32::MAX)))
}

/// `mvhd`: the movie's timescale and duration, and the next free track id.
pub(super) fn mvhd(w: &mut BoxWriter, duration: u64, tracks: &[Track]) {
    let version = version_for(&[duration]);
    w.open_full(b"mvhd", version, 0);
    if version == 1 {
        w.u64(0).u64(0).u32(MOVIE_TIMESCALE).u64(duration);
    } else {
        w.u32(0).u32(0).u32(MOVIE_TIMESCALE).u32(duration as u32);
    }
    w.u32(0x0001_0000).u16(0x0100).zeros(10);
    w.unity_matrix().zeros(24).u32(tracks.iter().map(|t| t.id).max().unwrap_or(0) + 1).close();
}

/// One `trak`: header, edit list, media header and handler, and the sample table with the
/// sample entry; `tables` writes the rest of the `stbl` after the `stsd`.
pub(super) fn trak(w: &mut BoxWriter, track: &Track, times: &TrakTimes, tables: impl FnOnce(&mut BoxWriter)) {
    let (width, height) = match &track.config {
        TrackConfig::H264 { width, height, .. } => (*width, *height),
        TrackConfig::Aac { .. } => (0, 0),
    };
    let audio = !track.is_video();
    w.open(b"trak");
    // Flags: enabled, in movie, in preview.
    let version = version_for(&[times.duration]);
    w.open_full(b"tkhd", version, 7);
    if version == 1 {
        w.u64(0).u64(0).u32(track.id).u32(0).u64(times.duration);
    } else {
        w.u32(0).u32(0).u32(track.id).u32(0).u32(times.duration as u32);
    }
    w.zeros(8).u16(0).u16(0).u16(if audio { 0x0100 } else { 0 }).u16(0).unity_matrix();
    w.u32(u32::from(width) << 16).u32(u32::from(height) << 16).close();
    if !times.edits.is_empty() {
        edts(w, &times.edits);
    }
    w.open(b"mdia");
    // Language `und`, packed as three 5-bit letters.
    let version = version_for(&[times.media_duration]);
    w.open_full(b"mdhd", version, 0);
    if version == 1 {
        w.u64(0).u64(0).u32(track.timescale).u64(times.media_duration);
    } else {
        w.u32(0).u32(0).u32(track.timescale).u32(times.media_duration as u32);
    }
    w.u16(0x55c4).u16(0).close();
    let (handler, name): (&[u8; 4], &[u8]) =
        if audio { (b"soun", b"SoundHandler\0") } else { (b"vide", b"VideoHandler\0") };
    w.open_full(b"hdlr", 0, 0).u32(0).bytes(handler).zeros(12).bytes(name).close();
    w.open(b"minf");
    if audio {
        w.open_full(b"smhd", 0, 0).u16(0).u16(0).close();
    } else {
        w.open_full(b"vmhd", 0, 1).u16(0).zeros(6).close();
    }
    w.open(b"dinf").open_full(b"dref", 0, 0).u32(1).open_full(b"url ", 0, 1).close().close().close();
    w.open(b"stbl");
    w.open_full(b"stsd", 0, 0).u32(1);
    sample_entry(w, &track.config);
    w.close();
    tables(w);
    w.close(); // stbl
    w.close(); // minf
    w.close(); // mdia
    w.close(); // trak
}

/// `edts` with its `elst`.
fn edts(w: &mut BoxWriter, edits: &[Edit]) {
    // Version 0 holds a duration in 32 bits and a media time in a signed 32 bits.
    let wide = edits.iter().any(|e| e.duration > u64::from(u32::MAX) || e.media_time.unwrap_or(0) > i32::MAX as u64);
    let version = u8::from(wide);
    w.open(b"edts").open_full(b"elst", version, 0).u32(edits.len() as u32);
    for e in edits {
        if version == 1 {
            w.u64(e.duration).u64(e.media_time.map_or(u64::MAX, |t| t));
        } else {
            w.u32(e.duration as u32).u32(e.media_time.map_or(u32::MAX, |t| t as u32));
        }
        // Media rate 1.0.
        w.u16(1).u16(0);
    }
    w.close().close();
}

fn sample_entry(w: &mut BoxWriter, config: &TrackConfig) {
    match config {
        TrackConfig::H264 { width, height, avcc } => {
            w.open(b"avc1").zeros(6).u16(1).zeros(16).u16(*width).u16(*height);
            w.u32(0x0048_0000).u32(0x0048_0000).u32(0).u16(1).zeros(32).u16(0x0018).u16(0xffff);
            w.open(b"avcC").bytes(avcc).close();
            w.close();
        }
        TrackConfig::Aac { sample_rate, channels, asc } => {
            w.open(b"mp4a").zeros(6).u16(1).zeros(8).u16(*channels).u16(16).u16(0).u16(0);
            // The 16.16 field holds rates up to 65535 Hz; higher ones are in the ASC.
            w.u32((*sample_rate).min(65535) << 16);
            w.open_full(b"esds", 0, 0);
            esds(w, asc);
            w.close();
            w.close();
        }
    }
}

/// The ES descriptor (ISO/IEC 14496-1 §7.2.6.5) carrying the AudioSpecificConfig.
fn esds(w: &mut BoxWriter, asc: &[u8]) {
    let specific = 2 + asc.len();
    let decoder_config = 2 + 13 + specific;
    let sl_config = 3;
    let es = 3 + 2 + decoder_config + sl_config;
    descriptor(w, 0x03, es - 2);
    w.u16(1).u8(0);
    descriptor(w, 0x04, decoder_config - 2);
    // MPEG-4 audio; an audio stream; buffer size; max and average bit rate unknown.
    w.u8(0x40).u8(0x15).bytes(&[0, 0, 0]).u32(0).u32(0);
    descriptor(w, 0x05, asc.len());
    w.bytes(asc);
    descriptor(w, 0x06, 1);
    w.u8(0x02);
}

/// A descriptor's tag and size (one size byte: every one here is under 128 bytes).
fn descriptor(w: &mut BoxWriter, tag: u8, size: usize) {
    w.u8(tag).u8(size.min(127) as u8);
}
