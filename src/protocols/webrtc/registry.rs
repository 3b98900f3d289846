//! The WHIP and WHEP sessions running now, by id, so `DELETE` on a session's `Location` can
//! end it, and shutdown can wait for all of them to close.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::hub::StreamKey;

/// Which endpoint a session came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Whip,
    Whep,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Whip => "whip",
            Kind::Whep => "whep",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

struct Entry {
    kind: Kind,
    stream: StreamKey,
    stop: CancellationToken,
    flags: Arc<Flags>,
}

/// What a session and the registry both see.
#[derive(Default)]
struct Flags {
    /// ICE connected at least once.
    connected: AtomicBool,
    /// Stopped because a newer offer for the same stream replaced it before it connected.
    replaced: AtomicBool,
}

#[derive(Clone, Default)]
pub struct Registry {
    sessions: Arc<Mutex<HashMap<String, Entry>>>,
    changed: Arc<Notify>,
}

/// A session's place in the registry: its id, and the token `DELETE` cancels. Dropping it
/// removes the session.
pub struct Registration {
    pub id: String,
    pub stop: CancellationToken,
    flags: Arc<Flags>,
    registry: Registry,
}

impl Registration {
    /// The path of the session's resource (`Location`).
    pub fn location(&self, kind: Kind, stream: &StreamKey) -> String {
        format!("/{kind}/{stream}/{}", self.id)
    }

    /// The session's ICE connected: a newer offer can no longer replace it.
    pub fn mark_connected(&self) {
        self.flags.connected.store(true, Ordering::Relaxed);
    }

    /// Why `stop` was cancelled: by a newer offer for the stream, or by `DELETE`.
    pub fn stop_reason(&self) -> &'static str {
        if self.flags.replaced.load(Ordering::Relaxed) {
            "replaced by a newer offer before it connected"
        } else {
            "ended by the client (DELETE)"
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
        self.registry.changed.notify_waiters();
    }
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a session under a new random id.
    pub fn register(&self, kind: Kind, stream: StreamKey) -> Registration {
        let stop = CancellationToken::new();
        let flags = Arc::new(Flags::default());
        let mut sessions = self.lock();
        let id = loop {
            let id = format!("{:016x}", rand::thread_rng().gen::<u64>());
            if !sessions.contains_key(&id) {
                break id;
            }
        };
        sessions.insert(id.clone(), Entry { kind, stream, stop: stop.clone(), flags: flags.clone() });
        Registration { id, stop, flags, registry: self.clone() }
    }

    /// Ends the session `id` of `stream` at this endpoint; false when there is none.
    pub fn stop(&self, kind: Kind, stream: &StreamKey, id: &str) -> bool {
        match self.lock().get(id) {
            Some(e) if e.kind == kind && &e.stream == stream => {
                e.stop.cancel();
                true
            }
            _ => false,
        }
    }

    /// Stops the sessions of `stream` at this endpoint whose ICE never connected (a newer
    /// offer takes their place); true when there was one.
    pub fn replace_unconnected(&self, kind: Kind, stream: &StreamKey) -> bool {
        let mut found = false;
        for e in self.lock().values() {
            if e.kind == kind && &e.stream == stream && !e.flags.connected.load(Ordering::Relaxed) {
                e.flags.replaced.store(true, Ordering::Relaxed);
                e.stop.cancel();
                found = true;
            }
        }
        found
    }

    /// Waits (bounded) until no session of `stream` at this endpoint is left; true when so.
    pub async fn wait_stream_gone(&self, kind: Kind, stream: &StreamKey, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                if !self.lock().values().any(|e| e.kind == kind && &e.stream == stream) {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    /// Sessions running now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until every session has ended, or `timeout`; true when all ended.
    pub async fn wait_empty(&self, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                if self.is_empty() {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delete_finds_only_its_own_session() {
        let r = Registry::default();
        let key: StreamKey = "class1".parse().unwrap();
        let other: StreamKey = "class2".parse().unwrap();
        let a = r.register(Kind::Whip, key.clone());
        let b = r.register(Kind::Whep, key.clone());
        assert_ne!(a.id, b.id);
        assert_eq!(a.location(Kind::Whip, &key), format!("/whip/class1/{}", a.id));
        assert!(!r.stop(Kind::Whep, &key, &a.id), "wrong endpoint");
        assert!(!r.stop(Kind::Whip, &other, &a.id), "wrong stream");
        assert!(!r.stop(Kind::Whip, &key, "nope"));
        assert!(!a.stop.is_cancelled());
        assert!(r.stop(Kind::Whip, &key, &a.id));
        assert!(a.stop.is_cancelled() && !b.stop.is_cancelled());
        drop(a);
        assert_eq!(r.len(), 1);
        let waiter = tokio::spawn({
            let r = r.clone();
            async move { r.wait_empty(Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(b);
        assert!(waiter.await.unwrap());
        assert!(!r.stop(Kind::Whip, &key, "anything"));
    }

    #[tokio::test]
    async fn a_newer_offer_replaces_only_sessions_that_never_connected() {
        let r = Registry::default();
        let key: StreamKey = "class1".parse().unwrap();
        let pending = r.register(Kind::Whip, key.clone());
        let viewer = r.register(Kind::Whep, key.clone());
        assert!(r.replace_unconnected(Kind::Whip, &key));
        assert!(pending.stop.is_cancelled() && !viewer.stop.is_cancelled());
        assert_eq!(pending.stop_reason(), "replaced by a newer offer before it connected");
        assert!(!r.wait_stream_gone(Kind::Whip, &key, Duration::from_millis(20)).await);
        drop(pending);
        assert!(r.wait_stream_gone(Kind::Whip, &key, Duration::from_millis(20)).await);

        let live = r.register(Kind::Whip, key.clone());
        live.mark_connected();
        assert!(!r.replace_unconnected(Kind::Whip, &key));
        assert!(!live.stop.is_cancelled());
        assert_eq!(live.stop_reason(), "ended by the client (DELETE)");
    }
}
