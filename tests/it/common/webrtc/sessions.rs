//! WHIP publisher and WHEP viewer: a [`Peer`] plus the HTTP exchange (RFC 9725 style: POST the
//! offer as `application/sdp`, expect 201 + `Location` + the answer; DELETE the location to end).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{anyhow, Context};
use gstreamer_webrtc::WebRTCPeerConnectionState;
use reqwest::Url;

use super::ice::expect_loopback_candidates;
use super::media::{opus_caps, VideoCodec, VideoFormat};
use super::peer::Peer;

/// Bound on one HTTP request to the WHIP/WHEP endpoint.
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);

/// The endpoint refused the offer: the status and body it answered with. Returned (inside
/// `anyhow::Error`, use `downcast_ref`) by [`WhipPublisher::start`] / [`WhepViewer::start`].
#[derive(Debug, thiserror::Error)]
#[error("{url} answered HTTP {status}: {body}")]
pub struct Rejected {
    /// The URL posted to.
    pub url: String,
    /// The HTTP status (e.g. 400, 404, 406, 409).
    pub status: u16,
    /// The response body (the reason).
    pub body: String,
}

/// POSTs `offer` and returns the absolute session URL and the answer SDP.
async fn post_offer(url: &str, offer: &str) -> anyhow::Result<(Url, String)> {
    let base = Url::parse(url).with_context(|| format!("bad endpoint URL {url}"))?;
    let client = reqwest::Client::builder().timeout(HTTP_TIMEOUT).build()?;
    let response = client
        .post(base.clone())
        .header("Content-Type", "application/sdp")
        .body(offer.to_string())
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status().as_u16();
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = response.text().await.unwrap_or_default();
    if status != 201 {
        return Err(Rejected { url: url.to_string(), status, body }.into());
    }
    let location = location.ok_or_else(|| anyhow!("POST {url}: 201 without Location"))?;
    let location = base.join(&location).with_context(|| format!("bad Location {location:?}"))?;
    Ok((location, body))
}

/// DELETE `location`; returns the status.
async fn delete(location: &Url) -> anyhow::Result<u16> {
    let client = reqwest::Client::builder().timeout(HTTP_TIMEOUT).build()?;
    let response = client.delete(location.clone()).send().await.with_context(|| format!("DELETE {location}"))?;
    Ok(response.status().as_u16())
}

