use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::media::aac::AdtsHeader;
use crate::media::{AudioInfo, Ts, VideoInfo};
use crate::protocols::h5::ts::demux::{DemuxEvent, Pes, TsDemuxer};
use crate::protocols::h5::ts::mux::TIMESTAMP_OFFSET;
use crate::protocols::h5::ts::psi::{parse_pat, parse_pmt, EsEntry};
use crate::protocols::h5::ts::{AUDIO_PID, PAT_PID, PMT_PID, SYNC_BYTE, VIDEO_PID};

/// Baseline 176x144: SPS (22 bytes) and PPS (5 bytes), 4-byte NAL lengths.
const AVCC: &str = "0142c00affe100166742c00ad902c4ec0440000003004000000783c4899201000568cb83cb20";
const SPS: &str = "6742c00ad902c4ec0440000003004000000783c48992";
const PPS: &str = "68cb83cb20";

fn unhex(hex: &str) -> Vec<u8> {
    crate::auth::secret::unhex(hex).expect("hex")
}

fn video_with(config: Vec<u8>) -> Arc<TrackInfo> {
    Arc::new(TrackInfo::Video(VideoInfo {
        codec: Codec::H264,
        width: 176,
        height: 144,
        fps: Some(25.0),
        config: Some(config.into()),
        bframes: false,
    }))
}

fn video_info() -> Arc<TrackInfo> {
    video_with(unhex(AVCC))
}

fn audio_with(codec: Codec, sample_rate: u32, channels: u8, config: impl Into<Bytes>) -> Arc<TrackInfo> {
    Arc::new(TrackInfo::Audio(AudioInfo { codec, sample_rate, channels, config: Some(config.into()) }))
}

fn audio_info() -> Arc<TrackInfo> {
    audio_with(Codec::Aac, 48000, 2, &[0x11, 0x90][..])
}

/// An AVCC payload (4-byte lengths) of these NAL units.
fn avcc(nals: &[&[u8]]) -> Bytes {
    let mut out = Vec::new();
    for nal in nals {
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out.into()
}

fn picture(n: u64, keyframe: bool) -> Bytes {
    if keyframe {
        avcc(&[&[0x65, 0x88, 0x84, n as u8]])
    } else {
        avcc(&[&[0x41, 0x9a, 0x02, n as u8]])
    }
}

/// `seconds` of 25 fps video (a keyframe every `gop` frames) and 48 kHz AAC (1024 samples a
/// frame), interleaved by time.
fn stream(seconds: f64, gop: u64) -> Vec<Frame> {
    let (video, audio) = (video_info(), audio_info());
    let mut frames = Vec::new();
    let video_ns = 40_000_000i64;
    let audio_ns = 1024 * 1_000_000_000 / 48_000;
    let end = (seconds * 1e9) as i64;
    let (mut v, mut a) = (0i64, 0i64);
    while v < end || a < end {
        if v <= a && v < end {
            let n = (v / video_ns) as u64;
            frames.push(Frame::new(video.clone(), Ts(v), Ts(v), n % gop == 0, picture(n, n % gop == 0)));
            v += video_ns;
        } else {
            frames.push(Frame::new(audio.clone(), Ts(a), Ts(a), true, Bytes::from(vec![0x21; 8])));
            a += audio_ns;
        }
    }
    frames
}

fn run(frames: &[Frame], config: SegmenterConfig) -> TsSegmenter {
    let mut s = TsSegmenter::new(config);
    for f in frames {
        s.push(f, SystemTime::now()).expect("push");
    }
    s
}

fn complete(s: &TsSegmenter) -> Vec<&Segment> {
    s.segments().iter().filter(|x| x.complete).collect()
}

fn packets(data: &[u8]) -> Vec<&[u8]> {
    assert_eq!(data.len() % 188, 0, "whole packets");
    let ps: Vec<&[u8]> = data.chunks(188).collect();
    assert!(ps.iter().all(|p| p[0] == SYNC_BYTE), "a sync byte every 188 bytes");
    ps
}

fn pid(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[1] & 0x1F, p[2]])
}

