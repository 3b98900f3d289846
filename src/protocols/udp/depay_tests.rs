use super::*;

fn h264() -> Depay {
    Depay::H264(H264Depay::new())
}

fn push(d: &mut Depay, timestamp: u32, marker: bool, payload: &[u8], lost: bool) -> Vec<Unit> {
    let mut out = Vec::new();
    d.push(Packet { timestamp, marker, payload }, lost, &mut out);
    out
}

/// AVCC of NAL units (4-byte lengths).
fn avcc(nals: &[&[u8]]) -> Vec<u8> {
    nals.iter().flat_map(|n| [&(n.len() as u32).to_be_bytes()[..], n].concat()).collect()
}

#[test]
fn single_nal_units_stap_a_and_fu_a_make_one_access_unit() {
    let mut d = h264();
    let sps = [0x67, 0x42, 0x00, 0x1f];
    let pps = [0x68, 0xce, 0x3c, 0x80];
    // STAP-A with SPS and PPS, then an IDR in three FU-A fragments, marker on the last.
    let stap = [&[24u8, 0, 4][..], &sps, &[0, 4], &pps].concat();
    assert!(push(&mut d, 100, false, &stap, false).is_empty());
    assert!(push(&mut d, 100, false, &[0x7c, 0x85, 1, 2], false).is_empty());
    assert!(push(&mut d, 100, false, &[0x7c, 0x05, 3], false).is_empty());
    let out = push(&mut d, 100, true, &[0x7c, 0x45, 4], false);
    assert_eq!(out, [Unit { timestamp: 100, data: avcc(&[&sps, &pps, &[0x65, 1, 2, 3, 4]]), keyframe: true }]);
    let Depay::H264(h) = &mut d else { unreachable!() };
    assert_eq!(h.take_parameter_sets(), Some((&sps[..], &pps[..])));
    assert_eq!(h.take_parameter_sets(), None, "reported once");
    // A non-IDR picture of two single NAL units, ended by the next timestamp (no marker).
    assert!(push(&mut d, 200, false, &[0x41, 9], false).is_empty());
    assert!(push(&mut d, 200, false, &[0x41, 8], false).is_empty());
    let out = push(&mut d, 300, false, &[0x41, 7], false);
    assert_eq!(out, [Unit { timestamp: 200, data: avcc(&[&[0x41, 9], &[0x41, 8]]), keyframe: false }]);
}

#[test]
fn a_lost_fragment_drops_its_nal_unit_only() {
    let mut d = h264();
    push(&mut d, 0, false, &[0x41, 1], false);
    push(&mut d, 0, false, &[0x7c, 0x81, 1, 2], false);
    // The middle fragment is lost: the rest of the unit is dropped, the picture keeps the
    // first NAL unit.
    let out = push(&mut d, 0, true, &[0x7c, 0x41, 4], true);
    assert_eq!(out, [Unit { timestamp: 0, data: avcc(&[&[0x41, 1]]), keyframe: false }]);
    // Fragments without a start, STAP-A with lengths past the end, empty and reserved
    // payloads give nothing.
    assert!(push(&mut d, 10, true, &[0x7c, 0x41, 4], false).is_empty());
    assert!(push(&mut d, 20, true, &[24, 0, 9, 0x41], false).is_empty());
    assert!(push(&mut d, 30, true, &[], false).is_empty());
    assert!(push(&mut d, 40, true, &[0x1e, 1, 2], false).is_empty());
    assert!(push(&mut d, 50, true, &[0x7c], false).is_empty());
}

#[test]
fn sprop_parameter_sets_are_read_from_the_fmtp() {
    let params = vec![("sprop-parameter-sets".to_string(), "Z0IAH5WoFAFuQA==,aM48gA==,!!".to_string())];
    let sets = sprop_parameter_sets(&params);
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[0][0] & 0x1f, 7);
    assert_eq!(sets[1], [0x68, 0xce, 0x3c, 0x80]);
    let mut d = H264Depay::with_parameter_sets(&sets);
    assert!(d.take_parameter_sets().is_some());
    assert_eq!(base64("aGVsbG8"), Some(b"hello".to_vec()));
    assert_eq!(base64("aGVsbG8="), Some(b"hello".to_vec()));
    assert_eq!(base64("a b"), None);
}

