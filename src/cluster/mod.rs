//! Cluster mode: several gateways coordinated through Redis (`serve --cluster URL --node
//! NAME`, or a `cluster:` section). Without it nothing here runs and one node works alone.
//!
//! - One publisher per key, cluster-wide: publishing claims the key in Redis (atomic, with a
//!   TTL this node keeps refreshing; [`store`]). A dead node's claims expire within the TTL.
//! - Play anywhere: a node asked for a key it does not have looks up the owner and opens one
//!   relay link to it ([`relay`]), shared by all of its viewers of that key; the link carries
//!   the hub's frames as they are, and the matrix plans here from the original protocol.
//! - Failover: when the owner's publisher leaves (or the owner dies), the link ends and the
//!   stream here waits in its reconnect grace; wherever the publisher comes back, the link
//!   follows it and viewers continue.
//! - One view: every node writes its record (load, streams) each heartbeat ([`records`]);
//!   control messages (matrix reload, kicks) go to all nodes by pub/sub ([`control`]).

mod control;
pub mod records;
pub mod relay;
pub mod settings;
pub mod store;
mod usage;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use records::{NodeRecord, StreamEntry};
pub use settings::ClusterSettings;
use store::{Refreshed, Store};

use crate::hub::remote::BoxFuture;
use crate::hub::{ClaimError, Hub, Remote, StreamKey};
use records::ClaimToken;

