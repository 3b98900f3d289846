//! Audio and video tag bodies: parsing (ingest) and building (egress).
use bytes::{BufMut, Bytes, BytesMut};

use super::{check_size, FlvError, TagKind};
use crate::media::aac::build_asc;
use crate::media::{Codec, Frame, TrackInfo};

const CODEC_AVC: u8 = 7;
const SOUND_AAC: u8 = 10;
/// AAC, "44 kHz", 16-bit, stereo: the FLV spec fixes these fields for AAC whatever the stream.
const AAC_SOUND_BYTE: u8 = (SOUND_AAC << 4) | 0x0f;

/// A video tag body, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoTag {
    /// AVC sequence header: the avcC record.
    AvcSequenceHeader(Bytes),
    /// AVC access unit (AVCC NAL units as sent).
    AvcNalu {
        /// FLV frame type 1 (keyframe) or 4 (generated keyframe).
        keyframe: bool,
        /// Composition time offset in ms: pts − dts.
        composition_ms: i32,
        data: Bytes,
    },
    AvcEndOfSequence,
    /// Video info/command frame (frame type 5): carries no picture.
    Command,
}

/// An audio tag body, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioTag {
    /// AAC sequence header: the AudioSpecificConfig, and FLV's stereo flag.
    AacSequenceHeader { config: Bytes, stereo: bool },
    /// One raw AAC access unit.
    AacRaw(Bytes),
}

fn video_codec_name(id: u8) -> String {
    match id {
        2 => "Sorenson H.263 video".into(),
        3 => "Screen video".into(),
        4 => "On2 VP6 video".into(),
        5 => "On2 VP6 video with alpha".into(),
        6 => "Screen video v2".into(),
        12 => "HEVC video (FLV codec id 12)".into(),
        13 => "AV1 video (FLV codec id 13)".into(),
        other => format!("FLV video codec id {other}"),
    }
}

fn sound_format_name(id: u8) -> &'static str {
    match id {
        0 => "linear PCM audio (platform endian)",
        1 => "ADPCM audio",
        2 => "MP3 audio",
        3 => "linear PCM audio (little endian)",
        4 => "Nellymoser 16 kHz audio",
        5 => "Nellymoser 8 kHz audio",
        6 => "Nellymoser audio",
        7 => "G.711 A-law audio",
        8 => "G.711 mu-law audio",
        11 => "Speex audio",
        14 => "MP3 8 kHz audio",
        15 => "device-specific audio",
        _ => "an unknown FLV sound format",
    }
}

fn fourcc(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| if b.is_ascii_graphic() { b as char } else { '?' }).collect()
}

/// Parses a video tag body. Non-AVC codecs (including enhanced-RTMP HEVC/AV1/VP9) are
/// [`FlvError::Unsupported`].
pub fn parse_video(body: &Bytes) -> Result<VideoTag, FlvError> {
    check_size(TagKind::Video, body.len())?;
    let first = *body.first().ok_or_else(|| FlvError::Malformed("empty video tag".into()))?;
    if first & 0x80 != 0 {
        let name = body.get(1..5).map_or_else(|| "?".into(), fourcc);
        return Err(FlvError::Unsupported(format!("enhanced RTMP video (FourCC `{name}`)")));
    }
    let frame_type = first >> 4;
    let codec = first & 0x0f;
    if codec != CODEC_AVC {
        return Err(FlvError::Unsupported(video_codec_name(codec)));
    }
    if frame_type == 5 {
        return Ok(VideoTag::Command);
    }
    let head = body.get(1..5).ok_or_else(|| FlvError::Malformed("AVC tag shorter than 5 bytes".into()))?;
    let raw = (i32::from(head[1]) << 16) | (i32::from(head[2]) << 8) | i32::from(head[3]);
    let composition_ms = (raw << 8) >> 8; // sign-extend 24 bits
    match head[0] {
        0 => Ok(VideoTag::AvcSequenceHeader(body.slice(5..))),
        1 => Ok(VideoTag::AvcNalu {
            keyframe: frame_type == 1 || frame_type == 4,
            composition_ms,
            data: body.slice(5..),
        }),
        2 => Ok(VideoTag::AvcEndOfSequence),
        other => Err(FlvError::Malformed(format!("AVC packet type {other}"))),
    }
}

