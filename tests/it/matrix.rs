//! The shipped `matrix.yaml` against the reference table, every kind of bad matrix against
//! its diagnostic (exact place), the `check` report format, and the planner over the
//! shipped matrix and pipeline fragments.

use std::collections::BTreeMap;
use std::path::PathBuf;

use interop_gateway::matrix::{check_report, plan, Cell, Leg, Matrix, Rule, Source, SourceTrack};
use interop_gateway::media::{Codec, Protocol, TrackKind};
use interop_gateway::pipeline::Pipelines;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shipped() -> Matrix {
    Matrix::load(&root().join("matrix.yaml")).unwrap_or_else(|e| panic!("matrix.yaml is invalid:\n{e}"))
}

/// The reference interop table (shared/reference/interop-matrix.md), rows = publisher,
/// columns = viewer, both in `Protocol::PUBLISHERS` order (the table has no HLS column).
const EXPECTED: [[&str; 6]; 6] = [
    ["copy", "H264→MPEG1", "Opus→AAC", "Opus→AAC", "maybe", "Opus→AAC"],
    ["MPEG1→H264", "copy", "MPEG1→H264", "MPEG1→H264", "MPEG1→H264", "MPEG1→H264"],
    ["AAC→Opus", "H264→MPEG1", "copy", "copy", "maybe", "copy"],
    ["AAC→Opus", "H264→MPEG1", "copy", "copy", "maybe", "copy"],
    ["maybe", "H264→MPEG1", "maybe", "maybe", "copy", "maybe"],
    ["AAC→Opus", "H264→MPEG1", "copy", "copy", "maybe", "copy"],
];

fn codec_title(codec: Codec) -> &'static str {
    match codec {
        Codec::H264 => "H264",
        Codec::Vp8 => "VP8",
        Codec::Mpeg1 => "MPEG1",
        Codec::Aac => "AAC",
        Codec::Opus => "Opus",
        Codec::Mp2 => "MP2",
        Codec::Pcmu => "PCMU",
        Codec::Pcma => "PCMA",
    }
}

/// The reference table's headline for a cell: a video conversion names the cell; otherwise
/// an audio conversion with copied video; copy/copy is `copy`, auto/auto `maybe`.
fn headline(cell: &Cell) -> String {
    match (cell.video, cell.audio) {
        (Rule::Copy, Rule::Copy) => "copy".into(),
        (Rule::Auto, Rule::Auto) => "maybe".into(),
        (Rule::Convert { from, to }, _) | (Rule::Copy, Rule::Convert { from, to }) => {
            format!("{}→{}", codec_title(from), codec_title(to))
        }
        (video, audio) => format!("no headline for video {video}, audio {audio}"),
    }
}

#[test]
fn shipped_matrix_reproduces_the_reference_table_cell_by_cell() {
    let m = shipped();
    for (i, from) in Protocol::PUBLISHERS.into_iter().enumerate() {
        for (j, to) in Protocol::PUBLISHERS.into_iter().enumerate() {
            assert_eq!(headline(m.cell(from, to)), EXPECTED[i][j], "cell {from} -> {to}");
        }
    }
}

/// The HLS column (issue 13): H.264 + AAC copied from the RTMP family and UDP, Opus→AAC for
/// WebRTC, MPEG-1→H.264 and MP2→AAC for H5.
#[test]
fn shipped_matrix_has_the_hls_column() {
    let m = shipped();
    let caps = m.caps(Protocol::Hls);
    assert_eq!((caps.video.as_slice(), caps.audio.as_slice()), (&[Codec::H264][..], &[Codec::Aac][..]));
    let want = [
        (Protocol::Webrtc, Rule::Copy, Rule::Convert { from: Codec::Opus, to: Codec::Aac }),
        (
            Protocol::H5,
            Rule::Convert { from: Codec::Mpeg1, to: Codec::H264 },
            Rule::Convert { from: Codec::Mp2, to: Codec::Aac },
        ),
        (Protocol::Miniprogram, Rule::Copy, Rule::Copy),
        (Protocol::Rtmp, Rule::Copy, Rule::Copy),
        (Protocol::Udp, Rule::Auto, Rule::Auto),
        (Protocol::Cdn, Rule::Copy, Rule::Copy),
    ];
    for (from, video, audio) in want {
        let cell = m.cell(from, Protocol::Hls);
        assert_eq!((cell.video, cell.audio), (video, audio), "cell {from} -> hls");
    }
}

