//! What the nodes write to Redis, and the names they write it under (pure: no IO).
//!
//! - `igw:claim:{stream}` = the claim token `NODE/NONCE` of the publisher's node, with a TTL
//!   its node refreshes: one publisher per key, cluster-wide.
//! - `igw:node:{node}` = this node's [`NodeRecord`] (JSON), with the same TTL: where to dial
//!   it, its load, its streams. `igw:nodes` is the set of node names (pruned when a record
//!   has expired).
//! - `igw:control` is the pub/sub channel of [`Control`] messages to every node.

use serde::{Deserialize, Serialize};

use crate::hub::StreamKey;
use crate::media::Protocol;

pub const NODES: &str = "igw:nodes";
pub const CONTROL: &str = "igw:control";
const CLAIM_PREFIX: &str = "igw:claim:";
pub const NODE_PREFIX: &str = "igw:node:";
/// The largest control message a node reads (anything longer is ignored).
pub const MAX_CONTROL_BYTES: usize = 4096;

pub fn claim_key(stream: &StreamKey) -> String {
    format!("{CLAIM_PREFIX}{stream}")
}

pub fn node_key(node: &str) -> String {
    format!("{NODE_PREFIX}{node}")
}

/// A claim's value: the node, and a nonce telling this claim from an earlier one of the
/// same node (so a late release of the earlier one leaves the new one alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToken(String);

impl ClaimToken {
    pub fn new(node: &str, nonce: u64) -> ClaimToken {
        ClaimToken(format!("{node}/{nonce:016x}"))
    }

    /// A value read from Redis; None if it is not a token.
    pub fn parse(text: &str) -> Option<ClaimToken> {
        let (node, nonce) = text.split_once('/')?;
        (crate::cluster::settings::valid_node(node) && !nonce.is_empty()).then(|| ClaimToken(text.to_string()))
    }

    pub fn node(&self) -> &str {
        self.0.split_once('/').map_or("", |(node, _)| node)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A node as the others see it, rewritten every heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub node: String,
    /// Where the node accepts relay links (`HOST:PORT`).
    pub relay: String,
    /// Unix time (ms) the node started and wrote this record.
    pub started_ms: u64,
    pub seen_ms: u64,
    /// CPU the process used over the last heartbeat, in cores.
    pub cpu: f64,
    pub streams: Vec<StreamEntry>,
}

impl NodeRecord {
    pub fn viewers(&self) -> usize {
        self.streams.iter().map(|s| s.viewers).sum()
    }
}

/// One stream live on a node: published there (`owner` is the node) or relayed from `owner`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamEntry {
    pub key: String,
    pub owner: String,
    pub protocol: Protocol,
    /// Viewers on this node (relay links to other nodes not counted).
    pub viewers: usize,
    /// Relay links from this node to others.
    #[serde(default)]
    pub relays: usize,
}

/// A message to every node (`igw:control`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Control {
    /// The sending node (which has acted already and ignores its own message).
    pub from: String,
    #[serde(flatten)]
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Action {
    /// Load the matrix file again.
    Reload,
    /// Disconnect the stream's publisher (and end its relays).
    Kick { stream: String },
}

impl Control {
    /// A message read from the channel; None when it is not one (too long, not ours).
    pub fn parse(payload: &[u8]) -> Option<Control> {
        if payload.len() > MAX_CONTROL_BYTES {
            return None;
        }
        serde_json::from_slice(payload).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_token_names_its_node_and_tells_two_claims_of_it_apart() {
        let a = ClaimToken::new("edge-1", 7);
        let b = ClaimToken::new("edge-1", 8);
        assert_eq!(a.node(), "edge-1");
        assert_ne!(a, b);
        assert_eq!(ClaimToken::parse(a.as_str()), Some(a));
        assert_eq!(ClaimToken::parse("no-slash"), None);
        assert_eq!(ClaimToken::parse("bad node/1"), None);
        assert_eq!(ClaimToken::parse("a/"), None);
    }

    #[test]
    fn control_messages_round_trip_and_anything_else_is_ignored() {
        let kick = Control { from: "a".into(), action: Action::Kick { stream: "k".into() } };
        let text = serde_json::to_vec(&kick).unwrap();
        assert_eq!(String::from_utf8_lossy(&text), r#"{"from":"a","op":"kick","stream":"k"}"#);
        assert_eq!(Control::parse(&text), Some(kick));
        assert_eq!(Control::parse(br#"{"from":"a","op":"reload"}"#).unwrap().action, Action::Reload);
        assert_eq!(Control::parse(br#"{"from":"a","op":"format_disk"}"#), None);
        assert_eq!(Control::parse(b"\xff\xfe"), None);
        assert_eq!(Control::parse(&vec![b' '; MAX_CONTROL_BYTES + 1]), None);
    }
}
