//! The media on a relay link, after the handshake: length-prefixed messages carrying the
//! hub's frames exactly as they are (codec, timestamps, keyframe flag, payload) with their
//! track info, so nothing is converted to cross nodes.
//!
//! `u32 length (of type + body) | u8 type | body`, big-endian:
//! - 1 info: `u8 track (0 video, 1 audio)` + [`WireInfo`] as JSON
//! - 2 frame: `u8 track | u8 flags (1: keyframe) | i64 dts | i64 pts (ns)` + payload
//! - 3 keyframe request (edge → origin), 4 end (UTF-8 reason), 5 ping: no body / reason only

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::media::{AudioInfo, Codec, TrackInfo, TrackKind, Ts, VideoInfo};

/// The largest message taken (a frame is bounded well below by every ingest).
pub const MAX_MESSAGE: usize = 16 << 20;
/// The largest codec configuration (avcC, AudioSpecificConfig) taken.
const MAX_CONFIG: usize = 64 << 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message of {0} bytes is over the {MAX_MESSAGE}-byte bound")]
    TooLong(usize),
    #[error("empty message")]
    Empty,
    #[error("unknown message type {0}")]
    UnknownType(u8),
    #[error("truncated {0} message")]
    Truncated(&'static str),
    #[error("bad track info: {0}")]
    BadInfo(String),
    #[error("connection: {0}")]
    Io(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Info(TrackInfo),
    Frame { kind: TrackKind, keyframe: bool, dts: Ts, pts: Ts, data: Bytes },
    Keyframe,
    End(String),
    Ping,
}

/// A track's info as it crosses nodes (the configuration in hex; JSON for its rarity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct WireInfo {
    codec: Codec,
    #[serde(default)]
    width: u32,
    #[serde(default)]
    height: u32,
    #[serde(default)]
    fps: Option<f64>,
    #[serde(default)]
    bframes: bool,
    #[serde(default)]
    sample_rate: u32,
    #[serde(default)]
    channels: u8,
    #[serde(default)]
    config: Option<String>,
}

/// A track's byte on the wire: its [`TrackKind::index`].
fn slot(kind: TrackKind) -> u8 {
    kind.index() as u8
}

fn kind_of(slot: u8) -> Option<TrackKind> {
    TrackKind::ALL.get(usize::from(slot)).copied()
}

impl Message {
    /// A frame message for `frame` (its info goes separately, when it changes).
    pub fn frame(frame: &crate::media::Frame) -> Message {
        Message::Frame {
            kind: frame.kind(),
            keyframe: frame.keyframe,
            dts: frame.dts,
            pts: frame.pts,
            data: frame.data.clone(),
        }
    }

    pub fn encode(&self, out: &mut BytesMut) {
        let (kind, body): (u8, Vec<u8>) = match self {
            Message::Info(info) => {
                let mut body = vec![slot(info.kind())];
                body.extend(serde_json::to_vec(&to_wire(info)).unwrap_or_default());
                (1, body)
            }
            Message::Frame { kind, keyframe, dts, pts, data } => {
                out.reserve(data.len() + 23);
                out.put_u32((data.len() + 19) as u32);
                out.put_u8(2);
                out.put_u8(slot(*kind));
                out.put_u8(u8::from(*keyframe));
                out.put_i64(dts.0);
                out.put_i64(pts.0);
                out.put_slice(data);
                return;
            }
            Message::Keyframe => (3, Vec::new()),
            Message::End(reason) => (4, reason.as_bytes().to_vec()),
            Message::Ping => (5, Vec::new()),
        };
        out.put_u32((body.len() + 1) as u32);
        out.put_u8(kind);
        out.put_slice(&body);
    }

    /// Decodes one message's type and body (the length prefix already read and bounded).
    pub fn decode(kind: u8, mut body: Bytes) -> Result<Message, WireError> {
        match kind {
            1 => {
                if body.is_empty() {
                    return Err(WireError::Truncated("info"));
                }
                let track = kind_of(body.get_u8()).ok_or_else(|| WireError::BadInfo("unknown track".into()))?;
                let wire: WireInfo = serde_json::from_slice(&body).map_err(|e| WireError::BadInfo(e.to_string()))?;
                Ok(Message::Info(from_wire(track, wire)?))
            }
            2 => {
                if body.len() < 18 {
                    return Err(WireError::Truncated("frame"));
                }
                let kind = kind_of(body.get_u8()).ok_or(WireError::Truncated("frame"))?;
                let keyframe = body.get_u8() & 1 == 1;
                let dts = Ts(body.get_i64());
                let pts = Ts(body.get_i64());
                Ok(Message::Frame { kind, keyframe, dts, pts, data: body })
            }
            3 => Ok(Message::Keyframe),
            4 => Ok(Message::End(String::from_utf8_lossy(&body).into_owned())),
            5 => Ok(Message::Ping),
            other => Err(WireError::UnknownType(other)),
        }
    }
}

