use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The protocols of the conversion matrix, by the names the contract uses everywhere: six that
/// publish and play, and HLS, which only plays (nothing publishes HLS to the gateway).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Webrtc,
    H5,
    Miniprogram,
    Rtmp,
    Udp,
    Cdn,
    Hls,
}

impl Protocol {
    /// Every protocol: the reference table's rows and columns in its order, then HLS (a
    /// column of the matrix only).
    pub const ALL: [Protocol; 7] = [
        Protocol::Webrtc,
        Protocol::H5,
        Protocol::Miniprogram,
        Protocol::Rtmp,
        Protocol::Udp,
        Protocol::Cdn,
        Protocol::Hls,
    ];

    /// The protocols a stream can be published by: the matrix's rows.
    pub const PUBLISHERS: [Protocol; 6] =
        [Protocol::Webrtc, Protocol::H5, Protocol::Miniprogram, Protocol::Rtmp, Protocol::Udp, Protocol::Cdn];

    /// Whether streams can be published by this protocol (HLS is play only).
    pub fn publishes(self) -> bool {
        self != Protocol::Hls
    }

    /// Position in [`Protocol::ALL`]: an index for per-protocol tables.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Webrtc => "webrtc",
            Protocol::H5 => "h5",
            Protocol::Miniprogram => "miniprogram",
            Protocol::Rtmp => "rtmp",
            Protocol::Udp => "udp",
            Protocol::Cdn => "cdn",
            Protocol::Hls => "hls",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol `{0}` (known: webrtc, h5, miniprogram, rtmp, udp, cdn, hls)")]
pub struct UnknownProtocol(pub String);

impl FromStr for Protocol {
    type Err = UnknownProtocol;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Protocol::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| UnknownProtocol(s.to_string()))
    }
}
