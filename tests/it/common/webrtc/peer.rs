//! One webrtcbin in its own pipeline, with loopback-only ICE, test-signal sources and/or
//! counting decoders, and bounded async offer/answer steps.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use gst::glib;
use gst::prelude::*;
use gst_webrtc::{
    WebRTCICEGatheringState, WebRTCPeerConnectionState, WebRTCRTPTransceiver, WebRTCRTPTransceiverDirection,
    WebRTCSDPType, WebRTCSessionDescription, WebRTCStatsType,
};
use gstreamer as gst;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use tokio::sync::oneshot;

use super::ice::restrict_ice_to;
use super::media::{
    audio_branch, count_encoded, opus_caps, video_branch, ReceiveCounters, SendCounters, VideoCodec, VideoFormat,
};

/// How long one webrtcbin operation (offer, answer, description, stats) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// A webrtcbin peer. Build it with [`Peer::new`], add sources and/or receive transceivers,
/// [`Peer::play`], then negotiate with [`Peer::offer`] + [`Peer::apply_answer`] or
/// [`Peer::answer`]. The pipeline goes to NULL on drop.
pub struct Peer {
    pipeline: gst::Pipeline,
    webrtc: gst::Element,
    errors: Arc<Mutex<Vec<String>>>,
    /// What the encoders produced (sending peers).
    pub sent: Arc<SendCounters>,
    /// What the decoders produced (receiving peers).
    pub received: Arc<ReceiveCounters>,
}

impl Peer {
    /// A webrtcbin (`bundle-policy=max-bundle`, ICE on `ice_ip` only, no ICE-TCP) in a new
    /// pipeline named `name`; incoming streams are decoded and counted in [`Peer::received`].
    pub fn new(name: &str, ice_ip: &str) -> anyhow::Result<Peer> {
        super::init();
        let pipeline = gst::Pipeline::with_name(name);
        let webrtc = gst::ElementFactory::make("webrtcbin")
            .name("webrtc")
            .property_from_str("bundle-policy", "max-bundle")
            .build()
            .context("webrtcbin (gstreamer1.0-plugins-bad, gstreamer1.0-nice)")?;
        pipeline.add(&webrtc)?;
        restrict_ice_to(&webrtc, ice_ip)?;

        let errors = Arc::new(Mutex::new(Vec::new()));
        if let Some(bus) = pipeline.bus() {
            let errors = errors.clone();
            bus.set_sync_handler(move |_, message| {
                if let gst::MessageView::Error(error) = message.view() {
                    let source = message.src().map(|s| s.path_string().to_string()).unwrap_or_default();
                    let text = format!("{source}: {} ({:?})", error.error(), error.debug());
                    if let Ok(mut errors) = errors.lock() {
                        errors.push(text);
                    }
                }
                gst::BusSyncReply::Drop
            });
        }

        let received = Arc::new(ReceiveCounters::default());
        let weak_pipeline = pipeline.downgrade();
        let weak_received = Arc::downgrade(&received);
        webrtc.connect_pad_added(move |_, pad| {
            if pad.direction() != gst::PadDirection::Src {
                return;
            }
            if let (Some(pipeline), Some(received)) = (weak_pipeline.upgrade(), weak_received.upgrade()) {
                received.on_pad_added(&pipeline, pad);
            }
        });
        Ok(Peer { pipeline, webrtc, errors, sent: Arc::new(SendCounters::default()), received })
    }

    /// The webrtcbin element (for properties the helpers do not cover).
    pub fn webrtcbin(&self) -> &gst::Element {
        &self.webrtc
    }

    /// Adds a live test-pattern video source in `format`, encoded with `codec` on payload type
    /// `pt` (keyframes also whenever the remote sends PLI/FIR), on a sendonly transceiver with
    /// NACK.
    pub fn add_video_source(&self, codec: VideoCodec, pt: u32, format: VideoFormat) -> anyhow::Result<()> {
        self.add_source(&video_branch(codec, pt, format), &codec.rtp_caps(pt, None), true)
    }

    /// Adds a live sine source encoded with Opus on payload type `pt`, on a sendonly transceiver.
    pub fn add_audio_source(&self, pt: u32) -> anyhow::Result<()> {
        self.add_source(&audio_branch(pt), &opus_caps(pt), false)
    }

