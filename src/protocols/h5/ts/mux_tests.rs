use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::media::{AudioInfo, Codec, TrackInfo, VideoInfo};
use crate::protocols::h5::ts::demux::{DemuxEvent, TsDemuxer};

fn packets(out: &[u8]) -> Vec<&[u8]> {
    assert_eq!(out.len() % PACKET_SIZE, 0, "a whole number of packets");
    out.chunks(PACKET_SIZE).collect()
}

fn pid(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[1] & 0x1F, p[2]])
}

fn cc(p: &[u8]) -> u8 {
    p[3] & 0x0F
}

fn has_adaptation(p: &[u8]) -> bool {
    p[3] & 0x20 != 0
}

fn opts(pcr: Option<u64>) -> PesOptions {
    PesOptions { pid: VIDEO_PID, stream_id: STREAM_ID_VIDEO, pts: 123_456, dts: None, pcr, random_access: true }
}

#[test]
fn a_pes_is_cut_into_packets_with_counters_pcr_and_stuffing_only_at_the_end() {
    let payload: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let mut cc_value = 14;
    let mut out = Vec::new();
    write_pes(&opts(Some(90_000)), &payload, &mut cc_value, &mut out);
    let ps = packets(&out);
    // 14 header bytes + 1000 payload; first packet has 8 bytes of adaptation field.
    assert_eq!(ps.len(), 6);
    for (i, p) in ps.iter().enumerate() {
        assert_eq!(p[0], SYNC_BYTE);
        assert_eq!(pid(p), VIDEO_PID);
        assert_eq!(cc(p), ((14 + i) % 16) as u8, "continuity counter wraps");
        assert_eq!(p[1] & 0x40 != 0, i == 0, "PUSI only on the first packet");
        // JSMpeg ends a frame at a stuffed packet: only the first and last may have one.
        assert_eq!(has_adaptation(p), i == 0 || i == ps.len() - 1, "packet {i}");
    }
    assert_eq!(cc_value, (14 + 6) % 16);
    let first = ps[0];
    assert_eq!(first[4], 7, "adaptation field: flags + PCR");
    assert_eq!(first[5], 0x50, "random access + PCR flags");
    let base = (first[6] as u64) << 25
        | (first[7] as u64) << 17
        | (first[8] as u64) << 9
        | (first[9] as u64) << 1
        | (first[10] >> 7) as u64;
    assert_eq!(base, 90_000);
    assert_eq!(&first[12..16], &[0, 0, 1, STREAM_ID_VIDEO]);
    assert_eq!(u16::from_be_bytes([first[16], first[17]]) as usize, 3 + 5 + payload.len());

    let mut demux = TsDemuxer::new();
    let mut events = Vec::new();
    let mut tables = ProgramTables::new(true, false);
    let mut stream = Vec::new();
    tables.write(&mut stream);
    stream.extend_from_slice(&out);
    demux.push(&stream, &mut events).expect("valid TS");
    let pes = events.iter().find_map(|e| match e {
        DemuxEvent::Pes(p) => Some(p.clone()),
        _ => None,
    });
    let pes = pes.expect("the PES is complete by its length");
    assert_eq!(pes.data, payload);
    assert_eq!(pes.pts, Some(123_456));
    assert_eq!(pes.dts, None);
}

#[test]
fn exact_fits_small_frames_and_long_frames() {
    // 14 header bytes + 170 = 184: one packet, no adaptation field at all.
    let mut out = Vec::new();
    let mut c = 0;
    let o = PesOptions { pcr: None, random_access: false, ..opts(None) };
    write_pes(&o, &[7u8; 170], &mut c, &mut out);
    assert_eq!(packets(&out).len(), 1);
    assert!(!has_adaptation(&out));

    // 183 bytes left for the last packet: a one-byte adaptation field (length 0).
    out.clear();
    write_pes(&o, &[7u8; 184 + 169], &mut c, &mut out);
    let ps = packets(&out);
    assert_eq!(ps.len(), 2);
    assert!(has_adaptation(ps[1]));
    assert_eq!(ps[1][4], 0);

    // An empty payload still makes one packet.
    out.clear();
    write_pes(&o, &[], &mut c, &mut out);
    assert_eq!(packets(&out).len(), 1);

    // Over 64 KiB: PES_packet_length 0 (allowed for video).
    out.clear();
    write_pes(&o, &vec![1u8; 70_000], &mut c, &mut out);
    assert_eq!(&out[8..10], &[0, 0]);
}

