//! HLS viewing sessions: a player asks for a playlist every part or segment and for every
//! segment, so admission (keys, signed URLs, a webhook) runs once, on the first playlist
//! request, and the URIs of the playlists it gets carry `hls_session=ID`. Only when access
//! control is on: an open gateway serves plain URIs that a CDN can cache for everyone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use std::time::Instant;

use crate::hub::StreamKey;

/// The query parameter that carries a session.
pub const SESSION_PARAM: &str = "hls_session";

/// Sessions held at once; past it the oldest are dropped (their players are admitted again).
const MAX_SESSIONS: usize = 100_000;

pub struct HlsSessions {
    ttl: Duration,
    open: Mutex<HashMap<String, (StreamKey, Instant)>>,
}

impl HlsSessions {
    /// Sessions unused for `ttl` expire.
    pub fn new(ttl: Duration) -> HlsSessions {
        HlsSessions { ttl, open: Mutex::new(HashMap::new()) }
    }

    /// A new session on `key`, for a player just admitted.
    pub fn open(&self, key: &StreamKey) -> String {
        self.open_at(key, Instant::now())
    }

    fn open_at(&self, key: &StreamKey, now: Instant) -> String {
        let id = format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>());
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= MAX_SESSIONS {
            open.retain(|_, (_, seen)| now.duration_since(*seen) < self.ttl);
            if open.len() >= MAX_SESSIONS {
                let oldest = open.iter().min_by_key(|(_, (_, seen))| *seen).map(|(id, _)| id.clone());
                if let Some(oldest) = oldest {
                    open.remove(&oldest);
                }
            }
        }
        open.insert(id.clone(), (key.clone(), now));
        id
    }

    /// Whether `id` is a live session on `key`; refreshes it.
    pub fn check(&self, id: &str, key: &StreamKey) -> bool {
        self.check_at(id, key, Instant::now())
    }

    fn check_at(&self, id: &str, key: &StreamKey, now: Instant) -> bool {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        match open.get_mut(id) {
            Some((k, seen)) if k == key && now.duration_since(*seen) < self.ttl => {
                *seen = now;
                true
            }
            Some(_) => {
                open.remove(id);
                false
            }
            None => false,
        }
    }

    /// Sessions not expired (for `/metrics`).
    pub fn count(&self) -> usize {
        self.count_at(Instant::now())
    }

    fn count_at(&self, now: Instant) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.values().filter(|(_, seen)| now.duration_since(*seen) < self.ttl).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_holds_for_its_stream_until_unused_for_the_ttl() {
        let s = HlsSessions::new(Duration::from_secs(10));
        let (a, b): (StreamKey, StreamKey) = ("a".parse().unwrap(), "b".parse().unwrap());
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let id = s.open_at(&a, t0);
        assert!(s.check_at(&id, &a, t0));
        assert!(!s.check_at(&id, &b, t0), "a session is for one stream");
        assert!(!s.check_at(&id, &a, t0), "and a misuse ends it");
        let id = s.open_at(&a, t0);
        assert!(s.check_at(&id, &a, at(8)), "used within the ttl");
        assert!(s.check_at(&id, &a, at(16)), "the ttl runs from the last use");
        assert_eq!(s.count_at(at(17)), 1);
        assert!(!s.check_at(&id, &a, at(27)));
        assert!(!s.check_at("nope", &a, at(27)));
        assert_eq!(s.count_at(at(27)), 0);
    }
}
