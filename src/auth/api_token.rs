//! Who may call the control API (and read `/metrics`): bearer tokens with a role from the
//! config; with none configured, loopback clients only.

use std::net::IpAddr;

use serde::Deserialize;

use super::policy::{Denial, DenyReason};
use super::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// GET only; viewers' addresses are left out of what it reads.
    Read,
    /// Everything.
    Admin,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTokenDecl {
    pub token: Secret,
    pub role: Role,
}

#[derive(Debug, Clone, Default)]
pub struct ApiTokens {
    tokens: Vec<ApiTokenDecl>,
}

impl ApiTokens {
    pub fn new(tokens: &[ApiTokenDecl]) -> ApiTokens {
        ApiTokens { tokens: tokens.iter().filter(|t| !t.token.is_empty()).cloned().collect() }
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The caller's role when it may do what needs `needed`. Without tokens configured, a
    /// loopback caller is admin and every other caller is refused.
    pub fn check(&self, bearer: Option<&str>, ip: IpAddr, needed: Role) -> Result<Role, Denial> {
        let role = if self.tokens.is_empty() {
            if !is_loopback(ip) {
                return Err(Denial::new(DenyReason::ApiLoopbackOnly));
            }
            Role::Admin
        } else {
            let Some(bearer) = bearer else {
                return Err(Denial::new(DenyReason::NoCredentials));
            };
            // Compare with every token, so the time taken does not say which one matched.
            let roles: Vec<Role> = self.tokens.iter().filter(|t| t.token.matches(bearer)).map(|t| t.role).collect();
            let Some(role) = roles.into_iter().max() else {
                return Err(Denial::new(DenyReason::UnknownKey));
            };
            role
        };
        if role < needed {
            return Err(Denial::new(DenyReason::ApiRole));
        }
        Ok(role)
    }
}

pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_only_without_tokens() {
        let t = ApiTokens::new(&[]);
        assert_eq!(t.check(None, ip("127.0.0.1"), Role::Admin), Ok(Role::Admin));
        assert_eq!(t.check(None, ip("::ffff:127.0.0.1"), Role::Admin), Ok(Role::Admin));
        assert_eq!(t.check(Some("x"), ip("192.0.2.1"), Role::Read).unwrap_err().status(), 403);
    }

    #[test]
    fn tokens_and_roles() {
        let decls: Vec<ApiTokenDecl> =
            serde_saphyr::from_str("- { token: adm, role: admin }\n- { token: ro, role: read }\n").unwrap();
        let t = ApiTokens::new(&decls);
        assert_eq!(t.check(Some("adm"), ip("192.0.2.1"), Role::Admin), Ok(Role::Admin));
        assert_eq!(t.check(Some("ro"), ip("192.0.2.1"), Role::Read), Ok(Role::Read));
        assert_eq!(t.check(Some("ro"), ip("192.0.2.1"), Role::Admin).unwrap_err().status(), 403);
        assert_eq!(
            t.check(None, ip("127.0.0.1"), Role::Read).unwrap_err().status(),
            401,
            "tokens apply to loopback too"
        );
        assert_eq!(t.check(Some("nope"), ip("127.0.0.1"), Role::Read).unwrap_err().status(), 401);
    }
}