    fn add_source(&self, description: &str, rtp_caps: &gst::Caps, nack: bool) -> anyhow::Result<()> {
        let bin =
            gst::parse::bin_from_description(description, true).map_err(|e| anyhow!("parse {description}: {e:?}"))?;
        let capsfilter = bin.by_name("rtpcaps").ok_or_else(|| anyhow!("no rtpcaps in {description}"))?;
        capsfilter.set_property("caps", rtp_caps);
        count_encoded(&bin, &self.sent);
        self.pipeline.add(&bin)?;
        let sink = self.webrtc.request_pad_simple("sink_%u").ok_or_else(|| anyhow!("webrtcbin gave no sink pad"))?;
        let src = bin.static_pad("src").ok_or_else(|| anyhow!("source bin has no src pad"))?;
        src.link(&sink).map_err(|e| anyhow!("link source to webrtcbin: {e:?}"))?;
        let transceiver: WebRTCRTPTransceiver = sink.property("transceiver");
        transceiver.set_direction(WebRTCRTPTransceiverDirection::Sendonly);
        if nack {
            transceiver.set_property("do-nack", true);
        }
        bin.sync_state_with_parent()?;
        Ok(())
    }

    /// Adds a recvonly transceiver that offers `caps` (one structure per codec, in order of
    /// preference, each with `clock-rate`). NACK is on for video.
    pub fn add_receive_transceiver(&self, caps: &gst::Caps) -> anyhow::Result<()> {
        let transceiver = self
            .webrtc
            .emit_by_name::<WebRTCRTPTransceiver>("add-transceiver", &[&WebRTCRTPTransceiverDirection::Recvonly, caps]);
        let video = caps.structure(0).and_then(|s| s.get::<&str>("media").ok()) == Some("video");
        if video {
            transceiver.set_property("do-nack", true);
        }
        Ok(())
    }

