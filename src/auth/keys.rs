//! Static keys from the config (`auth.keys`): a key, optionally a user name, the actions and
//! streams it opens, and the address ranges it may be used from. The client presents it in
//! the query (`key=` or `token=`, with `user=` when the entry names a user) or as
//! `Authorization: Bearer KEY`.

use std::net::IpAddr;

use serde::Deserialize;

use super::policy::DenyReason;
use super::request::{Action, Request};
use super::secret::Secret;
use crate::addr_rules::{BadHostRule, HostRule};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyDecl {
    /// Shown in logs instead of the key.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    pub key: Secret,
    #[serde(default = "both_actions")]
    pub actions: Vec<Action>,
    /// Stream keys: exact, `prefix*`, or `*`.
    #[serde(default = "any_stream")]
    pub streams: Vec<String>,
    /// Addresses or CIDR networks the key may be used from; empty: anywhere.
    #[serde(default)]
    pub from: Vec<String>,
}

fn both_actions() -> Vec<Action> {
    vec![Action::Publish, Action::Play]
}

fn any_stream() -> Vec<String> {
    vec!["*".into()]
}

/// The compiled `auth.keys`.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    label: String,
    user: Option<String>,
    key: Secret,
    actions: Vec<Action>,
    streams: Vec<String>,
    from: Vec<HostRule>,
}

impl Keys {
    pub fn new(decls: &[KeyDecl]) -> Result<Keys, BadHostRule> {
        let mut entries = Vec::new();
        for (i, d) in decls.iter().enumerate() {
            let mut from = Vec::new();
            for rule in &d.from {
                from.extend(HostRule::parse(rule)?);
            }
            entries.push(Entry {
                label: d.name.clone().or_else(|| d.user.clone()).unwrap_or_else(|| format!("key #{}", i + 1)),
                user: d.user.clone(),
                key: d.key.clone(),
                actions: d.actions.clone(),
                streams: d.streams.clone(),
                from,
            });
        }
        Ok(Keys { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The label of the entry that admits the request.
    pub fn verify(&self, req: &Request<'_>) -> Result<&str, DenyReason> {
        let presented = req.param("key").or_else(|| req.param("token")).or(req.bearer);
        let Some(presented) = presented else {
            return Err(DenyReason::NoCredentials);
        };
        let user = req.param("user");
        // Compare with every entry, so the time taken does not say which one matched.
        let matched: Vec<&Entry> = self.entries.iter().filter(|e| e.key.matches(presented)).collect();
        let Some(entry) = matched.into_iter().find(|e| e.user.is_none() || e.user.as_deref() == user) else {
            return Err(DenyReason::UnknownKey);
        };
        let allowed = entry.actions.contains(&req.action)
            && entry.streams.iter().any(|p| stream_matches(p, req.stream))
            && from_allowed(&entry.from, req.ip);
        if allowed {
            Ok(&entry.label)
        } else {
            Err(DenyReason::KeyNotForThis)
        }
    }
}

fn from_allowed(rules: &[HostRule], ip: IpAddr) -> bool {
    rules.is_empty() || rules.iter().any(|r| r.contains(ip))
}

/// `*`, `prefix*` or an exact key.
pub fn stream_matches(pattern: &str, stream: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => stream.starts_with(prefix),
        None => pattern == stream,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::request::{parse_query, Entry as Way};

    fn keys(yaml: &str) -> Keys {
        let decls: Vec<KeyDecl> = serde_saphyr::from_str(yaml).unwrap();
        Keys::new(&decls).unwrap()
    }

    fn check(
        k: &Keys,
        action: Action,
        stream: &str,
        query: &str,
        bearer: Option<&str>,
        ip: &str,
    ) -> Result<String, DenyReason> {
        let q = parse_query(query);
        let req = Request {
            action,
            entry: Way::Rtmp,
            stream,
            path: "/",
            query: &q,
            bearer,
            ip: ip.parse().unwrap(),
            origin: None,
            referer: None,
        };
        k.verify(&req).map(str::to_string)
    }

    #[test]
    fn keys_open_their_actions_streams_and_ranges_only() {
        let k = keys(
            "- { name: teachers, key: t-secret, actions: [publish], streams: ['class-*'], from: [10.0.0.0/8] }\n\
             - { user: alice, key: a-pass, actions: [play] }\n\
             - { key: anyone }\n",
        );
        assert_eq!(check(&k, Action::Publish, "class-7", "key=t-secret", None, "10.1.2.3"), Ok("teachers".into()));
        assert_eq!(check(&k, Action::Publish, "class-7", "", Some("t-secret"), "10.1.2.3"), Ok("teachers".into()));
        assert_eq!(
            check(&k, Action::Publish, "class-7", "key=t-secret", None, "192.0.2.1"),
            Err(DenyReason::KeyNotForThis)
        );
        assert_eq!(
            check(&k, Action::Play, "class-7", "key=t-secret", None, "10.1.2.3"),
            Err(DenyReason::KeyNotForThis)
        );
        assert_eq!(
            check(&k, Action::Publish, "other", "key=t-secret", None, "10.1.2.3"),
            Err(DenyReason::KeyNotForThis)
        );
        assert_eq!(check(&k, Action::Play, "x", "user=alice&token=a-pass", None, "192.0.2.1"), Ok("alice".into()));
        assert_eq!(
            check(&k, Action::Play, "x", "user=bob&token=a-pass", None, "192.0.2.1"),
            Err(DenyReason::UnknownKey)
        );
        assert_eq!(check(&k, Action::Play, "x", "key=wrong", None, "192.0.2.1"), Err(DenyReason::UnknownKey));
        assert_eq!(check(&k, Action::Play, "x", "", None, "192.0.2.1"), Err(DenyReason::NoCredentials));
        assert_eq!(check(&k, Action::Publish, "x", "key=anyone", None, "::1"), Ok("key #3".into()));
        assert!(stream_matches("*", "") && stream_matches("a*", "a") && !stream_matches("a", "ab"));
    }
}
