//! One HTTP-FLV viewer's loop, whatever carries its bytes ([`Sink`]): the subscription's frames
//! in batches (about one wake-up per video frame, see [`Subscription::next_batch`]) become FLV
//! tags in an [`Outbox`] (the viewer's own headers around the stream's shared tag bodies),
//! handed to the sink in one piece per batch.
//!
//! The wait on the viewer is bounded ([`crate::hub::egress`]): what the viewer has not taken
//! is bounded in media time ([`HeldMedia`]); a batch that finds it full waits at most a
//! second for room, else the viewer has lagged (it skips to the next keyframe, and is dropped
//! after `hub.max_lag_events`), and a viewer that takes nothing for the stall bound is dropped.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::{file_header, put_file_tag, FlvEgress};
use crate::hub::egress::{sleep_until, within, DropReason, EgressPacer, Verdict};
use crate::hub::held::HeldMedia;
use crate::hub::outbox::Outbox;
use crate::hub::{Batching, EndReason, Subscription};

/// Where a viewer's bytes go: a socket of its own, or a queue toward an HTTP body.
pub(super) trait Sink {
    /// Hands the sink as much of `out` as it takes now, without waiting. An error: the
    /// viewer is gone.
    fn push(&mut self, out: &mut Outbox) -> std::io::Result<()>;
    /// Resolves when the sink may take more (cancel-safe); an error: the viewer is gone.
    fn ready(&self) -> impl Future<Output = std::io::Result<()>> + Send;
    /// Resolves when the viewer has gone away (cancel-safe).
    fn closed(&self) -> impl Future<Output = ()> + Send;
    /// `(bytes the viewer has taken in all, bytes held in the sink but not taken)`;
    /// `written` is what the sink has been handed in all. Without `fresh`, what costs a
    /// system call to learn may be a little old.
    fn progress(&mut self, written: u64, fresh: bool) -> (u64, usize);
}

/// How often a viewer whose queue is full is looked at while a batch waits for room.
const ROOM_POLL: Duration = Duration::from_millis(20);

/// Sends `sub` to the viewer until either side ends; why it ended (None: the viewer left).
pub(super) async fn run<S: Sink>(
    mut sub: Subscription,
    sink: &mut S,
    stall: Duration,
    batching: Batching,
) -> Option<EndReason> {
    let mut egress = FlvEgress::new();
    let mut tags = Vec::new();
    let mut out = Outbox::new();
    egress.start(sub.video_info(), sub.audio_info(), &mut tags);
    out.put_slice(&file_header(sub.has_audio(), sub.has_video()));
    for t in tags.drain(..) {
        put_file_tag(&mut out, t.kind, t.timestamp, &t.body);
    }
    sub.add_bytes_out(out.pending());
    sink.push(&mut out).ok()?;
    let mut pacer = EgressPacer::new(stall);
    let mut held = HeldMedia::new();
    let mut batch = Vec::new();
    let mut next_write: Option<Instant> = None;
    loop {
        if let Some(at) = next_write.take() {
            // The merge window: what arrives meanwhile goes out with the next write.
            tokio::select! {
                _ = tokio::time::sleep_until(at) => {}
                _ = sink.closed() => return None,
            }
        }
        let more = tokio::select! {
            biased;
            more = sub.next_batch(&mut batch, batching) => more,
            _ = sink.closed() => return None,
            r = sink.ready(), if !out.is_empty() => {
                r.ok()?;
                sink.push(&mut out).ok()?;
                continue;
            }
            _ = sleep_until(pacer.deadline()) => {
                observe(sink, &out, &mut pacer, &mut held, true);
                if pacer.stalled(Instant::now()) {
                    return Some(dropped(DropReason::Stalled, &pacer));
                }
                continue;
            }
        };
        if !more {
            break;
        }
        observe(sink, &out, &mut pacer, &mut held, false);
        if !held.has_room() {
            // Full: wait (bounded) for the viewer to take some.
            let _ = within(pacer.frame_wait(Instant::now()), async {
                while !held.has_room() {
                    if out.is_empty() {
                        // All of it is in the sink: only the viewer can make room.
                        tokio::time::sleep(ROOM_POLL).await;
                    } else {
                        sink.ready().await?;
                        sink.push(&mut out)?;
                    }
                    observe(sink, &out, &mut pacer, &mut held, true);
                }
                Ok::<_, std::io::Error>(())
            })
            .await;
            observe(sink, &out, &mut pacer, &mut held, true);
        }
        match pacer.decide(Instant::now(), held.has_room(), || sub.lagged()) {
            Verdict::Write => {}
            Verdict::SkipToKeyframe => {
                batch.clear();
                egress.resync();
                tracing::debug!("viewer behind; skipping to the next keyframe");
                continue;
            }
            Verdict::Drop(DropReason::Stalled) => return Some(dropped(DropReason::Stalled, &pacer)),
            Verdict::Drop(DropReason::LaggedTooOften) => break,
        }
        let before = out.pending();
        for frame in batch.drain(..) {
            if egress.frame(&frame, &mut tags).is_err() {
                tags.clear();
                continue;
            }
            for t in tags.drain(..) {
                let len = out.pending();
                put_file_tag(&mut out, t.kind, t.timestamp, &t.body);
                held.queued(out.pending() - len, t.timestamp);
            }
        }
        sub.add_bytes_out(out.pending() - before);
        sink.push(&mut out).ok()?;
        if !batching.merge_window.is_zero() {
            next_write = Some(Instant::now() + batching.merge_window);
        }
    }
    sub.end_reason().cloned()
}

/// Tells the pacer and the held-media bound how far the viewer is.
/// `fresh`: ask what the sink cannot tell for free (the kernel's queue) now.
fn observe<S: Sink>(sink: &mut S, out: &Outbox, pacer: &mut EgressPacer, held: &mut HeldMedia, fresh: bool) {
    let (taken, in_sink) = sink.progress(out.written(), fresh);
    let waiting = in_sink + out.pending();
    pacer.observe(Instant::now(), taken, waiting);
    held.still_waiting(waiting);
}

/// Ends a viewer that took nothing for the stall bound.
fn dropped(reason: DropReason, pacer: &EgressPacer) -> EndReason {
    tracing::info!(stall = ?pacer.stall(), "viewer {reason}");
    EndReason::TooSlow
}
