//! The admission webhook and the event hooks: the only parts of admission that do IO.
//!
//! Admission POSTs `{"action","protocol","stream","path","query","ip","origin","referer"}` to
//! `auth.webhook`; a 2xx answer within `auth.webhook_timeout_ms` allows, anything else (another
//! status, a timeout, a refused connection) denies: fail closed. An allowing answer may be
//! reused for the same question for `auth.webhook_cache_seconds`.
//!
//! Event hooks (`publish`, `unpublish`, `play`, `stop`) are POSTed to every `auth.event_hooks`
//! URL from a bounded queue, with up to three tries; they never delay or refuse anything.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde::Serialize;

use super::policy::{Denial, DenyReason};
use super::redact::redact;
use super::request::Request;
use super::settings::AuthSettings;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Answers kept at most; past it, expired ones are dropped, then all.
const CACHE_ENTRIES: usize = 10_000;

#[derive(Debug, Serialize)]
struct Question<'a> {
    action: &'a str,
    protocol: &'a str,
    stream: &'a str,
    path: &'a str,
    query: HashMap<&'a str, &'a str>,
    ip: IpAddr,
    origin: Option<&'a str>,
    referer: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey(String);

/// The admission webhook client.
pub struct Webhook {
    url: String,
    client: HttpClient,
    timeout: Duration,
    cache_for: Duration,
    cache: Mutex<HashMap<CacheKey, Instant>>,
    /// Calls made and cache hits, for `/metrics` and the benchmark.
    pub calls: AtomicU64,
    pub cache_hits: AtomicU64,
}

impl Webhook {
    pub fn new(settings: &AuthSettings) -> Option<Webhook> {
        let url = settings.webhook.clone()?;
        Some(Webhook {
            url,
            client: client(),
            timeout: Duration::from_millis(settings.webhook_timeout_ms.clamp(1, 60_000)),
            cache_for: Duration::from_secs_f64(settings.webhook_cache_seconds.clamp(0.0, 86_400.0)),
            cache: Mutex::new(HashMap::new()),
            calls: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
        })
    }

    /// Asks the webhook (or the cache) about `req`.
    pub async fn ask(&self, req: &Request<'_>) -> Result<(), Denial> {
        let key = cache_key(req);
        if !self.cache_for.is_zero() {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.get(&key).is_some_and(|until| *until > Instant::now()) {
                self.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let question = Question {
            action: req.action.as_str(),
            protocol: req.entry.as_str(),
            stream: req.stream,
            path: req.path,
            query: req.query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
            ip: req.ip,
            origin: req.origin,
            referer: req.referer,
        };
        let body = serde_json::to_vec(&question).unwrap_or_default();
        let status = match tokio::time::timeout(self.timeout, post(&self.client, &self.url, body)).await {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => {
                tracing::warn!(url = %redact(&self.url), error = %e, "admission webhook unreachable: refusing");
                0
            }
            Err(_) => {
                tracing::warn!(url = %redact(&self.url), timeout_ms = self.timeout.as_millis() as u64, "admission webhook timed out: refusing");
                0
            }
        };
        if !(200..300).contains(&status) {
            return Err(Denial::new(DenyReason::Webhook(status)));
        }
        if !self.cache_for.is_zero() {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= CACHE_ENTRIES {
                let now = Instant::now();
                cache.retain(|_, until| *until > now);
                if cache.len() >= CACHE_ENTRIES {
                    cache.clear();
                }
            }
            cache.insert(key, Instant::now() + self.cache_for);
        }
        Ok(())
    }
}

fn cache_key(req: &Request<'_>) -> CacheKey {
    let mut query: Vec<&(String, String)> = req.query.iter().collect();
    query.sort();
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    CacheKey(format!(
        "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
        req.action.as_str(),
        req.entry.as_str(),
        req.stream,
        req.path,
        query.join("&"),
        req.ip,
        req.origin.or(req.referer).unwrap_or("")
    ))
}

fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector)
}

/// POSTs JSON and returns the status, after reading (at most 64 KiB of) the answer.
async fn post(client: &HttpClient, url: &str, body: Vec<u8>) -> Result<u16, String> {
    let request = hyper::Request::post(url)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, concat!("interop-gateway/", env!("CARGO_PKG_VERSION")))
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let limited = http_body_util::Limited::new(response.into_body(), 64 << 10);
    let _ = limited.collect().await;
    Ok(status)
}

/// What happened, for the event hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Publish,
    Unpublish,
    Play,
    Stop,
    /// A recording began (by the API or a `recording.rules` entry).
    RecordingStarted,
    /// A recording ended: stopped, or its stream ended.
    RecordingStopped,
    /// A recording could not go on (disk full, unwritable directory); the stream is untouched.
    RecordingFailed,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventNotice {
    pub event: Event,
    pub protocol: &'static str,
    pub stream: String,
    pub ip: Option<IpAddr>,
    /// Unix milliseconds.
    pub time_ms: u64,
}

/// Sends event notices from a bounded queue; a full queue drops (and counts) a notice.
#[derive(Clone)]
pub struct Events {
    queue: Option<tokio::sync::mpsc::Sender<EventNotice>>,
    pub dropped: Arc<AtomicU64>,
}

impl Events {
    /// Starts the sender task (call inside the runtime); with no URL nothing is sent.
    pub fn start(urls: &[String]) -> Events {
        let dropped = Arc::new(AtomicU64::new(0));
        if urls.is_empty() {
            return Events { queue: None, dropped };
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<EventNotice>(1024);
        let urls = urls.to_vec();
        tokio::spawn(async move {
            let client = client();
            while let Some(notice) = rx.recv().await {
                let body = serde_json::to_vec(&notice).unwrap_or_default();
                for url in &urls {
                    deliver(&client, url, &body).await;
                }
            }
        });
        Events { queue: Some(tx), dropped }
    }

    pub fn disabled() -> Events {
        Events { queue: None, dropped: Arc::new(AtomicU64::new(0)) }
    }

    pub fn send(&self, event: Event, protocol: &'static str, stream: &str, ip: Option<IpAddr>) {
        let Some(queue) = &self.queue else { return };
        let time_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let notice = EventNotice { event, protocol, stream: stream.to_string(), ip, time_ms };
        if queue.try_send(notice).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Up to three tries, 0.5 s and 1 s apart, 2 s each.
async fn deliver(client: &HttpClient, url: &str, body: &[u8]) {
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 << (attempt - 1))).await;
        }
        match tokio::time::timeout(Duration::from_secs(2), post(client, url, body.to_vec())).await {
            Ok(Ok(status)) if (200..300).contains(&status) => return,
            Ok(Ok(status)) => tracing::debug!(url = %redact(url), status, attempt, "event hook refused"),
            Ok(Err(e)) => tracing::debug!(url = %redact(url), error = %e, attempt, "event hook unreachable"),
            Err(_) => tracing::debug!(url = %redact(url), attempt, "event hook timed out"),
        }
    }
    tracing::warn!(url = %redact(url), "event hook not delivered after 3 tries");
}