/// A synchronous, bounded DELETE for drop paths (plain HTTP only). Returns the status line.
fn delete_blocking(location: &Url) -> Option<String> {
    let host = location.host_str()?;
    let port = location.port_or_known_default()?;
    let mut stream = TcpStream::connect((host, port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!(
        "DELETE {} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        location.path()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut reply = [0u8; 256];
    let n = stream.read(&mut reply).ok()?;
    String::from_utf8_lossy(&reply[..n]).lines().next().map(str::to_string)
}

/// Options of a [`WhipPublisher`].
#[derive(Clone, Debug)]
pub struct WhipOptions {
    /// Video codec to send; `None` for audio only.
    pub video: Option<VideoCodec>,
    /// Whether to send Opus audio.
    pub audio: bool,
    /// Size, rate and keyframe interval of the video (default 320x240, 30 fps, GOP 30).
    pub format: VideoFormat,
    /// The only address ICE binds and announces.
    pub ice_ip: String,
}

impl Default for WhipOptions {
    fn default() -> Self {
        WhipOptions {
            video: Some(VideoCodec::H264),
            audio: true,
            format: VideoFormat::default(),
            ice_ip: "127.0.0.1".into(),
        }
    }
}

/// A WHIP publisher: a moving-ball test pattern (H.264 constrained baseline without B-frames,
/// or VP8; payload type 96, NACK/PLI/FIR offered) and a 48 kHz Opus sine (payload type 111) on
/// sendonly transceivers, bundled.
///
/// Dropping it DELETEs the session synchronously (bounded to 2 s); when the endpoint runs on
/// the same tokio runtime (a [`super::LoopbackEndpoint`]), use a multi-thread runtime or
/// [`WhipPublisher::stop`].
pub struct WhipPublisher {
    peer: Peer,
    location: Option<Url>,
    offer: String,
    answer: String,
}

impl WhipPublisher {
    /// Builds the peer, creates the offer (all candidates, only `ice_ip`), POSTs it to `url`
    /// (`.../whip/{stream}`) and applies the answer. Fails with [`Rejected`] on a non-201.
    pub async fn start(url: &str, opts: WhipOptions) -> anyhow::Result<WhipPublisher> {
        let peer = Peer::new("whip-publisher", &opts.ice_ip)?;
        if let Some(codec) = opts.video {
            peer.add_video_source(codec, 96, opts.format)?;
        }
        if opts.audio {
            peer.add_audio_source(111)?;
        }
        peer.play()?;
        let offer = peer.offer().await?;
        expect_loopback_candidates(&offer, "WHIP offer")?;
        let (location, answer) = post_offer(url, &offer).await?;
        // From here on, drop DELETEs the session.
        let mut publisher = WhipPublisher { peer, location: Some(location), offer, answer: String::new() };
        publisher.peer.apply_answer(&answer).await?;
        publisher.answer = answer;
        Ok(publisher)
    }

    /// The underlying peer (stats, state, errors).
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The offer that was POSTed.
    pub fn offer_sdp(&self) -> &str {
        &self.offer
    }

    /// The endpoint's answer.
    pub fn answer_sdp(&self) -> &str {
        &self.answer
    }

    /// The absolute session URL from `Location` (until stopped).
    pub fn location(&self) -> Option<&Url> {
        self.location.as_ref()
    }

    /// webrtcbin's connection state.
    pub fn connection_state(&self) -> WebRTCPeerConnectionState {
        self.peer.connection_state()
    }

    /// Waits until ICE+DTLS are connected.
    pub async fn wait_connected(&self, timeout: Duration) -> anyhow::Result<()> {
        self.peer.wait_connected(timeout).await
    }

    /// Video frames the encoder produced so far.
    pub fn frames_encoded(&self) -> u64 {
        self.peer.sent.video_frames.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Keyframes the encoder produced so far (periodic and forced by PLI/FIR).
    pub fn keyframes_encoded(&self) -> u64 {
        self.peer.sent.video_keyframes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// RTP bytes sent on the wire so far (webrtcbin's outbound-rtp stats).
    pub async fn bytes_sent(&self) -> anyhow::Result<u64> {
        self.peer.stats_sum(gstreamer_webrtc::WebRTCStatsType::OutboundRtp, "bytes-sent").await
    }

    /// DELETEs the session and stops the pipeline; returns the DELETE's HTTP status.
    pub async fn stop(mut self) -> anyhow::Result<u16> {
        let location = self.location.take().ok_or_else(|| anyhow!("already stopped"))?;
        delete(&location).await
    }
}

impl Drop for WhipPublisher {
    fn drop(&mut self) {
        if let Some(location) = self.location.take() {
            let _ = delete_blocking(&location);
        }
    }
}

/// Options of a [`WhepViewer`].
#[derive(Clone, Debug)]
pub struct WhepOptions {
    /// Video codecs offered, in order of preference (H.264 on payload type 96 with
    /// profile-level-id 42e01f, VP8 on 97); empty for no video.
    pub video: Vec<VideoCodec>,
    /// Whether to receive Opus audio (payload type 111).
    pub audio: bool,
    /// The only address ICE binds and announces.
    pub ice_ip: String,
}

impl Default for WhepOptions {
    fn default() -> Self {
        WhepOptions { video: vec![VideoCodec::H264, VideoCodec::Vp8], audio: true, ice_ip: "127.0.0.1".into() }
    }
}

/// A WHEP viewer: recvonly video and audio transceivers; whatever arrives is depayloaded,
/// decoded (avdec_h264 / vp8dec / opusdec) and counted.
///
/// Like a browser, its H.264 depayloader asks for a keyframe (PLI) on its own when it joins
/// without SPS/PPS. Dropping it DELETEs the session (see [`WhipPublisher`] on runtimes).
pub struct WhepViewer {
    peer: Peer,
    location: Option<Url>,
    offer: String,
    answer: String,
}

impl WhepViewer {
    /// Builds the peer, POSTs its offer to `url` (`.../whep/{stream}`) and applies the answer.
    /// Fails with [`Rejected`] on a non-201.
    pub async fn start(url: &str, opts: WhepOptions) -> anyhow::Result<WhepViewer> {
        let peer = Peer::new("whep-viewer", &opts.ice_ip)?;
        if !opts.video.is_empty() {
            let mut caps = gstreamer::Caps::new_empty();
            for codec in &opts.video {
                let (pt, profile) = match codec {
                    VideoCodec::H264 => (96, Some("42e01f")),
                    VideoCodec::Vp8 => (97, None),
                };
                caps.merge(codec.rtp_caps(pt, profile));
            }
            peer.add_receive_transceiver(&caps)?;
        }
        if opts.audio {
            peer.add_receive_transceiver(&opus_caps(111))?;
        }
        peer.play()?;
        let offer = peer.offer().await?;
        expect_loopback_candidates(&offer, "WHEP offer")?;
        let (location, answer) = post_offer(url, &offer).await?;
        let mut viewer = WhepViewer { peer, location: Some(location), offer, answer: String::new() };
        viewer.peer.apply_answer(&answer).await?;
        viewer.answer = answer;
        Ok(viewer)
    }

    /// The underlying peer (stats, state, errors).
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The offer that was POSTed.
    pub fn offer_sdp(&self) -> &str {
        &self.offer
    }

    /// The endpoint's answer.
    pub fn answer_sdp(&self) -> &str {
        &self.answer
    }

    /// The absolute session URL from `Location` (until stopped).
    pub fn location(&self) -> Option<&Url> {
        self.location.as_ref()
    }

    /// webrtcbin's connection state.
    pub fn connection_state(&self) -> WebRTCPeerConnectionState {
        self.peer.connection_state()
    }

    /// Decoded video frames so far.
    pub fn frames_decoded(&self) -> u64 {
        self.peer.received.frames()
    }

    /// Decoded audio buffers so far.
    pub fn audio_buffers(&self) -> u64 {
        self.peer.received.audio()
    }

    /// The video encoding that arrived (`H264`, `VP8`), once it did.
    pub fn video_codec(&self) -> Option<String> {
        self.peer.received.video_codec.lock().ok().and_then(|c| c.clone())
    }

    /// The audio encoding that arrived (`OPUS`), once it did.
    pub fn audio_codec(&self) -> Option<String> {
        self.peer.received.audio_codec.lock().ok().and_then(|c| c.clone())
    }

    /// Width and height of the decoded video, once a frame was decoded.
    pub fn video_size(&self) -> Option<(i32, i32)> {
        self.peer.received.video_size.lock().ok().and_then(|s| *s)
    }

    /// Asks the sender for a keyframe (PLI/FIR through webrtcbin's RTP session). False before
    /// any video arrived.
    pub fn request_keyframe(&self) -> bool {
        self.peer.request_keyframe()
    }

    /// Waits until at least `frames` video frames and `audio` audio buffers were decoded.
    pub async fn wait_decoded(&self, frames: u64, audio: u64, timeout: Duration) -> anyhow::Result<()> {
        self.peer
            .wait_for(
                timeout,
                &format!("{frames} video frames and {audio} audio buffers decoded"),
                |p| p.received.frames() >= frames && p.received.audio() >= audio,
                describe_received,
            )
            .await
    }

    /// DELETEs the session and stops the pipeline; returns the DELETE's HTTP status.
    pub async fn stop(mut self) -> anyhow::Result<u16> {
        let location = self.location.take().ok_or_else(|| anyhow!("already stopped"))?;
        delete(&location).await
    }
}

impl Drop for WhepViewer {
    fn drop(&mut self) {
        if let Some(location) = self.location.take() {
            let _ = delete_blocking(&location);
        }
    }
}

/// One line on what a receiving peer got so far, for timeout messages.
pub fn describe_received(peer: &Peer) -> String {
    let r = &peer.received;
    format!(
        "state {:?}, video {:?} {} frames {:?}, audio {:?} {} buffers, unhandled pads {:?}",
        peer.connection_state(),
        r.video_codec.lock().ok().and_then(|c| c.clone()),
        r.frames(),
        r.video_size.lock().ok().and_then(|s| *s),
        r.audio_codec.lock().ok().and_then(|c| c.clone()),
        r.audio(),
        r.unhandled.lock().map(|u| u.clone()).unwrap_or_default(),
    )
}
