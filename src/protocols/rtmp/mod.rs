//! RTMP: server and client, a sans-IO protocol core with a thin tokio layer.
//!
//! - [`ServerConn`]: a client connected to us (publisher or player); [`ServerSession`] is
//!   its protocol logic without IO.
//! - [`ClientConn`]: we push to / pull from an RTMP origin; [`ClientSession`] without IO.
//! - [`encode_media_chunks`]: media chunked once, written unchanged to every player.
//! - [`amf`]: AMF0 values (also used for FLV script data).
//!
//! Driving a [`ServerConn`]: call `next_event` in a loop (it is cancel-safe, so it can sit in
//! `tokio::select!` beside a media queue); answer `Publish`/`Play` with `accept_*` or
//! `reject_*` (then close). After `Unpublish`, keep reading until `None`: publishers such as
//! rtmp2sink still send `deleteStream` and report an error if the server hangs up first.
//! Players get media through `send_chunks` (sequence headers first, metadata as
//! `onMetaData` without `@setDataFrame`); `end_play` tells them the stream ended (rtmp2src
//! then goes to EOS).

pub mod amf;
pub mod chunk;
mod client_conn;
mod client_session;
mod conn;
mod error;
pub mod handshake;
mod link;
mod media;
pub mod message;
mod play;
pub mod serve;
mod session;
mod transport;
mod url;

pub use client_conn::ClientConn;
pub use client_session::{ClientEvent, ClientSession, ClientState};
pub use conn::ServerConn;
pub use error::{ChunkError, RtmpError};
pub use media::{encode_media_chunks, split_aggregate, MediaKind, MediaMessage, OUT_CHUNK_SIZE};
pub use session::{split_query, ServerEvent, ServerSession};
pub use url::{RtmpUrl, DEFAULT_PORT};

#[cfg(test)]
mod conn_tests;
