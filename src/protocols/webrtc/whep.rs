//! WHEP egress: a WebRTC viewer of any stream. The hub plans what it gets (e.g. AAC→Opus from
//! an RTMP source, H.264 re-encoded without B-frames); this session only packs the frames into
//! RTP through webrtcbin.
//!
//! Frames are fed from a task reading the subscription, once ICE has connected (so the cached
//! GOP is not sent into the void). The cached GOP goes out at once, stamped so that the viewer
//! is live from its first picture on (see `TimeMap`). When the appsrc queue grows past a bound
//! the task stops reading: the viewer then falls behind in the hub and skips to the next
//! keyframe there.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use gstreamer::prelude::*;
use gstreamer_webrtc::WebRTCRTPTransceiverDirection as Direction;
use tokio::sync::Notify;
use tracing::Instrument;

use super::egress::{Output, TimeMap};
use super::peer::{Peer, PeerEvent};
use super::registry::{Kind, Registration};
use super::sdp::{self, EgressTracks};
use super::WebrtcCtx;
use super::{Answered, WebrtcError};
use crate::config::WhepEgress;
use crate::hub::{ConsumerRequest, EndReason, StreamKey, Subscription};
use crate::media::{Frame, Protocol, TrackInfo, TrackKind};

/// Bytes a track may queue toward the viewer before the feeder holds back.
const MAX_QUEUED_BYTES: u64 = 4 * 1024 * 1024;
/// Frames taken at once when feeding starts (a cached GOP is well below this).
const MAX_READY_FRAMES: usize = 4096;
/// The viewer's PLIs reach the source at most this often.
const PLI_INTERVAL: Duration = Duration::from_millis(500);

/// What the session was started with; fixed for its life.
struct Settings {
    key: StreamKey,
    ice_timeout: Duration,
}

/// What changes while it runs.
struct State {
    started: Instant,
    frames: u64,
    /// Audio frames not sent for being older than the live point.
    skipped: u64,
    last_pli: Option<Instant>,
    plis: u64,
    clock: TimeMap,
}

struct WhepSession {
    settings: Settings,
    state: State,
    sub: Subscription,
    peer: Peer,
    outputs: Vec<Output>,
    keyframe_wanted: Arc<Notify>,
    registration: Registration,
    /// Held until ICE connects (see `Pending`).
    pending: Option<super::PendingSlot>,
}

enum Event {
    End(String),
    Peer(PeerEvent),
    Pli,
    Frame(Option<Arc<Frame>>),
    Congested,
}

/// What both senders start from: the checked offer, the pending slot, the subscription and
/// the payload types chosen.
pub struct Prepared {
    pub offer: sdp::Offer,
    pub pending: super::PendingSlot,
    pub sub: Subscription,
    pub choices: Vec<sdp::Choice>,
    pub received: Instant,
}

/// Answers a WHEP offer and starts the viewer session, with the sender `webrtc.egress` names.
pub async fn start(
    gw: &WebrtcCtx,
    key: StreamKey,
    offer: &str,
    remote: Option<String>,
) -> Result<Answered, WebrtcError> {
    let prepared = prepare(gw, &key, offer, remote).await?;
    match gw.webrtc.settings().egress {
        WhepEgress::Str0m => super::viewer::start(gw, key, offer, prepared).await,
        WhepEgress::Webrtcbin => start_webrtcbin(gw, key, prepared).await,
    }
}

async fn prepare(
    gw: &WebrtcCtx,
    key: &StreamKey,
    offer: &str,
    remote: Option<String>,
) -> Result<Prepared, WebrtcError> {
    let received = Instant::now();
    let offer = sdp::parse_offer(offer)?;
    sdp::check_limits(&offer, gw.webrtc.settings().max_media_per_offer)?;
    let address = remote.as_deref().and_then(|r| r.parse::<std::net::SocketAddr>().ok()).map(|a| a.ip());
    let pending = gw.webrtc.pending().acquire(address)?;
    let who = ConsumerRequest { protocol: Protocol::Webrtc, transport: "whep".into(), remote };
    let sub = gw.hub.subscribe(key, who).await?;
    let tracks = EgressTracks {
        video: sub.plan().video.as_ref().map(|leg| (leg.output_codec(), sub.video_info().and_then(|i| profile_idc(i)))),
        audio: sub.plan().audio.as_ref().map(|leg| leg.output_codec()),
    };
    let choices = sdp::choose_for_egress(&offer, tracks)?;
    Ok(Prepared { offer, pending, sub, choices, received })
}

