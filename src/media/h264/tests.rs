//! Test vectors are the avcC records ffmpeg 5.1 / libx264 wrote into FLV files
//! (`ffmpeg -f lavfi -i testsrc2=size=WxH:rate=R -c:v libx264 ...`), copied from the files,
//! and the sizes/rates ffprobe reported for those files.
use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0)).collect()
}

/// testsrc2 640x360 @ 30 fps, High profile; ffprobe: 640x360, 30/1, has_b_frames=2.
const AVCC_640X360: &str =
    "0164001effe1001a6764001eacd940a02ff970110000030001000003003c0f162d9601000668ebe3cb22c0fdf8f800";
/// 642x362 @ 30 fps: coded 656x368 with frame cropping.
const AVCC_642X362: &str =
    "0164001effe1001b6764001eacd940a42fe224c044000003000400000300f03c58b65801000668ebe3cb22c0fdf8f800";
/// 320x240 @ 25 fps, `-bf 2 -g 25`, level 1.3.
const AVCC_320X240: &str =
    "0164000dffe100196764000dacd94141fb011000000300100000030320f142996001000668ebe3cb22c0fdf8f800";
/// 176x144 @ 15 fps, `-profile:v baseline` (constrained baseline, no avcC extension).
const AVCC_BASELINE: &str = "0142c00affe100166742c00ad902c4ec0440000003004000000783c4899201000568cb83cb20";
/// 720x576 @ 25 fps interlaced (`-flags +ildct+ilme`): frame_mbs_only_flag = 0.
const AVCC_INTERLACED: &str =
    "0164001effe100186764001eacd940b424d8088000000300800000190f8a14cb01000668fba3cb22c0fdf8f800";
/// 642x362 @ 24 fps, yuv444p (High 4:4:4 Predictive, profile 244) with `cqm=jvt` scaling lists.
const AVCC_444_CQM: &str =
    "01f4001effe1001a67f4001e919b281485fc7cf808800000030080000018078b16cb01000868ebe3c44c000440fff8f800";

/// Real AVCC frames of a 64x64 red picture (x264, SEI removed): an IDR and a P frame.
const IDR_FRAME: &str = "000000256588840bfffedb5bf32c960a2ab0c9b1c2e6aebf5c3ab2f6be06426dd1d10e0b80d60f6881";
const P_FRAME: &str = "00000009419a3b10bffe8cd360";

fn sps_of(avcc: &str) -> Sps {
    match AvcConfig::parse(&hex(avcc)).and_then(|c| c.first_sps()) {
        Ok(sps) => sps,
        Err(e) => panic!("test vector does not parse: {e}"),
    }
}

#[test]
fn parses_real_avcc_record() {
    let cfg = AvcConfig::parse(&hex(AVCC_640X360)).expect("avcC");
    assert_eq!((cfg.profile_idc, cfg.profile_compat, cfg.level_idc), (100, 0, 30));
    assert_eq!(cfg.nal_length_size, 4);
    assert_eq!(cfg.sps.len(), 1);
    assert_eq!(cfg.pps.len(), 1);
    assert_eq!(cfg.sps[0].len(), 0x1a);
    assert_eq!(nal_type(&cfg.sps[0]), Some(NAL_SPS));
    assert_eq!(&cfg.pps[0][..], &hex("68ebe3cb22c0")[..]);
    assert_eq!(cfg.high_ext, Some((1, 0, 0)));
}

#[test]
fn avcc_record_round_trips_byte_exact() {
    for v in [AVCC_640X360, AVCC_642X362, AVCC_BASELINE, AVCC_444_CQM] {
        let cfg = AvcConfig::parse(&hex(v)).expect("avcC");
        assert_eq!(cfg.to_bytes().expect("serialize").to_vec(), hex(v));
    }
}

#[test]
fn builds_avcc_from_sps_and_pps_like_ffmpeg() {
    for v in [AVCC_640X360, AVCC_320X240, AVCC_BASELINE, AVCC_444_CQM] {
        let cfg = AvcConfig::parse(&hex(v)).expect("avcC");
        let built = AvcConfig::build(&cfg.sps[0], &cfg.pps[0]).expect("build");
        assert_eq!(built.to_vec(), hex(v), "built avcC differs for {v}");
    }
}

