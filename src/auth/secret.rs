//! A configured secret: never printed (its `Debug` and `Display` show `***`), compared in
//! constant time.

use serde::Deserialize;
use subtle::ConstantTimeEq;

#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The secret's bytes, for keyed hashes only.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `presented` equals the secret, in time independent of where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        !self.0.is_empty() && equal(self.0.as_bytes(), presented.as_bytes())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Constant-time equality of two byte strings (the length is not secret).
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Decodes hex (either case); None when it is not.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    let b = text.as_bytes();
    (0..b.len())
        .step_by(2)
        .map(|i| {
            let h = (b[i] as char).to_digit(16)?;
            let l = (b[i + 1] as char).to_digit(16)?;
            Some((h * 16 + l) as u8)
        })
        .collect()
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed_and_compared_whole() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert!(s.matches("hunter2"));
        assert!(!s.matches("hunter"));
        assert!(!s.matches("hunter22"));
        assert!(!Secret::default().matches(""), "an empty secret matches nothing");
        assert_eq!(hex(&[0, 0xab, 0x7f]), "00ab7f");
    }
}
