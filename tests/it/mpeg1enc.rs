//! `igmpeg1enc` in real GStreamer pipelines: files written through `mpegvideoparse !
//! mpegtsmux` and read back by ffprobe, and the gateway's own transcoder fed with H.264.

use crate::common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use interop_gateway::media::{Codec, Frame, TrackInfo, Ts, VideoInfo};
use interop_gateway::pipeline::{TranscodeSink, Transcoder};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs a gst-launch description to EOS; panics with the bus error otherwise.
fn run_to_eos(description: &str) {
    interop_gateway::pipeline::init();
    let pipeline = gst::parse::launch(description).expect("parse pipeline");
    let bus = pipeline.bus().expect("bus");
    pipeline.set_state(gst::State::Playing).expect("play");
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(TIMEOUT.as_secs()),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let _ = pipeline.set_state(gst::State::Null);
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        Some(gst::MessageView::Error(e)) => panic!("`{description}`: {} ({:?})", e.error(), e.debug()),
        _ => panic!("`{description}`: no EOS within {TIMEOUT:?}"),
    }
}

/// Encodes `num` test frames of the given raw caps into an MPEG-TS file.
fn encode_to_ts(dir: &Path, name: &str, num: u32, raw_caps: &str, enc_props: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    run_to_eos(&format!(
        "videotestsrc num-buffers={num} pattern=ball ! {raw_caps} ! igmpeg1enc {enc_props} ! mpegvideoparse \
         ! mpegtsmux ! filesink location={}",
        path.display()
    ));
    path
}

/// What ffprobe says about the first video stream and its frames.
struct Probe {
    codec: String,
    width: u64,
    height: u64,
    frames_read: u64,
    duration: f64,
    /// (pict_type, pts_time) per frame, in order.
    frames: Vec<(String, f64)>,
}

