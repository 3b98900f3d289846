//! Validation of the `rules` section: every ordered pair present, every rule well formed and
//! able to work with what its two protocols carry.

use super::load::{codec_list_text, kind_phrase, CapsTable, CellTable, Field, Params, Validator};
use super::model::{index, Cell};
use super::node::{Node, NodeKind};
use super::rule::Rule;
use crate::media::{Protocol, TrackKind};

const N: usize = Protocol::ALL.len();

impl Validator<'_> {
    /// The `rules` section; `None` when it is not a mapping. Rows are the publishing
    /// protocols; the never-planned row from HLS is filled in here (see [`super::Matrix`]).
    pub(crate) fn rules(&mut self, section: &Field<'_>, caps: &CapsTable) -> Option<CellTable> {
        let rows = self.entries(section.value, "`rules`")?;
        let mut cells: CellTable = vec![None; N * N];
        let mut row_seen = [false; N];
        for row in &rows {
            let Some(from) = self.protocol_key(row) else { continue };
            if !from.publishes() {
                self.report(row.key.pos, format!("no rules from {from}: it is play only (nothing publishes {from})"));
                continue;
            }
            row_seen[index(from)] = true;
            self.row(from, row, caps, &mut cells);
        }
        for from in Protocol::ALL {
            if !from.publishes() {
                for to in Protocol::ALL {
                    cells[index(from) * N + index(to)] = Some(Cell::never_planned());
                }
                continue;
            }
            if row_seen[index(from)] {
                continue;
            }
            for to in Protocol::ALL.into_iter().filter(|to| to.publishes()) {
                self.report(section.key.pos, format!("missing rule {from} -> {to} (no `{from}` row in `rules`)"));
            }
        }
        Some(cells)
    }

    fn row(&mut self, from: Protocol, row: &Field<'_>, caps: &CapsTable, cells: &mut CellTable) {
        let what = format!("the rules from {from}");
        let Some(columns) = self.entries(row.value, &what) else { return };
        let mut seen = [false; N];
        for column in &columns {
            let Some(to) = self.protocol_key(column) else { continue };
            seen[index(to)] = true;
            cells[index(from) * N + index(to)] = self.cell(from, to, column.value, caps);
        }
        for to in Protocol::ALL {
            if seen[index(to)] {
                continue;
            }
            if to.publishes() {
                self.report(row.key.pos, format!("missing rule {from} -> {to}"));
            } else {
                // A matrix written before HLS existed: its column defaults to `auto`.
                cells[index(from) * N + index(to)] = Some(Cell::auto());
            }
        }
    }

    fn cell(&mut self, from: Protocol, to: Protocol, node: &Node, caps: &CapsTable) -> Option<Cell> {
        let what = format!("the rule {from} -> {to}");
        let fields = self.fields(node, &what, &["video", "audio", "params"])?;
        let mut video = None;
        let mut audio = None;
        let mut params = Some(Params::new());
        for f in &fields {
            match f.name {
                "video" => video = self.track_rule(from, to, TrackKind::Video, f.value, caps),
                "audio" => audio = self.track_rule(from, to, TrackKind::Audio, f.value, caps),
                _ => params = self.params(f.value),
            }
        }
        for name in ["video", "audio"] {
            if !fields.iter().any(|f| f.name == name) {
                self.report(node.pos, format!("{what}: missing `{name}` (copy, auto or CODEC->CODEC)"));
            }
        }
        Some(Cell { video: video?, audio: audio?, params: params? })
    }

    fn track_rule(
        &mut self,
        from: Protocol,
        to: Protocol,
        track: TrackKind,
        node: &Node,
        caps: &CapsTable,
    ) -> Option<Rule> {
        let Some(text) = node.as_scalar() else {
            self.report(
                node.pos,
                format!("the {track} rule must be copy, auto or CODEC->CODEC, found {}", node.describe()),
            );
            return None;
        };
        let rule = match text.parse::<Rule>() {
            Ok(rule) => rule,
            Err(err) => {
                self.report(node.pos, err.to_string());
                return None;
            }
        };
        let problem = match (caps.get(from), caps.get(to)) {
            (Some(source), Some(receiver)) => {
                let source_codecs = source.codecs(track);
                let receiver_codecs = receiver.codecs(track);
                rule_problem(rule, track, from, source_codecs, to, receiver_codecs)
            }
            // A protocol whose capabilities are broken is reported already.
            _ => None,
        };
        match problem {
            Some(message) => {
                self.report(node.pos, message);
                None
            }
            None => Some(rule),
        }
    }

    fn params(&mut self, node: &Node) -> Option<Params> {
        if matches!(node.kind, NodeKind::Null) {
            return Some(Params::new());
        }
        let fields = self.entries(node, "`params`")?;
        let mut params = Params::new();
        let mut ok = true;
        for f in &fields {
            if !is_param_name(f.name) {
                self.report(
                    f.key.pos,
                    format!(
                        "parameter name `{}` must be lowercase letters, digits and `_`, starting with a letter",
                        f.name
                    ),
                );
                ok = false;
                continue;
            }
            match f.value.as_scalar() {
                Some(value) => {
                    params.insert(f.name.to_string(), value.to_string());
                }
                None => {
                    self.report(
                        f.value.pos,
                        format!("parameter `{}` must be a scalar, found {}", f.name, f.value.describe()),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(params)
    }
}

/// Why `rule` cannot work between protocols carrying these codecs, if it cannot.
fn rule_problem(
    rule: Rule,
    track: TrackKind,
    from: Protocol,
    source: &[crate::media::Codec],
    to: Protocol,
    receiver: &[crate::media::Codec],
) -> Option<String> {
    match rule {
        Rule::Auto => None,
        Rule::Copy => {
            let shared = source.iter().any(|c| receiver.contains(c));
            (!shared).then(|| {
                format!(
                    "copy cannot work: {from} carries {}, {to} carries {}",
                    codec_list_text(source),
                    codec_list_text(receiver)
                )
            })
        }
        Rule::Convert { from: x, to: y } => {
            if x.kind() != track || y.kind() != track {
                let odd = if x.kind() != track { x } else { y };
                return Some(format!("`{rule}` in the {track} rule: {odd} is {}", kind_phrase(odd.kind())));
            }
            if !source.contains(&x) {
                return Some(format!(
                    "`{rule}`: the source cannot carry {x}: {from} carries {}",
                    codec_list_text(source)
                ));
            }
            if !receiver.contains(&y) {
                return Some(format!(
                    "`{rule}`: the receiver cannot carry {y}: {to} carries {}",
                    codec_list_text(receiver)
                ));
            }
            None
        }
    }
}

/// Parameter names are the placeholders of pipeline fragments: `[a-z][a-z0-9_]*`.
pub fn is_param_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
