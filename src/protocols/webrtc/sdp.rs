//! The SDP side of WHIP and WHEP, without sockets: parse an offer (gstreamer-sdp), list what it
//! offers per m-line, pick the payload type the gateway answers with, and rewrite candidate
//! addresses for NAT 1:1 deployments.
//!
//! The chosen payload type becomes the codec preferences of that m-line's transceiver; webrtcbin
//! intersects them with the offer, so the answer carries the offered fmtp (e.g. the H.264
//! `profile-level-id` of that payload type) unchanged.

use std::fmt;
use std::net::IpAddr;

use gstreamer as gst;
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
        self.fmtp
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// H.264 packetization mode (RFC 6184: absent means 0).
    pub fn packetization_mode(&self) -> u8 {
        self.param("packetization-mode")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// H.264 `profile_idc`, the first byte of `profile-level-id`.
    pub fn profile_idc(&self) -> Option<u8> {
        let id = self.param("profile-level-id")?;
        u8::from_str_radix(id.get(0..2)?, 16).ok()
    }

    /// The gateway codec this payload type carries, if the gateway takes it over WebRTC.
    pub fn codec(&self) -> Option<Codec> {
        match self.name.as_str() {
            "H264" if self.clock_rate == 90_000 && self.packetization_mode() == 1 => {
                Some(Codec::H264)
            }
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
    fn track(&self) -> Option<TrackKind> {
        match self.kind.as_str() {
            "video" => Some(TrackKind::Video),
            "audio" => Some(TrackKind::Audio),
            _ => None,
        }
    }

    /// `video: H265/90000, VP9/90000` (payload types without a codec name left out).
    fn describe(&self) -> String {
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
        let parts: Vec<String> = self
            .medias
            .iter()
            .filter(|m| m.track().is_some())
            .map(OfferedMedia::describe)
            .collect();
        if parts.is_empty() {
            "no audio or video m-lines".into()
        } else {
            parts.join("; ")
        }
    }
}

/// The payload type answered for one m-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub mline: u32,
    pub kind: TrackKind,
    pub codec: Codec,
    pub pt: u8,
    pub clock_rate: u32,
    /// H.264: the `profile-level-id` the offer gave this payload type.
    pub profile_level_id: Option<String>,
}

impl Choice {
    fn new(media: &OfferedMedia, kind: TrackKind, codec: &OfferedCodec) -> Choice {
        Choice {
            mline: media.mline,
            kind,
            codec: codec.codec().unwrap_or(Codec::H264),
            pt: codec.pt,
            clock_rate: codec.clock_rate,
            profile_level_id: codec.param("profile-level-id").map(str::to_string),
        }
    }

    /// Codec preferences for this m-line's transceiver. They name the payload type only: the
    /// answer takes its fmtp (profile, packetization mode) from the offer, and the sending
    /// side is not held to the viewer's profile (browsers decode higher profiles anyway).
    pub fn preference_caps(&self) -> gst::Caps {
        let (media, name) = match self.codec {
            Codec::Vp8 => ("video", "VP8"),
            Codec::Opus => ("audio", "OPUS"),
            _ => ("video", "H264"),
        };
        let mut b = gst::Caps::builder("application/x-rtp")
            .field("media", media)
            .field("encoding-name", name)
            .field("payload", self.pt as i32)
            .field("clock-rate", self.clock_rate as i32);
        if self.codec == Codec::H264 {
            b = b.field("packetization-mode", "1");
        }
        b.build()
    }
}

/// Parses an offer and checks what webrtcbin needs from it (ICE credentials, a DTLS
/// fingerprint, at least one audio or video m-line).
pub fn parse_offer(text: &str) -> Result<Offer, SdpError> {
    let text = text.trim_start_matches('\u{feff}').trim_start();
    if text.is_empty() {
        return Err(SdpError::Invalid(
            "the body is empty; expected an SDP offer (application/sdp)".into(),
        ));
    }
    if !text.starts_with("v=0") {
        return Err(SdpError::Invalid(
            "not an SDP description: it must start with `v=0`".into(),
        ));
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
        let direction = m
            .attributes()
            .find_map(|a| Direction::parse(a.key()))
            .or(session_dir)
            .unwrap_or(Direction::SendRecv);
        let media = OfferedMedia {
            mline,
            mid: m.attribute_val("mid").map(str::to_string),
            codecs: codecs_of(m),
            kind,
            direction,
            rejected,
        };
        if media.track().is_some() && !media.rejected {
            let has =
                |key: &str| m.attribute_val(key).is_some() || sdp.attribute_val(key).is_some();
            if !has("ice-ufrag") || !has("ice-pwd") {
                return Err(SdpError::Invalid(format!(
                    "m-line {mline} ({}) has no a=ice-ufrag / a=ice-pwd",
                    media.kind
                )));
            }
            if !has("fingerprint") {
                return Err(SdpError::Invalid(format!(
                    "m-line {mline} ({}) has no a=fingerprint (DTLS)",
                    media.kind
                )));
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
        return Err(SdpError::Invalid(
            "the SDP has no audio or video m-line".into(),
        ));
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
        out.push(OfferedCodec {
            pt,
            name,
            clock_rate,
            fmtp,
        });
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

/// WHIP: the publisher sends. Per kind, the first m-line is taken: H.264 with packetization
/// mode 1 (any profile, the first offered) before VP8 for video, Opus for audio.
pub fn choose_for_ingest(offer: &Offer) -> Result<Vec<Choice>, SdpError> {
    let mut choices: Vec<Choice> = Vec::new();
    let mut unusable = Vec::new();
    for media in offer.medias.iter().filter(|m| !m.rejected) {
        let Some(kind) = media.track() else { continue };
        if choices.iter().any(|c| c.kind == kind) {
            continue;
        }
        if !matches!(media.direction, Direction::SendOnly | Direction::SendRecv) {
            return Err(SdpError::Invalid(format!(
                "m-line {} ({}) is {}: a WHIP offer sends media (sendonly)",
                media.mline,
                media.kind,
                media.direction.as_str()
            )));
        }
        let preference: &[Codec] = match kind {
            TrackKind::Video => &[Codec::H264, Codec::Vp8],
            TrackKind::Audio => &[Codec::Opus],
        };
        let found = preference
            .iter()
            .find_map(|want| media.codecs.iter().find(|c| c.codec() == Some(*want)));
        match found {
            Some(codec) => choices.push(Choice::new(media, kind, codec)),
            None => unusable.push(media.describe()),
        }
    }
    if !unusable.is_empty() || choices.is_empty() {
        return Err(SdpError::NoUsableCodec(format!(
            "offered {}; the gateway takes H264 (packetization-mode=1) or VP8 video and Opus audio",
            if unusable.is_empty() {
                offer.describe()
            } else {
                unusable.join("; ")
            }
        )));
    }
    Ok(choices)
}

/// What a WHEP viewer is sent: the codec of each track, and for H.264 the stream's
/// `profile_idc` (a payload type of the same profile is preferred).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EgressTracks {
    pub video: Option<(Codec, Option<u8>)>,
    pub audio: Option<Codec>,
}

/// WHEP: the viewer receives. Per track the stream has, the first m-line of that kind must
/// offer its codec; m-lines for tracks the stream lacks are left unanswered (rejected).
pub fn choose_for_egress(offer: &Offer, tracks: EgressTracks) -> Result<Vec<Choice>, SdpError> {
    let mut choices: Vec<Choice> = Vec::new();
    for media in offer.medias.iter().filter(|m| !m.rejected) {
        let Some(kind) = media.track() else { continue };
        if choices.iter().any(|c| c.kind == kind) {
            continue;
        }
        let (want, profile) = match kind {
            TrackKind::Video => match tracks.video {
                Some((codec, profile)) => (codec, profile),
                None => continue,
            },
            TrackKind::Audio => match tracks.audio {
                Some(codec) => (codec, None),
                None => continue,
            },
        };
        if !matches!(media.direction, Direction::RecvOnly | Direction::SendRecv) {
            return Err(SdpError::Invalid(format!(
                "m-line {} ({}) is {}: a WHEP offer receives media (recvonly)",
                media.mline,
                media.kind,
                media.direction.as_str()
            )));
        }
        let usable: Vec<&OfferedCodec> = media
            .codecs
            .iter()
            .filter(|c| c.codec() == Some(want))
            .collect();
        let same_profile = usable
            .iter()
            .find(|c| profile.is_some() && c.profile_idc() == profile);
        match same_profile.or(usable.first()) {
            Some(codec) => choices.push(Choice::new(media, kind, codec)),
            None => {
                return Err(SdpError::NoUsableCodec(format!(
                    "the stream's {kind} is {want}, the viewer offered {}",
                    media.describe()
                )))
            }
        }
    }
    if choices.is_empty() {
        let tracks: Vec<String> = [
            tracks.video.map(|v| format!("video {}", v.0)),
            tracks.audio.map(|a| format!("audio {a}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        let stream = if tracks.is_empty() {
            "no track to send".to_string()
        } else {
            tracks.join(" and ")
        };
        return Err(SdpError::NoUsableCodec(format!(
            "the viewer offered {}; the stream has {stream}",
            offer.describe()
        )));
    }
    Ok(choices)
}

/// Makes sure the answer's fmtp of each chosen H.264 payload type carries the offered
/// `profile-level-id` (webrtcbin leaves it out of receiving answers; browsers then assume the
/// RFC 6184 default, 42000a, and find no codec in common).
pub fn complete_answer(answer: &str, choices: &[Choice]) -> String {
    let mut lines: Vec<String> = answer.lines().map(str::to_string).collect();
    for choice in choices.iter().filter(|c| c.codec == Codec::H264) {
        let Some(profile) = &choice.profile_level_id else {
            continue;
        };
        // The m-section of this choice: from its m= line to the next.
        let starts: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.starts_with("m="))
            .map(|(i, _)| i)
            .collect();
        let Some(&start) = starts.get(choice.mline as usize) else {
            continue;
        };
        let end = starts
            .get(choice.mline as usize + 1)
            .copied()
            .unwrap_or(lines.len());
        let fmtp = format!("a=fmtp:{} ", choice.pt);
        let rtpmap = format!("a=rtpmap:{} ", choice.pt);
        match (start..end).find(|&i| lines[i].starts_with(&fmtp)) {
            Some(i) if !lines[i].contains("profile-level-id=") => {
                lines[i] = format!("{};profile-level-id={profile}", lines[i].trim_end());
            }
            Some(_) => {}
            None => {
                let at = (start..end)
                    .find(|&i| lines[i].starts_with(&rtpmap))
                    .map_or(end, |i| i + 1);
                lines.insert(
                    at,
                    format!("{fmtp}packetization-mode=1;profile-level-id={profile}"),
                );
            }
        }
    }
    let mut out = lines.join("\r\n");
    out.push_str("\r\n");
    out
}

/// Rewrites the connection address of every `a=candidate` line of the same address family
/// as `announce` (NAT 1:1: ICE binds a private address, the SDP tells the public one).
pub fn announce(sdp: &str, announce: IpAddr) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let ending = &line[body.len()..];
        match body.strip_prefix("a=candidate:") {
            Some(rest) => {
                let mut fields: Vec<&str> = rest.split(' ').collect();
                let announce_text = announce.to_string();
                let same_family = fields
                    .get(4)
                    .and_then(|a| a.parse::<IpAddr>().ok())
                    .is_some_and(|a| a.is_ipv4() == announce.is_ipv4());
                if same_family {
                    fields[4] = &announce_text;
                }
                out.push_str("a=candidate:");
                out.push_str(&fields.join(" "));
                out.push_str(ending);
            }
            None => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
#[path = "sdp_tests.rs"]
mod tests;
