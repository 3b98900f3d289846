//! Editing the matrix through the API (the console's editor):
//!
//! - `POST /api/v1/matrix/check` `{"yaml"}` → `{"valid", "problems": [{"line", "column",
//!   "message"}]}`: the validation `interop-gateway check` runs, nothing changed.
//! - `PUT /api/v1/matrix` `{"yaml"}`: validates (422 with the problems when invalid; nothing
//!   changed), keeps the current text as the previous one, writes the matrix file atomically
//!   and reloads it as `POST /api/v1/matrix/reload` does. A reload that fails puts both files
//!   back as they were.
//! - `POST /api/v1/matrix/rollback`: swaps the matrix file with the previous text and reloads
//!   (409 when there is none), so a rollback can itself be rolled back.
//! - `GET /api/v1/matrix/source`: the current text and whether a previous one exists.
//!
//! The previous text lives beside the matrix file, as `FILE.previous`, so it survives a
//! restart. Edits are serialized; YAML travels inside JSON (the API's state changes take JSON).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::gateway::Gateway;
use crate::http::error::ErrorBody;
use crate::http::{parse_json, ApiError};
use crate::matrix::Matrix;

/// A matrix text to check or apply (YAML travels inside JSON: a state change takes a JSON body).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct YamlBody {
    /// The whole matrix file, as `matrix.yaml` holds it.
    yaml: String,
}

/// One problem in a matrix text, where `interop-gateway check` would put it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

/// Whether a matrix text is valid, and its problems (none when valid).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CheckView {
    pub valid: bool,
    pub problems: Vec<Problem>,
}

/// Validates matrix text as `interop-gateway check` validates a file.
pub fn check_text(yaml: &str, file: &str) -> CheckView {
    match Matrix::parse(yaml, file) {
        Ok(_) => CheckView { valid: true, problems: Vec::new() },
        Err(e) => CheckView {
            valid: false,
            problems: e
                .diagnostics
                .into_iter()
                .map(|d| Problem { line: d.line, column: d.column, message: d.message })
                .collect(),
        },
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("the matrix is not valid")]
    Invalid(Vec<Problem>),
    #[error("there is no previous matrix to roll back to")]
    NoPrevious,
    #[error("{what} {}: {source}", path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
}

/// The matrix file and its previous text (`FILE.previous`).
pub struct MatrixFile {
    path: PathBuf,
}

/// What a write replaced, to put back when the reload that follows fails.
pub struct Undo {
    current: Option<String>,
    previous: Option<String>,
}

impl MatrixFile {
    pub fn new(path: &Path) -> MatrixFile {
        MatrixFile { path: path.to_path_buf() }
    }

    pub fn previous_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".previous");
        PathBuf::from(name)
    }

    /// The name diagnostics carry (as `check` prints it).
    pub fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn read(path: &Path, what: &'static str) -> Result<Option<String>, EditError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(EditError::Io { what, path: path.to_path_buf(), source }),
        }
    }

    pub fn current(&self) -> Result<Option<String>, EditError> {
        Self::read(&self.path, "cannot read the matrix file")
    }

    pub fn previous(&self) -> Result<Option<String>, EditError> {
        Self::read(&self.previous_path(), "cannot read the previous matrix")
    }

    /// Validates `yaml` and writes it as the matrix, the text it replaces becoming the
    /// previous one. Nothing is changed when it is invalid or the first write fails.
    pub fn replace(&self, yaml: &str) -> Result<Undo, EditError> {
        let check = check_text(yaml, &self.name());
        if !check.valid {
            return Err(EditError::Invalid(check.problems));
        }
        let undo = Undo { current: self.current()?, previous: self.previous()? };
        if let Some(current) = &undo.current {
            write_atomic(&self.previous_path(), current)?;
        }
        if let Err(e) = write_atomic(&self.path, yaml) {
            self.undo(&undo);
            return Err(e);
        }
        Ok(undo)
    }

    /// Swaps the matrix with the previous text.
    pub fn rollback(&self) -> Result<Undo, EditError> {
        let previous = self.previous()?.ok_or(EditError::NoPrevious)?;
        let undo = Undo { current: self.current()?, previous: Some(previous.clone()) };
        write_atomic(&self.path, &previous)?;
        if let Some(current) = &undo.current {
            if let Err(e) = write_atomic(&self.previous_path(), current) {
                self.undo(&undo);
                return Err(e);
            }
        }
        Ok(undo)
    }

    /// Puts both files back as they were before the write `undo` came from (best effort:
    /// a failure is logged).
    pub fn undo(&self, undo: &Undo) {
        for (path, text) in [(&self.path, &undo.current), (&self.previous_path(), &undo.previous)] {
            let result = match text {
                Some(text) => write_atomic(path, text).map_err(|e| e.to_string()),
                None => match std::fs::remove_file(path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
                    _ => Ok(()),
                },
            };
            if let Err(error) = result {
                tracing::error!(path = %path.display(), %error, "cannot put the matrix file back");
            }
        }
    }
}

/// Writes `text` to a temporary file beside `path`, syncs it and renames it over `path`, so
/// a reader (or a crash) sees the old or the new text, never a part.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), EditError> {
    let io = |source| EditError::Io { what: "cannot write", path: path.to_path_buf(), source };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io)
}

/// Serializes edits: one check-write-reload at a time.
static EDITING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A matrix applied (or rolled back) and reloaded.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AppliedView {
    pub applied: bool,
    pub message: String,
    pub generation: u64,
    /// Whether a previous text exists (for rollback).
    pub previous: bool,
}

