//! The str0m side of a WHEP answer, without sockets: an ICE-lite `Rtc` in RTP mode whose
//! codecs are exactly the payload types the gateway chose from the offer (`sdp::Choice`),
//! with the offer's RTX payload type for video so NACKs are answered from str0m's (small)
//! resend buffer.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::format::{Codec as RtcCodec, FormatParams};
use str0m::media::{Frequency, Mid, Pt};
use str0m::rtp::Extension;
use str0m::{Candidate, Rtc};

use super::super::sdp::{Choice, Offer, SdpError};
use crate::media::{Codec, TrackKind};

/// Packets of video a viewer can ask again by NACK (about 2 s at 1 Mbit/s).
pub const RESEND_VIDEO: usize = 256;

/// One negotiated track: where and how its RTP goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedTrack {
    pub kind: TrackKind,
    pub mid: Mid,
    pub pt: Pt,
    pub clock_rate: u32,
}

/// A viewer's `Rtc`, ready for ICE, and its answer.
pub struct Negotiated {
    pub rtc: Rtc,
    pub answer: String,
    pub tracks: Vec<NegotiatedTrack>,
}

/// The RTX payload type the offer pairs with `pt` on the same m-line.
fn rtx_for(offer: &Offer, choice: &Choice) -> Option<u8> {
    let media = offer.medias.get(choice.mline as usize)?;
    media
        .codecs
        .iter()
        .find(|c| c.name == "RTX" && c.param("apt").and_then(|a| a.trim().parse().ok()) == Some(choice.pt))
        .map(|c| c.pt)
}

/// `profile-level-id` as str0m takes it (hex, 6 digits).
fn profile_level_id(choice: &Choice) -> u32 {
    choice.profile_level_id.as_deref().and_then(|p| u32::from_str_radix(p.trim(), 16).ok()).unwrap_or(0x42e01f)
}

/// The media stream every sent track belongs to (`a=msid`): browsers lip-sync the tracks of
/// one stream only.
const STREAM_ID: &str = "interop-gateway";

/// The offer with an `a=msid` of one stream on each audio and video m-line that has none.
/// str0m answers each m-line with the offer's msid, else with a random stream per m-line, which
/// would put audio and video in two streams a browser does not synchronize.
fn one_stream(sdp: &str) -> String {
    let lines: Vec<&str> = sdp.split_inclusive('\n').collect();
    let starts: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].starts_with("m=")).collect();
    let mut out = String::with_capacity(sdp.len() + 128);
    out.extend(lines[..starts.first().copied().unwrap_or(lines.len())].iter().copied());
    for (n, &start) in starts.iter().enumerate() {
        let section = &lines[start..starts.get(n + 1).copied().unwrap_or(lines.len())];
        let kind = section[0][2..].split(' ').next().filter(|k| matches!(*k, "audio" | "video"));
        let needs = kind.is_some() && !section.iter().any(|l| l.starts_with("a=msid:"));
        for line in section {
            out.push_str(line);
            if let (Some(k), true, true) = (kind, needs, line.starts_with("a=mid:")) {
                if !line.ends_with('\n') {
                    out.push_str("\r\n");
                }
                out.push_str(&format!("a=msid:{STREAM_ID} {k}\r\n"));
            }
        }
    }
    out
}

/// Builds the `Rtc` for `choices` (the offer's text in `sdp`), with `candidate` as its only
/// (host) candidate, and answers the offer.
pub fn answer(
    sdp: &str,
    offer: &Offer,
    choices: &[Choice],
    candidate: SocketAddr,
    now: Instant,
) -> Result<Negotiated, SdpError> {
    let mut config = Rtc::builder()
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .clear_codecs()
        .set_stats_interval(None)
        .set_send_buffer_video(RESEND_VIDEO)
        .set_send_buffer_audio(1)
        // Only the mid (BUNDLE demultiplexing): no transport-wide congestion control or
        // absolute send time, so viewers send no TWCC feedback the gateway would not use (it
        // sends the stream as it comes, with no bandwidth estimation).
        .clear_extension_map()
        .set_extension(4, Extension::RtpMid);
    let codecs = config.codec_config();
    for choice in choices {
        let pt: Pt = choice.pt.into();
        match choice.codec {
            Codec::H264 => {
                codecs.add_h264(pt, rtx_for(offer, choice).map(Pt::from), true, profile_level_id(choice));
            }
            Codec::Vp8 => codecs.add_config(
                pt,
                rtx_for(offer, choice).map(Pt::from),
                RtcCodec::Vp8,
                Frequency::NINETY_KHZ,
                None,
                FormatParams::default(),
            ),
            _ => codecs.add_config(
                pt,
                None,
                RtcCodec::Opus,
                Frequency::FORTY_EIGHT_KHZ,
                Some(2),
                FormatParams { min_p_time: Some(10), use_inband_fec: Some(true), ..Default::default() },
            ),
        }
    }
    let mut rtc = config.build(now);
    let host = Candidate::host(candidate, "udp").map_err(|e| SdpError::Invalid(format!("local candidate: {e}")))?;
    rtc.add_local_candidate(host);
    let sdp = &one_stream(sdp);
    let parsed =
        SdpOffer::from_sdp_string(sdp).map_err(|e| SdpError::Invalid(format!("the SDP does not parse: {e}")))?;
    let answer = rtc
        .sdp_api()
        .accept_offer(parsed)
        .map_err(|e| SdpError::Invalid(format!("the offer cannot be answered: {e}")))?;
    let mut tracks = Vec::new();
    for choice in choices {
        let Some(mid) = offer.medias.get(choice.mline as usize).and_then(|m| m.mid.as_deref()).map(Mid::from) else {
            return Err(SdpError::Invalid(format!("m-line {} has no a=mid (needed with BUNDLE)", choice.mline)));
        };
        let Some(media) = rtc.media(mid) else {
            return Err(SdpError::NoUsableCodec(format!("m-line {} ({}) was not answered", choice.mline, choice.kind)));
        };
        if !media.remote_pts().contains(&Pt::from(choice.pt)) {
            return Err(SdpError::NoUsableCodec(format!(
                "m-line {} ({}): payload type {} ({}) not negotiated",
                choice.mline, choice.kind, choice.pt, choice.codec
            )));
        }
        tracks.push(NegotiatedTrack { kind: choice.kind, mid, pt: choice.pt.into(), clock_rate: choice.clock_rate });
    }
    Ok(Negotiated { rtc, answer: answer.to_sdp_string(), tracks })
}

#[cfg(test)]
mod tests;
