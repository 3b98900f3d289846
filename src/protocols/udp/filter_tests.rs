use super::*;

fn rtp(pt: u8, seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, pt, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[1, 2, 3, 4]);
    p
}

/// A filter that has accepted source 7 at sequence `seq`.
fn accepted(seq: u16) -> RtpFilter {
    let mut f = RtpFilter::new(96, None);
    assert_eq!(f.check(&rtp(96, seq.wrapping_sub(1), 7), 0), Verdict::Drop(DropReason::Probation));
    assert_eq!(f.check(&rtp(96, seq, 7), 0), Verdict::Pass);
    assert_eq!(f.ssrc(), Some(7));
    f
}

#[test]
fn headers_that_do_not_fit_are_malformed() {
    assert!(parse_rtp(&rtp(96, 1, 7)).is_some());
    assert_eq!(parse_rtp(&[0x80, 96, 0, 1]), None, "short");
    let mut v1 = rtp(96, 1, 7);
    v1[0] = 0x40;
    assert_eq!(parse_rtp(&v1), None, "version 1");
    let mut csrc = rtp(96, 1, 7);
    csrc[0] |= 0x0f; // 15 CSRCs announced, 4 payload bytes present
    assert_eq!(parse_rtp(&csrc), None);
    let mut ext = rtp(96, 1, 7);
    ext[0] |= 0x10;
    ext[14..16].copy_from_slice(&[0, 9]); // 36 bytes of extension announced
    assert_eq!(parse_rtp(&ext), None);
    let mut pad = rtp(96, 1, 7);
    pad[0] |= 0x20;
    *pad.last_mut().unwrap() = 200;
    assert_eq!(parse_rtp(&pad), None);
    let mut f = RtpFilter::new(96, None);
    assert_eq!(f.check(b"hello, this is not RTP", 0), Verdict::Drop(DropReason::Malformed));
    assert_eq!(f.check(&[], 0), Verdict::Drop(DropReason::Malformed));
}

#[test]
fn a_new_source_needs_two_packets_in_sequence() {
    let mut f = RtpFilter::new(96, None);
    assert_eq!(f.check(&rtp(96, 10, 7), 0), Verdict::Drop(DropReason::Probation));
    assert_eq!(f.check(&rtp(96, 12, 7), 0), Verdict::Drop(DropReason::Probation), "a gap restarts probation");
    assert_eq!(f.check(&rtp(96, 13, 7), 0), Verdict::Pass);
    assert_eq!(f.check(&rtp(96, 14, 7), 0), Verdict::Pass);
}

#[test]
fn a_source_named_by_the_sdp_is_accepted_at_once() {
    let mut f = RtpFilter::new(96, Some(0xdead));
    assert_eq!(f.check(&rtp(96, 500, 0xdead), 0), Verdict::Pass);
    assert_eq!(f.check(&rtp(96, 1, 8), 10), Verdict::Drop(DropReason::ForeignSource));
}

#[test]
fn other_payload_types_and_senders_are_dropped() {
    let mut f = accepted(100);
    assert_eq!(f.check(&rtp(97, 101, 7), 5), Verdict::Drop(DropReason::PayloadType));
    assert_eq!(f.check(&rtp(96, 101, 8), 5), Verdict::Drop(DropReason::ForeignSource));
    assert_eq!(f.check(&rtp(96, 101, 7), 5), Verdict::Pass);
    let mut rtcp = vec![0x80, 200, 0, 6];
    rtcp.extend_from_slice(&[0; 24]);
    assert_eq!(f.check(&rtcp, 5), Verdict::Drop(DropReason::RtcpOnRtpPort));
}

#[test]
fn reordering_and_wraparound_pass_jumps_do_not() {
    let mut f = accepted(65_534);
    assert_eq!(f.check(&rtp(96, 65_535, 7), 0), Verdict::Pass);
    assert_eq!(f.check(&rtp(96, 0, 7), 0), Verdict::Pass, "wraps");
    assert_eq!(f.check(&rtp(96, 2, 7), 0), Verdict::Pass, "a lost packet is fine");
    assert_eq!(f.check(&rtp(96, 1, 7), 0), Verdict::Reordered);
    assert_eq!(f.check(&rtp(96, 2, 7), 0), Verdict::Reordered, "duplicate");
    assert_eq!(f.check(&rtp(96, 65_500, 7), 0), Verdict::Reordered, "late, across the wrap");
    assert_eq!(f.check(&rtp(96, 30_000, 7), 0), Verdict::Drop(DropReason::SequenceJump));
    assert_eq!(f.check(&rtp(96, 3, 7), 0), Verdict::Pass, "the run goes on");
    // A jump followed by its successor is a sender restart: accepted from the second packet.
    assert_eq!(f.check(&rtp(96, 40_000, 7), 0), Verdict::Drop(DropReason::SequenceJump));
    assert_eq!(f.check(&rtp(96, 40_001, 7), 0), Verdict::Pass);
    assert_eq!(f.check(&rtp(96, 40_002, 7), 0), Verdict::Pass);
    assert_eq!(f.check(&rtp(96, 4, 7), 0), Verdict::Drop(DropReason::SequenceJump), "the old run is gone");
}

#[test]
fn a_new_sender_takes_over_after_silence() {
    let mut f = accepted(10);
    assert_eq!(f.check(&rtp(96, 1, 9), 1000), Verdict::Drop(DropReason::ForeignSource));
    assert_eq!(f.check(&rtp(96, 2, 9), 1500), Verdict::Drop(DropReason::ForeignSource));
    // Source 7 last seen at 0; at 2500 it has been silent long enough.
    assert_eq!(f.check(&rtp(96, 3, 9), 2500), Verdict::Drop(DropReason::Probation));
    assert_eq!(f.check(&rtp(96, 4, 9), 2520), Verdict::Pass);
    assert_eq!(f.ssrc(), Some(9));
    assert_eq!(f.check(&rtp(96, 11, 7), 2540), Verdict::Drop(DropReason::ForeignSource));
}

#[test]
fn rtcp_compounds_must_add_up() {
    let sr = |words: u16| {
        let mut p = vec![0x80, 200];
        p.extend_from_slice(&words.to_be_bytes());
        p.extend_from_slice(&vec![0; usize::from(words) * 4]);
        p
    };
    let mut compound = sr(6);
    compound.extend_from_slice(&[0x81, 202, 0, 2, 0, 0, 0, 7, 1, 0, 0, 0]);
    assert!(valid_rtcp(&compound));
    assert!(!valid_rtcp(&compound[..compound.len() - 1]), "truncated");
    assert!(!valid_rtcp(&rtp(96, 1, 7)), "RTP is not RTCP");
    assert!(!valid_rtcp(b"garbage garbage garbage"));
    let mut extra = sr(6);
    extra.push(0);
    assert!(!valid_rtcp(&extra), "trailing bytes");
}
