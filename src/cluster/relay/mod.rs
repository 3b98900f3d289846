//! Relay links between nodes: the origin (where a stream is published) serves its frames to
//! an edge (where viewers asked for it) over one TCP connection per stream and edge, after
//! both proved the cluster secret ([`handshake`]), in the hub's own format ([`wire`]).

pub mod handshake;
pub mod link;
pub mod serve;
pub mod wire;

use std::time::Duration;

/// The handshake must finish within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// An origin sends at least a ping this often; an edge that hears nothing for
/// [`SILENCE`] takes the link for dead.
pub const PING_EVERY: Duration = Duration::from_secs(1);
pub const SILENCE: Duration = Duration::from_secs(5);