fn hbr() -> AuHeaderLayout {
    let p = |k: &str, v: &str| (k.to_string(), v.to_string());
    AuHeaderLayout::from_fmtp(&[p("sizelength", "13"), p("indexlength", "3"), p("indexdeltalength", "3")])
}

fn aac_packet(sizes: &[u16], data: &[u8]) -> Vec<u8> {
    let mut p = ((sizes.len() * 16) as u16).to_be_bytes().to_vec();
    for s in sizes {
        p.extend_from_slice(&(s << 3).to_be_bytes());
    }
    p.extend_from_slice(data);
    p
}

#[test]
fn aac_packets_give_their_aus_one_frame_apart() {
    let mut d = Depay::Aac(AacDepay::new(hbr(), 1024));
    let out = push(&mut d, 5000, true, &aac_packet(&[2, 3], &[1, 1, 2, 2, 2]), false);
    assert_eq!(
        out,
        [
            Unit { timestamp: 5000, data: vec![1, 1], keyframe: true },
            Unit { timestamp: 6024, data: vec![2, 2, 2], keyframe: true }
        ]
    );
    // Sizes past the data: the AUs that fit come out.
    let out = push(&mut d, 7048, true, &aac_packet(&[2, 3], &[1, 1, 2]), false);
    assert_eq!(out.len(), 1);
}

#[test]
fn a_fragmented_aac_au_is_put_back_together() {
    let mut d = Depay::Aac(AacDepay::new(hbr(), 1024));
    assert!(push(&mut d, 0, false, &aac_packet(&[5], &[1, 2]), false).is_empty());
    let out = push(&mut d, 0, true, &aac_packet(&[5], &[3, 4, 5]), false);
    assert_eq!(out, [Unit { timestamp: 0, data: vec![1, 2, 3, 4, 5], keyframe: true }]);
    // A lost fragment: the AU is dropped, the next one comes through.
    assert!(push(&mut d, 1024, false, &aac_packet(&[5], &[1, 2]), false).is_empty());
    assert!(push(&mut d, 1024, true, &aac_packet(&[5], &[5]), true).is_empty());
    assert!(push(&mut d, 2048, true, &aac_packet(&[5], &[1, 2, 3]), false).is_empty());
    let out = push(&mut d, 3072, true, &aac_packet(&[2], &[9, 9]), false);
    assert_eq!(out, [Unit { timestamp: 3072, data: vec![9, 9], keyframe: true }]);
    // Without AU headers the payload is the AU.
    let mut plain = Depay::Aac(AacDepay::new(AuHeaderLayout::default(), 1024));
    assert_eq!(push(&mut plain, 1, true, &[7, 7], false), [Unit { timestamp: 1, data: vec![7, 7], keyframe: true }]);
    // Headers cut short give nothing.
    assert!(push(&mut d, 4096, true, &[0, 32, 0], false).is_empty());
}

#[test]
fn hostile_payloads_never_panic() {
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let p = |k: &str, v: &str| (k.to_string(), v.to_string());
    let odd =
        AuHeaderLayout::from_fmtp(&[p("sizelength", "64"), p("ctsdeltalength", "9"), p("randomaccessindication", "1")]);
    let mut depays = [h264(), Depay::Aac(AacDepay::new(hbr(), 1024)), Depay::Aac(AacDepay::new(odd, 1)), Depay::Whole];
    let mut out = Vec::new();
    for i in 0..20_000u32 {
        let len = (next() % 40) as usize;
        let mut payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 3 == 0 && !payload.is_empty() {
            payload[0] = [24u8, 28, 0x7c, 0x00][(next() % 4) as usize];
        }
        for d in depays.iter_mut() {
            d.push(Packet { timestamp: i / 4, marker: next() % 5 == 0, payload: &payload }, next() % 17 == 0, &mut out);
        }
        out.clear();
    }
}
