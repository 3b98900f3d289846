//! Origin/Referer allow-lists for browser egress (anti-leech): a page of another site cannot
//! embed the classroom's HTTP-FLV, H5 or WHEP stream.

/// Allowed page hosts: `example.com` (that host), `*.example.com` (its subdomains and itself).
#[derive(Debug, Clone, Default)]
pub struct Origins {
    hosts: Vec<String>,
    allow_empty: bool,
}

impl Origins {
    pub fn new(hosts: &[String], allow_empty: bool) -> Origins {
        Origins { hosts: hosts.iter().map(|h| h.trim().to_ascii_lowercase()).collect(), allow_empty }
    }

    pub fn is_restricted(&self) -> bool {
        !self.hosts.is_empty()
    }

    /// Whether a request with these headers passes. Origin is used when present, else Referer.
    pub fn allows(&self, origin: Option<&str>, referer: Option<&str>) -> bool {
        if self.hosts.is_empty() {
            return true;
        }
        let page = origin.filter(|o| !o.is_empty() && *o != "null").or(referer.filter(|r| !r.is_empty()));
        let Some(page) = page else {
            return self.allow_empty;
        };
        let Some(host) = host_of(page) else {
            return false;
        };
        self.hosts.iter().any(|allowed| match allowed.strip_prefix("*.") {
            Some(domain) => host == domain || host.strip_suffix(domain).is_some_and(|sub| sub.ends_with('.')),
            None => host == *allowed,
        })
    }
}

/// The host of `scheme://[user@]host[:port][/...]`, lower-cased.
fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host =
        if let Some(v6) = host_port.strip_prefix('[') { v6.split(']').next()? } else { host_port.split(':').next()? };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_of_listed_hosts_only() {
        let o = Origins::new(&["school.example".into(), "*.cdn.example".into()], false);
        assert!(o.allows(Some("https://school.example"), None));
        assert!(o.allows(Some("https://SCHOOL.example:8443"), None));
        assert!(o.allows(None, Some("https://a.b.cdn.example/page?x=1")));
        assert!(o.allows(None, Some("http://cdn.example/")));
        assert!(
            !o.allows(Some("https://evil.example"), Some("https://school.example/")),
            "Origin decides when present"
        );
        assert!(!o.allows(Some("https://school.example.evil.example"), None));
        assert!(!o.allows(Some("https://xcdn.example"), None));
        assert!(!o.allows(Some("https://user@evil.example"), None));
        assert!(!o.allows(None, None), "no header, allow_empty false");
        assert!(!o.allows(Some("null"), None));
        assert!(!o.allows(Some("garbage"), None));
        assert!(Origins::new(&["a".into()], true).allows(None, None));
        assert!(Origins::new(&[], false).allows(Some("https://anything"), None), "no list: any page");
        assert_eq!(host_of("http://[::1]:80/x").as_deref(), Some("::1"));
    }
}