/// The matrix file's text as it is on disk now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SourceView {
    pub file: String,
    pub yaml: String,
    pub previous: bool,
    pub generation: u64,
}

/// The answer to an invalid matrix: an `{"error"}` body with the problems beside it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InvalidMatrix {
    /// What went wrong, in words.
    pub error: String,
    /// Always false.
    pub valid: bool,
    pub problems: Vec<Problem>,
}

fn refusal(e: EditError) -> Response {
    match e {
        EditError::Invalid(problems) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(InvalidMatrix {
                error: "the matrix is not valid; nothing was changed".into(),
                valid: false,
                problems,
            }),
        )
            .into_response(),
        EditError::NoPrevious => ApiError::new(StatusCode::CONFLICT, e.to_string()).into_response(),
        EditError::Io { .. } => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `POST /api/v1/matrix/check`.
#[utoipa::path(post, path = "/api/v1/matrix/check", tag = "matrix",
    summary = "Check a matrix text without applying it",
    description = "Validates the text as `interop-gateway check` validates a file: each problem with its \
        line and column. Nothing changes.",
    request_body = YamlBody,
    responses(
        (status = 200, description = "Valid, or its problems", body = CheckView),
        (status = 400, description = "The body is not `{\"yaml\": string}`", body = ErrorBody),
    ))]
pub async fn check(State(gw): State<Gateway>, body: Bytes) -> Result<Json<CheckView>, ApiError> {
    let req: YamlBody = parse_json(&body)?;
    Ok(Json(check_text(&req.yaml, &MatrixFile::new(gw.matrix_path()).name())))
}

/// `GET /api/v1/matrix/source`.
#[utoipa::path(get, path = "/api/v1/matrix/source", tag = "matrix",
    summary = "The matrix file's text",
    description = "The text on disk (what an edit starts from), whether a previous text is kept for \
        rollback, and the running matrix's generation.",
    responses(
        (status = 200, description = "The text", body = SourceView),
        (status = 500, description = "The file could not be read", body = ErrorBody),
    ))]
pub async fn source(State(gw): State<Gateway>) -> Result<Json<SourceView>, ApiError> {
    let file = MatrixFile::new(gw.matrix_path());
    let internal = |e: EditError| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let yaml = file.current().map_err(internal)?.unwrap_or_default();
    let previous = file.previous().map_err(internal)?.is_some();
    Ok(Json(SourceView { file: file.name(), yaml, previous, generation: gw.hub.matrix_generation() }))
}

/// `PUT /api/v1/matrix`.
#[utoipa::path(put, path = "/api/v1/matrix", tag = "matrix",
    summary = "Apply a new matrix",
    description = "Validates the text; a valid one replaces the matrix file (written atomically, the \
        current text kept as `FILE.previous` for rollback) and is reloaded as `POST /api/v1/matrix/reload` \
        does. An invalid text, or one the reload refuses, changes nothing.",
    request_body = YamlBody,
    responses(
        (status = 200, description = "Applied and reloaded", body = AppliedView),
        (status = 400, description = "The body is not `{\"yaml\": string}`", body = ErrorBody),
        (status = 422, description = "Invalid (with its problems) or refused by the reload; nothing changed", body = InvalidMatrix),
        (status = 500, description = "The file could not be written; nothing changed", body = ErrorBody),
    ))]
pub async fn put(State(gw): State<Gateway>, body: Bytes) -> Response {
    let req: YamlBody = match parse_json(&body) {
        Ok(req) => req,
        Err(e) => return e.into_response(),
    };
    edit(gw, move |file| file.replace(&req.yaml)).await
}

/// `POST /api/v1/matrix/rollback`.
#[utoipa::path(post, path = "/api/v1/matrix/rollback", tag = "matrix",
    summary = "Put the previous matrix back",
    description = "Swaps the matrix file with the text kept by the last apply (so a rollback can itself be \
        rolled back) and reloads.",
    responses(
        (status = 200, description = "Rolled back and reloaded", body = AppliedView),
        (status = 409, description = "No previous matrix is kept", body = ErrorBody),
        (status = 422, description = "The reload refused the previous text; nothing changed", body = InvalidMatrix),
        (status = 500, description = "The files could not be swapped; nothing changed", body = ErrorBody),
    ))]
pub async fn rollback(State(gw): State<Gateway>) -> Response {
    edit(gw, MatrixFile::rollback).await
}

/// Runs one file change and the reload after it, off the runtime (files are synced, the
/// reload parses the pipelines with GStreamer); a failed reload undoes the change.
async fn edit(gw: Gateway, change: impl FnOnce(&MatrixFile) -> Result<Undo, EditError> + Send + 'static) -> Response {
    let _one_at_a_time = EDITING.lock().await;
    let work = tokio::task::spawn_blocking(move || {
        let file = MatrixFile::new(gw.matrix_path());
        let undo = match change(&file) {
            Ok(undo) => undo,
            Err(e) => return refusal(e),
        };
        let status = gw.reload();
        if !status.ok {
            file.undo(&undo);
            let refused = InvalidMatrix { error: status.message, valid: false, problems: Vec::new() };
            return (StatusCode::UNPROCESSABLE_ENTITY, Json(refused)).into_response();
        }
        tracing::info!(path = %file.name(), generation = gw.hub.matrix_generation(), "matrix edited through the API");
        let previous = file.previous().ok().flatten().is_some();
        Json(AppliedView { applied: true, message: status.message, generation: gw.hub.matrix_generation(), previous })
            .into_response()
    });
    work.await.unwrap_or_else(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())
}

#[cfg(test)]
#[path = "matrix_edit_tests.rs"]
mod tests;
