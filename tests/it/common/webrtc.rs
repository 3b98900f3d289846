//! Real WebRTC peers for the tests, built on GStreamer's webrtcbin in this process.
//!
//! - [`WhipPublisher`]: sends H.264 (or VP8) + Opus test signals to a WHIP endpoint.
//! - [`WhepViewer`]: receives from a WHEP endpoint, decodes and counts frames and audio buffers.
//! - [`LoopbackEndpoint`]: a stand-in "gateway" on 127.0.0.1 whose WHIP endpoint answers with a
//!   receiving webrtcbin ([`LoopbackAnswerer`]) and whose WHEP endpoint answers with a sending
//!   one ([`LoopbackSender`]); it answers CORS like the real gateway must. Used by the tooling's
//!   self-tests and by the Chromium tests that run without the gateway.
//!
//! ICE is confined to 127.0.0.1 on every peer: the libnice agent inside webrtcbin is given
//! 127.0.0.1 as its only local address (see [`restrict_ice_to`]), ICE-TCP is off, and
//! `bundle-policy=max-bundle`, so every SDP carries exactly one `127.0.0.1 <port> typ host`
//! candidate (check with [`candidate_addresses`]).
//!
//! Every wait is bounded; GStreamer callbacks never block (they hand results over channels and
//! atomics); bus errors surface as `anyhow` errors from the next wait or from
//! [`Peer::check`]. Pipelines go to NULL on drop; WHIP/WHEP sessions are DELETEd on drop.

mod endpoint;
mod ice;
mod media;
mod peer;
mod sdp;
mod sessions;

use std::sync::Once;

pub use endpoint::{LoopbackAnswerer, LoopbackEndpoint, LoopbackSender, LoopbackSession};
pub use ice::{candidate_addresses, expect_loopback_candidates, restrict_ice_to};
pub use media::{ReceiveCounters, SendCounters, VideoCodec, VideoFormat};
pub use peer::Peer;
pub use sdp::{is_constrained_baseline, offered_media, OfferedCodec, OfferedMedia};
pub use sessions::{describe_received, Rejected, WhepOptions, WhepViewer, WhipOptions, WhipPublisher};

/// Initialises GStreamer once per test process.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Err(error) = gstreamer::init() {
            panic!("gstreamer::init failed: {error}");
        }
    });
}
