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

impl RtmpError {
    /// The peer passed one of the connection's limits (message length, buffered bytes).
    pub fn is_over_limit(&self) -> bool {
        matches!(
            self,
            RtmpError::Chunk(
                ChunkError::MessageTooLong { .. } | ChunkError::TooMuchPending(_) | ChunkError::TooManyChunkStreams(_)
            )
        )
    }
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
    #[error("{0} bytes would be buffered in incomplete messages, over the connection's limit")]
    TooMuchPending(usize),
    #[error("more than {0} chunk streams on one connection")]
    TooManyChunkStreams(usize),
    #[error("control message type {type_id} too short ({len} bytes)")]
    ShortControl { type_id: u8, len: usize },
    #[error("message of {len} bytes too long to encode")]
    TooLongToEncode { len: usize },
}