/// A matrix written before HLS existed still loads: its HLS column is `auto`, which copies
/// H.264/AAC and converts the rest to them.
#[test]
fn a_matrix_without_hls_defaults_its_column_to_auto() {
    let text = std::fs::read_to_string(fixture("valid.yaml")).expect("fixture");
    assert!(!text.contains("hls"), "the fixture predates HLS");
    let m = Matrix::parse(&text, "valid.yaml").unwrap_or_else(|e| panic!("{e}"));
    for from in Protocol::PUBLISHERS {
        let cell = m.cell(from, Protocol::Hls);
        assert_eq!((cell.video, cell.audio), (Rule::Auto, Rule::Auto), "cell {from} -> hls");
    }
    let source = interop_gateway::matrix::Source::default_for(&m, Protocol::Webrtc);
    let plan = interop_gateway::matrix::plan(&m, Protocol::Webrtc, &source, Protocol::Hls).expect("plan");
    assert_eq!(plan.audio.map(|l| l.output_codec()), Some(Codec::Aac));
}

/// Nothing publishes HLS: a row from it is refused, and so is planning from it.
#[test]
fn hls_is_play_only() {
    let text = std::fs::read_to_string(root().join("matrix.yaml")).expect("matrix.yaml");
    let with_row = format!("{text}\n  hls:\n    rtmp: {{ video: copy, audio: copy }}\n");
    let err = Matrix::parse(&with_row, "m.yaml").expect_err("an hls row is refused");
    assert!(err.to_string().contains("no rules from hls: it is play only"), "{err}");
    let m = shipped();
    let source = interop_gateway::matrix::Source::default_for(&m, Protocol::Rtmp);
    let err = interop_gateway::matrix::plan(&m, Protocol::Hls, &source, Protocol::Rtmp).expect_err("no plan from hls");
    assert!(err.to_string().contains("play only"), "{err}");
}

/// The first markdown table of the reference document: (row, column) → cell text.
fn reference_cells(text: &str) -> BTreeMap<(String, String), String> {
    let split = |line: &str| -> Vec<String> {
        line.trim().trim_matches('|').split('|').map(|c| c.trim().to_string()).collect()
    };
    let mut lines = text.lines().skip_while(|l| !l.trim_start().starts_with('|'));
    let header = split(lines.next().unwrap_or_default());
    let mut cells = BTreeMap::new();
    for line in lines.skip(1).take_while(|l| l.trim_start().starts_with('|')) {
        let row = split(line);
        for (column, value) in header.iter().zip(&row).skip(1) {
            cells.insert((row[0].clone(), column.clone()), value.clone());
        }
    }
    cells
}

#[test]
fn shipped_matrix_matches_the_reference_document_when_present() {
    let path = root().join("../shared/reference/interop-matrix.md");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("{} not found; compared against the embedded table only", path.display());
        return;
    };
    let cells = reference_cells(&text);
    assert_eq!(cells.len(), 36, "the reference table should have 6x6 cells: {cells:?}");
    let m = shipped();
    for from in Protocol::PUBLISHERS {
        for to in Protocol::PUBLISHERS {
            let key = (from.to_string(), to.to_string());
            let expected = cells.get(&key).unwrap_or_else(|| panic!("reference has no cell {from} -> {to}"));
            assert_eq!(&headline(m.cell(from, to)), expected, "cell {from} -> {to}");
        }
    }
}

