//! The operator's console, `GET /console`: a single-page app built from `console/` by
//! `npm run build` (vite + TypeScript; mpegts.js, hls.js and JSMpeg bundled, no CDN) into
//! `console/dist/`, which the gateway serves from disk at run time (like the player pages'
//! scripts from `node_modules/`). `INTEROP_CONSOLE_DIR` names another directory. When the
//! app is not built, `/console` answers 503 with what to run.
//!
//! The page itself holds nothing secret; everything it shows comes from the control API
//! (`/api/v1/events` and the rest), which keeps its own access rules.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::error::ErrorBody;
use crate::http::routes::Routes;
use crate::http::ApiError;

/// The environment variable that overrides where the built console is read from.
pub const CONSOLE_ENV: &str = "INTEROP_CONSOLE_DIR";
/// Where `npm run build` in the repository root puts it (relative to the working directory).
pub const CONSOLE_DEFAULT: &str = "console/dist";

/// The built console's directory: `$INTEROP_CONSOLE_DIR`, else [`CONSOLE_DEFAULT`].
pub fn console_dir() -> PathBuf {
    std::env::var_os(CONSOLE_ENV).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(CONSOLE_DEFAULT))
}

/// Whether `path` is the console's (served beside the API when the API has its own listener).
pub fn is_console(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

pub fn routes(dir: PathBuf) -> Routes {
    Routes::new()
        .get("/console", index)
        .get("/console/", index_slash)
        .get("/console/{*asset}", asset)
        .with_state(Arc::new(dir))
}

/// The OpenAPI description of these routes (see `crate::api::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(index, index_slash, asset))]
pub struct Doc;

fn not_built(dir: &Path, error: &std::io::Error) -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "the console is not built: cannot read {} ({error}). Run `npm ci && npm run build` in the repository \
             root (scripts/install-deps.sh does), or set {CONSOLE_ENV} to a built console directory.",
            dir.join("index.html").display()
        ),
    )
    .into_response()
}

fn no_such_file() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "no such console file").into_response()
}

#[utoipa::path(get, path = "/console", tag = "console",
    summary = "The operator's console (a single-page app)",
    responses(
        (status = 200, description = "The app's page", content_type = "text/html; charset=utf-8", body = String),
        (status = 503, description = "The console is not built (`npm ci && npm run build`)", body = ErrorBody),
    ))]
async fn index(State(dir): State<Arc<PathBuf>>) -> Response {
    match tokio::fs::read(dir.join("index.html")).await {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
                (header::HeaderName::from_static("x-frame-options"), "DENY"),
            ],
            body,
        )
            .into_response(),
        Err(e) => not_built(&dir, &e),
    }
}

/// The file under the console directory that `asset` names, when it names one safely (plain
/// components only: no `..`, no absolute path, no hidden files).
pub fn resolve(dir: &Path, asset: &str) -> Option<PathBuf> {
    let relative = Path::new(asset);
    let mut out = dir.to_path_buf();
    let mut any = false;
    for component in relative.components() {
        match component {
            Component::Normal(part) if !part.to_string_lossy().starts_with('.') => {
                out.push(part);
                any = true;
            }
            _ => return None,
        }
    }
    any.then_some(out)
}

/// The content type of a built file, by its extension.
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

#[utoipa::path(get, path = "/console/", tag = "console",
    summary = "The operator's console (as `/console`)",
    responses(
        (status = 200, description = "The app's page", content_type = "text/html; charset=utf-8", body = String),
        (status = 503, description = "The console is not built (`npm ci && npm run build`)", body = ErrorBody),
    ))]
async fn index_slash(dir: State<Arc<PathBuf>>) -> Response {
    index(dir).await
}

#[utoipa::path(get, path = "/console/{asset}", tag = "console",
    summary = "A file of the built console (scripts, styles)",
    params(("asset" = String, Path, description = "A path under the built console, e.g. `assets/index-HASH.js`")),
    responses(
        (status = 200, description = "The file, typed by its extension", content_type = "application/octet-stream", body = String),
        (status = 404, description = "No such file (or a path that leaves the console's directory)", body = ErrorBody),
        (status = 503, description = "The console is not built (`npm ci && npm run build`)", body = ErrorBody),
    ))]
async fn asset(State(dir): State<Arc<PathBuf>>, UrlPath(asset): UrlPath<String>) -> Response {
    if asset.is_empty() || asset == "index.html" {
        return index(State(dir)).await;
    }
    let Some(path) = resolve(&dir, &asset) else {
        return no_such_file();
    };
    match tokio::fs::read(&path).await {
        Ok(body) => {
            // Vite names built files by their content hash: they never change under one name.
            let cache = if asset.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
            ([(header::CONTENT_TYPE, content_type(&path)), (header::CACHE_CONTROL, cache)], body).into_response()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Err(e) = tokio::fs::metadata(dir.join("index.html")).await {
                return not_built(&dir, &e);
            }
            no_such_file()
        }
        Err(_) => no_such_file(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_resolve_inside_the_directory_only() {
        let dir = Path::new("/srv/console");
        assert_eq!(resolve(dir, "assets/index-abc.js"), Some(PathBuf::from("/srv/console/assets/index-abc.js")));
        assert_eq!(resolve(dir, "../secret"), None);
        assert_eq!(resolve(dir, "assets/../../etc/passwd"), None);
        assert_eq!(resolve(dir, "/etc/passwd"), None);
        assert_eq!(resolve(dir, ".env"), None);
        assert_eq!(resolve(dir, ""), None);
        assert_eq!(content_type(Path::new("a/b.js")), "text/javascript; charset=utf-8");
        assert!(is_console("/console") && is_console("/console/assets/x.js") && !is_console("/consoles"));
    }

    #[tokio::test]
    async fn an_unbuilt_console_answers_503_with_what_to_run() {
        let response = index(State(Arc::new(PathBuf::from("/nonexistent/console-dist")))).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("npm run build") && text.contains(CONSOLE_ENV), "{text}");
    }
}
