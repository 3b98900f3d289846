//! Who is told when publishers and viewers come and go: the event hooks (`auth.event_hooks`)
//! listen here. The hub calls its observer synchronously from `publish`/`subscribe` and from
//! the drops that end them, so an observer must only queue (never block or wait).

use std::sync::{Arc, OnceLock};

use super::key::StreamKey;
use crate::media::Protocol;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// A publisher started sending (also one that continues a stream in its grace).
    Publish,
    /// That publisher went away.
    Unpublish,
    /// A viewer attached.
    Play,
    /// That viewer detached.
    Stop,
}

/// One notice: what, by which protocol, on which stream, from where (`ip:port`, if known).
#[derive(Debug, Clone, Copy)]
pub struct Notice<'a> {
    pub activity: Activity,
    pub protocol: Protocol,
    pub stream: &'a StreamKey,
    pub remote: Option<&'a str>,
}

pub trait Observer: Send + Sync {
    /// Must return at once (queue the notice, do the IO elsewhere).
    fn notice(&self, notice: &Notice<'_>);
}

/// Several observers told of the same notices, in order.
pub struct Observers(pub Vec<Arc<dyn Observer>>);

impl Observer for Observers {
    fn notice(&self, notice: &Notice<'_>) {
        for observer in &self.0 {
            observer.notice(notice);
        }
    }
}

/// The hub's observer slot: set once (at start), read by every session.
#[derive(Clone, Default)]
pub struct ObserverSlot(Arc<OnceLock<Arc<dyn Observer>>>);

impl ObserverSlot {
    pub fn set(&self, observer: Arc<dyn Observer>) {
        let _ = self.0.set(observer);
    }

    pub fn notify(&self, activity: Activity, protocol: Protocol, stream: &StreamKey, remote: Option<&str>) {
        if let Some(observer) = self.0.get() {
            observer.notice(&Notice { activity, protocol, stream, remote });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// What one notice said: activity, protocol, stream, remote.
    type Seen = (Activity, Protocol, String, Option<String>);

    #[derive(Default)]
    struct Recorder(Mutex<Vec<Seen>>);

    impl Observer for Recorder {
        fn notice(&self, n: &Notice<'_>) {
            self.0.lock().unwrap().push((n.activity, n.protocol, n.stream.to_string(), n.remote.map(String::from)));
        }
    }

    #[test]
    fn notices_reach_the_observer_once_set() {
        let slot = ObserverSlot::default();
        let key: StreamKey = "class1".parse().unwrap();
        slot.notify(Activity::Publish, Protocol::Rtmp, &key, None);
        let recorder = Arc::new(Recorder::default());
        slot.clone().set(recorder.clone());
        slot.notify(Activity::Play, Protocol::Webrtc, &key, Some("127.0.0.1:5000"));
        let seen = recorder.0.lock().unwrap().clone();
        assert_eq!(
            seen,
            [(Activity::Play, Protocol::Webrtc, "class1".to_string(), Some("127.0.0.1:5000".to_string()))]
        );
    }
}
