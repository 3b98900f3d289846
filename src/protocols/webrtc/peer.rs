//! One webrtcbin in its own pipeline, answering an offer: the part WHIP and WHEP share.
//!
//! Everything GStreamer reports (connection state, bus errors) arrives as [`PeerEvent`]s on a
//! channel the session's task reads; the callbacks only send, never block. Dropping the peer
//! stops its pipeline off the async runtime.

use std::time::Duration;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use tokio::sync::{mpsc, oneshot, watch};

use super::ice;
use crate::config::WebrtcSettings;

/// How long an answer waits for ICE gathering to complete (host candidates take ~200 ms).
const GATHER_TIMEOUT: Duration = Duration::from_secs(3);
/// How long webrtcbin may take for one step of the negotiation.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("cannot build the WebRTC pipeline: {0}")]
    Build(String),
    #[error("{0}")]
    Ice(#[from] ice::IceError),
    #[error("negotiation failed at {step}: {reason}")]
    Negotiation { step: &'static str, reason: String },
}

/// What happened to the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// ICE and DTLS are up: media can flow.
    Connected,
    /// The connection failed or closed, or the pipeline reported an error.
    Failed(String),
}

pub struct Peer {
    pub pipeline: gst::Pipeline,
    pub webrtcbin: gst::Element,
    events: mpsc::UnboundedReceiver<PeerEvent>,
    gathering: watch::Receiver<gst_webrtc::WebRTCICEGatheringState>,
}

impl Peer {
    /// Builds `webrtcbin` (max-bundle, ICE as configured, lip-sync on) and starts it.
    pub fn new(name: &str, settings: &WebrtcSettings) -> Result<Peer, PeerError> {
        crate::pipeline::init();
        let pipeline = gst::Pipeline::with_name(name);
        let webrtcbin = gst::ElementFactory::make("webrtcbin")
            .name("webrtcbin")
            .property_from_str("bundle-policy", "max-bundle")
            .build()
            .map_err(|e| PeerError::Build(e.to_string()))?;
        ice::configure(&webrtcbin, settings)?;
        if let Some(rtpbin) = webrtcbin.downcast_ref::<gst::Bin>().and_then(|b| b.by_name("rtpbin")) {
            // Timestamps follow the RTP timestamps from the first packet's arrival on ("synced",
            // no skew estimation): the gateway renders nothing and remuxes, so the media clock
            // is the right one. Slaving to arrival times ("slave", the default) compresses the
            // first seconds after a sender's start-up burst (or jumps back), which the audio
            // encoders downstream cannot follow; "none" starts at 0 and makes the jitterbuffer
            // treat every packet as late.
            rtpbin.set_property_from_str("buffer-mode", "synced");
            // Audio and video are aligned through the RTCP sender reports (the default; said
            // here because the one timeline of WHIP ingest depends on it).
            rtpbin.set_property_from_str("rtcp-sync", "always");
        }
        pipeline.add(&webrtcbin).map_err(|e| PeerError::Build(e.to_string()))?;

        let (tx, events) = mpsc::unbounded_channel();
        let state_tx = tx.clone();
        webrtcbin.connect_notify(Some("connection-state"), move |w, _| {
            use gst_webrtc::WebRTCPeerConnectionState as S;
            match w.property::<S>("connection-state") {
                S::Connected => drop(state_tx.send(PeerEvent::Connected)),
                S::Failed => drop(state_tx.send(PeerEvent::Failed("the connection failed (ICE or DTLS)".into()))),
                S::Closed => drop(state_tx.send(PeerEvent::Failed("the connection closed".into()))),
                _ => {}
            }
        });
        let (gather_tx, gathering) = watch::channel(gst_webrtc::WebRTCICEGatheringState::New);
        webrtcbin.connect_notify(Some("ice-gathering-state"), move |w, _| {
            gather_tx.send_replace(w.property("ice-gathering-state"));
        });
        if let Some(bus) = pipeline.bus() {
            let weak = pipeline.downgrade();
            let runtime = tokio::runtime::Handle::try_current().ok();
            bus.set_sync_handler(move |_, msg| {
                match msg.view() {
                    gst::MessageView::Error(err) => {
                        let source = msg.src().map(|s| s.path_string().to_string()).unwrap_or_default();
                        let _ = tx.send(PeerEvent::Failed(format!("{source}: {}", err.error())));
                    }
                    // Elements added while playing (webrtcbin's transports, the WHEP senders)
                    // ask for the latency to be distributed again; a pipeline leaves that to
                    // the application. Not on this (streaming) thread.
                    gst::MessageView::Latency(_) => {
                        if let Some(pipeline) = weak.upgrade() {
                            let recalculate = move || drop(pipeline.recalculate_latency());
                            match &runtime {
                                Some(rt) => drop(rt.spawn_blocking(recalculate)),
                                None => drop(std::thread::spawn(recalculate)),
                            }
                        }
                    }
                    _ => {}
                }
                gst::BusSyncReply::Drop
            });
        }
        crate::pipeline::live::hold(&pipeline);
        if let Err(e) = pipeline.set_state(gst::State::Playing) {
            crate::pipeline::stop_in_background(pipeline);
            return Err(PeerError::Build(format!("cannot start: {e}")));
        }
        Ok(Peer { pipeline, webrtcbin, events, gathering })
    }

