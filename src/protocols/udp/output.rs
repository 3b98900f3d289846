//! UDP outputs: a stream sent as plain RTP to `host:port` (video) and `host:port+2` (audio),
//! each with RTCP on the next port, planned by the hub like any consumer of protocol `udp`.
//!
//! `start` checks the host against `relay.allowed_hosts` (outputs are relays), subscribes, waits (bounded)
//! until every track's codec configuration is known so the SDP can carry it, starts the
//! sending pipeline and answers with that SDP. The output ends with the stream, on `DELETE`
//! or at shutdown.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument;

use super::clock::SendClock;
use super::egress::Sender;
use super::error::UdpError;
use super::registry::{location, Describe, Kind, Registration};
use super::sdp_out::{self, OutputTrack};
use super::Started;
use super::UdpCtx;
use crate::hub::{ConsumerRequest, EndReason, StreamKey, Subscription};
use crate::media::{Frame, Protocol, TrackInfo, TrackKind};

/// How long an output waits for its tracks' configurations (a conversion's first frames).
const READY_TIMEOUT: Duration = Duration::from_secs(8);
/// Frames held while waiting for them.
const MAX_HELD_FRAMES: usize = 4096;
/// Bytes a track may queue in the pipeline before the feeder holds back.
const MAX_QUEUED_BYTES: u64 = 4 * 1024 * 1024;
const HOST_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// `POST /api/v1/streams/{stream}/udp-outputs` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputRequest {
    /// Where to send: an address or a host name.
    pub host: String,
    /// Video RTP port; RTCP on `port+1`, audio on `port+2`, its RTCP on `port+3`.
    pub port: u16,
}

struct OutputStatus {
    id: String,
    stream: StreamKey,
    location: String,
    host: String,
    address: IpAddr,
    port: u16,
    tracks: Vec<OutputTrack>,
    plan: serde_json::Value,
    sdp: String,
    since: u64,
    frames: AtomicU64,
    packets: Arc<AtomicU64>,
}

impl Describe for OutputStatus {
    fn describe(&self) -> serde_json::Value {
        let tracks: Vec<_> = self
            .tracks
            .iter()
            .map(|t| json!({ "media": t.kind, "codec": t.codec, "payload_type": t.pt, "port": t.port, "rtcp_port": t.port.saturating_add(1) }))
            .collect();
        json!({
            "id": self.id, "stream": self.stream.as_str(), "location": self.location,
            "host": self.host, "address": self.address.to_string(), "port": self.port,
            "tracks": tracks, "plan": self.plan, "sdp": self.sdp, "since": self.since,
            "frames": self.frames.load(Ordering::Relaxed), "rtp_packets": self.packets.load(Ordering::Relaxed),
        })
    }
}

/// Starts sending stream `key` to `request.host`.
pub async fn start(
    gw: &UdpCtx,
    key: StreamKey,
    request: OutputRequest,
    remote: Option<String>,
) -> Result<Started, UdpError> {
    if request.port == 0 || request.port > u16::MAX - 3 {
        return Err(UdpError::BadRequest(format!(
            "port {} unusable: video RTP/RTCP go to port and port+1, audio to port+2 and port+3 (1-65532)",
            request.port
        )));
    }
    let address = resolve_allowed(gw, &request.host, request.port).await?;
    let who = ConsumerRequest { protocol: Protocol::Udp, transport: "rtp".into(), remote };
    let mut sub = gw.hub.subscribe(&key, who).await?;
    let (held, infos) = wait_for_infos(&mut sub).await;
    let tracks: Vec<OutputTrack> = infos
        .iter()
        .filter_map(|info| sdp_out::port_for(info.kind(), request.port).map(|port| sdp_out::output_track(info, port)))
        .collect();
    if tracks.is_empty() {
        return Err(UdpError::NotReady(format!("stream `{key}` had no media to send within {READY_TIMEOUT:?}")));
    }
    let udp = &gw.udp;
    let sender = Sender::start(&format!("udp-output-{key}"), &tracks, address, udp.metrics().clone())?;
    let id = udp.registry().new_id();
    let session_id = u64::from_str_radix(&id, 16).unwrap_or(0);
    let sdp = sdp_out::render(&tracks, udp.bind(), address, &format!("interop-gateway {key}"), session_id);
    let location = location(Kind::Output, &key, &id);
    let status = Arc::new(OutputStatus {
        id: id.clone(),
        stream: key.clone(),
        location: location.clone(),
        host: request.host.clone(),
        address,
        port: request.port,
        tracks,
        plan: serde_json::to_value(sub.plan()).unwrap_or_default(),
        sdp: sdp.clone(),
        since: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        frames: AtomicU64::new(0),
        packets: sender.packets(),
    });
    let body = status.describe();
    let registration = udp.registry().register(id, Kind::Output, key.clone(), status.clone());
    let span = tracing::info_span!("udp_output", stream = %key, protocol = "udp", session = %registration.id);
    span.in_scope(|| tracing::info!(to = %address, port = request.port, plan = ?sub.plan(), "UDP output started"));
    let session = Session { sub, sender, registration, status, clock: SendClock::default(), checked: (None, None) };
    tokio::spawn(session.run(gw.clone(), held).instrument(span));
    Ok(Started { location, body, sdp: Some(sdp) })
}

