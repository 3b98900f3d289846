//! Recordings and clips over HTTP, on the media port:
//! - `GET /recordings/{stream}/{id}.m3u8`: the HLS VOD playlist of a recording (EVENT while
//!   it is still recording), byte ranges over its files;
//! - `GET /recordings/{stream}/{file}.mp4`: a recording's file (download, or a playlist's
//!   byte range: `Range: bytes=A-B` answers 206);
//! - `GET /clips/{stream}/{file}.mp4`: a clip.
//!
//! Admitted like play requests of `{stream}`; the playlist's URIs carry its query on, so
//! keys and signed URLs reach the files too.

use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::clips::Clips;
use super::recordings::Recordings;
use crate::auth::{Action, Admission, Entry};
use crate::http::error::ErrorBody;
use crate::http::routes::Routes;
use crate::http::{parse_key, ApiError};

#[derive(Clone)]
pub struct FilesCtx {
    pub recordings: Recordings,
    pub clips: Clips,
    pub admission: Admission,
}

pub fn routes(ctx: FilesCtx) -> Routes {
    Routes::new()
        .get("/recordings/{stream}/{file}", recording_file)
        .get("/clips/{stream}/{file}", clip_file)
        .with_state(ctx)
}

/// The OpenAPI description of these routes (see `crate::api::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(recording_file, clip_file))]
pub struct Doc;

/// The path of a recording's file or playlist.
pub fn recording_path(stream: &str, file: &str) -> String {
    format!("/recordings/{stream}/{file}")
}

pub fn clip_path(stream: &str, file: &str) -> String {
    format!("/clips/{stream}/{file}")
}

#[utoipa::path(get, path = "/recordings/{stream}/{file}", tag = "media",
    summary = "A recording's HLS playlist or file",
    description = "`{id}.m3u8`: the recording's HLS VOD playlist (EVENT while it records), byte ranges over \
        its files, carrying the request's query on; `{name}.mp4`: one of its files, whole or one byte range. \
        Admitted like a play of `{stream}`.",
    params(
        ("stream" = String, Path, description = "The stream key"),
        ("file" = String, Path, description = "`{id}.m3u8` or a file's `{name}.mp4`"),
        ("Range" = Option<String>, Header, description = "`bytes=A-B`, `bytes=A-` or `bytes=-N`"),
    ),
    responses(
        (status = 200, description = "The playlist (`application/vnd.apple.mpegurl`) or the file (`video/mp4`)", content(
            (String = "application/vnd.apple.mpegurl"),
            (Vec<u8> = "video/mp4"),
        )),
        (status = 206, description = "One byte range of the file", content_type = "video/mp4", body = Vec<u8>),
        (status = 400, description = "Bad stream key", body = ErrorBody),
        (status = 401, description = "Play needs credentials", body = ErrorBody),
        (status = 403, description = "Play refused", body = ErrorBody),
        (status = 404, description = "No such recording or file", body = ErrorBody),
        (status = 416, description = "A range outside the file (with `Content-Range: bytes */LEN`)", body = ErrorBody),
    ))]
