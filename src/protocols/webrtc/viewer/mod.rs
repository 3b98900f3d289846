//! WHEP egress through str0m (`webrtc.egress: str0m`, opt-in for now): the hub's frames are
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
//! running time per session. (str0m gives each m-line its own random RTCP CNAME and has no
//! setter; receivers that lip-sync by CNAME, GStreamer's rtpbin, see two sources: see
//! docs/whep-egress.md.)

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
use tokio::sync::mpsc;
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
/// ICE that stays disconnected this long (no consent checks from the viewer) ends the session,
/// if the viewer was also silent for `SILENCE` (see `is_lost`).
const LOST_GRACE: Duration = Duration::from_secs(5);
/// A viewer that receives RTP sends RTCP receiver reports at least every 7.5 s (RFC 3550's 5 s
/// minimum, randomized): silence this long means it is gone.
const SILENCE: Duration = Duration::from_secs(12);
/// How far behind the media's running time the wallclock handed to str0m is set. str0m's
/// sender reports map "now" to the RTP time of the last packet written plus the time since its
/// wallclock, and send RTP time 0 when that wallclock lies in the future (a frame sent a little
/// ahead of its time: jitter, the conversion's bursts). Shifting every track's wallclock back
/// by the same amount keeps it in the past; receivers' lip-sync only compares the tracks' reports,
/// so a shift common to both changes nothing.
const SR_MARGIN: Duration = Duration::from_secs(1);
/// Datagrams from a connected viewer waiting for its driver's next tick (more are dropped).
const INBOX: usize = 256;
/// A connected viewer's stop and the gateway's shutdown are looked at every this many ticks.
const STOP_CHECK_TICKS: u64 = 20;
/// Longest sleep between two looks at the `Rtc` (its timeouts may lie much further).
const MAX_SLEEP: Duration = Duration::from_secs(1);

pub struct Viewer {
    gw: WebrtcCtx,
    span: tracing::Span,
    key: StreamKey,
    ice_timeout: Duration,
    rtc: Rtc,
    socket: Arc<tokio::net::UdpSocket>,
    /// Once on a driver: what the viewer's receive task read from the socket.
    inbox: Option<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
    /// The address the viewer sends to (the candidate's), what str0m matches datagrams by.
    candidate: SocketAddr,
    tracks: Vec<Track>,
    outbox: outbox::Outbox,
    /// The frames of one tick (kept for its allocation).
    batch: Vec<Arc<Frame>>,
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
    /// When the last datagram came from the viewer.
    last_heard: Option<Instant>,
    pli_wanted: bool,
    last_pli: Option<Instant>,
    plis: u64,
    frames: u64,
    /// Audio frames not sent for being older than the live point.
    skipped: u64,
    /// Datagrams the socket could not take (full send buffer).
    send_dropped: u64,
    next_timeout: Option<Instant>,
    /// Times the session's task woke up, then ticks of its driver.
    wakes: u64,
    /// Datagrams read from the viewer.
    received: u64,
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
        socket: Arc::new(bound.socket),
        inbox: None,
        candidate: bound.candidate,
        tracks: negotiated.tracks.iter().map(Track::new).collect(),
        outbox: outbox::Outbox::default(),
        batch: Vec::new(),
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
                let (tx, rx) = mpsc::channel(INBOX);
                self.inbox = Some(rx);
                tokio::spawn(receive_task(self.socket.clone(), tx).instrument(self.span.clone()));
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
        tracing::info!(%reason, frames = s.frames, skipped = s.skipped, rtp_packets = ?packets, send_dropped = s.send_dropped, received = s.received, plis = s.plis, wakes = s.wakes, seconds = self.epoch.elapsed().as_secs(), "WHEP session ended");
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

    /// One tick of a connected viewer (on a driver): what the viewer sent (its receive task
    /// read it) is handled, the frames
    /// that queued since the last tick are sent, str0m's timers are served; `now` is the
    /// tick's one clock read. An error is why the session ends.
    fn drive(&mut self, now: Instant) -> Result<(), String> {
        self.state.wakes += 1;
        // A token's check takes a lock: looked at every few ticks (DELETE or shutdown ends the
        // session within `STOP_CHECK_TICKS` ticks).
        if self.state.wakes % STOP_CHECK_TICKS == 0 {
            if self.registration.stop.is_cancelled() {
                return Err(self.registration.stop_reason().into());
            }
            if self.gw.shutdown.is_cancelled() {
                return Err("gateway shutting down".into());
            }
        }
        let result = self.drive_once(now);
        self.flush();
        result
    }

