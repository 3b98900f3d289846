//! The RTMP chunk stream: splitting messages into chunks and joining them back, with
//! per-chunk-stream header compression state (formats 0–3) and extended timestamps.

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::ChunkError;
use crate::hub::outbox::Outbox;

/// Largest message a [`ChunkDecoder::new`] accepts (the wire format allows up to 16 MiB − 1).
pub const MAX_MESSAGE_LEN: u32 = 8 * 1024 * 1024;
/// Largest message the 24-bit length field can describe (what we can send).
pub const MAX_WIRE_MESSAGE_LEN: u32 = 0x00FF_FFFF;
/// What a [`ChunkDecoder::new`] may hold over all chunk streams of one connection: messages
/// still arriving (their allocated size) and the chunk waiting to be whole.
pub const MAX_PENDING_BYTES: usize = 12 * 1024 * 1024;
/// Distinct chunk stream ids one connection may use (real peers use a handful).
pub const MAX_CHUNK_STREAMS: usize = 256;
/// Buffers for messages still arriving start at most this big and grow with what arrives.
const FIRST_ALLOCATION: usize = 4 * 1024;
/// The chunk size every RTMP connection starts with.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest chunk size we use for reading (the spec allows 2^31 − 1; a message is never
/// longer than 16 MiB − 1, so larger sizes change nothing).
pub const MAX_CHUNK_SIZE: u32 = 0x00FF_FFFF;
/// A timestamp field of this value means "extended timestamp follows".
const EXTENDED_TS: u32 = 0x00FF_FFFF;

/// RTMP message type ids.
pub mod msg_type {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACK: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const COMMAND_AMF0: u8 = 20;
    pub const AGGREGATE: u8 = 22;
}

/// One whole message as read from the chunk stream.
#[derive(Debug, Clone, PartialEq)]
pub struct RawMessage {
    pub csid: u32,
    pub type_id: u8,
    pub stream_id: u32,
    /// Absolute timestamp in milliseconds (deltas and extended timestamps resolved).
    pub timestamp: u32,
    pub payload: Bytes,
}

/// What one chunk stream id remembers from its last header.
#[derive(Debug, Default)]
struct ChunkStreamState {
    /// Absolute timestamp of the current (or last) message.
    timestamp: u32,
    /// Last timestamp field read (absolute for format 0, else the delta); format 3 reuses it.
    ts_field: u32,
    /// The last format 0/1/2 header used an extended timestamp.
    extended: bool,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// Payload collected so far of a message still arriving, if any.
    partial: Option<Vec<u8>>,
}

/// What a peer may make one connection's decoder hold. Every declared length is checked
/// against these before anything is allocated for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Largest message once media is allowed ([`ChunkDecoder::allow_media`]).
    pub max_message: u32,
    /// Bytes held at once: allocations for messages still arriving plus the chunk waited for.
    pub max_buffer: usize,
    /// Largest message before media is allowed (connect, createStream, publish, play).
    pub max_command: u32,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits { max_message: MAX_MESSAGE_LEN, max_buffer: MAX_PENDING_BYTES, max_command: MAX_MESSAGE_LEN }
    }
}

/// Reassembles messages from incoming chunks.
#[derive(Debug)]
pub struct ChunkDecoder {
    chunk_size: u32,
    streams: HashMap<u32, ChunkStreamState>,
    /// Bytes allocated for messages still arriving (capacity, not length).
    pending: usize,
    limits: ChunkLimits,
    /// The message length allowed now: `max_command`, then `max_message`.
    max_message: u32,
}

impl Default for ChunkDecoder {
    fn default() -> Self {
        Self::new()
    }
}

/// A chunk's parsed headers, before its payload is taken from the input.
struct ChunkHeader {
    fmt: u8,
    csid: u32,
    /// Bytes of basic + message header + extended timestamp.
    header_len: usize,
    ts_field: Option<u32>,
    length: Option<u32>,
    type_id: Option<u8>,
    stream_id: Option<u32>,
    /// The timestamp field was 0xFFFFFF (formats 0–2).
    extended: bool,
}

impl ChunkDecoder {
    pub fn new() -> Self {
        Self::with_limits(ChunkLimits::default())
    }

