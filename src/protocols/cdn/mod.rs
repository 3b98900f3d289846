//! CDN relays: pushes (a local stream to an RTMP origin) and pulls (a remote RTMP stream as
//! a local publisher, protocol `cdn`), each a task with its own retry and visible state.

mod backoff;
mod pull;
mod push;
mod status;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use backoff::Backoff;
pub use status::{RelayKind, RelayState, RelayStatus, StatusCell};

use crate::config::RelaySettings;
use crate::hub::{Hub, HubError, StreamKey};
use crate::protocols::rtmp::{RtmpError, RtmpUrl};

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("{0}")]
    Rtmp(#[from] RtmpError),
    #[error("{0}")]
    Hub(#[from] HubError),
    #[error("the origin answered: {0}")]
    Origin(String),
    #[error("the origin closed the connection")]
    Closed,
    #[error("the destination took nothing for {0:?}")]
    Stalled(std::time::Duration),
    #[error("the destination reads too slowly: it lagged too often")]
    TooSlow,
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("disconnected through the API")]
    Kicked,
    #[error("stream `{0}` already has a pull")]
    DuplicatePull(String),
}

struct Entry {
    stream: StreamKey,
    status: StatusCell,
    cancel: CancellationToken,
}

/// All pushes and pulls of the gateway.
#[derive(Clone)]
pub struct Relays {
    inner: Arc<Inner>,
}

struct Inner {
    hub: Hub,
    settings: RelaySettings,
    shutdown: CancellationToken,
    entries: Mutex<BTreeMap<String, Entry>>,
    next_id: AtomicU64,
}

impl Relays {
    pub fn new(hub: Hub, settings: RelaySettings, shutdown: CancellationToken) -> Relays {
        Relays {
            inner: Arc::new(Inner {
                hub,
                settings,
                shutdown,
                entries: Mutex::new(BTreeMap::new()),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// Starts relaying `stream` to `url` whenever the stream is live.
    pub fn add_push(&self, stream: StreamKey, url: RtmpUrl) -> RelayStatus {
        self.add_push_with_backups(stream, url, Vec::new())
    }

    /// Like [`Relays::add_push`], moving to the next of `backups` when the current destination
    /// fails (and back to `url` once it accepts the stream again).
    pub fn add_push_with_backups(&self, stream: StreamKey, url: RtmpUrl, backups: Vec<RtmpUrl>) -> RelayStatus {
        self.start(RelayKind::Push, stream, url, backups)
    }

    /// Makes `url` the publisher of `stream`; one pull per stream key.
    pub fn add_pull(&self, stream: StreamKey, url: RtmpUrl) -> Result<RelayStatus, RelayError> {
        let taken = self.lock().values().any(|e| e.stream == stream && e.status.snapshot().kind == RelayKind::Pull);
        if taken {
            return Err(RelayError::DuplicatePull(stream.to_string()));
        }
        Ok(self.start(RelayKind::Pull, stream, url, Vec::new()))
    }

    fn start(&self, kind: RelayKind, stream: StreamKey, url: RtmpUrl, backups: Vec<RtmpUrl>) -> RelayStatus {
        let n = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n}", if kind == RelayKind::Push { "push" } else { "pull" });
        let status = StatusCell::new(id.clone(), kind, stream.to_string(), url.to_string());
        status.set_backups(backups.iter().map(ToString::to_string).collect());
        let cancel = self.inner.shutdown.child_token();
        let (hub, settings) = (self.inner.hub.clone(), self.inner.settings.clone());
        let span = tracing::info_span!("relay", %id, stream = %stream, url = %url);
        match kind {
            RelayKind::Push => {
                let destinations = std::iter::once(url).chain(backups).collect();
                tokio::spawn(
                    push::run(hub, stream.clone(), destinations, status.clone(), settings, cancel.clone())
                        .instrument(span),
                )
            }
            RelayKind::Pull => tokio::spawn(
                pull::run(hub, stream.clone(), url, status.clone(), settings, cancel.clone()).instrument(span),
            ),
        };
        let snapshot = status.snapshot();
        self.lock().insert(id, Entry { stream, status, cancel });
        snapshot
    }

    pub fn list(&self, kind: RelayKind, stream: Option<&StreamKey>) -> Vec<RelayStatus> {
        self.lock()
            .values()
            .filter(|e| stream.is_none_or(|s| &e.stream == s))
            .map(|e| e.status.snapshot())
            .filter(|s| s.kind == kind)
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<RelayStatus> {
        self.lock().get(id).map(|e| e.status.snapshot())
    }

    /// Stops and forgets a relay; false if there is no such id (of that kind).
    pub fn remove(&self, kind: RelayKind, id: &str) -> bool {
        let mut entries = self.lock();
        match entries.get(id) {
            Some(e) if e.status.snapshot().kind == kind => {
                if let Some(e) = entries.remove(id) {
                    e.cancel.cancel();
                }
                true
            }
            _ => false,
        }
    }

    /// (kind, state, count) for `/metrics`.
    pub fn counts_by_state(&self) -> Vec<(&'static str, &'static str, usize)> {
        let mut counts: BTreeMap<(&'static str, &'static str), usize> = BTreeMap::new();
        for e in self.lock().values() {
            let s = e.status.snapshot();
            let kind = if s.kind == RelayKind::Push { "push" } else { "pull" };
            *counts.entry((kind, s.state.as_str())).or_default() += 1;
        }
        counts.into_iter().map(|((k, s), n)| (k, s, n)).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.inner.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// After a failed attempt: gives up (state `failed`) past `max_attempts`, else shows
/// `retrying` with the next attempt time and waits the backoff delay. False: stop the relay.
async fn retry_after(
    what: &str,
    error: &RelayError,
    backoff: &mut Backoff,
    settings: &RelaySettings,
    status: &StatusCell,
    cancel: &CancellationToken,
) -> bool {
    let delay = backoff.fail();
    if settings.max_attempts > 0 && backoff.failures >= settings.max_attempts {
        tracing::warn!(error = %error, attempts = backoff.failures, "{what} failed; giving up");
        status.failed(format!("{error} (gave up after {} attempts)", backoff.failures));
        return false;
    }
    tracing::warn!(error = %error, retry_in = ?delay, "{what} failed; retrying");
    status.retrying(error.to_string(), delay, backoff.failures);
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = cancel.cancelled() => false,
    }
}
