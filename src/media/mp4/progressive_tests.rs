//! The progressive writer's boxes, parsed back: tables, edit lists, chunk offsets.

use bytes::Bytes;

use super::super::boxes::children;
use super::super::*;
use super::{find, tracks};

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// `(count, value)` entries of a table box (after version/flags and the entry count).
fn entries(body: &[u8], width: usize) -> Vec<Vec<u32>> {
    let n = u32_at(body, 4) as usize;
    (0..n).map(|i| (0..width).map(|k| u32_at(body, 8 + (i * width + k) * 4)).collect()).collect()
}

fn trak_bodies(moov: &[u8]) -> Vec<&[u8]> {
    children(moov).into_iter().filter(|(f, _)| f == b"trak").map(|(_, b)| b).collect()
}

fn stbl<'a>(trak: &'a [u8], fourcc: &[u8; 4]) -> Option<&'a [u8]> {
    find(trak, &[b"mdia", b"minf", b"stbl", fourcc])
}

/// Every sample's bytes as the tables place them in the file.
fn samples_of(file: &[u8], trak: &[u8]) -> Vec<Vec<u8>> {
    let stsz = stbl(trak, b"stsz").unwrap();
    let (fixed, count) = (u32_at(stsz, 4), u32_at(stsz, 8) as usize);
    let sizes: Vec<usize> =
        (0..count).map(|i| if fixed != 0 { fixed } else { u32_at(stsz, 12 + 4 * i) } as usize).collect();
    let offsets: Vec<usize> = entries(stbl(trak, b"stco").unwrap(), 1).into_iter().map(|e| e[0] as usize).collect();
    let stsc = entries(stbl(trak, b"stsc").unwrap(), 3);
    let mut out = Vec::new();
    for (chunk, offset) in offsets.iter().enumerate() {
        let chunk = chunk as u32 + 1;
        let per = stsc.iter().rev().find(|e| e[0] <= chunk).unwrap()[1] as usize;
        let mut at = *offset;
        for _ in 0..per {
            let size = sizes[out.len()];
            out.push(file[at..at + size].to_vec());
            at += size;
        }
    }
    assert_eq!(out.len(), count);
    out
}

/// `n` pictures at 25 fps (90 kHz), a keyframe every 25. With B-frames the decode order is
/// I P B B P B B ...: picture `k` is shown as `[0, 3, 1, 2, 6, 4, 5, ...][k]`, one frame late.
pub(super) fn video_samples(n: usize, b_frames: bool) -> Vec<Sample> {
    (0..n)
        .map(|k| {
            let late = match k {
                0 => 1,
                k if k % 3 == 1 => 3,
                _ => 0,
            };
            Sample {
                duration: 3600,
                composition_offset: if b_frames { 3600 * late } else { 0 },
                sync: k % 25 == 0,
                data: Bytes::from(vec![(k % 251) as u8; 100 + k % 7]),
            }
        })
        .collect()
}

/// `n` AAC frames (1024 samples each).
pub(super) fn audio_samples(n: usize) -> Vec<Sample> {
    (0..n)
        .map(|i| Sample {
            duration: 1024,
            composition_offset: 0,
            sync: true,
            data: Bytes::from(vec![(i % 256) as u8; 20 + i % 3]),
        })
        .collect()
}

