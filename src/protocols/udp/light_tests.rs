use super::*;
use crate::media::h264::Sps;

const SPROP: &str = "Z0IAH5WoFAFuQA==,aM48gA==";

fn track(kind: TrackKind, codec: Codec, pt: u8, clock_rate: u32, params: &[(&str, &str)]) -> IngestTrack {
    IngestTrack {
        kind,
        codec,
        mline: 0,
        pt,
        encoding: codec.as_str().to_uppercase(),
        clock_rate,
        channels: (kind == TrackKind::Audio).then_some(2),
        params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        rtp_port: 5004,
        rtcp_port: Some(5005),
        ssrc: None,
    }
}

fn h264_opus() -> Vec<IngestTrack> {
    vec![
        track(
            TrackKind::Video,
            Codec::H264,
            96,
            90_000,
            &[("packetization-mode", "1"), ("sprop-parameter-sets", SPROP)],
        ),
        track(TrackKind::Audio, Codec::Opus, 111, 48_000, &[]),
    ]
}

fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn sr(ssrc: u32, ntp_secs: u32, ntp_frac: u32, rtp_ts: u32) -> Vec<u8> {
    let mut p = vec![0x80, 200, 0, 6];
    for w in [ssrc, ntp_secs, ntp_frac, rtp_ts, 0, 0] {
        p.extend_from_slice(&w.to_be_bytes());
    }
    p
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00];
const SLICE: &[u8] = &[0x41, 0x9a, 0x02];

struct Harness {
    ingest: LightIngest,
    metrics: Arc<UdpMetrics>,
    frames: Vec<Frame>,
}

impl Harness {
    fn new(tracks: &[IngestTrack]) -> Harness {
        let metrics = Arc::new(UdpMetrics::default());
        Harness { ingest: LightIngest::new(tracks, ms(200), metrics.clone()), metrics, frames: Vec::new() }
    }

    fn rtp(&mut self, track: usize, packet: &[u8], at: u64) -> bool {
        self.ingest.on_rtp(track, packet, ms(at), &mut self.frames)
    }

    fn take(&mut self) -> Vec<Frame> {
        std::mem::take(&mut self.frames)
    }
}

#[test]
fn h264_pictures_become_avcc_frames_with_the_sdp_parameter_sets() {
    let mut h = Harness::new(&h264_opus());
    let ssrc = 7;
    // Probation: the first packet waits, the second in sequence is accepted.
    assert!(!h.rtp(0, &rtp(96, 10, 0, ssrc, true, IDR), 0));
    assert!(h.rtp(0, &rtp(96, 11, 3000, ssrc, true, IDR), 10));
    assert!(h.rtp(0, &rtp(96, 12, 6000, ssrc, false, &[0x7c, 0x81, 1, 2]), 43));
    assert!(h.rtp(0, &rtp(96, 13, 6000, ssrc, true, &[0x7c, 0x41, 3]), 44));
    let frames = h.take();
    assert_eq!(frames.len(), 2);
    let sps = Sps::parse(&depay::sprop_parameter_sets(&h264_opus()[0].params)[0]).unwrap();
    let TrackInfo::Video(v) = frames[0].info.as_ref() else { panic!("video") };
    assert_eq!((v.codec, v.width, v.height), (Codec::H264, sps.width, sps.height));
    assert!(v.config.is_some() && !v.bframes);
    assert!(frames[0].keyframe && !frames[1].keyframe);
    assert_eq!(&frames[0].data[..], &[&4u32.to_be_bytes()[..], IDR].concat()[..]);
    assert_eq!(&frames[1].data[..], &[0, 0, 0, 4, 0x61, 1, 2, 3][..]);
    // 3000 ticks at 90 kHz after the first, anchored at its arrival (10 ms).
    assert_eq!((frames[0].pts, frames[1].pts), (Ts::from_millis(10), Ts(43_333_333)));
    assert_eq!(frames[1].dts, frames[1].pts);
    assert!(Arc::ptr_eq(&frames[0].info, &frames[1].info), "one info while the parameter sets stay");
}

