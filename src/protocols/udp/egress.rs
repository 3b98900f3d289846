//! The sending pipeline of one UDP output: per track `appsrc ! [parser !] payloader` into
//! `rtpbin` (sender reports for lip sync), RTP to `host:port` and RTCP to `host:port+1`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::chains;
use super::error::UdpError;
use super::metrics::UdpMetrics;
use super::running::Running;
use super::sdp_out::OutputTrack;
use crate::media::{Frame, TrackInfo, TrackKind};
use crate::pipeline::input_caps;

/// One track being sent.
struct Output {
    kind: TrackKind,
    src: gst_app::AppSrc,
    info: Option<Arc<TrackInfo>>,
}

/// A running sending pipeline; dropping it stops the pipeline.
pub struct Sender {
    running: Running,
    outputs: Vec<Output>,
    packets: Arc<AtomicU64>,
}

impl Sender {
    /// Builds and starts the pipeline sending `tracks` to `host`.
    pub fn start(
        name: &str,
        tracks: &[OutputTrack],
        host: IpAddr,
        metrics: Arc<UdpMetrics>,
    ) -> Result<Sender, UdpError> {
        crate::pipeline::init();
        let fail = |e: String| UdpError::Pipeline(e);
        let pipeline = gst::Pipeline::with_name(name);
        let rtpbin = gst::ElementFactory::make("rtpbin").name("rtpbin").build().map_err(|e| fail(e.to_string()))?;
        pipeline.add(&rtpbin).map_err(|e| fail(e.to_string()))?;
        let packets = Arc::new(AtomicU64::new(0));
        let mut outputs = Vec::new();
        for (session, track) in (0u32..).zip(tracks) {
            let description = chains::payload(track.codec, track.pt);
            let bin = gst::parse::bin_from_description(&description, true)
                .map_err(|e| fail(format!("{description}: {e}")))?;
            let src = bin
                .by_name("src")
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
                .ok_or_else(|| fail("no appsrc".into()))?;
            // Unbounded; the feeder holds back when the level grows (see `queued_bytes`).
            src.set_max_bytes(0);
            pipeline.add(&bin).map_err(|e| fail(e.to_string()))?;
            let rtp_sink = rtpbin
                .request_pad_simple(&format!("send_rtp_sink_{session}"))
                .ok_or_else(|| fail("rtpbin gave no send pad".into()))?;
            let out = bin.static_pad("src").ok_or_else(|| fail("payloader has no source pad".into()))?;
            out.link(&rtp_sink).map_err(|e| fail(format!("{e:?}")))?;
            let rtp_src =
                rtpbin.static_pad(&format!("send_rtp_src_{session}")).ok_or_else(|| fail("no send_rtp_src".into()))?;
            let rtp_out = udpsink(host, track.port).map_err(fail)?;
            pipeline.add(&rtp_out).map_err(|e| fail(e.to_string()))?;
            link_to(&rtp_src, &rtp_out).map_err(fail)?;
            count_packets(&rtp_out, packets.clone(), metrics.clone());
            let rtcp_src = rtpbin
                .request_pad_simple(&format!("send_rtcp_src_{session}"))
                .ok_or_else(|| fail("rtpbin gave no RTCP pad".into()))?;
            let rtcp_out = udpsink(host, track.port.saturating_add(1)).map_err(fail)?;
            pipeline.add(&rtcp_out).map_err(|e| fail(e.to_string()))?;
            link_to(&rtcp_src, &rtcp_out).map_err(fail)?;
            outputs.push(Output { kind: track.kind, src, info: None });
        }
        let running = Running::start(pipeline).map_err(UdpError::Pipeline)?;
        let sender = Sender { running, outputs, packets };
        Ok(sender)
    }

    /// The pipeline's running time now, in nanoseconds.
    pub fn running_time(&self) -> u64 {
        self.running.pipeline().current_running_time().map(|t| t.nseconds()).unwrap_or(0)
    }

    /// RTP packets sent so far.
    pub fn packets(&self) -> Arc<AtomicU64> {
        self.packets.clone()
    }

    /// Bytes waiting in the appsrcs.
    pub fn queued_bytes(&self) -> u64 {
        self.outputs.iter().map(|o| o.src.current_level_bytes()).max().unwrap_or(0)
    }

    /// Sends one frame stamped with running times (ns); frames of a track not sent are skipped.
    pub fn push(&mut self, frame: &Frame, dts: u64, pts: u64) -> Result<(), String> {
        let Some(output) = self.outputs.iter_mut().find(|o| o.kind == frame.kind()) else {
            return Ok(());
        };
        if !output.info.as_ref().is_some_and(|i| Arc::ptr_eq(i, &frame.info)) {
            output.src.set_caps(Some(&input_caps(&frame.info)));
            output.info = Some(frame.info.clone());
        }
        let mut buffer = gst::Buffer::from_slice(frame.data.clone());
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::from_nseconds(pts));
            b.set_dts(gst::ClockTime::from_nseconds(dts));
            if frame.kind() == TrackKind::Video && !frame.keyframe {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        output.src.push_buffer(buffer).map(|_| ()).map_err(|e| format!("the sending pipeline stopped ({e:?})"))
    }

    /// Stops the pipeline (off the async workers) and waits until it has; the ports are free
    /// once this returns.
    pub async fn stop(&self) {
        self.running.stop().await
    }

    /// The next error the pipeline reports; pending forever if none does.
    pub async fn next_error(&mut self) -> String {
        self.running.next_error().await
    }
}

fn udpsink(host: IpAddr, port: u16) -> Result<gst::Element, String> {
    gst::ElementFactory::make("udpsink")
        .property("host", host.to_string())
        .property("port", i32::from(port))
        // Frames arrive at the pace of the source; the cached GOP goes out at once.
        .property("sync", false)
        .property("async", false)
        .build()
        .map_err(|e| e.to_string())
}

fn link_to(src: &gst::Pad, sink: &gst::Element) -> Result<(), String> {
    let pad = sink.static_pad("sink").ok_or("udpsink has no sink pad")?;
    src.link(&pad).map(|_| ()).map_err(|e| format!("{}: {e:?}", src.name()))
}

fn count_packets(sink: &gst::Element, packets: Arc<AtomicU64>, metrics: Arc<UdpMetrics>) {
    if let Some(pad) = sink.static_pad("sink") {
        crate::pipeline::buffer_count::count_buffers(&pad, move |n| {
            packets.fetch_add(n, Ordering::Relaxed);
            metrics.add_rtp_sent(n);
        });
    }
}
