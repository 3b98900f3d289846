use super::super::test_vectors::*;
use super::*;

fn read_all(reader: &mut FlvReader) -> Vec<FlvTag> {
    let mut tags = Vec::new();
    loop {
        match reader.next_tag() {
            Ok(Some(tag)) => tags.push(tag),
            Ok(None) => return tags,
            Err(e) => panic!("read error: {e}"),
        }
    }
}

#[test]
fn reads_real_file() {
    let mut reader = FlvReader::new();
    reader.push(COLOR64_FLV);
    let tags = read_all(&mut reader);
    assert_eq!(reader.header(), Some(FlvHeader { has_audio: true, has_video: true }));
    assert_eq!(reader.buffered(), 0);
    let count = |k: TagKind| tags.iter().filter(|t| t.kind == k).count();
    // metadata; video: sequence header, frames, end of sequence; audio: sequence header, frames
    assert_eq!(count(TagKind::Script), 1);
    assert_eq!(count(TagKind::Video), VIDEO_FRAMES + 2);
    assert_eq!(count(TagKind::Audio), AUDIO_FRAMES + 1);
    assert_eq!(&tags[1].body[..], AVC_SEQUENCE_HEADER);
    assert_eq!(&tags[2].body[..], AAC_SEQUENCE_HEADER);
    let p = tags.iter().find(|t| &t.body[..] == P_FRAME_CTS_160).expect("P frame");
    assert_eq!(p.timestamp, 40);
    assert_eq!(tags.last().map(|t| t.timestamp), Some(360));
}

#[test]
fn reads_the_same_tags_byte_by_byte() {
    let mut whole = FlvReader::new();
    whole.push(COLOR64_FLV);
    let expected = read_all(&mut whole);
    let mut reader = FlvReader::new();
    let mut tags = Vec::new();
    for b in COLOR64_FLV {
        reader.push(&[*b]);
        tags.extend(read_all(&mut reader));
    }
    assert_eq!(tags, expected);
}

#[test]
fn writes_the_file_back_byte_exact() {
    let mut reader = FlvReader::new();
    reader.push(COLOR64_FLV);
    let tags = read_all(&mut reader);
    let mut out = file_header(true, true).to_vec();
    for t in &tags {
        out.extend_from_slice(&file_tag(t.kind, t.timestamp, &t.body));
    }
    assert_eq!(out, COLOR64_FLV);
}

#[test]
fn header_flags_and_extended_timestamps() {
    assert_eq!(&file_header(false, true)[..], b"FLV\x01\x01\x00\x00\x00\x09\x00\x00\x00\x00");
    assert_eq!(file_header(true, false)[4], 0x04);
    let tag = file_tag(TagKind::Audio, 0x1234_5678, &[0xaf, 0x01, 0x21]);
    assert_eq!(&tag[..11], &[8, 0, 0, 3, 0x34, 0x56, 0x78, 0x12, 0, 0, 0]);
    assert_eq!(&tag[14..], &[0, 0, 0, 14]);
    let mut reader = FlvReader::new();
    reader.push(&file_header(true, false));
    reader.push(&tag);
    let read = reader.next_tag().expect("read").expect("tag");
    assert_eq!((read.kind, read.timestamp, &read.body[..]), (TagKind::Audio, 0x1234_5678, &[0xaf, 0x01, 0x21][..]));
}

#[test]
fn skips_unknown_tag_types() {
    let mut reader = FlvReader::new();
    reader.push(&file_header(true, true));
    let mut odd = file_tag(TagKind::Audio, 5, &[1, 2, 3]).to_vec();
    odd[0] = 15; // an AMF3 data message type, not an FLV tag type
    reader.push(&odd);
    reader.push(&file_tag(TagKind::Video, 7, &[0x17, 2, 0, 0, 0]));
    let tags = read_all(&mut reader);
    assert_eq!(tags.len(), 1);
    assert_eq!((tags[0].kind, tags[0].timestamp), (TagKind::Video, 7));
    assert_eq!(reader.skipped(), 1);
}

#[test]
fn rejects_garbage() {
    let mut r = FlvReader::new();
    r.push(b"GIF89a....");
    assert!(matches!(r.next_tag(), Err(FlvError::Malformed(_))));
    let mut r = FlvReader::new();
    r.push(b"FX");
    assert!(r.next_tag().is_err(), "a wrong signature is seen early");
    let mut r = FlvReader::new();
    r.push(b"FL");
    assert_eq!(r.next_tag(), Ok(None), "a right prefix waits for more");
    let mut r = FlvReader::new();
    r.push(b"FLV\x02\x05\x00\x00\x00\x09\x00\x00\x00\x00");
    assert!(matches!(r.next_tag(), Err(FlvError::Unsupported(_))));
    let mut r = FlvReader::new();
    r.push(b"FLV\x01\x05\xff\x00\x00\x09");
    assert!(r.next_tag().is_err(), "absurd header size");
}

#[test]
fn oversized_tag_is_refused_before_buffering() {
    let mut r = FlvReader::new();
    r.push(&file_header(true, true));
    // An audio tag claiming 1 MiB: over the audio limit; refused from its header alone.
    r.push(&[8, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert!(matches!(r.next_tag(), Err(FlvError::TooLarge { kind: TagKind::Audio, .. })));
    let mut r = FlvReader::new();
    r.push(&file_header(true, true));
    r.push(&[0x28, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert!(matches!(r.next_tag(), Err(FlvError::Unsupported(_))), "encrypted");
}

#[test]
fn oversized_body_is_not_framed() {
    let body = vec![0u8; 0x100_0000];
    assert!(file_tag(TagKind::Video, 0, &body).is_empty());
}
