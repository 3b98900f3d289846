//! The admission point every way in calls: the policy, then the webhook when the policy says
//! so, with a log line for every refusal (credentials cut) and counters for `/metrics`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::api_token::Role;
use super::policy::{AuthConfigError, Denial, Policy, Verdict};
use super::request::{Action, Request};
use super::settings::{AuthSettings, Method};
use super::webhook::{Event, Events, Webhook};
use crate::hub::observer::{Activity, Notice, Observer};

/// Shared by every protocol; cheap to clone.
#[derive(Clone)]
pub struct Admission {
    inner: Arc<Inner>,
}

struct Inner {
    policy: Policy,
    webhook: Option<Webhook>,
    events: Events,
    allowed: AtomicU64,
    denied: AtomicU64,
}

/// Counters of admission, for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdmissionStats {
    pub allowed: u64,
    pub denied: u64,
    pub webhook_calls: u64,
    pub webhook_cache_hits: u64,
    pub events_dropped: u64,
}

impl Default for Admission {
    fn default() -> Self {
        Admission::with(Policy::default(), None, Events::disabled())
    }
}

impl Admission {
    /// Compiles the `auth:` section. Event hooks start when called inside a tokio runtime.
    pub fn new(settings: &AuthSettings) -> Result<Admission, AuthConfigError> {
        let policy = Policy::new(settings)?;
        let events = match tokio::runtime::Handle::try_current() {
            Ok(_) => Events::start(&settings.event_hooks),
            Err(_) => Events::disabled(),
        };
        Ok(Admission::with(policy, Webhook::new(settings), events))
    }

    fn with(policy: Policy, webhook: Option<Webhook>, events: Events) -> Admission {
        Admission {
            inner: Arc::new(Inner { policy, webhook, events, allowed: AtomicU64::new(0), denied: AtomicU64::new(0) }),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// Logs a warning for each action left open to everyone.
    pub fn warn_if_open(&self) {
        for action in [Action::Publish, Action::Play] {
            if self.inner.policy.is_open(action) {
                tracing::warn!(
                    action = action.as_str(),
                    "auth: anyone may {} (auth.{} lists `open`)",
                    action.as_str(),
                    action.as_str()
                );
            }
        }
    }

    /// Decides a publish or play request.
    pub async fn admit(&self, req: &Request<'_>) -> Result<Method, Denial> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let verdict = match self.inner.policy.check(req, now) {
            Verdict::Allow(m) => Ok(m),
            Verdict::Deny(d) => Err(d),
            Verdict::AskWebhook => match &self.inner.webhook {
                Some(hook) => hook.ask(req).await.map(|()| Method::Webhook),
                None => Err(Denial::new(super::DenyReason::Webhook(0))),
            },
        };
        match &verdict {
            Ok(_) => self.inner.allowed.fetch_add(1, Ordering::Relaxed),
            Err(denial) => {
                tracing::info!(
                    action = req.action.as_str(),
                    protocol = req.entry.as_str(),
                    stream = %req.stream,
                    ip = %req.ip,
                    reason = %denial,
                    "refused"
                );
                self.inner.denied.fetch_add(1, Ordering::Relaxed)
            }
        };
        verdict
    }

    /// Checks a control-API call needing `needed`.
    pub fn api(&self, bearer: Option<&str>, ip: IpAddr, needed: Role) -> Result<Role, Denial> {
        let verdict = self.inner.policy.api.check(bearer, ip, needed);
        if let Err(denial) = &verdict {
            tracing::info!(action = "api", ip = %ip, reason = %denial, "refused");
            self.inner.denied.fetch_add(1, Ordering::Relaxed);
        }
        verdict
    }

    /// Sends an event notice to the event hooks (never waits).
    pub fn event(&self, event: Event, protocol: &'static str, stream: &str, ip: Option<IpAddr>) {
        self.inner.events.send(event, protocol, stream, ip);
    }

    pub fn stats(&self) -> AdmissionStats {
        let i = &self.inner;
        AdmissionStats {
            allowed: i.allowed.load(Ordering::Relaxed),
            denied: i.denied.load(Ordering::Relaxed),
            webhook_calls: i.webhook.as_ref().map_or(0, |w| w.calls.load(Ordering::Relaxed)),
            webhook_cache_hits: i.webhook.as_ref().map_or(0, |w| w.cache_hits.load(Ordering::Relaxed)),
            events_dropped: i.events.dropped.load(Ordering::Relaxed),
        }
    }
}

/// Publishes, plays and their ends go to the event hooks.
impl Observer for Admission {
    fn notice(&self, n: &Notice<'_>) {
        let event = match n.activity {
            Activity::Publish => Event::Publish,
            Activity::Unpublish => Event::Unpublish,
            Activity::Play => Event::Play,
            Activity::Stop => Event::Stop,
        };
        let ip = n
            .remote
            .and_then(|r| r.parse::<std::net::SocketAddr>().map(|a| a.ip()).or_else(|_| r.parse::<IpAddr>()).ok());
        self.event(event, n.protocol.as_str(), n.stream.as_str(), ip);
    }
}
