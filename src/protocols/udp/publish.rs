//! UDP ingest sessions: an RTP sender's SDP becomes a stream of protocol `udp`.
//!
//! `start` reads the SDP, claims the stream key, binds the ports and leaves a task moving
//! frames into the hub until `DELETE`, an API kick, shutdown, a pipeline error or
//! `udp.ingest_timeout_seconds` without RTP. Keyframe requests from consumers cannot reach
//! a plain RTP sender and are ignored.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tracing::Instrument;

use super::error::UdpError;
use super::payload::{ingest_tracks, IngestTrack};
use super::receiver::{Event, Receiver};
use super::registry::{location, Describe, Kind, Registration};
use super::UdpCtx;
use super::{sdp, Started};
use crate::hub::{Publisher, StreamKey};
use crate::media::Protocol;

/// How long past the moment the silence would reach the timeout the session checks again (it
/// sleeps until then instead of waking at a fixed rate).
const WATCHDOG_SLACK: Duration = Duration::from_millis(20);

/// What `GET .../udp-ingest` shows.
struct IngestStatus {
    id: String,
    stream: StreamKey,
    location: String,
    bind: IpAddr,
    tracks: Vec<IngestTrack>,
    timeout: Duration,
    since: u64,
    frames: AtomicU64,
}

impl Describe for IngestStatus {
    fn describe(&self) -> serde_json::Value {
        let ports: Vec<_> = self
            .tracks
            .iter()
            .map(|t| {
                json!({
                    "media": t.kind, "codec": t.codec, "payload_type": t.pt, "encoding": t.encoding,
                    "clock_rate": t.clock_rate, "rtp": t.rtp_port, "rtcp": t.rtcp_port,
                })
            })
            .collect();
        json!({
            "id": self.id, "stream": self.stream.as_str(), "location": self.location,
            "bind": self.bind.to_string(), "ports": ports,
            "ingest_timeout_seconds": self.timeout.as_secs_f64(),
            "since": self.since, "frames": self.frames.load(Ordering::Relaxed),
        })
    }
}

/// Starts receiving what `sdp_text` describes as stream `key`.
pub async fn start(gw: &UdpCtx, key: StreamKey, sdp_text: &str, remote: Option<String>) -> Result<Started, UdpError> {
    let description = sdp::parse(sdp_text)?;
    let tracks = ingest_tracks(&description)?;
    gw.udp.check_ingest_ports(tracks.iter().flat_map(|t| std::iter::once(t.rtp_port).chain(t.rtcp_port)))?;
    let publisher = gw.hub.claim_and_publish(key.clone(), Protocol::Udp, "rtp", remote).await?;
    let udp = &gw.udp;
    let receiver =
        Receiver::start(&format!("udp-ingest-{key}"), &tracks, udp.bind(), udp.latency_ms(), udp.metrics().clone())?;
    let id = udp.registry().new_id();
    let location = location(Kind::Ingest, &key, &id);
    let status = Arc::new(IngestStatus {
        id: id.clone(),
        stream: key.clone(),
        location: location.clone(),
        bind: udp.bind(),
        tracks,
        timeout: udp.ingest_timeout(),
        since: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        frames: AtomicU64::new(0),
    });
    let body = status.describe();
    let registration = udp.registry().register(id, Kind::Ingest, key.clone(), status.clone());
    let span = tracing::info_span!("udp_ingest", stream = %key, protocol = "udp", session = %registration.id);
    let ports: Vec<String> =
        status.tracks.iter().map(|t| format!("{} {} pt {} on {}", t.kind, t.codec, t.pt, t.rtp_port)).collect();
    let path = receiver.path();
    span.in_scope(|| tracing::info!(bind = %status.bind, ports = ?ports, path, "UDP ingest started"));
    let session = Session { publisher, receiver, registration, status };
    tokio::spawn(session.run(gw.clone()).instrument(span));
    Ok(Started { location, body, sdp: None })
}

struct Session {
    publisher: Publisher,
    receiver: Receiver,
    registration: Registration,
    status: Arc<IngestStatus>,
}

impl Session {
    async fn run(mut self, gw: UdpCtx) {
        let watchdog = tokio::time::sleep(WATCHDOG_SLACK);
        let timeout = self.status.timeout;
        // Made once, not on every packet's turn of the loop.
        let stop = self.registration.stop.clone().cancelled_owned();
        let shutdown = gw.shutdown.clone().cancelled_owned();
        let kicked = self.publisher.kicked_owned();
        tokio::pin!(stop, shutdown, kicked, watchdog);
        let reason = loop {
            tokio::select! {
                _ = &mut stop => break "stopped through the API (DELETE)".to_string(),
                _ = &mut shutdown => break "gateway shutting down".into(),
                _ = &mut kicked => break "disconnected through the API".into(),
                event = self.receiver.next() => match event {
                    Event::Frames => {
                        for frame in self.receiver.take_frames() {
                            self.status.frames.fetch_add(1, Ordering::Relaxed);
                            self.publisher.add_bytes_in(frame.data.len());
                            self.publisher.push(frame);
                        }
                    }
                    Event::Error(e) => break format!("the receiving pipeline failed: {e}"),
                    Event::Closed => break "media channel closed".into(),
                },
                _ = &mut watchdog => {
                    let silence = self.receiver.silence();
                    if silence > timeout {
                        break format!("no RTP for {timeout:?}");
                    }
                    // If nothing arrives meanwhile, the timeout is reached then.
                    let next = tokio::time::Instant::now() + (timeout - silence) + WATCHDOG_SLACK;
                    watchdog.as_mut().reset(next);
                }
            }
        };
        tracing::info!(%reason, frames = self.status.frames.load(Ordering::Relaxed), "UDP ingest ended");
        drop(self.publisher);
        self.receiver.stop().await;
        // Dropping the publisher ends the stream; dropping the receiver stops the pipeline
        // and frees the ports; dropping the registration removes the session.
    }
}
