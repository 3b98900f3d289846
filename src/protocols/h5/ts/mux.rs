//! The TS muxer: PAT/PMT sections and one PES per frame, cut into 188-byte packets.
//!
//! Layout: PAT on PID 0, PMT on [`PMT_PID`], MPEG-1 video (stream type 0x01, stream id 0xE0) on
//! [`VIDEO_PID`] carrying the PCR, MP2 (stream type 0x03, stream id 0xC0) on [`AUDIO_PID`]
//! (carrying the PCR when there is no video). Each PES starts a packet (PUSI), the PCR and the
//! random-access flag go in the first packet's adaptation field, and stuffing goes only in
//! the last packet's adaptation field (JSMpeg takes a stuffed packet as the end of a frame).
//! PES_packet_length is set whenever it fits in 16 bits.

use crate::media::{Frame, TrackKind, Ts};

use super::psi::{self, EsEntry};
use super::{
    AUDIO_PID, CLOCK_HZ, PACKET_SIZE, PAT_PID, PAYLOAD_SIZE, PMT_PID, PROGRAM_NUMBER, STREAM_ID_AUDIO, STREAM_ID_VIDEO,
    STREAM_TYPE_MPEG1_AUDIO, STREAM_TYPE_MPEG1_VIDEO, SYNC_BYTE, TIMESTAMP_MASK, VIDEO_PID,
};

/// Added to every timestamp, so the PCR (which runs ahead of the DTS) is never negative.
pub const TIMESTAMP_OFFSET: u64 = CLOCK_HZ as u64;
/// How far the PCR runs ahead of the DTS of the frame that carries it (decoder buffering).
pub const PCR_LEAD: u64 = CLOCK_HZ as u64 / 2;

/// A stream timestamp as a 33-bit 90 kHz value (with [`TIMESTAMP_OFFSET`]).
pub fn ticks(ts: Ts) -> u64 {
    (ts.to_ticks(CLOCK_HZ) + TIMESTAMP_OFFSET as i64).rem_euclid(1 << 33) as u64
}

/// What goes into one PES and the adaptation field of its first packet.
#[derive(Debug, Clone, Copy)]
pub struct PesOptions {
    pub pid: u16,
    pub stream_id: u8,
    /// 90 kHz.
    pub pts: u64,
    /// 90 kHz; only when it differs from the PTS.
    pub dts: Option<u64>,
    /// PCR base (90 kHz) for the first packet.
    pub pcr: Option<u64>,
    /// Sets random_access_indicator on the first packet (a decoder can start here).
    pub random_access: bool,
}

/// Writes a 5-byte PTS/DTS field with its 4-bit `prefix`.
fn put_timestamp(out: &mut [u8], prefix: u8, value: u64) {
    let v = value & TIMESTAMP_MASK;
    out[0] = (prefix << 4) | (((v >> 30) as u8 & 0x07) << 1) | 1;
    out[1] = (v >> 22) as u8;
    out[2] = (((v >> 15) as u8 & 0x7F) << 1) | 1;
    out[3] = (v >> 7) as u8;
    out[4] = ((v as u8 & 0x7F) << 1) | 1;
}

/// The PES header for `payload_len` bytes of payload; returns the buffer and its used length.
fn pes_header(opts: &PesOptions, payload_len: usize) -> ([u8; 19], usize) {
    let mut h = [0u8; 19];
    h[2] = 0x01;
    h[3] = opts.stream_id;
    let data_len = if opts.dts.is_some() { 10 } else { 5 };
    let pes_len = 3 + data_len + payload_len;
    let pes_len = if pes_len > 0xFFFF { 0 } else { pes_len as u16 };
    h[4..6].copy_from_slice(&pes_len.to_be_bytes());
    h[6] = 0x84; // '10', not scrambled, data_alignment_indicator
    h[7] = if opts.dts.is_some() { 0xC0 } else { 0x80 };
    h[8] = data_len as u8;
    match opts.dts {
        Some(dts) => {
            put_timestamp(&mut h[9..14], 0x3, opts.pts);
            put_timestamp(&mut h[14..19], 0x1, dts);
        }
        None => put_timestamp(&mut h[9..14], 0x2, opts.pts),
    }
    (h, 9 + data_len)
}