/// The host's address, if every address it names is allowed (403 otherwise).
async fn resolve_allowed(gw: &UdpCtx, host: &str, port: u16) -> Result<IpAddr, UdpError> {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(UdpError::BadRequest("`host` is empty".into()));
    }
    let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => {
            let lookup = tokio::time::timeout(HOST_LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port)))
                .await
                .map_err(|_| UdpError::BadRequest(format!("looking up `{host}` timed out")))?
                .map_err(|e| UdpError::BadRequest(format!("cannot resolve `{host}`: {e}")))?;
            lookup.map(|a| a.ip()).collect()
        }
    };
    gw.udp
        .check_output_host(host, &addresses)
        .map_err(|why| UdpError::HostNotAllowed(format!("UDP outputs may not send there: {why}")))?;
    addresses.first().copied().ok_or_else(|| UdpError::BadRequest(format!("`{host}` has no address")))
}

/// Reads frames until every planned track's info is known (bounded); returns the frames read
/// and the infos, video first.
async fn wait_for_infos(sub: &mut Subscription) -> (Vec<Arc<Frame>>, Vec<Arc<TrackInfo>>) {
    let mut video = sub.video_info().cloned().filter(|_| sub.has_video());
    let mut audio = sub.audio_info().cloned().filter(|_| sub.has_audio());
    let mut held = Vec::new();
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    while (sub.has_video() && video.is_none() || sub.has_audio() && audio.is_none()) && held.len() < MAX_HELD_FRAMES {
        match tokio::time::timeout_at(deadline, sub.next()).await {
            Ok(Some(frame)) => {
                let slot = match frame.kind() {
                    TrackKind::Video => &mut video,
                    TrackKind::Audio => &mut audio,
                };
                slot.get_or_insert_with(|| frame.info.clone());
                held.push(frame);
            }
            Ok(None) | Err(_) => break,
        }
    }
    if sub.has_video() != video.is_some() || sub.has_audio() != audio.is_some() {
        tracing::warn!(
            video = video.is_some(),
            audio = audio.is_some(),
            "UDP output starts without a track whose media did not arrive in time"
        );
    }
    (held, video.into_iter().chain(audio).collect())
}

struct Session {
    sub: Subscription,
    sender: Sender,
    registration: Registration,
    status: Arc<OutputStatus>,
    clock: SendClock,
    /// The track descriptions last checked against the SDP (video, audio).
    checked: (Option<Arc<TrackInfo>>, Option<Arc<TrackInfo>>),
}

impl Session {
    async fn run(mut self, gw: UdpCtx, mut held: Vec<Arc<Frame>>) {
        // Whatever else is ready now (the cached GOP) goes out at once, stamped in the past.
        while let Some(Some(frame)) = self.sub.next().now_or_never() {
            held.push(frame);
            if held.len() >= MAX_HELD_FRAMES {
                break;
            }
        }
        if let Some(first) = held.first() {
            let newest =
                held.iter().map(|f| f.dts).filter(|d| (*d - first.dts).0.abs() < super::clock::MAX_SPREAD.0).max();
            self.clock.start(first.dts, newest.unwrap_or(first.dts), self.sender.running_time());
        }
        let mut reason = None;
        for frame in &held {
            if let Err(e) = self.send(frame) {
                reason = Some(e);
                break;
            }
        }
        let reason = match reason {
            Some(r) => r,
            None => self.feed(&gw).await,
        };
        if self.sub.end_reason() == Some(&EndReason::TooSlow) {
            gw.hub.metrics().note_consumer_too_slow();
        }
        tracing::info!(
            %reason,
            frames = self.status.frames.load(Ordering::Relaxed),
            rtp_packets = self.status.packets.load(Ordering::Relaxed),
            "UDP output ended"
        );
        self.sender.stop().await;
    }

    async fn feed(&mut self, gw: &UdpCtx) -> String {
        loop {
            let congested = self.sender.queued_bytes() > MAX_QUEUED_BYTES;
            tokio::select! {
                _ = self.registration.stop.cancelled() => return "stopped through the API (DELETE)".into(),
                _ = gw.shutdown.cancelled() => return "gateway shutting down".into(),
                e = self.sender.next_error() => return format!("the sending pipeline failed: {e}"),
                frame = self.sub.next(), if !congested => match frame {
                    Some(frame) => {
                        if let Err(e) = self.send(&frame) {
                            return e;
                        }
                    }
                    None => {
                        return match self.sub.end_reason() {
                            Some(EndReason::TooSlow) => "output too slow".into(),
                            _ => "stream ended".into(),
                        }
                    }
                },
                _ = tokio::time::sleep(Duration::from_millis(10)), if congested => {}
            }
        }
    }

    fn send(&mut self, frame: &Frame) -> Result<(), String> {
        self.check_fits(frame)?;
        let sender = &self.sender;
        let (dts, pts) = self.clock.map(frame.kind(), frame.dts, frame.pts, || sender.running_time());
        self.sender.push(frame, dts, pts)?;
        self.status.frames.fetch_add(1, Ordering::Relaxed);
        self.sub.add_bytes_out(frame.data.len());
        Ok(())
    }

    /// Ends the output when a track's new description (a returning publisher's) no longer
    /// matches the SDP its receiver read; checked once per description.
    fn check_fits(&mut self, frame: &Frame) -> Result<(), String> {
        let slot = match frame.kind() {
            TrackKind::Video => &mut self.checked.0,
            TrackKind::Audio => &mut self.checked.1,
        };
        if slot.as_ref().is_some_and(|seen| Arc::ptr_eq(seen, &frame.info)) {
            return Ok(());
        }
        *slot = Some(frame.info.clone());
        match self.status.tracks.iter().find(|t| t.kind == frame.kind()) {
            Some(announced) => sdp_out::still_fits(announced, &frame.info),
            None => Ok(()),
        }
    }
}
