//! From a parsed SDP to what the gateway receives: per m-line the payload type it accepts, the
//! codec that becomes, its clock rate and fmtp, and the ports to bind. Pure; every refusal is
//! an [`SdpError`] naming the m-line and the reason.

use std::net::IpAddr;

use super::sdp::{MediaSection, SdpError, SessionDescription};
use crate::media::aac::AudioSpecificConfig;
use crate::media::{Codec, TrackKind};

/// The RTP encodings the gateway depayloads, by their SDP names.
pub const SUPPORTED: &str = "H264, VP8, MPV (MPEG-1 video, PT 32), opus, MPEG4-GENERIC (AAC-hbr/lbr), PCMU (PT 0), PCMA (PT 8), MPA (MPEG audio layer II, PT 14)";

/// One track to receive: which packets to accept and how to depayload them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestTrack {
    pub kind: TrackKind,
    pub codec: Codec,
    /// The m-line it came from.
    pub mline: usize,
    pub pt: u8,
    /// The encoding name as RTP caps spell it (`H264`, `MPEG4-GENERIC`, ...).
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u32>,
    /// The payload type's fmtp, keys lowercased.
    pub params: Vec<(String, String)>,
    pub rtp_port: u16,
    /// None with `a=rtcp-mux` (RTCP on the RTP port).
    pub rtcp_port: Option<u16>,
    /// The source the SDP names (`a=ssrc`), if exactly one.
    pub ssrc: Option<u32>,
}

/// The static payload types of RFC 3551: encoding, clock rate, channels.
pub fn static_payload(pt: u8) -> Option<(&'static str, u32, Option<u32>)> {
    Some(match pt {
        0 => ("PCMU", 8000, Some(1)),
        3 => ("GSM", 8000, Some(1)),
        4 => ("G723", 8000, Some(1)),
        5 => ("DVI4", 8000, Some(1)),
        6 => ("DVI4", 16000, Some(1)),
        7 => ("LPC", 8000, Some(1)),
        8 => ("PCMA", 8000, Some(1)),
        9 => ("G722", 8000, Some(1)),
        10 => ("L16", 44100, Some(2)),
        11 => ("L16", 44100, Some(1)),
        12 => ("QCELP", 8000, Some(1)),
        13 => ("CN", 8000, Some(1)),
        14 => ("MPA", 90000, None),
        15 => ("G728", 8000, Some(1)),
        16 => ("DVI4", 11025, Some(1)),
        17 => ("DVI4", 22050, Some(1)),
        18 => ("G729", 8000, Some(1)),
        25 => ("CelB", 90000, None),
        26 => ("JPEG", 90000, None),
        28 => ("nv", 90000, None),
        31 => ("H261", 90000, None),
        32 => ("MPV", 90000, None),
        33 => ("MP2T", 90000, None),
        34 => ("H263", 90000, None),
        _ => return None,
    })
}

/// The gateway codec an RTP encoding name carries.
pub fn codec_of(encoding: &str) -> Option<Codec> {
    Some(match encoding.to_ascii_uppercase().as_str() {
        "H264" => Codec::H264,
        "VP8" => Codec::Vp8,
        "MPV" => Codec::Mpeg1,
        "OPUS" => Codec::Opus,
        "MPEG4-GENERIC" => Codec::Aac,
        "PCMU" => Codec::Pcmu,
        "PCMA" => Codec::Pcma,
        "MPA" => Codec::Mp2,
        _ => return None,
    })
}

/// What the gateway will receive for this SDP, one track per used m-line (m-lines with port 0
/// are disabled and skipped). Refuses anything it could not depayload.
pub fn ingest_tracks(sdp: &SessionDescription) -> Result<Vec<IngestTrack>, SdpError> {
    if sdp.media.is_empty() {
        return Err(SdpError::NoMedia);
    }
    let mut tracks: Vec<IngestTrack> = Vec::new();
    for section in sdp.media.iter().filter(|s| s.port != 0) {
        let unsupported =
            |reason: String| SdpError::Unsupported { index: section.index, media: section.media.clone(), reason };
        if let Some(address) = sdp.connection_of(section).and_then(|a| a.parse::<IpAddr>().ok()) {
            if address.is_multicast() {
                return Err(unsupported(format!(
                    "multicast destination {address} is not supported (unicast RTP only)"
                )));
            }
        }
        let track = track_of(section).map_err(unsupported)?;
        if tracks.iter().any(|t| t.kind == track.kind) {
            return Err(unsupported(format!(
                "a second {} m-line: a stream has one video and one audio track",
                track.kind
            )));
        }
        tracks.push(track);
    }
    if tracks.is_empty() {
        return Err(SdpError::NoPort);
    }
    check_ports(&tracks)?;
    Ok(tracks)
}

