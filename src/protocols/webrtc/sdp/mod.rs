//! The SDP side of WHIP and WHEP, without sockets: parse an offer (gstreamer-sdp) and list what
//! it offers per m-line (here), pick the payload types the gateway answers with (`choice`),
//! and complete and rewrite the answer (`answer`).

mod answer;
mod choice;
mod limits;

pub use answer::{announce, complete_answer};
pub use choice::{choose_for_egress, choose_for_ingest, Choice, EgressTracks};
pub use limits::check_limits;

use std::fmt;

use gstreamer_sdp as gst_sdp;

use crate::media::{Codec, TrackKind};

/// Why an offer cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body is not an SDP offer the gateway can read (HTTP 400).
    #[error("bad SDP offer: {0}")]
    Invalid(String),
    /// The offer parses but carries nothing the gateway can use (HTTP 406).
    #[error("no usable codec in the offer: {0}")]
    NoUsableCodec(String),
}

/// An m-line's direction, from the offerer's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn parse(s: &str) -> Option<Direction> {
        match s {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

/// One payload type of an m-line (`a=rtpmap` and `a=fmtp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedCodec {
    pub pt: u8,
    /// Encoding name in upper case (`H264`, `VP8`, `OPUS`, ...).
    pub name: String,
    pub clock_rate: u32,
    pub fmtp: Vec<(String, String)>,
}

impl OfferedCodec {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.fmtp.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }

    /// H.264 packetization mode (RFC 6184: absent means 0).
    pub fn packetization_mode(&self) -> u8 {
        self.param("packetization-mode").and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    }

    /// H.264 `profile_idc`, the first byte of `profile-level-id`.
    pub fn profile_idc(&self) -> Option<u8> {
        let id = self.param("profile-level-id")?;
        u8::from_str_radix(id.get(0..2)?, 16).ok()
    }

    /// The gateway codec this payload type carries, if the gateway takes it over WebRTC.
    pub fn codec(&self) -> Option<Codec> {
        match self.name.as_str() {
            "H264" if self.clock_rate == 90_000 && self.packetization_mode() == 1 => Some(Codec::H264),
            "VP8" if self.clock_rate == 90_000 => Some(Codec::Vp8),
            "OPUS" if self.clock_rate == 48_000 => Some(Codec::Opus),
            _ => None,
        }
    }
}

