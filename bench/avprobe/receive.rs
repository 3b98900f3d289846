//! The receiver: plays one URL like a real client, decodes every picture and the audio, reads
//! the time code and flash from each picture and finds beep onsets, and prints one JSON line
//! per event on stdout:
//!
//! - `{"start":MS}`: wall-clock ms when the connection started;
//! - `{"v":[ARRIVAL_MS, CODE_OR_-1, PTS_MS, FLASH]}`: a decoded picture (PTS in running time);
//! - `{"a":[ARRIVAL_MS, ONSET_PTS_MS, AFTER_MS, LENGTH_MS]}`: a beep, printed once it ended:
//!   arrival of the buffer its onset was in, the onset's PTS, decoded audio in that buffer after
//!   the onset, and the beep's length (which tells its second modulo 4, see `code.rs`);
//! - `{"first":{"video_ms":..}}`: connect to first decoded picture;
//! - `{"connected":MS}`: WHEP only, when ICE and DTLS completed;
//! - `{"end":{...}}`: counts; `{"error":".."}`.
//!
//! URLs: `http://…flv` (HTTP-FLV), `rtmp://…`, `ws://…` (H5 MPEG-TS over WebSocket),
//! `whep+http://…/whep/KEY` (WebRTC), `tcp+flv://HOST:PORT` and `tcp+ts://HOST:PORT` (the
//! source's direct path). Decoders run on one thread each, without frame threading (which
//! would add a frame of delay per thread). `--convert-video/--convert-audio DESC` replace the
//! parse+decode of that track by DESC (e.g. the gateway's conversion followed by a decoder):
//! the conversion's own delay without the gateway around it.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use crate::code::{self, now_ms};
use crate::{webrtc, Result};

/// What `receive` was asked for.
pub struct ReceiveArgs {
    pub url: String,
    pub seconds: f64,
    /// Stop after the first decoded picture.
    pub first: bool,
    pub convert_video: Option<String>,
    pub convert_audio: Option<String>,
    /// The WHEP receiver's jitterbuffer latency (ms).
    pub jitter_ms: u32,
    /// WHEP: offer video only (no audio: no lip-sync wait on audio).
    pub video_only: bool,
}

#[derive(Default)]
struct Counts {
    frames: AtomicU64,
    coded: AtomicU64,
    onsets: AtomicU64,
    audio_buffers: AtomicU64,
    first_video: AtomicU64,
}

/// Prints event lines (one writer for all streaming threads).
fn emit(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn front(url: &str) -> Result<String> {
    Ok(if url.starts_with("http://") {
        format!("souphttpsrc location={url} is-live=true ! flvdemux name=demux")
    } else if url.starts_with("rtmp://") {
        format!("rtmp2src location={url} ! flvdemux name=demux")
    } else if let Some(addr) = url.strip_prefix("tcp+flv://").or_else(|| url.strip_prefix("tcp+ts://")) {
        let (host, port) = addr.split_once(':').ok_or("tcp URL without port")?;
        let demux = if url.starts_with("tcp+flv") { "flvdemux" } else { "tsdemux" };
        format!("tcpclientsrc host={host} port={port} ! {demux} name=demux")
    } else if url.starts_with("ws://") {
        "appsrc name=wsin is-live=true format=bytes do-timestamp=false ! tsdemux name=demux".to_string()
    } else {
        return Err(format!("unsupported URL {url}").into());
    })
}

/// The parse/depayload + decode chain for a demuxer pad's caps, and whether it is video.
fn chain(s: &gst::StructureRef, args: &ReceiveArgs) -> Option<(bool, String)> {
    let h264 = || args.convert_video.clone().unwrap_or_else(|| "h264parse ! avdec_h264 max-threads=1".into());
    let mpeg1 =
        || args.convert_video.clone().unwrap_or_else(|| "mpegvideoparse ! avdec_mpeg2video max-threads=1".into());
    let aac = || args.convert_audio.clone().unwrap_or_else(|| "aacparse ! avdec_aac".into());
    let mp2 = || args.convert_audio.clone().unwrap_or_else(|| "mpegaudioparse ! avdec_mp2float".into());
    match s.name().as_str() {
        "video/x-h264" => Some((true, h264())),
        "video/mpeg" => Some((true, mpeg1())),
        "audio/mpeg" => match s.get::<i32>("mpegversion").unwrap_or(1) {
            1 => Some((false, mp2())),
            _ => Some((false, aac())),
        },
        "audio/x-opus" => Some((false, "opusdec".into())),
        "application/x-rtp" => match s.get::<&str>("encoding-name").unwrap_or("").to_ascii_uppercase().as_str() {
            "H264" => Some((true, format!("rtph264depay request-keyframe=true ! {}", h264()))),
            "OPUS" => Some((false, "rtpopusdepay ! opusdec".into())),
            _ => None,
        },
        _ => None,
    }
}

/// Links a decoding branch ending in an appsink that reads pictures or finds onsets.
fn link_branch(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    args: &ReceiveArgs,
    counts: &Arc<Counts>,
    started: f64,
    taken: &Mutex<[bool; 2]>,
) {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let Some((video, chain)) = caps.structure(0).and_then(|s| chain(s, args)) else { return };
    if let Ok(mut t) = taken.lock() {
        if t[usize::from(video)] {
            return;
        }
        t[usize::from(video)] = true;
    }
    let tail = if video {
        "videoconvert ! video/x-raw,format=I420 ! appsink name=sink sync=false"
    } else {
        "audioconvert ! audio/x-raw,format=F32LE,layout=interleaved,channels=1 ! appsink name=sink sync=false"
    };
    let description = format!("queue max-size-time=0 max-size-bytes=0 max-size-buffers=0 ! {chain} ! {tail}");
    let bin = match gst::parse::bin_from_description(&description, true) {
        Ok(b) => b,
        Err(e) => return emit(format!("{{\"error\":{:?}}}", format!("{description}: {e}"))),
    };
    let Some(sink) = bin.by_name("sink").and_then(|e| e.downcast::<gst_app::AppSink>().ok()) else { return };
    let counts = counts.clone();
    if video {
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder().new_sample(move |s| on_picture(s, &counts, started)).build(),
        );
    } else {
        let mut onsets: Option<code::Onsets<(f64, f64)>> = None;
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder().new_sample(move |s| on_audio(s, &counts, &mut onsets)).build(),
        );
    }
    // Beside the demuxer (which may sit inside the front bin).
    let parent = pad
        .parent_element()
        .and_then(|e| e.parent())
        .and_then(|p| p.downcast::<gst::Bin>().ok())
        .unwrap_or_else(|| pipeline.clone().upcast());
    let _ = parent.add(&bin);
    let _ = bin.sync_state_with_parent();
    if let Some(sinkpad) = bin.static_pad("sink") {
        if let Err(e) = pad.link(&sinkpad) {
            emit(format!("{{\"error\":\"link {}: {e:?}\"}}", pad.name()));
        }
    }
}

