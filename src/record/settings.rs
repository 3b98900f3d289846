//! `recording:` and `clips:` in the configuration.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingSettings {
    /// Where recordings go: `{dir}/{stream}/` holds each stream's files and indexes.
    pub dir: PathBuf,
    /// Each file holds about this many seconds (cut at the next keyframe), 2 to 3600.
    pub segment_seconds: f64,
    /// Streams recorded from publish to unpublish without an API call.
    pub rules: Vec<RecordRule>,
}

/// `{ streams: "class-*" }`: every stream whose key matches the pattern (`*`: any run of
/// characters) is recorded while it is published.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordRule {
    pub streams: String,
}

impl Default for RecordingSettings {
    fn default() -> Self {
        RecordingSettings { dir: "recordings".into(), segment_seconds: 10.0, rules: Vec::new() }
    }
}

impl RecordingSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.segment_seconds.is_finite() && (2.0..=3600.0).contains(&self.segment_seconds)) {
            return Err(format!("recording.segment_seconds must be 2 to 3600, not {}", self.segment_seconds));
        }
        for rule in &self.rules {
            if rule.streams.is_empty() || rule.streams.len() > 128 {
                return Err(format!("recording.rules: bad pattern `{}`", rule.streams));
            }
        }
        Ok(())
    }

    pub fn segment(&self) -> Duration {
        Duration::from_secs_f64(self.segment_seconds)
    }

    /// Whether a rule asks for `stream` to be recorded.
    pub fn rule_matches(&self, stream: &str) -> bool {
        self.rules.iter().any(|r| glob(&r.streams, stream))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClipSettings {
    /// Where clips go: `{dir}/{stream}/`.
    pub dir: PathBuf,
    /// Seconds of each live stream kept in memory for clips (0: none; clips then come from
    /// recordings only), up to 600.
    pub window_seconds: f64,
    /// Keep the window also for streams whose tracks must be converted to H.264/AAC first
    /// (WebRTC, H5): that runs the conversion for as long as the stream is live.
    pub convert: bool,
    /// The longest clip, in seconds.
    pub max_seconds: f64,
}

impl Default for ClipSettings {
    fn default() -> Self {
        ClipSettings { dir: "clips".into(), window_seconds: 60.0, convert: false, max_seconds: 600.0 }
    }
}

impl ClipSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.window_seconds.is_finite() && (0.0..=600.0).contains(&self.window_seconds)) {
            return Err(format!("clips.window_seconds must be 0 to 600, not {}", self.window_seconds));
        }
        if !(self.max_seconds.is_finite() && (1.0..=86_400.0).contains(&self.max_seconds)) {
            return Err(format!("clips.max_seconds must be 1 to 86400, not {}", self.max_seconds));
        }
        Ok(())
    }
}

/// `*` matches any run of characters (none included); everything else itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        assert!(glob("class-*", "class-7"));
        assert!(glob("class-*", "class-"));
        assert!(!glob("class-*", "clas"));
        assert!(glob("*", "anything"));
        assert!(glob("a*b*c", "a-x-b-y-c"));
        assert!(!glob("a*b*c", "a-c-b"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exact2"));
        assert!(!glob("ab*ba", "aba"), "the two ends may not overlap");
    }
}
