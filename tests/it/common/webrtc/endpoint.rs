//! A stand-in WHIP/WHEP "gateway" on 127.0.0.1 for the tooling's self-tests and the Chromium
//! tests that run without the gateway: each WHIP offer is answered by a receiving webrtcbin
//! ([`LoopbackAnswerer`]), each WHEP offer by a sending one ([`LoopbackSender`]). It answers
//! CORS (preflight and `Access-Control-Expose-Headers: Location`) like the gateway must.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::Router;
use gstreamer_webrtc as gst_webrtc;
use gstreamer_webrtc::prelude::*;

use super::media::{opus_caps, VideoCodec, VideoFormat};
use super::peer::Peer;
use super::sdp::{is_constrained_baseline, offered_media};

/// A receiving webrtcbin that answers one offer (what a WHIP endpoint does): it decodes and
/// counts what arrives in [`Peer::received`].
pub struct LoopbackAnswerer {
    /// The peer; `peer.received` holds the counters.
    pub peer: Peer,
}

impl LoopbackAnswerer {
    /// Answers `offer` (all candidates in the answer, 127.0.0.1 only).
    pub async fn answer(offer: &str) -> anyhow::Result<(LoopbackAnswerer, String)> {
        let peer = Peer::new("loopback-answerer", "127.0.0.1")?;
        peer.play()?;
        let answer = peer.answer(offer).await?;
        Ok((LoopbackAnswerer { peer }, answer))
    }
}

/// A sending webrtcbin that answers one recvonly offer (what a WHEP endpoint does): 320x240@30
/// test pattern video in the first codec of the offer's video section it can send (H.264 with
/// packetization-mode 1, or VP8) and an Opus sine, on the offer's payload types.
pub struct LoopbackSender {
    /// The peer; `peer.sent` counts encoded frames and keyframes.
    pub peer: Peer,
    /// The video codec chosen from the offer.
    pub video: Option<VideoCodec>,
}

impl LoopbackSender {
    /// Answers `offer`, with a keyframe every `keyframe_interval` frames (and on PLI/FIR).
    pub async fn answer(offer: &str, keyframe_interval: u32) -> anyhow::Result<(LoopbackSender, String)> {
        let peer = Peer::new("loopback-sender", "127.0.0.1")?;
        let media = offered_media(offer);
        let video = media.iter().find(|m| m.kind == "video").and_then(|m| {
            // Our x264 stream is constrained baseline: webrtcbin only matches an offered H.264
            // payload type of that profile (it compares `profile=`), and aborts the process
            // (assertion `trans->stream`) when a linked transceiver matches nothing.
            m.codecs.iter().find_map(|c| match c.name.to_ascii_uppercase().as_str() {
                "H264" if c.fmtp.contains("packetization-mode=1") && is_constrained_baseline(&c.fmtp) => {
                    Some((VideoCodec::H264, c.pt))
                }
                "VP8" => Some((VideoCodec::Vp8, c.pt)),
                _ => None,
            })
        });
        let audio = media
            .iter()
            .find(|m| m.kind == "audio")
            .and_then(|m| m.codecs.iter().find(|c| c.name.eq_ignore_ascii_case("opus")).map(|c| c.pt));
        if video.is_none() && audio.is_none() {
            anyhow::bail!("offer has neither H.264 (packetization-mode=1) / VP8 video nor Opus audio");
        }
        if let Some((codec, pt)) = video {
            peer.add_video_source(codec, pt, VideoFormat { keyframe_interval, ..VideoFormat::default() })?;
            // Without a profile-level-id the caps intersect with whatever profile was offered.
            set_last_codec_preferences(&peer, &codec.rtp_caps(pt, None))?;
        }
        if let Some(pt) = audio {
            peer.add_audio_source(pt)?;
            set_last_codec_preferences(&peer, &opus_caps(pt))?;
        }
        peer.play()?;
        let answer = peer.answer(offer).await?;
        Ok((LoopbackSender { peer, video: video.map(|(c, _)| c) }, answer))
    }
}

/// Sets codec preferences on the transceiver of webrtcbin's most recent sink pad.
fn set_last_codec_preferences(peer: &Peer, caps: &gstreamer::Caps) -> anyhow::Result<()> {
    let pad = peer.webrtcbin().sink_pads().last().cloned().ok_or_else(|| anyhow!("no sink pad"))?;
    let transceiver: gst_webrtc::WebRTCRTPTransceiver = pad.property("transceiver");
    transceiver.set_codec_preferences(Some(caps));
    Ok(())
}

/// A live session of the endpoint.
pub enum LoopbackSession {
    /// A WHIP publish, answered by a receiver.
    Whip(Arc<LoopbackAnswerer>),
    /// A WHEP play, answered by a sender.
    Whep(Arc<LoopbackSender>),
}

#[derive(Default)]
struct EndpointState {
    sessions: Mutex<HashMap<String, (String, LoopbackSession)>>,
    next_id: AtomicU64,
    requests: Mutex<Vec<String>>,
    sender_keyframe_interval: u32,
}

impl EndpointState {
    fn log(&self, line: String) {
        if let Ok(mut requests) = self.requests.lock() {
            requests.push(line);
        }
    }
}

