//! RTMP messages above the chunk layer: protocol control, user control, commands and media,
//! parsed from [`RawMessage`]s and written through a [`Writer`].

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::amf::{self, Amf0Value};
use super::chunk::{msg_type, write_message, RawMessage, DEFAULT_CHUNK_SIZE};
use super::error::{ChunkError, RtmpError};
use super::media::{split_aggregate, MediaKind, MediaMessage};

/// Chunk stream ids for what is not media.
pub const CSID_CONTROL: u32 = 2;
pub const CSID_COMMAND: u32 = 3;

/// User Control event types.
pub mod user_event {
    pub const STREAM_BEGIN: u16 = 0;
    pub const STREAM_EOF: u16 = 1;
    pub const SET_BUFFER_LENGTH: u16 = 3;
    pub const PING_REQUEST: u16 = 6;
    pub const PING_RESPONSE: u16 = 7;
}

/// An AMF command (`connect`, `publish`, `_result`, `onStatus`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: String,
    pub transaction_id: f64,
    /// The command object (often `Null`).
    pub object: Amf0Value,
    /// The values after the command object.
    pub args: Vec<Amf0Value>,
    /// The message stream id it came on.
    pub stream_id: u32,
}

impl Command {
    /// The first argument as a string (e.g. the stream name of `publish`/`play`).
    pub fn arg_str(&self, i: usize) -> Option<&str> {
        self.args.get(i).and_then(Amf0Value::as_str)
    }
}

/// A parsed message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    SetChunkSize(u32),
    Abort(u32),
    Ack(u32),
    WindowAckSize(u32),
    SetPeerBandwidth {
        size: u32,
        limit: u8,
    },
    UserControl {
        event: u16,
        value: u32,
    },
    Command(Command),
    Media(MediaMessage),
    /// The media inside an aggregate message.
    Aggregate(Vec<MediaMessage>),
    /// Anything else (shared objects, unknown types): ignored by the sessions.
    Other(u8),
}

fn be_u32(p: &[u8], type_id: u8) -> Result<u32, ChunkError> {
    match p.get(..4) {
        Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(ChunkError::ShortControl { type_id, len: p.len() }),
    }
}

/// Parses a whole message.
pub fn parse(raw: RawMessage) -> Result<Message, RtmpError> {
    let p = &raw.payload;
    let t = raw.type_id;
    Ok(match t {
        // The top bit of Set Chunk Size must be 0; the chunk layer checks the range.
        msg_type::SET_CHUNK_SIZE => Message::SetChunkSize(be_u32(p, t)?),
        msg_type::ABORT => Message::Abort(be_u32(p, t)?),
        msg_type::ACK => Message::Ack(be_u32(p, t)?),
        msg_type::WINDOW_ACK_SIZE => Message::WindowAckSize(be_u32(p, t)?),
        msg_type::SET_PEER_BANDWIDTH => {
            Message::SetPeerBandwidth { size: be_u32(p, t)?, limit: p.get(4).copied().unwrap_or(2) }
        }
        msg_type::USER_CONTROL => {
            if p.len() < 2 {
                return Err(ChunkError::ShortControl { type_id: t, len: p.len() }.into());
            }
            let event = u16::from_be_bytes([p[0], p[1]]);
            // Events carry at least a 4-byte value; tolerate a missing one.
            let value = be_u32(&p[2..], t).unwrap_or(0);
            Message::UserControl { event, value }
        }
        msg_type::COMMAND_AMF0 | msg_type::COMMAND_AMF3 => {
            let mut body: &[u8] = p;
            if t == msg_type::COMMAND_AMF3 && body.first() == Some(&0) {
                body = &body[1..];
            }
            Message::Command(parse_command(body, raw.stream_id)?)
        }
        msg_type::AUDIO | msg_type::VIDEO | msg_type::DATA_AMF0 | msg_type::DATA_AMF3 => {
            let mut payload = raw.payload.clone();
            if t == msg_type::DATA_AMF3 && payload.first() == Some(&0) {
                payload.advance(1);
            }
            let kind = MediaKind::from_type_id(t).unwrap_or(MediaKind::Data);
            Message::Media(MediaMessage { kind, timestamp: raw.timestamp, payload })
        }
        msg_type::AGGREGATE => Message::Aggregate(split_aggregate(raw.timestamp, &raw.payload)),
        other => Message::Other(other),
    })
}