/// The PSI section in a packet without adaptation field (after its pointer field).
fn section(p: &[u8]) -> &[u8] {
    assert_eq!(p[3] & 0x30, 0x10, "payload only");
    &p[5..]
}

fn demux(data: &[u8]) -> (Vec<EsEntry>, Vec<Pes>) {
    let mut demuxer = TsDemuxer::new();
    let mut events = Vec::new();
    demuxer.push(data, &mut events).expect("demux");
    demuxer.finish(&mut events);
    let pes = events.into_iter().filter_map(|e| if let DemuxEvent::Pes(p) = e { Some(p) } else { None }).collect();
    (demuxer.program().to_vec(), pes)
}

/// Checks the segment opens with a PAT and a PMT of these streams and this PCR PID.
fn assert_tables(data: &[u8], streams: &[EsEntry], pcr_pid: u16) {
    let ps = packets(data);
    assert_eq!((pid(ps[0]), pid(ps[1])), (PAT_PID, PMT_PID), "PAT, then PMT");
    assert_eq!(parse_pat(section(ps[0])), Ok(Some(PMT_PID)));
    let pmt = section(ps[1]);
    assert_eq!(parse_pmt(pmt).as_deref(), Ok(streams));
    assert_eq!(u16::from_be_bytes([pmt[8], pmt[9]]) & 0x1FFF, pcr_pid, "PCR PID");
}

const AV: [EsEntry; 2] = [EsEntry { stream_type: 0x1B, pid: VIDEO_PID }, EsEntry { stream_type: 0x0F, pid: AUDIO_PID }];

#[test]
fn segments_cut_on_keyframes_after_the_target_each_starting_with_pat_and_pmt() {
    // Keyframes every second, target 2 s: segments of 2 s, parts of 200 ms.
    let s = run(&stream(9.0, 25), SegmenterConfig::default());
    let segments = complete(&s);
    assert_eq!(segments.len(), 4, "{:?}", s.segments().iter().map(|x| x.duration()).collect::<Vec<_>>());
    for (i, seg) in segments.iter().enumerate() {
        assert_eq!(seg.msn, i as u64);
        assert!((seg.duration() - 2.0).abs() < 0.01, "segment {i}: {}", seg.duration());
        assert_eq!(seg.parts.len(), 10);
        let independent: Vec<usize> = (0..seg.parts.len()).filter(|&k| seg.parts[k].independent).collect();
        assert_eq!(independent, [0, 5], "parts starting on a keyframe");
        let data = seg.bytes();
        assert_tables(&data, &AV, VIDEO_PID);
        // Then the keyframe: random access and a PCR in its first packet's adaptation field.
        let first = packets(&data)[2];
        assert_eq!(pid(first), VIDEO_PID);
        assert_eq!((first[1] & 0x40, first[3] & 0x20, first[5] & 0x50), (0x40, 0x20, 0x50));
        let (_, pes) = demux(&data);
        assert_eq!(pes[0].pts, Some((2 * i as u64) * 90_000 + TIMESTAMP_OFFSET), "starts at its keyframe");
        // Two seconds of frames, and nothing else.
        let count = |pid| pes.iter().filter(|p| p.pid == pid).count();
        assert_eq!(count(VIDEO_PID), 50);
        assert!((93..=95).contains(&count(AUDIO_PID)), "{}", count(AUDIO_PID));
    }
    let open = s.segments().back().unwrap();
    assert!(!open.complete && !open.parts.is_empty());
}

#[test]
fn continuity_counters_run_on_across_segments() {
    let s = run(&stream(7.0, 25), SegmenterConfig::default());
    let mut all = Vec::new();
    for seg in s.segments() {
        all.extend_from_slice(&seg.bytes());
    }
    let mut last: std::collections::HashMap<u16, u8> = Default::default();
    for (i, p) in packets(&all).into_iter().enumerate() {
        let cc = p[3] & 0x0F;
        if let Some(prev) = last.insert(pid(p), cc) {
            assert_eq!(cc, (prev + 1) & 0x0F, "packet {i} on PID {:#x}", pid(p));
        }
    }
    assert_eq!(last.len(), 4, "PAT, PMT, video, audio");
}

