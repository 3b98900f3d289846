//! The test source: pictures carrying their send time and a flash, audio beeping, at each
//! whole second of the wall clock (see `code.rs`), encoded and published one of three ways:
//!
//! - `rtmp URL`: H.264 (x264 zerolatency, no B-frames, GOP 2 s) + AAC (avenc_aac) as FLV tags
//!   over the gateway's own RTMP client. `--audio-delay S` holds every audio tag back for the
//!   first S seconds (a WeChat live-pusher whose audio starts late).
//! - `whip URL`: H.264 + Opus over WebRTC (webrtcbin, ICE on 127.0.0.1).
//! - `h5 URL`: MPEG-1 (the gateway's igmpeg1enc: I and P pictures only) + MP2 in MPEG-TS,
//!   POSTed chunked (avenc_mpeg1video refuses every frame rate in GStreamer 1.22's gst-libav).
//!
//! `--serve PORT` also serves the encoded stream (FLV for rtmp, TS for h5) to plain TCP clients:
//! the direct path, decoded without the gateway. Frame times sit on a grid aligned to whole
//! seconds (frame 0 of every second is sent exactly at the second, with the beep's first
//! sample), so flash and beep leave together.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use interop_gateway::protocols::flv::{file_header, file_tag, TagKind};
use interop_gateway::protocols::rtmp::{ClientConn, MediaKind, RtmpUrl};
use tokio::io::AsyncWriteExt;
use tokio::sync::{broadcast, mpsc};

use crate::code::{self, now_ms, MASK};
use crate::{webrtc, Result};

/// What `source` was asked for.
pub struct SourceArgs {
    pub kind: String,
    pub url: String,
    pub serve: Option<u16>,
    pub audio_delay_s: f64,
    pub width: usize,
    pub height: usize,
    pub fps: u32,
    pub seconds: f64,
}

const AUDIO_RATE: u32 = 48_000;
const AUDIO_CHUNK_MS: u32 = 10;
const X264: &str = "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 bframes=0 bitrate=1000";

/// One encoded unit on its way out: an FLV tag body, or a piece of TS.
#[derive(Clone)]
struct Unit {
    video: bool,
    ts_ms: u32,
    keyframe: bool,
    header: bool,
    body: Bytes,
}

fn appsrc(pipeline: &gst::Pipeline, name: &str) -> Result<gst_app::AppSrc> {
    pipeline
        .by_name(name)
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or_else(|| format!("no appsrc {name}").into())
}

fn description(args: &SourceArgs) -> Result<String> {
    let (w, h, fps) = (args.width, args.height, args.fps);
    let video = format!(
        "appsrc name=v format=time is-live=true do-timestamp=false caps=video/x-raw,format=I420,width={w},height={h},framerate={fps}/1"
    );
    let audio = format!(
        "appsrc name=a format=time is-live=true do-timestamp=false caps=audio/x-raw,format=S16LE,layout=interleaved,rate={AUDIO_RATE},channels=2"
    );
    Ok(match args.kind.as_str() {
        "rtmp" => format!(
            "{video} ! {X264} ! video/x-h264,stream-format=avc,alignment=au,profile=constrained-baseline ! appsink name=vout sync=false \
             {audio} ! audioconvert ! avenc_aac bitrate=128000 ! audio/mpeg,mpegversion=4,stream-format=raw ! appsink name=aout sync=false"
        ),
        "whip" => format!(
            "{video} ! {X264} ! video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=-1 aggregate-mode=zero-latency pt=96 \
               ! capsfilter name=vcaps \
             {audio} ! audioconvert ! opusenc bitrate=64000 frame-size=20 ! rtpopuspay pt=111 ! capsfilter name=acaps"
        ),
        "h5" => format!(
            "{video} ! igmpeg1enc bitrate=1000000 gop-size=30 ! mpegvideoparse ! mpegtsmux name=mux \
             {audio} ! audioconvert ! audioresample ! audio/x-raw,rate=44100 ! avenc_mp2 bitrate=128000 ! mpegaudioparse ! mux. \
             mux. ! appsink name=tsout sync=false"
        ),
        other => return Err(format!("unknown source kind {other} (rtmp, whip, h5)").into()),
    })
}

