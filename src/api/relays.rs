//! Pushes (`/api/v1/streams/{stream}/pushes`) and pulls (`/api/v1/pulls`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::gateway::Gateway;
use crate::http::error::ErrorBody;
use crate::http::{parse_json, parse_key, ApiError};
use crate::protocols::cdn::{RelayError, RelayKind, RelayStatus};
use crate::protocols::rtmp::RtmpUrl;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// `rtmp://HOST[:PORT]/APP/STREAM`: where to push.
    #[schema(example = "rtmp://cdn.example/live/room1")]
    url: String,
    /// Destinations tried in order when the current one fails.
    #[serde(default)]
    backup_urls: Vec<String>,
}

/// Most backup destinations one push may name.
const MAX_BACKUP_URLS: usize = 8;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    /// The local stream key to publish it as.
    stream: String,
    /// `rtmp://HOST[:PORT]/APP/STREAM`: where to pull from.
    url: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PushList {
    pub pushes: Vec<RelayStatus>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PullList {
    pub pulls: Vec<RelayStatus>,
}

fn parse_url(raw: &str) -> Result<RtmpUrl, ApiError> {
    raw.parse().map_err(|e: crate::protocols::rtmp::RtmpError| ApiError::bad_request(format!("url: {e}")))
}

#[utoipa::path(post, path = "/api/v1/streams/{stream}/pushes", tag = "relays",
    summary = "Push a stream to an RTMP destination (CDN)",
    description = "Starts when the stream is live; retries, and falls over to `backup_urls` in order.",
    params(("stream" = String, Path, description = "The stream key")),
    request_body(content = PushRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The push", body = RelayStatus),
        (status = 400, description = "Bad key, body or URL, or too many backup URLs", body = ErrorBody),
        (status = 403, description = "A destination is not in `relay.allowed_hosts`", body = ErrorBody),
    ))]
pub async fn add_push(
    State(gw): State<Gateway>,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<RelayStatus>), ApiError> {
    let key = parse_key(&key)?;
    let req: PushRequest = parse_json(&body)?;
    let url = parse_url(&req.url)?;
    if req.backup_urls.len() > MAX_BACKUP_URLS {
        return Err(ApiError::bad_request(format!("backup_urls: at most {MAX_BACKUP_URLS} destinations")));
    }
    let backups = req.backup_urls.iter().map(|u| parse_url(u)).collect::<Result<Vec<_>, _>>()?;
    for target in std::iter::once(&url).chain(&backups) {
        gw.check_relay_target(target).await.map_err(|e| ApiError::new(StatusCode::FORBIDDEN, e))?;
    }
    Ok((StatusCode::CREATED, Json(gw.relays.add_push_with_backups(key, url, backups))))
}

#[utoipa::path(get, path = "/api/v1/streams/{stream}/pushes", tag = "relays",
    summary = "The pushes of a stream",
    params(("stream" = String, Path, description = "The stream key")),
    responses(
        (status = 200, description = "Its pushes", body = PushList),
        (status = 400, description = "Bad stream key", body = ErrorBody),
    ))]
pub async fn list_stream_pushes(
    State(gw): State<Gateway>,
    Path(key): Path<String>,
) -> Result<Json<PushList>, ApiError> {
    let key = parse_key(&key)?;
    Ok(Json(PushList { pushes: gw.relays.list(RelayKind::Push, Some(&key)) }))
}

#[utoipa::path(get, path = "/api/v1/pushes", tag = "relays",
    summary = "Every push",
    responses((status = 200, description = "The pushes", body = PushList)))]
pub async fn list_pushes(State(gw): State<Gateway>) -> Json<PushList> {
    Json(PushList { pushes: gw.relays.list(RelayKind::Push, None) })
}

#[utoipa::path(delete, path = "/api/v1/streams/{stream}/pushes/{id}", tag = "relays",
    summary = "Stop a push",
    params(("stream" = String, Path, description = "The stream key"), ("id" = String, Path, description = "The push's id")),
    responses(
        (status = 204, description = "Stopped"),
        (status = 404, description = "No such push", body = ErrorBody),
    ))]