fn put_packet_header(out: &mut Vec<u8>, pid: u16, unit_start: bool, adaptation: bool, cc: &mut u8) {
    out.push(SYNC_BYTE);
    out.push(if unit_start { 0x40 } else { 0 } | ((pid >> 8) as u8 & 0x1F));
    out.push(pid as u8);
    out.push(if adaptation { 0x30 } else { 0x10 } | (*cc & 0x0F));
    *cc = (*cc + 1) & 0x0F;
}

/// Packetizes one PES (header + `payload`) onto `out`, advancing the PID's counter `cc`.
pub fn write_pes(opts: &PesOptions, payload: &[u8], cc: &mut u8, out: &mut Vec<u8>) {
    let (header, header_len) = pes_header(opts, payload.len());
    let header = &header[..header_len];
    let total = header_len + payload.len();
    out.reserve(total.div_ceil(PAYLOAD_SIZE - 8) * PACKET_SIZE);
    let mut written = 0;
    let mut first = true;
    while first || written < total {
        let flags = first && (opts.pcr.is_some() || opts.random_access);
        let pcr = if first { opts.pcr } else { None };
        // Adaptation field bytes needed for its fields (length byte, flags, PCR).
        let needed = if flags { 2 + if pcr.is_some() { 6 } else { 0 } } else { 0 };
        let chunk = (total - written).min(PAYLOAD_SIZE - needed);
        let af_len = PAYLOAD_SIZE - chunk;
        put_packet_header(out, opts.pid, first, af_len > 0, cc);
        if af_len > 0 {
            out.push((af_len - 1) as u8);
            if af_len >= 2 {
                let mut flag_byte = 0u8;
                if flags && opts.random_access {
                    flag_byte |= 0x40;
                }
                if pcr.is_some() {
                    flag_byte |= 0x10;
                }
                out.push(flag_byte);
                let mut used = 2;
                if let Some(base) = pcr {
                    let base = base & TIMESTAMP_MASK;
                    out.extend_from_slice(&[
                        (base >> 25) as u8,
                        (base >> 17) as u8,
                        (base >> 9) as u8,
                        (base >> 1) as u8,
                        ((base as u8 & 1) << 7) | 0x7E, // reserved bits, extension 0
                        0,
                    ]);
                    used += 6;
                }
                out.resize(out.len() + (af_len - used), 0xFF);
            }
        }
        // The chunk spans the PES header and the payload.
        let end = written + chunk;
        if written < header_len {
            out.extend_from_slice(&header[written..end.min(header_len)]);
        }
        if end > header_len {
            out.extend_from_slice(&payload[written.max(header_len) - header_len..end - header_len]);
        }
        written = end;
        first = false;
    }
}

/// Writes a PSI section on `pid` (pointer field 0, the rest of the last packet 0xFF).
pub fn write_section(pid: u16, section: &[u8], cc: &mut u8, out: &mut Vec<u8>) {
    let mut rest = section;
    let mut first = true;
    while first || !rest.is_empty() {
        put_packet_header(out, pid, first, false, cc);
        let room = if first {
            out.push(0); // pointer_field
            PAYLOAD_SIZE - 1
        } else {
            PAYLOAD_SIZE
        };
        let n = rest.len().min(room);
        out.extend_from_slice(&rest[..n]);
        out.resize(out.len() + (room - n), 0xFF);
        rest = &rest[n..];
        first = false;
    }
}

/// The PAT and PMT of our one program, with their own continuity counters.
#[derive(Debug, Clone)]
pub struct ProgramTables {
    pat: Vec<u8>,
    pmt: Vec<u8>,
    pat_cc: u8,
    pmt_cc: u8,
}