    /// Adds a transceiver for one m-line; the answer matches it by these codec preferences.
    pub fn add_transceiver(
        &self,
        direction: gst_webrtc::WebRTCRTPTransceiverDirection,
        caps: &gst::Caps,
        nack: bool,
    ) -> gst_webrtc::WebRTCRTPTransceiver {
        let t: gst_webrtc::WebRTCRTPTransceiver = self.webrtcbin.emit_by_name("add-transceiver", &[&direction, caps]);
        if nack && t.find_property("do-nack").is_some() {
            t.set_property("do-nack", true);
        }
        t
    }

    /// Sets the offer, creates and sets the answer, waits (bounded) for ICE gathering and
    /// returns the answer with all its candidates.
    pub async fn answer(&self, offer: gst_sdp::SDPMessage) -> Result<String, PeerError> {
        let offer = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Offer, offer);
        self.call("set-remote-description", offer.to_value()).await?;
        let reply = self.call("create-answer", None::<gst::Structure>.to_value()).await?;
        let answer = reply
            .and_then(|s| s.get::<gst_webrtc::WebRTCSessionDescription>("answer").ok())
            .ok_or(PeerError::Negotiation { step: "create-answer", reason: "no answer".into() })?;
        self.call("set-local-description", answer.to_value()).await?;

        let mut gathering = self.gathering.clone();
        let complete = gathering.wait_for(|s| *s == gst_webrtc::WebRTCICEGatheringState::Complete);
        if tokio::time::timeout(GATHER_TIMEOUT, complete).await.is_err() {
            tracing::warn!(
                "ICE gathering did not complete in {GATHER_TIMEOUT:?}; answering with the candidates so far"
            );
        }
        let local = self
            .webrtcbin
            .property::<Option<gst_webrtc::WebRTCSessionDescription>>("local-description")
            .ok_or(PeerError::Negotiation { step: "local-description", reason: "none set".into() })?;
        local.sdp().as_text().map_err(|e| PeerError::Negotiation { step: "local-description", reason: e.to_string() })
    }

    /// Emits a webrtcbin action that replies through a promise, and waits for the reply.
    /// (The argument is used before the future is made: a `glib::Value` is not `Send`.)
    fn call(
        &self,
        signal: &'static str,
        arg: glib::Value,
    ) -> impl std::future::Future<Output = Result<Option<gst::Structure>, PeerError>> + Send + 'static {
        let rx = self.emit(signal, arg);
        async move {
            let fail = |reason: String| PeerError::Negotiation { step: signal, reason };
            let reply = tokio::time::timeout(STEP_TIMEOUT, rx)
                .await
                .map_err(|_| fail("timed out".into()))?
                .map_err(|_| fail("no reply".into()))?
                .map_err(fail)?;
            if let Some(err) = reply.as_ref().and_then(|s| s.get::<glib::Error>("error").ok()) {
                return Err(fail(err.to_string()));
            }
            Ok(reply)
        }
    }

    fn emit(&self, signal: &str, arg: glib::Value) -> oneshot::Receiver<Result<Option<gst::Structure>, String>> {
        let (tx, rx) = oneshot::channel();
        let promise = gst::Promise::with_change_func(move |reply| {
            let _ = tx.send(reply.map(|s| s.map(|s| s.to_owned())).map_err(|e| format!("{e:?}")));
        });
        self.webrtcbin.emit_by_name_with_values(signal, &[arg, promise.to_value()]);
        rx
    }

    /// Distributes the pipeline's latency again (off the async workers) and waits for it.
    ///
    /// Needed once the senders are linked: rtpsession stamps the packets it sends with their
    /// running time only once it knows the configured latency. Without it, its sender reports
    /// carry RTP timestamps that are off by the running time (growing with every report), and
    /// a receiver's lip-sync jumps by the difference whenever it pairs two reports of
    /// different ages.
    pub async fn recalculate_latency(&self) {
        let pipeline = self.pipeline.clone();
        let done = tokio::task::spawn_blocking(move || pipeline.recalculate_latency()).await;
        if !matches!(done, Ok(Ok(()))) {
            tracing::debug!("the pipeline's latency could not be recalculated");
        }
    }

    /// The next connection event; pending forever once the pipeline is gone.
    pub async fn next_event(&mut self) -> PeerEvent {
        match self.events.recv().await {
            Some(e) => e,
            None => std::future::pending().await,
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        crate::pipeline::stop_in_background(self.pipeline.clone());
    }
}
