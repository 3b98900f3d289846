//! The HTTP side: `POST/GET /api/v1/streams/{stream}/udp-ingest` (an SDP in) and
//! `.../udp-outputs` (`{"host","port"}` in, the receiver's SDP out), `GET`/`DELETE` on each
//! session's location.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::output::OutputRequest;
use super::registry::Kind;
use super::UdpCtx;
use super::{output, publish, Started, UdpError};
use crate::http::{parse_json, parse_key, ApiError};

/// The UDP routes (merged into the API router).
pub fn routes(ctx: UdpCtx) -> Router {
    Router::new()
        .route("/api/v1/streams/{stream}/udp-ingest", post(ingest_post).get(ingest_list))
        .route("/api/v1/streams/{stream}/udp-ingest/{id}", get(ingest_get).delete(ingest_delete))
        .route("/api/v1/streams/{stream}/udp-outputs", post(output_post).get(output_list))
        .route("/api/v1/streams/{stream}/udp-outputs/{id}", get(output_get).delete(output_delete))
        .with_state(ctx)
}

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

async fn ingest_list(
    State(gw): State<UdpCtx>,
    Path(stream): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let key = parse_key(&stream)?;
    Ok(Json(serde_json::json!({ "ingests": gw.udp.registry().list(Kind::Ingest, Some(&key)) })))
}

async fn output_list(
    State(gw): State<UdpCtx>,
    Path(stream): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let key = parse_key(&stream)?;
    Ok(Json(serde_json::json!({ "outputs": gw.udp.registry().list(Kind::Output, Some(&key)) })))
}

async fn ingest_get(
    State(gw): State<UdpCtx>,
    Path((stream, id)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    one(&gw, Kind::Ingest, &stream, &id)
}

async fn output_get(
    State(gw): State<UdpCtx>,
    Path((stream, id)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    one(&gw, Kind::Output, &stream, &id)
}

async fn ingest_delete(
    State(gw): State<UdpCtx>,
    Path((stream, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    stop(&gw, Kind::Ingest, &stream, &id).await
}

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