fn running_ms(sample: &gst::Sample, buffer: &gst::BufferRef) -> f64 {
    let pts = buffer.pts();
    let running = sample
        .segment()
        .and_then(|s| s.downcast_ref::<gst::format::Time>())
        .and_then(|s| pts.and_then(|p| s.to_running_time(p)));
    running.or(pts).map(|t| t.nseconds() as f64 / 1e6).unwrap_or(-1.0)
}

fn on_picture(
    sink: &gst_app::AppSink,
    counts: &Counts,
    started: f64,
) -> std::result::Result<gst::FlowSuccess, gst::FlowError> {
    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
    let arrival = now_ms();
    let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else { return Ok(gst::FlowSuccess::Ok) };
    let info = gst_video::VideoInfo::from_caps(caps).map_err(|_| gst::FlowError::NotNegotiated)?;
    let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
    let stride = info.stride()[0] as usize;
    let (code, flash) = code::read(map.as_slice(), stride, info.width() as usize, info.height() as usize);
    if counts.frames.fetch_add(1, Ordering::Relaxed) == 0 {
        counts.first_video.store(((arrival - started) * 1000.0) as u64, Ordering::Relaxed);
        emit(format!(
            "{{\"first\":{{\"video_ms\":{:.1},\"width\":{},\"height\":{}}}}}",
            arrival - started,
            info.width(),
            info.height()
        ));
    }
    if code.is_some() {
        counts.coded.fetch_add(1, Ordering::Relaxed);
    }
    let code = code.map(|c| c as i64).unwrap_or(-1);
    emit(format!("{{\"v\":[{arrival:.2},{code},{:.2},{}]}}", running_ms(&sample, buffer), u8::from(flash)));
    Ok(gst::FlowSuccess::Ok)
}

fn on_audio(
    sink: &gst_app::AppSink,
    counts: &Counts,
    onsets: &mut Option<code::Onsets<(f64, f64)>>,
) -> std::result::Result<gst::FlowSuccess, gst::FlowError> {
    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
    let arrival = now_ms();
    let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else { return Ok(gst::FlowSuccess::Ok) };
    let rate = caps.structure(0).and_then(|s| s.get::<i32>("rate").ok()).unwrap_or(48_000).max(1) as u32;
    counts.audio_buffers.fetch_add(1, Ordering::Relaxed);
    let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
    let samples: Vec<f32> =
        map.as_slice().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let detector = onsets.get_or_insert_with(|| code::Onsets::new(rate));
    let pts = running_ms(&sample, buffer);
    for beep in detector.push(&samples, (arrival, pts)) {
        counts.onsets.fetch_add(1, Ordering::Relaxed);
        let (arrival, pts) = beep.tag;
        let at = pts + beep.index as f64 * 1000.0 / f64::from(rate);
        let after = beep.rest as f64 * 1000.0 / f64::from(rate);
        emit(format!("{{\"a\":[{arrival:.2},{at:.2},{after:.2},{:.1}]}}", beep.length_ms));
    }
    Ok(gst::FlowSuccess::Ok)
}