#[test]
fn reordered_packets_come_out_in_order_and_a_gap_is_given_up_after_the_latency() {
    let mut h = Harness::new(&h264_opus());
    let s = 9;
    h.rtp(1, &rtp(111, 1, 0, s, false, &[0xfc, 1]), 0);
    h.rtp(1, &rtp(111, 2, 960, s, false, &[0xfc, 2]), 20);
    h.rtp(1, &rtp(111, 4, 2880, s, false, &[0xfc, 4]), 60);
    h.rtp(1, &rtp(111, 3, 1920, s, false, &[0xfc, 3]), 61);
    let data: Vec<u8> = h.take().iter().map(|f| f.data[1]).collect();
    assert_eq!(data, [2, 3, 4]);
    assert_eq!(h.metrics.dropped(super::super::filter::DropReason::Probation), 1);
    // 5 is lost: 6 waits for the latency, then comes out on a poll.
    h.rtp(1, &rtp(111, 6, 4800, s, false, &[0xfc, 6]), 100);
    assert!(h.take().is_empty());
    assert_eq!(h.ingest.deadline(), Some(ms(300)));
    h.ingest.poll(ms(299), &mut h.frames);
    assert!(h.frames.is_empty());
    h.ingest.poll(ms(300), &mut h.frames);
    assert_eq!(h.take().iter().map(|f| f.data[1]).collect::<Vec<_>>(), [6]);
    assert_eq!(h.ingest.deadline(), None);
    // A duplicate is not passed twice.
    h.rtp(1, &rtp(111, 6, 4800, s, false, &[0xfc, 6]), 310);
    assert!(h.take().is_empty());
}

#[test]
fn sender_reports_align_audio_with_video() {
    let mut tracks = h264_opus();
    tracks[0].ssrc = Some(1);
    tracks[1].ssrc = Some(2);
    let mut h = Harness::new(&tracks);
    // Both sender clocks say: video ts 90000 and audio ts 48000 are NTP second 5.
    h.ingest.on_rtcp(0, &sr(1, 5, 0, 90_000));
    h.ingest.on_rtcp(1, &sr(2, 5, 0, 48_000));
    h.rtp(0, &rtp(96, 1, 90_000, 1, true, IDR), 100);
    // Audio of the same instant arrives 50 ms later.
    h.rtp(1, &rtp(111, 1, 48_000, 2, false, &[0xfc]), 150);
    h.rtp(1, &rtp(111, 2, 48_960, 2, false, &[0xfc]), 170);
    let pts: Vec<(TrackKind, Ts)> = h.take().iter().map(|f| (f.kind(), f.pts)).collect();
    assert_eq!(
        pts,
        [
            (TrackKind::Video, Ts::from_millis(100)),
            (TrackKind::Audio, Ts::from_millis(100)),
            (TrackKind::Audio, Ts::from_millis(120))
        ]
    );
    // Sender reports of another source are not taken; RTCP garbage is counted.
    h.ingest.on_rtcp(1, &sr(3, 9, 0, 0));
    h.ingest.on_rtcp(1, &[1, 2, 3]);
    let mut text = String::new();
    h.metrics.render(&mut text, 0, 0);
    assert!(text.contains("interop_udp_rtcp_packets_received_total 3"), "{text}");
    assert!(text.contains("port=\"rtcp\",reason=\"malformed\"} 1"), "{text}");
}

#[test]
fn refused_payloads_are_counted_and_skipped() {
    let mut tracks = h264_opus();
    tracks[0].ssrc = Some(1);
    tracks[1].ssrc = Some(2);
    let mut h = Harness::new(&tracks);
    // STAP-B (refused), a fragment without its start (refused), then a good picture.
    h.rtp(0, &rtp(96, 1, 0, 1, true, &[0x79, 0, 2, 0x65, 0x88]), 0);
    h.rtp(0, &rtp(96, 2, 3000, 1, true, &[0x7c, 0x45, 1]), 30);
    h.rtp(0, &rtp(96, 3, 6000, 1, true, IDR), 60);
    assert_eq!(h.metrics.h264_refused(), 2);
    // An Opus code-3 packet without its frame count.
    h.rtp(1, &rtp(111, 1, 0, 2, false, &[0xff]), 0);
    h.rtp(1, &rtp(111, 2, 960, 2, false, &[0xfc, 1]), 20);
    assert_eq!(h.metrics.payload_refused(), 1);
    let kinds: Vec<TrackKind> = h.take().iter().map(|f| f.kind()).collect();
    assert_eq!(kinds, [TrackKind::Video, TrackKind::Audio]);
}