impl ProgramTables {
    /// Tables for a program with the given tracks (the PCR is on the video PID if there is
    /// video, else on the audio PID).
    pub fn new(has_video: bool, has_audio: bool) -> ProgramTables {
        ProgramTables::with_types(
            has_video.then_some(STREAM_TYPE_MPEG1_VIDEO),
            has_audio.then_some(STREAM_TYPE_MPEG1_AUDIO),
        )
    }

    /// Tables for a program whose video (on [`VIDEO_PID`]) and audio (on [`AUDIO_PID`]) have
    /// the given PMT stream types; the PCR is on the video PID if there is video, else on the
    /// audio PID. HLS uses it for H.264 and AAC.
    pub fn with_types(video: Option<u8>, audio: Option<u8>) -> ProgramTables {
        let mut streams = Vec::new();
        if let Some(stream_type) = video {
            streams.push(EsEntry { stream_type, pid: VIDEO_PID });
        }
        if let Some(stream_type) = audio {
            streams.push(EsEntry { stream_type, pid: AUDIO_PID });
        }
        let pcr_pid = if video.is_some() || audio.is_none() { VIDEO_PID } else { AUDIO_PID };
        ProgramTables {
            pat: psi::pat(1, PROGRAM_NUMBER, PMT_PID),
            pmt: psi::pmt(PROGRAM_NUMBER, pcr_pid, &streams),
            pat_cc: 0,
            pmt_cc: 0,
        }
    }

    /// Appends a PAT and a PMT packet.
    pub fn write(&mut self, out: &mut Vec<u8>) {
        write_section(PAT_PID, &self.pat, &mut self.pat_cc, out);
        write_section(PMT_PID, &self.pmt, &mut self.pmt_cc, out);
    }
}

/// The PES of one frame: video on [`VIDEO_PID`], audio on [`AUDIO_PID`], its timestamps in
/// 90 kHz (the DTS only when it differs), random access on video keyframes. `carries_pcr`:
/// a PCR (the DTS less [`PCR_LEAD`]) in the first packet.
pub fn frame_pes(frame: &Frame, carries_pcr: bool) -> PesOptions {
    let (pid, stream_id) = match frame.kind() {
        TrackKind::Video => (VIDEO_PID, STREAM_ID_VIDEO),
        TrackKind::Audio => (AUDIO_PID, STREAM_ID_AUDIO),
    };
    let pts = ticks(frame.pts);
    let dts = ticks(frame.dts);
    PesOptions {
        pid,
        stream_id,
        pts,
        dts: (dts != pts).then_some(dts),
        pcr: carries_pcr.then(|| dts.wrapping_sub(PCR_LEAD) & TIMESTAMP_MASK),
        random_access: frame.is_video_keyframe(),
    }
}

/// Packetizes one frame as one PES ([`frame_pes`]) with its payload as it is (MPEG-1 video,
/// MP2 audio).
pub fn write_frame(frame: &Frame, carries_pcr: bool, cc: &mut u8, out: &mut Vec<u8>) {
    write_pes(&frame_pes(frame, carries_pcr), &frame.data, cc, out);
}

/// A whole muxer for one output: tables plus per-PID continuity counters.
#[derive(Debug, Clone)]
pub struct TsMuxer {
    tables: ProgramTables,
    has_video: bool,
    video_cc: u8,
    audio_cc: u8,
}

impl TsMuxer {
    pub fn new(has_video: bool, has_audio: bool) -> TsMuxer {
        TsMuxer { tables: ProgramTables::new(has_video, has_audio), has_video, video_cc: 0, audio_cc: 0 }
    }

    /// Appends PAT and PMT.
    pub fn tables(&mut self, out: &mut Vec<u8>) {
        self.tables.write(out);
    }

    /// Appends one frame's packets.
    pub fn frame(&mut self, frame: &Frame, out: &mut Vec<u8>) {
        let (cc, pcr) = match frame.kind() {
            TrackKind::Video => (&mut self.video_cc, true),
            TrackKind::Audio => (&mut self.audio_cc, !self.has_video),
        };
        write_frame(frame, pcr, cc, out);
    }
}

#[cfg(test)]
#[path = "mux_tests.rs"]
mod tests;
