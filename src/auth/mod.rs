//! Admission: who may publish, play, or call the control API.
//!
//! Every way in (RTMP, HTTP-FLV, H5 WebSocket, WHIP/WHEP, the API) builds one [`Request`] from
//! what its client sent — the stream key, the URL query, a bearer token, the remote address,
//! Origin/Referer — and asks the one [`Policy`] before any media flows. The policy is pure:
//! time is passed in, nothing here does IO. The webhook method is the exception by nature; the
//! policy answers [`Verdict::AskWebhook`] and [`webhook`] makes the call.
//!
//! Methods, per action, any one passing allows: `open`, `keys` (static keys from the config,
//! optionally limited to streams and address ranges), `signed` (our HMAC-SHA256 URLs),
//! `tencent` (`txSecret`/`txTime`), `aliyun` (`auth_key`, type A) and `webhook`.

pub mod admission;
pub mod api_token;
pub mod keys;
pub mod origin;
pub mod policy;
pub mod redact;
pub mod relay_targets;
pub mod request;
pub mod secret;
pub mod settings;
pub mod signature;
pub mod vendor;
pub mod webhook;
#[cfg(test)]
mod webhook_tests;

pub use admission::Admission;
pub use api_token::Role;
pub use policy::{Denial, DenyReason, Policy, Verdict};
pub use request::{Action, Entry, Request};
pub use settings::{AuthSettings, Method};