/// Runs the source until `seconds` pass or SIGTERM.
pub async fn run(args: SourceArgs) -> Result<()> {
    let description = description(&args)?;
    let pipeline = gst::parse::launch(&description)?.downcast::<gst::Pipeline>().map_err(|_| "not a pipeline")?;
    if args.kind == "whip" {
        // webrtcbin is built here (ICE on loopback only) and linked to the two payloaders.
        link_webrtc(&pipeline)?;
    }
    let offset = Arc::new(AtomicU64::new(u64::MAX));
    let (tx, rx) = mpsc::unbounded_channel::<Unit>();
    match args.kind.as_str() {
        "rtmp" => {
            hook_flv_sink(&pipeline, "vout", true, offset.clone(), tx.clone())?;
            hook_flv_sink(&pipeline, "aout", false, offset.clone(), tx.clone())?;
        }
        "h5" => hook_ts_sink(&pipeline, offset.clone(), tx.clone())?,
        _ => {}
    }
    drop(tx);
    pipeline.set_state(gst::State::Playing)?;
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = (now_ms() / 1000.0).floor() * 1000.0 + 1000.0;
    let generator = {
        let (v, a, stop, offset, p) =
            (appsrc(&pipeline, "v")?, appsrc(&pipeline, "a")?, stop.clone(), offset.clone(), pipeline.clone());
        let (w, h, fps, secs) = (args.width, args.height, args.fps, args.seconds);
        std::thread::spawn(move || generate(&p, &v, &a, (w, h, fps), t0, secs, &stop, &offset))
    };
    let outcome = tokio::select! {
        r = deliver(&args, &pipeline, rx) => r,
        e = bus_error(&pipeline) => Err(e.into()),
        _ = wait_end(args.seconds + (t0 - now_ms()) / 1000.0) => Ok(()),
    };
    stop.store(true, Ordering::Relaxed);
    let _ = generator.join();
    let _ = tokio::task::spawn_blocking(move || pipeline.set_state(gst::State::Null)).await;
    outcome
}

