//! A YAML document as a tree of nodes that each remember where they were written.
//!
//! `matrix.yaml` is read into this tree first (only YAML syntax can fail here), and then
//! validated by hand, so every semantic problem points at the node it is about, several
//! problems are reported at once, and duplicate keys are seen with both of their places.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, Spanned};

use super::diagnostic::Diagnostic;

/// A place in the source text, 1-based (line 0 / column 0 when unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub line: u64,
    pub column: u64,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, column: 1 };
}

/// One YAML node and where it starts.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: NodeKind,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    /// `~`, `null` or an empty value.
    Null,
    /// Any scalar, in its text form (`1`, `true` and `h264` alike).
    Scalar(String),
    Seq(Vec<Node>),
    /// Entries in document order; duplicate keys are kept (the validator reports them).
    Map(Vec<Entry>),
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: Node,
    pub value: Node,
}

impl Node {
    /// What kind of node this is, for messages ("expected a mapping, found a sequence").
    pub fn describe(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "nothing",
            NodeKind::Scalar(_) => "a scalar",
            NodeKind::Seq(_) => "a sequence",
            NodeKind::Map(_) => "a mapping",
        }
    }

    pub fn as_scalar(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar(s) => Some(s),
            _ => None,
        }
    }
}

/// Parses YAML text into a [`Node`] tree; a syntax error becomes one diagnostic.
pub(crate) fn parse_yaml(text: &str, file: &str) -> Result<Node, Diagnostic> {
    let options = serde_saphyr::options! {
        duplicate_keys: DuplicateKeyPolicy::PassThrough,
        with_snippet: false,
    };
    match serde_saphyr::from_str_with_options::<Node>(text, options) {
        Ok(node) => Ok(node),
        Err(err) => {
            let (line, column) = err.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
            let rendered = err.without_snippet().to_string();
            let suffix = format!(" at line {line}, column {column}");
            let message = rendered.strip_suffix(&suffix).unwrap_or(&rendered).to_string();
            Err(Diagnostic::new(file, Pos { line, column }, format!("YAML syntax: {message}")))
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<NodeKind>::deserialize(deserializer)?;
        let at = spanned.referenced;
        Ok(Node { kind: spanned.value, pos: Pos { line: at.line(), column: at.column() } })
    }
}

impl<'de> Deserialize<'de> for NodeKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

fn scalar<T: ToString>(value: T) -> NodeKind {
    NodeKind::Scalar(value.to_string())
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = NodeKind;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<NodeKind, E> {
        Ok(scalar(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<NodeKind, E> {
        Ok(scalar(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<NodeKind, E> {
        Ok(scalar(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<NodeKind, E> {
        Ok(scalar(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<NodeKind, E> {
        Ok(scalar(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<NodeKind, E> {
        Ok(scalar(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeKind, E> {
        Ok(scalar(v))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<NodeKind, E> {
        Ok(NodeKind::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<NodeKind, E> {
        Ok(NodeKind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<NodeKind, D::Error> {
        NodeKind::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeKind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(NodeKind::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeKind, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value::<Node>()?;
            entries.push(Entry { key, value });
        }
        Ok(NodeKind::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_know_their_line_and_column() {
        let text = "a: 1\nb:\n  c: [x, z]\n";
        let root = parse_yaml(text, "t.yaml").expect("valid yaml");
        let NodeKind::Map(entries) = &root.kind else {
            panic!("root should be a map, is {}", root.describe());
        };
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].key.as_scalar(), Some("a"));
        assert_eq!(entries[0].value.as_scalar(), Some("1"));
        assert_eq!(entries[0].value.pos, Pos { line: 1, column: 4 });
        let NodeKind::Map(inner) = &entries[1].value.kind else {
            panic!("b should be a map");
        };
        assert_eq!(inner[0].key.pos, Pos { line: 3, column: 3 });
        let NodeKind::Seq(items) = &inner[0].value.kind else {
            panic!("c should be a sequence");
        };
        assert_eq!(items[1].as_scalar(), Some("z"));
        assert_eq!(items[1].pos, Pos { line: 3, column: 10 });
    }

    #[test]
    fn duplicate_keys_are_kept_for_the_validator() {
        let root = parse_yaml("a: 1\na: 2\n", "t.yaml").expect("valid yaml");
        let NodeKind::Map(entries) = &root.kind else {
            panic!("root should be a map");
        };
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].key.pos, Pos { line: 2, column: 1 });
    }

    #[test]
    fn syntax_errors_carry_their_place_without_repeating_it() {
        let d = parse_yaml("a: [1, 2\nb: c\n", "bad.yaml").expect_err("invalid yaml");
        assert_eq!(d.file, "bad.yaml");
        assert_eq!((d.line, d.column), (2, 2));
        assert!(d.message.starts_with("YAML syntax: "), "{}", d.message);
        assert!(!d.message.contains("at line"), "{}", d.message);
    }
}
