//! The UDP ingests and outputs running now, by id: `GET` lists them, `DELETE` stops one,
//! `/metrics` counts them. An entry leaves when its session ends.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::hub::StreamKey;

/// Which resource a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Ingest,
    Output,
}

impl Kind {
    /// The path segment of the resource under `/api/v1/streams/{stream}/`.
    pub fn segment(self) -> &'static str {
        match self {
            Kind::Ingest => "udp-ingest",
            Kind::Output => "udp-outputs",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Ingest => "UDP ingest",
            Kind::Output => "UDP output",
        })
    }
}

/// What `GET` shows of a session (read at request time, so counters are current).
pub trait Describe: Send + Sync {
    fn describe(&self) -> serde_json::Value;
}

struct Entry {
    kind: Kind,
    stream: StreamKey,
    stop: CancellationToken,
    status: Arc<dyn Describe>,
}

#[derive(Clone, Default)]
pub struct Registry {
    sessions: Arc<Mutex<HashMap<String, Entry>>>,
}

/// A session's place in the registry; dropping it removes the session.
pub struct Registration {
    pub id: String,
    pub stop: CancellationToken,
    registry: Registry,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

/// `/api/v1/streams/{stream}/{udp-ingest|udp-outputs}/{id}`.
pub fn location(kind: Kind, stream: &StreamKey, id: &str) -> String {
    format!("/api/v1/streams/{stream}/{}/{id}", kind.segment())
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh random id (16 hex digits).
    pub fn new_id(&self) -> String {
        let sessions = self.lock();
        loop {
            let id = format!("{:016x}", rand::thread_rng().gen::<u64>());
            if !sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// Adds a session under `id` (from [`Registry::new_id`]).
    pub fn register(&self, id: String, kind: Kind, stream: StreamKey, status: Arc<dyn Describe>) -> Registration {
        let stop = CancellationToken::new();
        self.lock().insert(id.clone(), Entry { kind, stream, stop: stop.clone(), status });
        Registration { id, stop, registry: self.clone() }
    }

    /// Stops session `id` if it is a `kind` of `stream`; false when there is none.
    pub fn stop(&self, kind: Kind, stream: &StreamKey, id: &str) -> bool {
        match self.lock().get(id) {
            Some(e) if e.kind == kind && &e.stream == stream => {
                e.stop.cancel();
                true
            }
            _ => false,
        }
    }

    /// Waits (bounded) until session `id` has ended and left; true if it has.
    pub async fn wait_gone(&self, id: &str, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.lock().contains_key(id) {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        true
    }

    /// The sessions of this kind (of one stream, or all), as `GET` shows them.
    pub fn list(&self, kind: Kind, stream: Option<&StreamKey>) -> Vec<serde_json::Value> {
        let mut found: Vec<(String, Arc<dyn Describe>)> = self
            .lock()
            .iter()
            .filter(|(_, e)| e.kind == kind && stream.is_none_or(|s| &e.stream == s))
            .map(|(id, e)| (id.clone(), e.status.clone()))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found.into_iter().map(|(_, s)| s.describe()).collect()
    }

    /// One session, as `GET` shows it.
    pub fn get(&self, kind: Kind, stream: &StreamKey, id: &str) -> Option<serde_json::Value> {
        let status = match self.lock().get(id) {
            Some(e) if e.kind == kind && &e.stream == stream => e.status.clone(),
            _ => return None,
        };
        Some(status.describe())
    }

    /// Sessions of this kind running now.
    pub fn count(&self, kind: Kind) -> usize {
        self.lock().values().filter(|e| e.kind == kind).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str);
    impl Describe for Fixed {
        fn describe(&self) -> serde_json::Value {
            serde_json::json!({ "name": self.0 })
        }
    }

    #[test]
    fn sessions_are_found_by_kind_stream_and_id() {
        let r = Registry::default();
        let key: StreamKey = "cam".parse().unwrap();
        let other: StreamKey = "other".parse().unwrap();
        let a = r.register(r.new_id(), Kind::Ingest, key.clone(), Arc::new(Fixed("in")));
        let b = r.register(r.new_id(), Kind::Output, key.clone(), Arc::new(Fixed("out")));
        assert_eq!(location(Kind::Output, &key, &b.id), format!("/api/v1/streams/cam/udp-outputs/{}", b.id));
        assert_eq!(r.list(Kind::Output, Some(&key)), [serde_json::json!({ "name": "out" })]);
        assert!(r.list(Kind::Output, Some(&other)).is_empty());
        assert_eq!((r.count(Kind::Ingest), r.count(Kind::Output)), (1, 1));
        assert!(!r.stop(Kind::Output, &key, &a.id), "wrong kind");
        assert!(!r.stop(Kind::Ingest, &other, &a.id), "wrong stream");
        assert!(r.stop(Kind::Ingest, &key, &a.id));
        assert!(a.stop.is_cancelled() && !b.stop.is_cancelled());
        drop(a);
        assert_eq!(r.count(Kind::Ingest), 0);
    }
}
