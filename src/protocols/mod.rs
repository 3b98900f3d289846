//! One folder per wire protocol.

pub mod cdn;
pub mod flv;
pub mod h5;
pub mod hls;
pub mod rtmp;
pub mod udp;
pub mod webrtc;
