//! The validated matrix: what each protocol carries and the rule of every ordered pair.

use std::collections::BTreeMap;
use std::path::Path;

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};

use super::diagnostic::{Diagnostic, MatrixError};
use super::node::Pos;
use super::rule::Rule;
use crate::media::{Codec, Protocol, TrackKind};

/// What one protocol can carry. The order of the codecs is the preference when converting
/// toward the protocol (the first one is the conversion target of `auto`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtocolCaps {
    /// Video codecs, preferred first.
    pub video: Vec<Codec>,
    /// Audio codecs, preferred first.
    pub audio: Vec<Codec>,
    /// Whether its receivers cope with B-frames (`false`: B-frame sources are re-encoded).
    pub bframes: bool,
    /// The longest gap between keyframes its receivers accept, in milliseconds (`None`: any).
    /// A longer-GOP source whose publisher cannot be asked for keyframes is re-encoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyframe_interval_ms: Option<u32>,
}

impl ProtocolCaps {
    /// What a play-only protocol carries when a matrix leaves it out (one written before it
    /// existed): HLS takes H.264 and AAC, B-frames included.
    pub(crate) fn default_for(protocol: Protocol) -> Option<ProtocolCaps> {
        (protocol == Protocol::Hls).then(|| ProtocolCaps {
            video: vec![Codec::H264],
            audio: vec![Codec::Aac],
            bframes: true,
            keyframe_interval_ms: None,
        })
    }

    /// The codecs this protocol carries for one track, in order of preference.
    pub fn codecs(&self, track: TrackKind) -> &[Codec] {
        match track {
            TrackKind::Video => &self.video,
            TrackKind::Audio => &self.audio,
        }
    }

    /// Whether this protocol can carry `codec` (on the codec's own track).
    pub fn carries(&self, codec: Codec) -> bool {
        self.codecs(codec.kind()).contains(&codec)
    }
}

/// One cell of the matrix: the rule of each track from one protocol to another, and named
/// pipeline parameters overriding the fragments' defaults for this pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    pub video: Rule,
    pub audio: Rule,
    pub params: BTreeMap<String, String>,
}

impl Cell {
    /// `{ video: auto, audio: auto }`: the default of a cell toward a play-only protocol
    /// that a matrix leaves out (one written before that protocol existed).
    pub(crate) fn auto() -> Cell {
        Cell { video: Rule::Auto, audio: Rule::Auto, params: BTreeMap::new() }
    }

    /// The filler of the row from a play-only protocol (copy both, no params).
    pub(crate) fn never_planned() -> Cell {
        Cell { video: Rule::Copy, audio: Rule::Copy, params: BTreeMap::new() }
    }

    /// The rule for one track.
    pub fn rule(&self, track: TrackKind) -> &Rule {
        match track {
            TrackKind::Video => &self.video,
            TrackKind::Audio => &self.audio,
        }
    }
}

const N: usize = Protocol::ALL.len();

/// Position of a protocol in [`Protocol::ALL`].
pub(crate) fn index(protocol: Protocol) -> usize {
    protocol.index()
}

/// A validated conversion matrix: complete (a rule from each of the six publishing protocols
/// to each of the seven playing ones: 42 ordered pairs) and consistent (every rule can work
/// with what the two protocols carry). The table also holds a row from HLS, which nothing
/// publishes: copy rules that are never planned ([`super::plan`] refuses HLS as a source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrix {
    version: u32,
    protocols: [ProtocolCaps; N],
    cells: [Cell; N * N],
}

impl Matrix {
    /// Builds a matrix from parts already checked by the loader.
    pub(crate) fn from_parts(version: u32, protocols: [ProtocolCaps; N], cells: [Cell; N * N]) -> Self {
        Matrix { version, protocols, cells }
    }

    /// Reads and validates a matrix file. An unreadable file is one diagnostic at `0:0`.
    pub fn load(path: &Path) -> Result<Matrix, MatrixError> {
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Matrix::parse(&text, &file),
            Err(err) => Err(MatrixError {
                diagnostics: vec![Diagnostic::new(
                    &file,
                    Pos { line: 0, column: 0 },
                    format!("cannot read the matrix: {err}"),
                )],
            }),
        }
    }

    /// Validates matrix text; `file` is the name diagnostics use.
    pub fn parse(text: &str, file: &str) -> Result<Matrix, MatrixError> {
        super::load::parse_matrix(text, file)
    }

    /// The schema version of the file (currently always 1).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// What `protocol` carries.
    pub fn caps(&self, protocol: Protocol) -> &ProtocolCaps {
        &self.protocols[index(protocol)]
    }

    /// The cell for `from` → `to`.
    pub fn cell(&self, from: Protocol, to: Protocol) -> &Cell {
        &self.cells[index(from) * N + index(to)]
    }

    /// The rule for one track from `from` to `to`.
    pub fn rule(&self, from: Protocol, to: Protocol, track: TrackKind) -> &Rule {
        self.cell(from, to).rule(track)
    }

    /// The codecs `protocol` carries on `track`, in order of preference.
    pub fn codecs(&self, protocol: Protocol, track: TrackKind) -> &[Codec] {
        self.caps(protocol).codecs(track)
    }

    /// Whether `protocol`'s receivers cope with B-frames.
    pub fn allows_bframes(&self, protocol: Protocol) -> bool {
        self.caps(protocol).bframes
    }

    /// The longest keyframe interval `protocol`'s receivers accept, in milliseconds.
    pub fn max_keyframe_interval_ms(&self, protocol: Protocol) -> Option<u32> {
        self.caps(protocol).keyframe_interval_ms
    }

    /// Pipeline parameters for conversions from `from` to `to` (empty when none are set).
    pub fn params(&self, from: Protocol, to: Protocol) -> &BTreeMap<String, String> {
        &self.cell(from, to).params
    }
}

/// `{"version":1,"protocols":{"webrtc":{"video":["h264","vp8"],...}},"rules":{"webrtc":
/// {"h5":{"video":"h264->mpeg1","audio":"opus->mp2","params":{"width":"640"}},...}}}`,
/// protocols in the reference table's order.
impl Serialize for Matrix {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("Matrix", 3)?;
        out.serialize_field("version", &self.version)?;
        out.serialize_field("protocols", &ProtocolsView(self))?;
        out.serialize_field("rules", &RulesView(self))?;
        out.end()
    }
}

struct ProtocolsView<'a>(&'a Matrix);

impl Serialize for ProtocolsView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(N))?;
        for protocol in Protocol::ALL {
            map.serialize_entry(protocol.as_str(), self.0.caps(protocol))?;
        }
        map.end()
    }
}

struct RulesView<'a>(&'a Matrix);
struct RowView<'a>(&'a Matrix, Protocol);

impl Serialize for RulesView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(Protocol::PUBLISHERS.len()))?;
        for from in Protocol::PUBLISHERS {
            map.serialize_entry(from.as_str(), &RowView(self.0, from))?;
        }
        map.end()
    }
}

impl Serialize for RowView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(N))?;
        for to in Protocol::ALL {
            map.serialize_entry(to.as_str(), self.0.cell(self.1, to))?;
        }
        map.end()
    }
}