/// The first error the pipeline posts.
async fn bus_error(pipeline: &gst::Pipeline) -> String {
    let Some(bus) = pipeline.bus() else { return "no bus".into() };
    loop {
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = msg.view() {
                return format!(
                    "{}: {} ({:?})",
                    msg.src().map(|s| s.path_string().to_string()).unwrap_or_default(),
                    e.error(),
                    e.debug()
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_end(seconds: f64) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(_) => return,
    };
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs_f64(seconds.max(0.0))) => {}
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Adds one webrtcbin on loopback and links both payloaders to it, sendonly.
fn link_webrtc(p: &gst::Pipeline) -> Result<()> {
    let webrtc = webrtc::webrtcbin("w", 0)?;
    p.add(&webrtc)?;
    for (caps_name, video) in [("vcaps", true), ("acaps", false)] {
        let caps = p.by_name(caps_name).ok_or("no capsfilter")?;
        caps.set_property("caps", webrtc::rtp_caps(video, false));
        let pad = webrtc.request_pad_simple("sink_%u").ok_or("webrtcbin gave no sink pad")?;
        caps.static_pad("src").ok_or("no caps src")?.link(&pad)?;
        let transceiver: gstreamer_webrtc::WebRTCRTPTransceiver = pad.property("transceiver");
        transceiver.set_direction(gstreamer_webrtc::WebRTCRTPTransceiverDirection::Sendonly);
    }
    Ok(())
}

/// Pushes pictures and audio at their wall-clock times from `t0` (a whole second) on.
#[allow(clippy::too_many_arguments)]
fn generate(
    pipeline: &gst::Pipeline,
    video: &gst_app::AppSrc,
    audio: &gst_app::AppSrc,
    (w, h, fps): (usize, usize, u32),
    t0: f64,
    seconds: f64,
    stop: &AtomicBool,
    offset: &AtomicU64,
) {
    let frame_ms = 1000.0 / f64::from(fps);
    let chunk = (AUDIO_RATE * AUDIO_CHUNK_MS / 1000) as usize;
    let (mut frame, mut chunk_no) = (0u64, 0u64);
    let end = t0 + seconds * 1000.0;
    while !stop.load(Ordering::Relaxed) {
        let next_video = t0 + frame as f64 * frame_ms;
        let next_audio = t0 + (chunk_no + 1) as f64 * f64::from(AUDIO_CHUNK_MS);
        let due = next_video.min(next_audio);
        if due >= end {
            break;
        }
        let wait = due - now_ms();
        if wait > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(wait / 1000.0));
        }
        if offset.load(Ordering::Relaxed) == u64::MAX {
            let running = pipeline.current_running_time().map(|t| t.nseconds()).unwrap_or(0);
            offset.store(running, Ordering::Relaxed);
        }
        let base = offset.load(Ordering::Relaxed);
        if next_video <= next_audio {
            let mut data = vec![128u8; w * h * 3 / 2];
            let code = (next_video.round() as u64) & MASK;
            code::draw(&mut data[..w * h], w, w, h, code, frame % u64::from(fps) == 0, frame);
            let mut buffer = gst::Buffer::from_mut_slice(data);
            if let Some(b) = buffer.get_mut() {
                b.set_pts(gst::ClockTime::from_nseconds(base + (frame as f64 * frame_ms * 1e6) as u64));
                b.set_duration(gst::ClockTime::from_nseconds((frame_ms * 1e6) as u64));
            }
            if video.push_buffer(buffer).is_err() {
                break;
            }
            frame += 1;
        } else {
            let start_ms = t0 + chunk_no as f64 * f64::from(AUDIO_CHUNK_MS);
            let mut data = BytesMut::with_capacity(chunk * 4);
            for n in 0..chunk {
                let v = (code::beep_sample(start_ms + n as f64 * 1000.0 / f64::from(AUDIO_RATE)) * 32767.0) as i16;
                data.put_i16_le(v);
                data.put_i16_le(v);
            }
            let mut buffer = gst::Buffer::from_mut_slice(data.to_vec());
            if let Some(b) = buffer.get_mut() {
                b.set_pts(gst::ClockTime::from_nseconds(base + chunk_no * u64::from(AUDIO_CHUNK_MS) * 1_000_000));
                b.set_duration(gst::ClockTime::from_mseconds(u64::from(AUDIO_CHUNK_MS)));
            }
            if audio.push_buffer(buffer).is_err() {
                break;
            }
            chunk_no += 1;
        }
    }
    let _ = video.end_of_stream();
    let _ = audio.end_of_stream();
}

/// FLV tag bodies from an encoder's appsink: the sequence header first (from the caps'
/// codec_data), then one tag per frame.
fn hook_flv_sink(
    p: &gst::Pipeline,
    name: &str,
    video: bool,
    offset: Arc<AtomicU64>,
    tx: mpsc::UnboundedSender<Unit>,
) -> Result<()> {
    let sink = p.by_name(name).and_then(|e| e.downcast::<gst_app::AppSink>().ok()).ok_or("no appsink")?;
    let mut header_sent = false;
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let base = offset.load(Ordering::Relaxed);
                // In running time: x264enc's output segment starts at 1000 h.
                let pts = sample
                    .segment()
                    .and_then(|s| s.downcast_ref::<gst::format::Time>())
                    .and_then(|s| buffer.pts().and_then(|p| s.to_running_time(p)))
                    .map(|t| t.nseconds())
                    .unwrap_or(base);
                let ts_ms = (pts.saturating_sub(base) as f64 / 1e6).round() as u32;
                if !header_sent {
                    let config = caps
                        .structure(0)
                        .and_then(|s| s.get::<gst::Buffer>("codec_data").ok())
                        .and_then(|b| b.map_readable().ok().map(|m| m.to_vec()))
                        .unwrap_or_default();
                    let head: &[u8] = if video { &[0x17, 0, 0, 0, 0] } else { &[0xAF, 0] };
                    let body = [head, &config[..]].concat();
                    let _ = tx.send(Unit { video, ts_ms, keyframe: true, header: true, body: body.into() });
                    header_sent = true;
                }
                let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
                let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                let head: &[u8] = match (video, keyframe) {
                    (true, true) => &[0x17, 1, 0, 0, 0],
                    (true, false) => &[0x27, 1, 0, 0, 0],
                    (false, _) => &[0xAF, 1],
                };
                let body = [head, map.as_slice()].concat();
                let _ = tx.send(Unit { video, ts_ms, keyframe: keyframe || !video, header: false, body: body.into() });
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(())
}

