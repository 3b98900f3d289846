//! The window's pruning: a keyframe first, its duration, the byte bound, restarts.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::media::{Frame, TrackInfo, Ts, VideoInfo};
use crate::record::clip::testing::{audio_info, secs, stream, video_info, wall, AAC_NS, FRAME_NS};

fn window(seconds: u64, max_bytes: usize) -> ClipWindow {
    ClipWindow::new(WindowConfig { window: Duration::from_secs(seconds), max_bytes })
}

fn feed(w: &mut ClipWindow, frames: &[Arc<Frame>]) {
    for f in frames {
        w.push(f.clone(), wall(f.dts.as_nanos()));
    }
}

fn first(w: &ClipWindow, kind: TrackKind) -> Option<&Arc<Frame>> {
    w.frames(kind).next().map(|(_, f)| f)
}

#[test]
fn the_window_holds_its_duration_from_a_keyframe() {
    let mut w = window(5, 64 << 20);
    for f in stream(0, 12_000_000_000, 25, 100, true, true) {
        w.push(f.clone(), wall(f.dts.as_nanos()));
        let v = first(&w, TrackKind::Video).expect("video");
        assert!(v.keyframe, "starts at a keyframe");
        if let Some(a) = first(&w, TrackKind::Audio) {
            assert!(a.dts >= v.dts, "no audio before the first picture");
        }
    }
    // Keyframes every second: the newest one at least 5 s old starts the window.
    let (start, end) = w.span().unwrap();
    assert_eq!(first(&w, TrackKind::Video).unwrap().dts, Ts(6_000_000_000));
    assert!(end.duration_since(start).unwrap() >= Duration::from_secs(5));
    assert!(end.duration_since(start).unwrap() < Duration::from_secs(6));
    let a = first(&w, TrackKind::Audio).unwrap();
    assert!(a.dts.as_nanos() - 6_000_000_000 < AAC_NS);
    let payloads: usize = [TrackKind::Video, TrackKind::Audio]
        .into_iter()
        .flat_map(|k| w.frames(k))
        .map(|(_, f)| f.data.len() + FRAME_OVERHEAD)
        .sum();
    assert_eq!(w.bytes(), payloads);
}

#[test]
fn the_byte_bound_drops_old_gops_and_one_gop_over_it_empties_the_window() {
    // GOPs of 10 pictures of 1000 bytes (11 280 bytes with the overhead); 40 000 allowed.
    let mut w = window(60, 40_000);
    for f in stream(0, 10_000_000_000, 10, 1000, true, false) {
        w.push(f.clone(), wall(f.dts.as_nanos()));
        assert!(w.bytes() <= 40_000);
        assert!(first(&w, TrackKind::Video).unwrap().keyframe);
    }
    assert!(w.bytes() > 2 * 11_280, "more than two GOPs kept: {}", w.bytes());
    // A hostile stream: one keyframe, then pictures without end.
    let mut w = window(60, 40_000);
    let info = video_info(176);
    for n in 0..100i64 {
        let f = Arc::new(Frame::new(info.clone(), Ts(n * FRAME_NS), Ts(n * FRAME_NS), n == 0, vec![0; 1000].into()));
        w.push(f, wall(n * FRAME_NS));
        assert!(w.bytes() <= 40_000);
    }
    assert_eq!(w.frames(TrackKind::Video).count(), 0, "nothing decodable fits: empty until a keyframe");
    let key = Arc::new(Frame::new(info, Ts(100 * FRAME_NS), Ts(100 * FRAME_NS), true, vec![0; 1000].into()));
    w.push(key, wall(100 * FRAME_NS));
    assert_eq!(w.frames(TrackKind::Video).count(), 1);
}

#[test]
fn a_new_configuration_restarts_the_window_at_the_next_keyframe() {
    let mut w = window(60, 64 << 20);
    feed(&mut w, &stream(0, 3_000_000_000, 25, 100, true, true));
    // The hub learns the frame rate and B-frames later: a new info, the same configuration.
    let TrackInfo::Video(v) = video_info(176).as_ref().clone() else { unreachable!() };
    let relabeled = Arc::new(TrackInfo::Video(VideoInfo { fps: Some(30.0), bframes: true, ..v }));
    let at = 3_000_000_000;
    w.push(Arc::new(Frame::new(relabeled, Ts(at), Ts(at), false, vec![1; 100].into())), wall(at));
    assert_eq!(first(&w, TrackKind::Video).unwrap().dts, Ts(0), "same configuration: kept");
    // A new picture size: everything goes; the new configuration starts at its keyframe.
    let bigger = video_info(320);
    for (n, key) in [(76, false), (77, false), (78, true), (79, false)] {
        let at = n * FRAME_NS;
        w.push(Arc::new(Frame::new(bigger.clone(), Ts(at), Ts(at), key, vec![1; 100].into())), wall(at));
        w.push(Arc::new(Frame::new(audio_info(), Ts(at), Ts(at), true, vec![2; 10].into())), wall(at));
    }
    let video: Vec<Ts> = w.frames(TrackKind::Video).map(|(_, f)| f.dts).collect();
    assert_eq!(video, [Ts(78 * FRAME_NS), Ts(79 * FRAME_NS)]);
    assert!(w.frames(TrackKind::Video).all(|(_, f)| Arc::ptr_eq(&f.info, &bigger)));
    let audio: Vec<Ts> = w.frames(TrackKind::Audio).map(|(_, f)| f.dts).collect();
    assert_eq!(audio, video, "audio restarts with the keyframe too");
}

#[test]
fn a_timeline_going_back_restarts_the_window() {
    let mut w = window(60, 64 << 20);
    feed(&mut w, &stream(0, 2_000_000_000, 25, 100, true, false));
    // A republish: timestamps from 0 again, pushed later.
    for f in stream(0, 1_000_000_000, 25, 100, true, false) {
        w.push(f.clone(), wall(f.dts.as_nanos() + 5_000_000_000));
    }
    assert_eq!(w.frames(TrackKind::Video).count(), 25);
    assert_eq!(first(&w, TrackKind::Video).unwrap().dts, Ts(0));
}

#[test]
fn audio_waits_for_the_first_keyframe_and_an_audio_only_stream_goes_by_time() {
    let mut w = window(5, 64 << 20);
    // Video joins mid-GOP: its pictures before the keyframe at 1 s, and the audio meanwhile,
    // are not kept.
    let frames: Vec<Arc<Frame>> = stream(400_000_000, 3_000_000_000, 25, 100, true, true);
    feed(&mut w, &frames);
    assert_eq!(first(&w, TrackKind::Video).unwrap().dts, Ts(1_000_000_000));
    assert!(first(&w, TrackKind::Audio).unwrap().dts >= Ts(1_000_000_000));
    // Audio alone: the newest 5 s.
    let mut w = window(5, 64 << 20);
    feed(&mut w, &stream(0, 12_000_000_000, 25, 100, false, true));
    let (start, end) = w.span().unwrap();
    assert!(end.duration_since(start).unwrap() <= Duration::from_secs(5));
    assert!(start >= secs(6.9), "{start:?}");
    assert_eq!(w.frames(TrackKind::Video).count(), 0);
}
