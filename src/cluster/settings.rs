//! The `cluster:` section (and `--cluster URL --node NAME`): which Redis coordinates the
//! nodes, this node's name, where it takes relay links from the others, and their secret.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::auth::secret::Secret;

/// Read when `cluster.secret` is empty, so the secret need not be on a command line.
pub const SECRET_ENV: &str = "INTEROP_CLUSTER_SECRET";

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// `redis://HOST:PORT[/DB]`, credentials allowed (`redis://:PASSWORD@HOST:PORT`); never
    /// logged with them.
    pub redis: String,
    /// Unique per node: what the others and the API call it.
    pub node: String,
    /// Where this node accepts relay links from the others (port 0: any free port).
    #[serde(default = "default_relay")]
    pub relay: SocketAddr,
    /// The `HOST:PORT` the others dial for `relay` (default: `relay` itself, which must then
    /// be a real address, not 0.0.0.0).
    #[serde(default)]
    pub advertise: Option<String>,
    /// Shared by the nodes: a relay link proves it both ways (HMAC over nonces). Required
    /// unless `relay` is a loopback address.
    #[serde(default)]
    pub secret: Secret,
    /// A claim (and a node's record) lives this long without being refreshed (every third
    /// of it): how soon a dead node's streams may be published elsewhere.
    #[serde(default = "default_ttl")]
    pub ttl_seconds: f64,
}

/// Shown without the Redis password (and the secret shows as `***`).
impl std::fmt::Debug for ClusterSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSettings")
            .field("redis", &crate::auth::redact::redact(&self.redis))
            .field("node", &self.node)
            .field("relay", &self.relay)
            .field("advertise", &self.advertise)
            .field("secret", &self.secret)
            .field("ttl_seconds", &self.ttl_seconds)
            .finish()
    }
}

fn default_relay() -> SocketAddr {
    ([127, 0, 0, 1], 0).into()
}

fn default_ttl() -> f64 {
    3.0
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("cluster.node `{0}`: use 1-64 letters, digits, `.`, `_` or `-`")]
    Node(String),
    #[error("cluster.redis: {0}")]
    Redis(String),
    #[error("cluster.secret (or {SECRET_ENV}) is required when relay links are accepted from other machines (cluster.relay {0})")]
    NoSecret(SocketAddr),
    #[error("cluster.advertise is required when cluster.relay ({0}) is not an address the other nodes can dial")]
    NoAdvertise(SocketAddr),
    #[error("cluster.ttl_seconds must be between 1 and 60")]
    Ttl,
}

impl ClusterSettings {
    /// The settings `--cluster URL --node NAME` give without a `cluster:` section.
    pub fn from_flags(redis: String, node: String) -> ClusterSettings {
        ClusterSettings {
            redis,
            node,
            relay: default_relay(),
            advertise: None,
            secret: Secret::default(),
            ttl_seconds: default_ttl(),
        }
    }

    /// Checks the settings, taking the secret from the environment when the file has none.
    pub fn validated(mut self) -> Result<ClusterSettings, SettingsError> {
        if !valid_node(&self.node) {
            return Err(SettingsError::Node(self.node));
        }
        if !(self.redis.starts_with("redis://") || self.redis.starts_with("redis+unix://")) {
            return Err(SettingsError::Redis(format!(
                "`{}` is not a redis:// URL",
                crate::auth::redact::redact(&self.redis)
            )));
        }
        if self.secret.is_empty() {
            if let Ok(secret) = std::env::var(SECRET_ENV) {
                self.secret = Secret::new(secret);
            }
        }
        if self.secret.is_empty() && !self.relay.ip().is_loopback() {
            return Err(SettingsError::NoSecret(self.relay));
        }
        if self.advertise.is_none() && self.relay.ip().is_unspecified() {
            return Err(SettingsError::NoAdvertise(self.relay));
        }
        if !(1.0..=60.0).contains(&self.ttl_seconds) {
            return Err(SettingsError::Ttl);
        }
        Ok(self)
    }

    pub fn ttl(&self) -> Duration {
        Duration::from_secs_f64(self.ttl_seconds.clamp(1.0, 60.0))
    }

    /// How often claims and the node's record are refreshed.
    pub fn heartbeat(&self) -> Duration {
        self.ttl() / 3
    }
}

/// Node names go into Redis keys and the API: short and plain.
pub fn valid_node(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(relay: &str) -> ClusterSettings {
        let mut s = ClusterSettings::from_flags("redis://127.0.0.1:6379".into(), "a".into());
        s.relay = relay.parse().unwrap();
        s
    }

    #[test]
    fn a_relay_reachable_from_other_machines_needs_a_secret_and_an_address_to_advertise() {
        assert!(settings("127.0.0.1:7001").validated().is_ok());
        assert!(matches!(settings("10.0.0.5:7001").validated(), Err(SettingsError::NoSecret(_))));
        let mut s = settings("0.0.0.0:7001");
        s.secret = Secret::new("s");
        assert!(matches!(s.clone().validated(), Err(SettingsError::NoAdvertise(_))));
        s.advertise = Some("10.0.0.5:7001".into());
        assert!(s.validated().is_ok());
    }

    #[test]
    fn node_names_and_redis_urls_are_checked() {
        assert!(valid_node("edge-1.eu_west"));
        assert!(!valid_node("") && !valid_node("a/b") && !valid_node("a b") && !valid_node(&"x".repeat(65)));
        let mut s = settings("127.0.0.1:0");
        s.redis = "http://:hunter2@host".into();
        let e = s.clone().validated().unwrap_err().to_string();
        assert!(e.contains("not a redis:// URL") && !e.contains("hunter2"), "{e}");
        s.redis = "redis://:hunter2@10.0.0.9:6379".into();
        s.secret = Secret::new("cluster-secret");
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("cluster-secret"), "{shown}");
    }
}
