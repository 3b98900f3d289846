use bytes::{BufMut, BytesMut};

use super::super::test_vectors::*;
use super::super::FlvReader;
use super::*;
use crate::media::h264::{avcc_nal_list, AvcConfig};

fn video(info: &TrackInfo) -> &VideoInfo {
    match info {
        TrackInfo::Video(v) => v,
        TrackInfo::Audio(_) => panic!("not video"),
    }
}

fn audio(info: &TrackInfo) -> &AudioInfo {
    match info {
        TrackInfo::Audio(a) => a,
        TrackInfo::Video(_) => panic!("not audio"),
    }
}

/// Every tag of the real test file, through the reader.
fn real_tags() -> Vec<super::super::FlvTag> {
    let mut reader = FlvReader::new();
    reader.push(COLOR64_FLV);
    let mut tags = Vec::new();
    while let Ok(Some(tag)) = reader.next_tag() {
        tags.push(tag);
    }
    tags
}

/// The AVC sequence header of a 640x360 @ 30 fps x264 encode.
const OTHER_AVC_SEQUENCE_HEADER: [u8; 52] = [
    0x17, 0, 0, 0, 0, 0x01, 0x64, 0x00, 0x1e, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0,
    0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2d, 0x96, 0x01,
    0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
];

fn push(ingest: &mut FlvIngest, kind: TagKind, ts: u32, body: &[u8]) -> Vec<Arc<Frame>> {
    match ingest.push(kind, ts, Bytes::copy_from_slice(body)) {
        Ok(frames) => frames,
        Err(e) => panic!("push failed: {e}"),
    }
}

#[test]
fn real_file_becomes_frames() {
    let mut ingest = FlvIngest::new();
    let mut frames = Vec::new();
    for tag in real_tags() {
        frames.extend(ingest.push(tag.kind, tag.timestamp, tag.body).expect("push"));
    }
    let (v, a): (Vec<_>, Vec<_>) = frames.iter().partition(|f| f.kind() == crate::media::TrackKind::Video);
    assert_eq!((v.len(), a.len()), (VIDEO_FRAMES, AUDIO_FRAMES));
    assert_eq!(v.iter().filter(|f| f.keyframe).count(), 1);
    assert!(v[0].keyframe);
    assert_eq!(ingest.dropped(), 0);

    let vi = video(ingest.video_info().expect("video info"));
    assert_eq!((vi.codec, vi.width, vi.height, vi.fps), (Codec::H264, 64, 64, Some(25.0)));
    assert!(vi.bframes);
    assert_eq!(vi.config.as_deref(), Some(&AVC_SEQUENCE_HEADER[5..]));
    let ai = audio(ingest.audio_info().expect("audio info"));
    assert_eq!((ai.codec, ai.sample_rate, ai.channels), (Codec::Aac, 48000, 2));
    assert_eq!(ingest.metadata().framerate, Some(25.0));

    // The second video frame is the P-frame at dts 40 shown at 200.
    assert_eq!((v[1].dts, v[1].pts), (Ts::from_millis(40), Ts::from_millis(200)));
    assert_eq!(&v[1].data[..], &P_FRAME_CTS_160[5..]);
    assert!(v.iter().all(|f| f.pts >= f.dts));
    assert!(a.iter().all(|f| f.pts == f.dts && f.keyframe));
    // The first frame has pts != dts, so already its info says B-frames.
    assert!(video(&v[0].info).bframes);
}

#[test]
fn sequence_header_makes_info_and_no_frame() {
    let mut ingest = FlvIngest::new();
    assert!(push(&mut ingest, TagKind::Video, 0, AVC_SEQUENCE_HEADER).is_empty());
    let first = ingest.video_info().cloned().expect("info");
    // Resent unchanged: the same Arc, so egresses do not resend it.
    assert!(push(&mut ingest, TagKind::Video, 500, AVC_SEQUENCE_HEADER).is_empty());
    assert!(Arc::ptr_eq(&first, ingest.video_info().expect("info")));
    assert!(push(&mut ingest, TagKind::Audio, 0, AAC_SEQUENCE_HEADER).is_empty());
    let a = ingest.audio_info().cloned().expect("audio");
    assert!(push(&mut ingest, TagKind::Audio, 0, AAC_SEQUENCE_HEADER).is_empty());
    assert!(Arc::ptr_eq(&a, ingest.audio_info().expect("audio")));
}