impl fmt::Display for OfferedCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.name, self.clock_rate)?;
        if self.name == "H264" {
            write!(f, " (packetization-mode={}", self.packetization_mode())?;
            if let Some(p) = self.param("profile-level-id") {
                write!(f, ", profile-level-id={p}")?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// One m-line of an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedMedia {
    pub mline: u32,
    /// `audio`, `video`, `application`, ...
    pub kind: String,
    pub mid: Option<String>,
    pub direction: Direction,
    /// Port 0: the offerer rejected this m-line itself.
    pub rejected: bool,
    pub codecs: Vec<OfferedCodec>,
}

impl OfferedMedia {
    pub(super) fn track(&self) -> Option<TrackKind> {
        match self.kind.as_str() {
            "video" => Some(TrackKind::Video),
            "audio" => Some(TrackKind::Audio),
            _ => None,
        }
    }

    /// `video: H265/90000, VP9/90000` (payload types without a codec name left out).
    pub(super) fn describe(&self) -> String {
        let mut names: Vec<String> = Vec::new();
        for c in &self.codecs {
            let text = c.to_string();
            if !names.contains(&text) {
                names.push(text);
            }
        }
        if names.is_empty() {
            format!("{}: no payload types", self.kind)
        } else {
            format!("{}: {}", self.kind, names.join(", "))
        }
    }
}

/// A parsed offer: the message webrtcbin takes and what it offers per m-line.
#[derive(Debug)]
pub struct Offer {
    pub sdp: gst_sdp::SDPMessage,
    pub medias: Vec<OfferedMedia>,
}

impl Offer {
    /// What the offer carries, for error messages.
    pub fn describe(&self) -> String {
        let parts: Vec<String> =
            self.medias.iter().filter(|m| m.track().is_some()).map(OfferedMedia::describe).collect();
        if parts.is_empty() {
            "no audio or video m-lines".into()
        } else {
            parts.join("; ")
        }
    }
}

/// Parses an offer and checks what webrtcbin needs from it (ICE credentials, a DTLS
/// fingerprint, at least one audio or video m-line).
pub fn parse_offer(text: &str) -> Result<Offer, SdpError> {
    let text = text.trim_start_matches('\u{feff}').trim_start();
    if text.is_empty() {
        return Err(SdpError::Invalid("the body is empty; expected an SDP offer (application/sdp)".into()));
    }
    if !text.starts_with("v=0") {
        return Err(SdpError::Invalid("not an SDP description: it must start with `v=0`".into()));
    }
    let sdp = gst_sdp::SDPMessage::parse_buffer(text.as_bytes())
        .map_err(|e| SdpError::Invalid(format!("the SDP does not parse: {e}")))?;
    if sdp.medias_len() == 0 {
        return Err(SdpError::Invalid("the SDP has no m= lines".into()));
    }
    let session_dir = sdp.attributes().find_map(|a| Direction::parse(a.key()));
    let mut medias = Vec::new();
    for (i, m) in sdp.medias().enumerate() {
        let mline = i as u32;
        let kind = m.media().unwrap_or("").to_string();
        // Port 0 rejects an m-line, unless it is `bundle-only` (max-bundle offers).
        let rejected = m.port() == 0 && !has_attribute(m, "bundle-only");
        let direction =
            m.attributes().find_map(|a| Direction::parse(a.key())).or(session_dir).unwrap_or(Direction::SendRecv);
        let media = OfferedMedia {
            mline,
            mid: m.attribute_val("mid").map(str::to_string),
            codecs: codecs_of(m),
            kind,
            direction,
            rejected,
        };
        if media.track().is_some() && !media.rejected {
            let has = |key: &str| m.attribute_val(key).is_some() || sdp.attribute_val(key).is_some();
            if !has("ice-ufrag") || !has("ice-pwd") {
                return Err(SdpError::Invalid(format!(
                    "m-line {mline} ({}) has no a=ice-ufrag / a=ice-pwd",
                    media.kind
                )));
            }
            if !has("fingerprint") {
                return Err(SdpError::Invalid(format!("m-line {mline} ({}) has no a=fingerprint (DTLS)", media.kind)));
            }
            let proto = m.proto().unwrap_or("");
            if !proto.contains("RTP/") {
                return Err(SdpError::Invalid(format!(
                    "m-line {mline} ({}) has transport `{proto}`, not RTP",
                    media.kind
                )));
            }
        }
        medias.push(media);
    }
    if !medias.iter().any(|m| m.track().is_some() && !m.rejected) {
        return Err(SdpError::Invalid("the SDP has no audio or video m-line".into()));
    }
    Ok(Offer { sdp, medias })
}

fn has_attribute(m: &gst_sdp::SDPMediaRef, key: &str) -> bool {
    m.attributes().any(|a| a.key() == key)
}

/// `a=rtpmap` / `a=fmtp` of one m-line, in the order of its format list.
fn codecs_of(m: &gst_sdp::SDPMediaRef) -> Vec<OfferedCodec> {
    let mut out = Vec::new();
    for format in m.formats() {
        let Ok(pt) = format.trim().parse::<u8>() else {
            continue;
        };
        let rtpmap = m
            .attributes()
            .filter(|a| a.key() == "rtpmap")
            .filter_map(|a| a.value())
            .find_map(|v| strip_pt(v, pt).map(str::to_string));
        let (name, clock_rate) = match rtpmap.as_deref().and_then(parse_rtpmap) {
            Some(nr) => nr,
            None => match static_pt(pt) {
                Some((n, r)) => (n.to_string(), r),
                None => continue,
            },
        };
        let fmtp = m
            .attributes()
            .filter(|a| a.key() == "fmtp")
            .filter_map(|a| a.value())
            .find_map(|v| strip_pt(v, pt))
            .map(parse_fmtp)
            .unwrap_or_default();
        out.push(OfferedCodec { pt, name, clock_rate, fmtp });
    }
    out
}

/// `"102 H264/90000"` with pt 102 → `"H264/90000"`.
fn strip_pt(value: &str, pt: u8) -> Option<&str> {
    let (head, rest) = value.trim().split_once(char::is_whitespace)?;
    (head.parse::<u8>().ok()? == pt).then(|| rest.trim())
}

fn parse_rtpmap(v: &str) -> Option<(String, u32)> {
    let mut parts = v.split('/');
    let name = parts.next()?.trim().to_ascii_uppercase();
    let rate = parts.next()?.trim().parse().ok()?;
    (!name.is_empty()).then_some((name, rate))
}

fn parse_fmtp(v: &str) -> Vec<(String, String)> {
    v.split(';')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect()
}

/// Payload types RFC 3551 defines without an rtpmap.
fn static_pt(pt: u8) -> Option<(&'static str, u32)> {
    match pt {
        0 => Some(("PCMU", 8000)),
        8 => Some(("PCMA", 8000)),
        9 => Some(("G722", 8000)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
