//! Real vectors: AudioSpecificConfigs ffmpeg 5.1's AAC encoder wrote into FLV sequence headers
//! (they carry the backward-compatible SBR sync extension `56 e5 00`), and ADTS headers from
//! `ffmpeg -f lavfi -i sine=sample_rate=8000 -c:a aac -ac 1 -f adts`.
use super::*;

/// 48 kHz stereo AAC-LC (`-ar 48000 -ac 2`).
const ASC_48K_STEREO: [u8; 5] = [0x11, 0x90, 0x56, 0xe5, 0x00];
/// 44.1 kHz mono.
const ASC_44K_MONO: [u8; 5] = [0x12, 0x08, 0x56, 0xe5, 0x00];
/// 48 kHz 7.1 (channel configuration 7).
const ASC_48K_71: [u8; 5] = [0x11, 0xb8, 0x56, 0xe5, 0x00];
/// The two ADTS headers of the 8 kHz mono file: frames of 586 and 417 bytes.
const ADTS_1: [u8; 7] = [0xff, 0xf1, 0x6c, 0x40, 0x49, 0x5f, 0xfc];
const ADTS_2: [u8; 7] = [0xff, 0xf1, 0x6c, 0x40, 0x34, 0x3f, 0xfc];

fn parse(data: &[u8]) -> AudioSpecificConfig {
    match AudioSpecificConfig::parse(data) {
        Ok(asc) => asc,
        Err(e) => panic!("{data:02x?} does not parse: {e}"),
    }
}

#[test]
fn parses_ffmpeg_asc_48k_stereo_with_sync_extension() {
    let asc = parse(&ASC_48K_STEREO);
    assert_eq!(asc.object_type, AOT_AAC_LC);
    assert_eq!((asc.sample_rate, asc.channel_config), (48000, 2));
    assert_eq!((asc.output_sample_rate(), asc.output_channels()), (48000, 2));
    assert_eq!(asc.sbr_sample_rate, None, "sbrPresentFlag is 0");
    assert!(!asc.ps);
}

#[test]
fn parses_ffmpeg_asc_mono_and_7_1() {
    let mono = parse(&ASC_44K_MONO);
    assert_eq!((mono.output_sample_rate(), mono.output_channels()), (44100, 1));
    let surround = parse(&ASC_48K_71);
    assert_eq!((surround.output_sample_rate(), surround.output_channels()), (48000, 8));
    // Without the optional extension the core fields parse the same.
    assert_eq!(parse(&ASC_48K_STEREO[..2]), parse(&ASC_48K_STEREO));
}

#[test]
fn parses_explicit_he_aac_signalling() {
    // HE-AAC v1, hierarchical: AOT 5, core 22.05 kHz stereo, SBR to 44.1 kHz, core AAC-LC.
    let he = parse(&[0x2b, 0x92, 0x08, 0x00]);
    assert_eq!((he.object_type, he.sample_rate, he.sbr_sample_rate), (2, 22050, Some(44100)));
    assert_eq!((he.output_sample_rate(), he.output_channels()), (44100, 2));
    // HE-AAC v2: AOT 29, core 24 kHz mono, output 48 kHz stereo.
    let v2 = parse(&[0xeb, 0x09, 0x88, 0x00]);
    assert!(v2.ps);
    assert_eq!((v2.sample_rate, v2.output_sample_rate(), v2.output_channels()), (24000, 48000, 2));
    // Backward-compatible: AAC-LC 24 kHz stereo, then sync 0x2b7, SBR present at 48 kHz,
    // then sync 0x548 with PS.
    let mut w = BitWriter::new();
    for (n, v) in [(5, 2), (4, 6), (4, 2), (3, 0), (11, 0x2b7), (5, 5), (1, 1), (4, 3), (11, 0x548), (1, 1)] {
        w.put(n, v);
    }
    let compat = parse(&w.finish());
    assert_eq!((compat.object_type, compat.sample_rate), (2, 24000));
    assert_eq!((compat.sbr_sample_rate, compat.ps), (Some(48000), true));
}

#[test]
fn parses_escape_object_type_and_explicit_rate() {
    // AOT 31 + 6-bit escape = 32 + 10 = 42 (USAC), explicit 24-bit rate 12345, mono.
    let mut w = BitWriter::new();
    for (n, v) in [(5, 31), (6, 10), (4, 0xf), (24, 12345), (4, 1)] {
        w.put(n, v);
    }
    let asc = parse(&w.finish());
    assert_eq!((asc.object_type, asc.sample_rate, asc.channel_config), (42, 12345, 1));
}

