//! The HTTP side: `POST/GET /api/v1/streams/{stream}/udp-ingest` (an SDP in) and
//! `.../udp-outputs` (`{"host","port"}` in, the receiver's SDP out), `GET`/`DELETE` on each
//! session's location.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::output::OutputRequest;
use super::registry::Kind;
use super::UdpCtx;
use super::{output, publish, Started, UdpError};
use crate::http::error::ErrorBody;
use crate::http::routes::Routes;
use crate::http::{parse_json, parse_key, ApiError};

/// The UDP routes (merged into the API router).
pub fn routes(ctx: UdpCtx) -> Routes {
    Routes::new()
        .post("/api/v1/streams/{stream}/udp-ingest", ingest_post)
        .get("/api/v1/streams/{stream}/udp-ingest", ingest_list)
        .get("/api/v1/streams/{stream}/udp-ingest/{id}", ingest_get)
        .delete("/api/v1/streams/{stream}/udp-ingest/{id}", ingest_delete)
        .post("/api/v1/streams/{stream}/udp-outputs", output_post)
        .get("/api/v1/streams/{stream}/udp-outputs", output_list)
        .get("/api/v1/streams/{stream}/udp-outputs/{id}", output_get)
        .delete("/api/v1/streams/{stream}/udp-outputs/{id}", output_delete)
        .with_state(ctx)
}

/// The OpenAPI description of these routes (see `crate::api::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    ingest_post,
    ingest_list,
    ingest_get,
    ingest_delete,
    output_post,
    output_list,
    output_get,
    output_delete
))]
pub struct Doc;

/// A UDP session as the API shows it (a JSON object; its fields depend on the kind).
const SESSION: &str =
    "The session: `id`, `stream`, `location`, its tracks (`media`, `codec`, `payload_type` and ports), \
    `since` and counters; an output also its `host`, `address`, `port`, `plan` and `sdp`";

#[utoipa::path(post, path = "/api/v1/streams/{stream}/udp-ingest", tag = "udp",
    summary = "Publish a stream from RTP over UDP",
    description = "The body is the SDP of the RTP the sender will send; the gateway binds the ports it names \
        (within `udp.ports`) and publishes what arrives as `{stream}`.",
    params(("stream" = String, Path, description = "The stream key")),
    request_body(content = String, content_type = "application/sdp", description = "The sender's SDP"),
    responses(
        (status = 201, description = SESSION, body = serde_json::Value,
            headers(("Location" = String, description = "The session: `.../udp-ingest/{id}`"))),
        (status = 400, description = "Bad key or SDP, or its ports cannot be bound", body = ErrorBody),
        (status = 403, description = "A port outside `udp.ports`", body = ErrorBody),
        (status = 409, description = "A port in use, or the stream is published already", body = ErrorBody),
        (status = 500, description = "The receiving pipeline failed", body = ErrorBody),
        (status = 503, description = "Not ready, or the cluster store is unreachable", body = ErrorBody),
    ))]
async fn ingest_post(
    State(gw): State<UdpCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(stream): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = parse_key(&stream)?;
    let text = std::str::from_utf8(&body).map_err(|_| UdpError::BadRequest("the SDP is not UTF-8 text".into()))?;
    let started = publish::start(&gw, key, text, Some(peer.ip().to_string())).await?;
    Ok(created(started, false))
}

#[utoipa::path(post, path = "/api/v1/streams/{stream}/udp-outputs", tag = "udp",
    summary = "Send a stream as RTP over UDP",
    description = "Sends `{stream}` to `host:port` (video RTP on `port`, RTCP `port+1`, audio `port+2`, RTCP `port+3`). \
        Answers the session as JSON, or with `Accept: application/sdp` the SDP to receive it with.",
    params(("stream" = String, Path, description = "The stream key")),
    request_body(content = OutputRequest, content_type = "application/json"),
    responses(
        (status = 201, description = SESSION,
            headers(("Location" = String, description = "The session: `.../udp-outputs/{id}`")),
            content(
                (serde_json::Value = "application/json"),
                (String = "application/sdp"),
            )),
        (status = 400, description = "Bad key or body", body = ErrorBody),
        (status = 403, description = "The host or port is not allowed (`relay.allowed_hosts`, `udp`)", body = ErrorBody),
        (status = 404, description = "The stream is not live", body = ErrorBody),
        (status = 406, description = "No plan for UDP from this stream", body = ErrorBody),
        (status = 500, description = "The sending pipeline failed", body = ErrorBody),
        (status = 503, description = "The stream is not ready", body = ErrorBody),
    ))]
async fn output_post(
    State(gw): State<UdpCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(stream): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = parse_key(&stream)?;
    let request: OutputRequest = parse_json(&body)?;
    let wants_sdp =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("application/sdp"));
    let started = output::start(&gw, key, request, Some(peer.to_string())).await?;
    Ok(created(started, wants_sdp))
}

