//! The one admission point: (action, way in, stream, credentials, address, page) → allow, deny
//! with a reason, or "ask the webhook". Pure: the time is passed in.

use super::api_token::ApiTokens;
use super::keys::Keys;
use super::origin::Origins;
use super::request::{Action, Request};
use super::secret::Secret;
use super::settings::{AuthSettings, Method};
use super::{signature, vendor};

/// Why a request was refused. The order is specificity: when several methods refuse, the
/// most specific reason is reported.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum DenyReason {
    NoCredentials,
    UnknownKey,
    KeyNotForThis,
    BadSignature,
    Expired,
    OriginNotAllowed,
    ApiLoopbackOnly,
    ApiRole,
    /// The webhook answered this status, or could not be asked (0).
    Webhook(u16),
}

impl std::fmt::Display for DenyReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DenyReason::NoCredentials => f.write_str("credentials required"),
            DenyReason::UnknownKey => f.write_str("unknown key or token"),
            DenyReason::KeyNotForThis => f.write_str("the key does not allow this action, stream or address"),
            DenyReason::BadSignature => f.write_str("bad signature"),
            DenyReason::Expired => f.write_str("signature expired"),
            DenyReason::OriginNotAllowed => f.write_str("page origin not allowed"),
            DenyReason::ApiLoopbackOnly => {
                f.write_str("the API answers loopback clients only (configure auth.api_tokens to open it)")
            }
            DenyReason::ApiRole => f.write_str("this token's role may not do that"),
            DenyReason::Webhook(0) => f.write_str("admission webhook unavailable"),
            DenyReason::Webhook(status) => write!(f, "refused by the admission webhook ({status})"),
        }
    }
}

/// A refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub reason: DenyReason,
}

impl Denial {
    pub fn new(reason: DenyReason) -> Denial {
        Denial { reason }
    }