#[test]
fn frames_become_annex_b_access_units_and_adts_frames_with_their_timestamps() {
    let (video, audio) = (video_info(), audio_info());
    let mut s = TsSegmenter::new(SegmenterConfig::default());
    let now = SystemTime::now();
    let ms = |v: i64| Ts(v * 1_000_000);
    // A keyframe shown 80 ms after it is decoded, then a P-frame, audio, and a frame to cut.
    s.push(&Frame::new(video.clone(), ms(0), ms(80), true, picture(0, true)), now).unwrap();
    s.push(&Frame::new(audio.clone(), ms(0), ms(0), true, Bytes::from_static(&[1, 2, 3])), now).unwrap();
    s.push(&Frame::new(video.clone(), ms(40), ms(40), false, picture(1, false)), now).unwrap();
    s.push(&Frame::new(video, ms(400), ms(400), false, picture(2, false)), now).unwrap();
    let (_, pes) = demux(&s.segments()[0].bytes());
    assert_eq!(pes.len(), 3);
    let (key, aac, p) = (&pes[0], &pes[1], &pes[2]);
    let mut expected = vec![0, 0, 0, 1, 9, 0xF0, 0, 0, 0, 1];
    expected.extend(unhex(SPS));
    expected.extend([0, 0, 0, 1]);
    expected.extend(unhex(PPS));
    expected.extend([0, 0, 0, 1, 0x65, 0x88, 0x84, 0]);
    assert_eq!((key.pid, key.stream_id), (VIDEO_PID, 0xE0));
    assert_eq!(key.data, expected, "AUD, SPS, PPS, IDR slice");
    assert_eq!((key.pts, key.dts), (Some(TIMESTAMP_OFFSET + 7200), Some(TIMESTAMP_OFFSET)));
    assert_eq!((aac.pid, aac.stream_id), (AUDIO_PID, 0xC0));
    assert_eq!(aac.data, [0xFF, 0xF1, 0x4C, 0x80, 0x01, 0x5F, 0xFC, 1, 2, 3]);
    assert_eq!((aac.pts, aac.dts), (Some(TIMESTAMP_OFFSET), None));
    assert_eq!(p.data, [0, 0, 0, 1, 9, 0xF0, 0, 0, 0, 1, 0x41, 0x9a, 0x02, 1], "no parameter sets");
    assert_eq!((p.pts, p.dts), (Some(TIMESTAMP_OFFSET + 3600), None), "dts only when it differs");
}

#[test]
fn adts_headers_come_from_the_audio_specific_config() {
    let cases: [(Arc<TrackInfo>, usize, [u8; 7]); 4] = [
        // AAC-LC 48 kHz stereo, 8 bytes: frame length 15.
        (audio_info(), 8, [0xFF, 0xF1, 0x4C, 0x80, 0x01, 0xFF, 0xFC]),
        // AAC-LC 44.1 kHz stereo (ASC 12 10).
        (audio_with(Codec::Aac, 44100, 2, &[0x12, 0x10][..]), 8, [0xFF, 0xF1, 0x50, 0x80, 0x01, 0xFF, 0xFC]),
        // AAC-LC 44.1 kHz mono, 300 bytes: frame length 307.
        (audio_with(Codec::Aac, 44100, 1, &[0x12, 0x08][..]), 300, [0xFF, 0xF1, 0x50, 0x40, 0x26, 0x7F, 0xFC]),
        // HE-AAC (explicit SBR, core 24 kHz LC): ADTS says the core.
        (
            audio_with(Codec::Aac, 48000, 2, &[0x2B, 0x11, 0x88, 0x00][..]),
            8,
            [0xFF, 0xF1, 0x58, 0x80, 0x01, 0xFF, 0xFC],
        ),
    ];
    for (info, len, header) in cases {
        let frame = Frame::new(info.clone(), Ts(0), Ts(0), true, Bytes::from(vec![0xAB; len]));
        let payload = Conversion::new(&info).unwrap().payload(&frame).unwrap();
        assert_eq!(payload[..7], header, "{info:?}");
        assert_eq!(payload.len(), 7 + len);
        let parsed = AdtsHeader::parse(&payload).unwrap();
        assert_eq!(parsed.frame_length, payload.len());
    }
    // Without an AudioSpecificConfig, one is made from the rate and channels.
    let bare =
        Arc::new(TrackInfo::Audio(AudioInfo { codec: Codec::Aac, sample_rate: 44100, channels: 2, config: None }));
    let frame = Frame::new(bare.clone(), Ts(0), Ts(0), true, Bytes::from(vec![0xAB; 8]));
    assert_eq!(
        Conversion::new(&bare).unwrap().payload(&frame).unwrap()[..7],
        [0xFF, 0xF1, 0x50, 0x80, 0x01, 0xFF, 0xFC]
    );
}