async fn recording_file(
    State(ctx): State<FilesCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((stream, file)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = parse_key(&stream)?;
    admit(&ctx, key.as_str(), peer, &uri, &headers).await?;
    if let Some(id) = file.strip_suffix(".m3u8") {
        let index = ctx
            .recordings
            .find(id)
            .await
            .filter(|i| i.stream == key.as_str())
            .ok_or_else(|| ApiError::not_found(format!("no recording `{id}` of stream `{key}`")))?;
        let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        let text = super::vod_playlist(&index, |name| format!("{name}{query}"));
        return Ok((
            [(header::CONTENT_TYPE, "application/vnd.apple.mpegurl"), (header::CACHE_CONTROL, "no-cache")],
            text,
        )
            .into_response());
    }
    let dir = ctx.recordings.settings().dir.join(key.as_str());
    serve_file(&dir, &file, &headers).await
}

#[utoipa::path(get, path = "/clips/{stream}/{file}", tag = "media",
    summary = "A clip (MP4)",
    params(
        ("stream" = String, Path, description = "The stream key"),
        ("file" = String, Path, description = "The clip's `{name}.mp4`, as `POST /api/v1/clips` answered"),
        ("Range" = Option<String>, Header, description = "`bytes=A-B`, `bytes=A-` or `bytes=-N`"),
    ),
    responses(
        (status = 200, description = "The clip", content_type = "video/mp4", body = Vec<u8>),
        (status = 206, description = "One byte range of it", content_type = "video/mp4", body = Vec<u8>),
        (status = 400, description = "Bad stream key", body = ErrorBody),
        (status = 401, description = "Play needs credentials", body = ErrorBody),
        (status = 403, description = "Play refused", body = ErrorBody),
        (status = 404, description = "No such clip", body = ErrorBody),
        (status = 416, description = "A range outside the file (with `Content-Range: bytes */LEN`)", body = ErrorBody),
    ))]
async fn clip_file(
    State(ctx): State<FilesCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((stream, file)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = parse_key(&stream)?;
    admit(&ctx, key.as_str(), peer, &uri, &headers).await?;
    serve_file(&ctx.clips.dir().join(key.as_str()), &file, &headers).await
}

async fn admit(ctx: &FilesCtx, stream: &str, peer: SocketAddr, uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
    crate::http::client::admit(&ctx.admission, Action::Play, Entry::Hls, stream, peer.ip(), uri, headers).await?;
    Ok(())
}

/// A finished `.mp4` of `dir` (names are checked: no path, no hidden or partial files), whole
/// or one byte range.
async fn serve_file(dir: &FsPath, file: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let safe = file.ends_with(".mp4")
        && !file.starts_with('.')
        && file.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    let not_found = || ApiError::not_found(format!("no file `{file}`"));
    if !safe {
        return Err(not_found());
    }
    let path: PathBuf = dir.join(file);
    let data = tokio::fs::read(&path).await.map_err(|_| not_found())?;
    let len = data.len() as u64;
    let common = [
        (header::CONTENT_TYPE, "video/mp4".to_string()),
        (header::CACHE_CONTROL, "public, max-age=3600".to_string()),
        (header::ACCEPT_RANGES, "bytes".to_string()),
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*".to_string()),
    ];
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    match range.map(|r| parse_range(r, len)) {
        None => Ok((common, data).into_response()),
        Some(Some((start, end))) => {
            let body = data[start as usize..=end as usize].to_vec();
            let content_range = (header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
            Ok((StatusCode::PARTIAL_CONTENT, common, [content_range], body).into_response())
        }
        Some(None) => {
            let refusal = ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, format!("bad range for {len} bytes"));
            Ok(([(header::CONTENT_RANGE, format!("bytes */{len}"))], refusal).into_response())
        }
    }
}

/// One range of `bytes=A-B`, `bytes=A-` or `bytes=-N` within `len` bytes: inclusive ends.
fn parse_range(value: &str, len: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        (len.saturating_sub(n), len - 1)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() { len - 1 } else { b.parse::<u64>().ok()?.min(len - 1) };
        (start, end)
    };
    (start <= end && start < len).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some((0, 99)));
        assert_eq!(parse_range("bytes=900-", 1000), Some((900, 999)));
        assert_eq!(parse_range("bytes=-100", 1000), Some((900, 999)));
        assert_eq!(parse_range("bytes=990-2000", 1000), Some((990, 999)));
        for bad in ["bytes=1000-", "bytes=5-1", "bytes=0-1,3-4", "items=0-1", "bytes=x-1", "bytes=-"] {
            assert_eq!(parse_range(bad, 1000), None, "{bad}");
        }
        assert_eq!(parse_range("bytes=0-0", 0), None);
    }
}