    /// 401 when credentials are missing or unknown, 403 when they do not allow this.
    pub fn status(&self) -> u16 {
        match self.reason {
            DenyReason::NoCredentials | DenyReason::UnknownKey => 401,
            _ => 403,
        }
    }
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.reason.fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow(Method),
    Deny(Denial),
    /// No local method allowed and `webhook` is listed: the webhook decides.
    AskWebhook,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("auth.{0}: no method listed (use [open] to admit everyone)")]
    NoMethod(&'static str),
    #[error("auth.{action}: method `{method}` needs {what}")]
    Missing { action: &'static str, method: &'static str, what: &'static str },
    #[error("auth.webhook: `{0}` is not an http:// URL")]
    BadWebhook(String),
    #[error("auth.event_hooks: `{0}` is not an http:// URL")]
    BadEventHook(String),
    #[error("auth.keys: {0}")]
    BadKeyRange(#[from] crate::addr_rules::BadHostRule),
}

/// The compiled `auth:` section.
#[derive(Debug, Clone)]
pub struct Policy {
    publish: Vec<Method>,
    play: Vec<Method>,
    secret: Secret,
    tencent_key: Secret,
    aliyun_key: Secret,
    keys: Keys,
    origins: Origins,
    pub api: ApiTokens,
    pub webhook: Option<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::new(&AuthSettings::default()).unwrap_or_else(|_| unreachable!("the defaults are valid"))
    }
}

impl Policy {
    pub fn new(s: &AuthSettings) -> Result<Policy, AuthConfigError> {
        let keys = Keys::new(&s.keys)?;
        for (action, methods) in [("publish", &s.publish), ("play", &s.play)] {
            if methods.is_empty() {
                return Err(AuthConfigError::NoMethod(action));
            }
            for m in methods.iter() {
                let what = match m {
                    Method::Signed if s.secret.is_empty() => "auth.secret",
                    Method::Tencent if s.tencent_key.is_empty() => "auth.tencent_key",
                    Method::Aliyun if s.aliyun_key.is_empty() => "auth.aliyun_key",
                    Method::Keys if keys.is_empty() => "at least one entry in auth.keys",
                    Method::Webhook if s.webhook.is_none() => "auth.webhook",
                    _ => continue,
                };
                return Err(AuthConfigError::Missing { action, method: m.as_str(), what });
            }
        }
        if let Some(url) = &s.webhook {
            if !url.starts_with("http://") {
                return Err(AuthConfigError::BadWebhook(url.clone()));
            }
        }
        if let Some(url) = s.event_hooks.iter().find(|u| !u.starts_with("http://")) {
            return Err(AuthConfigError::BadEventHook(url.clone()));
        }
        Ok(Policy {
            publish: s.publish.clone(),
            play: s.play.clone(),
            secret: s.secret.clone(),
            tencent_key: s.tencent_key.clone(),
            aliyun_key: s.aliyun_key.clone(),
            keys,
            origins: Origins::new(&s.allowed_origins, s.allow_empty_origin),
            api: ApiTokens::new(&s.api_tokens),
            webhook: s.webhook.clone(),
        })
    }

    pub fn methods(&self, action: Action) -> &[Method] {
        match action {
            Action::Publish => &self.publish,
            Action::Play => &self.play,
            Action::Api => &[],
        }
    }

    /// Whether `action` is open to everyone (startup warns about it).
    pub fn is_open(&self, action: Action) -> bool {
        self.methods(action).contains(&Method::Open)
    }

    /// Decides a publish or play request at `now` (Unix seconds).
    pub fn check(&self, req: &Request<'_>, now: u64) -> Verdict {
        if req.action == Action::Play && req.entry.is_browser_egress() && !self.origins.allows(req.origin, req.referer)
        {
            return Verdict::Deny(Denial::new(DenyReason::OriginNotAllowed));
        }
        let mut best: Option<DenyReason> = None;
        let mut ask_webhook = false;
        for &method in self.methods(req.action) {
            let outcome = match method {
                Method::Open => Ok(()),
                Method::Keys => self.keys.verify(req).map(|_| ()),
                Method::Signed => signature::verify(&self.secret, req, now),
                Method::Tencent => vendor::tencent_verify(&self.tencent_key, req, now),
                Method::Aliyun => vendor::aliyun_verify(&self.aliyun_key, req, now),
                Method::Webhook => {
                    ask_webhook = true;
                    continue;
                }
            };
            match outcome {
                Ok(()) => return Verdict::Allow(method),
                Err(reason) => best = best.max(Some(reason)),
            }
        }
        if ask_webhook {
            return Verdict::AskWebhook;
        }
        Verdict::Deny(Denial::new(best.unwrap_or(DenyReason::NoCredentials)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::request::{parse_query, Entry};

    fn policy(yaml: &str) -> Policy {
        let s: AuthSettings = serde_saphyr::from_str(yaml).unwrap();
        Policy::new(&s).unwrap()
    }

    fn ask(p: &Policy, action: Action, entry: Entry, query: &str, origin: Option<&str>, now: u64) -> Verdict {
        let q = parse_query(query);
        let req = Request { origin, ..Request::for_test(action, entry, "room1", "/live/room1", &q) };
        p.check(&req, now)
    }

    #[test]
    fn open_by_default() {
        let p = Policy::default();
        assert!(p.is_open(Action::Publish) && p.is_open(Action::Play));
        assert_eq!(ask(&p, Action::Publish, Entry::Rtmp, "", None, 0), Verdict::Allow(Method::Open));
    }

    #[test]
    fn any_listed_method_allows_and_the_most_specific_refusal_is_reported() {
        let p = policy("secret: s\ntencent_key: t\npublish: [signed, tencent]\nplay: [signed, webhook]\nwebhook: http://127.0.0.1:9/admit\n");
        let signed = signature::query(&Secret::new("s"), Action::Publish, "room1", 100);
        let tencent = vendor::tencent_query(&Secret::new("t"), "room1", 100);
        assert_eq!(ask(&p, Action::Publish, Entry::Rtmp, &signed, None, 50), Verdict::Allow(Method::Signed));
        assert_eq!(ask(&p, Action::Publish, Entry::Whip, &tencent, None, 50), Verdict::Allow(Method::Tencent));
        let expired = ask(&p, Action::Publish, Entry::Rtmp, &signed, None, 101);
        assert_eq!(expired, Verdict::Deny(Denial::new(DenyReason::Expired)));
        let none = ask(&p, Action::Publish, Entry::Rtmp, "", None, 0);
        assert!(matches!(&none, Verdict::Deny(d) if d.status() == 401), "{none:?}");
        assert_eq!(ask(&p, Action::Play, Entry::HttpFlv, "", None, 0), Verdict::AskWebhook);
        let play = signature::query(&Secret::new("s"), Action::Play, "room1", 100);
        assert_eq!(ask(&p, Action::Play, Entry::HttpFlv, &play, None, 0), Verdict::Allow(Method::Signed));
    }

    #[test]
    fn browser_pages_outside_the_list_are_refused_before_any_method() {
        let p = policy("allowed_origins: [school.example]\nallow_empty_origin: false\n");
        let deny = Verdict::Deny(Denial::new(DenyReason::OriginNotAllowed));
        assert_eq!(ask(&p, Action::Play, Entry::HttpFlv, "", Some("https://evil.example"), 0), deny);
        assert_eq!(ask(&p, Action::Play, Entry::Whep, "", None, 0), deny);
        assert_eq!(
            ask(&p, Action::Play, Entry::H5, "", Some("https://school.example"), 0),
            Verdict::Allow(Method::Open)
        );
        assert_eq!(
            ask(&p, Action::Play, Entry::Rtmp, "", None, 0),
            Verdict::Allow(Method::Open),
            "not a browser way in"
        );
    }

    #[test]
    fn incomplete_settings_are_refused_at_load() {
        for (yaml, want) in [
            ("publish: [signed]\n", "auth.secret"),
            ("play: [tencent]\n", "auth.tencent_key"),
            ("play: [aliyun]\n", "auth.aliyun_key"),
            ("publish: [keys]\n", "auth.keys"),
            ("play: [webhook]\n", "auth.webhook"),
            ("publish: []\n", "no method"),
            ("webhook: https://x/\n", "http://"),
            ("keys: [{ key: k, from: [nonsense] }]\n", "nonsense"),
        ] {
            let s: AuthSettings = serde_saphyr::from_str(yaml).unwrap();
            let e = Policy::new(&s).unwrap_err().to_string();
            assert!(e.contains(want), "{yaml}: {e}");
        }
    }

    #[test]
    fn settings_debug_shows_no_secret() {
        let s: AuthSettings =
            serde_saphyr::from_str("secret: sup3r\nkeys: [{ key: k3y }]\napi_tokens: [{ token: t0k, role: admin }]\n")
                .unwrap();
        let text = format!("{s:?} {:?}", Policy::new(&s).unwrap());
        for secret in ["sup3r", "k3y", "t0k"] {
            assert!(!text.contains(secret), "{text}");
        }
    }
}