    /// A decoder bounded by `limits`; messages are held to `max_command` until
    /// [`ChunkDecoder::allow_media`].
    pub fn with_limits(limits: ChunkLimits) -> Self {
        ChunkDecoder {
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            pending: 0,
            limits,
            max_message: limits.max_command.min(limits.max_message),
        }
    }

    /// Raises the message limit from `max_command` to `max_message` (the peer publishes).
    pub fn allow_media(&mut self) {
        self.max_message = self.limits.max_message;
    }

    /// Bytes held for messages still arriving.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Applies the peer's Set Chunk Size. Zero and values with the top bit set are errors;
    /// sizes above [`MAX_CHUNK_SIZE`] act like it (no message is longer anyway).
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size > 0x7FFF_FFFF {
            return Err(ChunkError::BadChunkSize(size));
        }
        self.chunk_size = size.min(MAX_CHUNK_SIZE);
        Ok(())
    }

    /// The chunk size the peer currently uses.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Drops the partly received message of `csid` (the peer's Abort message).
    pub fn abort(&mut self, csid: u32) {
        if let Some(st) = self.streams.get_mut(&csid) {
            if let Some(p) = st.partial.take() {
                self.pending -= p.capacity();
            }
        }
    }

    /// Consumes whole chunks from the front of `input` until one message completes (returned)
    /// or the input holds no whole chunk (`None`; the incomplete rest stays in `input`).
    pub fn decode(&mut self, input: &mut BytesMut) -> Result<Option<RawMessage>, ChunkError> {
        loop {
            let Some(header) = self.parse_header(input)? else {
                return Ok(None);
            };
            let before = input.len();
            if let Some(msg) = self.take_chunk(header, input)? {
                return Ok(Some(msg));
            }
            if input.len() == before || input.is_empty() {
                // The chunk is incomplete, or all input is used.
                return Ok(None);
            }
        }
    }

    /// Parses the headers of the chunk at the front of `input` without consuming anything;
    /// `None` when they are not all there yet.
    fn parse_header(&self, input: &[u8]) -> Result<Option<ChunkHeader>, ChunkError> {
        let Some(&b0) = input.first() else {
            return Ok(None);
        };
        let fmt = b0 >> 6;
        let (csid, mut pos) = match b0 & 0x3F {
            0 => match input.get(1) {
                Some(&b1) => (64 + u32::from(b1), 2),
                None => return Ok(None),
            },
            1 => match (input.get(1), input.get(2)) {
                (Some(&b1), Some(&b2)) => (64 + u32::from(b1) + 256 * u32::from(b2), 3),
                _ => return Ok(None),
            },
            n => (u32::from(n), 1),
        };
        let prev = self.streams.get(&csid);
        if fmt != 0 && prev.is_none() {
            return Err(ChunkError::NoPreviousHeader { csid, fmt });
        }
        let header_size = [11usize, 7, 3, 0][usize::from(fmt)];
        let Some(h) = input.get(pos..pos + header_size) else {
            return Ok(None);
        };
        pos += header_size;
        let mut header = ChunkHeader {
            fmt,
            csid,
            header_len: pos,
            ts_field: None,
            length: None,
            type_id: None,
            stream_id: None,
            extended: false,
        };
        if fmt <= 2 {
            let ts = u32::from_be_bytes([0, h[0], h[1], h[2]]);
            if fmt <= 1 {
                header.length = Some(u32::from_be_bytes([0, h[3], h[4], h[5]]));
                header.type_id = Some(h[6]);
            }
            if fmt == 0 {
                header.stream_id = Some(u32::from_le_bytes([h[7], h[8], h[9], h[10]]));
            }
            if ts == EXTENDED_TS {
                let Some(e) = input.get(pos..pos + 4) else {
                    return Ok(None);
                };
                header.ts_field = Some(u32::from_be_bytes([e[0], e[1], e[2], e[3]]));
                header.extended = true;
                pos += 4;
            } else {
                header.ts_field = Some(ts);
            }
        } else if let Some(st) = prev.filter(|st| st.extended) {
            // Format 3 after an extended-timestamp header repeats the extended field. On a
            // continuation, some encoders leave it out: take it only if it matches.
            let Some(e) = input.get(pos..pos + 4) else {
                return Ok(None);
            };
            let value = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            if st.partial.is_none() || value == st.ts_field {
                header.ts_field = Some(value);
                pos += 4;
            }
        }
        header.header_len = pos;
        Ok(Some(header))
    }

    /// Takes the chunk (headers + payload) from `input` if its payload is complete.
    fn take_chunk(&mut self, h: ChunkHeader, input: &mut BytesMut) -> Result<Option<RawMessage>, ChunkError> {
        if let Some(len) = h.length {
            if len > self.max_message {
                return Err(ChunkError::MessageTooLong { len, max: self.max_message });
            }
        }
        if !self.streams.contains_key(&h.csid) && self.streams.len() >= MAX_CHUNK_STREAMS {
            return Err(ChunkError::TooManyChunkStreams(MAX_CHUNK_STREAMS));
        }
        let chunk_size = self.chunk_size;
        let max_buffer = self.limits.max_buffer;
        let st = self.streams.entry(h.csid).or_default();
        let continuing = h.fmt == 3 && st.partial.is_some();
        let length = if continuing { st.length } else { h.length.unwrap_or(st.length) };
        let have = st.partial.as_ref().map_or(0, Vec::len);
        let remaining = if continuing { (length as usize).saturating_sub(have) } else { length as usize };
        let payload_len = remaining.min(chunk_size as usize);
        if input.len() < h.header_len + payload_len {
            // The rest of this chunk must be buffered before it can be taken.
            let held = self.pending + h.header_len + payload_len;
            if held > max_buffer {
                return Err(ChunkError::TooMuchPending(held));
            }
            return Ok(None);
        }

        // The whole chunk is here: commit its header to the chunk stream state.
        if !continuing {
            if let Some(old) = st.partial.take() {
                tracing::debug!(csid = h.csid, "new message header drops an incomplete message");
                self.pending -= old.capacity();
            }
            let field = h.ts_field.unwrap_or(st.ts_field);
            st.timestamp = if h.fmt == 0 { field } else { st.timestamp.wrapping_add(field) };
            st.ts_field = field;
            if h.fmt <= 2 {
                st.extended = h.extended;
            }
            st.length = length;
            if let Some(t) = h.type_id {
                st.type_id = t;
            }
            if let Some(s) = h.stream_id {
                st.stream_id = s;
            }
        }
        input.advance(h.header_len);
        let chunk = input.split_to(payload_len);

        if !continuing && payload_len == length as usize {
            // Single-chunk message: no copy.
            return Ok(Some(st.message(h.csid, chunk.freeze())));
        }
        // Grow the message's buffer with what arrived (never to more than its length), and
        // only within the connection's budget.
        let partial = st.partial.get_or_insert_with(Vec::new);
        let need = partial.len() + payload_len;
        let old_cap = partial.capacity();
        if need > old_cap {
            let target = need.max(old_cap * 2).max(FIRST_ALLOCATION).min(length as usize);
            let held = self.pending - old_cap + target;
            if held > max_buffer {
                return Err(ChunkError::TooMuchPending(held));
            }
            partial.reserve_exact(target - partial.len());
            self.pending = self.pending - old_cap + partial.capacity();
        }
        partial.extend_from_slice(&chunk);
        if partial.len() < length as usize {
            return Ok(None);
        }
        let done = st.partial.take().unwrap_or_default();
        self.pending -= done.capacity();
        Ok(Some(st.message(h.csid, Bytes::from(done))))
    }
}

