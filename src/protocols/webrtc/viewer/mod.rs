//! WHEP egress through str0m (`webrtc.egress: str0m`, opt-in for now): the hub's frames are
//! packetized once per frame ([`packetize::cached`], shared by every viewer of the track) and
//! each viewer is a sans-IO str0m `Rtc` (ICE-lite, DTLS, SRTP, RTCP, NACK from a small resend
//! buffer) on a UDP socket of its own, driven by one task: it only rewrites sequence numbers,
//! timestamps and SSRC, and encrypts.
//!
//! - `negotiate`: the `Rtc` and the answer for the payload types `sdp::choose_for_egress` chose.
//! - `socket`: the viewer's socket (`webrtc.ip`, port range, `announce_ip`).
//! - `track`: per track sequence numbers and RTP clock.
//! - `outbox`: the datagrams of one drive, sent by one `sendmmsg`.
//!
//! As with webrtcbin: nothing is sent before ICE and DTLS are up; then the cached GOP goes out
//! at once, stamped by [`TimeMap`] so the viewer is live from its first picture on. A viewer's
//! PLI/FIR asks the source for a keyframe (at most every `PLI_INTERVAL`). Once connected, the task
//! wakes every `TICK` (and for datagrams from the viewer), not for every frame.

mod negotiate;
mod outbox;
mod socket;
mod track;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use str0m::net::{Protocol as NetProtocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tracing::Instrument;

use super::egress::TimeMap;
use super::peer::PeerError;
use super::registry::{Kind, Registration};
use super::whep::Prepared;
use super::{Answered, PendingSlot, WebrtcCtx, WebrtcError};
use crate::hub::{EndReason, StreamKey, Subscription};
use crate::media::rtp::packetize;
use crate::media::Frame;
use track::Track;

/// Frames taken at once when sending starts (a cached GOP is well below this).
const MAX_READY_FRAMES: usize = 4096;
/// Frames taken at once from the subscription while live (whatever queued since the last wake).
const MAX_BATCH: usize = 64;
/// The viewer's PLIs reach the source at most this often.
const PLI_INTERVAL: Duration = Duration::from_millis(500);
/// ICE that stays disconnected this long (no consent checks from the viewer) ends the session.
const LOST_GRACE: Duration = Duration::from_secs(5);
/// A connected viewer takes what the subscription has ready this often: the frames of that
/// time (audio every 20 ms, video every 33 ms) go out in one wake-up and one `sendmmsg`
/// instead of a wake-up each, for at most this much delay (10 ms on average).
const TICK: Duration = Duration::from_millis(20);
/// How far behind the media's running time the wallclock handed to str0m is set. str0m's
/// sender reports map "now" to the RTP time of the last packet written plus the time since its
/// wallclock, and send RTP time 0 when that wallclock lies in the future (a frame sent a little
/// ahead of its time: jitter, the conversion's bursts). Shifting every track's wallclock back
/// by the same amount keeps it in the past; receivers' lip-sync only compares the tracks' reports,
/// so a shift common to both changes nothing.
const SR_MARGIN: Duration = Duration::from_secs(1);
/// Longest sleep between two looks at the `Rtc` (its timeouts may lie much further).
const MAX_SLEEP: Duration = Duration::from_secs(1);

struct Viewer {
    key: StreamKey,
    ice_timeout: Duration,
    rtc: Rtc,
    socket: tokio::net::UdpSocket,
    /// The address the viewer sends to (the candidate's), what str0m matches datagrams by.
    candidate: SocketAddr,
    tracks: Vec<Track>,
    outbox: outbox::Outbox,
    sub: Subscription,
    registration: Registration,
    /// Held until ICE connects (see `Pending`).
    pending: Option<PendingSlot>,
    /// The session's running time is measured from here.
    epoch: Instant,
    /// `epoch` less `SR_MARGIN`: running time `t` has the wallclock `wall_base + t`.
    wall_base: Instant,
    clock: TimeMap,
    state: State,
}

#[derive(Default)]
struct State {
    /// DTLS is up: media may flow.
    connected: bool,
    /// str0m said so and the session has not acted on it yet.
    just_connected: bool,
    lost_since: Option<Instant>,
    pli_wanted: bool,
    last_pli: Option<Instant>,
    plis: u64,
    frames: u64,
    /// Audio frames not sent for being older than the live point.
    skipped: u64,
    /// Datagrams the socket could not take (full send buffer).
    send_dropped: u64,
    next_timeout: Option<Instant>,
    /// When the next media tick is due (see `TICK`), once connected.
    next_media: Option<Instant>,
    /// Times the session's task woke up (its cost is mostly per wake-up and per packet).
    wakes: u64,
}

enum Wake {
    End(String),
    Datagram(std::io::Result<(usize, SocketAddr)>),
    Timeout,
}

/// Answers a WHEP offer with a str0m session and starts it.
pub async fn start(gw: &WebrtcCtx, key: StreamKey, offer: &str, prepared: Prepared) -> Result<Answered, WebrtcError> {
    let Prepared { offer: parsed, pending, sub, choices, received } = prepared;
    let config = gw.webrtc.settings();
    let bound = socket::bind(config).map_err(|e| PeerError::Build(e.to_string()))?;
    let epoch = Instant::now();
    let negotiated = negotiate::answer(offer, &parsed, &choices, bound.candidate, epoch)?;
    let registration = gw.webrtc.registry().register(Kind::Whep, key.clone());
    let location = registration.location(Kind::Whep, &key);
    let span = tracing::info_span!("whep", stream = %key, protocol = "webrtc", session = %registration.id);
    let codecs: Vec<String> = choices.iter().map(|c| format!("{} {} pt {}", c.kind, c.codec, c.pt)).collect();
    span.in_scope(|| {
        tracing::info!(codecs = ?codecs, plan = ?sub.plan(), local = %bound.local, after = ?received.elapsed(), egress = "str0m", "WHEP session answered")
    });
    let viewer = Viewer {
        key,
        ice_timeout: config.ice_timeout(),
        rtc: negotiated.rtc,
        socket: bound.socket,
        candidate: bound.candidate,
        tracks: negotiated.tracks.iter().map(Track::new).collect(),
        outbox: outbox::Outbox::default(),
        sub,
        registration,
        pending: Some(pending),
        epoch,
        wall_base: epoch.checked_sub(SR_MARGIN).unwrap_or(epoch),
        clock: TimeMap::default(),
        state: State::default(),
    };
    tokio::spawn(viewer.run(gw.clone()).instrument(span));
    Ok(Answered { location, sdp: negotiated.answer })
}

impl Viewer {
    async fn run(mut self, gw: WebrtcCtx) {
        let reason = self.serve(&gw).await;
        self.rtc.disconnect();
        if self.sub.end_reason() == Some(&EndReason::TooSlow) {
            gw.hub.metrics().note_consumer_too_slow();
        }
        let packets: Vec<String> = self.tracks.iter().map(|t| format!("{} {}", t.kind, t.packets)).collect();
        let s = &self.state;
        tracing::info!(%reason, frames = s.frames, skipped = s.skipped, rtp_packets = ?packets, send_dropped = s.send_dropped, plis = s.plis, wakes = s.wakes, seconds = self.epoch.elapsed().as_secs(), "WHEP session ended");
    }

