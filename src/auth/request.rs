//! What a client asks for, as every way in describes it to the policy.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// What the client wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Publish,
    Play,
    Api,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Publish => "publish",
            Action::Play => "play",
            Action::Api => "api",
        }
    }
}

/// The way in: which wire protocol (and which side of WebRTC) the request came by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entry {
    /// RTMP publish or play (OBS, ffmpeg, the mini-program's live-pusher and live-player).
    Rtmp,
    /// HTTP-FLV play.
    HttpFlv,
    /// H5: the WebSocket MPEG-TS play (JSMpeg) or publish.
    H5,
    Whip,
    Whep,
    /// HLS play: the playlist request (its segments ride on the session it opens).
    Hls,
    /// UDP (RTP) ingest and outputs, created through the API.
    Udp,
    Api,
}

impl Entry {
    /// The name the webhook and logs use.
    pub fn as_str(self) -> &'static str {
        match self {
            Entry::Rtmp => "rtmp",
            Entry::HttpFlv => "http-flv",
            Entry::H5 => "h5",
            Entry::Whip => "whip",
            Entry::Whep => "whep",
            Entry::Hls => "hls",
            Entry::Udp => "udp",
            Entry::Api => "api",
        }
    }

    /// Ways in a web page reaches, where Origin/Referer allow-lists apply.
    pub fn is_browser_egress(self) -> bool {
        matches!(self, Entry::HttpFlv | Entry::H5 | Entry::Whep | Entry::Hls)
    }
}

/// One admission question.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub action: Action,
    pub entry: Entry,
    /// The stream key, without any query.
    pub stream: &'a str,
    /// The request path as the client sent it, without the query (`/live/KEY` for RTMP, as
    /// `/app/stream`); the `aliyun` method signs it.
    pub path: &'a str,
    /// The URL query, decoded, in order.
    pub query: &'a [(String, String)],
    /// `Authorization: Bearer ...`, when the way in has headers.
    pub bearer: Option<&'a str>,
    pub ip: IpAddr,
    pub origin: Option<&'a str>,
    pub referer: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// A request for tests: from 192.0.2.1, no bearer, Origin or Referer; the rest given.
    #[cfg(test)]
    pub fn for_test(
        action: Action,
        entry: Entry,
        stream: &'a str,
        path: &'a str,
        query: &'a [(String, String)],
    ) -> Request<'a> {
        Request {
            action,
            entry,
            stream,
            path,
            query,
            bearer: None,
            ip: std::net::Ipv4Addr::new(192, 0, 2, 1).into(),
            origin: None,
            referer: None,
        }
    }

    /// The first value of the query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Splits `name?query` (an RTMP stream name or app, or a URL) at its `?`.
pub fn split_query(text: &str) -> (&str, &str) {
    text.split_once('?').unwrap_or((text, ""))
}

/// Decodes `a=1&b=x%20y` into pairs (`+` is a space); bad escapes are kept as they came.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .take(64)
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// `%XX` and `+` decoding, lossy for invalid UTF-8.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex_value(bytes.get(i + 1)), hex_value(bytes.get(i + 2))) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: Option<&u8>) -> Option<u8> {
    let b = *b?;
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        assert_eq!(split_query("KEY?sign=a&x=1"), ("KEY", "sign=a&x=1"));
        assert_eq!(split_query("KEY"), ("KEY", ""));
        let q = parse_query("a=1&b=x%20y+z&&c&d=%zz&e=%4");
        let want = [("a", "1"), ("b", "x y z"), ("c", ""), ("d", "%zz"), ("e", "%4")];
        assert_eq!(q, want.map(|(k, v)| (k.to_string(), v.to_string())));
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%e4%b8%ad"), "中");
        assert_eq!(parse_query(&"a=1&".repeat(1000)).len(), 64, "bounded");
    }
}
