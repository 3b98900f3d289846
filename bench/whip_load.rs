//! Bench tool for `bench/webrtc.py`, two modes.
//!
//! `whip_load publish BASE_URL PREFIX N SECONDS`: N WHIP publishers in this process, each its
//! own webrtcbin (ICE on 127.0.0.1 only, DTLS-SRTP, max-bundle) sending H.264 640x360 30 fps
//! (GOP 2 s, no B-frames) + Opus 48 kHz stereo to `BASE_URL/whip/PREFIX{k}`. One encoder pair
//! feeds every publisher through tees, so the load generator costs little CPU beside what it
//! measures; keyframe requests from the gateway are dropped (the encoder keeps its 2 s GOP).
//! Prints one JSON line when all are connected (`{"ready":N,...}`), one at the end; ends after
//! SECONDS or on SIGTERM/SIGINT, DELETEing every session first.
//!
//! `whip_load codec-cost FILE.ogg PIPELINE`: the bare codec cost of a conversion: decodes
//! `filesrc ! oggdemux ! opusparse ! PIPELINE ! fakesink` as fast as it can in one streaming
//! thread, with the gateway's elements registered (`igaacenc`), and prints the process CPU
//! seconds spent between PLAYING and EOS and the seconds of audio that came out. With `paced`
//! last, the frames enter at real time instead (the per-frame wake-ups of a live conversion).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use tokio::sync::oneshot;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Bound on one webrtcbin step (offer, description, gathering) and on one HTTP request.
const STEP: Duration = Duration::from_secs(10);
/// How long all publishers may take to connect.
const CONNECT: Duration = Duration::from_secs(30);

const VIDEO: &str = "videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1 \
    ! x264enc name=venc tune=zerolatency speed-preset=ultrafast key-int-max=60 bframes=0 bitrate=800 \
    ! video/x-h264,profile=constrained-baseline ! tee name=vtee allow-not-linked=true";
const AUDIO: &str = "audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=48000,channels=2 \
    ! opusenc bitrate=64000 frame-size=20 ! tee name=atee allow-not-linked=true";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("publish") if args.len() == 5 => publish_main(&args[1], &args[2], &args[3], &args[4]),
        Some("codec-cost") if args.len() == 3 => codec_cost(&args[1], &args[2], false),
        Some("codec-cost") if args.len() == 4 && args[3] == "paced" => codec_cost(&args[1], &args[2], true),
        _ => Err("usage: whip_load publish BASE_URL PREFIX N SECONDS | whip_load codec-cost FILE.ogg PIPELINE [paced]"
            .into()),
    };
    if let Err(e) = outcome {
        eprintln!("whip_load: {e}");
        std::process::exit(1);
    }
}

fn publish_main(base: &str, prefix: &str, n: &str, seconds: &str) -> Result<()> {
    let n: usize = n.parse()?;
    let seconds: f64 = seconds.parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(publish(base, prefix, n, Duration::from_secs_f64(seconds)))
}

/// One publisher: its webrtcbin and, once answered, its session URL.
struct Publisher {
    webrtc: gst::Element,
    location: Option<String>,
}

async fn publish(base: &str, prefix: &str, n: usize, run_for: Duration) -> Result<()> {
    gst::init()?;
    let pipeline = gst::Pipeline::new();
    let video = gst::parse::bin_from_description(VIDEO, false)?;
    let audio = gst::parse::bin_from_description(AUDIO, false)?;
    pipeline.add_many([&video, &audio])?;
    let frames = count_and_keep_gop(&video)?;
    let mut publishers = Vec::new();
    for k in 0..n {
        publishers.push(Publisher { webrtc: add_publisher(&pipeline, &video, &audio, k)?, location: None });
    }
    pipeline.set_state(gst::State::Playing)?;

    let client = reqwest::Client::builder().timeout(STEP).build()?;
    let started = Instant::now();
    let mut failure = None;
    for (k, p) in publishers.iter_mut().enumerate() {
        let url = format!("{base}/whip/{prefix}{k}");
        match negotiate(&client, &p.webrtc, &url).await {
            Ok(location) => p.location = Some(location),
            Err(e) => {
                failure = Some(format!("{url}: {e}"));
                break;
            }
        }
    }
    let connected = match &failure {
        None => wait_connected(&publishers).await,
        Some(_) => 0,
    };
    println!(
        "{{\"ready\":{n},\"connected\":{connected},\"connect_ms\":{},\"error\":{}}}",
        started.elapsed().as_millis(),
        json_string(failure.as_deref())
    );
    let _ = std::io::stdout().flush();

    if failure.is_none() && connected == n {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::time::sleep(run_for) => {}
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    let mut deleted = 0;
    for p in &publishers {
        if let Some(location) = &p.location {
            let url = reqwest::Url::parse(base)?.join(location)?;
            if client.delete(url).send().await.is_ok_and(|r| r.status().is_success()) {
                deleted += 1;
            }
        }
    }
    let _ = tokio::task::spawn_blocking(move || pipeline.set_state(gst::State::Null)).await;
    println!(
        "{{\"publishers\":{n},\"connected\":{connected},\"deleted\":{deleted},\"frames_encoded\":{}}}",
        frames.load(Ordering::Relaxed)
    );
    match failure {
        Some(e) => Err(e.into()),
        None if connected < n => Err(format!("only {connected} of {n} publishers connected within {CONNECT:?}").into()),
        None => Ok(()),
    }
}

/// Counts encoded video frames; drops keyframe requests on their way to the shared encoder.
fn count_and_keep_gop(video: &gst::Bin) -> Result<Arc<AtomicU64>> {
    let pad = video.by_name("venc").and_then(|e| e.static_pad("src")).ok_or("no encoder pad")?;
    let frames = Arc::new(AtomicU64::new(0));
    let counter = frames.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        counter.fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
    // Taken and handled here rather than dropped: GStreamer 1.22 logs a critical when a
    // probe drops an upstream event (fixed in 1.24.8).
    pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, |_, info| {
        let key_unit =
            matches!(&info.data, Some(gst::PadProbeData::Event(e)) if gstreamer_video::ForceKeyUnitEvent::is(e));
        if key_unit {
            info.data.take();
            return gst::PadProbeReturn::Handled;
        }
        gst::PadProbeReturn::Ok
    });
    Ok(frames)
}

