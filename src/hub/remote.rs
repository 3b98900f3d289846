//! What the hub asks of a cluster (see `crate::cluster`): a publisher claims its key
//! cluster-wide, and a stream published on another node is brought here for this node's
//! viewers. On one node (no cluster) nothing is set and the hub works alone.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use super::key::StreamKey;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a publisher that continues a stream from another node arrives here: the relay is
/// the stream's local publisher, with the origin's protocol (see `Stream::is_relayed`).
pub const RELAY_TRANSPORT: &str = "relay";

/// Why the cluster refused a publisher its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// Another node's publisher holds the key.
    #[error("it is published on node `{0}`")]
    Taken(String),
    /// The cluster's store cannot be asked: nothing new is claimed until it can.
    #[error("the cluster store is unreachable ({0}); new publishes are refused until it is back")]
    Unavailable(String),
}

pub trait Remote: Send + Sync {
    /// Claims `key` for a publisher on this node, until [`Remote::release`].
    fn claim<'a>(&'a self, key: &'a StreamKey) -> BoxFuture<'a, Result<(), ClaimError>>;
    /// This node's publisher of `key` left (the claim goes, so it may continue elsewhere).
    fn release(&self, key: &StreamKey);
    /// `key` is not live here: if another node publishes it, starts (or joins) the one relay
    /// that brings it here. True once the stream is live here; false if no node has it.
    fn fetch<'a>(&'a self, key: &'a StreamKey) -> BoxFuture<'a, bool>;
}

/// Set once, when the gateway runs in a cluster.
#[derive(Clone, Default)]
pub struct RemoteSlot(Arc<OnceLock<Arc<dyn Remote>>>);

impl RemoteSlot {
    pub fn set(&self, remote: Arc<dyn Remote>) {
        let _ = self.0.set(remote);
    }

    pub fn get(&self) -> Option<&Arc<dyn Remote>> {
        self.0.get()
    }
}

/// A key claimed for a publisher on this node (nothing to hold on one node): given back when
/// dropped, so whoever holds it (the [`super::Publisher`] made with it) releases it on leaving.
pub struct Claim {
    pub(super) key: StreamKey,
    pub(super) cluster: Option<Arc<dyn Remote>>,
}

impl Claim {
    pub fn key(&self) -> &StreamKey {
        &self.key
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(cluster) = self.cluster.take() {
            cluster.release(&self.key);
        }
    }
}
