//! MPEG-TS as H5 (JSMpeg) uses it: one program with MPEG-1 video and MPEG-1 Layer II audio.
//! Sans-IO: bytes in, packets or PES payloads out. HLS's MPEG-TS segments
//! ([`crate::protocols::hls::ts`]) reuse the muxer with H.264 and AAC stream types.
//!
//! - [`mux`]: PAT/PMT and PES packetization (PTS/DTS, PCR, adaptation-field stuffing,
//!   continuity counters), one PES per frame.
//! - [`demux`]: 188-byte packets in, program tables and whole PES packets out.

pub mod demux;
pub mod mux;
pub mod psi;

pub use psi::{crc32_mpeg2, stream_type_name, EsEntry};

/// Bytes in one transport packet.
pub const PACKET_SIZE: usize = 188;
/// Payload bytes in a packet without adaptation field.
pub const PAYLOAD_SIZE: usize = 184;
/// The first byte of every packet.
pub const SYNC_BYTE: u8 = 0x47;

/// The PID of the program association table.
pub const PAT_PID: u16 = 0x0000;
/// The PID our muxer gives the program map table.
pub const PMT_PID: u16 = 0x1000;
/// The PID our muxer gives the video elementary stream.
pub const VIDEO_PID: u16 = 0x0100;
/// The PID our muxer gives the audio elementary stream.
pub const AUDIO_PID: u16 = 0x0101;
/// The program number of our one program.
pub const PROGRAM_NUMBER: u16 = 1;

/// PMT stream_type of ISO/IEC 11172-2 (MPEG-1) video.
pub const STREAM_TYPE_MPEG1_VIDEO: u8 = 0x01;
/// PMT stream_type of ISO/IEC 13818-2 (MPEG-2) video; ffmpeg also writes it for MPEG-1.
pub const STREAM_TYPE_MPEG2_VIDEO: u8 = 0x02;
/// PMT stream_type of ISO/IEC 11172-3 (MPEG-1) audio.
pub const STREAM_TYPE_MPEG1_AUDIO: u8 = 0x03;
/// PMT stream_type of ISO/IEC 13818-3 (MPEG-2) audio.
pub const STREAM_TYPE_MPEG2_AUDIO: u8 = 0x04;

/// PMT stream_type of ISO/IEC 13818-7 AAC audio in ADTS frames (HLS).
pub const STREAM_TYPE_AAC_ADTS: u8 = 0x0F;
/// PMT stream_type of H.264 video (HLS).
pub const STREAM_TYPE_H264: u8 = 0x1B;

/// PES stream_id of the first MPEG video stream (JSMpeg routes by it).
pub const STREAM_ID_VIDEO: u8 = 0xE0;
/// PES stream_id of the first MPEG audio stream (JSMpeg routes by it).
pub const STREAM_ID_AUDIO: u8 = 0xC0;

/// The 90 kHz clock of PTS, DTS and the PCR base.
pub const CLOCK_HZ: u32 = 90_000;
/// PTS/DTS/PCR base are 33-bit numbers.
pub const TIMESTAMP_MASK: u64 = (1 << 33) - 1;
