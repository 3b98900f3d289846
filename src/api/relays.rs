//! Pushes (`/api/v1/streams/{stream}/pushes`) and pulls (`/api/v1/pulls`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::gateway::Gateway;
use crate::http::{parse_json, parse_key, ApiError};
use crate::protocols::cdn::{RelayError, RelayKind, RelayStatus};
use crate::protocols::rtmp::RtmpUrl;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushRequest {
    url: String,
    /// Destinations tried in order when the current one fails.
    #[serde(default)]
    backup_urls: Vec<String>,
}

/// Most backup destinations one push may name.
const MAX_BACKUP_URLS: usize = 8;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PullRequest {
    stream: String,
    url: String,
}

#[derive(Serialize)]
pub struct PushList {
    pub pushes: Vec<RelayStatus>,
}

#[derive(Serialize)]
pub struct PullList {
    pub pulls: Vec<RelayStatus>,
}

fn parse_url(raw: &str) -> Result<RtmpUrl, ApiError> {
    raw.parse().map_err(|e: crate::protocols::rtmp::RtmpError| ApiError::bad_request(format!("url: {e}")))
}

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

pub async fn list_stream_pushes(
    State(gw): State<Gateway>,
    Path(key): Path<String>,
) -> Result<Json<PushList>, ApiError> {
    let key = parse_key(&key)?;
    Ok(Json(PushList { pushes: gw.relays.list(RelayKind::Push, Some(&key)) }))
}

pub async fn list_pushes(State(gw): State<Gateway>) -> Json<PushList> {
    Json(PushList { pushes: gw.relays.list(RelayKind::Push, None) })
}

pub async fn delete_stream_push(
    State(gw): State<Gateway>,
    Path((_key, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    delete(&gw, RelayKind::Push, &id)
}

pub async fn delete_push(State(gw): State<Gateway>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    delete(&gw, RelayKind::Push, &id)
}

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

pub async fn list_pulls(State(gw): State<Gateway>) -> Json<PullList> {
    Json(PullList { pulls: gw.relays.list(RelayKind::Pull, None) })
}

pub async fn get_relay(State(gw): State<Gateway>, Path(id): Path<String>) -> Result<Json<RelayStatus>, ApiError> {
    gw.relays.get(&id).map(Json).ok_or_else(|| ApiError::not_found(format!("no relay `{id}`")))
}

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