#[test]
fn pts_and_dts_fields_carry_33_bits() {
    let mut out = Vec::new();
    let mut c = 0;
    let big = (1u64 << 33) - 2;
    let o = PesOptions { pts: big, dts: Some(5), pcr: None, random_access: false, ..opts(None) };
    write_pes(&o, &[1, 2, 3], &mut c, &mut out);
    let mut events = Vec::new();
    let mut demux = TsDemuxer::new();
    let mut stream = Vec::new();
    ProgramTables::new(true, false).write(&mut stream);
    stream.extend_from_slice(&out);
    demux.push(&stream, &mut events).expect("valid");
    match events.last() {
        Some(DemuxEvent::Pes(p)) => {
            assert_eq!((p.pts, p.dts), (Some(big), Some(5)));
            assert_eq!(p.data, vec![1, 2, 3]);
        }
        other => panic!("expected a PES, got {other:?}"),
    }
}

#[test]
fn tables_are_one_packet_each_with_their_own_counters() {
    let mut t = ProgramTables::new(true, true);
    let mut out = Vec::new();
    t.write(&mut out);
    t.write(&mut out);
    let ps = packets(&out);
    assert_eq!(ps.iter().map(|p| (pid(p), cc(p))).collect::<Vec<_>>(), [(0, 0), (PMT_PID, 0), (0, 1), (PMT_PID, 1)]);
    let mut demux = TsDemuxer::new();
    let mut events = Vec::new();
    demux.push(&out, &mut events).expect("valid");
    assert_eq!(
        events,
        [DemuxEvent::Program(vec![
            EsEntry { stream_type: STREAM_TYPE_MPEG1_VIDEO, pid: VIDEO_PID },
            EsEntry { stream_type: STREAM_TYPE_MPEG1_AUDIO, pid: AUDIO_PID },
        ])]
    );
}

#[test]
fn the_muxer_puts_frames_on_their_pids_with_the_pcr_on_video() {
    let video = Arc::new(TrackInfo::Video(VideoInfo {
        codec: Codec::Mpeg1,
        width: 64,
        height: 32,
        fps: Some(30.0),
        config: None,
        bframes: false,
    }));
    let audio =
        Arc::new(TrackInfo::Audio(AudioInfo { codec: Codec::Mp2, sample_rate: 44_100, channels: 1, config: None }));
    let mut mux = TsMuxer::new(true, true);
    let mut out = Vec::new();
    mux.tables(&mut out);
    let v = Frame::new(video, Ts::from_millis(1000), Ts::from_millis(1000), true, Bytes::from_static(&[0, 0, 1, 0xB3]));
    let a = Frame::new(audio, Ts::from_millis(1010), Ts::from_millis(1010), true, Bytes::from_static(&[0xFF, 0xFD]));
    mux.frame(&v, &mut out);
    mux.frame(&a, &mut out);
    let ps = packets(&out);
    assert_eq!(ps.len(), 4);
    assert_eq!((pid(ps[2]), pid(ps[3])), (VIDEO_PID, AUDIO_PID));
    assert_eq!(ps[2][5] & 0x10, 0x10, "PCR on video");
    assert!(ps[3][3] & 0x20 == 0 || ps[3][5] & 0x10 == 0, "no PCR on audio");
    assert_eq!(ticks(Ts::from_millis(1000)), 90_000 + 90_000);
    assert_eq!(ticks(Ts(-2_000_000_000)), (1 << 33) - 90_000);
}
