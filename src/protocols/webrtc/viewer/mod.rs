//! WHEP egress through str0m (`webrtc.egress: str0m`, the default): the hub's frames are
//! packetized once per frame ([`packetize::cached`], shared by every viewer of the track) and
//! each viewer is a sans-IO str0m `Rtc` (ICE-lite, DTLS, SRTP, RTCP, NACK from a small resend
//! buffer) on a UDP socket of its own: it only rewrites sequence numbers, timestamps and SSRC,
//! and encrypts. A viewer's own task answers ICE and DTLS; once connected, the viewer joins a
//! driver (`drive`) that wakes once per tick for all its viewers.
//!
//! - `negotiate`: the `Rtc` and the answer for the payload types `sdp::choose_for_egress` chose.
//! - `socket`: the viewer's socket (`webrtc.ip`, port range, `announce_ip`).
//! - `track`: per track sequence numbers and RTP clock.
//! - `outbox`: the datagrams of one drive, sent by one `sendmmsg`.
//! - `drive`: the tasks (one per core) that drive connected viewers.
//!
//! As with webrtcbin: nothing is sent before ICE and DTLS are up; then the cached GOP goes out
//! at once, stamped by [`TimeMap`] so the viewer is live from its first picture on. A viewer's
//! PLI/FIR asks the source for a keyframe (at most every `PLI_INTERVAL`). Every track's RTP time
//! and the wallclock str0m's sender reports map it to come from the frame's timestamp on one
//! running time per session, and all tracks report one CNAME, so receivers lip-sync them.

mod drive;
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
pub use drive::Drivers;
use track::Track;

/// Frames taken at once when sending starts (a cached GOP is well below this).
const MAX_READY_FRAMES: usize = 4096;
/// Frames taken at once from the subscription while live (whatever queued since the last wake).
const MAX_BATCH: usize = 64;
/// The viewer's PLIs reach the source at most this often.
const PLI_INTERVAL: Duration = Duration::from_millis(500);
/// ICE that stays disconnected this long (no consent checks from the viewer) ends the session.
const LOST_GRACE: Duration = Duration::from_secs(5);
/// How far behind the media's running time the wallclock handed to str0m is set. str0m's
/// sender reports map "now" to the RTP time of the last packet written plus the time since its
/// wallclock, and send RTP time 0 when that wallclock lies in the future (a frame sent a little
/// ahead of its time: jitter, the conversion's bursts). Shifting every track's wallclock back
/// by the same amount keeps it in the past; receivers' lip-sync only compares the tracks' reports,
/// so a shift common to both changes nothing.
const SR_MARGIN: Duration = Duration::from_secs(1);
/// Longest sleep between two looks at the `Rtc` (its timeouts may lie much further).
const MAX_SLEEP: Duration = Duration::from_secs(1);

pub struct Viewer {
    gw: WebrtcCtx,
    span: tracing::Span,
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
        gw: gw.clone(),
        span: span.clone(),
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
    tokio::spawn(viewer.connect().instrument(span));
    Ok(Answered { location, sdp: negotiated.answer })
}

impl Viewer {
    /// Answers ICE and DTLS on the viewer's own task (promptly, for a quick first picture),
    /// sends the cached burst when connected, then hands the viewer to a driver.
    async fn connect(mut self) {
        match self.handshake().await {
            Ok(()) => {
                let drivers = self.gw.webrtc.drivers().clone();
                drivers.adopt(self);
            }
            Err(reason) => self.end(reason),
        }
    }

    /// Ends the session: str0m says goodbye, the registration and subscription go.
    fn end(&mut self, reason: String) {
        let _entered = self.span.clone().entered();
        self.rtc.disconnect();
        self.drain(Instant::now()).ok();
        self.flush();
        if self.sub.end_reason() == Some(&EndReason::TooSlow) {
            self.gw.hub.metrics().note_consumer_too_slow();
        }
        let packets: Vec<String> = self.tracks.iter().map(|t| format!("{} {}", t.kind, t.packets)).collect();
        let s = &self.state;
        tracing::info!(%reason, frames = s.frames, skipped = s.skipped, rtp_packets = ?packets, send_dropped = s.send_dropped, plis = s.plis, wakes = s.wakes, seconds = self.epoch.elapsed().as_secs(), "WHEP session ended");
    }

    async fn handshake(&mut self) -> Result<(), String> {
        let ice_deadline = tokio::time::Instant::now() + self.ice_timeout;
        let mut buf = vec![0u8; 2048];
        self.drain(Instant::now())?;
        self.flush();
        while !self.state.connected {
            let now = Instant::now();
            let wake_at = self.state.next_timeout.map_or(now + MAX_SLEEP, |t| t.min(now + MAX_SLEEP));
            let sleep = wake_at.saturating_duration_since(now);
            let wake = tokio::select! {
                biased;
                _ = self.registration.stop.cancelled() => Wake::End(self.registration.stop_reason().into()),
                _ = self.gw.shutdown.cancelled() => Wake::End("gateway shutting down".into()),
                _ = tokio::time::sleep_until(ice_deadline) => {
                    Wake::End(format!("ICE did not connect within {:?}", self.ice_timeout))
                }
                r = self.socket.recv_from(&mut buf) => Wake::Datagram(r),
                _ = tokio::time::sleep(sleep) => Wake::Timeout,
            };
            self.state.wakes += 1;
            let now = Instant::now();
            match wake {
                Wake::End(reason) => return Err(reason),
                Wake::Datagram(Ok((n, source))) => self.receive(&buf[..n], source, now)?,
                Wake::Datagram(Err(e)) => tracing::debug!(error = %e, "UDP receive failed"),
                Wake::Timeout => self.tick(now)?,
            }
            self.after_events(now)?;
            self.flush();
        }
        Ok(())
    }

