use super::*;
use crate::protocols::h5::ts::mux::{write_pes, PesOptions, ProgramTables};
use crate::protocols::h5::ts::{AUDIO_PID, STREAM_ID_AUDIO, STREAM_ID_VIDEO, VIDEO_PID};

/// Tables, then a video PES without length (> 64 KiB) and two audio PES.
fn sample() -> Vec<u8> {
    let mut out = Vec::new();
    ProgramTables::new(true, true).write(&mut out);
    let (mut vcc, mut acc) = (0, 0);
    let video = PesOptions {
        pid: VIDEO_PID,
        stream_id: STREAM_ID_VIDEO,
        pts: 3000,
        dts: Some(0),
        pcr: Some(0),
        random_access: true,
    };
    write_pes(&video, &vec![9u8; 70_000], &mut vcc, &mut out);
    let audio =
        PesOptions { pid: AUDIO_PID, stream_id: STREAM_ID_AUDIO, pts: 100, dts: None, pcr: None, random_access: false };
    write_pes(&audio, &[1u8; 300], &mut acc, &mut out);
    write_pes(&PesOptions { pts: 2500, ..audio }, &[2u8; 300], &mut acc, &mut out);
    out
}

fn run(chunks: &[&[u8]], finish: bool) -> Vec<DemuxEvent> {
    let mut d = TsDemuxer::new();
    let mut out = Vec::new();
    for c in chunks {
        d.push(c, &mut out).expect("valid TS");
    }
    if finish {
        d.finish(&mut out);
    }
    out
}

fn summary(events: &[DemuxEvent]) -> Vec<(u16, Option<u64>, usize)> {
    events
        .iter()
        .filter_map(|e| match e {
            DemuxEvent::Pes(p) => Some((p.pid, p.pts, p.data.len())),
            _ => None,
        })
        .collect()
}

#[test]
fn length_zero_pes_ends_at_finish_and_any_chunking_gives_the_same() {
    let ts = sample();
    let whole = run(&[&ts], false);
    assert!(matches!(whole[0], DemuxEvent::Program(ref s) if s.len() == 2));
    // Audio PES complete by their length; the unbounded video PES only at the end.
    assert_eq!(summary(&whole), [(AUDIO_PID, Some(100), 300), (AUDIO_PID, Some(2500), 300)]);
    let finished = run(&[&ts], true);
    assert_eq!(summary(&finished)[2], (VIDEO_PID, Some(3000), 70_000));
    let bytes: Vec<&[u8]> = ts.chunks(1).collect();
    assert_eq!(run(&bytes, true), finished);
    let odd: Vec<&[u8]> = ts.chunks(1000).collect();
    assert_eq!(run(&odd, true), finished);
}

#[test]
fn the_next_unit_start_completes_an_unbounded_pes() {
    let mut ts = sample();
    let mut vcc = 0;
    let video = PesOptions {
        pid: VIDEO_PID,
        stream_id: STREAM_ID_VIDEO,
        pts: 6000,
        dts: None,
        pcr: None,
        random_access: false,
    };
    write_pes(&video, &vec![5u8; 70_000], &mut vcc, &mut ts);
    let events = run(&[&ts], false);
    let video_pes: Vec<_> = summary(&events).into_iter().filter(|p| p.0 == VIDEO_PID).collect();
    assert_eq!(video_pes, [(VIDEO_PID, Some(3000), 70_000)]);
    match events.iter().find(|e| matches!(e, DemuxEvent::Pes(p) if p.pid == VIDEO_PID)) {
        Some(DemuxEvent::Pes(p)) => assert_eq!(p.dts, Some(0)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn not_ts_is_refused_at_once() {
    let mut d = TsDemuxer::new();
    let mut out = Vec::new();
    let err = d.push(b"FLV\x01\x05", &mut out).expect_err("FLV is not TS");
    assert!(err.to_string().contains("0x46"), "{err}");
    let mut d = TsDemuxer::new();
    let mut fake = vec![0x47u8];
    fake.extend_from_slice(&[0u8; 200]);
    assert!(matches!(d.push(&fake, &mut out), Err(DemuxError::NotTs(_))));
}

#[test]
fn garbage_between_packets_is_skipped_and_too_much_is_an_error() {
    let ts = sample();
    let mut damaged = ts[..188 * 3].to_vec();
    damaged.extend_from_slice(&[0u8; 100]);
    damaged.extend_from_slice(&ts[188 * 3..]);
    let events = run(&[&damaged], true);
    // The video PES lost nothing (the garbage sat between packets).
    assert_eq!(summary(&events).len(), 3);

    let mut d = TsDemuxer::new();
    let mut out = Vec::new();
    d.push(&ts[..188 * 2], &mut out).expect("valid start");
    let err = d.push(&vec![0u8; 188 * 80], &mut out).expect_err("garbage");
    assert!(matches!(err, DemuxError::LostSync(_)), "{err}");
}

#[test]
fn packets_with_transport_errors_and_unknown_pids_are_ignored() {
    let mut ts = sample();
    // Mark the first video packet (after PAT and PMT) as damaged: its PES is never started.
    ts[2 * 188 + 1] |= 0x80;
    let events = run(&[&ts], true);
    assert!(summary(&events).iter().all(|p| p.0 == AUDIO_PID));
}

/// The start of a video PES without a length (PES_packet_length 0), then `packets` more
/// packets of it.
fn endless_pes(pid: u16, packets: usize, out: &mut Vec<u8>) {
    let packet = |start: bool, cc: usize| {
        let mut p = [0xAAu8; PACKET_SIZE];
        p[..4].copy_from_slice(&[
            SYNC_BYTE,
            u8::from(start) << 6 | (pid >> 8) as u8 & 0x1F,
            pid as u8,
            0x10 | (cc as u8 & 0x0F),
        ]);
        if start {
            p[4..18].copy_from_slice(&[0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1]);
        }
        p
    };
    out.extend_from_slice(&packet(true, 0));
    for cc in 1..=packets {
        out.extend_from_slice(&packet(false, cc));
    }
}

#[test]
fn an_unbounded_pes_past_the_limit_is_refused() {
    let limits = TsLimits { max_pes: 64 << 10, max_buffer: 1 << 20 };
    let mut ts = Vec::new();
    ProgramTables::new(true, true).write(&mut ts);
    endless_pes(VIDEO_PID, 400, &mut ts); // 400 * 184 bytes > 64 KiB
    let mut d = TsDemuxer::with_limits(limits);
    let mut out = Vec::new();
    let mut result = Ok(());
    for c in ts.chunks(1000) {
        result = d.push(c, &mut out);
        assert!(d.held() <= limits.max_pes, "{} bytes held", d.held());
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(DemuxError::PesTooLarge { pid: VIDEO_PID, max: 64 << 10 }));
}

#[test]
fn pes_held_over_all_pids_are_bounded() {
    // Each PID's PES stays under the per-PES limit; together they pass the buffer limit.
    let limits = TsLimits { max_pes: 64 << 10, max_buffer: 100 << 10 };
    let mut ts = Vec::new();
    ProgramTables::new(true, true).write(&mut ts);
    endless_pes(VIDEO_PID, 300, &mut ts); // 55 KiB each, allocated as 64 KiB
    endless_pes(AUDIO_PID, 300, &mut ts);
    let mut d = TsDemuxer::with_limits(limits);
    let result = d.push(&ts, &mut Vec::new());
    assert!(matches!(result, Err(DemuxError::TooMuchBuffered { max, .. }) if max == 100 << 10), "{result:?}");
    assert_eq!(d.held(), 0);
}
