use std::sync::Arc;

use bytes::Bytes;

use super::super::test_vectors::*;
use super::*;
use crate::media::{AudioInfo, Ts, VideoInfo};

fn video_info(config: Option<Bytes>) -> Arc<TrackInfo> {
    Arc::new(TrackInfo::Video(VideoInfo {
        codec: Codec::H264,
        width: 64,
        height: 64,
        fps: Some(25.0),
        config,
        bframes: true,
    }))
}

fn aac_info(config: Option<Bytes>) -> Arc<TrackInfo> {
    Arc::new(TrackInfo::Audio(AudioInfo { codec: Codec::Aac, sample_rate: 48000, channels: 2, config }))
}

#[test]
fn parses_real_avc_tags() {
    let seq = parse_video(&Bytes::from_static(AVC_SEQUENCE_HEADER)).expect("seq header");
    assert_eq!(seq, VideoTag::AvcSequenceHeader(Bytes::from_static(&AVC_SEQUENCE_HEADER[5..])));
    match parse_video(&Bytes::from_static(P_FRAME_CTS_160)).expect("frame") {
        VideoTag::AvcNalu { keyframe, composition_ms, data } => {
            assert!(!keyframe);
            assert_eq!(composition_ms, 160);
            assert_eq!(&data[..], &P_FRAME_CTS_160[5..]);
        }
        other => panic!("unexpected {other:?}"),
    }
    let eos = parse_video(&Bytes::from_static(&[0x17, 0x02, 0, 0, 0])).expect("eos");
    assert_eq!(eos, VideoTag::AvcEndOfSequence);
}