    /// One tick of a connected viewer (on a driver): what the viewer sent is read, the frames
    /// that queued since the last tick are sent, str0m's timers are served; `now` is the
    /// tick's one clock read. An error is why the session ends.
    fn drive(&mut self, now: Instant, buf: &mut [u8]) -> Result<(), String> {
        if self.registration.stop.is_cancelled() {
            return Err(self.registration.stop_reason().into());
        }
        if self.gw.shutdown.is_cancelled() {
            return Err("gateway shutting down".into());
        }
        self.state.wakes += 1;
        let result = self.drive_once(now, buf);
        self.flush();
        result
    }

    fn drive_once(&mut self, now: Instant, buf: &mut [u8]) -> Result<(), String> {
        loop {
            match self.socket.try_recv_from(buf) {
                Ok((n, source)) => {
                    let datagram = &buf[..n];
                    self.receive(datagram, source, now)?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!(parent: &self.span, error = %e, "UDP receive failed");
                    break;
                }
            }
        }
        let mut batch = Vec::new();
        let ended = self.take_ready(&mut batch, MAX_BATCH);
        self.send_frames(&batch, now)?;
        if ended {
            return Err(match self.sub.end_reason() {
                Some(EndReason::TooSlow) => "viewer too slow".into(),
                _ => "stream ended".into(),
            });
        }
        self.after_events(now)
    }

    /// Sends what str0m queued for the viewer.
    fn flush(&mut self) {
        if !self.outbox.is_empty() {
            self.state.send_dropped += self.outbox.flush(&self.socket);
        }
    }

    /// Acts on what str0m reported while it was driven.
    fn after_events(&mut self, now: Instant) -> Result<(), String> {
        if std::mem::take(&mut self.state.just_connected) && !self.state.connected {
            self.state.connected = true;
            self.pending = None;
            self.registration.mark_connected();
            tracing::info!(parent: &self.span, after = ?self.epoch.elapsed(), "WHEP viewer connected");
            self.sub.request_keyframe();
            let mut ready = Vec::new();
            // (An end of the stream shows at the first media tick.)
            self.take_ready(&mut ready, MAX_READY_FRAMES);
            // The cached burst goes out at once, squeezed just before "now" (see `TimeMap`).
            let stamps: Vec<_> = ready.iter().map(|f| (f.kind(), f.dts)).collect();
            self.clock.start(&stamps, self.running_time(now));
            self.send_frames(&ready, now)?;
        }
        if std::mem::take(&mut self.state.pli_wanted) {
            self.forward_pli(now);
        }
        if self.state.lost_since.is_some_and(|t| now.saturating_duration_since(t) > LOST_GRACE) {
            return Err(format!("ICE lost the viewer for {LOST_GRACE:?}"));
        }
        if !self.rtc.is_alive() {
            return Err("the connection closed".into());
        }
        Ok(())
    }

    fn running_time(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_nanos() as u64
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
    fn send_frames(&mut self, frames: &[Arc<Frame>], now: Instant) -> Result<(), String> {
        let at = self.running_time(now);
        for frame in frames {
            let kind = frame.kind();
            let Some(track) = self.tracks.iter().position(|t| t.kind == kind) else {
                continue;
            };
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
        self.tick(now)
    }

    /// Moves str0m's time on (sends what is queued, RTCP when due) and drains it.
    fn tick(&mut self, now: Instant) -> Result<(), String> {
        self.rtc.handle_input(Input::Timeout(now)).map_err(|e| format!("WebRTC failed: {e}"))?;
        self.drain(now)
    }

    fn receive(&mut self, datagram: &[u8], source: SocketAddr, now: Instant) -> Result<(), String> {
        let Ok(contents) = datagram.try_into() else {
            return Ok(()); // neither STUN, DTLS, RTP nor RTCP
        };
        let input = Input::Receive(
            now,
            Receive { proto: NetProtocol::Udp, source, destination: self.candidate, contents },
        );
        if !self.rtc.accepts(&input) {
            return Ok(());
        }
        if let Err(e) = self.rtc.handle_input(input) {
            tracing::debug!(parent: &self.span, error = %e, %source, "datagram refused");
        }
        self.drain(now)
    }

    /// Polls str0m until it only has a timeout left: datagrams are queued in the outbox (sent
    /// by `flush`), events are noted.
    fn drain(&mut self, now: Instant) -> Result<(), String> {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.state.next_timeout = Some(t);
                    return Ok(());
                }
                Ok(Output::Transmit(t)) => self.outbox.push(t.contents.into(), t.destination),
                Ok(Output::Event(e)) => self.event(e, now),
                Err(e) => return Err(format!("WebRTC failed: {e}")),
            }
        }
    }

    fn event(&mut self, event: Event, now: Instant) {
        match event {
            Event::Connected => self.state.just_connected = true,
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.state.lost_since.get_or_insert(now);
            }
            Event::IceConnectionStateChange(state) => {
                tracing::debug!(parent: &self.span, ?state, "ICE");
                self.state.lost_since = None;
            }
            Event::KeyframeRequest(_) => self.state.pli_wanted = true,
            _ => {}
        }
    }

    /// A viewer's PLI asks the source (publisher or re-encoder) for a keyframe, rate-limited.
    fn forward_pli(&mut self, now: Instant) {
        if self.state.last_pli.is_some_and(|t| now.saturating_duration_since(t) < PLI_INTERVAL) {
            return;
        }
        self.state.last_pli = Some(now);
        self.state.plis += 1;
        tracing::debug!(parent: &self.span, stream = %self.key, "viewer PLI: keyframe requested");
        self.sub.request_keyframe();
    }
}