/// TS bytes from the muxer's appsink.
fn hook_ts_sink(p: &gst::Pipeline, offset: Arc<AtomicU64>, tx: mpsc::UnboundedSender<Unit>) -> Result<()> {
    let sink = p.by_name("tsout").and_then(|e| e.downcast::<gst_app::AppSink>().ok()).ok_or("no appsink")?;
    let _ = offset;
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(buffer) = sample.buffer() {
                    let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                    let _ = tx.send(Unit {
                        video: true,
                        ts_ms: 0,
                        keyframe: true,
                        header: false,
                        body: Bytes::copy_from_slice(&map),
                    });
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(())
}

/// Sends the encoded units to the gateway (and to direct TCP clients).
async fn deliver(args: &SourceArgs, pipeline: &gst::Pipeline, mut rx: mpsc::UnboundedReceiver<Unit>) -> Result<()> {
    let (direct, _keep) = broadcast::channel::<Unit>(4096);
    if let Some(port) = args.serve {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        tokio::spawn(serve(listener, direct.clone(), args.kind == "rtmp"));
    }
    match args.kind.as_str() {
        "rtmp" => {
            let url: RtmpUrl = args.url.parse().map_err(|e| format!("{}: {e:?}", args.url))?;
            let mut conn = ClientConn::connect(&url, Duration::from_secs(10)).await?;
            conn.publish().await?;
            println!("{{\"ready\":\"rtmp\",\"url\":\"{}\"}}", args.url);
            let delay_ms = (args.audio_delay_s * 1000.0) as u32;
            let (mut audio_header, mut video_started) = (None::<Unit>, false);
            let mut video_header = None::<Unit>;
            while let Some(unit) = rx.recv().await {
                let _ = direct.send(unit.clone());
                if unit.header {
                    if unit.video {
                        video_header = Some(unit);
                    } else {
                        audio_header = Some(unit);
                    }
                    continue;
                }
                if unit.video {
                    if !video_started {
                        if !unit.keyframe {
                            continue;
                        }
                        if let Some(h) = video_header.take() {
                            conn.send_media(MediaKind::Video, unit.ts_ms, &h.body).await?;
                        }
                        video_started = true;
                    }
                    conn.send_media(MediaKind::Video, unit.ts_ms, &unit.body).await?;
                } else if unit.ts_ms >= delay_ms && video_started {
                    if let Some(h) = audio_header.take() {
                        conn.send_media(MediaKind::Audio, unit.ts_ms, &h.body).await?;
                    }
                    conn.send_media(MediaKind::Audio, unit.ts_ms, &unit.body).await?;
                }
            }
            conn.close().await;
            Ok(())
        }
        "h5" => {
            let mut post = H5Post::open(&args.url).await?;
            println!("{{\"ready\":\"h5\",\"url\":\"{}\"}}", args.url);
            while let Some(unit) = rx.recv().await {
                let _ = direct.send(unit.clone());
                post.send(&unit.body).await?;
            }
            post.finish().await;
            Ok(())
        }
        _ => {
            let client = reqwest::Client::builder().timeout(webrtc::STEP).build()?;
            let w = pipeline.by_name("w").ok_or("no webrtcbin")?;
            webrtc::poll(webrtc::STEP, "caps on the webrtcbin sink pads", || {
                w.sink_pads().iter().all(|p| p.current_caps().is_some())
            })
            .await?;
            let location = webrtc::negotiate(&client, &w, &args.url).await?;
            let ok = webrtc::poll(Duration::from_secs(20), "connected", || webrtc::connected(&w)).await;
            println!("{{\"ready\":\"whip\",\"url\":\"{}\",\"connected\":{}}}", args.url, ok.is_ok());
            // Runs until the caller's deadline or SIGTERM ends the select in `run`; the
            // session is DELETEd then by `Session`'s guard below.
            let _guard = WhipSession { client, location };
            std::future::pending::<()>().await;
            Ok(())
        }
    }
}

/// DELETEs the WHIP session when dropped (on a thread of its own: drop cannot await).
struct WhipSession {
    client: reqwest::Client,
    location: String,
}

impl Drop for WhipSession {
    fn drop(&mut self) {
        let (client, location) = (self.client.clone(), self.location.clone());
        let done = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(webrtc::delete(&client, &location));
            }
        });
        let _ = done.join();
    }
}

