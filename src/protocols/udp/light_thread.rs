//! The light UDP ingests' own thread: one current-thread tokio runtime where their sockets,
//! timers and session tasks live (see [`receiver`](super::receiver)). A datagram then wakes
//! that one thread, which reads it and hands the frames to the hub, where on the gateway's
//! multi-thread runtime it also woke a second worker to keep looking for work (tokio wakes
//! another when its last searching worker finds some); at 80 wake-ups a second per stream that
//! was a tenth of an ingest's CPU. The session hands its publisher back to the gateway's
//! runtime to be dropped, so what the end of a stream starts (webhooks, conversions stopping)
//! runs there.

use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle};

static RUNTIME: OnceLock<Option<Handle>> = OnceLock::new();

/// The ingest thread's runtime, started on first use; None if it could not be (the sessions
/// then run on the caller's runtime, as before).
pub fn handle() -> Option<Handle> {
    RUNTIME.get_or_init(start).clone()
}

/// Tasks alive on the ingest thread (0 before it starts).
pub fn tasks_alive() -> usize {
    RUNTIME.get().and_then(|h| h.as_ref()).map_or(0, |h| h.metrics().num_alive_tasks())
}

fn start() -> Option<Handle> {
    let runtime = match Builder::new_current_thread().enable_all().thread_name("udp-ingest").build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::warn!(error = %e, "UDP ingest runtime not started; ingests run on the main runtime");
            return None;
        }
    };
    let handle = runtime.handle().clone();
    let spawned = std::thread::Builder::new()
        .name("udp-ingest".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()));
    match spawned {
        Ok(_) => Some(handle),
        Err(e) => {
            tracing::warn!(error = %e, "UDP ingest thread not started; ingests run on the main runtime");
            None
        }
    }
}