/// The stand-in gateway: `POST /whip/{stream}`, `POST /whep/{stream}`, `DELETE` on the
/// returned `Location` (`/whip/{stream}/{id}`), CORS on everything. Stops on drop.
pub struct LoopbackEndpoint {
    addr: std::net::SocketAddr,
    state: Arc<EndpointState>,
    task: tokio::task::JoinHandle<()>,
}

impl LoopbackEndpoint {
    /// Serves on 127.0.0.1 (ephemeral port); WHEP senders send a keyframe every
    /// `sender_keyframe_interval` frames.
    pub async fn start(sender_keyframe_interval: u32) -> anyhow::Result<LoopbackEndpoint> {
        let state = Arc::new(EndpointState { sender_keyframe_interval, ..EndpointState::default() });
        let app = Router::new()
            .route("/whip/{stream}", post(post_whip).options(preflight))
            .route("/whep/{stream}", post(post_whep).options(preflight))
            .route("/whip/{stream}/{id}", delete(delete_session).options(preflight))
            .route("/whep/{stream}/{id}", delete(delete_session).options(preflight))
            .layer(axum::middleware::map_response(add_cors))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("bind 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(LoopbackEndpoint { addr, state, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/whip/{stream}`.
    pub fn whip_url(&self, stream: &str) -> String {
        format!("{}/whip/{stream}", self.base_url())
    }

    /// `http://127.0.0.1:PORT/whep/{stream}`.
    pub fn whep_url(&self, stream: &str) -> String {
        format!("{}/whep/{stream}", self.base_url())
    }

    /// The receiver of the live WHIP session on `stream`, if any.
    pub fn answerer(&self, stream: &str) -> Option<Arc<LoopbackAnswerer>> {
        let sessions = self.state.sessions.lock().ok()?;
        sessions.values().find_map(|(s, session)| match session {
            LoopbackSession::Whip(a) if s == stream => Some(a.clone()),
            _ => None,
        })
    }

    /// The senders of the live WHEP sessions on `stream`.
    pub fn senders(&self, stream: &str) -> Vec<Arc<LoopbackSender>> {
        let Ok(sessions) = self.state.sessions.lock() else {
            return Vec::new();
        };
        sessions
            .values()
            .filter_map(|(s, session)| match session {
                LoopbackSession::Whep(sender) if s == stream => Some(sender.clone()),
                _ => None,
            })
            .collect()
    }

    /// How many sessions are live.
    pub fn session_count(&self) -> usize {
        self.state.sessions.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Every request seen so far, as `METHOD PATH -> STATUS` (preflights included).
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for LoopbackEndpoint {
    fn drop(&mut self) {
        self.task.abort();
        if let Ok(mut sessions) = self.state.sessions.lock() {
            sessions.clear();
        }
    }
}

async fn post_whip(State(state): State<Arc<EndpointState>>, Path(stream): Path<String>, offer: String) -> Response {
    let result = LoopbackAnswerer::answer(&offer).await.map(|(a, sdp)| (LoopbackSession::Whip(Arc::new(a)), sdp));
    created(&state, "whip", stream, result)
}

async fn post_whep(State(state): State<Arc<EndpointState>>, Path(stream): Path<String>, offer: String) -> Response {
    let result = LoopbackSender::answer(&offer, state.sender_keyframe_interval)
        .await
        .map(|(s, sdp)| (LoopbackSession::Whep(Arc::new(s)), sdp));
    created(&state, "whep", stream, result)
}

fn created(
    state: &EndpointState,
    kind: &str,
    stream: String,
    result: anyhow::Result<(LoopbackSession, String)>,
) -> Response {
    let (session, answer) = match result {
        Ok(done) => done,
        Err(error) => {
            state.log(format!("POST /{kind}/{stream} -> 400"));
            return (StatusCode::BAD_REQUEST, format!("{error:#}")).into_response();
        }
    };
    let id = state.next_id.fetch_add(1, Ordering::Relaxed).to_string();
    let location = format!("/{kind}/{stream}/{id}");
    if let Ok(mut sessions) = state.sessions.lock() {
        sessions.insert(id, (stream.clone(), session));
    }
    state.log(format!("POST /{kind}/{stream} -> 201"));
    (StatusCode::CREATED, [(header::CONTENT_TYPE, "application/sdp".to_string()), (header::LOCATION, location)], answer)
        .into_response()
}

async fn delete_session(
    State(state): State<Arc<EndpointState>>,
    Path((stream, id)): Path<(String, String)>,
) -> StatusCode {
    let removed = state.sessions.lock().ok().and_then(|mut s| s.remove(&id));
    let status = if removed.is_some() { StatusCode::OK } else { StatusCode::NOT_FOUND };
    state.log(format!("DELETE {stream}/{id} -> {}", status.as_u16()));
    status
}

async fn preflight(State(state): State<Arc<EndpointState>>, method: Method) -> StatusCode {
    state.log(format!("{method} preflight -> 204"));
    StatusCode::NO_CONTENT
}

/// The CORS headers the gateway must send too (a browser page lives on another origin and
/// must read `Location`).
async fn add_cors(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        (header::ACCESS_CONTROL_ALLOW_METHODS, "POST, DELETE, PATCH, OPTIONS"),
        (header::ACCESS_CONTROL_ALLOW_HEADERS, "Content-Type, Authorization, If-Match"),
        (header::ACCESS_CONTROL_EXPOSE_HEADERS, "Location, Link, ETag"),
        (header::ACCESS_CONTROL_MAX_AGE, "600"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
