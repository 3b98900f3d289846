//! Problems found in a matrix file, each with the place it is about.

use std::fmt;

use super::node::Pos;

/// One problem in a matrix file. Displays as `FILE:LINE:COL: message` (line and column are
/// 1-based; `0:0` when the problem has no place, e.g. the file cannot be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl Diagnostic {
    /// Control characters in `file` and `message` (a key or value quoted from the YAML may
    /// hold line breaks) are escaped, so the diagnostic stays one line.
    pub(crate) fn new(file: &str, pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic { file: one_line(file), line: pos.line, column: pos.column, message: one_line(&message.into()) }
    }
}

/// `text` with control characters and Unicode line/paragraph separators escaped (`\n`,
/// `\r`, `\t`, `\u{85}`, ...).
fn one_line(text: &str) -> String {
    let breaks = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}');
    if !text.contains(breaks) {
        return text.to_string();
    }
    text.chars().map(|c| if breaks(c) { c.escape_default().to_string() } else { c.to_string() }).collect()
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

/// A matrix that could not be loaded: every problem found, in file order. Displays as one
/// line per problem (no trailing newline).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_lines(.diagnostics))]
pub struct MatrixError {
    pub diagnostics: Vec<Diagnostic>,
}

fn render_lines(diagnostics: &[Diagnostic]) -> String {
    diagnostics.iter().map(Diagnostic::to_string).collect::<Vec<_>>().join("\n")
}

impl MatrixError {
    /// Sorts the problems by place (stable, so problems at one place keep their order).
    pub(crate) fn sorted(mut diagnostics: Vec<Diagnostic>) -> Self {
        diagnostics.sort_by_key(|d| (d.line, d.column));
        MatrixError { diagnostics }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_file_line_column_message() {
        let d = Diagnostic::new("m.yaml", Pos { line: 3, column: 7 }, "unknown codec `x`");
        assert_eq!(d.to_string(), "m.yaml:3:7: unknown codec `x`");
    }

    #[test]
    fn control_characters_are_escaped_to_keep_one_line() {
        let d = Diagnostic::new("m.yaml", Pos { line: 2, column: 1 }, "unknown field `two\nlines\r\t\u{85}\u{2028}`");
        assert_eq!(d.to_string(), "m.yaml:2:1: unknown field `two\\nlines\\r\\t\\u{85}\\u{2028}`");
        assert_eq!(Diagnostic::new("m.yaml", Pos::START, "häßlich ✓").message, "häßlich ✓");
    }

    #[test]
    fn error_lists_problems_in_file_order() {
        let err = MatrixError::sorted(vec![
            Diagnostic::new("m", Pos { line: 9, column: 1 }, "b"),
            Diagnostic::new("m", Pos { line: 2, column: 5 }, "a"),
        ]);
        assert_eq!(err.to_string(), "m:2:5: a\nm:9:1: b");
    }
}