/// Direct clients: FLV header and sequence headers, then from the next keyframe (FLV); TS as is.
async fn serve(listener: tokio::net::TcpListener, direct: broadcast::Sender<Unit>, flv: bool) {
    let headers = Arc::new(std::sync::Mutex::new(Vec::<Unit>::new()));
    {
        let (mut rx, headers) = (direct.subscribe(), headers.clone());
        tokio::spawn(async move {
            while let Ok(u) = rx.recv().await {
                if u.header {
                    if let Ok(mut h) = headers.lock() {
                        h.retain(|x| x.video != u.video);
                        h.push(u);
                    }
                }
            }
        });
    }
    while let Ok((mut socket, _)) = listener.accept().await {
        let mut rx = direct.subscribe();
        let headers = headers.clone();
        tokio::spawn(async move {
            let _ = socket.set_nodelay(true);
            let mut started = !flv;
            if flv {
                let mut out = file_header(true, true).to_vec();
                for h in headers.lock().map(|h| h.clone()).unwrap_or_default() {
                    let kind = if h.video { TagKind::Video } else { TagKind::Audio };
                    out.extend_from_slice(&file_tag(kind, h.ts_ms, &h.body));
                }
                if socket.write_all(&out).await.is_err() {
                    return;
                }
            }
            while let Ok(u) = rx.recv().await {
                if !flv {
                    if socket.write_all(&u.body).await.is_err() {
                        return;
                    }
                    continue;
                }
                // A header that comes after the client connected (the source just started)
                // goes out as it comes.
                if !u.header && !started {
                    if !(u.video && u.keyframe) {
                        continue;
                    }
                    started = true;
                }
                let kind = if u.video { TagKind::Video } else { TagKind::Audio };
                if socket.write_all(&file_tag(kind, u.ts_ms, &u.body)).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// A chunked HTTP/1.1 POST of MPEG-TS, as `ffmpeg -f mpegts http://...` sends it.
struct H5Post {
    socket: tokio::net::TcpStream,
}

impl H5Post {
    async fn open(url: &str) -> Result<H5Post> {
        let rest = url.strip_prefix("http://").ok_or("h5 source URL must be http://")?;
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut socket = tokio::net::TcpStream::connect(host).await?;
        socket.set_nodelay(true)?;
        let head = format!(
            "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: video/mp2t\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        socket.write_all(head.as_bytes()).await?;
        Ok(H5Post { socket })
    }

    async fn send(&mut self, data: &[u8]) -> Result<()> {
        let mut out = format!("{:x}\r\n", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        self.socket.write_all(&out).await?;
        Ok(())
    }

    async fn finish(mut self) {
        let _ = self.socket.write_all(b"0\r\n\r\n").await;
    }
}
