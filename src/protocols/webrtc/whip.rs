//! WHIP ingest (RFC 9725): a WebRTC publisher's offer becomes a stream of protocol `webrtc`.
//!
//! `start` checks the offer, claims the stream key, answers through webrtcbin and leaves a task
//! that moves frames into the hub, asks the publisher for keyframes (on request, and every
//! `keyframe_interval` whether or not anyone watches: a browser sends keyframes only when
//! asked, and the GOP a new viewer starts from must be a recent one, not the stream's whole
//! age) and ends the stream on `DELETE`, an
//! API kick, shutdown, a failed connection, ICE that never connects or media that stops.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer_webrtc::WebRTCRTPTransceiverDirection as Direction;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tracing::Instrument;

use super::ingest::Ingest;
use super::peer::{Peer, PeerEvent};
use super::registry::{Kind, Registration};
use super::WebrtcCtx;
use super::{sdp, Answered, PendingSlot, WebrtcError};
use crate::hub::{Publisher, StreamKey};
use crate::media::{Frame, Protocol, TrackKind};

/// Frames queued between webrtcbin's threads and the session task.
const FRAME_QUEUE: usize = 1024;
/// How often the session checks its timeouts.
const WATCHDOG: Duration = Duration::from_millis(250);
/// How long a newer offer waits for the unconnected session it replaces to let go of the key.
const REPLACE_WAIT: Duration = Duration::from_secs(3);

/// What the session was started with; fixed for its life.
struct Settings {
    key: StreamKey,
    keyframe_interval: Duration,
    ice_timeout: Duration,
    publisher_timeout: Duration,
}

/// What changes while it runs.
struct State {
    started: Instant,
    connected: bool,
    last_media: Instant,
    frames: u64,
    keyframe_requests: u64,
    /// Refused RTP packets already added to the hub's counters.
    refused_counted: u64,
    payload_refused_counted: u64,
}

struct WhipSession {
    settings: Settings,
    state: State,
    publisher: Publisher,
    peer: Peer,
    ingest: Arc<Ingest>,
    frames: mpsc::Receiver<Frame>,
    registration: Registration,
    /// Held until ICE connects (see `Pending`).
    pending: Option<PendingSlot>,
}

enum Event {
    End(String),
    Stopped,
    Peer(PeerEvent),
    Frame(Option<Frame>),
    KeyframeWanted,
    KeyframeTick,
    Watchdog,
}

/// Answers a WHIP offer and starts the publish session.
pub async fn start(
    gw: &WebrtcCtx,
    key: StreamKey,
    offer: &str,
    remote: Option<String>,
) -> Result<Answered, WebrtcError> {
    let offer = sdp::parse_offer(offer)?;
    let config = gw.webrtc.settings();
    sdp::check_limits(&offer, config.max_media_per_offer)?;
    let choices = sdp::choose_for_ingest(&offer)?;
    // An offer whose ICE never connected does not hold the key: a newer one replaces it
    // (and the slot it frees counts for the newer one).
    let registry = gw.webrtc.registry();
    if registry.replace_unconnected(Kind::Whip, &key) {
        tracing::info!(stream = %key, "replacing a WHIP session that never connected");
        registry.wait_stream_gone(Kind::Whip, &key, REPLACE_WAIT).await;
    }
    let address = remote.as_deref().and_then(|r| r.parse::<SocketAddr>().ok()).map(|a| a.ip());
    let pending = gw.webrtc.pending().acquire(address)?;
    let publisher = gw.hub.claim_and_publish(key.clone(), Protocol::Webrtc, "whip", remote).await?;
    let peer = Peer::new(&format!("whip-{key}"), config)?;
    for choice in &choices {
        peer.add_transceiver(Direction::Recvonly, &choice.preference_caps(), choice.kind == TrackKind::Video);
    }
    let (tx, frames) = mpsc::channel(FRAME_QUEUE);
    let ingest = Ingest::new(tx);
    ingest.attach(&peer.pipeline, &peer.webrtcbin);
    let answer = peer.answer(offer.sdp).await?;
    let answer = sdp::complete_answer(&answer, &choices);
    let answer = match config.announced() {
        Some(ip) => sdp::announce(&answer, ip),
        None => answer,
    };
    let registration = gw.webrtc.registry().register(Kind::Whip, key.clone());
    let location = registration.location(Kind::Whip, &key);
    let span = tracing::info_span!("whip", stream = %key, protocol = "webrtc", session = %registration.id);
    let codecs: Vec<String> = choices.iter().map(|c| format!("{} {} pt {}", c.kind, c.codec, c.pt)).collect();
    span.in_scope(|| tracing::info!(codecs = ?codecs, "WHIP session answered"));
    let now = Instant::now();
    let session = WhipSession {
        settings: Settings {
            key,
            keyframe_interval: config.keyframe_interval().max(Duration::from_millis(100)),
            ice_timeout: config.ice_timeout(),
            publisher_timeout: config.publisher_timeout(),
        },
        state: State {
            started: now,
            connected: false,
            last_media: now,
            frames: 0,
            keyframe_requests: 0,
            refused_counted: 0,
            payload_refused_counted: 0,
        },
        publisher,
        peer,
        ingest,
        frames,
        registration,
        pending: Some(pending),
    };
    tokio::spawn(session.run(gw.clone()).instrument(span));
    Ok(Answered { location, sdp: answer })
}

