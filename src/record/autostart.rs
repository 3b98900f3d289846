//! What starts with a stream: recordings by rule and the clip window. The hub tells its
//! observer of every publish synchronously, so the observer here only queues the key; a task
//! does the rest.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::clips::Clips;
use super::recordings::Recordings;
use crate::hub::observer::{Activity, Notice, Observer};
use crate::hub::StreamKey;

pub struct OnPublish(mpsc::UnboundedSender<StreamKey>);

impl Observer for OnPublish {
    fn notice(&self, notice: &Notice<'_>) {
        if notice.activity == Activity::Publish {
            let _ = self.0.send(notice.stream.clone());
        }
    }
}

/// The observer to give the hub, and the task serving it until `shutdown`.
pub fn spawn(recordings: Recordings, clips: Clips, shutdown: CancellationToken) -> OnPublish {
    let (tx, mut rx) = mpsc::unbounded_channel::<StreamKey>();
    tokio::spawn(async move {
        loop {
            let key = tokio::select! {
                key = rx.recv() => key,
                _ = shutdown.cancelled() => None,
            };
            let Some(key) = key else { break };
            // Both wait for the stream's media: not in the way of the next key.
            let (recordings, clips, again) = (recordings.clone(), clips.clone(), key.clone());
            tokio::spawn(async move { recordings.on_publish(&key).await });
            tokio::spawn(async move { clips.on_publish(&again).await });
        }
    });
    OnPublish(tx)
}
