//! What an offer may ask for before webrtcbin spends sockets and threads on it: a bounded
//! number of m-lines, at most one audio and one video m-line (the gateway uses one of each),
//! and no SSRC 0 (webrtcbin takes it for "none" and trips a GStreamer-CRITICAL).

use super::{Offer, SdpError};

/// Refuses an offer with more than `max_media` m-lines, a second audio or video m-line, or an
/// `a=ssrc` / `a=ssrc-group` naming SSRC 0 (HTTP 400).
pub fn check_limits(offer: &Offer, max_media: usize) -> Result<(), SdpError> {
    let count = offer.medias.len();
    if count > max_media {
        return Err(SdpError::Invalid(format!("the offer has {count} m-lines; at most {max_media} are accepted")));
    }
    for kind in ["audio", "video"] {
        let n = offer.medias.iter().filter(|m| m.kind == kind).count();
        if n > 1 {
            return Err(SdpError::Invalid(format!(
                "the offer has {n} {kind} m-lines; the gateway takes one audio and one video"
            )));
        }
    }
    for (i, media) in offer.sdp.medias().enumerate() {
        let attributes = media.attributes().chain(offer.sdp.attributes());
        for a in attributes.filter(|a| matches!(a.key(), "ssrc" | "ssrc-group")) {
            if names_ssrc_zero(a.key(), a.value().unwrap_or("")) {
                return Err(SdpError::Invalid(format!(
                    "m-line {i}: `a={}:{}` names SSRC 0, which is not a usable source",
                    a.key(),
                    a.value().unwrap_or("")
                )));
            }
        }
    }
    Ok(())
}

/// `a=ssrc:0 cname:x` or `a=ssrc-group:FID 0 1234`: a zero (or unparsable) SSRC.
fn names_ssrc_zero(key: &str, value: &str) -> bool {
    let mut words = value.split_whitespace();
    let ssrcs: Vec<&str> = match key {
        "ssrc" => words.next().into_iter().collect(),
        _ => words.skip(1).collect(),
    };
    ssrcs.iter().any(|s| s.parse::<u32>().map_or(true, |v| v == 0))
}

#[cfg(test)]
mod tests {
    use super::super::parse_offer;
    use super::*;

    fn offer(medias: &[(&str, &str)]) -> String {
        let mut text = String::from(
            "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
             a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n",
        );
        for (i, (kind, extra)) in medias.iter().enumerate() {
            let (pt, map) = if *kind == "audio" { (111, "opus/48000/2") } else { (102, "H264/90000") };
            text.push_str(&format!(
                "m={kind} 9 UDP/TLS/RTP/SAVPF {pt}\r\nc=IN IP4 0.0.0.0\r\na=mid:{i}\r\na=sendonly\r\na=rtpmap:{pt} {map}\r\n{extra}"
            ));
        }
        text
    }

    fn check(text: &str, max: usize) -> Result<(), SdpError> {
        crate::pipeline::init();
        let parsed = parse_offer(text).unwrap_or_else(|e| panic!("{e}"));
        check_limits(&parsed, max)
    }

    #[test]
    fn an_ordinary_offer_passes() {
        let text =
            offer(&[("audio", "a=ssrc:1234 cname:x\r\n"), ("video", "a=ssrc-group:FID 5 6\r\na=ssrc:5 cname:x\r\n")]);
        assert_eq!(check(&text, 3), Ok(()));
    }

    #[test]
    fn too_many_m_lines_are_refused() {
        let many: Vec<(&str, &str)> = (0..200).map(|i| (if i % 2 == 0 { "audio" } else { "video" }, "")).collect();
        let e = check(&offer(&many), 3).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("200 m-lines"), "{e}");
        let e = check(&offer(&[("video", ""), ("video", "")]), 3).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("2 video m-lines"), "{e}");
    }

    #[test]
    fn ssrc_zero_is_refused() {
        for extra in ["a=ssrc:0 cname:x\r\n", "a=ssrc-group:FID 1234 0\r\n", "a=ssrc:x cname:y\r\n"] {
            let text = offer(&[("video", extra)]);
            assert!(matches!(check(&text, 3), Err(SdpError::Invalid(m)) if m.contains("SSRC 0")), "{extra}");
        }
    }
}
