//! The SDP handed to an RTP receiver of a UDP output: one m-line per track, with what a
//! decoder needs up front (`sprop-parameter-sets` for H.264, the AudioSpecificConfig for AAC).
//! Pure: from track infos to text.

use std::fmt::Write;
use std::net::IpAddr;

use crate::media::h264::AvcConfig;
use crate::media::{Codec, TrackInfo, TrackKind};

/// How one track is sent: payload type, clock, and the SDP lines describing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputTrack {
    pub kind: TrackKind,
    pub codec: Codec,
    pub pt: u8,
    /// The RTP port at the receiver (RTCP goes to the next one).
    pub port: u16,
    pub encoding: &'static str,
    pub clock_rate: u32,
    pub channels: Option<u32>,
    pub fmtp: Option<String>,
}

/// Video goes to `port`, audio to `port + 2` (each with RTCP on the port after it).
pub fn port_for(kind: TrackKind, port: u16) -> Option<u16> {
    match kind {
        TrackKind::Video => Some(port),
        TrackKind::Audio => port.checked_add(2),
    }
}

/// Describes sending `info` to `port`.
pub fn output_track(info: &TrackInfo, port: u16) -> OutputTrack {
    let kind = info.kind();
    let codec = info.codec();
    let (pt, encoding, clock_rate, channels) = match info {
        TrackInfo::Video(_) => match codec {
            Codec::Vp8 => (96, "VP8", 90_000, None),
            Codec::Mpeg1 => (32, "MPV", 90_000, None),
            _ => (96, "H264", 90_000, None),
        },
        TrackInfo::Audio(a) => match codec {
            Codec::Opus => (97, "opus", 48_000, Some(2)),
            Codec::Aac => (97, "MPEG4-GENERIC", a.sample_rate.max(1), Some(u32::from(a.channels.max(1)))),
            Codec::Pcma => (8, "PCMA", 8_000, Some(1)),
            Codec::Mp2 => (14, "MPA", 90_000, None),
            _ => (0, "PCMU", 8_000, Some(1)),
        },
    };
    let fmtp = match info {
        TrackInfo::Video(v) if codec == Codec::H264 => Some(h264_fmtp(v.config.as_deref())),
        TrackInfo::Audio(a) if codec == Codec::Aac => a.config.as_ref().map(|c| aac_fmtp(c)),
        TrackInfo::Audio(a) if codec == Codec::Opus && a.channels >= 2 => Some("sprop-stereo=1".to_string()),
        _ => None,
    };
    OutputTrack { kind, codec, pt, port, encoding, clock_rate, channels, fmtp }
}

/// Whether `info` (a track's newest description, e.g. after the publisher came back with
/// other parameters) can still be sent as `announced`: the receiver read the SDP once, so the
/// encoding, the RTP clock and, for audio, the channels and the codec configuration carried in
/// `fmtp` (AAC's AudioSpecificConfig) must stay. H.264 parameter sets travel in-band, so a new
/// picture size is fine. `Err` says what changed.
pub fn still_fits(announced: &OutputTrack, info: &TrackInfo) -> Result<(), String> {
    let now = output_track(info, announced.port);
    let what = |t: &OutputTrack| match t.channels {
        Some(ch) => format!("{} {} Hz, {ch} ch", t.encoding, t.clock_rate),
        None => format!("{} {} Hz", t.encoding, t.clock_rate),
    };
    let same_clock = now.encoding == announced.encoding && now.clock_rate == announced.clock_rate;
    let fits = match announced.kind {
        TrackKind::Video => same_clock,
        TrackKind::Audio => same_clock && now.channels == announced.channels && now.fmtp == announced.fmtp,
    };
    if fits {
        return Ok(());
    }
    let detail = if same_clock && now.channels == announced.channels {
        " (another codec configuration)".to_string()
    } else {
        String::new()
    };
    Err(format!(
        "the stream's {} is now {}{detail}, the SDP this output announced says {}: create the output again for a new SDP",
        announced.kind,
        what(&now),
        what(announced)
    ))
}

/// `packetization-mode=1` plus, when the avcC is known, the profile and parameter sets.
fn h264_fmtp(avcc: Option<&[u8]>) -> String {
    let mut fmtp = String::from("packetization-mode=1");
    if let Some(config) = avcc.and_then(|c| AvcConfig::parse(c).ok()) {
        let _ = write!(
            fmtp,
            ";profile-level-id={:02x}{:02x}{:02x}",
            config.profile_idc, config.profile_compat, config.level_idc
        );
        let sets: Vec<String> = config.sps.iter().chain(config.pps.iter()).map(|n| base64(n)).collect();
        if !sets.is_empty() {
            let _ = write!(fmtp, ";sprop-parameter-sets={}", sets.join(","));
        }
    }
    fmtp
}

/// RFC 3640 AAC-hbr, as `rtpmp4gpay` packs it.
fn aac_fmtp(asc: &[u8]) -> String {
    let hex: String = asc.iter().map(|b| format!("{b:02x}")).collect();
    format!("streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config={hex}")
}

/// The whole SDP: sent from `origin` to `destination`.
pub fn render(
    tracks: &[OutputTrack],
    origin: IpAddr,
    destination: IpAddr,
    session_name: &str,
    session_id: u64,
) -> String {
    let family = |ip: IpAddr| if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut sdp = String::new();
    let _ = write!(sdp, "v=0\r\no=- {session_id} 1 IN {} {origin}\r\n", family(origin));
    let _ = write!(
        sdp,
        "s={session_name}\r\nc=IN {} {destination}\r\nt=0 0\r\na=tool:interop-gateway\r\n",
        family(destination)
    );
    for t in tracks {
        let _ = write!(sdp, "m={} {} RTP/AVP {}\r\n", t.kind, t.port, t.pt);
        match t.channels {
            Some(ch) if t.kind == TrackKind::Audio && t.codec != Codec::Pcmu && t.codec != Codec::Pcma => {
                let _ = write!(sdp, "a=rtpmap:{} {}/{}/{ch}\r\n", t.pt, t.encoding, t.clock_rate);
            }
            _ => {
                let _ = write!(sdp, "a=rtpmap:{} {}/{}\r\n", t.pt, t.encoding, t.clock_rate);
            }
        }
        if let Some(fmtp) = &t.fmtp {
            let _ = write!(sdp, "a=fmtp:{} {fmtp}\r\n", t.pt);
        }
        let _ = write!(sdp, "a=rtcp:{}\r\na=sendonly\r\n", t.port.saturating_add(1));
    }
    sdp
}

/// Standard base64 with padding (RFC 4648), as `sprop-parameter-sets` wants.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