    /// Sets the pipeline to PLAYING.
    pub fn play(&self) -> anyhow::Result<()> {
        self.pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| anyhow!("{}: PLAYING failed: {e:?}; {:?}", self.pipeline.name(), self.errors()))?;
        Ok(())
    }

    /// Creates an offer, sets it locally, waits for ICE gathering to complete and returns the
    /// local description's SDP (with all candidates).
    pub async fn offer(&self) -> anyhow::Result<String> {
        // Offer only once every source's RTP caps reached webrtcbin, so the offer carries what
        // is really sent (H.264 profile-level-id and sprop-parameter-sets, SSRCs).
        self.wait_for(
            STEP_TIMEOUT,
            "caps on every webrtcbin sink pad",
            |p| p.webrtc.sink_pads().iter().all(|pad| pad.current_caps().is_some()),
            |p| format!("{:?}", p.webrtc.sink_pads().iter().map(|pad| pad.current_caps()).collect::<Vec<_>>()),
        )
        .await?;
        let reply = self.call("create-offer", None::<gst::Structure>.to_send_value()).await?;
        let offer = reply
            .as_ref()
            .and_then(|s| s.get::<WebRTCSessionDescription>("offer").ok())
            .ok_or_else(|| anyhow!("create-offer gave no offer: {reply:?} (do all sink caps have clock-rate?)"))?;
        self.call("set-local-description", offer.to_send_value()).await?;
        self.local_sdp_after_gathering().await
    }

    /// Applies a remote offer, answers it, waits for ICE gathering and returns the answer SDP.
    pub async fn answer(&self, offer_sdp: &str) -> anyhow::Result<String> {
        let offer = description(WebRTCSDPType::Offer, offer_sdp)?;
        self.call("set-remote-description", offer.to_send_value()).await?;
        let reply = self.call("create-answer", None::<gst::Structure>.to_send_value()).await?;
        let answer = reply
            .as_ref()
            .and_then(|s| s.get::<WebRTCSessionDescription>("answer").ok())
            .ok_or_else(|| anyhow!("create-answer gave no answer: {reply:?}"))?;
        self.call("set-local-description", answer.to_send_value()).await?;
        self.local_sdp_after_gathering().await
    }

    /// Applies the remote answer to our offer.
    pub async fn apply_answer(&self, answer_sdp: &str) -> anyhow::Result<()> {
        let answer = description(WebRTCSDPType::Answer, answer_sdp)?;
        self.call("set-remote-description", answer.to_send_value()).await?;
        Ok(())
    }

    /// webrtcbin's `get-stats` (one structure per stats object, keyed by id).
    pub async fn stats(&self) -> anyhow::Result<gst::Structure> {
        self.call("get-stats", None::<gst::Pad>.to_send_value())
            .await?
            .ok_or_else(|| anyhow!("get-stats gave no reply"))
    }

    /// Sum of `field` (e.g. `bytes-sent`, `packets-received`) over the stats objects of `kind`
    /// (e.g. `OutboundRtp`, `InboundRtp`).
    pub async fn stats_sum(&self, kind: WebRTCStatsType, field: &str) -> anyhow::Result<u64> {
        let stats = self.stats().await?;
        let mut total = 0;
        for (_, value) in stats.iter() {
            let Ok(entry) = value.get::<gst::Structure>() else {
                continue;
            };
            if entry.get::<WebRTCStatsType>("type").ok() == Some(kind) {
                total += entry.get::<u64>(field).or_else(|_| entry.get::<u32>(field).map(u64::from)).unwrap_or(0);
            }
        }
        Ok(total)
    }

    /// webrtcbin's peer connection state.
    pub fn connection_state(&self) -> WebRTCPeerConnectionState {
        self.webrtc.property("connection-state")
    }

    /// The local description's SDP, once set.
    pub fn local_sdp(&self) -> Option<String> {
        sdp_of(&self.webrtc, "local-description")
    }

    /// The remote description's SDP, once set.
    pub fn remote_sdp(&self) -> Option<String> {
        sdp_of(&self.webrtc, "remote-description")
    }

    /// Sends an upstream force-key-unit event from the received video pad; webrtcbin's RTP
    /// session turns it into a PLI (or FIR) to the sender. False before video arrived.
    pub fn request_keyframe(&self) -> bool {
        let pad = self.received.video_pad.lock().ok().and_then(|p| p.clone());
        let Some(pad) = pad else { return false };
        let event = gstreamer_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build();
        pad.send_event(event)
    }

    /// Bus errors so far.
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Fails if the pipeline posted an error or the connection failed.
    pub fn check(&self) -> anyhow::Result<()> {
        let errors = self.errors();
        if !errors.is_empty() {
            bail!("{}: pipeline errors: {errors:#?}", self.pipeline.name());
        }
        if self.connection_state() == WebRTCPeerConnectionState::Failed {
            bail!("{}: peer connection failed", self.pipeline.name());
        }
        Ok(())
    }

    /// Polls `done` every 50 ms until it is true, failing after `timeout` (message names `what`
    /// and what `observe` reports) or as soon as [`Peer::check`] fails.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&Peer) -> bool,
        observe: impl Fn(&Peer) -> String,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check()?;
            if done(self) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{}: timed out after {timeout:?} waiting for {what}; now: {}",
                    self.pipeline.name(),
                    observe(self)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the peer connection is `connected`.
    pub async fn wait_connected(&self, timeout: Duration) -> anyhow::Result<()> {
        self.wait_for(
            timeout,
            "connection-state connected",
            |p| p.connection_state() == WebRTCPeerConnectionState::Connected,
            |p| format!("{:?}", p.connection_state()),
        )
        .await
    }

    /// Emits `signal(arg, promise)` on webrtcbin and waits (bounded) for the promise's reply;
    /// a reply carrying an `error` field becomes an error.
    async fn call(&self, signal: &str, arg: glib::SendValue) -> anyhow::Result<Option<gst::Structure>> {
        let (tx, rx) = oneshot::channel();
        let promise = gst::Promise::with_change_func(move |reply| {
            let reply = reply.map(|s| s.map(|s| s.to_owned())).map_err(|e| format!("{e:?}"));
            let _ = tx.send(reply);
        });
        self.webrtc.emit_by_name::<()>(signal, &[&arg, &promise]);
        let reply = match tokio::time::timeout(STEP_TIMEOUT, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => bail!("{signal}: promise dropped without reply"),
            Err(_) => bail!("{signal}: no reply within {STEP_TIMEOUT:?}; errors: {:?}", self.errors()),
        };
        let reply = reply.map_err(|e| anyhow!("{signal}: promise {e}"))?;
        if let Some(error) = reply.as_ref().and_then(|s| s.get::<glib::Error>("error").ok()) {
            bail!("{signal}: {error}");
        }
        self.check()?;
        Ok(reply)
    }

    async fn local_sdp_after_gathering(&self) -> anyhow::Result<String> {
        self.wait_for(
            STEP_TIMEOUT,
            "ICE gathering complete",
            |p| {
                p.webrtc.property::<WebRTCICEGatheringState>("ice-gathering-state") == WebRTCICEGatheringState::Complete
            },
            |p| format!("{:?}", p.webrtc.property::<WebRTCICEGatheringState>("ice-gathering-state")),
        )
        .await?;
        self.local_sdp().ok_or_else(|| anyhow!("no local description after gathering"))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(mut pad) = self.received.video_pad.lock() {
            pad.take();
        }
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some(bus) = self.pipeline.bus() {
            bus.unset_sync_handler();
        }
    }
}

/// Parses `sdp` into a session description of type `kind`.
pub fn description(kind: WebRTCSDPType, sdp: &str) -> anyhow::Result<WebRTCSessionDescription> {
    let message =
        gst_sdp::SDPMessage::parse_buffer(sdp.as_bytes()).map_err(|e| anyhow!("SDP does not parse ({e}):\n{sdp}"))?;
    Ok(WebRTCSessionDescription::new(kind, message))
}

fn sdp_of(webrtc: &gst::Element, property: &str) -> Option<String> {
    let description = webrtc.property::<Option<WebRTCSessionDescription>>(property)?;
    description.sdp().as_text().ok()
}