#[test]
fn shipped_matrix_answers_the_accessors() {
    let m = shipped();
    assert_eq!(
        m.rule(Protocol::Webrtc, Protocol::Rtmp, TrackKind::Audio),
        &Rule::Convert { from: Codec::Opus, to: Codec::Aac }
    );
    assert_eq!(m.rule(Protocol::Webrtc, Protocol::Rtmp, TrackKind::Video), &Rule::Copy);
    assert_eq!(m.codecs(Protocol::Webrtc, TrackKind::Video), &[Codec::H264, Codec::Vp8]);
    assert_eq!(m.codecs(Protocol::H5, TrackKind::Audio), &[Codec::Mp2]);
    assert!(!m.allows_bframes(Protocol::Webrtc));
    assert!(!m.allows_bframes(Protocol::H5));
    assert!(m.allows_bframes(Protocol::Rtmp));
    assert_eq!(m.params(Protocol::Webrtc, Protocol::H5).get("width").map(String::as_str), Some("640"));
    assert!(m.params(Protocol::Webrtc, Protocol::Rtmp).is_empty());
}

#[test]
fn matrix_serializes_protocols_and_rules_as_strings() {
    let json = serde_json::to_value(shipped()).expect("serializable");
    assert_eq!(json["version"], 1);
    assert_eq!(json["protocols"]["webrtc"]["video"], serde_json::json!(["h264", "vp8"]));
    assert_eq!(json["protocols"]["h5"]["bframes"], false);
    assert_eq!(json["rules"]["webrtc"]["rtmp"]["audio"], "opus->aac");
    assert_eq!(json["rules"]["webrtc"]["rtmp"]["video"], "copy");
    assert_eq!(json["rules"]["udp"]["cdn"]["video"], "auto");
    assert_eq!(json["rules"]["webrtc"]["h5"]["params"]["width"], "640");
    let rows = json["rules"].as_object().expect("rules object");
    assert_eq!(rows.len(), 6);
    assert!(rows.values().all(|row| row.as_object().is_some_and(|r| r.len() == 7)), "six rows of seven columns");
    assert_eq!(json["rules"]["webrtc"]["hls"]["audio"], "opus->aac");
}

/// Every source the udp protocol (which carries everything) could publish.
fn udp_sources(m: &Matrix) -> Vec<Source> {
    let mut sources = Vec::new();
    for &video in m.codecs(Protocol::Udp, TrackKind::Video) {
        for &audio in m.codecs(Protocol::Udp, TrackKind::Audio) {
            for bframes in [false, true] {
                sources.push(Source {
                    video: Some(SourceTrack { bframes: bframes && video == Codec::H264, ..SourceTrack::new(video) }),
                    audio: Some(SourceTrack::new(audio)),
                });
            }
        }
    }
    sources
}

#[test]
fn every_plan_of_the_shipped_matrix_delivers_what_the_receiver_carries_with_buildable_pipelines() {
    let m = shipped();
    let pipelines = Pipelines::load(&root().join("pipelines")).expect("shipped pipelines load");
    for from in Protocol::PUBLISHERS {
        let mut sources = vec![Source::default_for(&m, from)];
        if from == Protocol::Udp {
            sources.extend(udp_sources(&m));
        }
        for to in Protocol::ALL {
            for source in &sources {
                let p = plan(&m, from, source, to).expect("plannable");
                for track in TrackKind::ALL {
                    let leg = p.leg(track).expect("both tracks present");
                    assert!(
                        m.codecs(to, track).contains(&leg.output_codec()),
                        "{from} -> {to} {track}: {leg:?} gives a codec {to} cannot carry"
                    );
                    if let Leg::Convert { from: a, to: b, .. } = *leg {
                        let description = pipelines.conversion(a, b, m.params(from, to)).expect("conversion builds");
                        assert!(!description.contains('{'), "{description}");
                    }
                }
            }
        }
    }
}