fn track_of(section: &MediaSection) -> Result<IngestTrack, String> {
    let kind = match section.media.as_str() {
        "video" => TrackKind::Video,
        "audio" => TrackKind::Audio,
        other => return Err(format!("`{other}` media cannot be received; only audio and video")),
    };
    let proto = section.proto.to_ascii_uppercase();
    if proto != "RTP/AVP" && proto != "RTP/AVPF" {
        return Err(format!("transport `{}` is not supported; only plain RTP (RTP/AVP)", section.proto));
    }
    let rtcp_port = if section.rtcp_mux {
        None
    } else {
        match section.rtcp_port {
            Some(p) => Some(p),
            None => Some(section.port.checked_add(1).ok_or("RTP port 65535 leaves no port for RTCP")?),
        }
    };
    let mut first_problem = None;
    for format in &section.formats {
        let attempt = format
            .parse::<u8>()
            .ok()
            .filter(|pt| *pt <= 127)
            .ok_or_else(|| format!("`{format}` is not an RTP payload type"))
            .and_then(|pt| payload_of(section, kind, pt));
        match attempt {
            Ok((pt, codec, encoding, clock_rate, channels)) => {
                return Ok(IngestTrack {
                    kind,
                    codec,
                    mline: section.index,
                    pt,
                    encoding,
                    clock_rate,
                    channels,
                    params: section.fmtps.get(&pt).cloned().unwrap_or_default(),
                    rtp_port: section.port,
                    rtcp_port,
                    ssrc: (section.ssrcs.len() == 1).then(|| section.ssrcs[0]),
                })
            }
            Err(problem) => {
                first_problem.get_or_insert(problem);
            }
        }
    }
    Err(first_problem.unwrap_or_else(|| "no payload type".into()))
}

type Payload = (u8, Codec, String, u32, Option<u32>);

fn payload_of(section: &MediaSection, kind: TrackKind, pt: u8) -> Result<Payload, String> {
    let (encoding, clock_rate, channels) = match (section.rtpmaps.get(&pt), static_payload(pt)) {
        (Some(map), _) => (map.encoding.clone(), map.clock_rate, map.channels),
        (None, Some((name, rate, channels))) => (name.to_string(), rate, channels),
        (None, None) => return Err(format!("payload type {pt} has no a=rtpmap line")),
    };
    let codec = codec_of(&encoding).ok_or_else(|| {
        format!("payload type {pt} ({encoding}/{clock_rate}) cannot be received; supported: {SUPPORTED}")
    })?;
    if codec.kind() != kind {
        return Err(format!("{encoding} is a {} codec, in a {kind} m-line", codec.kind()));
    }
    match codec {
        Codec::H264 => {
            let mode = section.fmtp(pt, "packetization-mode").unwrap_or("0");
            if mode != "0" && mode != "1" {
                return Err(format!("H.264 packetization-mode={mode} is not supported (0 or 1)"));
            }
        }
        Codec::Aac => check_aac(section, pt)?,
        Codec::Opus if clock_rate != 48000 => return Err(format!("opus clock rate is 48000, not {clock_rate}")),
        _ => {}
    }
    Ok((pt, codec, encoding.to_ascii_uppercase(), clock_rate, channels))
}

/// mpeg4-generic (RFC 3640) carrying AAC: AAC-hbr or AAC-lbr, with the AudioSpecificConfig.
fn check_aac(section: &MediaSection, pt: u8) -> Result<(), String> {
    let mode = section.fmtp(pt, "mode").unwrap_or("");
    if !mode.eq_ignore_ascii_case("AAC-hbr") && !mode.eq_ignore_ascii_case("AAC-lbr") {
        return Err(format!("MPEG4-GENERIC mode `{mode}` is not supported (AAC-hbr or AAC-lbr)"));
    }
    let config = section.fmtp(pt, "config").ok_or("MPEG4-GENERIC without `config` (the AudioSpecificConfig)")?;
    let bytes = hex(config).ok_or_else(|| format!("MPEG4-GENERIC config `{config}` is not hex"))?;
    AudioSpecificConfig::parse(&bytes).map_err(|e| format!("MPEG4-GENERIC config `{config}`: {e}"))?;
    if section.fmtp(pt, "sizelength").is_none() {
        return Err("MPEG4-GENERIC without `sizelength`".into());
    }
    Ok(())
}

/// Decodes hex digits (an even number of them).
pub fn hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.is_empty() || text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| text.get(i..i + 2).and_then(|d| u8::from_str_radix(d, 16).ok())).collect()
}

/// Every RTP and RTCP port is bound once: they must all differ.
fn check_ports(tracks: &[IngestTrack]) -> Result<(), SdpError> {
    let mut used: Vec<(u16, String)> = Vec::new();
    for t in tracks {
        let mut mine = vec![(t.rtp_port, format!("{} RTP", t.kind))];
        if let Some(p) = t.rtcp_port {
            mine.push((p, format!("{} RTCP", t.kind)));
        }
        for (port, what) in mine {
            if let Some((_, other)) = used.iter().find(|(p, _)| *p == port) {
                return Err(SdpError::PortConflict(format!("port {port} is both the {other} and the {what} port")));
            }
            used.push((port, what));
        }
    }
    Ok(())
}
