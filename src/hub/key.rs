use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// A stream key as the contract allows it: letters, digits, `-`, `_`, `.` (1 to 128 chars).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct StreamKey(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid stream key `{0}`: use 1 to 128 letters, digits, '-', '_' or '.'")]
pub struct InvalidStreamKey(pub String);

impl StreamKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for StreamKey {
    type Err = InvalidStreamKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s != "."
            && s != ".."
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if ok {
            Ok(StreamKey(s.to_string()))
        } else {
            Err(InvalidStreamKey(s.chars().take(140).collect()))
        }
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifies one publisher or consumer session inside the hub (for logs and the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SessionId(pub u64);

impl SessionId {
    pub fn next() -> SessionId {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        SessionId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!("class-1_a.b".parse::<StreamKey>().is_ok());
        for bad in ["", "a/b", "a b", "..", "é", &"x".repeat(129)] {
            assert!(bad.parse::<StreamKey>().is_err(), "{bad:?}");
        }
    }
}
