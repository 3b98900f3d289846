//! FLV file framing: the 9-byte header, 11-byte tag headers and PreviousTagSize fields.
use bytes::{Buf, BufMut, Bytes, BytesMut};
use tracing::{debug, error};

use super::{check_size, FlvError, FlvTag, TagKind};
use crate::hub::outbox::Outbox;

const HEADER_LEN: usize = 9;
const TAG_HEADER_LEN: usize = 11;
/// Largest data offset accepted in a file header (the header is 9 bytes; allow extensions).
const MAX_HEADER_LEN: usize = 1024;
/// The largest body an FLV tag header can state.
const MAX_TAG_SIZE: usize = 0xff_ffff;

/// The FLV file header (9 bytes) and PreviousTagSize0.
pub fn file_header(has_audio: bool, has_video: bool) -> Bytes {
    let flags = (u8::from(has_audio) << 2) | u8::from(has_video);
    Bytes::copy_from_slice(&[b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0])
}

/// One FLV file tag: 11-byte header, `body`, PreviousTagSize. Bodies made by this module
/// always fit; a body over FLV's 16 MiB limit cannot be framed and gives an empty result
/// (the tag is left out, logged), so the file stays valid.
pub fn file_tag(kind: TagKind, timestamp_ms: u32, body: &[u8]) -> Bytes {
    if body.len() > MAX_TAG_SIZE {
        error!(size = body.len(), "FLV tag body too large to frame; tag left out");
        return Bytes::new();
    }
    let size = body.len() as u32;
    let mut out = BytesMut::with_capacity(TAG_HEADER_LEN + body.len() + 4);
    out.put_u8(kind.type_id());
    out.put_slice(&size.to_be_bytes()[1..]);
    out.put_slice(&timestamp_ms.to_be_bytes()[1..]);
    out.put_u8((timestamp_ms >> 24) as u8);
    out.put_slice(&[0, 0, 0]); // stream id
    out.put_slice(body);
    out.put_u32(size + TAG_HEADER_LEN as u32);
    out.freeze()
}

/// [`file_tag`] into a viewer's [`Outbox`]: the header and PreviousTagSize are the viewer's
/// own bytes, `body` is shared (not copied). An over-long body is left out, as there.
pub fn put_file_tag(out: &mut Outbox, kind: TagKind, timestamp_ms: u32, body: &Bytes) {
    if body.len() > MAX_TAG_SIZE {
        error!(size = body.len(), "FLV tag body too large to frame; tag left out");
        return;
    }
    let size = body.len() as u32;
    let mut header = [0u8; TAG_HEADER_LEN];
    header[0] = kind.type_id();
    header[1..4].copy_from_slice(&size.to_be_bytes()[1..]);
    header[4..7].copy_from_slice(&timestamp_ms.to_be_bytes()[1..]);
    header[7] = (timestamp_ms >> 24) as u8;
    out.put_slice(&header);
    out.put_shared(body.clone());
    out.put_slice(&(size + TAG_HEADER_LEN as u32).to_be_bytes());
}

/// What an FLV file header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlvHeader {
    pub has_audio: bool,
    pub has_video: bool,
}

/// Reads an FLV byte stream (sans-IO): push bytes in with [`FlvReader::push`], take tags
/// out with [`FlvReader::next_tag`] until it returns `Ok(None)`. Tag sizes are checked
/// against [`TagKind::max_body`] before their bodies are buffered; tags of other types are
/// skipped.
#[derive(Debug, Default)]
pub struct FlvReader {
    buf: BytesMut,
    header: Option<FlvHeader>,
    skipped: u64,
}

impl FlvReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The file header, once read.
    pub fn header(&self) -> Option<FlvHeader> {
        self.header
    }

    /// Bytes received but not yet returned as tags.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Tags of types other than audio, video and script that were skipped.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The next complete tag, `Ok(None)` when more bytes are needed. After an error the
    /// stream cannot be resynchronized.
    pub fn next_tag(&mut self) -> Result<Option<FlvTag>, FlvError> {
        if self.header.is_none() && !self.read_header()? {
            return Ok(None);
        }
        loop {
            if self.buf.len() < TAG_HEADER_LEN {
                return Ok(None);
            }
            let h = &self.buf[..TAG_HEADER_LEN];
            if h[0] & 0x20 != 0 {
                return Err(FlvError::Unsupported("encrypted FLV tags".into()));
            }
            let type_id = h[0] & 0x1f;
            let size = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
            let timestamp = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
            let kind = TagKind::from_type_id(type_id);
            match kind {
                Some(kind) => check_size(kind, size)?,
                None if size > TagKind::Video.max_body() => {
                    return Err(FlvError::Malformed(format!("tag type {type_id} of {size} bytes")))
                }
                None => {}
            }
            let total = TAG_HEADER_LEN + size + 4;
            if self.buf.len() < total {
                return Ok(None);
            }
            let mut tag = self.buf.split_to(total);
            let previous_size = (&tag[TAG_HEADER_LEN + size..]).get_u32();
            if previous_size as usize != TAG_HEADER_LEN + size {
                debug!(previous_size, size, "FLV PreviousTagSize does not match the tag");
            }
            tag.advance(TAG_HEADER_LEN);
            tag.truncate(size);
            match kind {
                Some(kind) => return Ok(Some(FlvTag { kind, timestamp, body: tag.freeze() })),
                None => self.skipped += 1,
            }
        }
    }

    /// Reads the file header and PreviousTagSize0; false when more bytes are needed.
    fn read_header(&mut self) -> Result<bool, FlvError> {
        let Some(head) = self.buf.get(..HEADER_LEN) else {
            if !b"FLV".starts_with(&self.buf[..self.buf.len().min(3)]) {
                return Err(FlvError::Malformed("not an FLV stream (no `FLV` signature)".into()));
            }
            return Ok(false);
        };
        if &head[..3] != b"FLV" {
            return Err(FlvError::Malformed("not an FLV stream (no `FLV` signature)".into()));
        }
        if head[3] != 1 {
            return Err(FlvError::Unsupported(format!("FLV version {}", head[3])));
        }
        let header = FlvHeader { has_audio: head[4] & 0x04 != 0, has_video: head[4] & 0x01 != 0 };
        let offset = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) as usize;
        if !(HEADER_LEN..=MAX_HEADER_LEN).contains(&offset) {
            return Err(FlvError::Malformed(format!("FLV header size {offset}")));
        }
        if self.buf.len() < offset + 4 {
            return Ok(false);
        }
        self.buf.advance(offset + 4);
        self.header = Some(header);
        Ok(true)
    }
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
