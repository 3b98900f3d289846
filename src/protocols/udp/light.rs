//! The light receive path of a UDP ingest, without GStreamer, for the common codecs
//! ([`handles`]: H.264, Opus, AAC, PCMU, PCMA): per track the packet [`filter`], a
//! [`Reorder`] buffer bounded by the jitter latency, the payload checks of `media::rtp` and
//! `media::h264::rtp`, a [`depay`](super::depay) depacketizer, the RTP → clock mapping with
//! lip sync through the sender reports ([`sync`](super::sync)) and the decode times of
//! [`DtsFromPts`]; frames come out.
//!
//! Pure: datagrams and arrival times in, [`Frame`]s out; the sockets are in
//! [`receiver`](super::receiver).
//!
//! [`filter`]: super::filter

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::depay::{self, AacDepay, Depay, H264Depay, Packet, Unit};
use super::filter::{RtpFilter, Verdict};
use super::frames::DtsFromPts;
use super::metrics::UdpMetrics;
use super::payload::{hex, IngestTrack};
use super::reorder::Reorder;
use super::sync::{sender_reports, SenderReport, SharedClock, TrackClock};
use crate::media::aac::AudioSpecificConfig;
use crate::media::h264::rtp::{payload_bounds, RtpH264Check, RtpVerdict};
use crate::media::h264::{AvcConfig, Sps};
use crate::media::rtp::aac::AuHeaderLayout;
use crate::media::rtp::PayloadCheck;
use crate::media::{AudioInfo, Codec, Frame, TrackInfo, TrackKind, Ts, VideoInfo};

/// Whether the light path can receive every one of `tracks` (else GStreamer does it all).
pub fn handles(tracks: &[IngestTrack]) -> bool {
    tracks.iter().all(|t| matches!(t.codec, Codec::H264 | Codec::Opus | Codec::Aac | Codec::Pcmu | Codec::Pcma))
}

/// The receive logic of one ingest, all its tracks.
pub struct LightIngest {
    tracks: Vec<Track>,
    shared: SharedClock,
    metrics: Arc<UdpMetrics>,
    units: Vec<Unit>,
}

struct Track {
    codec: Codec,
    filter: RtpFilter,
    /// The source the filter accepted last: a change starts the track over.
    source: Option<u32>,
    /// The last sender report of another source (senders report before they send media).
    early_report: Option<SenderReport>,
    reorder: Reorder<Vec<u8>>,
    h264: Option<RtpH264Check>,
    check: Option<PayloadCheck>,
    depay: Depay,
    clock: TrackClock,
    info: Option<Arc<TrackInfo>>,
    dts: DtsFromPts,
    /// Whether `info` was made knowing the stream reorders.
    info_reorders: bool,
    /// Logged once: a unit that could not become a frame.
    warned: bool,
}

impl LightIngest {
    /// `tracks` as the SDP describes them (see [`handles`]); `latency`: how long a gap may
    /// hold later packets back.
    pub fn new(tracks: &[IngestTrack], latency: Duration, metrics: Arc<UdpMetrics>) -> LightIngest {
        LightIngest {
            tracks: tracks.iter().map(|t| Track::new(t, latency)).collect(),
            shared: SharedClock::default(),
            metrics,
            units: Vec::new(),
        }
    }

    /// One datagram on track `track`'s RTP port at `now` (since the ingest started); true
    /// when the filter accepted it. Frames it completes go to `out`.
    pub fn on_rtp(&mut self, track: usize, data: &[u8], now: Duration, out: &mut Vec<Frame>) -> bool {
        let Some(t) = self.tracks.get_mut(track) else { return false };
        let verdict = t.filter.check(data, now.as_millis() as u64);
        self.metrics.note_rtp(verdict);
        if matches!(verdict, Verdict::Drop(_)) {
            return false;
        }
        if t.filter.ssrc() != t.source {
            t.source = t.filter.ssrc();
            tracing::info!(track, codec = %t.codec, ssrc = ?t.source, "receiving RTP stream");
            t.restart();
            if let Some(sr) = t.early_report.take().filter(|sr| Some(sr.ssrc) == t.source) {
                t.clock.report(sr, &mut self.shared);
            }
        }
        let seq = u16::from_be_bytes([data[2], data[3]]);
        if t.reorder.pass(seq) {
            t.depayload(data, false, &self.metrics, &mut self.units);
            t.frames(&mut self.units, now, &mut self.shared, out);
        } else {
            t.reorder.push(seq, now, data.to_vec());
            self.drain(track, now, out);
        }
        true
    }