#[test]
fn composition_time_is_signed_24_bit() {
    let body = Bytes::from_static(&[0x27, 0x01, 0xff, 0xff, 0xd8, 0, 0, 0, 1, 0x41]);
    match parse_video(&body) {
        Ok(VideoTag::AvcNalu { composition_ms, .. }) => assert_eq!(composition_ms, -40),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn parses_real_aac_tags() {
    let seq = parse_audio(&Bytes::from_static(AAC_SEQUENCE_HEADER)).expect("seq header");
    assert_eq!(
        seq,
        AudioTag::AacSequenceHeader { config: Bytes::from_static(&AAC_SEQUENCE_HEADER[2..]), stereo: true }
    );
    let raw = parse_audio(&Bytes::from_static(AAC_RAW)).expect("raw");
    assert_eq!(raw, AudioTag::AacRaw(Bytes::from_static(&AAC_RAW[2..])));
}

#[test]
fn other_codecs_are_unsupported_and_named() {
    let unsupported = |r: Result<(), FlvError>, name: &str| match r {
        Err(FlvError::Unsupported(msg)) => assert!(msg.contains(name), "{msg} lacks {name}"),
        other => panic!("{name}: {other:?}"),
    };
    let audio: [(&[u8], &str); 3] =
        [(&[0x2f, 0xff, 0xfb], "MP3"), (&[0xb6, 0x00], "Speex"), (&[0x90, b'O', b'p', b'u', b's'], "Opus")];
    for (body, name) in audio {
        unsupported(parse_audio(&Bytes::copy_from_slice(body)).map(|_| ()), name);
    }
    let video: [(&[u8], &str); 4] = [
        (&[0x12, 0x00, 0x00], "Sorenson"),
        (&[0x14, 0x00], "VP6"),
        (&[0x1c, 0x00, 0, 0, 0], "HEVC"),
        (&[0x90, b'h', b'v', b'c', b'1'], "hvc1"),
    ];
    for (body, name) in video {
        unsupported(parse_video(&Bytes::copy_from_slice(body)).map(|_| ()), name);
    }
}

#[test]
fn malformed_and_oversized_bodies_are_errors() {
    for body in [&[][..], &[0x17], &[0x17, 0x01, 0x00], &[0x17, 0x07, 0, 0, 0]] {
        assert!(matches!(parse_video(&Bytes::copy_from_slice(body)), Err(FlvError::Malformed(_))));
    }
    for body in [&[][..], &[0xaf], &[0xaf, 0x05]] {
        assert!(matches!(parse_audio(&Bytes::copy_from_slice(body)), Err(FlvError::Malformed(_))));
    }
    let big = Bytes::from(vec![0x27; super::super::MAX_VIDEO_BODY + 1]);
    assert!(matches!(parse_video(&big), Err(FlvError::TooLarge { .. })));
}

#[test]
fn builds_the_same_frame_bodies_ffmpeg_wrote() {
    let frame = Frame::new(
        video_info(None),
        Ts::from_millis(40),
        Ts::from_millis(200),
        false,
        Bytes::from_static(&P_FRAME_CTS_160[5..]),
    );
    assert_eq!(tag_body(&frame).expect("video body"), Bytes::from_static(P_FRAME_CTS_160));
    let audio =
        Frame::new(aac_info(None), Ts::from_millis(80), Ts::from_millis(80), true, Bytes::from_static(&AAC_RAW[2..]));
    assert_eq!(tag_body(&audio).expect("audio body"), Bytes::from_static(AAC_RAW));
}

#[test]
fn keyframe_flag_and_negative_composition_time() {
    let frame = Frame::new(
        video_info(None),
        Ts::from_millis(100),
        Ts::from_millis(60),
        true,
        Bytes::from_static(&[0, 0, 0, 1, 0x65]),
    );
    let body = tag_body(&frame).expect("body");
    assert_eq!(&body[..5], &[0x17, 0x01, 0xff, 0xff, 0xd8]);
    // Sub-millisecond timestamps: the offset is taken on the millisecond grid of the tag.
    let frame = Frame::new(video_info(None), Ts(1_999_999), Ts(2_000_001), false, Bytes::new());
    assert_eq!(&tag_body(&frame).expect("body")[..5], &[0x27, 0x01, 0, 0, 1]);
}

#[test]
fn cached_body_is_made_once() {
    let frame = Frame::new(aac_info(None), Ts::ZERO, Ts::ZERO, true, Bytes::from_static(&AAC_RAW[2..]));
    let first = cached_tag_body(&frame).expect("body").clone();
    let second = cached_tag_body(&frame).expect("body");
    assert_eq!(&first[..], AAC_RAW);
    assert_eq!(first.as_ptr(), second.as_ptr(), "same allocation");
}

#[test]
fn opus_and_other_codecs_are_not_representable() {
    let opus =
        Arc::new(TrackInfo::Audio(AudioInfo { codec: Codec::Opus, sample_rate: 48000, channels: 2, config: None }));
    let frame = Frame::new(opus.clone(), Ts::ZERO, Ts::ZERO, true, Bytes::from_static(&[0xfc]));
    assert!(matches!(tag_body(&frame), Err(FlvError::Unsupported(m)) if m.contains("opus")));
    assert!(cached_tag_body(&frame).is_err());
    assert!(frame.flv_tag.get().is_none());
    assert!(matches!(sequence_header(&opus), Err(FlvError::Unsupported(_))));
}

#[test]
fn sequence_headers_match_ffmpeg() {
    let avc = video_info(Some(Bytes::from_static(&AVC_SEQUENCE_HEADER[5..])));
    assert_eq!(sequence_header(&avc).expect("avc"), Bytes::from_static(AVC_SEQUENCE_HEADER));
    assert_eq!(sequence_header(&video_info(None)), Err(FlvError::MissingConfig(Codec::H264)));
    let aac = aac_info(Some(Bytes::from_static(&AAC_SEQUENCE_HEADER[2..])));
    assert_eq!(sequence_header(&aac).expect("aac"), Bytes::from_static(AAC_SEQUENCE_HEADER));
    // Without a config, one is built from rate and channels: AAC-LC 48 kHz stereo.
    assert_eq!(&sequence_header(&aac_info(None)).expect("aac")[..], &AAC_SEQUENCE_HEADER[..4]);
    assert_eq!(&end_of_sequence_body()[..], &[0x17, 0x02, 0, 0, 0]);
}