impl ChunkStreamState {
    fn message(&self, csid: u32, payload: Bytes) -> RawMessage {
        RawMessage { csid, type_id: self.type_id, stream_id: self.stream_id, timestamp: self.timestamp, payload }
    }
}

/// How one message is chunked: a format 0 chunk, then format 3 continuations of at most
/// `chunk_size` bytes each (repeating the extended timestamp when used).
struct Framing {
    csid: u32,
    type_id: u8,
    stream_id: u32,
    timestamp: u32,
    len: u32,
    chunk_size: usize,
}

/// The longest chunk header: a 3-byte basic header, 11 bytes of message header, 4 of
/// extended timestamp.
const MAX_HEADER: usize = 18;

impl Framing {
    fn new(
        chunk_size: u32,
        csid: u32,
        type_id: u8,
        stream_id: u32,
        timestamp: u32,
        len: usize,
    ) -> Result<Framing, ChunkError> {
        let len = u32::try_from(len)
            .ok()
            .filter(|&l| l <= MAX_WIRE_MESSAGE_LEN)
            .ok_or(ChunkError::TooLongToEncode { len })?;
        let chunk_size = chunk_size.clamp(1, MAX_CHUNK_SIZE) as usize;
        Ok(Framing { csid, type_id, stream_id, timestamp, len, chunk_size })
    }