/// Runs the receiver for `seconds` (or until the first picture with `first`).
pub async fn run(args: ReceiveArgs) -> Result<()> {
    let counts = Arc::new(Counts::default());
    let taken = Arc::new(Mutex::new([false; 2]));
    let whep = args.url.strip_prefix("whep+").map(str::to_string);
    let pipeline = gst::Pipeline::new();
    let demux: gst::Element = match &whep {
        Some(_) => {
            webrtc::make_certificate()?;
            let w = webrtc::webrtcbin("demux", args.jitter_ms)?;
            pipeline.add(&w)?;
            for video in [true, false].into_iter().filter(|v| *v || !args.video_only) {
                let t = w.emit_by_name::<gstreamer_webrtc::WebRTCRTPTransceiver>(
                    "add-transceiver",
                    &[&gstreamer_webrtc::WebRTCRTPTransceiverDirection::Recvonly, &webrtc::rtp_caps(video, true)],
                );
                if video {
                    t.set_property("do-nack", true);
                }
            }
            // When ICE and DTLS are done (the gateway sends nothing before).
            w.connect_notify(Some("connection-state"), |w, _| {
                if webrtc::connected(w) {
                    emit(format!("{{\"connected\":{:.2}}}", now_ms()));
                }
            });
            w
        }
        None => {
            let bin = gst::parse::bin_from_description(&front(&args.url)?, false)?;
            pipeline.add(&bin)?;
            bin.by_name("demux").ok_or("no demuxer")?
        }
    };
    let started = now_ms();
    emit(format!("{{\"start\":{started:.2}}}"));
    let args = Arc::new(args);
    {
        let (p, a, c, t) = (pipeline.downgrade(), args.clone(), counts.clone(), taken.clone());
        demux.connect_pad_added(move |_, pad| {
            if let Some(p) = p.upgrade() {
                link_branch(&p, pad, &a, &c, started, &t);
            }
        });
    }
    pipeline.set_state(gst::State::Playing)?;
    let client = reqwest::Client::builder().timeout(webrtc::STEP).build()?;
    let mut location = None;
    if let Some(url) = &whep {
        location = Some(webrtc::negotiate(&client, &demux, url).await?);
    }
    if args.url.starts_with("ws://") {
        let src = pipeline.by_name("wsin").and_then(|e| e.downcast::<gst_app::AppSrc>().ok()).ok_or("no appsrc")?;
        tokio::spawn(feed_websocket(args.url.clone(), src, started + args.seconds * 1000.0));
    }
    let bus = pipeline.bus().ok_or("no bus")?;
    let deadline = started + args.seconds * 1000.0;
    let mut error = None;
    while now_ms() < deadline {
        if args.first && counts.frames.load(Ordering::Relaxed) > 0 {
            break;
        }
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Eos]) {
            error = Some(match msg.view() {
                gst::MessageView::Error(e) => {
                    format!("{}: {}", msg.src().map(|s| s.path_string().to_string()).unwrap_or_default(), e.error())
                }
                _ => "end of stream".to_string(),
            });
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(location) = location {
        webrtc::delete(&client, &location).await;
    }
    let _ = tokio::task::spawn_blocking(move || pipeline.set_state(gst::State::Null)).await;
    emit(format!(
        "{{\"end\":{{\"frames\":{},\"coded\":{},\"audio_buffers\":{},\"onsets\":{},\"error\":{}}}}}",
        counts.frames.load(Ordering::Relaxed),
        counts.coded.load(Ordering::Relaxed),
        counts.audio_buffers.load(Ordering::Relaxed),
        counts.onsets.load(Ordering::Relaxed),
        error.map(|e| format!("{e:?}")).unwrap_or_else(|| "null".into())
    ));
    Ok(())
}

/// Feeds WebSocket binary messages (MPEG-TS) into the appsrc, retrying the connection until
/// the stream is live or the deadline passes.
async fn feed_websocket(url: String, src: gst_app::AppSrc, deadline: f64) {
    let mut ws = loop {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((ws, _)) => break ws,
            Err(_) if now_ms() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => return emit(format!("{{\"error\":{:?}}}", format!("websocket: {e}"))),
        }
    };
    while let Some(Ok(message)) = ws.next().await {
        if let tokio_tungstenite::tungstenite::Message::Binary(data) = message {
            if src.push_buffer(gst::Buffer::from_slice(data.to_vec())).is_err() {
                break;
            }
        }
    }
}
