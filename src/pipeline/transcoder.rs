//! A conversion running in GStreamer: frames of one codec go into an `appsrc`, through the
//! decode and encode fragments from `pipelines/`, and come out of an `appsink` as frames of
//! the target codec. The element code stays thin; what to build comes from the planner.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::caps::{input_caps, output_info};
use crate::media::{Codec, Frame, TrackInfo, TrackKind, Ts};

#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error("cannot build pipeline `{description}`: {reason}")]
    Build { description: String, reason: String },
    #[error("pipeline would not start: {0}")]
    Start(String),
    #[error("pipeline stopped taking input: {0}")]
    Push(String),
}

/// Where output frames and errors go. Called on GStreamer's streaming threads: must not block.
pub struct TranscodeSink {
    pub on_frame: Box<dyn Fn(Frame) + Send + Sync>,
    pub on_error: Box<dyn Fn(String) + Send + Sync>,
}

/// Asks a running conversion's encoder for a keyframe (cheap to clone, usable from any thread).
#[derive(Clone)]
pub struct KeyframeRequester(gst::Pad);

impl KeyframeRequester {
    pub fn request(&self) {
        let event = gstreamer_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build();
        // Pushed upstream from the appsink's sink pad: the encoder makes its next frame a
        // keyframe.
        self.0.push_event(event);
    }
}

pub struct Transcoder {
    pipeline: gst::Pipeline,
    keyframes: KeyframeRequester,
    src: gst_app::AppSrc,
    input: Arc<TrackInfo>,
    /// What a restart builds again (see [`Transcoder::push`]).
    name: String,
    middle: String,
    target: Codec,
    sink: Arc<TranscodeSink>,
    restarts: u64,
}

/// One built and playing pipeline.
struct Running {
    pipeline: gst::Pipeline,
    keyframes: KeyframeRequester,
    src: gst_app::AppSrc,
}

impl Transcoder {
    /// Builds and starts `appsrc ! {middle} ! appsink` for frames like `input`, producing
    /// `target` frames. Must run inside a tokio runtime (the bus is watched by a task).
    pub fn start(
        name: &str,
        middle: &str,
        input: Arc<TrackInfo>,
        target: Codec,
        sink: TranscodeSink,
    ) -> Result<Transcoder, TranscodeError> {
        let sink = Arc::new(sink);
        let Running { pipeline, keyframes, src } = build(name, middle, &input, target, sink.clone())?;
        let (name, middle) = (name.to_string(), middle.to_string());
        Ok(Transcoder { pipeline, keyframes, src, input, name, middle, target, sink, restarts: 0 })
    }

    /// Feeds one input frame (never blocks). New input caps are set on the appsrc; audio whose
    /// parameters change (sample rate, channels, codec configuration: a publisher that took
    /// the stream over) restarts the pipeline instead, since decoders and encoders do not all
    /// follow a mid-stream rate change: its output goes on, on the same timeline.
    pub fn push(&mut self, frame: &Frame) -> Result<(), TranscodeError> {
        if !Arc::ptr_eq(&self.input, &frame.info) {
            let changed = *self.input != *frame.info;
            self.input = frame.info.clone();
            if changed && frame.kind() == TrackKind::Audio {
                self.restart()?;
            } else {
                self.src.set_caps(Some(&input_caps(&self.input)));
            }
        }
        let mut buffer = gst::Buffer::from_slice(frame.data.clone());
        {
            let b = buffer.get_mut().expect("a new buffer is writable");
            b.set_pts(clock_time(frame.pts));
            b.set_dts(clock_time(frame.dts));
            if frame.kind() == TrackKind::Video && !frame.keyframe {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        self.src.push_buffer(buffer).map(|_| ()).map_err(|e| TranscodeError::Push(format!("{e:?}")))
    }

    /// Builds the pipeline again for the current input and stops the old one (off this thread:
    /// stopping joins its streaming threads).
    fn restart(&mut self) -> Result<(), TranscodeError> {
        self.restarts += 1;
        let name = format!("{}-r{}", self.name, self.restarts);
        let running = build(&name, &self.middle, &self.input, self.target, self.sink.clone())?;
        tracing::info!(pipeline = %name, input = ?self.input, "conversion input changed; pipeline restarted");
        let old = std::mem::replace(&mut self.pipeline, running.pipeline);
        self.src = running.src;
        self.keyframes = running.keyframes;
        let stop = move || super::live::stop_now(&old);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn_blocking(stop)),
            Err(_) => stop(),
        }
        Ok(())
    }

    /// How many times the input changed so that the pipeline was built again.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    pub fn keyframe_requester(&self) -> KeyframeRequester {
        self.keyframes.clone()
    }

    /// Bytes queued in the appsrc, not yet taken by the pipeline.
    pub fn queued_bytes(&self) -> u64 {
        self.src.current_level_bytes()
    }
}