#[test]
fn sps_640x360_size_fps_and_reorder() {
    let sps = sps_of(AVCC_640X360);
    assert_eq!((sps.width, sps.height), (640, 360));
    assert_eq!(sps.fps, Some(30.0));
    assert_eq!((sps.profile_idc, sps.level_idc), (100, 30));
    assert_eq!(sps.max_num_reorder_frames, Some(2));
    assert_eq!(sps.may_have_bframes(), Some(true));
    assert!(sps.frame_mbs_only);
}

#[test]
fn sps_odd_size_uses_frame_cropping() {
    let sps = sps_of(AVCC_642X362);
    assert_eq!((sps.width, sps.height), (642, 362));
    assert_eq!(sps.fps, Some(30.0));
}

#[test]
fn sps_320x240_25fps() {
    let sps = sps_of(AVCC_320X240);
    assert_eq!((sps.width, sps.height, sps.level_idc), (320, 240, 13));
    assert_eq!(sps.fps, Some(25.0));
}

#[test]
fn sps_baseline_has_no_bframes() {
    let sps = sps_of(AVCC_BASELINE);
    assert_eq!((sps.width, sps.height, sps.profile_idc), (176, 144, 66));
    assert_eq!(sps.fps, Some(15.0));
    assert_eq!(sps.may_have_bframes(), Some(false));
    let cfg = AvcConfig::parse(&hex(AVCC_BASELINE)).expect("avcC");
    assert_eq!(cfg.high_ext, None);
}

#[test]
fn sps_interlaced_counts_field_pairs() {
    let sps = sps_of(AVCC_INTERLACED);
    assert!(!sps.frame_mbs_only);
    assert_eq!((sps.width, sps.height), (720, 576));
    assert_eq!(sps.fps, Some(25.0));
}

#[test]
fn sps_444_with_scaling_lists_and_cropping() {
    let sps = sps_of(AVCC_444_CQM);
    assert_eq!((sps.profile_idc, sps.chroma_format_idc), (244, 3));
    assert_eq!((sps.width, sps.height), (642, 362));
    assert_eq!(sps.fps, Some(24.0));
    assert_eq!(sps.max_num_reorder_frames, Some(2));
}

#[test]
fn sps_garbage_is_an_error() {
    assert!(Sps::parse(&[]).is_err());
    assert!(Sps::parse(&[0x68, 0xeb]).is_err(), "a PPS is not an SPS");
    assert!(Sps::parse(&[0x67, 0x64, 0x00]).is_err());
    // Every truncation of a real SPS either errors or (once the size fields are in) parses
    // to the right size; none panics.
    let cfg = AvcConfig::parse(&hex(AVCC_642X362)).expect("avcC");
    let sps = &cfg.sps[0];
    for len in 0..sps.len() {
        if let Ok(s) = Sps::parse(&sps[..len]) {
            assert_eq!((s.width, s.height), (642, 362));
        }
    }
    // Cropping larger than the picture.
    let mut w = crate::media::bits::BitWriter::new();
    w.put(8, 0x67);
    w.put(24, 0x42_c0_0a); // baseline, level 1.0
    w.put(1, 1); // sps id 0
    w.put(1, 1); // log2_max_frame_num_minus4 = 0
    w.put(3, 0b011); // poc type 2
    w.put(1, 1); // max_num_ref_frames 0
    w.put(1, 0); // gaps
    w.put(1, 1); // width 1 MB
    w.put(1, 1); // height 1 MB
    w.put(1, 1); // frame_mbs_only
    w.put(1, 1); // direct_8x8
    w.put(1, 1); // cropping
    w.put(7, 0b0001001); // left 8 -> 16 px, the whole width
    w.put(1, 1);
    w.put(1, 1);
    w.put(1, 1);
    w.put(1, 0); // no VUI
    w.put(1, 1); // rbsp stop bit
    assert!(matches!(Sps::parse(&w.finish()), Err(H264Error::Invalid(_))));
}

#[test]
fn avcc_record_garbage_is_an_error() {
    let good = hex(AVCC_640X360);
    for len in 0..good.len() - 4 {
        assert!(AvcConfig::parse(&good[..len]).is_err(), "truncated to {len} parsed");
    }
    let mut bad = good.clone();
    bad[0] = 2;
    assert!(AvcConfig::parse(&bad).is_err());
    let mut bad = good;
    bad[8] = 0x68; // SPS slot holds a PPS
    assert!(AvcConfig::parse(&bad).is_err());
    assert!(AvcConfig::parse(&[0xff; 40]).is_err());
}