#[test]
fn index_first_then_the_samples_where_the_tables_say() {
    let t = tracks();
    let video = ProgressiveTrack { track: t[0].clone(), delay: 0, samples: video_samples(76, true) };
    // 44.1 kHz audio for 3 s, starting 10 ms after the first picture is shown.
    let audio = ProgressiveTrack { track: t[1].clone(), delay: 441, samples: audio_samples(129) };
    let file = progressive(&[video.clone(), audio.clone()]).unwrap();
    let top: Vec<[u8; 4]> = children(&file).into_iter().map(|(f, _)| f).collect();
    assert_eq!(top, [*b"ftyp", *b"moov", *b"mdat"], "faststart: the index before the media");
    let moov = find(&file, &[b"moov"]).unwrap();
    let kinds: Vec<[u8; 4]> = children(moov).into_iter().map(|(f, _)| f).collect();
    assert_eq!(kinds, [*b"mvhd", *b"trak", *b"trak"]);
    let traks = trak_bodies(moov);
    let stbl_kinds = |trak: &[u8]| -> Vec<[u8; 4]> {
        children(find(trak, &[b"mdia", b"minf", b"stbl"]).unwrap()).into_iter().map(|(f, _)| f).collect()
    };
    assert_eq!(stbl_kinds(traks[0]), [*b"stsd", *b"stts", *b"ctts", *b"stss", *b"stsc", *b"stsz", *b"stco"]);
    assert_eq!(stbl_kinds(traks[1]), [*b"stsd", *b"stts", *b"stsc", *b"stsz", *b"stco"]);
    // Every sample is where the tables put it.
    for (trak, track) in traks.iter().zip([&video, &audio]) {
        let want: Vec<Vec<u8>> = track.samples.iter().map(|s| s.data.to_vec()).collect();
        assert_eq!(samples_of(&file, trak), want);
    }
    // Run-length tables: one duration; the B-frame pattern's offsets; keyframes 1, 26, 51.
    assert_eq!(entries(stbl(traks[0], b"stts").unwrap(), 2), [vec![76, 3600]]);
    let ctts = entries(stbl(traks[0], b"ctts").unwrap(), 2);
    assert_eq!(ctts[..4], [vec![1, 3600], vec![1, 10800], vec![2, 0], vec![1, 10800]]);
    assert_eq!(entries(stbl(traks[0], b"stss").unwrap(), 1), [vec![1], vec![26], vec![51], vec![76]]);
    // Chunks of half a second interleave the tracks: offsets rise alternating between them.
    let chunk_offsets = |trak: &[u8]| entries(stbl(trak, b"stco").unwrap(), 1).into_iter().map(|e| e[0]);
    let (v, a): (Vec<u32>, Vec<u32>) = (chunk_offsets(traks[0]).collect(), chunk_offsets(traks[1]).collect());
    assert_eq!(v.len(), 6, "3 s of video in half seconds");
    assert!(v[0] < a[0] && a[0] < v[1] && v[1] < a[2], "interleaved: {v:?} {a:?}");
}

#[test]
fn edit_lists_start_the_pictures_at_zero_and_delay_a_later_track() {
    let t = tracks();
    let video = ProgressiveTrack { track: t[0].clone(), delay: 0, samples: video_samples(76, true) };
    let audio = ProgressiveTrack { track: t[1].clone(), delay: 441, samples: audio_samples(130) };
    let file = progressive(&[video, audio]).unwrap();
    let moov = find(&file, &[b"moov"]).unwrap();
    let traks = trak_bodies(moov);
    // Video: shown from media time 3600 (the first picture's offset) for 76 frames.
    let elst = find(traks[0], &[b"edts", b"elst"]).unwrap();
    assert_eq!(entries(elst, 3), [vec![3040, 3600, 0x0001_0000]]);
    // Audio: an empty edit of 10 ms, then its media from 0 (133120 / 44.1 = 3018.6 ms).
    let elst = find(traks[1], &[b"edts", b"elst"]).unwrap();
    assert_eq!(entries(elst, 3), [vec![10, u32::MAX, 0x0001_0000], vec![3019, 0, 0x0001_0000]]);
    // Durations: mvhd (ms) the longer track; tkhd the edits'; mdhd the media's.
    let mvhd = find(moov, &[b"mvhd"]).unwrap();
    assert_eq!((u32_at(mvhd, 12), u32_at(mvhd, 16)), (1000, 3040));
    let tkhd = find(traks[1], &[b"tkhd"]).unwrap();
    assert_eq!(u32_at(tkhd, 20), 3029);
    let mdhd = find(traks[0], &[b"mdia", b"mdhd"]).unwrap();
    assert_eq!((u32_at(mdhd, 12), u32_at(mdhd, 16)), (90_000, 76 * 3600));
    // Without B-frames or a delay there is no edit list.
    let plain = ProgressiveTrack { track: t[0].clone(), delay: 0, samples: video_samples(10, false) };
    let file = progressive(&[plain]).unwrap();
    let trak = trak_bodies(find(&file, &[b"moov"]).unwrap())[0];
    assert!(find(trak, &[b"edts"]).is_none());
    assert!(stbl(trak, b"ctts").is_none());
}

#[test]
fn equal_sizes_share_one_stsz_field_and_empty_tracks_are_left_out() {
    let t = tracks();
    let samples: Vec<Sample> = (0..5)
        .map(|_| Sample { duration: 1024, composition_offset: 0, sync: true, data: Bytes::from_static(&[1; 9]) })
        .collect();
    let audio = ProgressiveTrack { track: t[1].clone(), delay: 0, samples };
    let empty = ProgressiveTrack { track: t[0].clone(), delay: 0, samples: Vec::new() };
    let file = progressive(&[empty.clone(), audio]).unwrap();
    let moov = find(&file, &[b"moov"]).unwrap();
    let traks = trak_bodies(moov);
    assert_eq!(traks.len(), 1);
    let stsz = stbl(traks[0], b"stsz").unwrap();
    assert_eq!((u32_at(stsz, 4), u32_at(stsz, 8), stsz.len()), (9, 5, 12));
    assert_eq!(progressive(&[empty]), Err(Mp4Error::NoSamples));
}