    async fn serve(&mut self, gw: &WebrtcCtx) -> String {
        let ice_deadline = tokio::time::Instant::now() + self.ice_timeout;
        let mut buf = vec![0u8; 2048];
        if let Err(reason) = self.drain() {
            return reason;
        }
        loop {
            let connected = self.state.connected;
            let now = Instant::now();
            // Connected, the session wakes on its media tick (and for datagrams): str0m's
            // timeouts are served at the tick (RTCP a few ms late is fine).
            let wake_at = match self.state.next_media {
                Some(tick) if connected => tick,
                _ => self.state.next_timeout.map_or(now + MAX_SLEEP, |t| t.min(now + MAX_SLEEP)),
            };
            let sleep = wake_at.saturating_duration_since(now);
            let wake = tokio::select! {
                biased;
                _ = self.registration.stop.cancelled() => Wake::End(self.registration.stop_reason().into()),
                _ = gw.shutdown.cancelled() => Wake::End("gateway shutting down".into()),
                _ = tokio::time::sleep_until(ice_deadline), if !connected => {
                    Wake::End(format!("ICE did not connect within {:?}", self.ice_timeout))
                }
                r = self.socket.recv_from(&mut buf) => Wake::Datagram(r),
                _ = tokio::time::sleep(sleep) => Wake::Timeout,
            };
            self.state.wakes += 1;
            let result = match wake {
                Wake::End(reason) => return reason,
                Wake::Datagram(Ok((n, source))) => self.receive(&buf[..n], source),
                Wake::Datagram(Err(e)) => {
                    tracing::debug!(error = %e, "UDP receive failed");
                    Ok(())
                }
                Wake::Timeout if connected && self.state.next_media.is_some_and(|t| t <= Instant::now()) => {
                    self.media_tick()
                }
                Wake::Timeout => self.tick(),
            };
            if let Err(reason) = result {
                return reason;
            }
            if let Err(reason) = self.after_events() {
                return reason;
            }
        }
    }

    /// Sends the frames that queued since the last media tick, and schedules the next one.
    fn media_tick(&mut self) -> Result<(), String> {
        let now = Instant::now();
        let next = self.state.next_media.map_or(now, |t| t + TICK);
        self.state.next_media = Some(if next <= now { now + TICK } else { next });
        let mut batch = Vec::new();
        let ended = self.take_ready(&mut batch, MAX_BATCH);
        self.send_frames(&batch)?;
        if ended {
            return Err(match self.sub.end_reason() {
                Some(EndReason::TooSlow) => "viewer too slow".into(),
                _ => "stream ended".into(),
            });
        }
        Ok(())
    }

