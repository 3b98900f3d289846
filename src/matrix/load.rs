//! `matrix.yaml` text → validated [`Matrix`], collecting every problem with its place.
//!
//! The text is read into a position-aware node tree ([`super::node`]) and checked by hand:
//! the top level and `protocols` here, `rules` in [`super::load_rules`].

use std::collections::BTreeMap;

use super::diagnostic::{Diagnostic, MatrixError};
use super::model::{index, Cell, Matrix, ProtocolCaps};
use super::node::{parse_yaml, Node, NodeKind, Pos};
use crate::media::{Codec, Protocol, TrackKind};

/// The only schema version this gateway reads.
pub const MATRIX_VERSION: u32 = 1;

pub(crate) fn parse_matrix(text: &str, file: &str) -> Result<Matrix, MatrixError> {
    let root = parse_yaml(text, file).map_err(|d| MatrixError { diagnostics: vec![d] })?;
    let mut validator = Validator { file, problems: Vec::new() };
    let built = validator.document(&root);
    match built {
        Some(matrix) if validator.problems.is_empty() => Ok(matrix),
        _ => {
            if validator.problems.is_empty() {
                validator.report(Pos::START, "the matrix is incomplete");
            }
            Err(MatrixError::sorted(validator.problems))
        }
    }
}

/// One mapping entry whose key is a scalar, seen for the first time in its mapping.
pub(crate) struct Field<'a> {
    pub name: &'a str,
    pub key: &'a Node,
    pub value: &'a Node,
}

pub(crate) struct Validator<'f> {
    file: &'f str,
    pub problems: Vec<Diagnostic>,
}

