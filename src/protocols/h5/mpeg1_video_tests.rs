use super::*;

fn sequence_header(width: u32, height: u32, rate_code: u8) -> Vec<u8> {
    vec![
        0,
        0,
        1,
        0xB3,
        (width >> 4) as u8,
        ((width & 0x0F) << 4) as u8 | (height >> 8) as u8,
        height as u8,
        0x10 | rate_code,
        0xFF,
        0xFF,
        0xE0,
        0x18,
    ]
}

fn gop() -> Vec<u8> {
    vec![0, 0, 1, 0xB8, 0x00, 0x08, 0x00, 0x00]
}

/// A picture header of `kind` (1 I, 2 P, 3 B) and one slice of `len` bytes of `fill`.
fn picture(kind: u8, fill: u8, len: usize) -> Vec<u8> {
    let mut p = vec![0, 0, 1, 0x00, 0x00, kind << 3, 0xFF, 0xF8];
    p.extend([0, 0, 1, 0x01]);
    p.extend(std::iter::repeat_n(fill, len));
    p
}

fn i_unit(fill: u8) -> Vec<u8> {
    let mut v = sequence_header(64, 32, 5);
    v.extend(gop());
    v.extend(picture(1, fill, 100));
    v
}

fn ms(v: i64) -> Option<Ts> {
    Some(Ts::from_millis(v))
}

#[test]
fn one_picture_per_pes_is_emitted_at_once() {
    let mut v = Mpeg1Video::new();
    let mut out = Vec::new();
    v.push_pes(ms(0), None, &i_unit(7), &mut out).expect("MPEG-1");
    assert_eq!(out.len(), 1, "no wait for the next PES");
    assert!(out[0].keyframe);
    assert_eq!(out[0].data.as_ref(), i_unit(7).as_slice());
    match out[0].info.as_ref() {
        TrackInfo::Video(i) => {
            assert_eq!((i.codec, i.width, i.height, i.fps, i.bframes), (Codec::Mpeg1, 64, 32, Some(30.0), false))
        }
        other => panic!("{other:?}"),
    }
    v.push_pes(ms(33), None, &picture(2, 8, 50), &mut out).expect("P");
    assert_eq!(out.len(), 2);
    assert!(!out[1].keyframe);
    assert_eq!(out[1].pts, Ts::from_millis(33));
    assert!(Arc::ptr_eq(&out[0].info, &out[1].info), "same info while the sequence is the same");
}

#[test]
fn i_pictures_without_a_sequence_header_get_the_last_one() {
    let mut v = Mpeg1Video::new();
    let mut out = Vec::new();
    // A P-picture before any sequence header cannot be described: dropped.
    v.push_pes(ms(0), None, &picture(2, 1, 10), &mut out).expect("ok");
    assert!(out.is_empty());
    v.push_pes(ms(33), None, &i_unit(1), &mut out).expect("ok");
    let mut bare_i = gop();
    bare_i.extend(picture(1, 2, 20));
    v.push_pes(ms(66), None, &bare_i, &mut out).expect("ok");
    assert_eq!(out.len(), 2);
    let mut expected = sequence_header(64, 32, 5);
    expected.extend(&bare_i);
    assert_eq!(out[1].data.as_ref(), expected.as_slice());
    assert_eq!(v.dropped(), 1);
}

#[test]
fn several_pictures_in_one_pes_are_split_with_extrapolated_timestamps() {
    let mut v = Mpeg1Video::new();
    let mut out = Vec::new();
    let mut pes = i_unit(1);
    pes.extend(picture(2, 2, 30));
    pes.extend(picture(3, 3, 30));
    v.push_pes(ms(1000), None, &pes, &mut out).expect("ok");
    assert_eq!(out.len(), 3);
    let pts: Vec<i64> = out.iter().map(|f| f.pts.as_millis()).collect();
    assert_eq!(pts, [1000, 1033, 1066]);
    assert!(out[0].keyframe && !out[1].keyframe && !out[2].keyframe);
    match out[2].info.as_ref() {
        TrackInfo::Video(i) => assert!(i.bframes, "a B-picture marks the track"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_picture_continued_in_the_next_pes_switches_to_start_code_cutting() {
    let mut v = Mpeg1Video::new();
    let mut out = Vec::new();
    let first = i_unit(1);
    v.push_pes(ms(0), None, &first, &mut out).expect("ok");
    // A continuation of the I-picture: its start was already sent, so it is dropped.
    v.push_pes(None, None, &[5u8; 40], &mut out).expect("ok");
    // From now on pictures are cut at the next boundary.
    let p = picture(2, 2, 300);
    v.push_pes(ms(33), None, &p[..100], &mut out).expect("ok");
    v.push_pes(None, None, &p[100..], &mut out).expect("ok");
    assert_eq!(out.len(), 1, "the P-picture waits for the next boundary");
    v.push_pes(ms(66), None, &picture(2, 3, 10), &mut out).expect("ok");
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].data.as_ref(), p.as_slice());
    assert_eq!(out[1].pts, Ts::from_millis(33));
    v.finish(&mut out).expect("ok");
    assert_eq!(out.len(), 3);
    assert_eq!(out[2].pts, Ts::from_millis(66));
}

#[test]
fn mpeg2_video_is_refused() {
    let mut v = Mpeg1Video::new();
    let mut out = Vec::new();
    let mut unit = sequence_header(720, 576, 3);
    unit.extend([0, 0, 1, 0xB5, 0x14, 0x8A, 0x00, 0x01, 0x00, 0x00]);
    unit.extend(picture(1, 1, 10));
    assert_eq!(v.push_pes(ms(0), None, &unit, &mut out), Err(VideoError::Mpeg2));
}