#[test]
fn frames_before_sequence_headers_are_dropped_and_counted() {
    let mut ingest = FlvIngest::new();
    assert!(push(&mut ingest, TagKind::Video, 40, P_FRAME_CTS_160).is_empty());
    assert!(push(&mut ingest, TagKind::Audio, 80, AAC_RAW).is_empty());
    assert_eq!(ingest.dropped(), 2);
    push(&mut ingest, TagKind::Audio, 0, AAC_SEQUENCE_HEADER);
    let frames = push(&mut ingest, TagKind::Audio, 80, AAC_RAW);
    assert_eq!(frames.len(), 1);
    assert_eq!(&frames[0].data[..], &AAC_RAW[2..]);
    assert_eq!(frames[0].dts, Ts::from_millis(80));
}

#[test]
fn aac_rate_comes_from_the_asc_not_the_flv_rate_field() {
    let mut ingest = FlvIngest::new();
    // FLV byte says "44 kHz" (it cannot say 48); the ASC says 48 kHz stereo.
    push(&mut ingest, TagKind::Audio, 0, AAC_SEQUENCE_HEADER);
    assert_eq!(audio(ingest.audio_info().expect("info")).sample_rate, 48000);
    // A mono 22.05 kHz stream with the same FLV byte.
    push(&mut ingest, TagKind::Audio, 0, &[0xaf, 0x00, 0x13, 0x88]);
    let a = audio(ingest.audio_info().expect("info"));
    assert_eq!((a.sample_rate, a.channels), (22050, 1));
}

#[test]
fn new_sequence_header_makes_new_info() {
    let mut ingest = FlvIngest::new();
    push(&mut ingest, TagKind::Video, 0, AVC_SEQUENCE_HEADER);
    let first = ingest.video_info().cloned().expect("info");
    push(&mut ingest, TagKind::Video, 1000, &OTHER_AVC_SEQUENCE_HEADER);
    let second = ingest.video_info().expect("info");
    assert!(!Arc::ptr_eq(&first, second));
    assert_eq!((video(second).width, video(second).height, video(second).fps), (640, 360, Some(30.0)));
}

#[test]
fn keyframe_from_flv_flag_or_idr() {
    let mut ingest = FlvIngest::new();
    push(&mut ingest, TagKind::Video, 0, AVC_SEQUENCE_HEADER);
    // An IDR NAL sent with the "inter frame" flag is still a keyframe.
    let mut body = vec![0x27, 0x01, 0, 0, 0, 0, 0, 0, 3, 0x65, 0x88, 0x84];
    assert!(push(&mut ingest, TagKind::Video, 0, &body)[0].keyframe);
    // A P slice flagged as keyframe is taken at the publisher's word.
    body[0] = 0x17;
    body[9] = 0x41;
    assert!(push(&mut ingest, TagKind::Video, 40, &body)[0].keyframe);
    body[0] = 0x27;
    assert!(!push(&mut ingest, TagKind::Video, 80, &body)[0].keyframe);
}

#[test]
fn bframes_flag_set_once_with_a_new_info() {
    let mut ingest = FlvIngest::new();
    push(&mut ingest, TagKind::Video, 0, AVC_SEQUENCE_HEADER);
    let plain = [0x27, 0x01, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9a];
    let f0 = push(&mut ingest, TagKind::Video, 0, &plain).remove(0);
    assert!(!video(&f0.info).bframes);
    let f1 = push(&mut ingest, TagKind::Video, 40, P_FRAME_CTS_160).remove(0);
    assert!(video(&f1.info).bframes);
    assert!(!Arc::ptr_eq(&f0.info, &f1.info));
    let f2 = push(&mut ingest, TagKind::Video, 80, P_FRAME_CTS_160).remove(0);
    assert!(Arc::ptr_eq(&f1.info, &f2.info), "no new info once marked");
    // The mark survives a new sequence header.
    push(&mut ingest, TagKind::Video, 120, &OTHER_AVC_SEQUENCE_HEADER);
    let renewed = ingest.video_info().expect("info");
    assert_eq!(video(renewed).width, 640);
    assert!(video(renewed).bframes);
}

/// An avcC for an SPS without VUI timing (baseline 176x144, timing bits removed by hand).
fn sps_without_timing() -> Bytes {
    let mut w = BytesMut::new();
    w.put_slice(&[0x01, 0x42, 0xc0, 0x0a, 0xff, 0xe1]);
    // profile 66, level 10, sps 0, log2_max_frame_num 0, poc type 2, 1 ref, 11x9 MBs,
    // frame_mbs_only, direct_8x8, no crop, no VUI, stop bit.
    let sps = [0x67, 0x42, 0xc0, 0x0a, 0xda, 0x0b, 0x13, 0x90];
    w.put_u16(sps.len() as u16);
    w.put_slice(&sps);
    w.put_slice(&[0x01, 0x00, 0x04, 0x68, 0xcb, 0x83, 0xcb]);
    w.freeze()
}