    /// One datagram on track `track`'s RTCP port: counted, its sender reports taken.
    pub fn on_rtcp(&mut self, track: usize, data: &[u8]) {
        let valid = super::filter::valid_rtcp(data);
        self.metrics.note_rtcp(valid);
        let Some(t) = self.tracks.get_mut(track) else { return };
        if !valid {
            return;
        }
        for sr in sender_reports(data) {
            if Some(sr.ssrc) == t.source {
                t.clock.report(sr, &mut self.shared);
            } else {
                t.early_report = Some(sr);
            }
        }
    }

    /// Releases what waited past the latency at `now`.
    pub fn poll(&mut self, now: Duration, out: &mut Vec<Frame>) {
        for track in 0..self.tracks.len() {
            self.drain(track, now, out);
        }
    }

    /// When [`poll`](Self::poll) has something to release, if ever.
    pub fn deadline(&self) -> Option<Duration> {
        self.tracks.iter().filter_map(|t| t.reorder.deadline()).min()
    }

    fn drain(&mut self, track: usize, now: Duration, out: &mut Vec<Frame>) {
        let Some(t) = self.tracks.get_mut(track) else { return };
        while let Some((packet, lost)) = t.reorder.pop(now) {
            t.depayload(&packet, lost, &self.metrics, &mut self.units);
            t.frames(&mut self.units, now, &mut self.shared, out);
        }
    }
}

impl Track {
    fn new(track: &IngestTrack, latency: Duration) -> Track {
        let mut t = Track {
            codec: track.codec,
            filter: RtpFilter::new(track.pt, track.ssrc),
            source: None,
            early_report: None,
            reorder: Reorder::new(latency),
            h264: (track.codec == Codec::H264).then(RtpH264Check::new),
            check: PayloadCheck::for_codec(track.codec, &track.params),
            depay: Depay::Whole,
            clock: TrackClock::new(track.clock_rate),
            info: None,
            dts: DtsFromPts::default(),
            info_reorders: false,
            warned: false,
        };
        match track.codec {
            Codec::H264 => {
                t.depay = Depay::H264(H264Depay::with_parameter_sets(&depay::sprop_parameter_sets(&track.params)))
            }
            Codec::Aac => {
                let asc = track.params.iter().find(|(k, _)| k == "config").and_then(|(_, v)| hex(v));
                let parsed = asc.as_deref().and_then(|a| AudioSpecificConfig::parse(a).ok());
                let core_rate = parsed.as_ref().map_or(track.clock_rate, |a| a.sample_rate).max(1);
                let ticks = (1024u64 * u64::from(track.clock_rate) / u64::from(core_rate)).clamp(1, 1 << 20) as u32;
                t.depay = Depay::Aac(AacDepay::new(AuHeaderLayout::from_fmtp(&track.params), ticks));
                t.info = parsed.map(|p| {
                    let channels = match p.output_channels() {
                        0 => track.channels.unwrap_or(1).clamp(1, 255) as u8,
                        n => n,
                    };
                    Arc::new(TrackInfo::Audio(AudioInfo {
                        codec: Codec::Aac,
                        sample_rate: p.output_sample_rate(),
                        channels,
                        config: asc.map(Bytes::from),
                    }))
                });
            }
            Codec::Opus => t.info = Some(audio(Codec::Opus, 48_000, track.channels.unwrap_or(2))),
            codec => t.info = Some(audio(codec, track.clock_rate, track.channels.unwrap_or(1))),
        }
        t
    }

    /// A new source: what was held, assembled or anchored belongs to the old one.
    fn restart(&mut self) {
        self.reorder.reset();
        self.depay.reset();
        self.clock.reset();
        if let Some(check) = self.h264.as_mut() {
            *check = RtpH264Check::new();
        }
    }