/// The webrtcbin sender: one GStreamer pipeline per viewer.
async fn start_webrtcbin(gw: &WebrtcCtx, key: StreamKey, prepared: Prepared) -> Result<Answered, WebrtcError> {
    let Prepared { offer, pending, sub, choices, received } = prepared;
    let config = gw.webrtc.settings();
    let peer = Peer::new(&format!("whep-{key}"), config)?;
    // The SSRCs are chosen here so the answer can signal them (a=ssrc, and the RTX group):
    // browsers demultiplex a bundle by them.
    let ssrcs: Vec<u32> = choices.iter().map(|_| rand::random::<u32>().max(1)).collect();
    let transceivers: Vec<_> = choices
        .iter()
        .zip(&ssrcs)
        .map(|(c, ssrc)| {
            let mut caps = c.preference_caps();
            if let Some(s) = caps.make_mut().structure_mut(0) {
                s.set("ssrc", *ssrc);
            }
            peer.add_transceiver(Direction::Sendonly, &caps, c.kind == TrackKind::Video)
        })
        .collect();
    let answer = peer.answer(offer.sdp).await?;
    let answer = sdp::complete_answer(&answer, &choices);
    let answer = match config.announced() {
        Some(ip) => sdp::announce(&answer, ip),
        None => answer,
    };
    let keyframe_wanted = Arc::new(Notify::new());
    let mut outputs = Vec::new();
    for ((choice, transceiver), ssrc) in choices.iter().zip(&transceivers).zip(&ssrcs) {
        outputs.push(Output::link(&peer, choice, transceiver, *ssrc, keyframe_wanted.clone())?);
    }
    // While ICE connects: rtpsession needs the latency to time what it sends (see there).
    peer.recalculate_latency().await;
    let registration = gw.webrtc.registry().register(Kind::Whep, key.clone());
    let location = registration.location(Kind::Whep, &key);
    let span = tracing::info_span!("whep", stream = %key, protocol = "webrtc", session = %registration.id);
    let codecs: Vec<String> = choices.iter().map(|c| format!("{} {} pt {}", c.kind, c.codec, c.pt)).collect();
    span.in_scope(
        || tracing::info!(codecs = ?codecs, plan = ?sub.plan(), after = ?received.elapsed(), "WHEP session answered"),
    );
    let session = WhepSession {
        settings: Settings { key, ice_timeout: config.ice_timeout() },
        state: State {
            started: Instant::now(),
            frames: 0,
            skipped: 0,
            last_pli: None,
            plis: 0,
            clock: TimeMap::default(),
        },
        sub,
        peer,
        outputs,
        keyframe_wanted,
        registration,
        pending: Some(pending),
    };
    tokio::spawn(session.run(gw.clone()).instrument(span));
    Ok(Answered { location, sdp: answer })
}

/// H.264 `profile_idc` from the avcC (its second byte).
fn profile_idc(info: &TrackInfo) -> Option<u8> {
    info.config().and_then(|c| c.get(1).copied())
}

impl WhepSession {
    async fn run(mut self, gw: WebrtcCtx) {
        let reason = match self.wait_connected(&gw).await {
            Err(reason) => reason,
            Ok(()) => {
                self.pending = None;
                self.registration.mark_connected();
                tracing::info!(after = ?self.state.started.elapsed(), "WHEP viewer connected");
                self.sub.request_keyframe();
                self.feed(&gw).await
            }
        };
        if self.sub.end_reason() == Some(&EndReason::TooSlow) {
            gw.hub.metrics().note_consumer_too_slow();
        }
        let packets: Vec<String> = self.outputs.iter().map(|o| format!("{} {}", o.kind, o.packets())).collect();
        let queued: Vec<String> = self.outputs.iter().map(|o| format!("{} {}", o.kind, o.queued_bytes())).collect();
        tracing::info!(%reason, frames = self.state.frames, skipped = self.state.skipped, rtp_packets = ?packets, queued_bytes = ?queued, plis = self.state.plis, "WHEP session ended");
    }

