//! GStreamer: the fragments from `pipelines/` and the conversions built from them.

pub mod alive;
pub mod buffer_count;
mod caps;
pub mod elements;
pub mod fragments;
pub mod live;
mod rtp_guard;
mod rtp_payload_guard;
mod transcoder;

pub use caps::{input_caps, output_info};
pub use fragments::*;
pub use live::stop_in_background;
pub use rtp_guard::guard_h264_rtp;
pub use rtp_payload_guard::guard_rtp_payload;
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