#[utoipa::path(get, path = "/api/v1/streams/{stream}/udp-ingest", tag = "udp",
    summary = "The UDP ingests of a stream",
    params(("stream" = String, Path, description = "The stream key")),
    responses(
        (status = 200, description = "`{\"ingests\": [session, ...]}`", body = serde_json::Value),
        (status = 400, description = "Bad stream key", body = ErrorBody),
    ))]
async fn ingest_list(
    State(gw): State<UdpCtx>,
    Path(stream): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let key = parse_key(&stream)?;
    Ok(Json(serde_json::json!({ "ingests": gw.udp.registry().list(Kind::Ingest, Some(&key)) })))
}

#[utoipa::path(get, path = "/api/v1/streams/{stream}/udp-outputs", tag = "udp",
    summary = "The UDP outputs of a stream",
    params(("stream" = String, Path, description = "The stream key")),
    responses(
        (status = 200, description = "`{\"outputs\": [session, ...]}`", body = serde_json::Value),
        (status = 400, description = "Bad stream key", body = ErrorBody),
    ))]
async fn output_list(
    State(gw): State<UdpCtx>,
    Path(stream): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let key = parse_key(&stream)?;
    Ok(Json(serde_json::json!({ "outputs": gw.udp.registry().list(Kind::Output, Some(&key)) })))
}

#[utoipa::path(get, path = "/api/v1/streams/{stream}/udp-ingest/{id}", tag = "udp",
    summary = "One UDP ingest",
    params(("stream" = String, Path, description = "The stream key"), ("id" = String, Path, description = "The session's id")),
    responses(
        (status = 200, description = SESSION, body = serde_json::Value),
        (status = 400, description = "Bad stream key", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
async fn ingest_get(
    State(gw): State<UdpCtx>,
    Path((stream, id)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    one(&gw, Kind::Ingest, &stream, &id)
}

#[utoipa::path(get, path = "/api/v1/streams/{stream}/udp-outputs/{id}", tag = "udp",
    summary = "One UDP output",
    params(("stream" = String, Path, description = "The stream key"), ("id" = String, Path, description = "The session's id")),
    responses(
        (status = 200, description = SESSION, body = serde_json::Value),
        (status = 400, description = "Bad stream key", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
async fn output_get(
    State(gw): State<UdpCtx>,
    Path((stream, id)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    one(&gw, Kind::Output, &stream, &id)
}

#[utoipa::path(delete, path = "/api/v1/streams/{stream}/udp-ingest/{id}", tag = "udp",
    summary = "Stop a UDP ingest (answers once its ports are free)",
    params(("stream" = String, Path, description = "The stream key"), ("id" = String, Path, description = "The session's id")),
    responses(
        (status = 204, description = "Stopped"),
        (status = 400, description = "Bad stream key", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
async fn ingest_delete(
    State(gw): State<UdpCtx>,
    Path((stream, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    stop(&gw, Kind::Ingest, &stream, &id).await
}

#[utoipa::path(delete, path = "/api/v1/streams/{stream}/udp-outputs/{id}", tag = "udp",
    summary = "Stop a UDP output",
    params(("stream" = String, Path, description = "The stream key"), ("id" = String, Path, description = "The session's id")),
    responses(
        (status = 204, description = "Stopped"),
        (status = 400, description = "Bad stream key", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
async fn output_delete(
    State(gw): State<UdpCtx>,
    Path((stream, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    stop(&gw, Kind::Output, &stream, &id).await
}

fn one(gw: &UdpCtx, kind: Kind, stream: &str, id: &str) -> Result<Json<serde_json::Value>, ApiError> {
    let key = parse_key(stream)?;
    gw.udp
        .registry()
        .get(kind, &key, id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no {kind} `{id}` on stream `{stream}`")))
}

/// How long `DELETE` waits for the session to end (its pipeline stopped, its ports free).
const STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Stops the session and answers once it has ended, so its ports can be bound again at once.
async fn stop(gw: &UdpCtx, kind: Kind, stream: &str, id: &str) -> Result<StatusCode, ApiError> {
    let key = parse_key(stream)?;
    if gw.udp.registry().stop(kind, &key, id) {
        if !gw.udp.registry().wait_gone(id, STOP_TIMEOUT).await {
            tracing::warn!(stream = %key, session = id, "{kind} still stopping after {STOP_TIMEOUT:?}");
        }
        tracing::info!(stream = %key, session = id, "{kind} stopped through the API");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no {kind} `{id}` on stream `{stream}`")))
    }
}

/// 201 with `Location`: the session as JSON, or its SDP when the client asked for that.
fn created(started: Started, as_sdp: bool) -> Response {
    let mut response = match (as_sdp, started.sdp) {
        (true, Some(sdp)) => {
            let mut r = (StatusCode::CREATED, sdp).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/sdp"));
            r
        }
        _ => (StatusCode::CREATED, Json(started.body)).into_response(),
    };
    if let Ok(location) = HeaderValue::from_str(&started.location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}
