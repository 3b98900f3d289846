//! The control API client, and the JSON shapes the tests assume.
//!
//! ASSUMPTIONS about the API's JSON (the contract names the content, not the shape); this is
//! the one place to align them with the implementation:
//! - `GET /api/v1/streams` → `{"streams":[StreamInfo...]}` (a bare array is accepted too).
//! - `GET /api/v1/streams/{k}` → `StreamInfo` (or `{"stream":StreamInfo}`); 404 when unknown.
//! - `StreamInfo` = `{"key","publisher":{"protocol"},"video":{"codec","width","height","fps"},
//!   "audio":{"codec","sample_rate","channels"},"consumers":{"<protocol>":N},
//!   "conversions":[{"track","from","to","consumers"}]}`.
//! - HTTP-FLV readers of `/live/{k}.flv` count as consumers of protocol
//!   [`LIVE_FLV_CONSUMER_PROTOCOL`] (`rtmp`: the contract's protocol names are used everywhere).
//! - Pushes: `POST /api/v1/streams/{k}/pushes {"url"}` → `Relay`; `GET` same path →
//!   `{"pushes":[Relay...]}`; `DELETE /api/v1/streams/{k}/pushes/{id}`.
//! - Pulls: `POST /api/v1/pulls {"stream","url"}` → `Relay`; `GET /api/v1/pulls` →
//!   `{"pulls":[Relay...]}`; `DELETE /api/v1/pulls/{id}`.
//! - `Relay` = `{"id","stream","url","state":"connecting"|"live"|"retrying"|"failed",
//!   "next_attempt_at":<any non-null while retrying>,"reason":<string or null>}`.
//! - Errors: `{"error":"..."}`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

/// The consumers key under which `/live/{k}.flv` readers are counted.
pub const LIVE_FLV_CONSUMER_PROTOCOL: &str = "rtmp";

/// One stream as the API lists it.
#[derive(Clone, Debug, Deserialize)]
pub struct StreamInfo {
    /// The stream key.
    pub key: String,
    /// Who publishes it (absent or null while nobody does).
    pub publisher: Option<PublisherInfo>,
    /// The video track.
    pub video: Option<VideoInfo>,
    /// The audio track.
    pub audio: Option<AudioInfo>,
    /// Consumers by protocol.
    #[serde(default)]
    pub consumers: BTreeMap<String, u64>,
    /// Conversions running now.
    #[serde(default)]
    pub conversions: Vec<ConversionInfo>,
}

impl StreamInfo {
    /// Consumers of all protocols.
    pub fn total_consumers(&self) -> u64 {
        self.consumers.values().sum()
    }
}

/// The publisher of a stream.
#[derive(Clone, Debug, Deserialize)]
pub struct PublisherInfo {
    /// `rtmp`, `miniprogram`, `cdn`, ...
    pub protocol: String,
}

/// A video track.
#[derive(Clone, Debug, Deserialize)]
pub struct VideoInfo {
    /// `h264`, ...
    pub codec: String,
    /// Pixels.
    pub width: Option<u32>,
    /// Pixels.
    pub height: Option<u32>,
    /// Frames per second.
    pub fps: Option<f64>,
}

/// An audio track.
#[derive(Clone, Debug, Deserialize)]
pub struct AudioInfo {
    /// `aac`, ...
    pub codec: String,
    /// Hz.
    pub sample_rate: Option<u32>,
    /// Channel count.
    pub channels: Option<u32>,
}

/// A conversion running for a stream.
#[derive(Clone, Debug, Deserialize)]
pub struct ConversionInfo {
    /// `video` or `audio`.
    pub track: String,
    /// Source codec.
    pub from: String,
    /// Target codec.
    pub to: String,
    /// Consumers sharing it.
    #[serde(default)]
    pub consumers: u64,
}

/// A CDN push or pull.
#[derive(Clone, Debug, Deserialize)]
pub struct Relay {
    /// Its id (a JSON string or number), used in `DELETE .../{id}`.
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    /// The local stream key.
    pub stream: Option<String>,
    /// The remote RTMP URL.
    pub url: String,
    /// `connecting`, `live`, `retrying` or `failed`.
    pub state: String,
    /// When the next attempt happens (while retrying).
    pub next_attempt_at: Option<Value>,
    /// Why the last attempt failed.
    pub reason: Option<String>,
    /// A push: the destination in use (`url` or a backup).
    #[serde(default)]
    pub active_url: Option<String>,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("id is neither string nor number: {other}"))),
    }
}

/// An HTTP reply: status, raw body, and the body as JSON when it parses.
#[derive(Clone, Debug)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// The body text.
    pub body: String,
    /// The body as JSON, if it is JSON.
    pub json: Option<Value>,
}

impl Reply {
    /// The `error` string of a `{"error": "..."}` body.
    pub fn error_message(&self) -> Option<&str> {
        self.json.as_ref()?.get("error")?.as_str()
    }

    /// Fails unless the status is 2xx.
    pub fn expect_success(self, what: &str) -> anyhow::Result<Reply> {
        if !(200..300).contains(&self.status) {
            bail!("{what}: status {} body {}", self.status, self.body);
        }
        Ok(self)
    }
}

/// The gateway's control API.
#[derive(Clone)]
pub struct Api {
    base: String,
    client: reqwest::Client,
    /// Sent as `Authorization: Bearer` when set.
    token: Option<String>,
}

