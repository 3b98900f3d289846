//! `hls:` in the configuration: segment and part targets, how many segments a live playlist
//! keeps, and how long a stream's packager outlives its last request.

use std::time::Duration;

use serde::Deserialize;

use super::segmenter::SegmenterConfig;

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HlsSettings {
    /// A segment is cut at the first keyframe after this many seconds (0.5 to 30).
    pub segment_seconds: f64,
    /// LL-HLS partial segments close after this many seconds (0.05 to 2, at most a segment).
    pub part_seconds: f64,
    /// Complete segments each live playlist lists (2 to 60).
    pub segments: usize,
    /// A packager (one per stream and format, shared by all its viewers) stops this many
    /// seconds after the last request for its playlists or segments.
    pub idle_seconds: f64,
}

impl Default for HlsSettings {
    fn default() -> Self {
        HlsSettings { segment_seconds: 2.0, part_seconds: 0.2, segments: 6, idle_seconds: 10.0 }
    }
}

impl HlsSettings {
    /// Refuses values out of range, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        let in_range = |v: f64, lo: f64, hi: f64| v.is_finite() && (lo..=hi).contains(&v);
        if !in_range(self.segment_seconds, 0.5, 30.0) {
            return Err(format!("hls.segment_seconds must be 0.5 to 30, not {}", self.segment_seconds));
        }
        if !in_range(self.part_seconds, 0.05, 2.0) || self.part_seconds > self.segment_seconds {
            return Err(format!(
                "hls.part_seconds must be 0.05 to 2 and at most hls.segment_seconds, not {}",
                self.part_seconds
            ));
        }
        if !(2..=60).contains(&self.segments) {
            return Err(format!("hls.segments must be 2 to 60, not {}", self.segments));
        }
        if !in_range(self.idle_seconds, 1.0, 3600.0) {
            return Err(format!("hls.idle_seconds must be 1 to 3600, not {}", self.idle_seconds));
        }
        Ok(())
    }

    pub fn segmenter(&self) -> SegmenterConfig {
        SegmenterConfig {
            target: Duration::from_secs_f64(self.segment_seconds),
            part: Duration::from_secs_f64(self.part_seconds),
            keep: self.segments,
        }
    }

    pub fn idle(&self) -> Duration {
        Duration::from_secs_f64(self.idle_seconds)
    }

    /// How long a request may wait for a part or segment that is still coming: a blocking
    /// playlist reload, a preload-hinted part, the open segment.
    pub fn hold(&self) -> Duration {
        Duration::from_secs_f64(self.segment_seconds * 3.0)
    }
}
