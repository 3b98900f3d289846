//! The sanitizer and the RTP checker against real parameter sets (libx264 through ffmpeg
//! 5.1, as in `tests.rs`) and the crafted units that crashed GStreamer 1.22.
use bytes::Bytes;

use super::rtp::{payload_bounds, RtpH264Check, RtpVerdict};
use super::sanitize::{check_config, check_nal, clean_avcc, Reject};
use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0)).collect()
}

/// testsrc2 640x360 @ 30 fps, High profile.
const AVCC_HIGH: &str =
    "0164001effe1001a6764001eacd940a02ff970110000030001000003003c0f162d9601000668ebe3cb22c0fdf8f800";
/// 176x144 @ 15 fps, constrained baseline.
const AVCC_BASELINE: &str = "0142c00affe100166742c00ad902c4ec0440000003004000000783c4899201000568cb83cb20";
/// 642x362 yuv444p with scaling lists.
const AVCC_444_CQM: &str =
    "01f4001effe1001a67f4001e919b281485fc7cf808800000030080000018078b16cb01000868ebe3c44c000440fff8f800";
/// A real IDR slice NAL unit (64x64, x264).
const IDR: &str = "6588840bfffedb5bf32c960a2ab0c9b1c2e6aebf5c3ab2f6be06426dd1d10e0b80d60f6881";

/// A subset SPS (type 15) of the MVC profile (118) cut short after its level_idc: the unit
/// that made `h264parse` crash in `gst_h264_sps_clear`.
const TRUNCATED_SUBSET_SPS: [u8; 4] = [0x6f, 118, 0x00, 0x1e];

fn config(avcc: &str) -> AvcConfig {
    AvcConfig::parse(&hex(avcc)).unwrap_or_else(|e| panic!("test vector: {e}"))
}

fn avcc_of(nals: &[&[u8]]) -> Bytes {
    let mut out = Vec::new();
    for nal in nals {
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    Bytes::from(out)
}

#[test]
fn real_parameter_sets_pass() {
    for avcc in [AVCC_HIGH, AVCC_BASELINE, AVCC_444_CQM] {
        assert_eq!(check_config(&hex(avcc)), Ok(()), "{avcc}");
        let c = config(avcc);
        let pps = Pps::parse(&c.pps[0][..]).unwrap_or_else(|e| panic!("{avcc}: {e}"));
        assert_eq!((pps.pps_id, pps.sps_id), (0, 0));
    }
}

#[test]
fn truncated_or_out_of_range_parameter_sets_are_refused() {
    let c = config(AVCC_HIGH);
    let (sps, pps) = (&c.sps[0][..][..], &c.pps[0][..][..]);
    assert_eq!(check_nal(&sps[..4]), Err(Reject::BadSps), "SPS cut after level_idc");
    assert_eq!(check_nal(&[0x67, 118, 0, 0x1e]), Err(Reject::BadSps), "MVC profile SPS cut short");
    assert_eq!(check_nal(&pps[..1]), Err(Reject::BadPps));
    // pic_parameter_set_id 256 (ue: eight zeros, 1, 00000001): out of range.
    assert_eq!(check_nal(&[0x68, 0x00, 0x80, 0x96, 0x80]), Err(Reject::BadPps));
    assert_eq!(check_nal(&TRUNCATED_SUBSET_SPS), Err(Reject::Type(15)));
    assert_eq!(check_nal(&[0xe5, 0x88]), Err(Reject::Malformed), "forbidden_zero_bit");
    assert_eq!(check_nal(&[0x65]), Err(Reject::Malformed), "a slice with nothing after its header");
    for t in [0u8, 6, 10, 11, 12, 13, 14, 19, 20, 21, 23] {
        assert_eq!(check_nal(&[t, 0x80]), Err(Reject::Type(t)));
    }
    let mut bad = hex(AVCC_HIGH);
    bad.truncate(12);
    assert_eq!(check_config(&bad), Err(Reject::BadConfig));
}

#[test]
fn clean_avcc_keeps_good_frames_untouched_and_strips_the_rest() {
    let c = config(AVCC_HIGH);
    let idr = hex(IDR);
    let good = avcc_of(&[&[0x09u8, 0xf0][..], &c.sps[0][..], &c.pps[0][..], &idr[..]]);
    let cleaned = clean_avcc(&good, 4).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cleaned.removed, vec![]);
    assert_eq!(cleaned.data.as_ref().map(|d| d.as_ptr()), Some(good.as_ptr()), "no copy when all is kept");

    let sei = [0x06u8, 0x05, 0x01, 0xff, 0x80];
    let hostile = avcc_of(&[&sei[..], &c.sps[0][..], &TRUNCATED_SUBSET_SPS[..], &c.pps[0][..], &idr[..]]);
    let cleaned = clean_avcc(&hostile, 4).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cleaned.removed, vec![Reject::Type(6), Reject::Type(15)]);
    assert_eq!(cleaned.data, Some(avcc_of(&[&c.sps[0][..], &c.pps[0][..], &idr[..]])));

    let nothing_left = clean_avcc(&avcc_of(&[&TRUNCATED_SUBSET_SPS[..]]), 4).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(nothing_left.data, None);
    let mut broken = good.to_vec();
    broken[3] = 0xff;
    assert_eq!(clean_avcc(&Bytes::from(broken), 4), Err(Reject::Framing));
}

fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 96, (seq >> 8) as u8, seq as u8, 0, 0, 0x10, 0, 0xde, 0xad, 0xbe, 0xef];
    p.extend_from_slice(payload);
    p
}

