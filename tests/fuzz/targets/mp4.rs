//! Recording files read back for clips: fragmented MP4 through `mp4::read_fragmented`. What
//! reads is written again (init segment + fragments) and must read back the same, and the
//! progressive writer of clips takes its samples.

use bytes::Bytes;
use interop_gateway::media::mp4::{
    fragment, init_segment, progressive, read_fragmented, read_fragmented_partial, ProgressiveTrack, ReadTrack, Run,
    Sample,
};
use interop_gateway::protocols::flv::{FlvIngest, FlvReader};
use interop_gateway::protocols::hls::segmenter::{Segmenter, SegmenterConfig};

use crate::engine::{corpus_files, no_setup, Sig, Target};
use crate::mutate::Shape;

/// Round trips only up to this many samples (the rewrite's tables stay small next to the
/// allocation limit).
const ROUND_TRIP_SAMPLES: usize = 4096;

fn mp4_read(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    let data = Bytes::copy_from_slice(input);
    let read = read_fragmented(&data);
    sig.result(&read);
    // Read as a file cut short: the same when the whole file reads, else whole fragments.
    let partial = read_fragmented_partial(&data);
    sig.result(&partial);
    if let (Ok(whole), Ok(partial)) = (&read, &partial) {
        assert!(partial.complete, "a file that reads whole is complete");
        assert!(whole.tracks.iter().zip(&partial.tracks).all(|(a, b)| a.samples == b.samples), "partial = whole");
    }
    if let Ok(partial) = &partial {
        sig.add(u64::from(partial.complete));
    }
    let Ok(file) = read else { return sig.finish() };
    let samples: usize = file.tracks.iter().map(|t| t.samples.len()).sum();
    let bytes: usize = file.tracks.iter().flat_map(|t| &t.samples).map(|s| s.data.len()).sum();
    assert!(bytes <= input.len(), "sample bytes beyond the input");
    sig.count(file.tracks.len());
    sig.count(samples);
    for t in &file.tracks {
        sig.add(u64::from(t.track.is_video()));
        sig.count(t.samples.iter().filter(|s| s.sync).count());
    }
    if samples == 0 || samples > ROUND_TRIP_SAMPLES {
        return sig.finish();
    }
    // Written again as fragmented MP4, it reads back the same.
    let tracks: Vec<_> = file.tracks.iter().map(|t| t.track.clone()).collect();
    let mut again = init_segment(&tracks).to_vec();
    let mut sequence = 0;
    for t in &file.tracks {
        for run in runs(t) {
            sequence += 1;
            again.extend_from_slice(&fragment(sequence, &[run]));
        }
    }
    let back = read_fragmented(&Bytes::from(again)).expect("a rewritten file reads");
    for (a, b) in file.tracks.iter().zip(&back.tracks) {
        assert_eq!(a.track, b.track, "track round trip");
        assert_eq!(a.samples, b.samples, "sample round trip");
    }
    // And the clip writer takes the samples.
    let progressive_tracks: Vec<ProgressiveTrack> = file
        .tracks
        .iter()
        .map(|t| ProgressiveTrack {
            track: t.track.clone(),
            delay: 0,
            samples: runs(t).flat_map(|r| r.samples).collect(),
        })
        .collect();
    let written = progressive(&progressive_tracks);
    sig.result(&written);
    sig.finish()
}

/// A track's samples as runs of continuous decode times (a new run where a `tfdt` jumped).
fn runs(t: &ReadTrack) -> impl Iterator<Item = Run> + '_ {
    let mut out: Vec<Run> = Vec::new();
    let mut next = None;
    for s in &t.samples {
        let sample = Sample {
            duration: s.duration,
            composition_offset: s.composition_offset,
            sync: s.sync,
            data: s.data.clone(),
        };
        match out.last_mut() {
            Some(run) if next == Some(s.dts) => run.samples.push(sample),
            _ => out.push(Run { track_id: t.track.id, base_decode_time: s.dts as u64, samples: vec![sample] }),
        }
        next = Some(s.dts + i64::from(s.duration));
    }
    out.into_iter()
}

/// The gateway's own recordings: the FLV seeds through the ingest and the HLS segmenter (init
/// segment + the segments' fragments).
fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (_, flv) in corpus_files(&["flv_file"]) {
        let mut reader = FlvReader::new();
        reader.push(&flv);
        let mut ingest = FlvIngest::new();
        let config = SegmenterConfig { target: std::time::Duration::from_millis(300), keep: 100, ..Default::default() };
        let mut segmenter = Segmenter::new(config);
        let now = std::time::SystemTime::UNIX_EPOCH;
        while let Ok(Some(tag)) = reader.next_tag() {
            for frame in ingest.push(tag.kind, tag.timestamp, tag.body.clone()).unwrap_or_default() {
                let _ = segmenter.push(&frame, now);
            }
        }
        let Some((_, init)) = segmenter.init() else { continue };
        let mut file = init.to_vec();
        for segment in segmenter.segments() {
            file.extend_from_slice(&segment.bytes());
        }
        out.push(file);
    }
    out
}

pub const MP4_READ: Target = Target {
    name: "mp4_read",
    dirs: &["mp4_read"],
    max_len: 64 << 10,
    shape: Shape::Bytes,
    dict: &[
        b"moov",
        b"moof",
        b"mdat",
        b"trak",
        b"traf",
        b"\x00\x00\x00\x00mdat",
        b"\x00\x00\x00\x01mdat\x00\x00\x00\x00",
        b"\x00\x00\x00\x10tfhd\x00\x02\x00\x00\x00\x00\x00\x01",
        b"\x00\x00\x00\x14tfdt\x01\x00\x00\x00",
        b"trun\x01\x00\x0f\x01",
        b"trun\x00\x00\x00\x00",
        b"avc1",
        b"avcC\x01\x64\x00\x1f\xff\xe1",
        b"mp4a",
        b"esds\x00\x00\x00\x00\x03\x80\x80\x80",
        b"\x04\x80\x80\x80\x14\x40\x15",
        b"\x05\x02\x12\x10",
        b"\xff\xff\xff\xff",
        b"\x00\x01\x00\x00",
    ],
    derive: seeds,
    setup: no_setup,
    run: mp4_read,
};