#[test]
fn annex_b_access_units_get_one_delimiter_and_parameter_sets_before_keyframes_that_lack_them() {
    let params = [0, 0, 0, 1, 0x67, 0xAA, 0, 0, 0, 1, 0x68, 0xBB];
    let idr: &[u8] = &[0x65, 1, 2];
    let sei: &[u8] = &[0x06, 5, 0x80];
    let au = annexb_access_unit(&avcc(&[sei, idr]), 4, true, &params).unwrap();
    assert_eq!(au, [&[0, 0, 0, 1, 9, 0xF0][..], &params, &[0, 0, 0, 1, 6, 5, 0x80, 0, 0, 0, 1, 0x65, 1, 2]].concat());
    // Its own SPS and PPS (and AUD): kept in place, nothing inserted, one delimiter.
    let own = avcc(&[&[0x09, 0x10], &[0x67, 1], &[0x68, 2], idr]);
    let au = annexb_access_unit(&own, 4, true, &params).unwrap();
    assert_eq!(au, [0, 0, 0, 1, 9, 0xF0, 0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2, 0, 0, 0, 1, 0x65, 1, 2]);
    // An IDR slice in a frame not flagged as a keyframe still gets them; 2-byte lengths.
    let au = annexb_access_unit(&[0, 3, 0x65, 1, 2], 2, false, &params).unwrap();
    assert_eq!(au, [&[0, 0, 0, 1, 9, 0xF0][..], &params, &[0, 0, 0, 1, 0x65, 1, 2]].concat());
    // A non-IDR picture: delimiter and slice.
    assert_eq!(
        annexb_access_unit(&avcc(&[&[0x41, 7]]), 4, false, &params).unwrap(),
        [0, 0, 0, 1, 9, 0xF0, 0, 0, 0, 1, 0x41, 7]
    );
    // The segmenter takes the length size from the avcC (lengthSizeMinusOne 1: 2 bytes).
    let mut two = unhex(AVCC);
    two[4] = 0xFD;
    let conversion = Conversion::new(&video_with(two)).unwrap();
    let frame = Frame::new(video_info(), Ts(0), Ts(0), true, Bytes::from_static(&[0, 2, 0x65, 9]));
    let au = conversion.payload(&frame).unwrap();
    assert!(au.ends_with(&[0, 0, 0, 1, 0x68, 0xcb, 0x83, 0xcb, 0x20, 0, 0, 0, 1, 0x65, 9]), "{au:02x?}");
}