    /// One packet in sequence order: payload checks, then the depacketizer.
    fn depayload(&mut self, packet: &[u8], lost: bool, metrics: &UdpMetrics, units: &mut Vec<Unit>) {
        let replaced;
        let mut packet = packet;
        if let Some(check) = self.h264.as_mut() {
            if let RtpVerdict::Replace { packet: cleaned, reason } = check.check(packet) {
                metrics.note_h264_refused();
                tracing::debug!(%reason, "RTP packet's H.264 payload refused");
                if cleaned.is_empty() {
                    return;
                }
                replaced = cleaned;
                packet = &replaced;
            }
        }
        if let Some(check) = &self.check {
            if let Err(reason) = check.check(packet) {
                metrics.note_payload_refused();
                tracing::debug!(codec = %self.codec, %reason, "RTP payload refused");
                return;
            }
        }
        let Some((start, end)) = payload_bounds(packet) else { return };
        let timestamp = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let marker = packet[1] & 0x80 != 0;
        self.depay.push(Packet { timestamp, marker, payload: &packet[start..end] }, lost, units);
    }

    /// The frames of the units the depacketizer finished.
    fn frames(&mut self, units: &mut Vec<Unit>, now: Duration, shared: &mut SharedClock, out: &mut Vec<Frame>) {
        for unit in units.drain(..) {
            if let Some(frame) = self.frame(unit, now, shared) {
                out.push(frame);
            }
        }
    }

    /// The frame of one unit, once the track's info is known.
    fn frame(&mut self, unit: Unit, now: Duration, shared: &mut SharedClock) -> Option<Frame> {
        if let Depay::H264(d) = &mut self.depay {
            if let Some((sps, pps)) = d.take_parameter_sets() {
                match video_info(sps, pps, &mut self.dts) {
                    Ok(info) => {
                        self.info_reorders = bframes(&info);
                        self.info = Some(Arc::new(info));
                    }
                    Err(e) if !self.warned => {
                        self.warned = true;
                        tracing::warn!(codec = %self.codec, reason = %e, "received media dropped");
                    }
                    Err(_) => {}
                }
            }
        }
        let pts = Ts(self.clock.time(unit.timestamp, now.as_nanos() as i64, shared));
        let dts = if self.codec == Codec::H264 { self.dts.next(pts) } else { pts };
        if self.dts.reorders() && !self.info_reorders {
            // Reordering seen mid-stream: the track has B-frames after all.
            if let Some(TrackInfo::Video(v)) = self.info.as_deref() {
                self.info = Some(Arc::new(TrackInfo::Video(VideoInfo { bframes: true, ..v.clone() })));
                self.info_reorders = true;
            }
        }
        let info = self.info.clone()?;
        let keyframe = info.kind() == TrackKind::Audio || unit.keyframe;
        Some(Frame::new(info, dts, pts, keyframe, Bytes::from(unit.data)))
    }
}

fn audio(codec: Codec, rate: u32, channels: u32) -> Arc<TrackInfo> {
    Arc::new(TrackInfo::Audio(AudioInfo {
        codec,
        sample_rate: rate,
        channels: channels.clamp(1, 255) as u8,
        config: None,
    }))
}

fn bframes(info: &TrackInfo) -> bool {
    matches!(info, TrackInfo::Video(v) if v.bframes)
}

/// The H.264 track info of an SPS and PPS (as h264parse puts it in its caps).
fn video_info(sps: &[u8], pps: &[u8], dts: &mut DtsFromPts) -> Result<TrackInfo, String> {
    let parsed = Sps::parse(sps).map_err(|e| e.to_string())?;
    let config = AvcConfig::build(sps, pps).map_err(|e| e.to_string())?;
    if !dts.reorders() && parsed.may_have_bframes() == Some(true) {
        dts.set_reorders();
    }
    Ok(TrackInfo::Video(VideoInfo {
        codec: Codec::H264,
        width: parsed.width,
        height: parsed.height,
        fps: parsed.fps.filter(|f| f.is_finite() && *f > 0.0),
        config: Some(config),
        bframes: dts.reorders(),
    }))
}

#[cfg(test)]
#[path = "light_tests.rs"]
mod tests;