fn parse_command(body: &[u8], stream_id: u32) -> Result<Command, RtmpError> {
    let mut values = amf::read_values(body)?.into_iter();
    let name = match values.next() {
        Some(Amf0Value::String(s)) => s,
        other => return Err(RtmpError::Protocol(format!("command message without a name (first value {other:?})"))),
    };
    let transaction_id = values.next().and_then(|v| v.as_f64()).unwrap_or(0.0);
    let object = values.next().unwrap_or(Amf0Value::Null);
    Ok(Command { name, transaction_id, object, args: values.collect(), stream_id })
}

/// Outgoing bytes of one connection, chunked with the size we announced.
#[derive(Debug)]
pub struct Writer {
    out: BytesMut,
    chunk_size: u32,
}

impl Default for Writer {
    fn default() -> Self {
        Writer { out: BytesMut::new(), chunk_size: DEFAULT_CHUNK_SIZE }
    }
}

impl Writer {
    /// Bytes waiting to be sent.
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.out
    }

    /// The chunk size we send with.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    fn message(&mut self, csid: u32, type_id: u8, stream_id: u32, ts: u32, payload: &[u8]) {
        if let Err(e) = write_message(&mut self.out, self.chunk_size, csid, type_id, stream_id, ts, payload) {
            tracing::warn!(error = %e, type_id, "RTMP message not sent");
        }
    }

    fn control(&mut self, type_id: u8, payload: &[u8]) {
        self.message(CSID_CONTROL, type_id, 0, 0, payload);
    }

    /// Sends Set Chunk Size and uses the new size from then on.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.control(msg_type::SET_CHUNK_SIZE, &size.to_be_bytes());
        self.chunk_size = size;
    }

    pub fn window_ack_size(&mut self, size: u32) {
        self.control(msg_type::WINDOW_ACK_SIZE, &size.to_be_bytes());
    }

    pub fn ack(&mut self, sequence: u32) {
        self.control(msg_type::ACK, &sequence.to_be_bytes());
    }

    /// `limit`: 0 hard, 1 soft, 2 dynamic.
    pub fn set_peer_bandwidth(&mut self, size: u32, limit: u8) {
        let mut p = [0u8; 5];
        p[..4].copy_from_slice(&size.to_be_bytes());
        p[4] = limit;
        self.control(msg_type::SET_PEER_BANDWIDTH, &p);
    }

    pub fn user_control(&mut self, event: u16, value: u32) {
        let mut p = BytesMut::with_capacity(6);
        p.put_u16(event);
        p.put_u32(value);
        self.control(msg_type::USER_CONTROL, &p);
    }

    /// Set Buffer Length for `stream_id` (a player tells the server how much it buffers).
    pub fn set_buffer_length(&mut self, stream_id: u32, ms: u32) {
        let mut p = BytesMut::with_capacity(10);
        p.put_u16(user_event::SET_BUFFER_LENGTH);
        p.put_u32(stream_id);
        p.put_u32(ms);
        self.control(msg_type::USER_CONTROL, &p);
    }

    /// An AMF0 command message of `values` on `stream_id`.
    pub fn command(&mut self, stream_id: u32, values: &[Amf0Value]) {
        let mut p = BytesMut::new();
        amf::write_values(&mut p, values);
        self.message(CSID_COMMAND, msg_type::COMMAND_AMF0, stream_id, 0, &p);
    }

    /// A media message (audio/video body, or raw AMF0 data).
    pub fn media(&mut self, stream_id: u32, kind: MediaKind, ts: u32, payload: &[u8]) {
        self.message(kind.csid(), kind.type_id(), stream_id, ts, payload);
    }

    /// Appends bytes that are already chunked (e.g. from `encode_media_chunks`).
    pub fn raw(&mut self, chunks: &Bytes) {
        self.out.extend_from_slice(chunks);
    }
}