/// Builds and starts `appsrc ! {middle} ! appsink` for frames like `input`.
fn build(
    name: &str,
    middle: &str,
    input: &Arc<TrackInfo>,
    target: Codec,
    sink: Arc<TranscodeSink>,
) -> Result<Running, TranscodeError> {
    super::init();
    let description = format!("appsrc name=src format=time is-live=true ! {middle} ! appsink name=sink sync=false");
    let build_err = |reason: String| TranscodeError::Build { description: description.clone(), reason };
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| build_err(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| build_err("not a pipeline".into()))?;
    pipeline.set_property("name", name);
    let src = by_name::<gst_app::AppSrc>(&pipeline, "src").ok_or_else(|| build_err("no appsrc".into()))?;
    let appsink = by_name::<gst_app::AppSink>(&pipeline, "sink").ok_or_else(|| build_err("no appsink".into()))?;
    src.set_caps(Some(&input_caps(input)));
    // Unbounded here; the feeder bounds what it queues (see `queued_bytes`).
    src.set_max_bytes(0);

    let on_sample = sink.clone();
    let last_info: Mutex<Option<(gst::Caps, Arc<TrackInfo>)>> = Mutex::new(None);
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |appsink| {
                let sample = appsink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(frame) = frame_from_sample(&sample, target, &last_info) {
                    (on_sample.on_frame)(frame);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );

    let keyframes =
        KeyframeRequester(appsink.static_pad("sink").ok_or_else(|| build_err("appsink has no pad".into()))?);
    watch_bus(&pipeline, sink);
    super::live::hold(&pipeline);
    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        super::live::stop_now(&pipeline);
        return Err(TranscodeError::Start(e.to_string()));
    }
    Ok(Running { pipeline, keyframes, src })
}

impl Drop for Transcoder {
    fn drop(&mut self) {
        super::live::stop_now(&self.pipeline);
    }
}

fn by_name<T: IsA<gst::Element>>(pipeline: &gst::Pipeline, name: &str) -> Option<T> {
    pipeline.by_name(name)?.downcast::<T>().ok()
}

fn clock_time(ts: Ts) -> Option<gst::ClockTime> {
    (ts.0 >= 0).then(|| gst::ClockTime::from_nseconds(ts.0 as u64))
}

fn frame_from_sample(
    sample: &gst::Sample,
    target: Codec,
    last_info: &Mutex<Option<(gst::Caps, Arc<TrackInfo>)>>,
) -> Option<Frame> {
    let buffer = sample.buffer()?;
    let caps = sample.caps()?;
    let info = {
        let mut last = last_info.lock().unwrap_or_else(|e| e.into_inner());
        match last.as_ref() {
            Some((c, info)) if c.as_ref() == caps => info.clone(),
            _ => {
                let info = Arc::new(output_info(caps, target)?);
                *last = Some((caps.to_owned(), info.clone()));
                info
            }
        }
    };
    // Running time, not raw buffer time: encoders may shift their segment (x264enc by 1000
    // hours so that DTS never goes below zero). Our appsrc segment starts at 0, so running
    // time is the stream's own timeline again.
    let segment = sample.segment().and_then(|s| s.downcast_ref::<gst::ClockTime>().cloned());
    let running = |t: gst::ClockTime| -> Option<Ts> {
        match &segment {
            Some(seg) => match seg.to_running_time_full(t)? {
                gst::Signed::Positive(r) => Some(Ts(r.nseconds() as i64)),
                gst::Signed::Negative(r) => Some(Ts(-(r.nseconds() as i64))),
            },
            None => Some(Ts(t.nseconds() as i64)),
        }
    };
    let pts = running(buffer.pts().or(buffer.dts())?)?;
    let dts = buffer.dts().and_then(running).unwrap_or(pts);
    let map = buffer.map_readable().ok()?;
    let keyframe = info.kind() == TrackKind::Audio || !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
    Some(Frame::new(info, dts, pts, keyframe, Bytes::copy_from_slice(map.as_slice())))
}

/// Routes bus errors to the sink's error callback (as our error, never a panic).
fn watch_bus(pipeline: &gst::Pipeline, sink: Arc<TranscodeSink>) {
    let Some(bus) = pipeline.bus() else { return };
    let mut messages = bus.stream();
    let name = pipeline.name();
    tokio::spawn(async move {
        while let Some(msg) = messages.next().await {
            match msg.view() {
                gst::MessageView::Error(err) => {
                    let text = format!("{}: {}", err.error(), err.debug().unwrap_or_default());
                    tracing::warn!(pipeline = %name, error = %text, "conversion failed");
                    (sink.on_error)(text);
                    break;
                }
                gst::MessageView::Eos(_) => break,
                _ => {}
            }
        }
    });
}
