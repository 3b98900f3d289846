//! Address rules: addresses and CIDR networks (`10.0.0.0/8`, `::1`, `*`), as used by
//! `udp.allowed_output_hosts` (loopback only by default) and the admission policy.

use std::fmt;
use std::net::IpAddr;

/// One allowed address or network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostRule {
    network: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an address or CIDR network (e.g. 127.0.0.0/8, 10.1.2.3, ::1, or * for any)")]
pub struct BadHostRule(pub String);

impl HostRule {
    /// Parses `10.0.0.0/8`, `192.0.2.7`, `::1`, `fd00::/8`, or `*` (any address).
    pub fn parse(text: &str) -> Result<Vec<HostRule>, BadHostRule> {
        let text = text.trim();
        let bad = || BadHostRule(text.to_string());
        if text == "*" {
            return Ok(vec![
                HostRule { network: IpAddr::from([0u8; 4]), prefix: 0 },
                HostRule { network: IpAddr::from([0u16; 8]), prefix: 0 },
            ]);
        }
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(vec![HostRule { network, prefix }])
    }

    /// Whether `ip` is inside this rule.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                prefix_match(u128::from(u32::from(n)) << 96, u128::from(u32::from(a)) << 96, self.prefix)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_match(u128::from(n), u128::from(a), self.prefix),
            _ => false,
        }
    }
}

fn prefix_match(network: u128, address: u128, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - u32::from(prefix));
    network & mask == address & mask
}

impl fmt::Display for HostRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The loopback networks, the default.
pub fn default_rules() -> Vec<String> {
    vec!["127.0.0.0/8".into(), "::1".into()]
}

/// Parses every rule of the configuration.
pub fn parse_all(texts: &[String]) -> Result<Vec<HostRule>, BadHostRule> {
    let mut rules = Vec::new();
    for t in texts {
        rules.extend(HostRule::parse(t)?);
    }
    Ok(rules)
}

/// Whether `ip` is allowed by any rule.
pub fn allowed(rules: &[HostRule], ip: IpAddr) -> bool {
    rules.iter().any(|r| r.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_by_default() {
        let rules = parse_all(&default_rules()).unwrap();
        assert!(allowed(&rules, ip("127.0.0.1")));
        assert!(allowed(&rules, ip("127.8.9.10")));
        assert!(allowed(&rules, ip("::1")));
        assert!(allowed(&rules, ip("::ffff:127.0.0.1")), "v4-mapped loopback");
        assert!(!allowed(&rules, ip("10.0.0.1")));
        assert!(!allowed(&rules, ip("192.0.2.1")));
        assert!(!allowed(&rules, ip("::2")));
    }

    #[test]
    fn networks_addresses_and_any() {
        let rules = parse_all(&["10.1.0.0/16".into(), "192.0.2.7".into(), "fd00::/8".into()]).unwrap();
        assert!(allowed(&rules, ip("10.1.200.3")));
        assert!(!allowed(&rules, ip("10.2.0.1")));
        assert!(allowed(&rules, ip("192.0.2.7")));
        assert!(!allowed(&rules, ip("192.0.2.8")));
        assert!(allowed(&rules, ip("fd12::1")));
        assert!(!allowed(&rules, ip("fe80::1")));
        let any = parse_all(&["*".into()]).unwrap();
        assert!(allowed(&any, ip("203.0.113.9")) && allowed(&any, ip("2001:db8::1")));
        for bad in ["10.0.0.0/33", "::/129", "example.com", "10.0.0.0/x", ""] {
            assert!(HostRule::parse(bad).is_err(), "{bad}");
        }
    }
}