#[test]
fn default_publishers_copy_within_a_family_and_convert_across() {
    let m = shipped();
    let legs = |from, to| {
        let p = plan(&m, from, &Source::default_for(&m, from), to).expect("plannable");
        (p.video.map(|l| l.is_copy()), p.audio.map(|l| l.is_copy()))
    };
    assert_eq!(legs(Protocol::Rtmp, Protocol::Cdn), (Some(true), Some(true)));
    assert_eq!(legs(Protocol::Webrtc, Protocol::Miniprogram), (Some(true), Some(false)));
    assert_eq!(legs(Protocol::Webrtc, Protocol::H5), (Some(false), Some(false)));
    assert_eq!(legs(Protocol::H5, Protocol::Udp), (Some(false), Some(true)));
}

// ---- bad matrices: every kind of problem, at its exact place --------------------------

fn fixture(name: &str) -> PathBuf {
    root().join("fixtures/matrices").join(name)
}

/// `(line, column, message)` of every problem in a fixture.
fn problems(name: &str) -> Vec<(u64, u64, String)> {
    match Matrix::load(&fixture(name)) {
        Ok(_) => panic!("{name} should be invalid"),
        Err(err) => err.diagnostics.into_iter().map(|d| (d.line, d.column, d.message)).collect(),
    }
}

/// Asserts the fixture has exactly these problems: `(line, column, part of the message)`.
fn assert_problems(name: &str, expected: &[(u64, u64, &str)]) {
    let got = problems(name);
    assert_eq!(got.len(), expected.len(), "{name}: {got:#?}");
    for (g, e) in got.iter().zip(expected) {
        assert_eq!((g.0, g.1), (e.0, e.1), "{name}: place of {:?}", g.2);
        assert!(g.2.contains(e.2), "{name}: {:?} should contain {:?}", g.2, e.2);
    }
}

#[test]
fn the_valid_fixture_is_valid() {
    Matrix::load(&fixture("valid.yaml")).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn unknown_protocols_are_reported_where_written() {
    assert_problems(
        "unknown_protocol.yaml",
        &[(3, 1, "missing protocol `cdn` in `protocols`"), (9, 3, "unknown protocol `cdm`")],
    );
    assert_problems(
        "unknown_protocol_in_rules.yaml",
        &[(32, 3, "missing rule rtmp -> rtmp"), (36, 5, "unknown protocol `rtmpp`")],
    );
}

#[test]
fn unknown_codecs_are_reported_where_written() {
    assert_problems("unknown_codec.yaml", &[(5, 26, "unknown codec `mpeg2`")]);
    assert_problems("unknown_codec_in_rule.yaml", &[(19, 28, "unknown codec `h265`")]);
}

#[test]
fn missing_pairs_point_at_their_row_or_at_rules() {
    assert_problems("missing_pair.yaml", &[(32, 3, "missing rule rtmp -> udp")]);
    let got = problems("missing_row.yaml");
    assert_eq!(got.len(), 6, "{got:#?}");
    for (to, problem) in Protocol::PUBLISHERS.iter().zip(&got) {
        assert_eq!((problem.0, problem.1), (10, 1));
        assert_eq!(problem.2, format!("missing rule cdn -> {to} (no `cdn` row in `rules`)"));
    }
}

#[test]
fn conversions_must_fit_both_protocols() {
    assert_problems(
        "receiver_cannot_carry.yaml",
        &[(15, 41, "`opus->mp2`: the receiver cannot carry mp2: rtmp carries aac")],
    );
    assert_problems(
        "source_cannot_carry.yaml",
        &[(33, 41, "`mp2->opus`: the source cannot carry mp2: rtmp carries aac")],
    );
    assert_problems("wrong_kind.yaml", &[(13, 28, "`opus->mpeg1` in the video rule: opus is an audio codec")]);
}

#[test]
fn copy_without_a_shared_codec_is_reported() {
    assert_problems("copy_impossible.yaml", &[(22, 28, "copy cannot work: h5 carries mpeg1, rtmp carries h264")]);
}

#[test]
fn yaml_syntax_errors_have_a_place() {
    assert_problems("bad_syntax.yaml", &[(21, 16, "YAML syntax: ")]);
}

#[test]
fn malformed_rules_unknown_fields_and_bad_values_are_reported() {
    assert_problems("malformed_rule.yaml", &[(29, 41, "malformed rule `opus=>aac`")]);
    assert_problems(
        "unknown_field.yaml",
        &[
            (26, 19, "the rule miniprogram -> webrtc: missing `video`"),
            (26, 21, "unknown field `vidoe` in the rule miniprogram -> webrtc"),
        ],
    );
    assert_problems("unknown_top_level.yaml", &[(3, 1, "unknown field `defaults` in the matrix")]);
    assert_problems("bad_version.yaml", &[(2, 10, "unsupported version `2`")]);
    assert_problems("bad_param.yaml", &[(13, 76, "parameter `width` must be a scalar, found a sequence")]);
}

#[test]
fn duplicate_keys_are_reported_with_the_first_place() {
    assert_problems(
        "duplicate_key.yaml",
        &[
            (18, 3, "missing rule h5 -> miniprogram"),
            (21, 5, "duplicate key `webrtc` in the rules from h5 (first at line 19, column 5)"),
        ],
    );
}

#[test]
fn all_problems_of_a_file_are_reported_in_file_order() {
    assert_problems(
        "several_problems.yaml",
        &[(22, 28, "copy cannot work"), (29, 41, "malformed rule `opus=>aac`"), (46, 3, "missing rule cdn -> udp")],
    );
}

// ---- the `check` report -----------------------------------------------------------------

#[test]
fn check_report_prints_one_line_per_problem_as_file_line_col_message() {
    let path = fixture("several_problems.yaml");
    let (text, ok) = check_report(&path);
    assert!(!ok);
    let file = path.display().to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with(&format!("{file}:22:28: copy cannot work")), "{text}");
    assert!(lines[1].starts_with(&format!("{file}:29:41: malformed rule")), "{text}");
    assert_eq!(lines[2], format!("{file}:46:3: missing rule cdn -> udp"));
}

