//! The cluster's state in Redis: claims, node records, control messages. Every call is
//! bounded in time; whether Redis answered last is kept for `/healthz` and the API.
//!
//! Claims go through Lua scripts so that each is one atomic step on the server: taking a key
//! (free, already this node's, or held by a node whose record has expired), giving it back
//! only if it is still this claim, and refreshing all of a node's claims in one call.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;

use super::records::{self, ClaimToken, NodeRecord};
use crate::hub::StreamKey;

/// Longest wait for one Redis call.
const CALL_TIMEOUT: Duration = Duration::from_millis(1500);

/// KEYS[1] the claim; ARGV: token, ttl (ms), this node's token prefix (`NODE/`), the node
/// record prefix. Returns "OK", or the token that holds the key.
const CLAIM: &str = r#"
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[3]) ~= ARGV[3] then
  local owner = string.match(v, '^([^/]+)/')
  if owner and redis.call('EXISTS', ARGV[4] .. owner) == 1 then
    return v
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 'OK'
"#;

/// KEYS[1] the claim; ARGV[1] the token: deleted only if it is still that claim.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// KEYS: claims; ARGV[1] ttl (ms), ARGV[i+1] the token of KEYS[i]. Per key: 1 refreshed, 2
/// written again (it was gone: Redis restarted), 0 another node holds it now.
const REFRESH: &str = r#"
local out = {}
for i, k in ipairs(KEYS) do
  local want = ARGV[i + 1]
  local v = redis.call('GET', k)
  if v == want then
    redis.call('PEXPIRE', k, ARGV[1])
    out[i] = 1
  elseif not v then
    redis.call('SET', k, want, 'PX', ARGV[1])
    out[i] = 2
  else
    out[i] = 0
  end
end
return out
"#;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// What refreshing a node's claims found, per claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    Kept,
    /// It had gone (Redis lost it) and was written again.
    Restored,
    /// Another node holds the key now.
    Lost,
}

pub struct Store {
    client: redis::Client,
    conn: ConnectionManager,
    node: String,
    ttl: Duration,
    claim: Script,
    release: Script,
    refresh: Script,
    up: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Store {
    /// Connects lazily (the node starts, and serves, with Redis down).
    pub fn new(url: &str, node: &str, ttl: Duration) -> Result<Store, StoreError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(Store {
            client,
            conn,
            node: node.to_string(),
            ttl,
            claim: Script::new(CLAIM),
            release: Script::new(RELEASE),
            refresh: Script::new(REFRESH),
            up: AtomicBool::new(false),
            last_error: Mutex::new(Some("not connected yet".into())),
        })
    }

    /// Whether the last call got an answer; else why not.
    pub fn health(&self) -> Result<(), String> {
        if self.up.load(Ordering::Relaxed) {
            return Ok(());
        }
        Err(self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default())
    }

    async fn call<T>(&self, f: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T, StoreError> {
        let outcome = match tokio::time::timeout(CALL_TIMEOUT, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError::Redis(e)),
            Err(_) => Err(StoreError::Timeout(CALL_TIMEOUT)),
        };
        let was_up = self.up.swap(outcome.is_ok(), Ordering::Relaxed);
        match &outcome {
            Ok(_) if !was_up => tracing::info!("cluster store (Redis) answers"),
            Err(e) => {
                if was_up {
                    tracing::warn!(error = %e, "cluster store (Redis) unreachable; live streams continue, new publishes are refused");
                }
                *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
            }
            _ => {}
        }
        outcome
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis() as u64
    }

    /// Claims `stream` with `token`: None when it is ours now, else the token holding it.
    pub async fn claim(&self, stream: &StreamKey, token: &ClaimToken) -> Result<Option<ClaimToken>, StoreError> {
        let mut conn = self.conn.clone();
        let mut call = self.claim.key(records::claim_key(stream));
        call.arg(token.as_str()).arg(self.ttl_ms()).arg(format!("{}/", self.node)).arg(records::NODE_PREFIX);
        let answer: String = self.call(call.invoke_async(&mut conn)).await?;
        Ok((answer != "OK").then(|| ClaimToken::parse(&answer)).flatten())
    }