/// How often a claim looks again at a key's holder (see `Cluster::ask_claim`).
const STALE_HOLDER_POLL: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{0}")]
    Settings(#[from] settings::SettingsError),
    #[error("cluster.redis: {0}")]
    Store(#[from] store::StoreError),
}

/// A node that publishes a stream, and where to dial it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub node: String,
    pub relay: String,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct ClusterMetrics {
    /// Relay links serving other nodes now, and those bringing streams here.
    pub links_out: AtomicU64,
    pub links_in: AtomicU64,
    pub links_refused: AtomicU64,
    pub claims_lost: AtomicU64,
}

/// This node's part of the cluster; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ClusterSettings,
    store: Store,
    hub: Hub,
    shutdown: CancellationToken,
    /// Keys claimed by this node's publishers (granted: false while the claim is asked).
    claims: Mutex<HashMap<StreamKey, (ClaimToken, bool)>>,
    links: Mutex<HashMap<StreamKey, relay::link::Handle>>,
    /// Where the others dial this node's relay listener (known once it is bound).
    advertised: Mutex<String>,
    started_ms: u64,
    nonce: AtomicU64,
    metrics: ClusterMetrics,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Cluster {
    /// This node, not yet serving (see [`Cluster::start`]); Redis is reached lazily.
    pub fn new(settings: ClusterSettings, hub: Hub, shutdown: CancellationToken) -> Result<Cluster, ClusterError> {
        let settings = settings.validated()?;
        let store = Store::new(&settings.redis, &settings.node, settings.ttl())?;
        let advertised = settings.advertise.clone().unwrap_or_else(|| settings.relay.to_string());
        Ok(Cluster {
            inner: Arc::new(Inner {
                settings,
                store,
                hub,
                shutdown,
                claims: Mutex::new(HashMap::new()),
                links: Mutex::new(HashMap::new()),
                advertised: Mutex::new(advertised),
                started_ms: unix_ms(),
                nonce: AtomicU64::new(rand::random()),
                metrics: ClusterMetrics::default(),
            }),
        })
    }

    pub fn node(&self) -> &str {
        &self.inner.settings.node
    }

    pub fn settings(&self) -> &ClusterSettings {
        &self.inner.settings
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn metrics(&self) -> &ClusterMetrics {
        &self.inner.metrics
    }

    pub(crate) fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    pub(crate) fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Claims held by this node's publishers now.
    pub fn claims_held(&self) -> usize {
        lock(&self.inner.claims).values().filter(|(_, granted)| *granted).count()
    }

    /// Serves relay links on `listener` and keeps this node's record and claims fresh;
    /// `reload` loads the matrix again when another node asks all to.
    pub fn start(&self, listener: TcpListener, reload: Arc<dyn Fn() + Send + Sync>) {
        if self.inner.settings.advertise.is_none() {
            if let Ok(addr) = listener.local_addr() {
                *lock(&self.inner.advertised) = addr.to_string();
            }
        }
        tracing::info!(node = %self.node(), relay = %lock(&self.inner.advertised),
            redis = %crate::auth::redact::redact(&self.inner.settings.redis), "cluster node starting");
        tokio::spawn(relay::serve::accept_loop(self.clone(), listener));
        tokio::spawn(self.clone().heartbeats());
        tokio::spawn(control::listen(self.clone(), reload));
    }

    /// This node's record as the others see it.
    fn record(&self, cpu: f64) -> NodeRecord {
        let streams = self
            .inner
            .hub
            .streams()
            .iter()
            .filter(|s| !s.is_ended())
            .map(|s| {
                let publisher = s.publisher();
                let consumers = s.consumers();
                let relays = consumers.iter().filter(|c| c.transport == crate::hub::RELAY_TRANSPORT).count();
                StreamEntry {
                    key: s.key.to_string(),
                    owner: self.owner_name(s),
                    protocol: publisher.protocol,
                    viewers: consumers.len() - relays,
                    relays,
                }
            })
            .collect();
        NodeRecord {
            node: self.node().to_string(),
            relay: lock(&self.inner.advertised).clone(),
            started_ms: self.inner.started_ms,
            seen_ms: unix_ms(),
            cpu,
            streams,
        }
    }

    /// The node a stream here comes from: this one, or the one it is relayed from.
    pub fn owner_name(&self, stream: &crate::hub::Stream) -> String {
        if stream.is_relayed() {
            stream.publisher().remote.unwrap_or_default()
        } else {
            self.node().to_string()
        }
    }

    /// Each heartbeat: writes this node's record and refreshes its claims (writing again
    /// those Redis lost); at shutdown gives everything back.
    async fn heartbeats(self) {
        let mut tick = tokio::time::interval(self.inner.settings.heartbeat());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cpu = usage::CpuMeter::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.inner.shutdown.cancelled() => break,
            }
            let record = self.record(cpu.cores());
            if self.inner.store.heartbeat(&record).await.is_err() {
                continue;
            }
            let held: Vec<(StreamKey, ClaimToken)> = lock(&self.inner.claims)
                .iter()
                .filter(|(_, (_, granted))| *granted)
                .map(|(k, (t, _))| (k.clone(), t.clone()))
                .collect();
            let Ok(results) = self.inner.store.refresh(&held).await else { continue };
            for ((key, _), result) in held.iter().zip(results) {
                match result {
                    Refreshed::Kept => {}
                    Refreshed::Restored => tracing::info!(stream = %key, "claim written again (the store had lost it)"),
                    Refreshed::Lost => {
                        self.inner.metrics.claims_lost.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(stream = %key, "another node claimed this stream while the store was unreachable; this node keeps serving its publisher");
                    }
                }
            }
        }
        self.leave().await;
    }

    /// Gives back this node's claims and record, so the others need not wait for them to
    /// expire.
    async fn leave(&self) {
        let held: Vec<(StreamKey, ClaimToken)> = lock(&self.inner.claims).drain().map(|(k, (t, _))| (k, t)).collect();
        for (key, token) in held {
            let _ = self.inner.store.release(&key, &token).await;
        }
        let _ = self.inner.store.forget_node(self.node()).await;
    }

    /// The node that publishes `key` now, if it is another one and alive.
    pub async fn owner(&self, key: &StreamKey) -> Option<Owner> {
        let holder = self.inner.store.holder(key).await.ok()??;
        if holder.node() == self.node() {
            return None;
        }
        let record = self.inner.store.node(holder.node()).await.ok()??;
        Some(Owner { node: record.node, relay: record.relay })
    }

    async fn claim_key(&self, key: &StreamKey) -> Result<(), ClaimError> {
        let token = ClaimToken::new(self.node(), self.inner.nonce.fetch_add(1, Ordering::Relaxed));
        {
            let mut claims = lock(&self.inner.claims);
            if claims.contains_key(key) {
                return Err(ClaimError::Taken(self.node().to_string()));
            }
            claims.insert(key.clone(), (token.clone(), false));
        }
        let outcome = self.ask_claim(key, &token).await;
        let mut claims = lock(&self.inner.claims);
        match &outcome {
            Ok(()) => {
                if let Some(entry) = claims.get_mut(key) {
                    entry.1 = true;
                }
            }
            Err(_) => {
                claims.remove(key);
            }
        }
        outcome
    }

    /// Asks Redis for the key. A holder is alive if its node writes its record again while
    /// we look (it does every heartbeat): then the key is refused. One that does not has just
    /// died, and is waited out until its record expires (at most the TTL): its publisher
    /// reconnecting here gets the key instead of a refusal.
    async fn ask_claim(&self, key: &StreamKey, token: &ClaimToken) -> Result<(), ClaimError> {
        let unavailable = |e: store::StoreError| ClaimError::Unavailable(e.to_string());
        let deadline = tokio::time::Instant::now() + self.inner.settings.ttl() + STALE_HOLDER_POLL;
        let mut first_seen: Option<(String, u64)> = None;
        loop {
            let holder = match self.inner.store.claim(key, token).await.map_err(unavailable)? {
                None => return Ok(()),
                Some(holder) => holder,
            };
            let seen = self.inner.store.node(holder.node()).await.map_err(unavailable)?.map(|r| r.seen_ms);
            let taken = || ClaimError::Taken(holder.node().to_string());
            match (&first_seen, seen) {
                (Some((node, before)), Some(now)) if node == holder.node() && now != *before => return Err(taken()),
                (None, Some(now)) => first_seen = Some((holder.node().to_string(), now)),
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(taken());
            }
            tokio::time::sleep(STALE_HOLDER_POLL).await;
        }
    }

    fn release_key(&self, key: &StreamKey) {
        let Some((token, granted)) = lock(&self.inner.claims).remove(key) else { return };
        if !granted {
            return;
        }
        // Its viewers here wait in the reconnect grace: wherever the publisher comes back, a
        // link brings it here (and ends if it comes back here).
        let watched = |s: &Arc<crate::hub::Stream>| {
            s.is_reconnecting() && s.consumers().iter().any(|c| c.transport != crate::hub::RELAY_TRANSPORT)
        };
        if self.inner.hub.stream(key).is_some_and(|s| watched(&s)) {
            let mut links = lock(&self.inner.links);
            if !links.contains_key(key) {
                links.insert(key.clone(), relay::link::spawn(self.clone(), key.clone(), None));
            }
        }
        // A publisher dropped as the runtime shuts down: the claim expires by itself.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let cluster = self.clone();
        let key = key.clone();
        runtime.spawn(async move {
            if let Err(e) = cluster.inner.store.release(&key, &token).await {
                // It expires within the TTL anyway.
                tracing::debug!(stream = %key, error = %e, "claim not given back");
            }
        });
    }

    async fn fetch_key(&self, key: &StreamKey) -> bool {
        let appeared = self.inner.hub.wait_for_stream(key);
        let existing = lock(&self.inner.links).get(key).cloned();
        let handle = match existing {
            Some(handle) => handle,
            None => {
                let Some(owner) = self.owner(key).await else { return false };
                let mut links = lock(&self.inner.links);
                let handle = links
                    .entry(key.clone())
                    .or_insert_with(|| relay::link::spawn(self.clone(), key.clone(), Some(owner)))
                    .clone();
                handle
            }
        };
        tokio::select! {
            _ = appeared => true,
            _ = handle.done.cancelled() => self.inner.hub.stream(key).is_some(),
            _ = tokio::time::sleep(relay::link::FIRST_FRAME_WAIT) => false,
        }
    }

    /// A link ended: the next viewer starts another.
    pub(crate) fn link_gone(&self, key: &StreamKey, handle: &relay::link::Handle) {
        let mut links = lock(&self.inner.links);
        if links.get(key).is_some_and(|h| h.same(handle)) {
            links.remove(key);
        }
    }

    /// Relay links bringing streams here now.
    pub fn links(&self) -> usize {
        lock(&self.inner.links).len()
    }

    /// Sends a control message to every other node.
    pub async fn broadcast(&self, action: records::Action) -> Result<(), store::StoreError> {
        self.inner.store.broadcast(&records::Control { from: self.node().to_string(), action }).await
    }
}

impl Remote for Cluster {
    fn claim<'a>(&'a self, key: &'a StreamKey) -> BoxFuture<'a, Result<(), ClaimError>> {
        Box::pin(self.claim_key(key))
    }

    fn release(&self, key: &StreamKey) {
        self.release_key(key)
    }

    fn fetch<'a>(&'a self, key: &'a StreamKey) -> BoxFuture<'a, bool> {
        Box::pin(self.fetch_key(key))
    }
}