/// Splits one message off the front of `buf`: the message and the bytes it took, or None
/// when `buf` does not hold a whole one yet.
pub fn parse(buf: &[u8]) -> Result<Option<(Message, usize)>, WireError> {
    let Some(head) = buf.get(..4) else { return Ok(None) };
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len == 0 {
        return Err(WireError::Empty);
    }
    if len > MAX_MESSAGE {
        return Err(WireError::TooLong(len));
    }
    let Some(message) = buf.get(4..4 + len) else { return Ok(None) };
    let decoded = Message::decode(message[0], Bytes::copy_from_slice(&message[1..]))?;
    Ok(Some((decoded, 4 + len)))
}

/// Reads one message.
pub async fn read(reader: &mut (impl AsyncRead + Unpin)) -> Result<Message, WireError> {
    let io = |e: std::io::Error| WireError::Io(e.to_string());
    let len = reader.read_u32().await.map_err(io)? as usize;
    if len == 0 {
        return Err(WireError::Empty);
    }
    if len > MAX_MESSAGE {
        return Err(WireError::TooLong(len));
    }
    let kind = reader.read_u8().await.map_err(io)?;
    let mut body = BytesMut::zeroed(len - 1);
    reader.read_exact(&mut body).await.map_err(io)?;
    Message::decode(kind, body.freeze())
}

fn to_wire(info: &TrackInfo) -> WireInfo {
    let config = info.config().map(|c| crate::auth::secret::hex(c));
    match info {
        TrackInfo::Video(v) => WireInfo {
            codec: v.codec,
            width: v.width,
            height: v.height,
            fps: v.fps,
            bframes: v.bframes,
            sample_rate: 0,
            channels: 0,
            config,
        },
        TrackInfo::Audio(a) => WireInfo {
            codec: a.codec,
            width: 0,
            height: 0,
            fps: None,
            bframes: false,
            sample_rate: a.sample_rate,
            channels: a.channels,
            config,
        },
    }
}

/// Checks what a peer says about a track as an ingest would: the codec fits the track, the
/// numbers are plausible, an H.264 configuration parses.
fn from_wire(track: TrackKind, w: WireInfo) -> Result<TrackInfo, WireError> {
    let bad = |why: &str| Err(WireError::BadInfo(why.to_string()));
    if w.codec.kind() != track {
        return bad("codec of the other track kind");
    }
    let config = match w.config {
        Some(hex) if hex.len() / 2 > MAX_CONFIG => return bad("configuration too long"),
        Some(hex) => Some(Bytes::from(
            crate::auth::secret::unhex(&hex).ok_or_else(|| WireError::BadInfo("configuration not hex".into()))?,
        )),
        None => None,
    };
    match track {
        TrackKind::Video => {
            if w.width > 16384 || w.height > 16384 || w.fps.is_some_and(|f| !(0.0..=1000.0).contains(&f)) {
                return bad("picture size or rate out of range");
            }
            if let (Codec::H264, Some(c)) = (w.codec, &config) {
                crate::media::h264::AvcConfig::parse(c).map_err(|e| WireError::BadInfo(format!("avcC: {e}")))?;
            }
            let info =
                VideoInfo { codec: w.codec, width: w.width, height: w.height, fps: w.fps, config, bframes: w.bframes };
            Ok(TrackInfo::Video(info))
        }
        TrackKind::Audio => {
            if w.sample_rate > 384_000 || w.channels > 8 {
                return bad("sample rate or channels out of range");
            }
            let info = AudioInfo { codec: w.codec, sample_rate: w.sample_rate, channels: w.channels, config };
            Ok(TrackInfo::Audio(info))
        }
    }
}

/// The newest info sent per track, so an info message goes only when it changes.
#[derive(Default)]
pub struct SentInfo([Option<Arc<TrackInfo>>; 2]);

impl SentInfo {
    /// True (and remembered) when `info` is not what was sent last for its track.
    pub fn changed(&mut self, info: &Arc<TrackInfo>) -> bool {
        let last = &mut self.0[info.kind().index()];
        if last.as_ref().is_some_and(|l| Arc::ptr_eq(l, info) || l == info) {
            return false;
        }
        *last = Some(info.clone());
        true
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