#[test]
fn other_codecs_are_refused_without_disturbing_the_stream() {
    let mut s = TsSegmenter::new(SegmenterConfig::default());
    let now = SystemTime::now();
    let opus = audio_with(Codec::Opus, 48000, 2, Bytes::new());
    let vp8 = Arc::new(TrackInfo::Video(VideoInfo {
        codec: Codec::Vp8,
        width: 64,
        height: 64,
        fps: None,
        config: None,
        bframes: false,
    }));
    let frame = |info: &Arc<TrackInfo>, ms: i64| {
        Frame::new(info.clone(), Ts(ms * 1_000_000), Ts(ms * 1_000_000), true, picture(0, true))
    };
    assert_eq!(s.push(&frame(&opus, 0), now), Err(TsError::Unsupported(Codec::Opus)));
    assert_eq!(s.push(&frame(&vp8, 0), now), Err(TsError::Unsupported(Codec::Vp8)));
    assert!(s.segments().is_empty());
    // H.264 after them goes out as if they had never come, and so does VP8 between frames.
    s.push(&frame(&video_info(), 0), now).unwrap();
    assert_eq!(s.push(&frame(&vp8, 100), now), Err(TsError::Unsupported(Codec::Vp8)));
    s.push(&frame(&video_info(), 300), now).unwrap();
    let seg = &s.segments()[0];
    assert_eq!(seg.init, 1, "one track, one version");
    assert_tables(&seg.bytes(), &AV[..1], VIDEO_PID);
}

#[test]
fn malformed_avcc_and_configurations_are_errors_not_panics() {
    let mut s = TsSegmenter::new(SegmenterConfig::default());
    let now = SystemTime::now();
    let video = video_info();
    let bad = |data: &'static [u8]| Frame::new(video.clone(), Ts(0), Ts(0), true, Bytes::from_static(data));
    for data in [&[0, 0, 0, 9, 0x65, 1][..], &[0, 0], &[], &[0, 0, 0, 0]] {
        assert!(matches!(s.push(&bad(data), now), Err(TsError::H264(_))), "{data:?}");
    }
    assert!(s.segments().is_empty(), "nothing taken");
    let broken = video_with(vec![1, 0x42, 0xC0, 0x0A, 0xFF, 0xE1, 0x00, 0x40, 0x67]);
    let frame = Frame::new(broken, Ts(0), Ts(0), true, picture(0, true));
    assert!(matches!(s.push(&frame, now), Err(TsError::H264(_))));
    let frame = Frame::new(audio_with(Codec::Aac, 48000, 2, &[0xF8][..]), Ts(0), Ts(0), true, Bytes::new());
    assert!(matches!(s.push(&frame, now), Err(TsError::Aac(_))));
    // A good frame after all that starts the stream.
    s.push(&Frame::new(video, Ts(0), Ts(0), true, picture(0, true)), now).unwrap();
    assert_eq!(s.segments().len(), 1);
}

#[test]
fn audio_only_streams_are_cut_by_time_with_the_pcr_on_the_audio_pid() {
    let frames: Vec<Frame> = stream(7.0, 25).into_iter().filter(|f| f.kind() == TrackKind::Audio).collect();
    let s = run(&frames, SegmenterConfig::default());
    let segments = complete(&s);
    assert_eq!(segments.len(), 3);
    for seg in segments {
        assert!((seg.duration() - 2.0).abs() < 0.03, "{}", seg.duration());
        assert!(seg.parts.iter().all(|p| p.independent));
        let data = seg.bytes();
        assert_tables(&data, &AV[1..], AUDIO_PID);
        let first = packets(&data)[2];
        assert_eq!((pid(first), first[3] & 0x20, first[5] & 0x10), (AUDIO_PID, 0x20, 0x10), "a PCR");
    }
}

#[test]
fn audio_before_the_first_picture_is_dropped_and_old_segments_go() {
    // The viewer joins 1 s in, mid-GOP; keyframes every 3 s.
    let frames: Vec<Frame> = stream(10.0, 75).into_iter().filter(|f| f.dts.as_nanos() >= 1_000_000_000).collect();
    let s = run(&frames, SegmenterConfig::default());
    let (_, pes) = demux(&s.segments()[0].bytes());
    assert_eq!(pes[0].pid, VIDEO_PID);
    let start = 3 * 90_000 + TIMESTAMP_OFFSET;
    assert!(pes.iter().all(|p| p.pts >= Some(start)), "nothing before the keyframe at 3 s");
    assert!(complete(&s).iter().all(|x| (x.duration() - 3.0).abs() < 0.01));

    let s = run(&stream(20.0, 25), SegmenterConfig { keep: 3, ..SegmenterConfig::default() });
    let msns: Vec<u64> = s.segments().iter().map(|x| x.msn).collect();
    assert_eq!(msns, [6, 7, 8, 9]);
    assert!(s.segment(5).is_none() && s.segment(9).is_some());
}

