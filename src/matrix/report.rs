//! Text for the CLI: `interop-gateway check` and `interop-gateway plan`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::model::Matrix;
use super::plan::{Leg, Plan};
use crate::media::{Protocol, TrackKind};
use crate::pipeline::Pipelines;

/// Validates the matrix file at `path`. Returns the text to print (no trailing newline) and
/// whether the matrix is valid: one `FILE:LINE:COL: message` line per problem, or one
/// `FILE: ok (...)` summary line.
pub fn check_report(path: &Path) -> (String, bool) {
    match Matrix::load(path) {
        Ok(matrix) => (ok_summary(&path.display().to_string(), &matrix), true),
        Err(err) => (err.to_string(), false),
    }
}

fn ok_summary(file: &str, matrix: &Matrix) -> String {
    let (mut copy, mut convert, mut auto) = (0, 0, 0);
    for from in Protocol::PUBLISHERS {
        for to in Protocol::ALL {
            let cell = matrix.cell(from, to);
            let rules = [cell.video, cell.audio];
            if rules.iter().any(|r| matches!(r, super::Rule::Convert { .. })) {
                convert += 1;
            } else if rules.iter().any(|r| matches!(r, super::Rule::Auto)) {
                auto += 1;
            } else {
                copy += 1;
            }
        }
    }
    let n = Protocol::ALL.len();
    let pairs = Protocol::PUBLISHERS.len() * n;
    format!("{file}: ok ({n} protocols, {pairs} pairs: {copy} copy, {convert} convert, {auto} auto)")
}

/// Human text for `interop-gateway plan`: per track whether it is copied or converted and
/// why, and for each conversion the GStreamer pipeline it would run (`pipelines` absent:
/// said so; `params` are the matrix cell's, see [`Matrix::params`]). No trailing newline.
pub fn render_plan(plan: &Plan, pipelines: Option<&Pipelines>, params: &BTreeMap<String, String>) -> String {
    let mut out = format!("{} -> {}", plan.from, plan.to);
    for track in TrackKind::ALL {
        let _ = write!(out, "\n  {track}: ");
        match plan.leg(track) {
            None => {
                let _ = write!(out, "none (the source has no {track} track)");
            }
            Some(Leg::Copy { codec }) => {
                let _ = write!(out, "copy {codec}");
            }
            Some(&Leg::Convert { from, to, reason }) => {
                let _ = write!(out, "convert {from} -> {to} ({})", reason.describe());
                let pipeline = match pipelines.map(|p| p.conversion(from, to, params)) {
                    Some(Ok(middle)) => format!("appsrc ! {middle} ! appsink"),
                    Some(Err(err)) => format!("error: {err}"),
                    None => "(pipeline fragments not loaded)".to_string(),
                };
                let _ = write!(out, "\n    pipeline: {pipeline}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{plan as make_plan, Reason, Source, SourceTrack};
    use crate::media::Codec;

    fn shipped_matrix() -> Matrix {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("matrix.yaml");
        Matrix::load(&path).unwrap_or_else(|e| panic!("shipped matrix is valid:\n{e}"))
    }

    #[test]
    fn plan_text_names_copies_conversions_and_their_pipelines() {
        let m = shipped_matrix();
        let pipelines = Pipelines::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines")).expect("pipelines");
        let source = Source::default_for(&m, Protocol::Webrtc);
        let p = make_plan(&m, Protocol::Webrtc, &source, Protocol::Rtmp).expect("plannable");
        let text = render_plan(&p, Some(&pipelines), m.params(Protocol::Webrtc, Protocol::Rtmp));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "webrtc -> rtmp");
        assert_eq!(lines[1], "  video: copy h264");
        assert_eq!(lines[2], format!("  audio: convert opus -> aac ({})", Reason::Rule.describe()));
        let middle = pipelines.conversion(Codec::Opus, Codec::Aac, &BTreeMap::new()).expect("opus->aac");
        assert_eq!(lines[3], format!("    pipeline: appsrc ! {middle} ! appsink"));
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn plan_text_without_pipelines_or_tracks_says_so() {
        let m = shipped_matrix();
        let source = Source { video: None, audio: Some(SourceTrack::new(Codec::Aac)) };
        let p = make_plan(&m, Protocol::Rtmp, &source, Protocol::Webrtc).expect("plannable");
        let text = render_plan(&p, None, &BTreeMap::new());
        assert!(text.contains("\n  video: none (the source has no video track)"), "{text}");
        assert!(text.contains("\n    pipeline: (pipeline fragments not loaded)"), "{text}");
    }
}