    async fn wait_connected(&mut self, gw: &WebrtcCtx) -> Result<(), String> {
        let timeout = self.settings.ice_timeout;
        tokio::select! {
            _ = self.registration.stop.cancelled() => Err("ended by the client (DELETE)".into()),
            _ = gw.shutdown.cancelled() => Err("gateway shutting down".into()),
            _ = tokio::time::sleep(timeout) => Err(format!("ICE did not connect within {timeout:?}")),
            e = self.peer.next_event() => match e {
                PeerEvent::Connected => Ok(()),
                PeerEvent::Failed(reason) => Err(reason),
            },
        }
    }

    async fn feed(&mut self, gw: &WebrtcCtx) -> String {
        let ready = self.take_ready();
        // The cached burst goes out at once, squeezed just before "now" (see `TimeMap`).
        let stamps: Vec<_> = ready.iter().map(|f| (f.kind(), f.dts)).collect();
        self.state.clock.start(&stamps, self.running_time());
        for frame in &ready {
            if let Err(reason) = self.send(frame) {
                return reason;
            }
        }
        loop {
            let congested = self.outputs.iter().any(|o| o.queued_bytes() > MAX_QUEUED_BYTES);
            let event = tokio::select! {
                _ = self.registration.stop.cancelled() => Event::End("ended by the client (DELETE)".into()),
                _ = gw.shutdown.cancelled() => Event::End("gateway shutting down".into()),
                e = self.peer.next_event() => Event::Peer(e),
                _ = self.keyframe_wanted.notified() => Event::Pli,
                f = self.sub.next(), if !congested => Event::Frame(f),
                _ = tokio::time::sleep(Duration::from_millis(10)), if congested => Event::Congested,
            };
            match event {
                Event::End(reason) | Event::Peer(PeerEvent::Failed(reason)) => return reason,
                Event::Peer(PeerEvent::Connected) | Event::Congested => {}
                Event::Pli => self.forward_pli(),
                Event::Frame(None) => {
                    return match self.sub.end_reason() {
                        Some(EndReason::TooSlow) => "viewer too slow".into(),
                        _ => "stream ended".into(),
                    }
                }
                Event::Frame(Some(frame)) => {
                    if let Err(reason) = self.send(&frame) {
                        return reason;
                    }
                }
            }
        }
    }

    /// The frames the subscription has ready now (the cached GOP, and what queued meanwhile).
    fn take_ready(&mut self) -> Vec<Arc<Frame>> {
        let mut ready = Vec::new();
        while ready.len() < MAX_READY_FRAMES {
            match self.sub.next().now_or_never() {
                Some(Some(frame)) => ready.push(frame),
                _ => break,
            }
        }
        ready
    }

    fn running_time(&self) -> u64 {
        self.peer.pipeline.current_running_time().map(|t| t.nseconds()).unwrap_or(0)
    }

    /// Stamps one frame on the running time and queues it toward the viewer.
    fn send(&mut self, frame: &Frame) -> Result<(), String> {
        let now = self.running_time();
        let Some(output) = self.outputs.iter_mut().find(|o| o.kind == frame.kind()) else {
            return Ok(());
        };
        let Some((dts, pts)) = self.state.clock.map(frame.kind(), frame.dts, frame.pts, || now) else {
            // Audio older than the live point.
            self.state.skipped += 1;
            return Ok(());
        };
        output.push(frame, dts, pts).map_err(|e| format!("the sending pipeline stopped ({e:?})"))?;
        self.state.frames += 1;
        self.sub.add_bytes_out(frame.data.len());
        Ok(())
    }

    /// A viewer's PLI asks the source (publisher or re-encoder) for a keyframe, rate-limited.
    fn forward_pli(&mut self) {
        if self.state.last_pli.is_some_and(|t| t.elapsed() < PLI_INTERVAL) {
            return;
        }
        self.state.last_pli = Some(Instant::now());
        self.state.plis += 1;
        tracing::debug!(stream = %self.settings.key, "viewer PLI: keyframe requested");
        self.sub.request_keyframe();
    }
}
