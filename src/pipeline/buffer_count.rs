//! Counting what passes a pad: each buffer is one, a buffer list counts its buffers (RTP
//! payloaders push lists). The probe never holds anything back.

use gstreamer as gst;
use gstreamer::prelude::*;

/// Calls `on_count(n)` for every buffer (n = 1) or buffer list (n = its length) on `pad`.
pub fn count_buffers(pad: &gst::Pad, on_count: impl Fn(u64) + Send + Sync + 'static) {
    pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, info| {
        let n = match &info.data {
            Some(gst::PadProbeData::BufferList(list)) => list.len() as u64,
            _ => 1,
        };
        on_count(n);
        gst::PadProbeReturn::Ok
    });
}
