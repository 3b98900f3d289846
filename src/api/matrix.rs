//! `GET /api/v1/matrix`, `GET /api/v1/matrix/plan`, `POST /api/v1/matrix/reload`.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::gateway::{Gateway, ReloadStatus};
use crate::http::error::ErrorBody;
use crate::http::{parse_key, ApiError};
use crate::matrix::{self, Leg, Plan, Source};
use crate::media::Protocol;

#[derive(Serialize, utoipa::ToSchema)]
pub struct MatrixView {
    /// The running matrix, as `matrix.yaml` describes it (protocols, codecs, rules).
    #[schema(value_type = Object)]
    pub matrix: serde_json::Value,
    /// How many times a reload swapped in a new matrix since start.
    pub generation: u64,
    pub last_reload: Option<ReloadStatus>,
}

#[utoipa::path(get, path = "/api/v1/matrix", tag = "matrix",
    summary = "The running conversion matrix",
    responses(
        (status = 200, description = "The matrix, its generation and the last reload", body = MatrixView),
        (status = 500, description = "The matrix could not be shown", body = ErrorBody),
    ))]
pub async fn get(State(gw): State<Gateway>) -> Result<Json<MatrixView>, ApiError> {
    let matrix = serde_json::to_value(gw.hub.matrix().as_ref())
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(MatrixView { matrix, generation: gw.hub.matrix_generation(), last_reload: gw.last_reload() }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlanQuery {
    /// The publisher's protocol (or give `stream`).
    #[param(value_type = Option<Protocol>)]
    from: Option<String>,
    /// The receiver's protocol (required).
    #[param(value_type = Protocol, required = false)]
    to: Option<String>,
    /// Plan for this live stream's real tracks instead of the protocol's default codecs.
    stream: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PlanView {
    pub plan: Plan,
    /// The GStreamer pipeline each converted track runs (between appsrc and appsink).
    pub pipelines: BTreeMap<String, String>,
}

#[utoipa::path(get, path = "/api/v1/matrix/plan", tag = "matrix",
    summary = "What a bridge copies and converts",
    description = "Per track, copy or convert (and why) from `from` (or a live `stream`'s real tracks) \
        to `to`, with the GStreamer pipeline of each conversion.",
    params(PlanQuery),
    responses(
        (status = 200, description = "The plan", body = PlanView),
        (status = 400, description = "Missing or unknown protocol, or bad stream key", body = ErrorBody),
        (status = 404, description = "`stream` is not live", body = ErrorBody),
        (status = 406, description = "No plan: the receiver cannot take the source", body = ErrorBody),
        (status = 500, description = "A conversion pipeline could not be described", body = ErrorBody),
    ))]
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
#[utoipa::path(post, path = "/api/v1/matrix/reload", tag = "matrix",
    summary = "Load the matrix file again",
    description = "A good matrix serves new sessions from now on; a bad one is refused and the running \
        one stays. With `?scope=cluster`, every other node is asked to reload too.",
    params(super::streams::Scope),
    responses(
        (status = 200, description = "Reloaded", body = ReloadStatus),
        (status = 400, description = "Bad `scope`, or `scope=cluster` outside a cluster", body = ErrorBody),
        (status = 422, description = "The new matrix is refused (the running one stays): why", body = ErrorBody),
        (status = 503, description = "Reloaded here, but not sent to the other nodes", body = ErrorBody),
    ))]
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