/// Parses an audio tag body. Non-AAC formats are [`FlvError::Unsupported`].
pub fn parse_audio(body: &Bytes) -> Result<AudioTag, FlvError> {
    check_size(TagKind::Audio, body.len())?;
    let first = *body.first().ok_or_else(|| FlvError::Malformed("empty audio tag".into()))?;
    let format = first >> 4;
    if format == 9 {
        let name = body.get(1..5).map_or_else(|| "?".into(), fourcc);
        return Err(FlvError::Unsupported(format!("enhanced RTMP audio (FourCC `{name}`)")));
    }
    if format != SOUND_AAC {
        return Err(FlvError::Unsupported(sound_format_name(format).into()));
    }
    match body.get(1) {
        Some(0) => Ok(AudioTag::AacSequenceHeader { config: body.slice(2..), stereo: first & 1 == 1 }),
        Some(1) => Ok(AudioTag::AacRaw(body.slice(2..))),
        Some(other) => Err(FlvError::Malformed(format!("AAC packet type {other}"))),
        None => Err(FlvError::Malformed("AAC tag shorter than 2 bytes".into())),
    }
}

/// The composition time of a frame in ms (pts − dts, on the millisecond grid of the tag
/// timestamp), clamped to FLV's signed 24 bits.
fn composition_ms(frame: &Frame) -> i32 {
    let cts = frame.pts.as_millis() - frame.dts.as_millis();
    cts.clamp(-0x80_0000, 0x7f_ffff) as i32
}

fn put_avc_head(out: &mut BytesMut, keyframe: bool, packet_type: u8, cts: i32) {
    out.put_u8(if keyframe { 0x10 } else { 0x20 } | CODEC_AVC);
    out.put_u8(packet_type);
    let cts = cts.to_be_bytes();
    out.put_slice(&cts[1..]);
}

fn unsupported_codec(codec: Codec) -> FlvError {
    FlvError::Unsupported(format!("{codec} cannot be carried in FLV (only h264 and aac)"))
}

/// The FLV tag body (= RTMP message payload) for a frame: an AVC NALU packet with its
/// keyframe flag and composition time, or an AAC raw packet. Other codecs are
/// [`FlvError::Unsupported`].
pub fn tag_body(frame: &Frame) -> Result<Bytes, FlvError> {
    let (kind, head_len) = match frame.codec() {
        Codec::H264 => (TagKind::Video, 5),
        Codec::Aac => (TagKind::Audio, 2),
        other => return Err(unsupported_codec(other)),
    };
    check_size(kind, head_len + frame.data.len())?;
    let mut out = BytesMut::with_capacity(head_len + frame.data.len());
    if kind == TagKind::Video {
        put_avc_head(&mut out, frame.keyframe, 1, composition_ms(frame));
    } else {
        out.put_slice(&[AAC_SOUND_BYTE, 1]);
    }
    out.put_slice(&frame.data);
    Ok(out.freeze())
}

/// [`tag_body`], made once per frame and kept in `frame.flv_tag` so that every FLV/RTMP
/// viewer shares the same bytes.
pub fn cached_tag_body(frame: &Frame) -> Result<&Bytes, FlvError> {
    if let Some(body) = frame.flv_tag.get() {
        return Ok(body);
    }
    let body = tag_body(frame)?;
    Ok(frame.flv_tag.get_or_init(|| body))
}

/// The sequence header tag body for a track: AVC (the avcC) or AAC (the AudioSpecificConfig;
/// built from rate and channels when the info has none).
pub fn sequence_header(info: &TrackInfo) -> Result<Bytes, FlvError> {
    let mut out = BytesMut::new();
    match info {
        TrackInfo::Video(v) if v.codec == Codec::H264 => {
            let config = v.config.as_ref().ok_or(FlvError::MissingConfig(Codec::H264))?;
            put_avc_head(&mut out, true, 0, 0);
            out.put_slice(config);
        }
        TrackInfo::Audio(a) if a.codec == Codec::Aac => {
            let config = match &a.config {
                Some(c) => c.clone(),
                None => build_asc(a.sample_rate, a.channels)?,
            };
            out.put_slice(&[AAC_SOUND_BYTE, 0]);
            out.put_slice(&config);
        }
        other => return Err(unsupported_codec(other.codec())),
    }
    check_size(info.kind().into(), out.len())?;
    Ok(out.freeze())
}

/// The AVC end-of-sequence tag body (sent by some servers before a stream ends).
pub fn end_of_sequence_body() -> Bytes {
    let mut out = BytesMut::with_capacity(5);
    put_avc_head(&mut out, true, 2, 0);
    out.freeze()
}

#[cfg(test)]
#[path = "tag_tests.rs"]
mod tests;
