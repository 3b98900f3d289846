//! WHIP/WHEP signalling for the probe's webrtcbins: ICE on 127.0.0.1 only, max-bundle, one
//! offer POSTed, the answer applied, the session DELETEd at the end.

use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use tokio::sync::oneshot;

use crate::Result;

/// Bound on one webrtcbin step and on one HTTP request.
pub const STEP: Duration = Duration::from_secs(10);

/// A webrtcbin with ICE confined to 127.0.0.1, max-bundle, and jitterbuffer `latency_ms`.
pub fn webrtcbin(name: &str, latency_ms: u32) -> Result<gst::Element> {
    let webrtc = gst::ElementFactory::make("webrtcbin")
        .name(name)
        .property_from_str("bundle-policy", "max-bundle")
        .property("latency", latency_ms)
        .build()?;
    let ice: gst_webrtc::WebRTCICE = webrtc.property("ice-agent");
    if !ice.emit_by_name::<bool>("add-local-ip-address", &[&"127.0.0.1"]) {
        return Err("the ICE agent refused 127.0.0.1".into());
    }
    ice.set_property("ice-tcp", false);
    // As a browser: no UPnP discovery (libnice would hold gathering back by its 200 ms timeout).
    if ice.find_property("agent").is_some() {
        let agent: glib::Object = ice.property("agent");
        if agent.find_property("upnp").is_some() {
            agent.set_property("upnp", false);
        }
    }
    Ok(webrtc)
}

/// Makes the process's DTLS certificate now (GStreamer makes one per process, on the first
/// DTLS element): a browser has its certificate before a page connects, so a viewer's first
/// picture is timed without it.
pub fn make_certificate() -> Result<()> {
    gst::ElementFactory::make("dtlsdec").build()?;
    Ok(())
}

/// RTP caps of what the probe sends or receives: H.264 (pt 96) or Opus (pt 111). A receiver
/// offers H.264 constrained baseline with level asymmetry (as browsers do).
pub fn rtp_caps(video: bool, receive: bool) -> gst::Caps {
    if video {
        let caps = gst::Caps::builder("application/x-rtp")
            .field("media", "video")
            .field("encoding-name", "H264")
            .field("payload", 96i32)
            .field("clock-rate", 90_000i32)
            .field("packetization-mode", "1");
        if receive {
            caps.field("profile-level-id", "42e01f").field("level-asymmetry-allowed", "1").build()
        } else {
            caps.build()
        }
    } else {
        gst::Caps::builder("application/x-rtp")
            .field("media", "audio")
            .field("encoding-name", "OPUS")
            .field("payload", 111i32)
            .field("clock-rate", 48_000i32)
            .field("encoding-params", "2")
            .build()
    }
}

/// Offer (after ICE gathering), POST to `url`, apply the answer. Returns the session URL.
pub async fn negotiate(client: &reqwest::Client, webrtc: &gst::Element, url: &str) -> Result<String> {
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
    let response = client
        .post(url)
        .header("Content-Type", "application/sdp")
        .body(local.sdp().as_text()?)
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e:?}"))?;
    let status = response.status();
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = response.text().await?;
    if status.as_u16() != 201 {
        return Err(format!("{url}: HTTP {status}: {body}").into());
    }
    let location = location.ok_or("201 without Location")?;
    let message =
        gst_sdp::SDPMessage::parse_buffer(body.as_bytes()).map_err(|e| format!("answer does not parse: {e}"))?;
    let answer = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, message);
    call(webrtc, "set-remote-description", answer.to_send_value()).await?;
    Ok(reqwest::Url::parse(url)?.join(&location)?.to_string())
}

/// DELETEs a session (best effort).
pub async fn delete(client: &reqwest::Client, location: &str) {
    let _ = client.delete(location).send().await;
}

/// Whether a webrtcbin reached `connected`.
pub fn connected(webrtc: &gst::Element) -> bool {
    webrtc.property::<gst_webrtc::WebRTCPeerConnectionState>("connection-state")
        == gst_webrtc::WebRTCPeerConnectionState::Connected
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

/// Waits until `done` holds, checking every 20 ms, at most `timeout`.
pub async fn poll(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
