//! Recordings (`/api/v1/streams/{stream}/recordings`, `/api/v1/recordings`) and clips
//! (`/api/v1/clips`). The views here are the API's; the index on disk is
//! [`crate::record::RecordingIndex`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::gateway::Gateway;
use crate::http::error::ErrorBody;
use crate::http::{parse_json, parse_key, ApiError};
use crate::media::Codec;
use crate::record::clips::ClipRequestError;
use crate::record::http::{clip_path, recording_path};
use crate::record::recordings::StartError;
use crate::record::{RecordingIndex, RecordingState};

#[derive(Serialize, utoipa::ToSchema)]
pub struct FileView {
    pub name: String,
    /// Download URL (on the media port).
    pub url: String,
    /// Unix seconds of its first frame.
    pub start: f64,
    pub duration: f64,
    pub size: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RecordingView {
    pub id: String,
    pub stream: String,
    /// `recording`, `stopped`, `interrupted` or `failed`.
    #[schema(value_type = String, example = "recording")]
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Unix seconds.
    pub start: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<f64>,
    pub duration: f64,
    pub size: u64,
    pub codecs: Vec<Codec>,
    /// The directory of its files on the gateway's disk.
    pub path: String,
    /// Its HLS playlist (VOD once finished), for playback.
    pub url: String,
    pub files: Vec<FileView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RecordingList {
    pub recordings: Vec<RecordingView>,
}

/// Where the media port is, as the caller reached us: `http://HOST:PORT`.
fn media_base(gw: &Gateway, headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    // The host without its port (an IPv6 literal keeps its brackets).
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) && !name.is_empty() => name,
        _ => host,
    };
    format!("http://{name}:{}", gw.http_port())
}

fn view(gw: &Gateway, base: &str, index: RecordingIndex) -> RecordingView {
    let (state, error) = match &index.state {
        RecordingState::Recording => ("recording", None),
        RecordingState::Stopped => ("stopped", None),
        RecordingState::Interrupted => ("interrupted", None),
        RecordingState::Failed { error } => ("failed", Some(error.clone())),
    };
    let mut codecs: Vec<Codec> = Vec::new();
    for c in index.files.iter().flat_map(|f| f.codecs.iter()) {
        if !codecs.contains(c) {
            codecs.push(*c);
        }
    }
    let files = index
        .files
        .iter()
        .map(|f| FileView {
            name: f.name.clone(),
            url: format!("{base}{}", recording_path(&index.stream, &f.name)),
            start: f.start_ms as f64 / 1000.0,
            duration: f.duration_s,
            size: f.size,
        })
        .collect();
    RecordingView {
        id: index.id.to_string(),
        stream: index.stream.clone(),
        state,
        error,
        start: index.started_ms as f64 / 1000.0,
        end: index.ended_ms.map(|ms| ms as f64 / 1000.0),
        duration: index.duration_s(),
        size: index.files.iter().map(|f| f.size).sum(),
        codecs,
        path: gw.recordings.settings().dir.join(&index.stream).display().to_string(),
        url: format!("{base}{}", recording_path(&index.stream, &format!("{}.m3u8", index.id))),
        files,
    }
}

/// `POST /api/v1/streams/{stream}/recordings`: starts recording a live stream.
#[utoipa::path(post, path = "/api/v1/streams/{stream}/recordings", tag = "recordings",
    summary = "Start recording a live stream",
    params(("stream" = String, Path, description = "The stream key")),
    responses(
        (status = 201, description = "The recording", body = RecordingView),
        (status = 400, description = "Bad stream key", body = ErrorBody),
        (status = 404, description = "The stream is not live", body = ErrorBody),
        (status = 409, description = "The stream is being recorded already", body = ErrorBody),
        (status = 503, description = "The stream is not ready yet", body = ErrorBody),
        (status = 507, description = "Cannot write the recording", body = ErrorBody),
    ))]
pub async fn start(
    State(gw): State<Gateway>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<RecordingView>), ApiError> {
    let key = parse_key(&key)?;
    let index = gw.recordings.start(&key).await.map_err(|e| match e {
        StartError::Hub(e) => ApiError::from(e),
        StartError::AlreadyRecording { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        StartError::Record(e) => ApiError::new(StatusCode::INSUFFICIENT_STORAGE, format!("cannot record: {e}")),
    })?;
    Ok((StatusCode::CREATED, Json(view(&gw, &media_base(&gw, &headers), index))))
}

/// `DELETE /api/v1/streams/{stream}/recordings/{id}`: stops it; answers its final state.
#[utoipa::path(delete, path = "/api/v1/streams/{stream}/recordings/{id}", tag = "recordings",
    summary = "Stop a recording",
    params(("stream" = String, Path, description = "The stream key"), ("id" = String, Path, description = "The recording's id")),
    responses(
        (status = 200, description = "Its final state", body = RecordingView),
        (status = 400, description = "Bad stream key", body = ErrorBody),
        (status = 404, description = "No such running recording", body = ErrorBody),
    ))]