pub async fn delete_stream_push(
    State(gw): State<Gateway>,
    Path((_key, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    delete(&gw, RelayKind::Push, &id)
}

#[utoipa::path(delete, path = "/api/v1/pushes/{id}", tag = "relays",
    summary = "Stop a push",
    params(("id" = String, Path, description = "The push's id")),
    responses(
        (status = 204, description = "Stopped"),
        (status = 404, description = "No such push", body = ErrorBody),
    ))]
pub async fn delete_push(State(gw): State<Gateway>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    delete(&gw, RelayKind::Push, &id)
}

#[utoipa::path(post, path = "/api/v1/pulls", tag = "relays",
    summary = "Pull an RTMP stream in (from a CDN or origin)",
    request_body(content = PullRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The pull", body = RelayStatus),
        (status = 400, description = "Bad body, key or URL", body = ErrorBody),
        (status = 403, description = "The source is not in `relay.allowed_hosts`", body = ErrorBody),
        (status = 409, description = "The stream is pulled already", body = ErrorBody),
    ))]
pub async fn add_pull(State(gw): State<Gateway>, body: Bytes) -> Result<(StatusCode, Json<RelayStatus>), ApiError> {
    let req: PullRequest = parse_json(&body)?;
    let key = parse_key(&req.stream)?;
    let url = parse_url(&req.url)?;
    gw.check_relay_target(&url).await.map_err(|e| ApiError::new(StatusCode::FORBIDDEN, e))?;
    match gw.relays.add_pull(key, url) {
        Ok(status) => Ok((StatusCode::CREATED, Json(status))),
        Err(e @ RelayError::DuplicatePull(_)) => Err(ApiError::new(StatusCode::CONFLICT, e.to_string())),
        Err(e) => Err(ApiError::bad_request(e.to_string())),
    }
}

#[utoipa::path(get, path = "/api/v1/pulls", tag = "relays",
    summary = "Every pull",
    responses((status = 200, description = "The pulls", body = PullList)))]
pub async fn list_pulls(State(gw): State<Gateway>) -> Json<PullList> {
    Json(PullList { pulls: gw.relays.list(RelayKind::Pull, None) })
}

#[utoipa::path(get, path = "/api/v1/pushes/{id}", tag = "relays",
    summary = "One push (or pull: relay ids are unique)",
    params(("id" = String, Path, description = "The push's id")),
    responses(
        (status = 200, description = "The relay", body = RelayStatus),
        (status = 404, description = "No such relay", body = ErrorBody),
    ))]
pub async fn get_push(gw: State<Gateway>, id: Path<String>) -> Result<Json<RelayStatus>, ApiError> {
    get_relay(gw, id)
}

#[utoipa::path(get, path = "/api/v1/pulls/{id}", tag = "relays",
    summary = "One pull (or push: relay ids are unique)",
    params(("id" = String, Path, description = "The pull's id")),
    responses(
        (status = 200, description = "The relay", body = RelayStatus),
        (status = 404, description = "No such relay", body = ErrorBody),
    ))]
pub async fn get_pull(gw: State<Gateway>, id: Path<String>) -> Result<Json<RelayStatus>, ApiError> {
    get_relay(gw, id)
}

fn get_relay(State(gw): State<Gateway>, Path(id): Path<String>) -> Result<Json<RelayStatus>, ApiError> {
    gw.relays.get(&id).map(Json).ok_or_else(|| ApiError::not_found(format!("no relay `{id}`")))
}

#[utoipa::path(delete, path = "/api/v1/pulls/{id}", tag = "relays",
    summary = "Stop a pull",
    params(("id" = String, Path, description = "The pull's id")),
    responses(
        (status = 204, description = "Stopped"),
        (status = 404, description = "No such pull", body = ErrorBody),
    ))]
pub async fn delete_pull(State(gw): State<Gateway>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    delete(&gw, RelayKind::Pull, &id)
}

fn delete(gw: &Gateway, kind: RelayKind, id: &str) -> Result<StatusCode, ApiError> {
    if gw.relays.remove(kind, id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no {} `{id}`", if kind == RelayKind::Push { "push" } else { "pull" })))
    }
}
