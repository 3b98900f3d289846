//! A push: relays a local stream to an RTMP origin (a CDN) whenever the stream is live,
//! reconnecting with backoff when the origin drops or refuses.
//!
//! A push may name backup destinations. When the current one fails, the push moves at once to
//! the next; only when every destination failed in a row does it wait (the backoff) and start
//! over at the primary. While live on a backup it checks the primary every
//! `relay.failback_seconds` and moves back as soon as the primary accepts the stream.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::status::{RelayState, StatusCell};
use super::RelayError;
use crate::config::RelaySettings;
use crate::hub::egress::{sleep_until, within, DropReason, EgressPacer, Verdict};
use crate::hub::{ConsumerRequest, EndReason, Hub, StreamKey, Subscription};
use crate::media::Protocol;
use crate::protocols::flv::{FlvEgress, FlvTag as Tag, TagKind};
use crate::protocols::rtmp::{ClientConn, ClientEvent, MediaKind, RtmpUrl};

type Conn = ClientConn<TcpStream>;

/// How one connection ended.
enum Outcome {
    /// The local stream ended.
    StreamEnded,
    /// The primary accepts the stream again: continue there on this connection.
    FailBack(Box<Conn>),
    /// The destination failed us; `was_live` if media had been flowing.
    Failed { error: RelayError, was_live: bool },
}

/// Which destination to try next after one failed. `failed_in_a_row` counts destinations that
/// failed since the push was last live; `None`: all of them did, wait and start over.
pub(super) fn next_destination(current: usize, count: usize, failed_in_a_row: usize) -> Option<usize> {
    (failed_in_a_row < count).then(|| (current + 1) % count.max(1))
}

pub(super) async fn run(
    hub: Hub,
    key: StreamKey,
    destinations: Vec<RtmpUrl>,
    status: StatusCell,
    settings: RelaySettings,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(settings.retry_min(), settings.retry_max());
    let mut current = 0;
    let mut failed_in_a_row = 0;
    let mut ready: Option<Conn> = None;
    loop {
        // In a cluster a push runs on the node the stream is published on, not where it is
        // relayed to: once per key.
        if hub.stream(&key).filter(|s| !s.is_relayed()).is_none() {
            ready = None;
            status.set(RelayState::Waiting);
            tokio::select! {
                _ = hub.wait_for_published(&key) => {}
                _ = cancel.cancelled() => return,
            }
        }
        let url = &destinations[current];
        status.set_destination(current, &url.to_string());
        status.set(RelayState::Connecting);
        let failback = (current > 0).then(|| (&destinations[0], settings.failback()));
        let outcome = tokio::select! {
            o = push_once(&hub, &key, url, ready.take(), failback, &status, &settings) => o,
            _ = cancel.cancelled() => return,
        };
        let (error, was_live) = match outcome {
            Outcome::StreamEnded => {
                tracing::info!("stream ended; push waits for it to come back");
                backoff.reset();
                (current, failed_in_a_row) = (0, 0);
                continue;
            }
            Outcome::FailBack(conn) => {
                tracing::info!(primary = %destinations[0], "the primary destination is back; moving to it");
                (ready, current, failed_in_a_row) = (Some(*conn), 0, 0);
                continue;
            }
            Outcome::Failed { error, was_live } => (error, was_live),
        };
        if let RelayError::Hub(crate::hub::HubError::NotFound(_)) = error {
            continue; // the stream ended between the check and the subscribe
        }
        if was_live {
            // It got going: a flapping origin is retried promptly, not after a grown delay.
            backoff.reset();
            failed_in_a_row = 0;
        }
        failed_in_a_row += 1;
        if let Some(next) =
            next_destination(current, destinations.len(), failed_in_a_row).filter(|_| destinations.len() > 1)
        {
            tracing::warn!(error = %error, from = %destinations[current], to = %destinations[next], "push destination failed; moving to the next");
            current = next;
            continue;
        }
        (current, failed_in_a_row) = (0, 0);
        if !super::retry_after("push", &error, &mut backoff, &settings, &status, &cancel).await {
            return;
        }
    }
}

/// Connects to `url` and starts publishing, within the connect timeout.
async fn connect_publish(url: &RtmpUrl, timeout: Duration) -> Result<Conn, RelayError> {
    let mut conn = ClientConn::connect(url, timeout).await?;
    tokio::time::timeout(timeout, conn.publish()).await.map_err(|_| RelayError::Timeout("publish"))??;
    Ok(conn)
}