impl WhipSession {
    async fn run(mut self, gw: WebrtcCtx) {
        let mut keyframes = tokio::time::interval(self.settings.keyframe_interval);
        keyframes.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut watchdog = tokio::time::interval(WATCHDOG);
        let reason = loop {
            let event = tokio::select! {
                _ = self.registration.stop.cancelled() => Event::Stopped,
                _ = gw.shutdown.cancelled() => Event::End("gateway shutting down".into()),
                _ = self.publisher.kicked() => Event::End("disconnected through the API".into()),
                e = self.peer.next_event() => Event::Peer(e),
                f = self.frames.recv() => Event::Frame(f),
                _ = self.publisher.keyframe_requested() => Event::KeyframeWanted,
                _ = keyframes.tick() => Event::KeyframeTick,
                _ = watchdog.tick() => Event::Watchdog,
            };
            if let Some(reason) = self.handle(event) {
                break reason;
            }
        };
        tracing::info!(
            %reason,
            frames = self.state.frames,
            dropped = self.ingest.dropped(),
            h264_refused = self.ingest.refused(),
            payload_refused = self.ingest.payload_refused(),
            keyframe_requests = self.state.keyframe_requests,
            "WHIP session ended"
        );
        // Dropping the publisher ends the stream; dropping the peer stops the pipeline.
    }

    /// Applies one event; returns why the session ends, if it does.
    fn handle(&mut self, event: Event) -> Option<String> {
        match event {
            Event::End(reason) => return Some(reason),
            Event::Stopped => return Some(self.registration.stop_reason().into()),
            Event::Peer(PeerEvent::Connected) => {
                self.pending = None;
                self.registration.mark_connected();
                if !self.state.connected {
                    tracing::info!(after = ?self.state.started.elapsed(), "WHIP publisher connected");
                }
                self.state.connected = true;
                self.state.last_media = Instant::now();
                self.request_keyframe();
            }
            Event::Peer(PeerEvent::Failed(reason)) => return Some(reason),
            Event::Frame(None) => return Some("media channel closed".into()),
            Event::Frame(Some(frame)) => {
                self.state.frames += 1;
                self.state.last_media = Instant::now();
                self.publisher.add_bytes_in(frame.data.len());
                self.publisher.push(frame);
            }
            Event::KeyframeWanted => self.request_keyframe(),
            Event::KeyframeTick => self.request_keyframe(),
            Event::Watchdog => {
                let refused = self.ingest.refused();
                if refused > self.state.refused_counted {
                    self.publisher.note_h264_refused(refused - self.state.refused_counted);
                    self.state.refused_counted = refused;
                }
                let refused = self.ingest.payload_refused();
                if refused > self.state.payload_refused_counted {
                    self.publisher.note_rtp_payload_refused(refused - self.state.payload_refused_counted);
                    self.state.payload_refused_counted = refused;
                }
                let s = &self.settings;
                if !self.state.connected && self.state.started.elapsed() > s.ice_timeout {
                    return Some(format!("ICE did not connect within {:?}", s.ice_timeout));
                }
                if self.state.connected && self.state.last_media.elapsed() > s.publisher_timeout {
                    return Some(format!("no media for {:?}", s.publisher_timeout));
                }
            }
        }
        None
    }

    fn request_keyframe(&mut self) {
        if self.ingest.request_keyframe() {
            self.state.keyframe_requests += 1;
            tracing::debug!(stream = %self.settings.key, "keyframe requested from the publisher");
        }
    }
}
