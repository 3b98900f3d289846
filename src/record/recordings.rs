//! The gateway's recordings: those running (started by the API or by a `recording.rules`
//! entry when a matching stream is published) and those on disk (their JSON indexes).
//! One recording per stream at a time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::recorder::{self, Running};
use super::settings::RecordingSettings;
use super::{find_index, load_indexes, RecordError, RecordingId, RecordingIndex, RecordingState};
use crate::auth::webhook::Event;
use crate::auth::Admission;
use crate::hub::{ConsumerRequest, Hub, HubError, StreamKey};
use crate::media::Protocol;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("stream `{stream}` is already being recorded (recording {id})")]
    AlreadyRecording { stream: String, id: String },
}

/// The hub consumer's transport name.
pub const TRANSPORT: &str = "record";

#[derive(Clone)]
pub struct Recordings {
    hub: Hub,
    settings: Arc<RecordingSettings>,
    admission: Admission,
    running: Arc<Mutex<HashMap<StreamKey, Arc<Running>>>>,
}

impl Recordings {
    /// Marks recordings that a killed process left `recording` as interrupted (their open
    /// files cut back to whole fragments).
    pub fn new(hub: Hub, settings: RecordingSettings, admission: Admission) -> Recordings {
        if settings.dir.is_dir() {
            let found = super::mark_interrupted(&settings.dir);
            if !found.is_empty() {
                tracing::info!(count = found.len(), "recordings interrupted by the last stop, marked so");
            }
        }
        Recordings { hub, settings: Arc::new(settings), admission, running: Arc::default() }
    }

    pub fn settings(&self) -> &RecordingSettings {
        &self.settings
    }

    /// Starts recording `key` (live) now.
    pub async fn start(&self, key: &StreamKey) -> Result<RecordingIndex, StartError> {
        if let Some(r) = self.running_of(key) {
            return Err(StartError::AlreadyRecording { stream: key.to_string(), id: r.id.to_string() });
        }
        let who = ConsumerRequest { protocol: Protocol::Hls, transport: TRANSPORT.into(), remote: None };
        let sub = self.hub.subscribe(key, who).await?;
        let this = self.clone();
        let owner = key.clone();
        let ended = move |r: &Running| {
            let index = r.snapshot();
            let event = match index.state {
                RecordingState::Failed { .. } => Event::RecordingFailed,
                _ => Event::RecordingStopped,
            };
            this.admission.event(event, "record", &r.stream, None);
            tracing::info!(stream = %r.stream, id = %r.id.as_str(), state = ?index.state, files = index.files.len(), "recording ended");
            let mut running = this.running.lock().unwrap_or_else(|e| e.into_inner());
            if running.get(&owner).is_some_and(|x| x.id == r.id) {
                running.remove(&owner);
            }
        };
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = running.get(key) {
            return Err(StartError::AlreadyRecording { stream: key.to_string(), id: r.id.to_string() });
        }
        let started =
            recorder::start(self.settings.dir.clone(), sub, RecordingId::random(), self.settings.segment(), ended);
        let r = match started {
            Ok(r) => r,
            Err(e) => {
                self.admission.event(Event::RecordingFailed, "record", key.as_str(), None);
                return Err(e.into());
            }
        };
        tracing::info!(stream = %key, id = %r.id.as_str(), dir = %self.settings.dir.display(), "recording started");
        self.admission.event(Event::RecordingStarted, "record", key.as_str(), None);
        if !r.done.is_cancelled() {
            running.insert(key.clone(), r.clone());
        }
        Ok(r.snapshot())
    }

    /// Stops recording `id` of `key`; waits (bounded) for its last file to be finalized and
    /// answers its final index. `None`: no such running recording.
    pub async fn stop(&self, key: &StreamKey, id: &str) -> Option<RecordingIndex> {
        let r = self.running_of(key).filter(|r| r.id.as_str() == id)?;
        r.stop.cancel();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), r.done.cancelled()).await;
        Some(r.snapshot())
    }

    fn running_of(&self, key: &StreamKey) -> Option<Arc<Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    /// Every recording, newest first: those on disk, with the running ones' live state.
    pub async fn list(&self) -> Vec<RecordingIndex> {
        let dir = self.settings.dir.clone();
        let mut all = tokio::task::spawn_blocking(move || load_indexes(&dir)).await.unwrap_or_default();
        let running: Vec<Arc<Running>> =
            self.running.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        for r in running {
            let live = r.snapshot();
            match all.iter_mut().find(|i| i.id == live.id) {
                Some(on_disk) => *on_disk = live,
                None => all.push(live),
            }
        }
        all.sort_by(|a, b| b.started_ms.cmp(&a.started_ms).then_with(|| a.id.cmp(&b.id)));
        all
    }

    /// One recording by id: a running one's live state, else its index on disk (that file
    /// alone is read).
    pub async fn find(&self, id: &str) -> Option<RecordingIndex> {
        let running =
            self.running.lock().unwrap_or_else(|e| e.into_inner()).values().find(|r| r.id.as_str() == id).cloned();
        if let Some(r) = running {
            return Some(r.snapshot());
        }
        let (dir, id) = (self.settings.dir.clone(), id.to_owned());
        tokio::task::spawn_blocking(move || find_index(&dir, &id)).await.ok().flatten()
    }

    /// A stream was published: record it if a rule says so (and it is not recorded yet).
    pub async fn on_publish(&self, key: &StreamKey) {
        if !self.settings.rule_matches(key.as_str()) || self.running_of(key).is_some() {
            return;
        }
        match self.start(key).await {
            Ok(index) => tracing::info!(stream = %key, id = %index.id.as_str(), "recording by rule"),
            Err(StartError::AlreadyRecording { .. }) => {}
            Err(e) => tracing::warn!(stream = %key, error = %e, "recording by rule could not start"),
        }
    }

    /// Running recordings (for `/metrics`).
    pub fn running_count(&self) -> usize {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}
