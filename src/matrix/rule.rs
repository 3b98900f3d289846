//! One track's rule in one cell of the matrix: `copy`, `X->Y` or `auto`.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::media::Codec;

/// What the matrix says to do with one track going from one protocol to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Pass the track through unchanged.
    Copy,
    /// Decode `from` and encode `to`.
    Convert { from: Codec, to: Codec },
    /// Decide per stream: copy what the receiver carries, convert the rest.
    Auto,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Copy => f.write_str("copy"),
            Rule::Auto => f.write_str("auto"),
            Rule::Convert { from, to } => write!(f, "{from}->{to}"),
        }
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Why a rule's text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleSyntaxError {
    #[error("malformed rule `{0}`: expected `copy`, `auto` or `CODEC->CODEC` (e.g. `opus->aac`)")]
    Malformed(String),
    #[error("{0}")]
    UnknownCodec(#[from] crate::media::UnknownCodec),
}

impl std::str::FromStr for Rule {
    type Err = RuleSyntaxError;

    /// Reads `copy`, `auto` or `X->Y` (spaces around `->` are allowed).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        match trimmed {
            "copy" => return Ok(Rule::Copy),
            "auto" => return Ok(Rule::Auto),
            _ => {}
        }
        let malformed = || RuleSyntaxError::Malformed(text.to_string());
        let (from, to) = trimmed.split_once("->").ok_or_else(malformed)?;
        let (from, to) = (from.trim(), to.trim());
        let is_name = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
        if !is_name(from) || !is_name(to) {
            return Err(malformed());
        }
        Ok(Rule::Convert { from: from.parse()?, to: to.parse()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_every_form() {
        for text in ["copy", "auto", "opus->aac", "h264->mpeg1"] {
            let rule: Rule = text.parse().expect("valid rule");
            assert_eq!(rule.to_string(), text);
        }
        assert_eq!(" mp2 -> opus ".parse::<Rule>(), Ok(Rule::Convert { from: Codec::Mp2, to: Codec::Opus }));
    }

    #[test]
    fn rejects_malformed_rules_and_unknown_codecs() {
        for bad in ["", "cpy", "opus->", "->aac", "opus=>aac", "opus->aac->mp2", "a b->c"] {
            assert!(matches!(bad.parse::<Rule>(), Err(RuleSyntaxError::Malformed(_))), "{bad:?} should be malformed");
        }
        assert!(matches!("h265->h264".parse::<Rule>(), Err(RuleSyntaxError::UnknownCodec(_))));
    }

    #[test]
    fn serializes_as_its_text() {
        let json = serde_json::to_string(&Rule::Convert { from: Codec::Aac, to: Codec::Opus }).expect("serializable");
        assert_eq!(json, "\"aac->opus\"");
    }
}
