use super::*;
use crate::media::Codec::*;
use crate::media::Protocol::*;

const PROTOCOLS: &str = "\
protocols:
  webrtc:      { video: [h264, vp8], audio: [opus], bframes: false }
  h5:          { video: [mpeg1], audio: [mp2], bframes: false }
  miniprogram: { video: [h264], audio: [aac], bframes: false }
  rtmp:        { video: [h264], audio: [aac] }
  udp:         { video: [h264, vp8, mpeg1], audio: [opus, aac, pcmu, pcma, mp2] }
  cdn:         { video: [h264], audio: [aac], bframes: true }
";

/// A valid matrix whose cells are all `auto`, except the `(from, to, video, audio)` given.
fn matrix_with(cells: &[(&str, &str, &str, &str)]) -> Matrix {
    match Matrix::parse(&matrix_text(PROTOCOLS, cells), "test.yaml") {
        Ok(m) => m,
        Err(e) => panic!("test matrix should be valid:\n{e}"),
    }
}

/// The text of a matrix with these `protocols:` lines, all cells `auto` but the given ones.
fn matrix_text(protocols: &str, cells: &[(&str, &str, &str, &str)]) -> String {
    let mut text = format!("version: 1\n{protocols}rules:\n");
    for from in Protocol::PUBLISHERS {
        text.push_str(&format!("  {from}:\n"));
        for to in Protocol::ALL {
            let (video, audio) = cells
                .iter()
                .find(|c| c.0 == from.as_str() && c.1 == to.as_str())
                .map_or(("auto", "auto"), |c| (c.2, c.3));
            text.push_str(&format!("    {to}: {{ video: {video}, audio: {audio} }}\n"));
        }
    }
    text
}

fn track(codec: Codec) -> Option<SourceTrack> {
    Some(SourceTrack::new(codec))
}

fn source(video: Codec, audio: Codec) -> Source {
    Source { video: track(video), audio: track(audio) }
}

fn convert(from: Codec, to: Codec, reason: Reason) -> Option<Leg> {
    Some(Leg::Convert { from, to, reason })
}

fn copy(codec: Codec) -> Option<Leg> {
    Some(Leg::Copy { codec })
}

#[test]
fn copy_rule_copies_a_carried_codec() {
    let m = matrix_with(&[("rtmp", "cdn", "copy", "copy")]);
    let p = plan(&m, Rtmp, &source(H264, Aac), Cdn).expect("plannable");
    assert_eq!((p.from, p.to), (Rtmp, Cdn));
    assert_eq!(p.video, copy(H264));
    assert_eq!(p.audio, copy(Aac));
    assert_eq!(p.conversions().count(), 0);
}

#[test]
fn copy_rule_converts_a_codec_the_receiver_cannot_carry() {
    let m = matrix_with(&[("webrtc", "rtmp", "copy", "opus->aac")]);
    let p = plan(&m, Webrtc, &source(Vp8, Opus), Rtmp).expect("plannable");
    assert_eq!(p.video, convert(Vp8, H264, Reason::CopyImpossible));
    assert_eq!(p.audio, convert(Opus, Aac, Reason::Rule));
}

#[test]
fn conversion_rule_converts_the_named_codec() {
    let m = matrix_with(&[("webrtc", "h5", "h264->mpeg1", "opus->mp2")]);
    let p = plan(&m, Webrtc, &source(H264, Opus), H5).expect("plannable");
    assert_eq!(p.video, convert(H264, Mpeg1, Reason::Rule));
    assert_eq!(p.audio, convert(Opus, Mp2, Reason::Rule));
    let conversions: Vec<_> = p.conversions().collect();
    assert_eq!(
        conversions,
        vec![(TrackKind::Video, H264, Mpeg1, Reason::Rule), (TrackKind::Audio, Opus, Mp2, Reason::Rule)]
    );
}

#[test]
fn conversion_rule_copies_a_source_already_in_the_target_codec() {
    let m = matrix_with(&[("udp", "rtmp", "copy", "opus->aac")]);
    let p = plan(&m, Udp, &source(H264, Aac), Rtmp).expect("plannable");
    assert_eq!(p.audio, copy(Aac));
}

#[test]
fn conversion_rule_converts_another_input_codec_to_its_target() {
    let m = matrix_with(&[("udp", "h5", "h264->mpeg1", "opus->mp2")]);
    let p = plan(&m, Udp, &source(Vp8, Pcmu), H5).expect("plannable");
    assert_eq!(p.video, convert(Vp8, Mpeg1, Reason::CopyImpossible));
    assert_eq!(p.audio, convert(Pcmu, Mp2, Reason::CopyImpossible));
}

#[test]
fn auto_copies_what_the_receiver_carries_and_converts_the_rest_to_its_first_codec() {
    let m = matrix_with(&[]);
    let p = plan(&m, Udp, &source(Vp8, Pcma), Webrtc).expect("plannable");
    assert_eq!(p.video, copy(Vp8));
    assert_eq!(p.audio, convert(Pcma, Opus, Reason::Auto));
    let p = plan(&m, Udp, &source(Mpeg1, Opus), Webrtc).expect("plannable");
    assert_eq!(p.video, convert(Mpeg1, H264, Reason::Auto));
    assert_eq!(p.audio, copy(Opus));
}

