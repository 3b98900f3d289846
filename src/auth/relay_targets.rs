//! Where pushes and pulls may dial: no open relay, no request forgery. With
//! `relay.allowed_hosts` (host names, addresses, CIDR networks) only those; without it,
//! anything but loopback, link-local (169.254.0.0/16 holds cloud metadata services),
//! unspecified and multicast addresses, and the gateway's own listeners (a push to itself would
//! loop). Checked on the addresses a name resolves to.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use crate::addr_rules::{BadHostRule, HostRule};

#[derive(Debug, Clone, Default)]
pub struct RelayTargets {
    names: Vec<String>,
    networks: Vec<HostRule>,
    /// The gateway's own listening sockets, once bound.
    own: OnceLock<Vec<SocketAddr>>,
}

impl RelayTargets {
    pub fn new(allowed: &[String]) -> Result<RelayTargets, BadHostRule> {
        let mut targets = RelayTargets::default();
        for entry in allowed {
            let entry = entry.trim();
            match HostRule::parse(entry) {
                Ok(rules) => targets.networks.extend(rules),
                // Not an address or network: a host name.
                Err(_) if is_host_name(entry) => targets.names.push(entry.to_ascii_lowercase()),
                Err(e) => return Err(e),
            }
        }
        Ok(targets)
    }

    /// Tells the check the gateway's own listening sockets (set once, at start).
    pub fn set_own_listeners(&self, listeners: Vec<SocketAddr>) {
        let _ = self.own.set(listeners);
    }

    /// [`check`](Self::check), and, without an allow-list, no `port` of one of the gateway's own
    /// listeners on an address of this machine (`is_local` tells which are).
    pub fn check_dial(
        &self,
        host: &str,
        addresses: &[IpAddr],
        port: u16,
        is_local: impl Fn(IpAddr) -> bool,
    ) -> Result<(), String> {
        self.check(host, addresses)?;
        if self.is_restricted() {
            return Ok(());
        }
        let own = self.own.get().map(Vec::as_slice).unwrap_or_default();
        let ours =
            |a: IpAddr| own.iter().any(|l| l.port() == port && (l.ip() == a || l.ip().is_unspecified() && is_local(a)));
        match addresses.iter().find(|a| ours(**a)) {
            Some(a) => Err(format!("`{host}:{port}` ({a}) is this gateway's own listener: relays may not dial it")),
            None => Ok(()),
        }
    }

    pub fn is_restricted(&self) -> bool {
        !self.names.is_empty() || !self.networks.is_empty()
    }

    /// Whether `host`, resolved to `addresses`, may be dialled; else why not.
    pub fn check(&self, host: &str, addresses: &[IpAddr]) -> Result<(), String> {
        if addresses.is_empty() {
            return Err(format!("`{host}` resolves to no address"));
        }
        if self.is_restricted() {
            let named = self.names.iter().any(|n| n.eq_ignore_ascii_case(host.trim_end_matches('.')));
            if named || addresses.iter().all(|a| self.networks.iter().any(|r| r.contains(*a))) {
                return Ok(());
            }
            return Err(format!("`{host}` is not in relay.allowed_hosts"));
        }
        match addresses.iter().find(|a| is_internal(**a)) {
            Some(a) => Err(format!(
                "`{host}` ({a}) is a loopback, link-local or unspecified address: relays may not dial it unless relay.allowed_hosts lists it"
            )),
            None => Ok(()),
        }
    }
}

fn is_host_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

/// Addresses that reach the gateway's own machine or its cloud's metadata service.
fn is_internal(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_link_local() || v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.is_unspecified() || v6.is_multicast() || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn without_a_list_internal_addresses_are_refused() {
        let t = RelayTargets::new(&[]).unwrap();
        assert!(t.check("cdn.example", &ips(&["203.0.113.5"])).is_ok());
        for bad in ["127.0.0.1", "169.254.169.254", "0.0.0.0", "::1", "fe80::1", "::ffff:127.0.0.1", "224.0.0.1"] {
            assert!(t.check("h", &ips(&[bad])).is_err(), "{bad}");
        }
        assert!(t.check("h", &ips(&["203.0.113.5", "127.0.0.1"])).is_err(), "any internal address refuses");
        assert!(t.check("h", &[]).is_err());
    }

    #[test]
    fn with_a_list_only_its_names_and_networks() {
        let t = RelayTargets::new(&["cdn.example.com".into(), "10.0.0.0/8".into(), "127.0.0.1".into()]).unwrap();
        assert!(t.check("CDN.example.com", &ips(&["198.51.100.1"])).is_ok());
        assert!(t.check("origin", &ips(&["10.2.3.4"])).is_ok());
        assert!(t.check("127.0.0.1", &ips(&["127.0.0.1"])).is_ok());
        assert!(t.check("other.example", &ips(&["198.51.100.1"])).is_err());
        assert!(t.check("mixed", &ips(&["10.2.3.4", "198.51.100.1"])).is_err());
        assert!(RelayTargets::new(&["bad host!".into()]).is_err());
    }

    #[test]
    fn the_gateways_own_listeners_are_refused_without_a_list() {
        let t = RelayTargets::new(&[]).unwrap();
        t.set_own_listeners(vec!["0.0.0.0:1935".parse().unwrap(), "198.51.100.9:8080".parse().unwrap()]);
        let local = |a: IpAddr| a == "203.0.113.5".parse::<IpAddr>().unwrap();
        assert!(
            t.check_dial("me", &ips(&["203.0.113.5"]), 1935, local).is_err(),
            "a wildcard listener on a local address"
        );
        assert!(t.check_dial("me", &ips(&["203.0.113.5"]), 1936, local).is_ok(), "another port");
        assert!(t.check_dial("cdn", &ips(&["203.0.113.6"]), 1935, local).is_ok(), "another machine");
        assert!(t.check_dial("me", &ips(&["198.51.100.9"]), 8080, |_| false).is_err(), "a listener's own address");
        // An operator's list decides alone.
        let listed = RelayTargets::new(&["203.0.113.0/24".into()]).unwrap();
        listed.set_own_listeners(vec!["0.0.0.0:1935".parse().unwrap()]);
        assert!(listed.check_dial("me", &ips(&["203.0.113.5"]), 1935, local).is_ok());
    }
}