/// A webrtcbin with ICE on 127.0.0.1 only, fed by one branch of each tee.
fn add_publisher(pipeline: &gst::Pipeline, video: &gst::Bin, audio: &gst::Bin, k: usize) -> Result<gst::Element> {
    let webrtc = gst::ElementFactory::make("webrtcbin")
        .name(format!("webrtc{k}"))
        .property_from_str("bundle-policy", "max-bundle")
        .build()?;
    let ice: gst_webrtc::WebRTCICE = webrtc.property("ice-agent");
    // libnice never gathers the loopback address by itself; an explicit local address is
    // then the only host candidate (the action signal wraps nice_agent_add_local_address).
    if !ice.emit_by_name::<bool>("add-local-ip-address", &[&"127.0.0.1"]) {
        return Err("the ICE agent refused 127.0.0.1".into());
    }
    ice.set_property("ice-tcp", false);
    pipeline.add(&webrtc)?;
    let h264 = gst::Caps::builder("application/x-rtp")
        .field("media", "video")
        .field("encoding-name", "H264")
        .field("payload", 96i32)
        .field("clock-rate", 90_000i32)
        .field("packetization-mode", "1")
        .build();
    let opus = gst::Caps::builder("application/x-rtp")
        .field("media", "audio")
        .field("encoding-name", "OPUS")
        .field("payload", 111i32)
        .field("clock-rate", 48_000i32)
        .field("encoding-params", "2")
        .build();
    let branches = [
        (video, "vtee", "rtph264pay config-interval=-1 aggregate-mode=zero-latency pt=96", h264, true),
        (audio, "atee", "rtpopuspay pt=111", opus, false),
    ];
    for (bin, tee, payloader, caps, nack) in branches {
        let branch = gst::parse::bin_from_description(&format!("queue ! {payloader} ! capsfilter name=caps"), true)?;
        branch.by_name("caps").ok_or("no capsfilter")?.set_property("caps", &caps);
        pipeline.add(&branch)?;
        let tee = bin.by_name(tee).ok_or("no tee")?;
        let tee_pad = tee.request_pad_simple("src_%u").ok_or("tee gave no pad")?;
        let ghost = gst::GhostPad::with_target(&tee_pad)?;
        bin.add_pad(&ghost)?;
        ghost.link(&branch.static_pad("sink").ok_or("no branch sink")?)?;
        let sink = webrtc.request_pad_simple("sink_%u").ok_or("webrtcbin gave no sink pad")?;
        branch.static_pad("src").ok_or("no branch src")?.link(&sink)?;
        let transceiver: gst_webrtc::WebRTCRTPTransceiver = sink.property("transceiver");
        transceiver.set_direction(gst_webrtc::WebRTCRTPTransceiverDirection::Sendonly);
        if nack {
            transceiver.set_property("do-nack", true);
        }
    }
    Ok(webrtc)
}

/// Offer (after caps reached every sink pad and ICE gathered), POST, answer; returns Location.
async fn negotiate(client: &reqwest::Client, webrtc: &gst::Element, url: &str) -> Result<String> {
    poll(STEP, "caps on the webrtcbin sink pads", || webrtc.sink_pads().iter().all(|p| p.current_caps().is_some()))
        .await?;
    let reply = call(webrtc, "create-offer", None::<gst::Structure>.to_send_value()).await?;
    let offer = reply
        .and_then(|s| s.get::<gst_webrtc::WebRTCSessionDescription>("offer").ok())
        .ok_or("create-offer gave no offer")?;
    call(webrtc, "set-local-description", offer.to_send_value()).await?;
    poll(STEP, "ICE gathering", || {
        webrtc.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state")
            == gst_webrtc::WebRTCICEGatheringState::Complete
    })
    .await?;
    let local = webrtc
        .property::<Option<gst_webrtc::WebRTCSessionDescription>>("local-description")
        .ok_or("no local description")?;
    let sdp = local.sdp().as_text()?;
    let response = client.post(url).header("Content-Type", "application/sdp").body(sdp).send().await?;
    let status = response.status();
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = response.text().await?;
    if status.as_u16() != 201 {
        return Err(format!("HTTP {status}: {body}").into());
    }
    let location = location.ok_or("201 without Location")?;
    let message =
        gst_sdp::SDPMessage::parse_buffer(body.as_bytes()).map_err(|e| format!("answer does not parse: {e}"))?;
    let answer = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, message);
    call(webrtc, "set-remote-description", answer.to_send_value()).await?;
    Ok(location)
}

