//! The `auth:` section of the configuration.

use serde::Deserialize;

use super::api_token::ApiTokenDecl;
use super::keys::KeyDecl;
use super::secret::Secret;

/// One admission method. Several may be listed per action; any one passing allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Everyone is allowed (the default for publish and play, with a warning at start).
    Open,
    /// A static key from `auth.keys`, in the query (`key=` or `token=`) or as a bearer token.
    Keys,
    /// Our signed, expiring URLs: `expires=UNIX&sign=HEX`, HMAC-SHA256 with `auth.secret`.
    Signed,
    /// Tencent's live convention: `txSecret=md5(key + stream + txTime)&txTime=HEX`.
    Tencent,
    /// Alibaba Cloud's `auth_key`, type A: `TIMESTAMP-RAND-UID-md5(PATH-TIMESTAMP-RAND-UID-KEY)`.
    Aliyun,
    /// Ask `auth.webhook`: a 2xx answer allows.
    Webhook,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Open => "open",
            Method::Keys => "keys",
            Method::Signed => "signed",
            Method::Tencent => "tencent",
            Method::Aliyun => "aliyun",
            Method::Webhook => "webhook",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// The HMAC key of signed URLs (`signed`).
    pub secret: Secret,
    /// Methods that admit a publisher, and a viewer.
    pub publish: Vec<Method>,
    pub play: Vec<Method>,
    /// Static keys (`keys`).
    pub keys: Vec<KeyDecl>,
    /// The key of Tencent-style (`tencent`) and Alibaba-style (`aliyun`) signatures.
    pub tencent_key: Secret,
    pub aliyun_key: Secret,
    /// Admission webhook: `http://HOST:PORT/PATH`, POSTed JSON; fail closed.
    pub webhook: Option<String>,
    pub webhook_timeout_ms: u64,
    /// Seconds an allowing answer is reused for the same question (0: never).
    pub webhook_cache_seconds: f64,
    /// Event hooks (`publish`, `unpublish`, `play`, `stop`), sent to each URL with retries.
    pub event_hooks: Vec<String>,
    /// Browser egress (HTTP-FLV, H5, WHEP) only for pages of these hosts (`example.com`,
    /// `*.example.com`); empty: any page.
    pub allowed_origins: Vec<String>,
    /// With `allowed_origins`, whether a request with neither Origin nor Referer (a player
    /// app, ffmpeg) passes.
    pub allow_empty_origin: bool,
    /// Control-API tokens. None: the API answers loopback clients only.
    pub api_tokens: Vec<ApiTokenDecl>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            secret: Secret::default(),
            publish: vec![Method::Open],
            play: vec![Method::Open],
            keys: Vec::new(),
            tencent_key: Secret::default(),
            aliyun_key: Secret::default(),
            webhook: None,
            webhook_timeout_ms: 2000,
            webhook_cache_seconds: 0.0,
            event_hooks: Vec::new(),
            allowed_origins: Vec::new(),
            allow_empty_origin: true,
            api_tokens: Vec::new(),
        }
    }
}
