//! Audio, video and data messages: what sessions hand out, and the shared pre-encoding of
//! outgoing media for many players at once.

use bytes::{Buf, Bytes, BytesMut};

use super::chunk::{msg_type, write_message};

/// The chunk size we always announce (Set Chunk Size) right after `connect`, and use for
/// everything we send from then on.
pub const OUT_CHUNK_SIZE: u32 = 4096;
/// The message stream id we always give `createStream`, and so the one media is sent on.
pub const MEDIA_STREAM_ID: u32 = 1;
/// Chunk stream ids we send media on.
pub const CSID_AUDIO: u32 = 4;
pub const CSID_DATA: u32 = 5;
pub const CSID_VIDEO: u32 = 6;

/// What a media message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Message type 8: one FLV audio tag body.
    Audio,
    /// Message type 9: one FLV video tag body.
    Video,
    /// Message type 18: AMF0 data, e.g. `@setDataFrame`/`onMetaData` (raw AMF0 bytes).
    Data,
}

impl MediaKind {
    /// The RTMP message type id.
    pub fn type_id(self) -> u8 {
        match self {
            MediaKind::Audio => msg_type::AUDIO,
            MediaKind::Video => msg_type::VIDEO,
            MediaKind::Data => msg_type::DATA_AMF0,
        }
    }

    /// The kind of a message type id (AMF3 data counts as data), if it is media.
    pub fn from_type_id(type_id: u8) -> Option<MediaKind> {
        match type_id {
            msg_type::AUDIO => Some(MediaKind::Audio),
            msg_type::VIDEO => Some(MediaKind::Video),
            msg_type::DATA_AMF0 | msg_type::DATA_AMF3 => Some(MediaKind::Data),
            _ => None,
        }
    }

    /// The chunk stream id we send this kind on.
    pub fn csid(self) -> u32 {
        match self {
            MediaKind::Audio => CSID_AUDIO,
            MediaKind::Video => CSID_VIDEO,
            MediaKind::Data => CSID_DATA,
        }
    }
}

/// One audio, video or data message.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaMessage {
    pub kind: MediaKind,
    /// Milliseconds, extended timestamps resolved, absolute within the message stream.
    pub timestamp: u32,
    /// The message body: an FLV tag body for audio/video, AMF0 bytes for data.
    pub payload: Bytes,
}

/// A complete chunked message (format 0 then format 3 continuations, our fixed chunk stream
/// id for `kind`, message stream id 1, chunk size [`OUT_CHUNK_SIZE`]) that can be written
/// unchanged to every playing connection of ours. A payload too long for RTMP (16 MiB or
/// more) gives empty bytes and a warning.
pub fn encode_media_chunks(kind: MediaKind, timestamp: u32, payload: &[u8]) -> Bytes {
    encode_media_on(MEDIA_STREAM_ID, kind, timestamp, payload)
}

/// Like [`encode_media_chunks`] on another message stream id.
pub(crate) fn encode_media_on(stream_id: u32, kind: MediaKind, timestamp: u32, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    match write_message(&mut out, OUT_CHUNK_SIZE, kind.csid(), kind.type_id(), stream_id, timestamp, payload) {
        Ok(()) => out.freeze(),
        Err(e) => {
            tracing::warn!(error = %e, ?kind, "RTMP media message dropped");
            Bytes::new()
        }
    }
}

/// Splits an aggregate message (type 22: FLV-tag-like sub-messages, each followed by a back
/// pointer) into media messages. Sub-message times are rebased on the aggregate's timestamp.
/// Unknown sub-message types are skipped; a malformed tail ends the list.
pub fn split_aggregate(timestamp: u32, payload: &Bytes) -> Vec<MediaMessage> {
    let mut rest = payload.clone();
    let mut out = Vec::new();
    let mut first_ts = None;
    while rest.len() >= 11 {
        let type_id = rest[0];
        let size = u32::from_be_bytes([0, rest[1], rest[2], rest[3]]) as usize;
        let ts = u32::from_be_bytes([rest[7], rest[4], rest[5], rest[6]]);
        if rest.len() < 11 + size {
            tracing::debug!("RTMP aggregate message truncated");
            break;
        }
        rest.advance(11);
        let body = rest.split_to(size);
        rest.advance(rest.len().min(4));
        let base = *first_ts.get_or_insert(ts);
        if let Some(kind) = MediaKind::from_type_id(type_id) {
            let timestamp = timestamp.wrapping_add(ts.wrapping_sub(base));
            out.push(MediaMessage { kind, timestamp, payload: body });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::rtmp::chunk::ChunkDecoder;
    use bytes::BufMut;

    #[test]
    fn encoded_media_decodes_with_our_chunk_size() {
        let payload: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let wire = encode_media_chunks(MediaKind::Video, 0x0100_0000, &payload);
        let mut dec = ChunkDecoder::new();
        dec.set_chunk_size(OUT_CHUNK_SIZE).unwrap();
        let mut input = BytesMut::from(&wire[..]);
        let m = dec.decode(&mut input).unwrap().unwrap();
        assert_eq!((m.csid, m.type_id, m.stream_id, m.timestamp), (6, 9, 1, 0x0100_0000));
        assert_eq!(&m.payload[..], &payload[..]);
        assert!(input.is_empty());
        assert!(encode_media_chunks(MediaKind::Audio, 0, &vec![0; 1 << 24]).is_empty());
    }

    #[test]
    fn aggregate_is_split_and_rebased() {
        let mut agg = BytesMut::new();
        for (t, ts, body) in [(9u8, 5000u32, &b"vid"[..]), (8, 5020, &b"au"[..]), (99, 5030, &b"?"[..])] {
            agg.put_u8(t);
            agg.put_uint(body.len() as u64, 3);
            agg.put_uint(u64::from(ts & 0xFF_FFFF), 3);
            agg.put_u8((ts >> 24) as u8);
            agg.put_uint(1, 3);
            agg.put_slice(body);
            agg.put_u32(11 + body.len() as u32);
        }
        let msgs = split_aggregate(100, &agg.freeze());
        assert_eq!(msgs.len(), 2);
        assert_eq!((msgs[0].kind, msgs[0].timestamp, &msgs[0].payload[..]), (MediaKind::Video, 100, &b"vid"[..]));
        assert_eq!((msgs[1].kind, msgs[1].timestamp, &msgs[1].payload[..]), (MediaKind::Audio, 120, &b"au"[..]));
    }
}