#[test]
fn iterates_avcc_nals_and_finds_keyframes() {
    let idr = hex(IDR_FRAME);
    let nals = avcc_nal_list(&idr, 4).expect("nals");
    assert_eq!(nals.len(), 1);
    assert_eq!(nals[0].len(), 0x25);
    assert_eq!(nal_type(nals[0]), Some(NAL_IDR));
    assert_eq!(is_keyframe(&idr, 4), Ok(true));
    assert_eq!(is_keyframe(&hex(P_FRAME), 4), Ok(false));

    let mut two = hex(P_FRAME);
    two.extend_from_slice(&idr);
    let types: Vec<_> = avcc_nal_list(&two, 4).expect("nals").iter().map(|n| nal_type(n)).collect();
    assert_eq!(types, vec![Some(NAL_SLICE), Some(NAL_IDR)]);
}

#[test]
fn avcc_bad_lengths_are_errors() {
    let idr = hex(IDR_FRAME);
    assert!(is_keyframe(&idr[..idr.len() - 1], 4).is_err());
    assert!(avcc_nal_list(&[0, 0, 1], 4).is_err());
    assert!(avcc_nal_list(&[0xff, 0xff, 0xff, 0xff, 0x65], 4).is_err());
    assert!(avcc_nal_list(&idr, 0).is_err());
    assert!(avcc_nal_list(&idr, 5).is_err());
    // The iterator stops after its error.
    assert_eq!(avcc_nals(&[0, 0, 0, 9, 1], 4).count(), 1);
}

#[test]
fn converts_nal_length_size() {
    let p = hex(P_FRAME);
    let two = convert_nal_length_size(&p, 4, 2).expect("to 2");
    assert_eq!(&two[..2], &[0, 9]);
    assert_eq!(&two[2..], &p[4..]);
    assert_eq!(convert_nal_length_size(&two, 2, 4).expect("to 4").to_vec(), p);
    let big = [&[0u8, 0, 1, 0][..], &[0x41; 256][..]].concat();
    assert!(convert_nal_length_size(&big, 4, 1).is_err(), "256-byte NAL in a 1-byte length");
}

#[test]
fn annexb_and_avcc_round_trip() {
    let cfg = AvcConfig::parse(&hex(AVCC_640X360)).expect("avcC");
    let (sps, pps) = (&cfg.sps[0], &cfg.pps[0]);
    let idr = hex(IDR_FRAME);
    let idr_nal = &idr[4..];

    // Mixed 4- and 3-byte start codes and a trailing zero byte, as encoders emit them.
    let mut annexb = vec![0, 0, 0, 1, 0x09, 0xf0];
    annexb.extend_from_slice(&[0, 0, 0, 1]);
    annexb.extend_from_slice(sps);
    annexb.extend_from_slice(&[0, 0, 1]);
    annexb.extend_from_slice(pps);
    annexb.extend_from_slice(&[0, 0, 0, 1]);
    annexb.extend_from_slice(idr_nal);
    annexb.push(0);

    let nals = annexb_nals(&annexb).expect("nals");
    let types: Vec<_> = nals.iter().map(|n| nal_type(n)).collect();
    assert_eq!(types, vec![Some(NAL_AUD), Some(NAL_SPS), Some(NAL_PPS), Some(NAL_IDR)]);
    assert_eq!(nals[3], idr_nal);

    let avcc = annexb_to_avcc(&annexb).expect("to avcc");
    assert_eq!(avcc.len(), 4 * 4 + 2 + sps.len() + pps.len() + idr_nal.len());
    assert_eq!(is_keyframe(&avcc, 4), Ok(true));
    let back = avcc_to_annexb(&avcc, 4).expect("to annexb");
    assert_eq!(annexb_nals(&back).expect("nals"), nals);
    assert_eq!(annexb_to_avcc(&back).expect("again"), avcc);
}

#[test]
fn annexb_garbage_is_an_error() {
    assert!(annexb_to_avcc(&hex(IDR_FRAME)[4..]).is_err(), "no start code");
    assert!(annexb_to_avcc(&[0x65, 0, 0, 1, 0x65]).is_err(), "bytes before the start code");
    assert!(annexb_to_avcc(&[]).is_err());
    assert_eq!(annexb_nals(&[0, 0, 1, 0, 0, 1]).expect("empty nals"), Vec::<&[u8]>::new());
}

#[test]
fn unescapes_emulation_prevention() {
    assert_eq!(unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 3]), vec![0, 0, 1, 0, 0, 0, 3]);
}

