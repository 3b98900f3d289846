use super::*;
use crate::media::{TrackInfo, Ts, VideoInfo};

fn avcc(nals: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in nals {
        out.extend_from_slice(&(n.len() as u32).to_be_bytes());
        out.extend_from_slice(n);
    }
    out
}

/// A minimal RFC 6184 depacketizer: the NAL units the payloads carry, in order.
fn depacketize(payloads: &[Payload]) -> Vec<Vec<u8>> {
    let mut nals = Vec::new();
    let mut fu: Option<Vec<u8>> = None;
    for p in payloads {
        let d = &p.data[..];
        match d[0] & 0x1f {
            STAP_A => {
                let mut rest = &d[1..];
                while rest.len() >= 2 {
                    let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                    nals.push(rest[2..2 + len].to_vec());
                    rest = &rest[2 + len..];
                }
                assert!(rest.is_empty());
            }
            FU_A => {
                let (start, end) = (d[1] & 0x80 != 0, d[1] & 0x40 != 0);
                if start {
                    assert!(fu.is_none(), "FU-A start inside a fragmented unit");
                    fu = Some(vec![(d[0] & 0xe0) | (d[1] & 0x1f)]);
                }
                fu.as_mut().expect("FU-A without start").extend_from_slice(&d[2..]);
                if end {
                    nals.push(fu.take().unwrap());
                }
            }
            _ => nals.push(d.to_vec()),
        }
    }
    assert!(fu.is_none(), "unfinished FU-A");
    nals
}

#[test]
fn small_nal_units_go_as_they_are_with_the_marker_on_the_last() {
    let sei = [0x06, 1, 2, 3];
    let slice = [0x41, 9, 9, 9, 9];
    let out = h264_payloads(&avcc(&[&[0x09, 0xf0], &sei, &slice]), 4, None, MAX_PAYLOAD);
    assert_eq!(out.len(), 2, "the AUD is left out");
    assert_eq!(&out[0].data[..], &sei);
    assert_eq!(&out[1].data[..], &slice);
    assert_eq!(out.iter().map(|p| p.marker).collect::<Vec<_>>(), [false, true]);
}

#[test]
fn a_keyframe_starts_with_sps_and_pps_in_one_stap_a() {
    let sps = Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1e, 0xda]);
    let pps = Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80]);
    let idr: Vec<u8> = [0x65].into_iter().chain((0..3000).map(|i| (i % 251) as u8)).collect();
    let out =
        h264_payloads(&avcc(&[&idr]), 4, Some((std::slice::from_ref(&sps), std::slice::from_ref(&pps))), MAX_PAYLOAD);
    assert_eq!(out[0].data[0] & 0x1f, STAP_A);
    assert_eq!(out[0].data[0] & 0x60, 0x60, "NRI is the highest of the aggregated units");
    assert!(out[1..].iter().all(|p| p.data[0] & 0x1f == FU_A));
    assert!(out.iter().all(|p| p.data.len() <= MAX_PAYLOAD));
    assert_eq!(out.iter().filter(|p| p.marker).count(), 1);
    assert!(out.last().unwrap().marker);
    assert_eq!(depacketize(&out), vec![sps.to_vec(), pps.to_vec(), idr.clone()]);
    // A keyframe that carries its own SPS gets no second copy.
    let inband = h264_payloads(
        &avcc(&[&sps, &pps, &idr]),
        4,
        Some((std::slice::from_ref(&sps), std::slice::from_ref(&pps))),
        MAX_PAYLOAD,
    );
    assert_eq!(depacketize(&inband), vec![sps.to_vec(), pps.to_vec(), idr]);
}

#[test]
fn fu_a_fragments_fill_the_packet_and_rebuild_the_unit() {
    for len in [MAX_PAYLOAD + 1, 2 * MAX_PAYLOAD, 5000, 65_000] {
        let nal: Vec<u8> = [0x25].into_iter().chain((1..len).map(|i| (i * 7 % 256) as u8)).collect();
        let out = h264_payloads(&avcc(&[&nal]), 4, None, MAX_PAYLOAD);
        assert_eq!(out.len(), (len - 1).div_ceil(MAX_PAYLOAD - 2), "len {len}");
        assert!(out.iter().all(|p| p.data.len() <= MAX_PAYLOAD && p.data[0] == (0x20 | FU_A)));
        assert_eq!(depacketize(&out), vec![nal]);
    }
}

#[test]
fn other_length_sizes_and_broken_framing() {
    let mut two = vec![0, 3, 0x41, 1, 2];
    let out = h264_payloads(&two, 2, None, MAX_PAYLOAD);
    assert_eq!(depacketize(&out), vec![vec![0x41, 1, 2]]);
    // A length past the end: the units before it are kept, nothing panics.
    two.extend_from_slice(&[0, 200, 0x41]);
    assert_eq!(h264_payloads(&two, 2, None, MAX_PAYLOAD).len(), 1);
    assert!(h264_payloads(&[], 4, None, MAX_PAYLOAD).is_empty());
    assert!(h264_payloads(&[0, 0, 0, 0], 4, Some((&[], &[])), MAX_PAYLOAD).is_empty());
}

#[test]
fn vp8_descriptors() {
    let frame: Vec<u8> = (0..2500).map(|i| i as u8).collect();
    let out = vp8_payloads(&frame, MAX_PAYLOAD);
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].data[0], 0x10);
    assert!(out[1..].iter().all(|p| p.data[0] == 0));
    assert_eq!(out.iter().map(|p| p.marker).collect::<Vec<_>>(), [false, false, true]);
    let joined: Vec<u8> = out.iter().flat_map(|p| p.data[1..].to_vec()).collect();
    assert_eq!(joined, frame);
}

#[test]
fn a_frame_is_packetized_once_however_many_ask() {
    // ffmpeg's avcC of a 176x144 constrained baseline stream.
    let hex = "0142c00affe100166742c00ad902c4ec0440000003004000000783c4899201000568cb83cb20";
    let record: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    let parsed = AvcConfig::parse(&record).expect("avcC");
    let (sps, pps) = (parsed.sps[0].to_vec(), parsed.pps[0].to_vec());
    let config = Bytes::from(record);
    let info = Arc::new(TrackInfo::Video(VideoInfo {
        codec: Codec::H264,
        width: 320,
        height: 240,
        fps: None,
        config: Some(config),
        bframes: false,
    }));
    let frame = Frame::new(info, Ts::ZERO, Ts::ZERO, true, Bytes::from(avcc(&[&[0x65, 1, 2, 3]])));
    let first = cached(&frame).as_ptr();
    let counted = frames_packetized();
    for _ in 0..5 {
        assert_eq!(cached(&frame).as_ptr(), first);
    }
    assert_eq!(frames_packetized(), counted, "later viewers reuse the payloads");
    assert_eq!(depacketize(cached(&frame)), vec![sps, pps, vec![0x65, 1, 2, 3]]);
}
