//! GStreamer: the fragments from `pipelines/` and the conversions built from them.

mod caps;
pub mod elements;
pub mod fragments;
mod rtp_guard;
mod transcoder;

pub use caps::{input_caps, output_info};
pub use fragments::*;
pub use rtp_guard::guard_h264_rtp;
pub use transcoder::{KeyframeRequester, TranscodeError, TranscodeSink, Transcoder};

/// Initializes GStreamer once (cheap after the first call).
pub fn init() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        if let Err(e) = gstreamer::init() {
            tracing::error!(error = %e, "GStreamer failed to initialize");
            return;
        }
        if let Err(e) = elements::register() {
            tracing::error!(error = %e, "registering our GStreamer elements failed");
        }
    });
}

/// Stops `pipeline` (state Null) without blocking an async worker: stopping joins the
/// streaming threads, so inside a tokio runtime it runs on the blocking pool (for `Drop`
/// impls, which cannot await).
pub fn stop_in_background(pipeline: gstreamer::Pipeline) {
    use gstreamer::prelude::*;
    let stop = move || {
        let _ = pipeline.set_state(gstreamer::State::Null);
    };
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => drop(rt.spawn_blocking(stop)),
        Err(_) => stop(),
    }
}
