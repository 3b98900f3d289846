//! Errors of the RTMP layer. Any of them closes the one connection it happened on.

use super::amf::AmfError;

/// Why an RTMP connection failed.
#[derive(Debug, thiserror::Error)]
pub enum RtmpError {
    #[error("RTMP I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A bounded wait ran out; the text says which.
    #[error("RTMP timeout: {0}")]
    Timeout(&'static str),
    #[error("RTMP handshake failed: {0}")]
    Handshake(String),
    #[error("RTMP chunk stream error: {0}")]
    Chunk(#[from] ChunkError),
    #[error("RTMP AMF error: {0}")]
    Amf(#[from] AmfError),
    /// The peer broke the command sequence (e.g. publish before connect).
    #[error("RTMP protocol error: {0}")]
    Protocol(String),
    /// The peer refused a connect, publish or play.
    #[error("RTMP peer rejected the request: {code}: {description}")]
    Rejected { code: String, description: String },
    #[error("invalid RTMP URL: {0}")]
    Url(String),
    /// The peer closed the connection before an exchange finished.
    #[error("RTMP peer closed the connection {0}")]
    Closed(&'static str),
}

/// Malformed or abusive chunk stream input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    MessageTooLong { len: u32, max: u32 },
    #[error("chunk size {0} out of range")]
    BadChunkSize(u32),
    #[error("chunk of format {fmt} on chunk stream {csid} without a previous message header")]
    NoPreviousHeader { csid: u32, fmt: u8 },
    #[error("{0} bytes buffered in incomplete messages, over the limit")]
    TooMuchPending(usize),
    #[error("control message type {type_id} too short ({len} bytes)")]
    ShortControl { type_id: u8, len: usize },
    #[error("message of {len} bytes too long to encode")]
    TooLongToEncode { len: usize },
}