/// The payload of the packet that passes (the original or its replacement).
fn passed(check: &mut RtpH264Check, packet: &[u8]) -> (Vec<u8>, Option<Reject>) {
    match check.check(packet) {
        RtpVerdict::Pass => (packet.to_vec(), None),
        RtpVerdict::Replace { packet: new, reason } => {
            assert_eq!(new[1..12], packet[1..12], "the RTP header (and its sequence number) is kept");
            assert_eq!(new[0], packet[0] & !0x20, "only the padding flag changes");
            (new, Some(reason))
        }
    }
}

#[test]
fn rtp_single_units_and_stap_a() {
    let c = config(AVCC_BASELINE);
    let mut check = RtpH264Check::new();
    let idr = rtp(1, &hex(IDR));
    assert_eq!(check.check(&idr), RtpVerdict::Pass);
    assert_eq!(check.check(&rtp(2, &c.sps[0][..])), RtpVerdict::Pass);
    assert_eq!(passed(&mut check, &rtp(3, &TRUNCATED_SUBSET_SPS)), (rtp(3, &[]), Some(Reject::Type(15))));
    for t in [25u8, 26, 27, 29, 30, 31] {
        let (packet, reason) = passed(&mut check, &rtp(4, &[t, 0x85, 0x00, 0x10, 0x65, 0x88]));
        assert_eq!((packet, reason), (rtp(4, &[]), Some(Reject::Type(t))), "type {t}");
    }

    let stap = |units: &[&[u8]]| {
        let mut p = vec![24u8];
        for u in units {
            p.extend_from_slice(&(u.len() as u16).to_be_bytes());
            p.extend_from_slice(u);
        }
        p
    };
    let good = rtp(5, &stap(&[&c.sps[0][..], &c.pps[0][..]]));
    assert_eq!(check.check(&good), RtpVerdict::Pass);
    let hostile = rtp(6, &stap(&[&c.sps[0][..], &TRUNCATED_SUBSET_SPS[..], &c.pps[0][..]]));
    assert_eq!(passed(&mut check, &hostile), (rtp(6, &stap(&[&c.sps[0][..], &c.pps[0][..]])), Some(Reject::Type(15))));
    let mut overlong = stap(&[&c.sps[0][..]]);
    overlong[2] += 1;
    assert_eq!(passed(&mut check, &rtp(7, &overlong)), (rtp(7, &[]), Some(Reject::Framing)));
}

#[test]
fn rtp_fu_a_must_be_long_enough_started_and_of_a_passed_type() {
    let mut check = RtpH264Check::new();
    let fu = |flags: u8, t: u8, data: &[u8]| [&[0x7c, flags | t][..], data].concat();
    // A whole IDR in three fragments passes.
    for (seq, flags) in [(1u16, 0x80u8), (2, 0x00), (3, 0x40)] {
        assert_eq!(check.check(&rtp(seq, &fu(flags, 5, &[0x88, 0x84]))), RtpVerdict::Pass);
    }
    // The over-read: FU-A payloads of one and two bytes.
    assert_eq!(passed(&mut check, &rtp(4, &[0x7c])).1, Some(Reject::Malformed));
    assert_eq!(passed(&mut check, &rtp(5, &[0x7c, 0x85])).1, Some(Reject::Malformed));
    // Start and end in one fragment, and fragments whose start never came.
    assert_eq!(passed(&mut check, &rtp(6, &fu(0xc0, 5, &[1]))).1, Some(Reject::Malformed));
    assert_eq!(passed(&mut check, &rtp(7, &fu(0x00, 5, &[1]))).1, Some(Reject::Malformed));
    // A fragmented subset SPS: its start and every later fragment are emptied.
    assert_eq!(passed(&mut check, &rtp(8, &fu(0x80, 15, &[118, 0]))), (rtp(8, &[]), Some(Reject::Type(15))));
    assert_eq!(passed(&mut check, &rtp(9, &fu(0x40, 15, &[0x1e]))).0, rtp(9, &[]));
    // A fragment switching type mid-unit is refused, and the unit with it.
    assert_eq!(check.check(&rtp(10, &fu(0x80, 1, &[0x9a]))), RtpVerdict::Pass);
    assert_eq!(passed(&mut check, &rtp(11, &fu(0x00, 5, &[0x9a]))).1, Some(Reject::Malformed));
    assert_eq!(passed(&mut check, &rtp(12, &fu(0x40, 1, &[0x9a]))).1, Some(Reject::Malformed));
}

#[test]
fn rtp_header_extension_csrcs_and_padding_are_skipped() {
    // Two CSRCs, a one-word extension, two bytes of padding.
    let mut p = vec![0xb2, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
    p.extend_from_slice(&[0; 8]);
    p.extend_from_slice(&[0xbe, 0xde, 0, 1, 0, 0, 0, 0]);
    p.extend_from_slice(&[26, 1, 2, 3]);
    p.extend_from_slice(&[0, 2]);
    assert_eq!(payload_bounds(&p), Some((28, 32)));
    let (replaced, reason) = passed(&mut RtpH264Check::new(), &p);
    assert_eq!(reason, Some(Reject::Type(26)));
    assert_eq!(replaced.len(), 28, "payload and padding gone");
    assert_eq!(replaced[0] & 0x20, 0, "padding flag cleared");
    assert_eq!(payload_bounds(&[0x80, 96, 0]), None);
    assert_eq!(
        payload_bounds(&[0xa0, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x65, 9]),
        None,
        "padding longer than the packet"
    );
}
