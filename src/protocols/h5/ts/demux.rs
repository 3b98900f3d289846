//! The TS demuxer: 188-byte packets in (any chunking), the program's elementary streams (from
//! PAT/PMT) and whole PES packets (with PTS/DTS) out.
//!
//! A PES is complete when its PES_packet_length is reached, when the next PES of its PID
//! starts, or at [`TsDemuxer::finish`]. Packets with transport errors are skipped; lost sync
//! is recovered by looking for the next sync byte, and too much garbage is an error.

use std::collections::HashMap;

use super::psi::{self, EsEntry};
use super::{PACKET_SIZE, PAT_PID, SYNC_BYTE};

/// Bytes skipped looking for sync before the input is declared not MPEG-TS.
const MAX_GARBAGE: usize = 64 * PACKET_SIZE;
/// Largest PES a [`TsDemuxer::new`] buffers (an unbounded one is refused past it).
pub const MAX_PES: usize = 8 << 20;
/// What a [`TsDemuxer::new`] may hold over all PIDs in PES packets still arriving.
pub const MAX_BUFFER: usize = 12 << 20;

/// What a peer may make one demuxer hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsLimits {
    /// Largest PES packet (header and payload).
    pub max_pes: usize,
    /// Bytes allocated at once over all PIDs for PES packets still arriving.
    pub max_buffer: usize,
}

impl Default for TsLimits {
    fn default() -> Self {
        TsLimits { max_pes: MAX_PES, max_buffer: MAX_BUFFER }
    }
}

/// What the demuxer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemuxEvent {
    /// A (new or changed) PMT: the program's elementary streams.
    Program(Vec<EsEntry>),
    /// A whole PES of a stream the PMT lists.
    Pes(Pes),
}

/// One PES packet's payload and timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pes {
    pub pid: u16,
    pub stream_id: u8,
    /// 90 kHz, 33 bits.
    pub pts: Option<u64>,
    /// 90 kHz, 33 bits.
    pub dts: Option<u64>,
    pub data: Vec<u8>,
}

/// The input is not (or no longer) an MPEG transport stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DemuxError {
    #[error("not MPEG-TS: {0}")]
    NotTs(String),
    #[error("lost MPEG-TS packet sync: {0} bytes without a 0x47 sync byte")]
    LostSync(usize),
    #[error("a PES packet on PID {pid:#x} is longer than the limit of {max} bytes")]
    PesTooLarge { pid: u16, max: usize },
    #[error("{held} bytes would be held in PES packets still arriving, over the limit of {max}")]
    TooMuchBuffered { held: usize, max: usize },
}

#[derive(Debug, Default)]
pub struct TsDemuxer {
    pending: Vec<u8>,
    synced_once: bool,
    garbage: usize,
    pmt_pid: Option<u16>,
    program: Vec<EsEntry>,
    sections: HashMap<u16, Vec<u8>>,
    pes: HashMap<u16, Vec<u8>>,
    packets: u64,
    bad_pes: u64,
    limits: TsLimits,
    /// Bytes allocated for the PES packets in `pes`.
    held: usize,
    /// The first limit passed, reported by the next `push`.
    over: Option<DemuxError>,
}

impl TsDemuxer {
    pub fn new() -> TsDemuxer {
        TsDemuxer::with_limits(TsLimits::default())
    }

    /// A demuxer that refuses input passing `limits`.
    pub fn with_limits(limits: TsLimits) -> TsDemuxer {
        TsDemuxer { limits, ..TsDemuxer::default() }
    }

    /// Bytes held for PES packets still arriving.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Whole packets read so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// PES packets dropped for a broken header.
    pub fn bad_pes(&self) -> u64 {
        self.bad_pes
    }

    /// The elementary streams of the last PMT (empty before one arrived).
    pub fn program(&self) -> &[EsEntry] {
        &self.program
    }

