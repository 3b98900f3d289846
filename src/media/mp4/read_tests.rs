//! The fragmented-MP4 reader: what the writer wrote comes back; truncated and mutated files
//! give errors, never panics; ffmpeg's fragmented MP4 reads too.

use bytes::{Bytes, BytesMut};

use super::super::boxes::children;
use super::super::*;
use super::progressive::{audio_samples, video_samples};
use super::tracks;
use crate::media::TrackInfo;

/// init + two fragments: video (with B-frames) and audio, the second fragment's decode times
/// continuing the first's.
fn file() -> (Bytes, Vec<Sample>, Vec<Sample>) {
    let (video, audio) = (video_samples(50, true), audio_samples(86));
    let mut out = BytesMut::from(&init_segment(&tracks())[..]);
    for (seq, (v, a)) in [(0..25, 0..43), (25..50, 43..86)].into_iter().enumerate() {
        let runs = [
            Run { track_id: 1, base_decode_time: 90_000 + 3600 * v.start as u64, samples: video[v].to_vec() },
            Run { track_id: 2, base_decode_time: 44_100 + 1024 * a.start as u64, samples: audio[a].to_vec() },
        ];
        out.extend_from_slice(&fragment(seq as u32 + 1, &runs));
    }
    (out.freeze(), video, audio)
}

#[test]
fn what_the_writer_wrote_reads_back() {
    let (data, video, audio) = file();
    let read = read_fragmented(&data).unwrap();
    assert_eq!(read.tracks.len(), 2);
    let want = tracks();
    for (got, (want, samples, start)) in
        read.tracks.iter().zip([(&want[0], &video, 90_000), (&want[1], &audio, 44_100)])
    {
        assert_eq!(&got.track, want, "configuration and timescale");
        assert_eq!(got.samples.len(), samples.len());
        let mut dts = start;
        for (g, w) in got.samples.iter().zip(samples.iter()) {
            assert_eq!(
                (g.dts, g.duration, g.composition_offset, g.sync),
                (dts, w.duration, w.composition_offset, w.sync)
            );
            assert_eq!(g.data, w.data);
            dts += i64::from(w.duration);
        }
    }
    match read.tracks[0].info.as_ref() {
        TrackInfo::Video(v) => assert_eq!((v.width, v.height, v.bframes), (176, 144, true)),
        other => panic!("{other:?}"),
    }
    match read.tracks[1].info.as_ref() {
        TrackInfo::Audio(a) => assert_eq!((a.sample_rate, a.channels), (44_100, 1)),
        other => panic!("{other:?}"),
    }
    assert_eq!(read.tracks[0].nanos(90_000), 1_000_000_000);
    assert_eq!(read.tracks[0].samples[2].pts(), 90_000 + 7200);
}

#[test]
fn a_cut_file_reads_up_to_whole_boxes_and_errs_inside_one() {
    let (data, _, _) = file();
    let mut boundaries = vec![0usize];
    for (_, body) in children(&data) {
        // children gives bodies; the box ends 8 bytes of header after its start.
        let start = body.as_ptr() as usize - data.as_ptr() as usize - 8;
        boundaries.push(start + 8 + body.len());
    }
    for len in 0..data.len() {
        let cut = data.slice(..len);
        let result = read_fragmented(&cut);
        // ftyp, moov, then moof + mdat twice: whole after the moov and after each mdat (a moof
        // without its mdat points past the end).
        if [boundaries[2], boundaries[4], boundaries[6]].contains(&len) {
            assert!(result.is_ok(), "cut at a box boundary {len}: {result:?}");
        } else {
            assert!(result.is_err(), "cut at {len}");
        }
    }
}

#[test]
fn a_file_cut_short_reads_partially_up_to_its_last_whole_fragment() {
    let (data, _, _) = file();
    let whole = read_fragmented(&data).unwrap();
    assert!(whole.complete);
    let moov_end = children(&data).iter().take(2).map(|(_, b)| b.len() + 8).sum::<usize>();
    let mut last = 0;
    for len in 0..=data.len() {
        let result = read_fragmented_partial(&data.slice(..len));
        if len < moov_end {
            assert!(result.is_err(), "no whole moov at {len}");
            continue;
        }
        let read = result.unwrap();
        let counts: Vec<usize> = read.tracks.iter().map(|t| t.samples.len()).collect();
        // None, the first fragment's or all the samples; never part of a fragment.
        assert!([vec![0, 0], vec![25, 43], vec![50, 86]].contains(&counts), "{len}: {counts:?}");
        assert!(counts[0] >= last);
        last = counts[0];
        assert_eq!(read.complete, read_fragmented(&data.slice(..len)).is_ok(), "{len}");
        for (got, want) in read.tracks.iter().zip(&whole.tracks) {
            assert_eq!(got.samples[..], want.samples[..got.samples.len()]);
        }
    }
}