impl Validator<'_> {
    pub fn report(&mut self, pos: Pos, message: impl Into<String>) {
        let pos = if pos.line == 0 { Pos::START } else { pos };
        self.problems.push(Diagnostic::new(self.file, pos, message));
    }

    /// The entries of a mapping, reporting non-scalar and duplicate keys (the first of a
    /// duplicated key is kept). `None` (reported) when `node` is not a mapping.
    pub fn entries<'a>(&mut self, node: &'a Node, what: &str) -> Option<Vec<Field<'a>>> {
        let NodeKind::Map(entries) = &node.kind else {
            self.report(node.pos, format!("{what} must be a mapping, found {}", node.describe()));
            return None;
        };
        let mut fields: Vec<Field<'a>> = Vec::new();
        for entry in entries {
            let Some(name) = entry.key.as_scalar() else {
                self.report(entry.key.pos, format!("keys in {what} must be names, found {}", entry.key.describe()));
                continue;
            };
            if let Some(first) = fields.iter().find(|f| f.name == name) {
                let at = first.key.pos;
                self.report(
                    entry.key.pos,
                    format!("duplicate key `{name}` in {what} (first at line {}, column {})", at.line, at.column),
                );
                continue;
            }
            fields.push(Field { name, key: &entry.key, value: &entry.value });
        }
        Some(fields)
    }

    /// Like [`Self::entries`], also reporting keys outside `allowed`.
    pub fn fields<'a>(&mut self, node: &'a Node, what: &str, allowed: &[&str]) -> Option<Vec<Field<'a>>> {
        let fields = self.entries(node, what)?;
        let mut known = Vec::with_capacity(fields.len());
        for field in fields {
            if allowed.contains(&field.name) {
                known.push(field);
            } else {
                self.report(
                    field.key.pos,
                    format!("unknown field `{}` in {what} (expected {})", field.name, allowed.join(", ")),
                );
            }
        }
        Some(known)
    }

    /// A protocol name used as a key; reports unknown names.
    pub fn protocol_key(&mut self, field: &Field<'_>) -> Option<Protocol> {
        match field.name.parse::<Protocol>() {
            Ok(p) => Some(p),
            Err(err) => {
                self.report(field.key.pos, err.to_string());
                None
            }
        }
    }

    fn document(&mut self, root: &Node) -> Option<Matrix> {
        if matches!(root.kind, NodeKind::Null) {
            self.report(root.pos, "the matrix is empty: expected `version`, `protocols` and `rules`");
            return None;
        }
        let fields = self.fields(root, "the matrix", &["version", "protocols", "rules"])?;
        let find = |name: &str| fields.iter().find(|f| f.name == name);
        let version = match find("version") {
            Some(f) => self.version(f.value),
            None => {
                self.report(root.pos, format!("missing `version` (expected `version: {MATRIX_VERSION}`)"));
                None
            }
        };
        let caps = match find("protocols") {
            Some(f) => self.protocols(f),
            None => {
                self.report(root.pos, "missing `protocols` (what each protocol carries)");
                None
            }
        };
        let caps = caps.unwrap_or_default();
        let cells = match find("rules") {
            Some(f) => self.rules(f, &caps),
            None => {
                self.report(root.pos, "missing `rules` (one rule per ordered protocol pair)");
                None
            }
        };
        assemble(version?, caps, cells?)
    }

    fn version(&mut self, node: &Node) -> Option<u32> {
        match node.as_scalar() {
            Some(v) if v == MATRIX_VERSION.to_string() => Some(MATRIX_VERSION),
            _ => {
                let shown = node.as_scalar().map_or_else(|| node.describe().to_string(), |s| format!("`{s}`"));
                self.report(
                    node.pos,
                    format!("unsupported version {shown} (this gateway reads version {MATRIX_VERSION})"),
                );
                None
            }
        }
    }

    /// The `protocols` section. Entries with problems are left out (and reported), so rules
    /// that depend on them are not checked again; missing protocols are reported here.
    fn protocols(&mut self, section: &Field<'_>) -> Option<CapsTable> {
        let fields = self.entries(section.value, "`protocols`")?;
        let mut table = CapsTable::default();
        let mut seen = [false; Protocol::ALL.len()];
        for field in &fields {
            let Some(protocol) = self.protocol_key(field) else { continue };
            seen[index(protocol)] = true;
            table.0[index(protocol)] = self.protocol_caps(protocol, field);
        }
        for protocol in Protocol::ALL {
            if seen[index(protocol)] {
                continue;
            }
            match ProtocolCaps::default_for(protocol) {
                Some(default) => table.0[index(protocol)] = Some(default),
                None => self.report(section.key.pos, format!("missing protocol `{protocol}` in `protocols`")),
            }
        }
        Some(table)
    }

    fn protocol_caps(&mut self, protocol: Protocol, field: &Field<'_>) -> Option<ProtocolCaps> {
        let what = format!("protocol `{protocol}`");
        let fields = self.fields(field.value, &what, &["video", "audio", "bframes", "keyframe_interval"])?;
        let mut video = None;
        let mut audio = None;
        let mut bframes = Some(true);
        let mut keyframe_interval_ms = Some(None);
        let mut problem = false;
        for f in &fields {
            match f.name {
                "video" => video = self.codec_list(f.value, TrackKind::Video),
                "audio" => audio = self.codec_list(f.value, TrackKind::Audio),
                "keyframe_interval" => {
                    keyframe_interval_ms = self.seconds_as_ms(f.value, "keyframe_interval").map(Some)
                }
                _ => bframes = self.boolean(f.value, "bframes"),
            }
        }
        for (name, list) in [("video", &video), ("audio", &audio)] {
            if !fields.iter().any(|f| f.name == name) {
                self.report(field.key.pos, format!("{what}: missing `{name}` (the {name} codecs it carries)"));
                problem = true;
            } else if list.is_none() {
                problem = true;
            }
        }
        if problem {
            return None;
        }
        Some(ProtocolCaps {
            video: video?,
            audio: audio?,
            bframes: bframes?,
            keyframe_interval_ms: keyframe_interval_ms?,
        })
    }

    fn codec_list(&mut self, node: &Node, track: TrackKind) -> Option<Vec<Codec>> {
        let NodeKind::Seq(items) = &node.kind else {
            self.report(node.pos, format!("`{track}` must be a list of codecs like [h264], found {}", node.describe()));
            return None;
        };
        if items.is_empty() {
            self.report(node.pos, format!("`{track}` lists no codec"));
            return None;
        }
        let mut codecs = Vec::new();
        let mut ok = true;
        for item in items {
            match self.codec(item, track) {
                Some(codec) if codecs.contains(&codec) => {
                    self.report(item.pos, format!("{codec} is listed twice"));
                    ok = false;
                }
                Some(codec) => codecs.push(codec),
                None => ok = false,
            }
        }
        ok.then_some(codecs)
    }

    fn codec(&mut self, node: &Node, track: TrackKind) -> Option<Codec> {
        let Some(text) = node.as_scalar() else {
            self.report(node.pos, format!("expected a codec name, found {}", node.describe()));
            return None;
        };
        match text.parse::<Codec>() {
            Ok(codec) if codec.kind() == track => Some(codec),
            Ok(codec) => {
                self.report(node.pos, format!("{codec} is {}, not {}", kind_phrase(codec.kind()), kind_phrase(track)));
                None
            }
            Err(err) => {
                self.report(node.pos, err.to_string());
                None
            }
        }
    }

    /// A number of seconds between 0.1 and 60, as milliseconds.
    fn seconds_as_ms(&mut self, node: &Node, name: &str) -> Option<u32> {
        match node.as_scalar().and_then(|s| s.parse::<f64>().ok()) {
            Some(s) if (0.1..=60.0).contains(&s) => Some((s * 1000.0).round() as u32),
            _ => {
                self.report(node.pos, format!("`{name}` must be a number of seconds from 0.1 to 60"));
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, name: &str) -> Option<bool> {
        match node.as_scalar() {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => {
                self.report(node.pos, format!("`{name}` must be true or false"));
                None
            }
        }
    }
}

/// What each protocol carries, as far as it was valid.
#[derive(Default)]
pub(crate) struct CapsTable(pub [Option<ProtocolCaps>; Protocol::ALL.len()]);

impl CapsTable {
    pub fn get(&self, protocol: Protocol) -> Option<&ProtocolCaps> {
        self.0[index(protocol)].as_ref()
    }
}

/// Rules of every cell, row by row in [`Protocol::ALL`] order, as far as they were valid.
pub(crate) type CellTable = Vec<Option<Cell>>;

fn assemble(version: u32, caps: CapsTable, cells: CellTable) -> Option<Matrix> {
    let caps: Vec<ProtocolCaps> = caps.0.into_iter().collect::<Option<_>>()?;
    let cells: Vec<Cell> = cells.into_iter().collect::<Option<_>>()?;
    Some(Matrix::from_parts(version, caps.try_into().ok()?, cells.try_into().ok()?))
}

/// Renders a codec list for messages: `mpeg1`, `h264/vp8`.
pub(crate) fn codec_list_text(codecs: &[Codec]) -> String {
    codecs.iter().map(|c| c.as_str()).collect::<Vec<_>>().join("/")
}

/// Parameter values as text; used by the rules section.
pub(crate) type Params = BTreeMap<String, String>;

/// `a video codec` / `an audio codec`, for messages.
pub(crate) fn kind_phrase(kind: TrackKind) -> &'static str {
    match kind {
        TrackKind::Video => "a video codec",
        TrackKind::Audio => "an audio codec",
    }
}