    fn drive_once(&mut self, now: Instant) -> Result<(), String> {
        while let Some((datagram, source)) = self.inbox.as_mut().and_then(|rx| rx.try_recv().ok()) {
            self.receive(&datagram, source, now)?;
        }
        let mut batch = std::mem::take(&mut self.batch);
        let ended = self.take_ready(&mut batch, MAX_BATCH);
        // str0m is moved on only when there is something to send or its own timer is due
        // (most ticks of a viewer have neither).
        let sent = if !batch.is_empty() {
            self.send_frames(&batch, now)
        } else if self.state.next_timeout.is_none_or(|t| t <= now) {
            self.tick(now)
        } else {
            Ok(())
        };
        batch.clear();
        self.batch = batch;
        sent?;
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
            self.state.send_dropped += self.outbox.flush(&*self.socket);
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
        if is_lost(self.state.lost_since, self.state.last_heard, now) {
            return Err(format!("ICE lost the viewer for {LOST_GRACE:?} and nothing came from it for {SILENCE:?}"));
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
            // Writing only queues on the stream; the packets leave when str0m is moved on.
            self.tracks[track].write(&mut self.rtc, packetize::cached(frame), time, wallclock);
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
        self.state.received += 1;
        self.state.last_heard = Some(now);
        let Ok(contents) = datagram.try_into() else {
            return Ok(()); // neither STUN, DTLS, RTP nor RTCP
        };
        let input =
            Input::Receive(now, Receive { proto: NetProtocol::Udp, source, destination: self.candidate, contents });
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

/// Whether a viewer is gone: ICE disconnected for `LOST_GRACE` (str0m's ICE-lite side saw no
/// binding request for 15 s) and nothing at all came from it for `SILENCE`. Browsers send
/// consent checks every few seconds; libnice-based viewers (GStreamer's webrtcbin) send none
/// once connected, only RTCP, so ICE alone would cut them off after 20 s.
fn is_lost(ice_lost_since: Option<Instant>, last_heard: Option<Instant>, now: Instant) -> bool {
    let ice_lost = ice_lost_since.is_some_and(|t| now.saturating_duration_since(t) > LOST_GRACE);
    let silent = last_heard.is_none_or(|t| now.saturating_duration_since(t) > SILENCE);
    ice_lost && silent
}

/// Reads a connected viewer's datagrams (RTCP, NACK, PLI, consent checks: a few a second) for
/// its driver, which takes them at its next tick; ends when the viewer's session does.
async fn receive_task(socket: Arc<tokio::net::UdpSocket>, tx: mpsc::Sender<(Vec<u8>, SocketAddr)>) {
    let mut buf = vec![0u8; 2048];
    loop {
        tokio::select! {
            _ = tx.closed() => return,
            r = socket.recv_from(&mut buf) => match r {
                // A full inbox drops the datagram, as a congested link would.
                Ok((n, source)) => drop(tx.try_send((buf[..n].to_vec(), source))),
                Err(e) => tracing::debug!(error = %e, "UDP receive failed"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_viewer_is_lost_when_ice_is_down_and_it_is_silent() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(!is_lost(None, None, at(100)), "ICE up");
        assert!(!is_lost(Some(at(10)), Some(at(9)), at(14)), "ICE down for less than the grace");
        assert!(is_lost(Some(at(10)), Some(at(2)), at(16)), "ICE down and silent: gone");
        assert!(!is_lost(Some(at(10)), Some(at(12)), at(16)), "RTCP still comes (a libnice viewer): stays");
        assert!(is_lost(Some(at(10)), Some(at(12)), at(12 + 13)), "then silent past SILENCE: gone");
        assert!(is_lost(Some(at(10)), None, at(16)), "never heard from after connecting");
    }
}