#[test]
fn a_sample_count_beyond_the_bytes_is_refused() {
    let (data, _, _) = file();
    let at = data.windows(4).position(|w| w == b"trun").unwrap() + 8;
    for count in [0xffff_ffffu32, 1 << 20] {
        let mut bad = data.to_vec();
        bad[at..at + 4].copy_from_slice(&count.to_be_bytes());
        assert_eq!(read_fragmented(&Bytes::from(bad)).unwrap_err(), Mp4Error::Malformed("trun sample count"));
    }
    // Samples that all lie in one byte range twice over: more sample bytes than the file has.
    let mut no_fields = data.to_vec();
    let flags_at = at - 4;
    // Only a data offset: every sample takes tfhd/trex defaults (size 0 here).
    no_fields[flags_at..flags_at + 4].copy_from_slice(&[1, 0, 0, 1]);
    assert!(read_fragmented(&Bytes::from(no_fields)).is_err());
}

#[test]
fn a_last_box_of_size_zero_runs_to_the_end() {
    let (data, _, _) = file();
    let mut open = data.to_vec();
    let last_mdat = open.windows(4).rposition(|w| w == b"mdat").unwrap() - 4;
    open[last_mdat..last_mdat + 4].copy_from_slice(&[0, 0, 0, 0]);
    let read = read_fragmented(&Bytes::from(open)).unwrap();
    assert_eq!(read.tracks[0].samples.len(), 50);
}

/// A small deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to four random edits of `data`: byte flips, interesting 32-bit values (sizes, counts,
/// offsets), cuts, insertions and duplicated ranges.
fn mutate(rng: &mut Rng, data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len());
        match rng.below(6) {
            0 => out[at] ^= 1 << rng.below(8),
            1 => {
                let values = [0u32, 1, 7, 8, 16, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, out.len() as u32];
                let v = values[rng.below(values.len())].to_be_bytes();
                let end = (at + 4).min(out.len());
                out[at..end].copy_from_slice(&v[..end - at]);
            }
            2 => out.truncate(at),
            3 => {
                let n = rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                out.splice(at..at, bytes);
            }
            4 => {
                let len = rng.below(64).min(out.len() - at);
                let piece = out[at..at + len].to_vec();
                let to = rng.below(out.len());
                out.splice(to..to, piece);
            }
            _ => out[at] = rng.next() as u8,
        }
        if out.is_empty() {
            break;
        }
    }
    out
}

#[test]
fn mutated_files_give_errors_never_panics() {
    let (data, _, _) = file();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut ok, mut errors) = (0, 0);
    for _ in 0..20_000 {
        let input = Bytes::from(mutate(&mut rng, &data));
        match read_fragmented(&input) {
            Ok(read) => {
                ok += 1;
                // Sample bytes never add up to more than the input.
                let total: usize = read.tracks.iter().flat_map(|t| &t.samples).map(|s| s.data.len()).sum();
                assert!(total <= input.len());
            }
            Err(_) => errors += 1,
        }
    }
    assert!(ok > 100 && errors > 100, "both outcomes seen: {ok} ok, {errors} errors");
}

/// ffmpeg's own fragmented MP4 (trex/tfhd defaults, first-sample flags) reads, with as many
/// samples as ffprobe counts packets (skipped without ffmpeg).
#[test]
fn ffmpegs_fragmented_mp4_reads() {
    let path = std::env::temp_dir().join(format!("ig-read-ffmpeg-{}.mp4", std::process::id()));
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=96x64:rate=20", "-f", "lavfi"])
        .args(["-i", "sine=frequency=440:sample_rate=22050", "-t", "2", "-c:v", "libx264", "-bf", "2"])
        .args(["-g", "10", "-c:a", "aac", "-movflags", "frag_keyframe+empty_moov+default_base_moof"])
        .arg(&path)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        return;
    }
    let data = Bytes::from(std::fs::read(&path).expect("read"));
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_packets", "-show_entries", "stream=codec_name,nb_read_packets", "-of", "csv=p=0"])
        .arg(&path)
        .output()
        .expect("ffprobe");
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&probe.stdout);
    let packets = |codec: &str| -> usize {
        text.lines().find(|l| l.starts_with(codec)).and_then(|l| l.rsplit(',').next()?.trim().parse().ok()).unwrap_or(0)
    };
    let read = read_fragmented(&data).unwrap();
    let video = read.tracks.iter().find(|t| t.track.is_video()).expect("video");
    let audio = read.tracks.iter().find(|t| !t.track.is_video()).expect("audio");
    assert_eq!(video.samples.len(), packets("h264"), "{text}");
    assert_eq!(audio.samples.len(), packets("aac"), "{text}");
    assert!(matches!(&video.track.config, TrackConfig::H264 { width: 96, height: 64, .. }));
    assert!(matches!(&audio.track.config, TrackConfig::Aac { sample_rate: 22_050, channels: 1, .. }));
    assert_eq!(video.samples.iter().filter(|s| s.sync).count(), 4, "a keyframe every 10 of 40 pictures");
    assert!(video.samples.iter().any(|s| s.composition_offset != 0), "B-frames");
    assert!(video.samples.windows(2).all(|w| w[1].dts == w[0].dts + i64::from(w[0].duration)));
}
