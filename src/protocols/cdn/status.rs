//! The state of one push or pull, as the API shows it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RelayKind {
    Push,
    Pull,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RelayState {
    /// A push whose stream is not live: it starts when the stream is.
    Waiting,
    Connecting,
    Live,
    Retrying,
    Failed,
}

impl RelayState {
    pub fn as_str(&self) -> &'static str {
        match self {
            RelayState::Waiting => "waiting",
            RelayState::Connecting => "connecting",
            RelayState::Live => "live",
            RelayState::Retrying => "retrying",
            RelayState::Failed => "failed",
        }
    }
}

/// A snapshot for the API.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RelayStatus {
    pub id: String,
    pub kind: RelayKind,
    pub stream: String,
    pub url: String,
    /// A push's destinations after `url`, tried in order when the current one fails.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backup_urls: Vec<String>,
    /// The destination in use (connecting or live): `url` or one of `backup_urls`.
    pub active_url: String,
    /// Whether `active_url` is a backup (the push fell over to it).
    pub on_backup: bool,
    /// Times a push moved to another destination.
    pub failovers: u32,
    pub state: RelayState,
    /// Why the last attempt failed (or why it gave up).
    pub reason: Option<String>,
    /// Unix time (seconds, fractional) of the next attempt while retrying.
    pub next_attempt_at: Option<f64>,
    pub attempts: u32,
    pub failures_in_a_row: u32,
    pub bytes: u64,
    /// Unix time the current state began.
    pub since: f64,
}

/// Shared between a relay's task (which writes) and the API (which reads).
#[derive(Clone)]
pub struct StatusCell(Arc<Mutex<RelayStatus>>);

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

impl StatusCell {
    pub fn new(id: String, kind: RelayKind, stream: String, url: String) -> StatusCell {
        StatusCell(Arc::new(Mutex::new(RelayStatus {
            id,
            kind,
            stream,
            active_url: url.clone(),
            url,
            backup_urls: Vec::new(),
            on_backup: false,
            failovers: 0,
            state: RelayState::Connecting,
            reason: None,
            next_attempt_at: None,
            attempts: 0,
            failures_in_a_row: 0,
            bytes: 0,
            since: now(),
        })))
    }

    pub fn snapshot(&self) -> RelayStatus {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut RelayStatus)) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s);
    }

    pub fn set(&self, state: RelayState) {
        self.update(|s| {
            if state == RelayState::Connecting {
                s.attempts += 1;
            }
            if state == RelayState::Live {
                s.failures_in_a_row = 0;
            }
            if s.state != state {
                s.since = now();
            }
            s.state = state;
            s.next_attempt_at = None;
        });
    }

    /// A push's backup destinations (shown by the API).
    pub fn set_backups(&self, urls: Vec<String>) {
        self.update(|s| s.backup_urls = urls);
    }

    /// The push uses destination `index` (0: the primary `url`) from now on.
    pub fn set_destination(&self, index: usize, url: &str) {
        self.update(|s| {
            if s.active_url != url {
                s.failovers += 1;
            }
            s.active_url = url.to_string();
            s.on_backup = index > 0;
        });
    }

    pub fn retrying(&self, reason: String, delay: Duration, failures: u32) {
        self.update(|s| {
            s.state = RelayState::Retrying;
            s.since = now();
            s.reason = Some(reason);
            s.next_attempt_at = Some(now() + delay.as_secs_f64());
            s.failures_in_a_row = failures;
        });
    }

    pub fn failed(&self, reason: String) {
        self.update(|s| {
            s.state = RelayState::Failed;
            s.since = now();
            s.reason = Some(reason);
            s.next_attempt_at = None;
        });
    }

    pub fn add_bytes(&self, n: usize) {
        self.update(|s| s.bytes += n as u64);
    }
}
