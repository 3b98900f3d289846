//! The answer as webrtcbin wrote it, completed (the H.264 profile) and rewritten for NAT 1:1
//! (the announced address in the candidates).

use std::net::IpAddr;

use super::Choice;
use crate::media::Codec;

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
        let starts: Vec<usize> =
            lines.iter().enumerate().filter(|(_, l)| l.starts_with("m=")).map(|(i, _)| i).collect();
        let Some(&start) = starts.get(choice.mline as usize) else {
            continue;
        };
        let end = starts.get(choice.mline as usize + 1).copied().unwrap_or(lines.len());
        let fmtp = format!("a=fmtp:{} ", choice.pt);
        let rtpmap = format!("a=rtpmap:{} ", choice.pt);
        match (start..end).find(|&i| lines[i].starts_with(&fmtp)) {
            Some(i) if !lines[i].contains("profile-level-id=") => {
                lines[i] = format!("{};profile-level-id={profile}", lines[i].trim_end());
            }
            Some(_) => {}
            None => {
                let at = (start..end).find(|&i| lines[i].starts_with(&rtpmap)).map_or(end, |i| i + 1);
                lines.insert(at, format!("{fmtp}packetization-mode=1;profile-level-id={profile}"));
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