impl Api {
    /// A client for `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: String) -> Api {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("reqwest client");
        Api { base, client, token: None }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The same client, sending `Authorization: Bearer TOKEN` with every request.
    pub fn with_token(&self, token: &str) -> Api {
        Api { token: Some(token.to_string()), ..self.clone() }
    }

    /// Sends a request; `body` is `(content type, bytes)`.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> anyhow::Result<Reply> {
        let url = format!("{}{path}", self.base);
        let mut request = self.client.request(method.clone(), &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some((content_type, bytes)) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type).body(bytes);
        }
        let response = request.send().await.with_context(|| format!("{method} {url}"))?;
        let status = response.status().as_u16();
        let body = response.text().await.with_context(|| format!("{method} {url}: body"))?;
        let json = serde_json::from_str(&body).ok();
        Ok(Reply { status, body, json })
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        self.request(reqwest::Method::GET, path, None).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Reply> {
        self.request(reqwest::Method::DELETE, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Reply> {
        self.post_raw(path, "application/json", body.to_string().into_bytes()).await
    }

    /// `POST path` with any body.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> anyhow::Result<Reply> {
        self.request(reqwest::Method::POST, path, Some((content_type, body))).await
    }

    /// `GET /api/v1/streams`.
    pub async fn streams(&self) -> anyhow::Result<Vec<StreamInfo>> {
        let reply = self.get("/api/v1/streams").await?.expect_success("list streams")?;
        list_from(reply, "streams")
    }

    /// `GET /api/v1/streams/{key}`; `None` on 404.
    pub async fn stream(&self, key: &str) -> anyhow::Result<Option<StreamInfo>> {
        let reply = self.get(&format!("/api/v1/streams/{key}")).await?;
        if reply.status == 404 {
            return Ok(None);
        }
        item_from(reply.expect_success("get stream")?, "stream").map(Some)
    }

    /// `DELETE /api/v1/streams/{key}`.
    pub async fn delete_stream(&self, key: &str) -> anyhow::Result<Reply> {
        self.delete(&format!("/api/v1/streams/{key}")).await
    }

    /// `POST /api/v1/streams/{key}/pushes {"url"}`.
    pub async fn create_push(&self, key: &str, url: &str) -> anyhow::Result<Relay> {
        let reply = self
            .post_json(&format!("/api/v1/streams/{key}/pushes"), &serde_json::json!({ "url": url }))
            .await?
            .expect_success("create push")?;
        item_from(reply, "push")
    }

    /// `GET /api/v1/streams/{key}/pushes`.
    pub async fn pushes(&self, key: &str) -> anyhow::Result<Vec<Relay>> {
        let reply = self.get(&format!("/api/v1/streams/{key}/pushes")).await?.expect_success("list pushes")?;
        list_from(reply, "pushes")
    }

    /// `DELETE /api/v1/streams/{key}/pushes/{id}`.
    pub async fn delete_push(&self, key: &str, id: &str) -> anyhow::Result<Reply> {
        self.delete(&format!("/api/v1/streams/{key}/pushes/{id}")).await
    }

    /// `POST /api/v1/pulls {"stream","url"}`.
    pub async fn create_pull(&self, stream: &str, url: &str) -> anyhow::Result<Relay> {
        let reply = self
            .post_json("/api/v1/pulls", &serde_json::json!({ "stream": stream, "url": url }))
            .await?
            .expect_success("create pull")?;
        item_from(reply, "pull")
    }

    /// `GET /api/v1/pulls`.
    pub async fn pulls(&self) -> anyhow::Result<Vec<Relay>> {
        let reply = self.get("/api/v1/pulls").await?.expect_success("list pulls")?;
        list_from(reply, "pulls")
    }

    /// `DELETE /api/v1/pulls/{id}`.
    pub async fn delete_pull(&self, id: &str) -> anyhow::Result<Reply> {
        self.delete(&format!("/api/v1/pulls/{id}")).await
    }

    /// Waits until `key` has a publisher with video and audio tracks.
    pub async fn wait_live(&self, key: &str, timeout: Duration) -> anyhow::Result<StreamInfo> {
        super::wait_until(timeout, &format!("stream {key} live (publisher, video, audio)"), || async move {
            match self.stream(key).await {
                Ok(Some(s)) if s.publisher.is_some() && s.video.is_some() && s.audio.is_some() => Ok(s),
                other => Err(format!("{other:?}")),
            }
        })
        .await
    }

    /// The status of `GET /healthz`.
    pub async fn healthz(&self) -> anyhow::Result<u16> {
        Ok(self.get("/healthz").await?.status)
    }
}

/// Parses `{"<key>":[...]}` or a bare array.
fn list_from<T: DeserializeOwned>(reply: Reply, key: &str) -> anyhow::Result<Vec<T>> {
    let json = reply.json.with_context(|| format!("not JSON: {}", reply.body))?;
    let list = match json {
        Value::Object(mut map) if map.contains_key(key) => map.remove(key).unwrap_or_default(),
        other => other,
    };
    serde_json::from_value(list.clone()).with_context(|| format!("unexpected {key} list shape: {list}"))
}

/// Parses an object, or one wrapped as `{"<key>":{...}}`.
fn item_from<T: DeserializeOwned>(reply: Reply, key: &str) -> anyhow::Result<T> {
    let json = reply.json.with_context(|| format!("not JSON: {}", reply.body))?;
    let item = match json {
        Value::Object(mut map) if map.get(key).is_some_and(Value::is_object) => map.remove(key).unwrap_or_default(),
        other => other,
    };
    serde_json::from_value(item.clone()).with_context(|| format!("unexpected {key} shape: {item}"))
}