    /// Feeds bytes; appends what they complete to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<DemuxEvent>) -> Result<(), DemuxError> {
        self.pending.extend_from_slice(data);
        if !self.synced_once {
            if let Some(&first) = self.pending.first() {
                if first != SYNC_BYTE {
                    return Err(DemuxError::NotTs(format!("the first byte is {first:#04x}, not the 0x47 sync byte")));
                }
            }
            if let Some(&next) = self.pending.get(PACKET_SIZE) {
                if next != SYNC_BYTE {
                    return Err(DemuxError::NotTs("no second sync byte 188 bytes after the first".into()));
                }
            }
        }
        let mut pos = 0;
        while self.pending.len() - pos >= PACKET_SIZE {
            if self.pending[pos] != SYNC_BYTE {
                pos += 1;
                self.garbage += 1;
                if self.garbage > MAX_GARBAGE {
                    self.pending.clear();
                    return Err(DemuxError::LostSync(self.garbage));
                }
                continue;
            }
            self.synced_once = true;
            self.garbage = 0;
            let mut packet = [0u8; PACKET_SIZE];
            packet.copy_from_slice(&self.pending[pos..pos + PACKET_SIZE]);
            self.packet(&packet, out);
            pos += PACKET_SIZE;
            if let Some(e) = self.over.take() {
                self.pending.clear();
                self.pes.clear();
                self.held = 0;
                return Err(e);
            }
        }
        self.pending.drain(..pos);
        Ok(())
    }

    /// End of input: emits the PES packets still open.
    pub fn finish(&mut self, out: &mut Vec<DemuxEvent>) {
        let mut pids: Vec<u16> = self.pes.keys().copied().collect();
        pids.sort_unstable();
        for pid in pids {
            if let Some(raw) = self.pes.remove(&pid) {
                self.held -= raw.capacity();
                self.emit_pes(pid, &raw, out);
            }
        }
    }

    fn packet(&mut self, p: &[u8; PACKET_SIZE], out: &mut Vec<DemuxEvent>) {
        self.packets += 1;
        if p[1] & 0x80 != 0 {
            return; // transport_error_indicator
        }
        let unit_start = p[1] & 0x40 != 0;
        let pid = u16::from_be_bytes([p[1] & 0x1F, p[2]]);
        let control = (p[3] >> 4) & 0x03;
        let mut offset = 4;
        if control & 0x02 != 0 {
            offset += 1 + p[4] as usize;
        }
        if control & 0x01 == 0 || offset >= PACKET_SIZE {
            return;
        }
        let payload = &p[offset..];
        if pid == PAT_PID || Some(pid) == self.pmt_pid {
            self.section_data(pid, unit_start, payload, out);
        } else if self.program.iter().any(|e| e.pid == pid) {
            self.pes_data(pid, unit_start, payload, out);
        }
    }

    fn section_data(&mut self, pid: u16, unit_start: bool, payload: &[u8], out: &mut Vec<DemuxEvent>) {
        if unit_start {
            let pointer = payload[0] as usize;
            let Some(start) = payload.get(1 + pointer..) else { return };
            self.sections.insert(pid, start.to_vec());
        } else if let Some(buf) = self.sections.get_mut(&pid) {
            buf.extend_from_slice(payload);
        } else {
            return;
        }
        let Some(buf) = self.sections.get(&pid) else { return };
        if buf.len() < 3 {
            return;
        }
        let whole = 3 + ((((buf[1] & 0x0F) as usize) << 8) | buf[2] as usize);
        if buf.len() < whole {
            return;
        }
        let Some(section) = self.sections.remove(&pid) else { return };
        if pid == PAT_PID {
            if let Ok(Some(pmt)) = psi::parse_pat(&section) {
                self.pmt_pid = Some(pmt);
            }
        } else if let Ok(streams) = psi::parse_pmt(&section) {
            if streams != self.program {
                self.pes.retain(|pid, _| streams.iter().any(|s| s.pid == *pid));
                self.held = self.pes.values().map(Vec::capacity).sum();
                self.program = streams.clone();
                out.push(DemuxEvent::Program(streams));
            }
        }
    }

    fn pes_data(&mut self, pid: u16, unit_start: bool, payload: &[u8], out: &mut Vec<DemuxEvent>) {
        if unit_start {
            if let Some(raw) = self.pes.remove(&pid) {
                self.held -= raw.capacity();
                self.emit_pes(pid, &raw, out);
            }
            let buf = payload.to_vec();
            self.held += buf.capacity();
            self.pes.insert(pid, buf);
        } else if let Some(buf) = self.pes.get_mut(&pid) {
            if buf.len() + payload.len() > self.limits.max_pes {
                self.over = Some(DemuxError::PesTooLarge { pid, max: self.limits.max_pes });
                return;
            }
            let old = buf.capacity();
            if buf.len() + payload.len() > old {
                // Grow by doubling, within the limit for one PES and for all of them.
                let target = (old * 2).max(buf.len() + payload.len()).min(self.limits.max_pes);
                let held = self.held - old + target;
                if held > self.limits.max_buffer {
                    self.over = Some(DemuxError::TooMuchBuffered { held, max: self.limits.max_buffer });
                    return;
                }
                buf.reserve_exact(target - buf.len());
                self.held = self.held - old + buf.capacity();
            }
            buf.extend_from_slice(payload);
        } else {
            return; // the middle of a PES whose start we did not see
        }
        let Some(buf) = self.pes.get(&pid) else { return };
        let declared = if buf.len() >= 6 { u16::from_be_bytes([buf[4], buf[5]]) as usize } else { 0 };
        if declared != 0 && buf.len() >= 6 + declared {
            if let Some(mut raw) = self.pes.remove(&pid) {
                self.held -= raw.capacity();
                raw.truncate(6 + declared);
                self.emit_pes(pid, &raw, out);
            }
        }
    }

    fn emit_pes(&mut self, pid: u16, raw: &[u8], out: &mut Vec<DemuxEvent>) {
        match parse_pes(pid, raw) {
            Some(pes) => out.push(DemuxEvent::Pes(pes)),
            None => self.bad_pes += 1,
        }
    }
}

fn read_timestamp(b: &[u8]) -> u64 {
    (((b[0] >> 1) & 0x07) as u64) << 30
        | (b[1] as u64) << 22
        | ((b[2] >> 1) as u64) << 15
        | (b[3] as u64) << 7
        | (b[4] >> 1) as u64
}

/// Parses a whole PES (header and payload); None if it is not one.
fn parse_pes(pid: u16, raw: &[u8]) -> Option<Pes> {
    if raw.len() < 6 || raw[..3] != [0, 0, 1] {
        return None;
    }
    let stream_id = raw[3];
    // Streams without the optional header (padding, private_stream_2, maps, ...).
    if matches!(stream_id, 0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xF2 | 0xF8 | 0xFF) {
        return Some(Pes { pid, stream_id, pts: None, dts: None, data: raw[6..].to_vec() });
    }
    if raw.len() < 9 || raw[6] & 0xC0 != 0x80 {
        return None;
    }
    let flags = raw[7] >> 6;
    let header_end = 9 + raw[8] as usize;
    let pts = (flags & 0x02 != 0).then(|| raw.get(9..14).map(read_timestamp)).flatten();
    let dts = (flags == 0x03).then(|| raw.get(14..19).map(read_timestamp)).flatten();
    let data = raw.get(header_end..)?.to_vec();
    Some(Pes { pid, stream_id, pts, dts, data })
}

#[cfg(test)]
#[path = "demux_tests.rs"]
mod tests;