#[test]
fn bframes_give_decode_times_and_mark_the_track() {
    let mut tracks = h264_opus();
    tracks[0].ssrc = Some(1);
    let mut h = Harness::new(&tracks[..1]);
    // Decode order I0 P3 B1 B2 P6 B4 B5 (frames of 3000 ticks); the SPS (baseline) does not
    // announce B-frames, so the first ones are found out late (as in `DtsFromPts`).
    for (i, f) in [0u32, 3, 1, 2, 6, 4, 5].iter().enumerate() {
        let payload = if i == 0 { IDR } else { SLICE };
        h.rtp(0, &rtp(96, i as u16 + 1, f * 3000, 1, true, payload), i as u64 * 33);
    }
    let frames = h.take();
    let pts: Vec<i64> = frames.iter().map(|f| f.pts.0 / 1_000_000).collect();
    let dts: Vec<i64> = frames.iter().map(|f| f.dts.0 / 1_000_000).collect();
    assert_eq!(pts, [0, 100, 33, 66, 200, 133, 166]);
    assert!(dts.windows(2).all(|w| w[0] <= w[1]), "{dts:?}");
    assert!(dts.iter().zip(&pts).skip(4).all(|(d, p)| d <= p), "{dts:?}");
    assert!(matches!(frames[0].info.as_ref(), TrackInfo::Video(v) if !v.bframes));
    assert!(matches!(frames[6].info.as_ref(), TrackInfo::Video(v) if v.bframes));
}

#[test]
fn a_new_source_starts_the_track_over() {
    let mut h = Harness::new(&h264_opus()[1..]);
    for seq in 1..=3u16 {
        h.rtp(0, &rtp(111, seq, u32::from(seq) * 960, 0xaaaa, false, &[0xfc]), u64::from(seq) * 20);
    }
    assert_eq!(h.take().len(), 2);
    // Another sender with other numbers, once the first has been silent for 2 s.
    assert!(!h.rtp(0, &rtp(111, 40_000, 7, 0xbbbb, false, &[0xfc]), 1000));
    assert!(!h.rtp(0, &rtp(111, 40_000, 7, 0xbbbb, false, &[0xfc]), 2100));
    assert!(h.rtp(0, &rtp(111, 40_001, 967, 0xbbbb, false, &[0xfc]), 2120));
    let frames = h.take();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].pts, Ts::from_millis(2120), "anchored at its arrival");
}

#[test]
fn aac_and_pcm_tracks_carry_the_sdp_configuration() {
    let aac = track(
        TrackKind::Audio,
        Codec::Aac,
        97,
        44_100,
        &[
            ("mode", "AAC-hbr"),
            ("sizelength", "13"),
            ("indexlength", "3"),
            ("indexdeltalength", "3"),
            ("config", "1208"),
        ],
    );
    let mut h = Harness::new(&[aac]);
    let packet = |seq: u16, ts: u32| rtp(97, seq, ts, 5, true, &[0, 32, 0, 16, 0, 16, 0x21, 0x22, 0x23, 0x24]);
    h.rtp(0, &packet(1, 0), 0);
    h.rtp(0, &packet(2, 2048), 46);
    let frames = h.take();
    assert_eq!(frames.len(), 2);
    assert_eq!(&frames[0].data[..], &[0x21, 0x22][..]);
    assert_eq!(frames[1].pts - frames[0].pts, Ts::from_ticks(1024, 44_100));
    let TrackInfo::Audio(a) = frames[0].info.as_ref() else { panic!("audio") };
    assert_eq!((a.sample_rate, a.channels, a.config.as_deref()), (44_100, 1, Some(&[0x12u8, 0x08][..])));

    let mut pcmu = track(TrackKind::Audio, Codec::Pcmu, 0, 8000, &[]);
    pcmu.channels = None;
    let mut h = Harness::new(&[pcmu]);
    h.rtp(0, &rtp(0, 1, 0, 5, false, &[0xff; 160]), 0);
    h.rtp(0, &rtp(0, 2, 160, 5, false, &[0xff; 160]), 20);
    let frames = h.take();
    let TrackInfo::Audio(a) = frames[0].info.as_ref() else { panic!("audio") };
    assert_eq!((a.codec, a.sample_rate, a.channels, frames[0].data.len()), (Codec::Pcmu, 8000, 1, 160));
}

#[test]
fn only_the_ported_codecs_take_the_light_path() {
    assert!(handles(&h264_opus()));
    let vp8 = track(TrackKind::Video, Codec::Vp8, 96, 90_000, &[]);
    assert!(!handles(&[vp8, h264_opus()[1].clone()]));
}

#[test]
fn garbage_never_panics() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut h = Harness::new(&h264_opus());
    for i in 0..30_000u64 {
        let len = (next() % 60) as usize;
        let mut p: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if p.len() >= 12 && i % 2 == 0 {
            p[0] = 0x80;
            p[1] = if i % 4 == 0 { 96 } else { 111 };
            p[8..12].copy_from_slice(&[0, 0, 0, 1]);
            p[2] = 0;
        }
        let track = (i % 2) as usize;
        if i % 7 == 0 {
            h.ingest.on_rtcp(track, &p);
        } else {
            h.rtp(track, &p, i);
        }
        h.ingest.poll(ms(i), &mut h.frames);
        h.frames.clear();
    }
}