/// Keys and values quoted in a message may hold line breaks (an escape in a quoted scalar, a
/// block scalar); `check` escapes them so every problem stays one `FILE:LINE:COL: message`.
#[test]
fn check_report_keeps_problems_with_line_breaks_on_one_line() {
    let path = fixture("control_characters.yaml");
    let (text, ok) = check_report(&path);
    assert!(!ok);
    let file = path.display().to_string();
    let lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(
        lines,
        [
            format!("{file}:5:3: unknown field `two\\nlines\\n` in the matrix (expected version, protocols, rules)"),
            format!("{file}:41:28: malformed rule `copy\\nauto`: expected `copy`, `auto` or `CODEC->CODEC` (e.g. `opus->aac`)"),
            format!("{file}:41:49: malformed rule `copy\\r\\tx`: expected `copy`, `auto` or `CODEC->CODEC` (e.g. `opus->aac`)"),
        ],
        "{text}"
    );
    assert!(!text.contains(['\r', '\t']), "{text:?}");
}

#[test]
fn check_report_of_a_valid_matrix_is_one_ok_line() {
    let path = root().join("matrix.yaml");
    let (text, ok) = check_report(&path);
    assert!(ok, "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with(&format!("{}: ok (7 protocols, 42 pairs", path.display())), "{text}");
}

#[test]
fn check_report_of_an_unreadable_file_is_a_problem_at_zero() {
    let path = fixture("does-not-exist.yaml");
    let (text, ok) = check_report(&path);
    assert!(!ok);
    assert!(text.starts_with(&format!("{}:0:0: cannot read the matrix", path.display())), "{text}");
}

#[test]
fn an_empty_file_is_reported() {
    let err = Matrix::parse("", "empty.yaml").expect_err("empty is invalid");
    assert_eq!(err.diagnostics.len(), 1);
    assert!(err.to_string().starts_with("empty.yaml:1:1: the matrix is empty"), "{err}");
}