pub async fn stop(
    State(gw): State<Gateway>,
    Path((key, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<RecordingView>, ApiError> {
    let key = parse_key(&key)?;
    let index = gw
        .recordings
        .stop(&key, &id)
        .await
        .ok_or_else(|| ApiError::not_found(format!("stream `{key}` has no running recording `{id}`")))?;
    Ok(Json(view(&gw, &media_base(&gw, &headers), index)))
}

/// `GET /api/v1/recordings`: all of them, newest first.
#[utoipa::path(get, path = "/api/v1/recordings", tag = "recordings",
    summary = "Every recording, newest first",
    responses((status = 200, description = "The recordings", body = RecordingList)))]
pub async fn list(State(gw): State<Gateway>, headers: HeaderMap) -> Json<RecordingList> {
    let base = media_base(&gw, &headers);
    let recordings = gw.recordings.list().await.into_iter().map(|i| view(&gw, &base, i)).collect();
    Json(RecordingList { recordings })
}

/// `GET /api/v1/recordings/{id}`.
#[utoipa::path(get, path = "/api/v1/recordings/{id}", tag = "recordings",
    summary = "One recording",
    params(("id" = String, Path, description = "The recording's id")),
    responses(
        (status = 200, description = "The recording", body = RecordingView),
        (status = 404, description = "No such recording", body = ErrorBody),
    ))]
pub async fn get(
    State(gw): State<Gateway>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<RecordingView>, ApiError> {
    let index = gw.recordings.find(&id).await.ok_or_else(|| ApiError::not_found(format!("no recording `{id}`")))?;
    Ok(Json(view(&gw, &media_base(&gw, &headers), index)))
}

/// `{stream, from, to}` or `{stream, last_seconds}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClipRequest {
    stream: String,
    /// Unix seconds.
    from: Option<f64>,
    to: Option<f64>,
    /// The last N seconds up to now (instead of `from`/`to`).
    last_seconds: Option<f64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ClipView {
    pub url: String,
    pub stream: String,
    /// Unix seconds of its first frame (the keyframe at or before `from`).
    pub start: f64,
    pub end: f64,
    pub duration: f64,
    pub size: usize,
}

fn unix(t: f64, name: &str) -> Result<SystemTime, ApiError> {
    if !(t.is_finite() && (0.0..1e11).contains(&t)) {
        return Err(ApiError::bad_request(format!("`{name}` must be unix seconds")));
    }
    Ok(UNIX_EPOCH + Duration::from_secs_f64(t))
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// `POST /api/v1/clips`: `{stream, from, to}` or `{stream, last_seconds}` → `{url, ...}`.
#[utoipa::path(post, path = "/api/v1/clips", tag = "recordings",
    summary = "Cut a clip (MP4) of a stream",
    description = "From the stream's recent window or its recordings: `{stream, last_seconds}` or \
        `{stream, from, to}` (unix seconds). Answers the clip's `url` on the media port.",
    request_body(content = ClipRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The clip", body = ClipView),
        (status = 400, description = "Bad body, key or times", body = ErrorBody),
        (status = 404, description = "Nothing of the stream to cut from", body = ErrorBody),
        (status = 422, description = "The span cannot be cut", body = ErrorBody),
        (status = 507, description = "Cannot write the clip", body = ErrorBody),
    ))]
pub async fn clip(
    State(gw): State<Gateway>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<ClipView>), ApiError> {
    let req: ClipRequest = parse_json(&body)?;
    let key = parse_key(&req.stream)?;
    let (from, to) = match (req.from, req.to, req.last_seconds) {
        (None, None, Some(n)) if n.is_finite() && n > 0.0 && n <= 86_400.0 => {
            let now = SystemTime::now();
            (now - Duration::from_secs_f64(n), now)
        }
        (None, None, Some(_)) => {
            return Err(ApiError::bad_request("`last_seconds` must be a number of seconds above 0"))
        }
        (Some(from), Some(to), None) => (unix(from, "from")?, unix(to, "to")?),
        _ => return Err(ApiError::bad_request("give `from` and `to` (unix seconds), or `last_seconds`")),
    };
    if to <= from {
        return Err(ApiError::bad_request("`to` must be after `from`"));
    }
    let written = gw.clips.cut(&key, from, to).await.map_err(|e| match e {
        ClipRequestError::NoSource(_) => ApiError::not_found(e.to_string()),
        ClipRequestError::Clip(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        ClipRequestError::Io(_) => ApiError::new(StatusCode::INSUFFICIENT_STORAGE, e.to_string()),
    })?;
    let base = media_base(&gw, &headers);
    Ok((
        StatusCode::CREATED,
        Json(ClipView {
            url: format!("{base}{}", clip_path(&written.stream, &written.file)),
            stream: written.stream,
            start: secs(written.clip.start),
            end: secs(written.clip.end),
            duration: written.clip.duration.as_secs_f64(),
            size: written.clip.mp4.len(),
        }),
    ))
}
