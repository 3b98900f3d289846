//! `GET /api/v1/matrix`, `GET /api/v1/matrix/plan`, `POST /api/v1/matrix/reload`.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::gateway::{Gateway, ReloadStatus};
use crate::http::{parse_key, ApiError};
use crate::matrix::{self, Leg, Plan, Source};
use crate::media::Protocol;

#[derive(Serialize)]
pub struct MatrixView {
    pub matrix: serde_json::Value,
    /// How many times a reload swapped in a new matrix since start.
    pub generation: u64,
    pub last_reload: Option<ReloadStatus>,
}

pub async fn get(State(gw): State<Gateway>) -> Result<Json<MatrixView>, ApiError> {
    let matrix = serde_json::to_value(gw.hub.matrix().as_ref())
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(MatrixView { matrix, generation: gw.hub.matrix_generation(), last_reload: gw.last_reload() }))
}

#[derive(Deserialize)]
pub struct PlanQuery {
    from: Option<String>,
    to: Option<String>,
    /// Plan for this live stream's real tracks instead of the protocol's default codecs.
    stream: Option<String>,
}

#[derive(Serialize)]
pub struct PlanView {
    pub plan: Plan,
    /// The GStreamer pipeline each converted track runs (between appsrc and appsink).
    pub pipelines: BTreeMap<String, String>,
}

pub async fn plan(State(gw): State<Gateway>, Query(q): Query<PlanQuery>) -> Result<Json<PlanView>, ApiError> {
    let to: Protocol =
        q.to.as_deref()
            .ok_or_else(|| ApiError::bad_request("query parameter `to` is required"))?
            .parse()
            .map_err(|e: crate::media::UnknownProtocol| ApiError::bad_request(e.to_string()))?;
    let matrix = gw.hub.matrix();
    let plan = match (&q.stream, &q.from) {
        (Some(key), _) => {
            let key = parse_key(key)?;
            let stream =
                gw.hub.stream(&key).ok_or_else(|| ApiError::not_found(format!("stream `{key}` is not live")))?;
            gw.hub.plan_for(&stream, to)?
        }
        (None, Some(from)) => {
            let from: Protocol =
                from.parse().map_err(|e: crate::media::UnknownProtocol| ApiError::bad_request(e.to_string()))?;
            matrix::plan(&matrix, from, &Source::default_for(&matrix, from), to)
                .map_err(|e| ApiError::new(StatusCode::NOT_ACCEPTABLE, e.to_string()))?
        }
        (None, None) => return Err(ApiError::bad_request("query parameter `from` (or `stream`) is required")),
    };
    let pipelines = gw.hub.pipelines();
    let params = matrix.params(plan.from, plan.to);
    let mut descriptions = BTreeMap::new();
    for (track, leg) in [("video", &plan.video), ("audio", &plan.audio)] {
        if let Some(Leg::Convert { from, to, .. }) = leg {
            let d = pipelines
                .conversion(*from, *to, params)
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            descriptions.insert(track.to_string(), d);
        }
    }
    Ok(Json(PlanView { plan, pipelines: descriptions }))
}

/// Loads the matrix file again (`?scope=cluster`: and asks every other node to).
pub async fn reload(
    State(gw): State<Gateway>,
    axum::extract::Query(scope): axum::extract::Query<super::streams::Scope>,
) -> Result<Json<ReloadStatus>, ApiError> {
    let status = gw.reload();
    if status.ok && scope.is_cluster()? {
        let cluster = gw.cluster.as_ref().ok_or_else(|| ApiError::bad_request("this gateway is not in a cluster"))?;
        cluster.broadcast(crate::cluster::records::Action::Reload).await.map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("reloaded here, but not sent to the other nodes: {e}"),
            )
        })?;
    }
    if status.ok {
        Ok(Json(status))
    } else {
        Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, status.message))
    }
}