#[test]
fn a_new_configuration_is_a_new_version_and_the_same_one_is_not() {
    let mut frames = stream(3.0, 25);
    // Same avcC in a new info (another fps): no change. Then a new SPS: a new version.
    let same = Arc::new(TrackInfo::Video(VideoInfo {
        fps: Some(30.0),
        ..match video_info().as_ref() {
            TrackInfo::Video(v) => v.clone(),
            _ => unreachable!(),
        }
    }));
    let mut other = unhex(AVCC);
    other[28] = 0x88; // in the SPS: 83 c4 89 92 becomes 83 c4 88 92
    for (offset, info) in [(3, same), (6, video_with(other))] {
        for f in stream(3.0, 25).into_iter().skip(1) {
            let dts = Ts(f.dts.as_nanos() + offset * 1_000_000_000);
            let info = if f.kind() == TrackKind::Video { info.clone() } else { f.info.clone() };
            frames.push(Frame::new(info, dts, dts, f.keyframe, f.data.clone()));
        }
    }
    let s = run(&frames, SegmenterConfig::default());
    let inits: Vec<(u64, u32)> = s.segments().iter().map(|x| (x.msn, x.init)).collect();
    // Video and audio make version 2 (the first segment takes it); the new SPS at 6.04 s ends
    // segment 2 and makes version 3 from the keyframe at 7 s.
    assert_eq!(inits, [(0, 2), (1, 2), (2, 2), (3, 3)], "{inits:?}");
    assert!((s.segment(2).unwrap().duration() - 2.04).abs() < 0.001);
    // The segment after the change starts with its tables and the new SPS.
    let data = s.segment(3).unwrap().bytes();
    assert_tables(&data, &AV, VIDEO_PID);
    let (_, pes) = demux(&data);
    assert_eq!(pes[0].pts, Some(7 * 90_000 + TIMESTAMP_OFFSET));
    assert!(pes[0].data.windows(4).any(|w| w == [0x83, 0xc4, 0x88, 0x92]), "the new SPS");
}

/// Random frame sizes, garbage AVCC and configurations, jumping timestamps: never a panic,
/// always whole packets.
#[test]
fn garbage_never_panics() {
    let mut rng = StdRng::seed_from_u64(13);
    let mut s = TsSegmenter::new(SegmenterConfig { keep: 4, ..SegmenterConfig::default() });
    let now = SystemTime::now();
    let mut infos = vec![video_info(), audio_info()];
    let mut dts = 0i64;
    let (mut taken, mut refused) = (0, 0);
    for i in 0..20_000 {
        if i % 500 == 0 {
            // A garbage avcC or AudioSpecificConfig now and then.
            let config: Vec<u8> = (0..rng.gen_range(0..40)).map(|_| rng.gen()).collect();
            infos.push(if rng.gen() { video_with(config) } else { audio_with(Codec::Aac, 48000, 2, config) });
        }
        let info = infos[rng.gen_range(0..infos.len())].clone();
        let len = rng.gen_range(0..3000);
        let mut data: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if rng.gen_bool(0.5) && len >= 4 {
            // A plausible first NAL length.
            let n = rng.gen_range(0..len as u32);
            data[..4].copy_from_slice(&n.to_be_bytes());
        }
        dts += rng.gen_range(-50_000_000..100_000_000);
        let pts = dts + rng.gen_range(0..200_000_000);
        match s.push(&Frame::new(info, Ts(dts), Ts(pts), rng.gen_bool(0.1), data.into()), now) {
            Ok(()) => taken += 1,
            Err(_) => refused += 1,
        }
    }
    assert!(taken > 1000 && refused > 1000, "{taken} taken, {refused} refused");
    assert!(!s.segments().is_empty());
    for seg in s.segments() {
        packets(&seg.bytes());
    }
}