#[test]
fn measures_fps_when_nothing_states_it() {
    let avcc = sps_without_timing();
    let cfg = AvcConfig::parse(&avcc).expect("avcC");
    let sps = cfg.first_sps().expect("sps");
    assert_eq!((sps.width, sps.height, sps.fps), (176, 144, None));

    let mut ingest = FlvIngest::new();
    let mut seq = vec![0x17, 0, 0, 0, 0];
    seq.extend_from_slice(&avcc);
    push(&mut ingest, TagKind::Video, 0, &seq);
    assert_eq!(video(ingest.video_info().expect("info")).fps, None);
    let frame = [0x27, 0x01, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9a];
    let mut last = None;
    for i in 0..40u32 {
        last = push(&mut ingest, TagKind::Video, 1000 + i * 50, &frame).pop();
    }
    assert_eq!(video(&last.expect("frame").info).fps, Some(20.0));
    assert_eq!(video(ingest.video_info().expect("info")).fps, Some(20.0));
}

#[test]
fn metadata_framerate_fills_a_missing_fps() {
    let mut ingest = FlvIngest::new();
    let mut seq = vec![0x17, 0, 0, 0, 0];
    seq.extend_from_slice(&sps_without_timing());
    push(&mut ingest, TagKind::Video, 0, &seq);
    // The real file's onMetaData says framerate 25.
    let meta = &COLOR64_FLV[24..24 + 293];
    assert!(push(&mut ingest, TagKind::Script, 0, meta).is_empty());
    assert_eq!(video(ingest.video_info().expect("info")).fps, Some(25.0));
    assert_eq!(ingest.metadata().width, Some(64));
    // Bad AMF is ignored and counted, not an error.
    assert!(push(&mut ingest, TagKind::Script, 0, &[0x02, 0x00, 0x10, b'o']).is_empty());
    assert_eq!(ingest.bad_scripts(), 1);
}

#[test]
fn two_byte_nal_lengths_are_rewritten_to_four() {
    let cfg = AvcConfig::parse(&AVC_SEQUENCE_HEADER[5..]).expect("avcC");
    let mut two = cfg.clone();
    two.nal_length_size = 2;
    let mut seq = vec![0x17, 0, 0, 0, 0];
    seq.extend_from_slice(&two.to_bytes().expect("avcC"));
    let mut ingest = FlvIngest::new();
    push(&mut ingest, TagKind::Video, 0, &seq);
    let stored = AvcConfig::parse(video(ingest.video_info().expect("info")).config.as_deref().unwrap_or(&[]));
    assert_eq!(stored.expect("stored avcC").nal_length_size, 4);
    let frame = push(&mut ingest, TagKind::Video, 0, &[0x27, 0x01, 0, 0, 0, 0, 3, 0x41, 0x9a, 0x23]).remove(0);
    assert_eq!(&frame.data[..], &[0, 0, 0, 3, 0x41, 0x9a, 0x23]);
    assert_eq!(avcc_nal_list(&frame.data, 4).expect("nals").len(), 1);
}

#[test]
fn errors_for_garbage_and_unsupported_codecs() {
    let mut ingest = FlvIngest::new();
    assert!(
        matches!(ingest.push(TagKind::Audio, 0, Bytes::from_static(&[0x2f, 0xff, 0xfb])), Err(FlvError::Unsupported(m)) if m.contains("MP3"))
    );
    assert!(
        matches!(ingest.push(TagKind::Video, 0, Bytes::from_static(&[0x1c, 0, 0, 0, 0])), Err(FlvError::Unsupported(m)) if m.contains("HEVC"))
    );
    assert!(ingest.push(TagKind::Video, 0, Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 2, 3])).is_err(), "bad avcC");
    assert!(ingest.push(TagKind::Audio, 0, Bytes::from_static(&[0xaf, 0, 0xff])).is_err(), "bad ASC");
    push(&mut ingest, TagKind::Video, 0, AVC_SEQUENCE_HEADER);
    let bad_len = Bytes::from_static(&[0x27, 0x01, 0, 0, 0, 0, 0, 0, 9, 0x41]);
    assert!(matches!(ingest.push(TagKind::Video, 0, bad_len), Err(FlvError::H264(_))));
    let huge = Bytes::from(vec![0xaf; super::super::MAX_AUDIO_BODY + 1]);
    assert!(matches!(ingest.push(TagKind::Audio, 0, huge), Err(FlvError::TooLarge { .. })));
    // Empty messages and end-of-sequence give nothing and are fine.
    assert!(push(&mut ingest, TagKind::Audio, 0, &[]).is_empty());
    assert!(push(&mut ingest, TagKind::Video, 0, &[0x17, 0x02, 0, 0, 0]).is_empty());
    // Every truncation of every real tag either works or errors; none panics.
    for tag in real_tags() {
        for len in 0..tag.body.len() {
            let _ = FlvIngest::new().push(tag.kind, tag.timestamp, tag.body.slice(..len));
        }
    }
}
