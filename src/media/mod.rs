//! The gateway's one internal stream format (MediaMTX style): every protocol converts its
//! media into [`Frame`]s on ingest and back out of them on egress, so a new protocol is one
//! to/from pair, not a bridge to every other protocol.

pub mod aac;
mod bits;
mod codec;
mod frame;
pub mod h264;
pub mod mp4;
mod protocol;
pub mod rtp;
mod ts;

pub use codec::{Codec, TrackKind, UnknownCodec};
pub use frame::{AudioInfo, Frame, TrackInfo, VideoInfo};
pub use protocol::{Protocol, UnknownProtocol};
pub use ts::Ts;