#[test]
fn builds_asc_like_ffmpeg() {
    assert_eq!(build_asc(48000, 2).as_deref(), Ok(&ASC_48K_STEREO[..2]));
    assert_eq!(build_asc(44100, 1).as_deref(), Ok(&ASC_44K_MONO[..2]));
    assert_eq!(build_asc(48000, 8).as_deref(), Ok(&ASC_48K_71[..2]));
    // A rate without a table index is written explicitly and reads back.
    let odd = build_asc(12345, 2).expect("explicit rate");
    assert_eq!(odd.len(), 5);
    let asc = parse(&odd);
    assert_eq!((asc.object_type, asc.sample_rate, asc.output_channels()), (2, 12345, 2));
    assert!(build_asc(48000, 0).is_err());
    assert!(build_asc(48000, 7).is_err());
    assert!(build_asc(0, 2).is_err());
}

#[test]
fn asc_garbage_is_an_error() {
    assert!(AudioSpecificConfig::parse(&[]).is_err());
    assert!(AudioSpecificConfig::parse(&[0x11]).is_err(), "truncated");
    assert!(AudioSpecificConfig::parse(&[0x00, 0x00]).is_err(), "object type 0");
    assert!(AudioSpecificConfig::parse(&[0x16, 0x90]).is_err(), "frequency index 13");
    assert!(AudioSpecificConfig::parse(&[0x11, 0xc0]).is_err(), "channel configuration 8");
    assert!(AudioSpecificConfig::parse(&[0x17, 0x80, 0x00]).is_err(), "explicit rate cut short");
    for b in 0..=255u8 {
        // Any two bytes either parse or error, never panic.
        let _ = AudioSpecificConfig::parse(&[b, b.rotate_left(3)]);
    }
}

#[test]
fn parses_real_adts_headers() {
    let h = AdtsHeader::parse(&ADTS_1).expect("adts");
    assert_eq!((h.object_type, h.sample_rate, h.channel_config), (2, 8000, 1));
    assert_eq!((h.frame_length, h.header_length), (586, 7));
    assert_eq!(h.to_asc().expect("asc"), build_asc(8000, 1).expect("asc"));
    assert_eq!(AdtsHeader::parse(&ADTS_2).map(|h| h.frame_length), Ok(417));
}

#[test]
fn builds_adts_headers_like_ffmpeg() {
    let asc = parse(&build_asc(8000, 1).expect("asc"));
    assert_eq!(build_adts_header(&asc, 586 - 7), Ok(ADTS_1));
    assert_eq!(build_adts_header(&asc, 417 - 7), Ok(ADTS_2));
    assert!(build_adts_header(&asc, 9000).is_err());
    assert!(build_adts_header(&parse(&build_asc(12345, 1).expect("asc")), 10).is_err());
}

#[test]
fn splits_adts_stream_into_access_units() {
    let mut stream = ADTS_1.to_vec();
    stream.extend(std::iter::repeat_n(0xa1, 586 - 7));
    stream.extend_from_slice(&ADTS_2);
    stream.extend(std::iter::repeat_n(0xb2, 417 - 7));
    let frames: Vec<_> = adts_frames(&stream).collect::<Result<_, _>>().expect("frames");
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0].1.len(), 579);
    assert!(frames[0].1.iter().all(|&b| b == 0xa1));
    assert_eq!(frames[1].1.len(), 410);
    assert!(frames[1].1.iter().all(|&b| b == 0xb2));
    let (first, payload) = strip_adts(&stream).expect("first frame");
    assert_eq!((first.frame_length, payload.len()), (586, 579));
    assert!(strip_adts(&stream[..585]).is_err(), "frame cut short");
    // Cut short: the second frame is an error and iteration stops.
    let cut: Vec<_> = adts_frames(&stream[..stream.len() - 1]).collect();
    assert_eq!(cut.len(), 2);
    assert!(cut[0].is_ok() && cut[1].is_err());
}

#[test]
fn adts_garbage_is_an_error() {
    assert!(AdtsHeader::parse(&ADTS_1[..6]).is_err());
    assert!(AdtsHeader::parse(&[0u8; 7]).is_err(), "no syncword");
    let mut bad = ADTS_1;
    bad[2] = (bad[2] & !0x3c) | (13 << 2);
    assert!(AdtsHeader::parse(&bad).is_err(), "frequency index 13");
    let mut short = ADTS_1;
    short[3] &= !0x03;
    short[4] = 0;
    short[5] &= 0x1f;
    assert!(AdtsHeader::parse(&short).is_err(), "frame length 0");
    let mut blocks = ADTS_1;
    blocks[6] |= 0x01;
    assert!(AdtsHeader::parse(&blocks).is_err(), "two raw data blocks");
    // With a CRC the header is 9 bytes.
    let mut crc = ADTS_1;
    crc[1] &= !0x01;
    assert_eq!(AdtsHeader::parse(&crc).map(|h| h.header_length), Ok(9));
}
