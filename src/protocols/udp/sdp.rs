//! A plain SDP reader (RFC 8866), without sockets or GStreamer: what an RTP sender's session
//! description says per m-line (port, transport, payload types, `a=rtpmap`, `a=fmtp`,
//! `a=rtcp`, `a=rtcp-mux`). Deciding what the gateway can receive is `payload`'s job.

use std::collections::BTreeMap;

/// Why an SDP is unusable; every variant is an HTTP 400 with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("the SDP does not parse: line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    #[error("the SDP has no m= line (no media described)")]
    NoMedia,
    #[error("the SDP names no port (every m= line has port 0)")]
    NoPort,
    #[error("m-line {index} ({media}): {reason}")]
    Unsupported { index: usize, media: String, reason: String },
    #[error("the SDP's ports collide: {0}")]
    PortConflict(String),
}

/// `a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u32>,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSection {
    /// Position among the m-lines, from 0.
    pub index: usize,
    /// `video`, `audio`, `application`, ...
    pub media: String,
    /// The port the sender sends RTP to (0: the m-line is disabled).
    pub port: u16,
    /// `RTP/AVP`, `RTP/AVPF`, ...
    pub proto: String,
    /// The payload types (formats) in the order listed.
    pub formats: Vec<String>,
    /// The section's own `c=` address, if any.
    pub connection: Option<String>,
    pub rtpmaps: BTreeMap<u8, RtpMap>,
    /// `a=fmtp` parameters per payload type, keys lowercased, in order.
    pub fmtps: BTreeMap<u8, Vec<(String, String)>>,
    /// `a=rtcp:<port>` (RFC 3605).
    pub rtcp_port: Option<u16>,
    /// `a=rtcp-mux`: RTCP arrives on the RTP port.
    pub rtcp_mux: bool,
    /// `a=ssrc:<ssrc> ...` lines name these sources.
    pub ssrcs: Vec<u32>,
}

impl MediaSection {
    /// The fmtp value of `key` for payload type `pt` (key compared case-insensitively).
    pub fn fmtp(&self, pt: u8, key: &str) -> Option<&str> {
        self.fmtps.get(&pt)?.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionDescription {
    /// The session-level `c=` address.
    pub connection: Option<String>,
    pub media: Vec<MediaSection>,
}

impl SessionDescription {
    /// The address a section's RTP is sent to (its own `c=`, else the session's).
    pub fn connection_of<'a>(&'a self, section: &'a MediaSection) -> Option<&'a str> {
        section.connection.as_deref().or(self.connection.as_deref())
    }
}

/// Parses SDP text (`\n` or `\r\n` line ends).
pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    let mut sdp = SessionDescription::default();
    let mut seen_version = false;
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let err = |reason: String| SdpError::Syntax { line: line_no, reason };
        let bytes = line.as_bytes();
        if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_lowercase() {
            return Err(err(format!("expected `<letter>=<value>`, got `{}`", shorten(line))));
        }
        let (kind, value) = (bytes[0], &line[2..]);
        if !seen_version {
            if kind != b'v' {
                return Err(err(format!("an SDP starts with `v=0`, got `{}`", shorten(line))));
            }
            if value.trim() != "0" {
                return Err(err(format!("unknown SDP version `{}`", shorten(value))));
            }
            seen_version = true;
            continue;
        }
        match kind {
            b'm' => {
                let section = parse_m_line(value, sdp.media.len()).map_err(err)?;
                sdp.media.push(section);
            }
            b'c' => {
                let address = parse_connection(value).map_err(err)?;
                match sdp.media.last_mut() {
                    Some(section) => section.connection = Some(address),
                    None => sdp.connection = Some(address),
                }
            }
            b'a' => {
                if let Some(section) = sdp.media.last_mut() {
                    parse_attribute(section, value).map_err(err)?;
                }
            }
            _ => {}
        }
    }
    if !seen_version {
        return Err(SdpError::Syntax { line: 1, reason: "the body is empty".into() });
    }
    Ok(sdp)
}

