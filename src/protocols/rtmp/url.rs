//! `rtmp://host[:port]/app[/sub]/key[?query]` URLs.

use std::fmt;
use std::str::FromStr;

use super::error::RtmpError;

/// The default RTMP port.
pub const DEFAULT_PORT: u16 = 1935;

/// Where to push to or pull from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    pub host: String,
    pub port: u16,
    /// All path segments but the last, e.g. `live` or `live/sub`.
    pub app: String,
    /// The last path segment with its query, if any, as sent in `publish`/`play`.
    pub key: String,
    /// `rtmp://host[:port]/app`, as sent in `connect`.
    pub tc_url: String,
}

impl FromStr for RtmpUrl {
    type Err = RtmpError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| RtmpError::Url(format!("`{s}`: {why}"));
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(bad("expected rtmp://host[:port]/app/key"));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "rtmp" => {}
            "rtmps" | "rtmpe" | "rtmpt" | "rtmpte" | "rtmfp" => {
                return Err(bad(&format!("{scheme}:// is not supported (only rtmp://)")))
            }
            _ => return Err(bad(&format!("unknown scheme `{scheme}` (expected rtmp://)"))),
        }
        // The query belongs to the key; split it off before cutting the path.
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = rest.split_once('/').ok_or_else(|| bad("missing /app/key"))?;
        let (host, port) = parse_authority(authority).map_err(|why| bad(&why))?;
        let segments: Vec<&str> = path.split('/').collect();
        if segments.iter().any(|seg| seg.is_empty()) {
            return Err(bad("empty path segment"));
        }
        let Some((key, app_segments)) = segments.split_last() else {
            return Err(bad("missing /app/key"));
        };
        if app_segments.is_empty() {
            return Err(bad("missing stream key (expected rtmp://host[:port]/app/key)"));
        }
        let app = app_segments.join("/");
        let key = match query {
            Some(q) => format!("{key}?{q}"),
            None => key.to_string(),
        };
        let tc_url = format!("rtmp://{authority}/{app}");
        Ok(RtmpUrl { host, port, app, key, tc_url })
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn parse_authority(a: &str) -> Result<(String, u16), String> {
    if a.contains('@') {
        return Err("user info in RTMP URLs is not supported".into());
    }
    let (host, port) = if let Some(v6) = a.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or("unclosed `[` in host")?;
        match after {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':').ok_or("junk after `]`")?)),
        }
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (a, None),
        }
    };
    if host.is_empty() {
        return Err("missing host".into());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("bad port `{p}`")),
        },
    };
    Ok((host.to_string(), port))
}

impl fmt::Display for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tc_url, self.key)
    }
}

impl RtmpUrl {
    /// `host:port` to connect to (IPv6 hosts bracketed).
    pub fn socket_addr_text(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> RtmpUrl {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn plain_url_with_default_port() {
        let u = url("rtmp://cdn.example.com/live/abc");
        assert_eq!(
            (u.host.as_str(), u.port, u.app.as_str(), u.key.as_str(), u.tc_url.as_str()),
            ("cdn.example.com", 1935, "live", "abc", "rtmp://cdn.example.com/live")
        );
        assert_eq!(u.to_string(), "rtmp://cdn.example.com/live/abc");
        assert_eq!(u.socket_addr_text(), "cdn.example.com:1935");
    }

    #[test]
    fn port_sub_app_and_query() {
        let u = url("rtmp://127.0.0.1:19350/live/sub/k?token=x&a=b");
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 19350));
        assert_eq!(u.app, "live/sub");
        assert_eq!(u.key, "k?token=x&a=b");
        assert_eq!(u.tc_url, "rtmp://127.0.0.1:19350/live/sub");
        assert_eq!(u.to_string(), "rtmp://127.0.0.1:19350/live/sub/k?token=x&a=b");
    }

    #[test]
    fn ipv6_host() {
        let u = url("rtmp://[::1]:2000/app/k");
        assert_eq!((u.host.as_str(), u.port), ("::1", 2000));
        assert_eq!(u.socket_addr_text(), "[::1]:2000");
        assert_eq!(u.tc_url, "rtmp://[::1]:2000/app");
    }

    #[test]
    fn bad_urls_say_why() {
        let err = |s: &str| s.parse::<RtmpUrl>().unwrap_err().to_string();
        assert!(err("rtmps://h/live/k").contains("not supported"));
        assert!(err("http://h/live/k").contains("unknown scheme"));
        assert!(err("rtmp://h/live").contains("missing stream key"));
        assert!(err("rtmp://h").contains("missing /app/key"));
        assert!(err("rtmp://h:99999/live/k").contains("bad port"));
        assert!(err("rtmp://h:/live/k").contains("bad port"));
        assert!(err("rtmp:///live/k").contains("missing host"));
        assert!(err("rtmp://h/live//k").contains("empty path segment"));
        assert!(err("rtmp://h/live/k/").contains("empty path segment"));
        assert!(err("h/live/k").contains("expected rtmp://"));
    }
}