/// One connection, on `ready` when given (already publishing), else a new one. With
/// `failback`, checks the primary at that interval and hands over a connection to it.
async fn push_once(
    hub: &Hub,
    key: &StreamKey,
    url: &RtmpUrl,
    ready: Option<Conn>,
    failback: Option<(&RtmpUrl, Duration)>,
    status: &StatusCell,
    settings: &RelaySettings,
) -> Outcome {
    let failed = |error: RelayError, was_live: bool| Outcome::Failed { error, was_live };
    let mut conn = match ready {
        Some(c) => c,
        None => match connect_publish(url, settings.connect_timeout()).await {
            Ok(c) => c,
            Err(e) => return failed(e, false),
        },
    };
    let who = ConsumerRequest { protocol: Protocol::Cdn, transport: "rtmp-push".into(), remote: Some(url.to_string()) };
    let mut sub = match hub.subscribe(key, who).await {
        Ok(s) => s,
        Err(e) => return failed(e.into(), false),
    };
    status.set(RelayState::Live);
    tracing::info!(destination = %url, "pushing");
    let mut egress = FlvEgress::new();
    let mut tags = Vec::new();
    egress.start(sub.video_info(), sub.audio_info(), &mut tags);
    let mut pacer = EgressPacer::new(settings.write_stall());
    let mut probe: Option<Probe> = None;
    let mut check = tokio::time::interval(failback.map_or(Duration::from_secs(3600), |(_, every)| every));
    check.reset();
    loop {
        if !tags.is_empty() {
            match bounded_room(&mut conn, &mut pacer, &mut sub).await {
                Ok(Verdict::Write) => {
                    if let Err(e) = queue(&mut conn, &mut tags, status) {
                        return failed(e, true);
                    }
                }
                Ok(Verdict::SkipToKeyframe) => {
                    tags.clear();
                    egress.resync();
                    tracing::debug!("destination behind; skipping to the next keyframe");
                }
                Ok(Verdict::Drop(reason)) => return failed(stall_error(reason, &pacer), true),
                Err(e) => return failed(e, true),
            }
        }
        tokio::select! {
            frame = sub.next() => {
                let Some(frame) = frame else {
                    if sub.end_reason() == Some(&EndReason::TooSlow) {
                        return failed(stall_error(DropReason::LaggedTooOften, &pacer), true);
                    }
                    return Outcome::StreamEnded;
                };
                let _ = egress.frame(&frame, &mut tags);
            }
            // Writes what is queued, then reads.
            event = conn.next_event() => match event {
                Err(e) => return failed(e.into(), true),
                Ok(None) => return failed(RelayError::Closed, true),
                Ok(Some(ClientEvent::Status { level, code, description })) if level == "error" => {
                    return failed(RelayError::Origin(format!("{code}: {description}")), true);
                }
                Ok(Some(_)) => {}
            },
            _ = sleep_until(pacer.deadline()) => {
                pacer.observe(Instant::now(), conn.bytes_written(), conn.pending_output());
                if pacer.stalled(Instant::now()) {
                    return failed(stall_error(DropReason::Stalled, &pacer), true);
                }
            }
            _ = check.tick(), if failback.is_some() && probe.is_none() => {
                if let Some((primary, _)) = failback {
                    let (primary, timeout) = (primary.clone(), settings.connect_timeout());
                    probe = Some(Probe(tokio::spawn(async move { connect_publish(&primary, timeout).await })));
                }
            }
            done = async { (&mut probe.as_mut().expect("guarded").0).await }, if probe.is_some() => {
                probe = None;
                match done {
                    Ok(Ok(primary)) => return Outcome::FailBack(Box::new(primary)),
                    Ok(Err(e)) => tracing::debug!(error = %e, "the primary destination is still down"),
                    Err(_) => {}
                }
            }
        }
    }
}

/// Bytes queued toward the destination past which a new frame waits (bounded) for room.
const MAX_PENDING: usize = 1024 * 1024;

/// Whether the destination has room for the next frame: when more than [`MAX_PENDING`] is
/// queued, writes for at most the pacer's frame wait first (see [`crate::hub::egress`]).
async fn bounded_room(conn: &mut Conn, pacer: &mut EgressPacer, sub: &mut Subscription) -> Result<Verdict, RelayError> {
    pacer.observe(Instant::now(), conn.bytes_written(), conn.pending_output());
    if conn.pending_output() > MAX_PENDING {
        if let Some(Err(e)) = within(pacer.frame_wait(Instant::now()), conn.flush()).await {
            return Err(e.into());
        }
        pacer.observe(Instant::now(), conn.bytes_written(), conn.pending_output());
    }
    let room = conn.pending_output() <= MAX_PENDING;
    Ok(pacer.decide(Instant::now(), room, || sub.lagged()))
}

fn stall_error(reason: DropReason, pacer: &EgressPacer) -> RelayError {
    match reason {
        DropReason::Stalled => RelayError::Stalled(pacer.stall()),
        DropReason::LaggedTooOften => RelayError::TooSlow,
    }
}

/// A check of the primary running beside the push; aborted when dropped.
struct Probe(tokio::task::JoinHandle<Result<Conn, RelayError>>);

impl Drop for Probe {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Queues the tags on the connection (written while the next frame is awaited).
fn queue(conn: &mut Conn, tags: &mut Vec<Tag>, status: &StatusCell) -> Result<(), RelayError> {
    for t in tags.drain(..) {
        let kind = match t.kind {
            TagKind::Audio => MediaKind::Audio,
            TagKind::Video => MediaKind::Video,
            TagKind::Script => MediaKind::Data,
        };
        let body = if t.kind == TagKind::Script { with_set_data_frame(&t.body) } else { t.body };
        conn.queue_media(kind, t.timestamp, &body)?;
        status.add_bytes(body.len());
    }
    Ok(())
}

/// A publisher sends metadata as `@setDataFrame("onMetaData", {...})`.
fn with_set_data_frame(body: &bytes::Bytes) -> bytes::Bytes {
    let mut out = bytes::BytesMut::new();
    crate::protocols::rtmp::amf::write_values(
        &mut out,
        &[crate::protocols::rtmp::amf::Amf0Value::string("@setDataFrame")],
    );
    out.extend_from_slice(body);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::next_destination;

    #[test]
    fn a_failed_destination_hands_over_to_the_next_until_all_failed() {
        // primary, two backups: primary fails -> 1, 1 fails -> 2, 2 fails -> wait.
        assert_eq!(next_destination(0, 3, 1), Some(1));
        assert_eq!(next_destination(1, 3, 2), Some(2));
        assert_eq!(next_destination(2, 3, 3), None);
        // Live on backup 2, which then fails: the primary is next.
        assert_eq!(next_destination(2, 3, 1), Some(0));
        // A single destination never moves.
        assert_eq!(next_destination(0, 1, 1), None);
    }
}