/// How many publishers reached `connected` within [`CONNECT`].
async fn wait_connected(publishers: &[Publisher]) -> usize {
    let count = || {
        publishers
            .iter()
            .filter(|p| {
                p.webrtc.property::<gst_webrtc::WebRTCPeerConnectionState>("connection-state")
                    == gst_webrtc::WebRTCPeerConnectionState::Connected
            })
            .count()
    };
    let _ = poll(CONNECT, "all connected", || count() == publishers.len()).await;
    count()
}

/// Emits a promise-taking webrtcbin action and waits (bounded) for the reply.
async fn call(webrtc: &gst::Element, signal: &str, arg: glib::SendValue) -> Result<Option<gst::Structure>> {
    let (tx, rx) = oneshot::channel();
    let promise = gst::Promise::with_change_func(move |reply| {
        let _ = tx.send(reply.map(|s| s.map(|s| s.to_owned())).map_err(|e| format!("{e:?}")));
    });
    webrtc.emit_by_name::<()>(signal, &[&arg, &promise]);
    let reply = tokio::time::timeout(STEP, rx).await.map_err(|_| format!("{signal}: no reply within {STEP:?}"))??;
    let reply = reply.map_err(|e| format!("{signal}: {e}"))?;
    if let Some(error) = reply.as_ref().and_then(|s| s.get::<glib::Error>("error").ok()) {
        return Err(format!("{signal}: {error}").into());
    }
    Ok(reply)
}

async fn poll(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn json_string(s: Option<&str>) -> String {
    match s {
        None => "null".into(),
        Some(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', " ")),
    }
}

/// CPU seconds (user + system) this process used so far, from /proc/self/stat.
fn process_cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let fields: Vec<&str> = stat.rsplit_once(')').ok_or("bad /proc/self/stat")?.1.split_whitespace().collect();
    let ticks: u64 =
        fields.get(11).ok_or("no utime")?.parse::<u64>()? + fields.get(12).ok_or("no stime")?.parse::<u64>()?;
    // USER_HZ is 100 on Linux (sysconf(_SC_CLK_TCK)); the Python side uses the real value.
    Ok(ticks as f64 / 100.0)
}

/// `paced`: the Opus frames enter the codec at real time (`identity sync=true`), as they
/// reach a live conversion, so the thread wakes once per frame instead of running flat out.
fn codec_cost(file: &str, middle: &str, paced: bool) -> Result<()> {
    interop_gateway::pipeline::init();
    let pace = if paced { "identity sync=true ! " } else { "" };
    let description =
        format!("filesrc location=\"{file}\" ! oggdemux ! opusparse ! {pace}{middle} ! fakesink name=sink sync=false");
    let pipeline = gst::parse::launch(&description)?.downcast::<gst::Pipeline>().map_err(|_| "not a pipeline")?;
    let sink = pipeline.by_name("sink").ok_or("no sink")?;
    let out = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let seen = out.clone();
    sink.static_pad("sink").ok_or("no sink pad")?.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(buffer) = info.buffer() {
            seen.0.fetch_add(1, Ordering::Relaxed);
            if let Some(end) = buffer.pts().zip(buffer.duration()).map(|(p, d)| p + d) {
                seen.1.fetch_max(end.nseconds(), Ordering::Relaxed);
            }
        }
        gst::PadProbeReturn::Ok
    });
    let bus = pipeline.bus().ok_or("no bus")?;
    let cpu0 = process_cpu_seconds()?;
    let wall = Instant::now();
    pipeline.set_state(gst::State::Playing)?;
    let outcome = match bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(600), &[gst::MessageType::Eos, gst::MessageType::Error])
    {
        Some(msg) => match msg.view() {
            gst::MessageView::Eos(_) => Ok(()),
            gst::MessageView::Error(e) => Err(format!("{}: {:?}", e.error(), e.debug())),
            _ => Ok(()),
        },
        None => Err("no EOS within 600 s".into()),
    };
    let cpu = process_cpu_seconds()? - cpu0;
    let wall = wall.elapsed().as_secs_f64();
    pipeline.set_state(gst::State::Null)?;
    outcome?;
    println!(
        "{{\"cpu_s\":{cpu:.3},\"wall_s\":{wall:.3},\"buffers_out\":{},\"audio_s\":{:.3}}}",
        out.0.load(Ordering::Relaxed),
        out.1.load(Ordering::Relaxed) as f64 / 1e9
    );
    Ok(())
}