/// Writes exp-Golomb codes for hand-built SPS test vectors.
fn put_ue(w: &mut crate::media::bits::BitWriter, v: u32) {
    let n = u64::from(v) + 1;
    let bits = 63 - n.leading_zeros();
    w.put(bits, 0);
    w.put(bits + 1, n as u32);
}

fn put_se(w: &mut crate::media::bits::BitWriter, v: i32) {
    put_ue(w, if v > 0 { 2 * v as u32 - 1 } else { 2 * v.unsigned_abs() });
}

#[test]
fn sps_with_scaling_lists_cropping_and_hrd() {
    // x264 puts its custom matrices in the PPS, so this SPS (High, 1920x1080 @ 50 fps) is
    // built by hand: two explicit scaling lists, one "use default", NAL HRD before the
    // bitstream restriction.
    let mut w = crate::media::bits::BitWriter::new();
    w.put(8, 0x67);
    w.put(24, 0x64_00_28);
    put_ue(&mut w, 0); // sps id
    put_ue(&mut w, 1); // chroma 4:2:0
    put_ue(&mut w, 0); // bit depths
    put_ue(&mut w, 0);
    w.put(1, 0); // qpprime
    w.put(1, 1); // seq_scaling_matrix_present_flag
    for i in 0..8 {
        let present = matches!(i, 0 | 3 | 6);
        w.put(1, u32::from(present));
        match i {
            0 => (0..16).for_each(|j| put_se(&mut w, if j % 2 == 0 { 3 } else { -2 })),
            3 => put_se(&mut w, -8), // nextScale 0 at j = 0: use the default list
            6 => (0..64).for_each(|j| put_se(&mut w, (j % 5) - 2)),
            _ => {}
        }
    }
    put_ue(&mut w, 0); // log2_max_frame_num_minus4
    put_ue(&mut w, 1); // poc type 1
    w.put(1, 0);
    put_se(&mut w, -2);
    put_se(&mut w, 1);
    put_ue(&mut w, 2);
    put_se(&mut w, 4);
    put_se(&mut w, -4);
    put_ue(&mut w, 4); // max_num_ref_frames
    w.put(1, 0);
    put_ue(&mut w, 119); // 120 MBs = 1920
    put_ue(&mut w, 67); // 68 MBs = 1088
    w.put(1, 1); // frame_mbs_only
    w.put(1, 1);
    w.put(1, 1); // cropping: bottom 4 units of 2 rows
    for c in [0, 0, 0, 4] {
        put_ue(&mut w, c);
    }
    w.put(1, 1); // VUI
    w.put(1, 1); // aspect ratio: extended SAR
    w.put(8, 255);
    w.put(32, 0x0001_0001);
    w.put(1, 0); // overscan
    w.put(1, 1); // video signal type with colour description
    w.put(4, 0b1010);
    w.put(1, 1);
    w.put(24, 0x01_01_01);
    w.put(1, 0); // chroma loc
    w.put(1, 1); // timing: 1001 / 100000 -> 49.95 fps
    w.put(32, 1001);
    w.put(32, 100_000);
    w.put(1, 1);
    w.put(1, 1); // NAL HRD with two CPBs
    put_ue(&mut w, 1);
    w.put(8, 0x44);
    for _ in 0..2 {
        put_ue(&mut w, 1000);
        put_ue(&mut w, 2000);
        w.put(1, 0);
    }
    w.put(20, 0xABCDE);
    w.put(1, 0); // VCL HRD
    w.put(1, 0); // low_delay_hrd_flag
    w.put(1, 0); // pic_struct_present
    w.put(1, 1); // bitstream restriction
    w.put(1, 1);
    for v in [2, 1, 16, 16, 3, 4] {
        put_ue(&mut w, v);
    }
    w.put(1, 1); // stop bit
    let nal = w.finish();

    let sps = Sps::parse(&nal).expect("hand-built SPS");
    assert_eq!((sps.width, sps.height), (1920, 1080));
    let fps = sps.fps.expect("fps");
    assert!((fps - 100_000.0 / 2002.0).abs() < 1e-9, "{fps}");
    assert_eq!(sps.max_num_reorder_frames, Some(3));
    // Cutting the VUI short keeps the size but drops the VUI facts.
    let short = Sps::parse(&nal[..nal.len() - 6]).expect("VUI cut short");
    assert_eq!((short.width, short.height, short.max_num_reorder_frames), (1920, 1080, None));
}