fn shorten(s: &str) -> String {
    const MAX: usize = 60;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// `m=<media> <port>[/<count>] <proto> <fmt> ...`
fn parse_m_line(value: &str, index: usize) -> Result<MediaSection, String> {
    let mut fields = value.split_ascii_whitespace();
    let (Some(media), Some(port), Some(proto)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(format!("`m={}`: expected `m=<media> <port> <proto> <formats>`", shorten(value)));
    };
    let port_text = port.split('/').next().unwrap_or(port);
    let port: u16 = port_text.parse().map_err(|_| format!("`{port}` is not a port number"))?;
    let formats: Vec<String> = fields.map(str::to_string).collect();
    if formats.is_empty() {
        return Err(format!("`m={}` lists no payload type", shorten(value)));
    }
    Ok(MediaSection {
        index,
        media: media.to_ascii_lowercase(),
        port,
        proto: proto.to_string(),
        formats,
        connection: None,
        rtpmaps: BTreeMap::new(),
        fmtps: BTreeMap::new(),
        rtcp_port: None,
        rtcp_mux: false,
        ssrcs: Vec::new(),
    })
}

/// `c=IN IP4 <address>[/ttl]` → the address.
fn parse_connection(value: &str) -> Result<String, String> {
    let fields: Vec<&str> = value.split_ascii_whitespace().collect();
    match fields.as_slice() {
        [_net, _addrtype, address] => Ok(address.split('/').next().unwrap_or(address).to_string()),
        _ => Err(format!("`c={}`: expected `c=IN IP4 <address>`", shorten(value))),
    }
}

fn parse_pt(text: &str) -> Result<u8, String> {
    match text.parse::<u8>() {
        Ok(pt) if pt <= 127 => Ok(pt),
        _ => Err(format!("`{}` is not a payload type (0-127)", shorten(text))),
    }
}

fn parse_attribute(section: &mut MediaSection, value: &str) -> Result<(), String> {
    let (name, rest) = value.split_once(':').unwrap_or((value, ""));
    match name.to_ascii_lowercase().as_str() {
        "rtpmap" => {
            let (pt, map) = rest
                .trim()
                .split_once(char::is_whitespace)
                .ok_or_else(|| format!("`a=rtpmap:{}`: expected `<pt> <encoding>/<clock rate>`", shorten(rest)))?;
            let pt = parse_pt(pt)?;
            let mut parts = map.trim().split('/');
            let encoding = parts.next().unwrap_or("").to_string();
            let clock = parts.next().ok_or_else(|| format!("`a=rtpmap:{}` has no clock rate", shorten(rest)))?;
            let clock_rate: u32 =
                clock.trim().parse().ok().filter(|r| *r > 0).ok_or_else(|| format!("`{clock}` is not a clock rate"))?;
            let channels = match parts.next() {
                Some(c) => Some(c.trim().parse::<u32>().map_err(|_| format!("`{c}` is not a channel count"))?),
                None => None,
            };
            if encoding.is_empty() {
                return Err(format!("`a=rtpmap:{}` has no encoding name", shorten(rest)));
            }
            section.rtpmaps.insert(pt, RtpMap { encoding, clock_rate, channels });
        }
        "fmtp" => {
            let (pt, params) = rest.trim().split_once(char::is_whitespace).unwrap_or((rest.trim(), ""));
            let pt = parse_pt(pt)?;
            let params = params
                .split(';')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim().to_string()),
                    None => (p.to_ascii_lowercase(), String::new()),
                })
                .collect();
            section.fmtps.insert(pt, params);
        }
        "rtcp" => {
            let port = rest.split_ascii_whitespace().next().unwrap_or("");
            let port: u16 = port.parse().map_err(|_| format!("`a=rtcp:{}`: `{port}` is not a port", shorten(rest)))?;
            section.rtcp_port = Some(port);
        }
        "rtcp-mux" => section.rtcp_mux = true,
        "ssrc" => {
            if let Some(ssrc) = rest.split_ascii_whitespace().next().and_then(|s| s.parse::<u32>().ok()) {
                if !section.ssrcs.contains(&ssrc) {
                    section.ssrcs.push(ssrc);
                }
            }
        }
        _ => {}
    }
    Ok(())
}
