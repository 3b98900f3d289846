//! RTMP: server and client, a sans-IO protocol core with a thin tokio layer.

pub mod amf;
pub mod chunk;
mod client_session;
mod error;
pub mod handshake;
mod link;
mod media;
pub mod message;
mod session;
mod url;

pub use client_session::{ClientEvent, ClientSession, ClientState};
pub use error::{ChunkError, RtmpError};
pub use media::{encode_media_chunks, split_aggregate, MediaKind, MediaMessage, OUT_CHUNK_SIZE};
pub use session::{split_query, ServerEvent, ServerSession};
pub use url::{RtmpUrl, DEFAULT_PORT};
