use bytes::Bytes;

use super::boxes::children;
use super::*;
use crate::media::{AudioInfo, TrackInfo, VideoInfo};

#[path = "progressive_tests.rs"]
mod progressive;
#[path = "read_tests.rs"]
mod read;

pub(super) fn tracks() -> Vec<Track> {
    // avcC of a 176x144 baseline stream ffmpeg/libx264 wrote (see media/h264/tests.rs).
    let avcc =
        crate::auth::secret::unhex("0142c00affe100166742c00ad902c4ec0440000003004000000783c4899201000568cb83cb20")
            .expect("hex");
    let video = TrackInfo::Video(VideoInfo {
        codec: Codec::H264,
        width: 176,
        height: 144,
        fps: Some(15.0),
        config: Some(avcc.into()),
        bframes: false,
    });
    let audio = TrackInfo::Audio(AudioInfo {
        codec: Codec::Aac,
        sample_rate: 44100,
        channels: 1,
        config: Some(Bytes::from_static(&[0x12, 0x08])),
    });
    vec![Track::from_info(1, &video).expect("video"), Track::from_info(2, &audio).expect("audio")]
}

/// The body of the first box along `path` (each step the first box of that type).
pub(super) fn find<'a>(data: &'a [u8], path: &[&[u8; 4]]) -> Option<&'a [u8]> {
    let (first, rest) = path.split_first()?;
    let body = children(data).into_iter().find(|(f, _)| f == *first)?.1;
    if rest.is_empty() {
        Some(body)
    } else {
        find(body, rest)
    }
}

#[test]
fn the_init_segment_describes_both_tracks() {
    let init = init_segment(&tracks());
    let top: Vec<[u8; 4]> = children(&init).into_iter().map(|(f, _)| f).collect();
    assert_eq!(top, [*b"ftyp", *b"moov"]);
    let moov = find(&init, &[b"moov"]).unwrap();
    let kinds: Vec<[u8; 4]> = children(moov).into_iter().map(|(f, _)| f).collect();
    assert_eq!(kinds, [*b"mvhd", *b"trak", *b"trak", *b"mvex"]);
    let stsd = find(moov, &[b"trak", b"mdia", b"minf", b"stbl", b"stsd"]).unwrap();
    let avc1 = children(&stsd[8..]);
    assert_eq!(&avc1[0].0, b"avc1");
    let avcc = children(&avc1[0].1[78..]);
    assert_eq!(&avcc[0].0, b"avcC");
    // The video's timescale is 90 kHz, the audio's its sample rate.
    let mdhd = find(moov, &[b"trak", b"mdia", b"mdhd"]).unwrap();
    assert_eq!(u32::from_be_bytes(mdhd[12..16].try_into().unwrap()), VIDEO_TIMESCALE);
    let esds_ok = init.windows(4).any(|w| w == b"esds");
    assert!(esds_ok);
}

#[test]
fn a_fragment_points_each_track_at_its_bytes() {
    let v = |n: u8, sync| Sample { duration: 6000, composition_offset: 0, sync, data: Bytes::from(vec![n; 10]) };
    let a = |n: u8| Sample { duration: 1024, composition_offset: 0, sync: true, data: Bytes::from(vec![n; 4]) };
    let runs = [
        Run { track_id: 1, base_decode_time: 90_000, samples: vec![v(1, true), v(2, false)] },
        Run { track_id: 2, base_decode_time: 44_100, samples: vec![a(3), a(4), a(5)] },
        Run { track_id: 3, base_decode_time: 0, samples: vec![] },
    ];
    let frag = fragment(7, &runs);
    let top: Vec<[u8; 4]> = children(&frag).into_iter().map(|(f, _)| f).collect();
    assert_eq!(top, [*b"moof", *b"mdat"]);
    let moof = find(&frag, &[b"moof"]).unwrap();
    let trafs: Vec<&[u8]> = children(moof).into_iter().filter(|(f, _)| f == b"traf").map(|(_, b)| b).collect();
    assert_eq!(trafs.len(), 2, "an empty run is left out");
    for (traf, (first, count)) in trafs.iter().zip([(1u8, 2u32), (3, 3)]) {
        let trun = children(traf).into_iter().find(|(f, _)| f == b"trun").unwrap().1;
        assert_eq!(u32::from_be_bytes(trun[4..8].try_into().unwrap()), count);
        let offset = i32::from_be_bytes(trun[8..12].try_into().unwrap()) as usize;
        assert_eq!(frag[offset], first, "data offset from the moof's start");
    }
    let tfdt = find(trafs[0], &[b"tfdt"]).unwrap();
    assert_eq!(u64::from_be_bytes(tfdt[4..12].try_into().unwrap()), 90_000);
}

#[test]
fn only_h264_and_aac_with_their_configurations() {
    let opus = TrackInfo::Audio(AudioInfo { codec: Codec::Opus, sample_rate: 48000, channels: 2, config: None });
    assert_eq!(Track::from_info(1, &opus), Err(Mp4Error::Unsupported(Codec::Opus)));
    let bare = TrackInfo::Video(VideoInfo {
        codec: Codec::H264,
        width: 1,
        height: 1,
        fps: None,
        config: None,
        bframes: false,
    });
    assert_eq!(Track::from_info(1, &bare), Err(Mp4Error::NoConfig(Codec::H264)));
}

#[test]
fn the_init_segment_bytes_are_what_they_were_before_progressive_shared_its_code() {
    // Captured from init.rs before trak/mvhd/sample_entry became shared with progressive.rs.
    let golden = crate::auth::secret::unhex(include_str!("testdata/init_176x144_aac44k.hex").trim()).expect("hex");
    assert_eq!(init_segment(&tracks()).to_vec(), golden);
}