    /// Acts on what str0m reported while it was driven.
    fn after_events(&mut self) -> Result<(), String> {
        if std::mem::take(&mut self.state.just_connected) && !self.state.connected {
            self.state.connected = true;
            self.pending = None;
            self.registration.mark_connected();
            tracing::info!(after = ?self.epoch.elapsed(), "WHEP viewer connected");
            self.sub.request_keyframe();
            let mut ready = Vec::new();
            // (An end of the stream shows at the first media tick.)
            self.take_ready(&mut ready, MAX_READY_FRAMES);
            self.state.next_media = Some(Instant::now() + TICK);
            // The cached burst goes out at once, squeezed just before "now" (see `TimeMap`).
            let stamps: Vec<_> = ready.iter().map(|f| (f.kind(), f.dts)).collect();
            self.clock.start(&stamps, self.running_time());
            self.send_frames(&ready)?;
        }
        if std::mem::take(&mut self.state.pli_wanted) {
            self.forward_pli();
        }
        if self.state.lost_since.is_some_and(|t| t.elapsed() > LOST_GRACE) {
            return Err(format!("ICE lost the viewer for {LOST_GRACE:?}"));
        }
        if !self.rtc.is_alive() {
            return Err("the connection closed".into());
        }
        Ok(())
    }

    fn running_time(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Adds the frames the subscription has ready now to `out`, up to `max` in all; true
    /// when the subscription ended.
    fn take_ready(&mut self, out: &mut Vec<Arc<Frame>>, max: usize) -> bool {
        while out.len() < max {
            match self.sub.next().now_or_never() {
                Some(Some(frame)) => out.push(frame),
                Some(None) => return true,
                None => break,
            }
        }
        false
    }

    /// Stamps the frames on the running time, queues their shared payloads on each track's
    /// stream and sends what str0m makes of them.
    fn send_frames(&mut self, frames: &[Arc<Frame>]) -> Result<(), String> {
        let mut now = None;
        for frame in frames {
            let kind = frame.kind();
            let Some(track) = self.tracks.iter().position(|t| t.kind == kind) else {
                continue;
            };
            let epoch = self.epoch;
            let at = *now.get_or_insert_with(|| epoch.elapsed().as_nanos() as u64);
            let Some((_, pts)) = self.clock.map(kind, frame.dts, frame.pts, || at) else {
                self.state.skipped += 1;
                continue;
            };
            let running = pts.nseconds();
            let wallclock = self.wall_base + Duration::from_nanos(running);
            let time = self.tracks[track].rtp_time(running);
            // Writing only queues on the stream; the packets leave on the next tick.
            for payload in packetize::cached(frame) {
                self.tracks[track].write(&mut self.rtc, payload, time, wallclock);
            }
            self.state.frames += 1;
            self.sub.add_bytes_out(frame.data.len());
        }
        self.tick()
    }

    /// Moves str0m's time on (sends what is queued, RTCP when due) and drains it.
    fn tick(&mut self) -> Result<(), String> {
        self.rtc.handle_input(Input::Timeout(Instant::now())).map_err(|e| format!("WebRTC failed: {e}"))?;
        self.drain()
    }

    fn receive(&mut self, datagram: &[u8], source: SocketAddr) -> Result<(), String> {
        let Ok(contents) = datagram.try_into() else {
            return Ok(()); // neither STUN, DTLS, RTP nor RTCP
        };
        let input = Input::Receive(
            Instant::now(),
            Receive { proto: NetProtocol::Udp, source, destination: self.candidate, contents },
        );
        if !self.rtc.accepts(&input) {
            return Ok(());
        }
        if let Err(e) = self.rtc.handle_input(input) {
            tracing::debug!(error = %e, %source, "datagram refused");
        }
        self.drain()
    }

    /// Polls str0m until it only has a timeout left: datagrams go out, events are noted.
    fn drain(&mut self) -> Result<(), String> {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.state.next_timeout = Some(t);
                    if !self.outbox.is_empty() {
                        self.state.send_dropped += self.outbox.flush(&self.socket);
                    }
                    return Ok(());
                }
                Ok(Output::Transmit(t)) => self.outbox.push(t.contents.into(), t.destination),
                Ok(Output::Event(e)) => self.event(e),
                Err(e) => return Err(format!("WebRTC failed: {e}")),
            }
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Connected => self.state.just_connected = true,
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.state.lost_since.get_or_insert_with(Instant::now);
            }
            Event::IceConnectionStateChange(state) => {
                tracing::debug!(?state, "ICE");
                self.state.lost_since = None;
            }
            Event::KeyframeRequest(_) => self.state.pli_wanted = true,
            _ => {}
        }
    }

    /// A viewer's PLI asks the source (publisher or re-encoder) for a keyframe, rate-limited.
    fn forward_pli(&mut self) {
        if self.state.last_pli.is_some_and(|t| t.elapsed() < PLI_INTERVAL) {
            return;
        }
        self.state.last_pli = Some(Instant::now());
        self.state.plis += 1;
        tracing::debug!(stream = %self.key, "viewer PLI: keyframe requested");
        self.sub.request_keyframe();
    }
}