/// A real FLV (libx264 High with B-frames, keyframes every second, AAC-LC 48 kHz stereo)
/// through FlvIngest and the TS segmenter: ffprobe finds and decodes both streams in one
/// segment and in all of them concatenated, and ffmpeg decodes them without an error
/// (skipped without ffprobe). The file (4.2 s, 64x64) was made with ffmpeg 5.1:
/// `ffmpeg -f lavfi -i testsrc2=size=64x64:rate=25 -f lavfi -i sine=frequency=440:sample_rate=48000
/// -t 4.2 -c:v libx264 -preset veryfast -bf 2 -g 25 -x264-params scenecut=0:min-keyint=25
/// -b:v 20k -c:a aac -ar 48000 -ac 2 -b:a 24k -f flv`.
#[test]
fn a_real_stream_segments_into_ts_that_ffmpeg_decodes() {
    use crate::protocols::flv::{FlvIngest, FlvReader};
    let mut reader = FlvReader::new();
    reader.push(include_bytes!("testdata/testsrc64_bf2_aac48k_4s.flv"));
    let mut ingest = FlvIngest::new();
    let config = SegmenterConfig { target: Duration::from_secs(1), ..SegmenterConfig::default() };
    let mut segmenter = TsSegmenter::new(config);
    while let Ok(Some(tag)) = reader.next_tag() {
        for frame in ingest.push(tag.kind, tag.timestamp, tag.body.clone()).unwrap_or_default() {
            segmenter.push(&frame, SystemTime::now()).expect("push");
        }
    }
    let segments = complete(&segmenter);
    let durations: Vec<f64> = segments.iter().map(|s| s.duration()).collect();
    assert_eq!(segments.len(), 4, "{durations:?}");
    assert!(durations.iter().all(|d| (d - 1.0).abs() < 0.01), "cut on the keyframes each second: {durations:?}");
    let mut all = Vec::new();
    // The open segment too, as far as its parts go.
    for seg in segmenter.segments().iter().filter(|s| !s.parts.is_empty()) {
        let data = seg.bytes();
        assert_tables(&data, &AV, VIDEO_PID);
        all.extend_from_slice(&data);
    }
    let (_, pes) = demux(&all);
    let written = |pid| pes.iter().filter(|p| p.pid == pid).count() as u32;

    let Ok(probe) = std::process::Command::new("ffprobe").arg("-version").output() else { return };
    if !probe.status.success() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("hls-ts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let one = dir.join("seg-1.ts");
    let cat = dir.join("cat.ts");
    std::fs::write(&one, segments[1].bytes()).expect("write");
    std::fs::write(&cat, &all).expect("write");
    let probe = |path: &std::path::Path| -> String {
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-count_frames"])
            .args(["-show_entries", "stream=codec_name,width,height,sample_rate,channels,nb_read_frames"])
            .args(["-of", "csv=p=0"])
            .arg(path)
            .output()
            .expect("ffprobe");
        assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let frames = |text: &str, codec: &str| -> u32 {
        let line = text.lines().find(|l| l.starts_with(codec)).unwrap_or("");
        line.rsplit(',').next().and_then(|n| n.trim().parse().ok()).unwrap_or(0)
    };
    let (one_text, cat_text) = (probe(&one), probe(&cat));
    for text in [&one_text, &cat_text] {
        assert!(text.contains("h264,64,64") && text.contains("aac,48000,2"), "{text}");
    }
    // One second alone: 25 pictures (the segment starts on a keyframe with SPS and PPS).
    assert_eq!(frames(&one_text, "h264"), 25, "{one_text}");
    assert!(frames(&one_text, "aac") >= 45, "{one_text}");
    // All of them: every picture and audio frame written is decoded.
    assert_eq!(frames(&cat_text, "h264"), written(VIDEO_PID), "{cat_text}");
    assert_eq!(frames(&cat_text, "aac"), written(AUDIO_PID), "{cat_text}");
    let decode = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&cat)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    let _ = std::fs::remove_dir_all(&dir);
    let errors = String::from_utf8_lossy(&decode.stderr);
    assert!(decode.status.success() && errors.trim().is_empty(), "{errors}");
}
