use bytes::Bytes;

use super::super::test_vectors::*;
use super::super::{FlvIngest, FlvReader, MetaHints};
use super::*;
use crate::media::{AudioInfo, Codec};

/// The real file through the reader and the ingest: (video info, audio info, frames).
fn real_frames() -> (Arc<TrackInfo>, Arc<TrackInfo>, Vec<Arc<Frame>>) {
    let mut reader = FlvReader::new();
    reader.push(COLOR64_FLV);
    let mut ingest = FlvIngest::new();
    let mut frames = Vec::new();
    while let Ok(Some(tag)) = reader.next_tag() {
        frames.extend(ingest.push(tag.kind, tag.timestamp, tag.body).unwrap_or_default());
    }
    let v = ingest.video_info().cloned().expect("video");
    let a = ingest.audio_info().cloned().expect("audio");
    (v, a, frames)
}

#[test]
fn start_sends_metadata_and_sequence_headers() {
    let (v, a, _) = real_frames();
    let mut egress = FlvEgress::new();
    let mut out = Vec::new();
    egress.start(Some(&v), Some(&a), &mut out);
    let kinds: Vec<_> = out.iter().map(|t| (t.kind, t.timestamp)).collect();
    assert_eq!(kinds, vec![(TagKind::Script, 0), (TagKind::Video, 0), (TagKind::Audio, 0)]);
    let hints = MetaHints::from_script(&out[0].body).expect("amf").expect("onMetaData");
    assert_eq!((hints.width, hints.height, hints.framerate), (Some(64), Some(64), Some(25.0)));
    assert_eq!(hints.audio_sample_rate, Some(48000));
    assert_eq!(&out[1].body[..], AVC_SEQUENCE_HEADER);
    assert_eq!(&out[2].body[..], AAC_SEQUENCE_HEADER);
}

#[test]
fn frames_follow_without_repeating_headers() {
    let (v, a, frames) = real_frames();
    let mut egress = FlvEgress::new();
    let mut out = Vec::new();
    egress.start(Some(&v), Some(&a), &mut out);
    out.clear();
    for f in &frames {
        egress.frame(f, &mut out).expect("frame");
    }
    // The info Arcs changed (B-frames marked) but the configs did not: no new headers.
    assert_eq!(out.len(), frames.len());
    let p = out.iter().find(|t| &t.body[..] == P_FRAME_CTS_160).expect("P frame");
    assert_eq!(p.timestamp, 40);
    // Shared bytes: the frame's cached body is what went out.
    assert_eq!(frames[0].flv_tag.get(), Some(&out[0].body));
}

#[test]
fn late_joiner_starts_at_zero_on_a_keyframe() {
    let (_, _, frames) = real_frames();
    let mut egress = FlvEgress::new();
    let mut out = Vec::new();
    // Starting mid-GOP: video waits for a keyframe; audio passes, timestamps count from it.
    let late: Vec<_> = frames.iter().filter(|f| f.dts >= Ts::from_millis(100)).collect();
    for f in &late {
        egress.frame(f, &mut out).expect("frame");
    }
    assert!(out.iter().all(|t| t.kind == TagKind::Audio), "no keyframe after 100 ms");
    // Headers were never started, so the first frame of each track brought its own.
    assert_eq!(&out[0].body[..], AAC_SEQUENCE_HEADER);
    assert_eq!(out[0].timestamp, 0);
    let first_audio_dts = late.iter().find(|f| f.kind() == TrackKind::Audio).map(|f| f.dts).expect("audio");
    let last = late.iter().rev().find(|f| f.kind() == TrackKind::Audio).expect("audio");
    assert_eq!(out.last().map(|t| t.timestamp as i64), Some((last.dts - first_audio_dts).as_millis()));
}

#[test]
fn new_config_resends_the_sequence_header() {
    let a1 = Arc::new(TrackInfo::Audio(AudioInfo { codec: Codec::Aac, sample_rate: 48000, channels: 2, config: None }));
    let a2 = Arc::new(TrackInfo::Audio(AudioInfo { codec: Codec::Aac, sample_rate: 44100, channels: 1, config: None }));
    let mut egress = FlvEgress::new();
    let mut out = Vec::new();
    egress.start(None, Some(&a1), &mut out);
    assert_eq!(out.len(), 2);
    out.clear();
    let raw = Bytes::from_static(&AAC_RAW[2..]);
    egress
        .frame(&Frame::new(a1.clone(), Ts::from_millis(0), Ts::from_millis(0), true, raw.clone()), &mut out)
        .expect("frame");
    egress
        .frame(&Frame::new(a2.clone(), Ts::from_millis(21), Ts::from_millis(21), true, raw.clone()), &mut out)
        .expect("frame");
    egress.frame(&Frame::new(a2, Ts::from_millis(42), Ts::from_millis(42), true, raw), &mut out).expect("frame");
    let bodies: Vec<_> = out.iter().map(|t| (t.timestamp, t.body[1])).collect();
    // frame, new header (44.1 kHz mono), frame, frame
    assert_eq!(bodies, vec![(0, 1), (21, 0), (21, 1), (42, 1)]);
    assert_eq!(&out[1].body[2..], &[0x12, 0x08]);
}

#[test]
fn unrepresentable_frames_are_errors_and_send_nothing() {
    let opus =
        Arc::new(TrackInfo::Audio(AudioInfo { codec: Codec::Opus, sample_rate: 48000, channels: 2, config: None }));
    let mut egress = FlvEgress::new();
    let mut out = Vec::new();
    egress.start(None, Some(&opus), &mut out);
    assert_eq!(out.len(), 1, "metadata only");
    out.clear();
    let frame = Frame::new(opus, Ts::ZERO, Ts::ZERO, true, Bytes::from_static(&[0xfc, 0xff]));
    assert!(matches!(egress.frame(&frame, &mut out), Err(FlvError::Unsupported(_))));
    assert!(out.is_empty());
}
