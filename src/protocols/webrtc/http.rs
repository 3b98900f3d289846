//! The HTTP side of WHIP and WHEP: `POST /whip/{stream}`, `POST /whep/{stream}` (an SDP offer
//! in, 201 with `Location` and the SDP answer out), `DELETE` on the location, and CORS so
//! pages on other origins can publish and play.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};

use super::registry::Kind;
use super::WebrtcCtx;
use super::{whep, whip, Answered, WebrtcError};
use crate::auth::{Action, Entry};
use crate::http::client::admit;
use crate::http::error::ErrorBody;
use crate::http::routes::Routes;
use crate::http::ApiError;
use crate::hub::StreamKey;

/// The WHIP and WHEP routes, with CORS on every answer (merged into the API router).
pub fn routes(ctx: WebrtcCtx) -> Routes {
    Routes::new()
        .post("/whip/{stream}", whip_post)
        .options("/whip/{stream}", whip_preflight)
        .delete("/whip/{stream}/{session}", whip_delete)
        .options("/whip/{stream}/{session}", whip_session_preflight)
        .post("/whep/{stream}", whep_post)
        .options("/whep/{stream}", whep_preflight)
        .delete("/whep/{stream}/{session}", whep_delete)
        .options("/whep/{stream}/{session}", whep_session_preflight)
        .map_router(|r| r.layer(middleware::map_response(cors)))
        .with_state(ctx)
}

/// The OpenAPI description of these routes (see `crate::api::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    whip_post,
    whip_preflight,
    whip_delete,
    whip_session_preflight,
    whep_post,
    whep_preflight,
    whep_delete,
    whep_session_preflight
))]
pub struct Doc;

#[utoipa::path(post, path = "/whip/{stream}", tag = "webrtc",
    summary = "WHIP: publish a stream over WebRTC",
    params(("stream" = String, Path, description = "The stream key")),
    request_body(content = String, content_type = "application/sdp", description = "The SDP offer"),
    responses(
        (status = 201, description = "The SDP answer; `Location` is the session, to `DELETE`", content_type = "application/sdp",
            body = String, headers(("Location" = String, description = "The session: `/whip/{stream}/{session}`"))),
        (status = 400, description = "Bad stream key or SDP", body = ErrorBody),
        (status = 401, description = "Publish needs credentials", body = ErrorBody),
        (status = 403, description = "Publish refused", body = ErrorBody),
        (status = 406, description = "No codec of the offer is usable", body = ErrorBody),
        (status = 409, description = "The stream is published already", body = ErrorBody),
        (status = 415, description = "The body is not `application/sdp`", body = ErrorBody),
        (status = 429, description = "Too many sessions being set up from this address", body = ErrorBody),
        (status = 500, description = "The WebRTC peer could not be set up", body = ErrorBody),
        (status = 503, description = "Too many sessions being set up, or the cluster store is unreachable", body = ErrorBody),
    ))]
async fn whip_post(
    State(gw): State<WebrtcCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(stream): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (key, offer) = offer_of(&stream, &headers, &body)?;
    admit(&gw.admission, Action::Publish, Entry::Whip, key.as_str(), peer.ip(), &uri, &headers).await?;
    let answered = whip::start(&gw, key, offer, Some(peer.to_string())).await?;
    Ok(created(answered))
}

#[utoipa::path(post, path = "/whep/{stream}", tag = "webrtc",
    summary = "WHEP: play a stream over WebRTC",
    params(("stream" = String, Path, description = "The stream key")),
    request_body(content = String, content_type = "application/sdp", description = "The SDP offer"),
    responses(
        (status = 201, description = "The SDP answer; `Location` is the session, to `DELETE`", content_type = "application/sdp",
            body = String, headers(("Location" = String, description = "The session: `/whep/{stream}/{session}`"))),
        (status = 400, description = "Bad stream key or SDP", body = ErrorBody),
        (status = 401, description = "Play needs credentials", body = ErrorBody),
        (status = 403, description = "Play refused", body = ErrorBody),
        (status = 404, description = "The stream is not live", body = ErrorBody),
        (status = 406, description = "No codec of the offer is usable, or no plan for WebRTC", body = ErrorBody),
        (status = 415, description = "The body is not `application/sdp`", body = ErrorBody),
        (status = 429, description = "Too many sessions being set up from this address", body = ErrorBody),
        (status = 500, description = "The WebRTC peer or a conversion could not be set up", body = ErrorBody),
        (status = 503, description = "Too many sessions being set up, the stream is not ready, or the cluster store is unreachable", body = ErrorBody),
    ))]
