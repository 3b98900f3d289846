//! H5 ingest: MPEG-TS (demux, PAT/PMT, PES) and the MPEG-1 video / MP2 audio elementary
//! stream parsers behind it.

use interop_gateway::media::Ts;
use interop_gateway::protocols::h5::ingest::TsIngest;
use interop_gateway::protocols::h5::mp2_audio::{parse_header, Mp2Audio};
use interop_gateway::protocols::h5::mpeg1_video::Mpeg1Video;
use interop_gateway::protocols::h5::ts::demux::{DemuxEvent, TsDemuxer};

use crate::engine::{no_seeds, no_setup, reads, Sig, Target};
use crate::mutate::{hash, Rng, Shape};

const TS_DICT: &[&[u8]] = &[
    b"\x47\x40\x00\x10\x00\x00\xb0\x0d\x00\x01\xc1\x00\x00\x00\x01\xf0\x00",
    b"\x47\x50\x00\x10\x00\x02\xb0",
    b"\x00\x00\x01\xe0\x00\x00\x80\xc0\x0a",
    b"\x00\x00\x01\xc0\xff\xff\x80\x80\x05",
    b"\x00\x00\x01\xb3",
    b"\x00\x00\x01\xb5",
    b"\x00\x00\x01\xb8",
    b"\x00\x00\x01\x00",
    b"\xff\xfd",
    b"\x47\x1f\xff\x10",
];

fn ts_demux(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    let mut demux = TsDemuxer::new();
    let mut events = Vec::new();
    let mut payload = 0usize;
    for read in reads(input) {
        let r = demux.push(read, &mut events);
        sig.result(&r);
        for e in events.drain(..) {
            match e {
                DemuxEvent::Program(streams) => sig.count(streams.len()),
                DemuxEvent::Pes(pes) => {
                    sig.add(
                        u64::from(pes.stream_id) << 2
                            | u64::from(pes.pts.is_some()) << 1
                            | u64::from(pes.dts.is_some()),
                    );
                    payload += pes.data.len();
                }
            }
        }
        if r.is_err() {
            break;
        }
    }
    demux.finish(&mut events);
    sig.count(events.len());
    sig.count(demux.bad_pes() as usize);
    // Whatever comes out was in the input (PES headers and TS headers are only removed).
    assert!(payload <= input.len(), "{payload} PES bytes out of {} TS bytes", input.len());
    sig.finish()
}

pub const TS_DEMUX: Target = Target {
    name: "ts_demux",
    dirs: &["ts_demux", "ts_ingest"],
    max_len: 64 << 10,
    shape: Shape::Packets(188),
    dict: TS_DICT,
    derive: no_seeds,
    setup: no_setup,
    run: ts_demux,
};

fn ts_ingest(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    let mut ingest = TsIngest::new();
    let mut frames = Vec::new();
    let mut failed = false;
    for read in reads(input) {
        let r = ingest.push(read, &mut frames);
        sig.result(&r);
        if r.is_err() {
            failed = true;
            break;
        }
    }
    if !failed {
        let r = ingest.finish(&mut frames);
        sig.result(&r);
    }
    for f in &frames {
        sig.variant(&f.codec());
    }
    sig.count(frames.len());
    sig.finish()
}

pub const TS_INGEST: Target = Target {
    name: "ts_ingest",
    dirs: &["ts_ingest"],
    max_len: 64 << 10,
    shape: Shape::Packets(188),
    dict: TS_DICT,
    derive: no_seeds,
    setup: no_setup,
    run: ts_ingest,
};

/// Cuts an elementary stream into PES payloads: mostly at start codes (as muxers do, one
/// picture or frame per PES), sometimes anywhere; each PES gets a PTS (or none).
fn pes_pieces(input: &[u8]) -> Vec<(Option<Ts>, &[u8])> {
    let mut rng = Rng::new(hash(input) ^ 0x5eed);
    let starts: Vec<usize> = input.windows(3).enumerate().filter(|(_, w)| *w == [0, 0, 1]).map(|(i, _)| i).collect();
    let mut cuts: Vec<usize> = starts.into_iter().filter(|_| !rng.one_in(4)).collect();
    for _ in 0..rng.below(4) {
        cuts.push(rng.below(input.len() + 1));
    }
    cuts.push(input.len());
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut from = 0;
    for (i, cut) in cuts.into_iter().enumerate() {
        if cut > from {
            let pts = (!rng.one_in(5)).then(|| Ts::from_ticks(3600 * i as i64 - rng.below(3) as i64 * 3600, 90_000));
            out.push((pts, &input[from..cut]));
            from = cut;
        }
    }
    out
}

fn mpeg1_video(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    let mut video = Mpeg1Video::new();
    let mut frames = Vec::new();
    for (pts, data) in pes_pieces(input) {
        let dts = pts.filter(|_| data.len() % 2 == 0);
        let r = video.push_pes(pts, dts, data, &mut frames);
        sig.result(&r);
        if r.is_err() {
            return sig.finish();
        }
    }
    let r = video.finish(&mut frames);
    sig.result(&r);
    sig.count(frames.len());
    sig.add(u64::from(frames.iter().any(|f| f.keyframe)));
    sig.count(video.dropped() as usize);
    sig.finish()
}

pub const MPEG1_VIDEO: Target = Target {
    name: "mpeg1_video",
    dirs: &["mpeg1_video"],
    max_len: 32 << 10,
    shape: Shape::Bytes,
    dict: &[
        b"\x00\x00\x01\xb3\x04\x00\x30\x13\xff\xff\xe0\x18",
        b"\x00\x00\x01\xb5\x14\x8a\x00\x01\x00\x00",
        b"\x00\x00\x01\xb8\x00\x08\x00\x00",
        b"\x00\x00\x01\x00\x00\x0f\xff\xf8",
        b"\x00\x00\x01\x00\x00\x57\xff\xfb\x80",
        b"\x00\x00\x01\x01",
        b"\x00\x00\x01\xb7",
    ],
    derive: no_seeds,
    setup: no_setup,
    run: mpeg1_video,
};

fn mp2_audio(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    for at in 0..input.len().min(64) {
        let r = parse_header(&input[at..]);
        if let Ok(Some(h)) = &r {
            assert!(h.frame_len >= 4, "{h:?}");
            sig.add(u64::from(h.sample_rate) ^ u64::from(h.channels));
        }
    }
    let mut audio = Mp2Audio::new();
    let mut frames = Vec::new();
    for (pts, data) in pes_pieces(input) {
        let r = audio.push_pes(pts, data, &mut frames);
        sig.result(&r);
        if r.is_err() {
            break;
        }
    }
    sig.count(frames.len());
    sig.finish()
}

pub const MP2_AUDIO: Target = Target {
    name: "mp2_audio",
    dirs: &["mp2_audio"],
    max_len: 32 << 10,
    shape: Shape::Bytes,
    dict: &[b"\xff\xfd", b"\xff\xfc\x44", b"\xff\xf5", b"\xff\xfb\x90", b"\xff\xe4"],
    derive: no_seeds,
    setup: no_setup,
    run: mp2_audio,
};
