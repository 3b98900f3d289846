//! Reading what an SDP offers: m-sections with their codecs (rtpmap, fmtp), and the H.264
//! profile check the stand-in sender needs.

use std::collections::HashMap;

/// One m-section of an SDP: its kind and codecs in offer order.
#[derive(Debug)]
pub struct OfferedMedia {
    /// `video` or `audio`.
    pub kind: String,
    /// The section's codecs.
    pub codecs: Vec<OfferedCodec>,
}

/// One codec of an m-section.
#[derive(Debug)]
pub struct OfferedCodec {
    /// Payload type.
    pub pt: u32,
    /// Encoding name from `a=rtpmap`.
    pub name: String,
    /// The `a=fmtp` parameters ("" when none).
    pub fmtp: String,
}

/// An m-section being read: payload types from the m= line, attributes by payload type.
#[derive(Default)]
struct Section {
    kind: String,
    pts: Vec<u32>,
    rtpmap: HashMap<u32, String>,
    fmtp: HashMap<u32, String>,
}

impl Section {
    fn into_media(self) -> OfferedMedia {
        let codecs = self
            .pts
            .iter()
            .filter_map(|pt| {
                Some(OfferedCodec {
                    pt: *pt,
                    name: self.rtpmap.get(pt)?.clone(),
                    fmtp: self.fmtp.get(pt).cloned().unwrap_or_default(),
                })
            })
            .collect();
        OfferedMedia { kind: self.kind, codecs }
    }
}

/// `a=NAME:<pt> <value>` → `(pt, value)`.
fn pt_attribute(line: &str, prefix: &str) -> Option<(u32, String)> {
    let (pt, value) = line.strip_prefix(prefix)?.split_once(' ')?;
    Some((pt.parse().ok()?, value.to_string()))
}

/// The m-sections of `sdp` with their codecs, in order.
pub fn offered_media(sdp: &str) -> Vec<OfferedMedia> {
    let mut sections: Vec<Section> = Vec::new();
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut words = m.split_whitespace();
            let kind = words.next().unwrap_or("").to_string();
            let pts = words.skip(2).filter_map(|w| w.parse().ok()).collect();
            sections.push(Section { kind, pts, ..Section::default() });
        } else if let Some(section) = sections.last_mut() {
            if let Some((pt, value)) = pt_attribute(line, "a=rtpmap:") {
                section.rtpmap.insert(pt, value.split('/').next().unwrap_or("").to_string());
            } else if let Some((pt, value)) = pt_attribute(line, "a=fmtp:") {
                section.fmtp.insert(pt, value);
            }
        }
    }
    sections.into_iter().map(Section::into_media).collect()
}

/// Whether an H.264 fmtp's `profile-level-id` is constrained baseline (profile_idc 66 with
/// constraint_set1); a missing one means baseline (RFC 6184 default 420010), so no.
pub fn is_constrained_baseline(fmtp: &str) -> bool {
    let Some(id) = fmtp.split(';').find_map(|p| p.trim().strip_prefix("profile-level-id=")) else {
        return false;
    };
    let Ok(value) = u32::from_str_radix(id, 16) else {
        return false;
    };
    let (profile_idc, constraints) = (value >> 16, (value >> 8) & 0xff);
    profile_idc == 0x42 && constraints & 0x40 != 0
}