/// An `onStatus` info object.
pub fn status_object(level: &str, code: &str, description: &str) -> Amf0Value {
    Amf0Value::object([
        ("level", Amf0Value::string(level)),
        ("code", Amf0Value::string(code)),
        ("description", Amf0Value::string(description)),
    ])
}

/// `[name, txn, null, info]` as sent for `onStatus` (transaction 0).
pub fn on_status(level: &str, code: &str, description: &str) -> Vec<Amf0Value> {
    vec![
        Amf0Value::string("onStatus"),
        Amf0Value::Number(0.0),
        Amf0Value::Null,
        status_object(level, code, description),
    ]
}

/// Reads `(level, code, description)` from an info object, with empty strings for gaps.
pub fn read_status(info: &Amf0Value) -> (String, String, String) {
    let text = |k: &str| info.get(k).and_then(Amf0Value::as_str).unwrap_or_default().to_string();
    (text("level"), text("code"), text("description"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::rtmp::chunk::ChunkDecoder;

    fn read_back(w: &mut Writer, dec: &mut ChunkDecoder) -> Vec<Message> {
        let mut msgs = Vec::new();
        while let Some(raw) = dec.decode(w.buffer()).unwrap() {
            msgs.push(parse(raw).unwrap());
        }
        msgs
    }

    #[test]
    fn control_messages_round_trip() {
        let mut w = Writer::default();
        w.window_ack_size(2_500_000);
        w.set_peer_bandwidth(2_500_000, 2);
        w.user_control(user_event::PING_REQUEST, 77);
        w.ack(1234);
        let msgs = read_back(&mut w, &mut ChunkDecoder::new());
        assert_eq!(
            msgs,
            vec![
                Message::WindowAckSize(2_500_000),
                Message::SetPeerBandwidth { size: 2_500_000, limit: 2 },
                Message::UserControl { event: user_event::PING_REQUEST, value: 77 },
                Message::Ack(1234),
            ]
        );
    }

    #[test]
    fn command_round_trip_and_amf3_prefix() {
        let mut w = Writer::default();
        w.command(1, &[Amf0Value::string("play"), Amf0Value::Number(4.0), Amf0Value::Null, Amf0Value::string("k")]);
        let msgs = read_back(&mut w, &mut ChunkDecoder::new());
        let Message::Command(c) = &msgs[0] else { panic!("not a command: {msgs:?}") };
        assert_eq!((c.name.as_str(), c.transaction_id, c.stream_id, c.arg_str(0)), ("play", 4.0, 1, Some("k")));

        let mut body = vec![0u8];
        let mut amf0 = BytesMut::new();
        amf::write_values(&mut amf0, &[Amf0Value::string("connect"), Amf0Value::Number(1.0)]);
        body.extend_from_slice(&amf0);
        let raw = RawMessage { csid: 3, type_id: 17, stream_id: 0, timestamp: 0, payload: body.into() };
        let Message::Command(c) = parse(raw).unwrap() else { panic!("AMF3 command not parsed") };
        assert_eq!((c.name.as_str(), c.transaction_id, &c.object), ("connect", 1.0, &Amf0Value::Null));
    }

    #[test]
    fn malformed_messages_are_errors() {
        let raw = |t: u8, p: &[u8]| RawMessage {
            csid: 2,
            type_id: t,
            stream_id: 0,
            timestamp: 0,
            payload: Bytes::copy_from_slice(p),
        };
        assert!(parse(raw(1, &[0, 0])).is_err());
        assert!(parse(raw(4, &[0])).is_err());
        assert!(parse(raw(20, &[0x00, 0, 0, 0, 0, 0, 0, 0, 0])).is_err(), "number first");
        assert!(parse(raw(20, &[0x02, 0, 9, b'a'])).is_err(), "truncated AMF");
        assert_eq!(parse(raw(19, &[1, 2])).unwrap(), Message::Other(19));
    }
}