fn probe(path: &Path) -> Probe {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames", "-show_streams", "-show_frames"])
        .args(["-show_entries", "stream=codec_name,width,height,nb_read_frames,duration:frame=pict_type,pts_time"])
        .args(["-of", "json"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(out.status.success(), "ffprobe failed: {}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let stream = &json["streams"][0];
    let num = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<f64>().ok());
    Probe {
        codec: stream["codec_name"].as_str().unwrap_or_default().to_string(),
        width: stream["width"].as_u64().unwrap_or(0),
        height: stream["height"].as_u64().unwrap_or(0),
        frames_read: num(&stream["nb_read_frames"]).unwrap_or(0.0) as u64,
        duration: num(&stream["duration"]).unwrap_or(0.0),
        frames: json["frames"]
            .as_array()
            .map(|fs| {
                fs.iter()
                    .map(|f| {
                        (f["pict_type"].as_str().unwrap_or("?").to_string(), num(&f["pts_time"]).unwrap_or(f64::NAN))
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Indices of the I-frames.
fn i_frames(p: &Probe) -> Vec<usize> {
    p.frames.iter().enumerate().filter(|(_, f)| f.0 == "I").map(|(n, _)| n).collect()
}

#[test]
fn encodes_640x360_for_mpegts_with_an_i_frame_every_gop() {
    let dir = common::TempDir::new("mpeg1enc");
    let path = encode_to_ts(
        dir.path(),
        "640.ts",
        90,
        "video/x-raw,width=640,height=360,framerate=30/1",
        "bitrate=800000 gop-size=15",
    );
    let p = probe(&path);
    assert_eq!(p.codec, "mpeg1video");
    assert_eq!((p.width, p.height), (640, 360));
    assert_eq!(p.frames_read, 90);
    assert_eq!(p.frames.len(), 90);
    assert!(p.frames.iter().all(|f| f.0 == "I" || f.0 == "P"), "picture types: {:?}", p.frames);
    let keys = i_frames(&p);
    for n in (0..90).step_by(15) {
        assert!(keys.contains(&n), "no I-frame at {n}: I-frames at {keys:?}");
    }
    assert!(keys.windows(2).all(|k| k[1] - k[0] <= 15), "I-frames at {keys:?}");
    assert!((p.duration - 3.0).abs() <= 1.0 / 30.0 + 1e-3, "duration {}", p.duration);
}

/// Checks a file made from `num` frames at `fps`: every frame there, spaced 1/fps apart.
fn assert_timing_kept(p: &Probe, num: usize, fps: f64) {
    assert_eq!(p.codec, "mpeg1video");
    assert_eq!(p.frames_read, num as u64);
    assert_eq!(p.frames.len(), num);
    let input_duration = num as f64 / fps;
    assert!(
        (p.duration - input_duration).abs() <= 1.0 / fps + 1e-3,
        "duration {} for {num} frames at {fps} fps",
        p.duration
    );
    for pair in p.frames.windows(2) {
        let step = pair[1].1 - pair[0].1;
        assert!((step - 1.0 / fps).abs() < 2e-3, "frames {step} s apart at {fps} fps: {:?}", p.frames);
    }
}

#[test]
fn other_frame_rates_keep_their_timing() {
    let dir = common::TempDir::new("mpeg1enc-rates");
    for fps in [20u32, 15] {
        let num = 3 * fps;
        let path = encode_to_ts(
            dir.path(),
            &format!("{fps}.ts"),
            num,
            &format!("video/x-raw,width=320,height=240,framerate={fps}/1"),
            "",
        );
        let p = probe(&path);
        assert_eq!((p.width, p.height), (320, 240));
        assert_timing_kept(&p, num as usize, fps as f64);
    }
}

#[test]
fn odd_sizes_are_cropped_to_even() {
    let dir = common::TempDir::new("mpeg1enc-odd");
    let path = encode_to_ts(dir.path(), "odd.ts", 30, "video/x-raw,width=321,height=241,framerate=25/1", "");
    let p = probe(&path);
    assert_eq!((p.width, p.height), (320, 240));
    assert_timing_kept(&p, 30, 25.0);
}

#[test]
fn max_width_scales_down_keeping_aspect() {
    let dir = common::TempDir::new("mpeg1enc-scale");
    let path =
        encode_to_ts(dir.path(), "scaled.ts", 10, "video/x-raw,width=1280,height=720,framerate=30/1", "max-width=640");
    let p = probe(&path);
    assert_eq!((p.width, p.height), (640, 360));
    assert_eq!(p.frames_read, 10);
}

#[test]
fn properties_have_their_defaults_and_can_be_set() {
    interop_gateway::pipeline::init();
    let enc = gst::ElementFactory::make("igmpeg1enc").build().expect("igmpeg1enc is registered");
    assert_eq!(enc.property::<u32>("bitrate"), 1_000_000);
    assert_eq!(enc.property::<u32>("gop-size"), 30);
    assert_eq!(enc.property::<u32>("max-width"), 0);
    assert_eq!(enc.property::<u32>("qmax"), 31);
    enc.set_property("bitrate", 500_000u32);
    enc.set_property("gop-size", 12u32);
    assert_eq!(enc.property::<u32>("bitrate"), 500_000);
    assert_eq!(enc.property::<u32>("gop-size"), 12);
}

/// A flat grey I420 buffer (flat, so no scene-cut I-frames) of `w`x`h` (GStreamer's default layout: strides rounded up to 4).
fn grey_i420(w: usize, h: usize, level: u8) -> gst::Buffer {
    let info = gstreamer_video::VideoInfo::builder(gstreamer_video::VideoFormat::I420, w as u32, h as u32)
        .build()
        .expect("video info");
    gst::Buffer::from_mut_slice(vec![level; info.size()])
}

#[test]
fn variable_rate_input_keeps_timestamps_and_follows_size_changes() {
    interop_gateway::pipeline::init();
    let pipeline =
        gst::parse::launch("appsrc name=src format=time ! igmpeg1enc gop-size=10 ! appsink name=sink sync=false")
            .expect("pipeline")
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
    let src = pipeline.by_name("src").and_then(|s| s.downcast::<gst_app::AppSrc>().ok()).expect("appsrc");
    let sink = pipeline.by_name("sink").and_then(|s| s.downcast::<gst_app::AppSink>().ok()).expect("appsink");
    pipeline.set_state(gst::State::Playing).expect("play");

    // Irregular timestamps, framerate 0/1 (variable), and a size change half way.
    let mut pts_in = Vec::new();
    let mut t = 0u64;
    for n in 0..24u64 {
        let (w, h) = if n < 12 { (320, 240) } else { (176, 144) };
        if n == 0 || n == 12 {
            src.set_caps(Some(
                &gst::Caps::builder("video/x-raw")
                    .field("format", "I420")
                    .field("width", w as i32)
                    .field("height", h as i32)
                    .field("framerate", gst::Fraction::new(0, 1))
                    .build(),
            ));
        }
        let mut buffer = grey_i420(w, h, 100);
        buffer.get_mut().expect("writable").set_pts(gst::ClockTime::from_mseconds(t));
        pts_in.push(gst::ClockTime::from_mseconds(t));
        t += 30 + 17 * (n % 3);
        src.push_buffer(buffer).expect("push");
    }
    src.end_of_stream().expect("eos");

    let mut out = Vec::new();
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(TIMEOUT.as_secs())) {
        let caps = sample.caps().expect("caps").structure(0).expect("structure").to_owned();
        let buffer = sample.buffer().expect("buffer");
        let first_bytes = buffer.map_readable().expect("map").as_slice()[..4].to_vec();
        out.push((caps, buffer.pts(), buffer.flags().contains(gst::BufferFlags::DELTA_UNIT), first_bytes));
        if sink.is_eos() {
            break;
        }
    }
    let _ = pipeline.set_state(gst::State::Null);

    assert_eq!(out.len(), 24);
    assert_eq!(out.iter().map(|o| o.1.expect("pts")).collect::<Vec<_>>(), pts_in);
    for (n, (caps, _, delta, first)) in out.iter().enumerate() {
        assert_eq!(caps.name(), "video/mpeg");
        assert_eq!(caps.get::<i32>("mpegversion"), Ok(1));
        assert_eq!(caps.get::<bool>("systemstream"), Ok(false));
        let size = (caps.get::<i32>("width").expect("width"), caps.get::<i32>("height").expect("height"));
        assert_eq!(size, if n < 12 { (320, 240) } else { (176, 144) }, "frame {n}");
        // Unknown input rate: coded as 30 fps.
        assert_eq!(caps.get::<gst::Fraction>("framerate"), Ok(gst::Fraction::new(30, 1)));
        // I-frames every 10 frames and where the new size starts a new sequence.
        let key = if n < 12 { n % 10 == 0 } else { (n - 12) % 10 == 0 };
        assert_eq!(!delta, key, "frame {n}: keyframe flag");
        assert_eq!(first == &[0, 0, 1, 0xB3], key, "frame {n}: starts with {first:02x?}");
    }
}

/// H.264 frames in the internal format (AVCC, avcC config) made by x264 from a test pattern.
fn h264_frames(num: u32) -> (Arc<TrackInfo>, Vec<Frame>) {
    interop_gateway::pipeline::init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers={num} pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! x264enc tune=zerolatency key-int-max=30 speed-preset=ultrafast \
         ! video/x-h264,stream-format=avc,alignment=au,profile=constrained-baseline ! appsink name=sink sync=false"
    ))
    .expect("x264 pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    let sink = pipeline.by_name("sink").and_then(|s| s.downcast::<gst_app::AppSink>().ok()).expect("appsink");
    pipeline.set_state(gst::State::Playing).expect("play");
    let mut info = None;
    let mut frames = Vec::new();
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(TIMEOUT.as_secs())) {
        let info = info.get_or_insert_with(|| {
            let caps = sample.caps().expect("caps");
            let s = caps.structure(0).expect("structure");
            let config = s.get::<gst::Buffer>("codec_data").expect("codec_data");
            let config = Bytes::copy_from_slice(config.map_readable().expect("map").as_slice());
            Arc::new(TrackInfo::Video(VideoInfo {
                codec: Codec::H264,
                width: 320,
                height: 240,
                fps: Some(30.0),
                config: Some(config),
                bframes: false,
            }))
        });
        let buffer = sample.buffer().expect("buffer");
        let pts = Ts(buffer.pts().expect("pts").nseconds() as i64);
        let dts = buffer.dts().map(|t| Ts(t.nseconds() as i64)).unwrap_or(pts);
        let data = Bytes::copy_from_slice(buffer.map_readable().expect("map").as_slice());
        let key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        frames.push(Frame::new(info.clone(), dts, pts, key, data));
        if sink.is_eos() {
            break;
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    (info.expect("x264 produced frames"), frames)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_transcoder_turns_h264_into_mpeg1() {
    let (info, input) = h264_frames(60);
    assert_eq!(input.len(), 60);
    let output: Arc<Mutex<Vec<Frame>>> = Arc::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let (out, errs) = (output.clone(), errors.clone());
    let sink = TranscodeSink {
        on_frame: Box::new(move |f| out.lock().expect("lock").push(f)),
        on_error: Box::new(move |e| errs.lock().expect("lock").push(e)),
    };
    let mut transcoder = Transcoder::start(
        "test-h264-mpeg1",
        "h264parse ! avdec_h264 ! videoconvert ! igmpeg1enc",
        info,
        Codec::Mpeg1,
        sink,
    )
    .expect("start transcoder");
    for frame in &input {
        transcoder.push(frame).expect("push");
    }
    // No end-of-stream through the transcoder: the decoder and encoder each hold a frame or
    // so back. Wait until the output stops growing.
    let started = Instant::now();
    let mut last = (0, Instant::now());
    while started.elapsed() < TIMEOUT && errors.lock().expect("lock").is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let n = output.lock().expect("lock").len();
        if n != last.0 {
            last = (n, Instant::now());
        } else if n >= 50 && last.1.elapsed() > Duration::from_millis(1500) {
            break;
        }
    }
    drop(transcoder);
    assert!(errors.lock().expect("lock").is_empty(), "errors: {:?}", errors.lock());
    let output = output.lock().expect("lock");
    assert!(output.len() >= 56 && output.len() <= 60, "{} frames out of 60", output.len());

    let TrackInfo::Video(v) = &*output[0].info else { panic!("not video: {:?}", output[0].info) };
    assert_eq!(v.codec, Codec::Mpeg1);
    assert_eq!((v.width, v.height), (320, 240));
    // Output timestamps are the input's, in order.
    let input_pts: Vec<Ts> = input.iter().map(|f| f.pts).collect();
    let output_pts: Vec<Ts> = output.iter().map(|f| f.pts).collect();
    assert_eq!(output_pts[..], input_pts[..output.len()]);
    // I-frames where the GOP (default 30) puts them, each starting with a sequence header.
    let keys: Vec<usize> = output.iter().enumerate().filter(|(_, f)| f.keyframe).map(|(n, _)| n).collect();
    assert_eq!(keys, vec![0, 30], "keyframes at {keys:?}");
    for f in output.iter() {
        assert_eq!(
            f.data.starts_with(&[0, 0, 1, 0xB3]),
            f.keyframe,
            "keyframe {} data {:02x?}",
            f.keyframe,
            &f.data[..8]
        );
    }
}
