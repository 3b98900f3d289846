use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::media::{AudioInfo, Codec, TrackInfo, TrackKind, VideoInfo};
use crate::protocols::h5::ts::mux::{write_section, TsMuxer};
use crate::protocols::h5::ts::{psi, PAT_PID, PMT_PID};

fn sequence_header() -> Vec<u8> {
    vec![0, 0, 1, 0xB3, 0x04, 0x00, 0x20, 0x15, 0xFF, 0xFF, 0xE0, 0x18]
}

fn picture(kind: u8, fill: u8) -> Vec<u8> {
    let mut p = Vec::new();
    if kind == 1 {
        p.extend(sequence_header());
        p.extend([0, 0, 1, 0xB8, 0x00, 0x08, 0x00, 0x00]);
    }
    p.extend([0, 0, 1, 0x00, 0x00, kind << 3, 0xFF, 0xF8, 0, 0, 1, 0x01]);
    p.extend(std::iter::repeat_n(fill, 500));
    p
}

fn mp2_frame(fill: u8) -> Vec<u8> {
    let mut f = vec![0xFF, 0xFD, 0x80, 0xC4];
    f.resize(417, fill);
    f
}

/// A TS made by our muxer: P, I, P, P pictures at 30 fps with an MP2 frame after each.
fn sample_ts() -> Vec<u8> {
    let video = Arc::new(TrackInfo::Video(VideoInfo {
        codec: Codec::Mpeg1,
        width: 64,
        height: 32,
        fps: Some(30.0),
        config: None,
        bframes: false,
    }));
    let audio =
        Arc::new(TrackInfo::Audio(AudioInfo { codec: Codec::Mp2, sample_rate: 44_100, channels: 1, config: None }));
    let mut mux = TsMuxer::new(true, true);
    let mut out = Vec::new();
    mux.tables(&mut out);
    for (i, kind) in [2u8, 1, 2, 2].into_iter().enumerate() {
        let t = Ts::from_millis(i as i64 * 33);
        mux.frame(&Frame::new(video.clone(), t, t, kind == 1, Bytes::from(picture(kind, i as u8))), &mut out);
        let ta = Ts::from_millis(i as i64 * 33 + 5);
        mux.frame(&Frame::new(audio.clone(), ta, ta, true, Bytes::from(mp2_frame(i as u8))), &mut out);
    }
    out
}

#[test]
fn frames_start_at_the_first_i_picture_in_any_chunking() {
    let ts = sample_ts();
    for chunk in [ts.len(), 1000, 188, 7] {
        let mut ingest = TsIngest::new();
        let mut frames = Vec::new();
        for c in ts.chunks(chunk) {
            ingest.push(c, &mut frames).expect("valid H5 input");
        }
        ingest.finish(&mut frames).expect("started");
        let kinds: Vec<(TrackKind, bool, i64)> =
            frames.iter().map(|f| (f.kind(), f.keyframe, f.pts.as_millis())).collect();
        // The P-picture and the audio before the I-picture are dropped (our muxer sets
        // PES_packet_length, so every PES completes as soon as its last packet is in).
        let video: Vec<_> = kinds.iter().filter(|k| k.0 == TrackKind::Video).collect();
        assert_eq!(video.len(), 3, "chunk {chunk}: {kinds:?}");
        assert!(video[0].1 && !video[1].1 && !video[2].1);
        // Our muxer offsets timestamps by one second.
        assert_eq!(video.iter().map(|k| k.2).collect::<Vec<_>>(), [1033, 1066, 1099]);
        let audio: Vec<_> = kinds.iter().filter(|k| k.0 == TrackKind::Audio).map(|k| k.2).collect();
        assert_eq!(audio, [1038, 1071, 1104], "chunk {chunk}: audio after the I-picture only");
        assert_eq!(frames[0].data.as_ref(), picture(1, 1).as_slice(), "the first frame is the I-picture");
        assert!(ingest.started());
        assert_eq!(ingest.frames(), frames.len() as u64);
    }
}

#[test]
fn not_ts_and_h264_in_ts_are_refused_as_unsupported() {
    let mut ingest = TsIngest::new();
    let err = ingest.push(b"<html>hello</html>", &mut Vec::new()).expect_err("not TS");
    assert!(err.is_unsupported_media());
    assert!(err.to_string().contains("0x47"), "{err}");

    let mut ts = Vec::new();
    let (mut pat_cc, mut pmt_cc) = (0, 0);
    write_section(PAT_PID, &psi::pat(1, 1, PMT_PID), &mut pat_cc, &mut ts);
    let streams = [psi::EsEntry { stream_type: 0x1B, pid: 0x100 }, psi::EsEntry { stream_type: 0x0F, pid: 0x101 }];
    write_section(PMT_PID, &psi::pmt(1, 0x100, &streams), &mut pmt_cc, &mut ts);
    let mut ingest = TsIngest::new();
    let err = ingest.push(&ts, &mut Vec::new()).expect_err("H.264");
    assert!(err.is_unsupported_media());
    assert_eq!(
        err.to_string(),
        "the MPEG-TS program has no MPEG-1 video; it carries H.264 video (stream type 0x1b), AAC audio (ADTS) (stream type 0x0f)"
    );
}

#[test]
fn an_input_without_i_picture_is_refused_at_its_end() {
    let ts = sample_ts();
    // Cut before the I-picture's PES is complete: nothing came out.
    let mut ingest = TsIngest::new();
    let mut frames = Vec::new();
    ingest.push(&ts[..188 * 6], &mut frames).expect("valid so far");
    assert!(frames.is_empty());
    let err = ingest.finish(&mut frames).expect_err("no I-picture");
    assert!(matches!(err, IngestError::EndedEarly(_)), "{err}");
    assert!(!err.is_unsupported_media());
}

#[test]
fn timestamps_unwrap_across_the_33_bit_limit() {
    let mut u = Unwrap::default();
    let near_end = (1u64 << 33) - 900;
    assert_eq!(u.ts(near_end), Ts::from_ticks(near_end as i64, 90_000));
    assert_eq!(u.ts(2100), Ts::from_ticks((1i64 << 33) + 2100, 90_000));
    // A little reordering backwards across the wrap stays continuous.
    assert_eq!(u.ts(near_end + 100), Ts::from_ticks(near_end as i64 + 100, 90_000));
}
