//! One target per parser that reads bytes from the network or a file, each calling the
//! library's real entry point the way the gateway does.

pub mod cluster;
pub mod codec;
pub mod flv;
pub mod h5;
pub mod mp4;
pub mod net;
pub mod rtmp;
pub mod text;