#[test]
fn bframes_are_reencoded_only_toward_protocols_without_them() {
    let m = matrix_with(&[("rtmp", "webrtc", "copy", "aac->opus"), ("rtmp", "cdn", "copy", "copy")]);
    let with_b = Source { video: Some(SourceTrack { bframes: true, ..SourceTrack::new(H264) }), audio: track(Aac) };
    let p = plan(&m, Rtmp, &with_b, Webrtc).expect("plannable");
    assert_eq!(p.video, convert(H264, H264, Reason::BFrames));
    assert_eq!(p.audio, convert(Aac, Opus, Reason::Rule));
    let p = plan(&m, Rtmp, &with_b, Cdn).expect("plannable");
    assert_eq!(p.video, copy(H264));
    // The same B-frame source copied by an `auto` cell toward a B-frame-free protocol.
    let p = plan(&m, Rtmp, &with_b, Miniprogram).expect("plannable");
    assert_eq!(p.video, convert(H264, H264, Reason::BFrames));
}

#[test]
fn a_missing_track_has_no_leg() {
    let m = matrix_with(&[]);
    let audio_only = Source { video: None, audio: track(Aac) };
    let p = plan(&m, Rtmp, &audio_only, Webrtc).expect("plannable");
    assert_eq!(p.video, None);
    assert_eq!(p.audio, convert(Aac, Opus, Reason::Auto));
}

#[test]
fn a_track_with_a_codec_of_the_other_kind_is_an_error() {
    let m = matrix_with(&[]);
    let wrong = Source { video: track(Aac), audio: None };
    assert_eq!(plan(&m, Rtmp, &wrong, Webrtc), Err(PlanError::WrongKind { track: TrackKind::Video, codec: Aac }));
}

#[test]
fn default_source_is_the_first_codec_of_each_track_without_bframes() {
    let m = matrix_with(&[]);
    assert_eq!(Source::default_for(&m, Webrtc), source(H264, Opus));
    assert_eq!(Source::default_for(&m, H5), source(Mpeg1, Mp2));
}

#[test]
fn plans_serialize_as_the_api_shows_them() {
    let m = matrix_with(&[("webrtc", "rtmp", "copy", "opus->aac")]);
    let p = plan(&m, Webrtc, &source(H264, Opus), Rtmp).expect("plannable");
    let json = serde_json::to_value(p).expect("serializable");
    assert_eq!(
        json,
        serde_json::json!({
            "from": "webrtc",
            "to": "rtmp",
            "video": {"action": "copy", "codec": "h264"},
            "audio": {"action": "convert", "from": "opus", "to": "aac", "reason": "rule"}
        })
    );
    let back: Plan = serde_json::from_value(json).expect("deserializable");
    assert_eq!(back, p);
    let b = serde_json::to_value(Leg::Convert { from: H264, to: H264, reason: Reason::BFrames }).expect("serializable");
    assert_eq!(b["reason"], "bframes");
    let c = serde_json::to_value(Reason::CopyImpossible).expect("serializable");
    assert_eq!(c, "copy_impossible");
}

#[test]
fn long_gops_are_reencoded_only_where_the_receiver_needs_keyframes_and_the_publisher_cannot_be_asked() {
    let protocols = PROTOCOLS.replace("bframes: false }\n  rtmp", "bframes: false, keyframe_interval: 2 }\n  rtmp");
    let cells = [
        ("rtmp", "miniprogram", "copy", "copy"),
        ("rtmp", "rtmp", "copy", "copy"),
        ("webrtc", "miniprogram", "copy", "opus->aac"),
    ];
    let m = Matrix::parse(&matrix_text(&protocols, &cells), "m.yaml").expect("valid");
    let long = |on_request| Source {
        video: Some(SourceTrack {
            keyframe_interval_ms: Some(5000),
            keyframes_on_request: on_request,
            ..SourceTrack::new(H264)
        }),
        audio: track(Aac),
    };
    let p = plan(&m, Rtmp, &long(false), Miniprogram).unwrap();
    assert_eq!(m.max_keyframe_interval_ms(Miniprogram), Some(2000));
    assert_eq!(p.video, Some(Leg::Convert { from: H264, to: H264, reason: Reason::KeyframeInterval }));
    assert_eq!(p.audio, Some(Leg::Copy { codec: Aac }));
    // RTMP viewers take any GOP; a publisher that makes keyframes on request is asked instead.
    assert_eq!(plan(&m, Rtmp, &long(false), Rtmp).unwrap().video, Some(Leg::Copy { codec: H264 }));
    assert_eq!(plan(&m, Webrtc, &long(true), Miniprogram).unwrap().video, Some(Leg::Copy { codec: H264 }));
    // Within the limit, or not measured yet: copied.
    let short =
        Source { video: Some(SourceTrack { keyframe_interval_ms: Some(2000), ..SourceTrack::new(H264) }), audio: None };
    assert_eq!(plan(&m, Rtmp, &short, Miniprogram).unwrap().video, Some(Leg::Copy { codec: H264 }));
    assert_eq!(
        plan(&m, Rtmp, &Source { video: track(H264), audio: None }, Miniprogram).unwrap().video,
        Some(Leg::Copy { codec: H264 })
    );
    assert_eq!(serde_json::to_value(Reason::KeyframeInterval).unwrap(), "keyframe_interval");
}

#[test]
fn keyframe_interval_must_be_a_sane_number_of_seconds() {
    let protocols = PROTOCOLS.replace("bframes: false }\n  rtmp", "bframes: false, keyframe_interval: soon }\n  rtmp");
    let err = Matrix::parse(&matrix_text(&protocols, &[]), "m.yaml").unwrap_err().to_string();
    assert!(err.contains("keyframe_interval") && err.contains("seconds"), "{err}");
}
