//! One fragment of fragmented MP4: `moof` (per track: where its decode time starts and each
//! sample's duration, size, flags and composition offset) followed by the `mdat` with the
//! samples' bytes. CMAF segments and LL-HLS parts are each one such fragment (or several).

use bytes::{Bytes, BytesMut};

use super::boxes::BoxWriter;

/// `sample_depends_on = 2`: a sync sample (IDR, or any audio frame).
const SYNC: u32 = 0x0200_0000;
/// `sample_depends_on = 1`, `sample_is_non_sync_sample`.
const NON_SYNC: u32 = 0x0101_0000;

/// One sample (a picture or an audio frame) of a fragment.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// In the track's timescale.
    pub duration: u32,
    /// Presentation minus decode time, in the track's timescale.
    pub composition_offset: i32,
    pub sync: bool,
    pub data: Bytes,
}

/// A track's samples in one fragment, from `base_decode_time` (track timescale).
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub track_id: u32,
    pub base_decode_time: u64,
    pub samples: Vec<Sample>,
}

/// `moof` + `mdat` for `runs` (a run without samples is left out).
pub fn fragment(sequence: u32, runs: &[Run]) -> Bytes {
    let runs: Vec<&Run> = runs.iter().filter(|r| !r.samples.is_empty()).collect();
    let mut w = BoxWriter::new();
    let moof_start = w.position();
    w.open(b"moof");
    w.open_full(b"mfhd", 0, 0).u32(sequence).close();
    let mut offsets = Vec::new();
    for run in &runs {
        w.open(b"traf");
        // default-base-is-moof: data offsets count from the start of this moof.
        w.open_full(b"tfhd", 0, 0x02_0000).u32(run.track_id).close();
        w.open_full(b"tfdt", 1, 0).u64(run.base_decode_time).close();
        // data-offset, sample duration, size, flags and composition offset present; version 1:
        // signed composition offsets.
        w.open_full(b"trun", 1, 0x0001 | 0x0100 | 0x0200 | 0x0400 | 0x0800).u32(run.samples.len() as u32);
        offsets.push(w.position());
        w.i32(0);
        for s in &run.samples {
            w.u32(s.duration)
                .u32(s.data.len() as u32)
                .u32(if s.sync { SYNC } else { NON_SYNC })
                .i32(s.composition_offset);
        }
        w.close();
        w.close();
    }
    w.close();
    let moof_size = w.position() - moof_start;
    // Each track's data follows the last one's in the mdat (after its 8-byte header).
    let mut at = moof_size + 8;
    for (run, offset) in runs.iter().zip(offsets) {
        w.patch_u32(offset, at as u32);
        at += run.samples.iter().map(|s| s.data.len()).sum::<usize>();
    }
    w.open(b"mdat");
    for run in &runs {
        for s in &run.samples {
            w.bytes(&s.data);
        }
    }
    w.close();
    let out: BytesMut = w.finish();
    out.freeze()
}
