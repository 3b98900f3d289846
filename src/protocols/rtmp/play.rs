//! One RTMP player's loop: the subscription's frames in batches (about one wake-up per video
//! frame, see [`Subscription::next_batch`]) become media messages whose payloads are the
//! stream's shared tag bodies, chunked straight into the connection's outbox and written with
//! one vectored system call per batch.
//!
//! The wait on the player is bounded: what it has not taken is bounded in media time
//! ([`crate::hub::held`]); a batch that finds it full waits (bounded) for room, else the
//! player has lagged (it skips to the next keyframe, and is dropped after
//! `hub.max_lag_events`); a player that takes nothing for `hub.write_stall_seconds` is
//! dropped (see [`crate::hub::egress`]).

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::serve::RtmpCtx;
use super::{MediaKind, ServerConn, ServerEvent};
use crate::hub::egress::{sleep_until, within, DropReason, EgressPacer, Verdict, FRAME_WAIT};
use crate::hub::held::HeldMedia;
use crate::hub::{EndReason, Subscription};
use crate::protocols::flv::{FlvEgress, FlvTag, TagKind};
use crate::socket::KernelQueue;

/// Sends the subscription to the player until either side ends; returns why it ended.
pub(super) async fn send(conn: &mut ServerConn<TcpStream>, mut sub: Subscription, gw: &RtmpCtx) -> String {
    let mut egress = FlvEgress::new();
    let mut tags = Vec::new();
    egress.start(sub.video_info(), sub.audio_info(), &mut tags);
    let batching = gw.hub.config().batching;
    let shutdown = gw.shutdown.cancelled();
    tokio::pin!(shutdown);
    let mut pacer = EgressPacer::new(gw.hub.config().write_stall);
    let too_slow = |reason: DropReason| {
        gw.hub.metrics().note_consumer_too_slow();
        format!("too slow ({reason})")
    };
    let mut progress = Progress::default();
    let mut held = HeldMedia::new();
    queue(conn, &mut tags, &sub, &mut held);
    let mut batch = Vec::new();
    let mut next_write: Option<Instant> = None;
    loop {
        if let Some(at) = next_write.take() {
            // The merge window: what is queued goes out, what arrives meanwhile waits.
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => break,
                    event = conn.next_event() => if let Some(why) = ended(event) { return why },
                    _ = &mut shutdown => return "gateway shutting down".into(),
                }
            }
        }
        let more = tokio::select! {
            biased;
            more = sub.next_batch(&mut batch, batching) => more,
            // Writes what is queued, then reads.
            event = conn.next_event() => match ended(event) {
                Some(why) => return why,
                None => continue,
            },
            _ = sleep_until(pacer.deadline()) => {
                progress.observe(conn, &mut pacer, &mut held, false);
                if pacer.stalled(Instant::now()) {
                    return too_slow(DropReason::Stalled);
                }
                continue;
            }
            _ = &mut shutdown => return "gateway shutting down".into(),
        };
        if !more {
            if sub.end_reason() == Some(&EndReason::TooSlow) {
                return too_slow(DropReason::LaggedTooOften);
            }
            let _ = within(FRAME_WAIT, conn.flush()).await;
            return "stream ended".into();
        }
        for frame in batch.drain(..) {
            let _ = egress.frame(&frame, &mut tags);
        }
        if tags.is_empty() {
            continue;
        }
        progress.observe(conn, &mut pacer, &mut held, false);
        if !held.has_room() {
            if let Some(Err(e)) = within(pacer.frame_wait(Instant::now()), conn.flush()).await {
                return format!("write failed: {e}");
            }
            progress.observe(conn, &mut pacer, &mut held, true);
        }
        match pacer.decide(Instant::now(), held.has_room(), || sub.lagged()) {
            Verdict::Write => queue(conn, &mut tags, &sub, &mut held),
            Verdict::SkipToKeyframe => {
                tags.clear();
                egress.resync();
                tracing::debug!("player behind; skipping to the next keyframe");
            }
            Verdict::Drop(reason) => return too_slow(reason),
        }
        if !batching.merge_window.is_zero() {
            next_write = Some(Instant::now() + batching.merge_window);
        }
    }
}

/// Puts `tags` into the connection's outbox (sent by the next `next_event` or `flush`).
fn queue(conn: &mut ServerConn<TcpStream>, tags: &mut Vec<FlvTag>, sub: &Subscription, held: &mut HeldMedia) {
    for t in tags.drain(..) {
        let kind = match t.kind {
            TagKind::Audio => MediaKind::Audio,
            TagKind::Video => MediaKind::Video,
            TagKind::Script => MediaKind::Data,
        };
        sub.add_bytes_out(t.body.len());
        held.queued(t.body.len(), t.timestamp);
        conn.queue_shared_media(kind, t.timestamp, &t.body);
    }
}

/// Why the player's session ended, if an event says it did.
fn ended(event: Result<Option<ServerEvent>, super::RtmpError>) -> Option<String> {
    match event {
        Ok(Some(ServerEvent::Stop)) | Ok(None) => Some("player closed".into()),
        Ok(Some(_)) => None,
        Err(e) => Some(format!("protocol error: {e}")),
    }
}

/// How far the player is: the connection's own queue, and what the kernel holds for it
/// ([`KernelQueue`]: asked at most once a second, or afresh with `fresh`).
#[derive(Default)]
struct Progress {
    kernel: KernelQueue,
}

impl Progress {
    /// Tells the pacer and the held-media bound how far the player is.
    fn observe(
        &mut self,
        conn: &mut ServerConn<TcpStream>,
        pacer: &mut EgressPacer,
        held: &mut HeldMedia,
        fresh: bool,
    ) {
        let (taken, in_kernel) = conn.kernel_progress(&mut self.kernel, fresh);
        let waiting = conn.pending_output() + in_kernel;
        pacer.observe(Instant::now(), taken, waiting);
        held.still_waiting(waiting);
    }
}