async fn whep_post(
    State(gw): State<WebrtcCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(stream): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (key, offer) = offer_of(&stream, &headers, &body)?;
    admit(&gw.admission, Action::Play, Entry::Whep, key.as_str(), peer.ip(), &uri, &headers).await?;
    let answered = whep::start(&gw, key, offer, Some(peer.to_string())).await?;
    Ok(created(answered))
}

#[utoipa::path(delete, path = "/whip/{stream}/{session}", tag = "webrtc",
    summary = "WHIP: end a publishing session",
    params(("stream" = String, Path, description = "The stream key"), ("session" = String, Path, description = "The session (from `Location`)")),
    responses(
        (status = 200, description = "Ended"),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
async fn whip_delete(
    State(gw): State<WebrtcCtx>,
    Path((stream, session)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    end(&gw, Kind::Whip, &stream, &session)
}

#[utoipa::path(delete, path = "/whep/{stream}/{session}", tag = "webrtc",
    summary = "WHEP: end a playing session",
    params(("stream" = String, Path, description = "The stream key"), ("session" = String, Path, description = "The session (from `Location`)")),
    responses(
        (status = 200, description = "Ended"),
        (status = 404, description = "No such session", body = ErrorBody),
    ))]
async fn whep_delete(
    State(gw): State<WebrtcCtx>,
    Path((stream, session)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    end(&gw, Kind::Whep, &stream, &session)
}

fn end(gw: &WebrtcCtx, kind: Kind, stream: &str, session: &str) -> Result<StatusCode, ApiError> {
    let found = stream.parse::<StreamKey>().is_ok_and(|key| gw.webrtc.registry().stop(kind, &key, session));
    if found {
        Ok(StatusCode::OK)
    } else {
        Err(ApiError::not_found(format!("no {kind} session `{session}` on stream `{stream}`")))
    }
}

/// The stream key and the offer text of a POST, or why they are unusable.
fn offer_of<'a>(stream: &str, headers: &HeaderMap, body: &'a [u8]) -> Result<(StreamKey, &'a str), WebrtcError> {
    if let Some(value) = headers.get(header::CONTENT_TYPE) {
        let text = value.to_str().unwrap_or("");
        let mime = text.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/sdp") {
            return Err(WebrtcError::ContentType(text.to_string()));
        }
    }
    let key = stream.parse::<StreamKey>().map_err(|e| WebrtcError::BadRequest(e.to_string()))?;
    let offer = std::str::from_utf8(body).map_err(|_| WebrtcError::BadRequest("the SDP offer is not UTF-8".into()))?;
    Ok((key, offer))
}

fn created(answered: Answered) -> Response {
    let mut response = (StatusCode::CREATED, answered.sdp).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/sdp"));
    if let Ok(location) = HeaderValue::from_str(&answered.location) {
        headers.insert(header::LOCATION, location);
    }
    response
}

/// CORS preflight: the headers come from [`cors`].
async fn preflight() -> StatusCode {
    StatusCode::NO_CONTENT
}

#[utoipa::path(options, path = "/whip/{stream}", tag = "webrtc", summary = "CORS preflight",
    params(("stream" = String, Path, description = "The stream key")),
    responses((status = 204, description = "CORS headers: any origin may publish")))]
async fn whip_preflight() -> StatusCode {
    preflight().await
}

#[utoipa::path(options, path = "/whip/{stream}/{session}", tag = "webrtc", summary = "CORS preflight",
    params(("stream" = String, Path, description = "The stream key"), ("session" = String, Path, description = "The session")),
    responses((status = 204, description = "CORS headers")))]
async fn whip_session_preflight() -> StatusCode {
    preflight().await
}

#[utoipa::path(options, path = "/whep/{stream}", tag = "webrtc", summary = "CORS preflight",
    params(("stream" = String, Path, description = "The stream key")),
    responses((status = 204, description = "CORS headers: any origin may play")))]
async fn whep_preflight() -> StatusCode {
    preflight().await
}

#[utoipa::path(options, path = "/whep/{stream}/{session}", tag = "webrtc", summary = "CORS preflight",
    params(("stream" = String, Path, description = "The stream key"), ("session" = String, Path, description = "The session")),
    responses((status = 204, description = "CORS headers")))]
async fn whep_session_preflight() -> StatusCode {
    preflight().await
}

/// Lets browser pages on any origin publish and play (the classroom apps live elsewhere).
async fn cors(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::ACCESS_CONTROL_ALLOW_ORIGIN, "*");
    set(headers, header::ACCESS_CONTROL_ALLOW_METHODS, "POST, DELETE, OPTIONS");
    set(headers, header::ACCESS_CONTROL_ALLOW_HEADERS, "Content-Type, Authorization, If-Match");
    set(headers, header::ACCESS_CONTROL_EXPOSE_HEADERS, "Location");
    set(headers, header::ACCESS_CONTROL_MAX_AGE, "86400");
    response
}