    fn extended(&self) -> bool {
        self.timestamp >= EXTENDED_TS
    }

    /// The header of the message's first chunk (`first`) or of a continuation.
    fn header(&self, first: bool, out: &mut impl BufMut) {
        if !first {
            put_basic_header(out, 3, self.csid);
        } else {
            put_basic_header(out, 0, self.csid);
            out.put_uint(u64::from(self.timestamp.min(EXTENDED_TS)), 3);
            out.put_uint(u64::from(self.len), 3);
            out.put_u8(self.type_id);
            out.put_u32_le(self.stream_id);
        }
        if self.extended() {
            out.put_u32(self.timestamp);
        }
    }

    /// The payload's byte ranges, one per chunk (none for an empty payload).
    fn pieces(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        let len = self.len as usize;
        (0..len).step_by(self.chunk_size).map(move |at| at..(at + self.chunk_size).min(len))
    }
}

/// Appends `payload` as one chunked message: a format 0 chunk, then format 3 continuations
/// of at most `chunk_size` bytes each (repeating the extended timestamp when used).
pub fn write_message(
    out: &mut BytesMut,
    chunk_size: u32,
    csid: u32,
    type_id: u8,
    stream_id: u32,
    timestamp: u32,
    payload: &[u8],
) -> Result<(), ChunkError> {
    let framing = Framing::new(chunk_size, csid, type_id, stream_id, timestamp, payload.len())?;
    let chunks = payload.len().div_ceil(framing.chunk_size).max(1);
    out.reserve(payload.len() + 16 + (chunks - 1) * 8);
    framing.header(true, out);
    for (i, piece) in framing.pieces().enumerate() {
        if i > 0 {
            framing.header(false, out);
        }
        out.put_slice(&payload[piece]);
    }
    Ok(())
}

/// [`write_message`] into a player's [`Outbox`]: the chunk headers are the player's own
/// bytes, the payload's pieces are slices of `payload` (shared by every player, not copied).
pub fn put_message(
    out: &mut Outbox,
    chunk_size: u32,
    csid: u32,
    type_id: u8,
    stream_id: u32,
    timestamp: u32,
    payload: &Bytes,
) -> Result<(), ChunkError> {
    let framing = Framing::new(chunk_size, csid, type_id, stream_id, timestamp, payload.len())?;
    let put_header = |first: bool, out: &mut Outbox| {
        let mut buf = [0u8; MAX_HEADER];
        let mut head = &mut buf[..];
        framing.header(first, &mut head);
        let used = MAX_HEADER - head.len();
        out.put_slice(&buf[..used]);
    };
    put_header(true, out);
    for (i, piece) in framing.pieces().enumerate() {
        if i > 0 {
            put_header(false, out);
        }
        out.put_shared(payload.slice(piece));
    }
    Ok(())
}

/// Appends a basic header in its shortest form. `csid` must be 2..=65599 (clamped).
fn put_basic_header(out: &mut impl BufMut, fmt: u8, csid: u32) {
    let csid = csid.clamp(2, 65599);
    match csid {
        2..=63 => out.put_u8(fmt << 6 | csid as u8),
        64..=319 => {
            out.put_u8(fmt << 6);
            out.put_u8((csid - 64) as u8);
        }
        _ => {
            out.put_u8(fmt << 6 | 1);
            out.put_u16_le((csid - 64) as u16);
        }
    }
}

#[cfg(test)]
#[path = "chunk_tests.rs"]
mod tests;