    /// Gives `stream` back if `token` still holds it.
    pub async fn release(&self, stream: &StreamKey, token: &ClaimToken) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let mut call = self.release.key(records::claim_key(stream));
        call.arg(token.as_str());
        let _: i64 = self.call(call.invoke_async(&mut conn)).await?;
        Ok(())
    }

    /// Refreshes every claim this node holds, in one call.
    pub async fn refresh(&self, claims: &[(StreamKey, ClaimToken)]) -> Result<Vec<Refreshed>, StoreError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut call = self.refresh.prepare_invoke();
        call.arg(self.ttl_ms());
        for (stream, token) in claims {
            call.key(records::claim_key(stream)).arg(token.as_str());
        }
        let answers: Vec<i64> = self.call(call.invoke_async(&mut conn)).await?;
        Ok(answers
            .into_iter()
            .map(|a| match a {
                1 => Refreshed::Kept,
                2 => Refreshed::Restored,
                _ => Refreshed::Lost,
            })
            .collect())
    }

    /// Who holds `stream` now.
    pub async fn holder(&self, stream: &StreamKey) -> Result<Option<ClaimToken>, StoreError> {
        let mut conn = self.conn.clone();
        let value: Option<String> =
            self.call(redis::cmd("GET").arg(records::claim_key(stream)).query_async(&mut conn)).await?;
        Ok(value.as_deref().and_then(ClaimToken::parse))
    }

    /// Writes this node's record (and names it in the set of nodes).
    pub async fn heartbeat(&self, record: &NodeRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).unwrap_or_default();
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg(records::node_key(&record.node)).arg(json).arg("PX").arg(self.ttl_ms()).ignore();
        pipe.cmd("SADD").arg(records::NODES).arg(&record.node).ignore();
        let _: () = self.call(pipe.query_async(&mut conn)).await?;
        Ok(())
    }

    /// One node's record, if it is alive.
    pub async fn node(&self, node: &str) -> Result<Option<NodeRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let value: Option<String> =
            self.call(redis::cmd("GET").arg(records::node_key(node)).query_async(&mut conn)).await?;
        Ok(value.and_then(|v| serde_json::from_str(&v).ok()))
    }

    /// Every live node's record (names whose record expired are dropped from the set).
    pub async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let names: HashSet<String> =
            self.call(redis::cmd("SMEMBERS").arg(records::NODES).query_async(&mut conn)).await?;
        let mut names: Vec<String> = names.into_iter().collect();
        names.sort();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = names.iter().map(|n| records::node_key(n)).collect();
        let values: Vec<Option<String>> = self.call(redis::cmd("MGET").arg(&keys).query_async(&mut conn)).await?;
        let mut records = Vec::new();
        let mut gone = Vec::new();
        for (name, value) in names.iter().zip(values) {
            match value.and_then(|v| serde_json::from_str::<NodeRecord>(&v).ok()) {
                Some(record) => records.push(record),
                None => gone.push(name.clone()),
            }
        }
        if !gone.is_empty() {
            let _: Result<i64, _> =
                self.call(redis::cmd("SREM").arg(records::NODES).arg(&gone).query_async(&mut conn)).await;
        }
        Ok(records)
    }

    /// Removes this node's record (it is leaving).
    pub async fn forget_node(&self, node: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(records::node_key(node)).ignore();
        pipe.cmd("SREM").arg(records::NODES).arg(node).ignore();
        let _: () = self.call(pipe.query_async(&mut conn)).await?;
        Ok(())
    }

    /// A connection that receives control messages (see `control`).
    pub async fn control_subscription(&self) -> Result<redis::aio::PubSub, StoreError> {
        let mut pubsub = self.call(self.client.get_async_pubsub()).await?;
        self.call(pubsub.subscribe(records::CONTROL)).await?;
        Ok(pubsub)
    }

    /// Sends a control message to every node.
    pub async fn broadcast(&self, message: &records::Control) -> Result<(), StoreError> {
        let json = serde_json::to_string(message).unwrap_or_default();
        let mut conn = self.conn.clone();
        let _: i64 = self.call(redis::cmd("PUBLISH").arg(records::CONTROL).arg(json).query_async(&mut conn)).await?;
        Ok(())
    }
}
