//! The HTTP side of WHIP and WHEP: `POST /whip/{stream}`, `POST /whep/{stream}` (an SDP offer
//! in, 201 with `Location` and the SDP answer out), `DELETE` on the location, and CORS so
//! pages on other origins can publish and play.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::Router;

use super::registry::Kind;
use super::WebrtcCtx;
use super::{whep, whip, Answered, WebrtcError};
use crate::auth::{Action, Entry};
use crate::http::client::admit;
use crate::http::ApiError;
use crate::hub::StreamKey;

/// The WHIP and WHEP routes, with CORS on every answer (merged into the API router).
pub fn routes(ctx: WebrtcCtx) -> Router {
    Router::new()
        .route("/whip/{stream}", post(whip_post).options(preflight))
        .route("/whip/{stream}/{session}", delete(whip_delete).options(preflight))
        .route("/whep/{stream}", post(whep_post).options(preflight))
        .route("/whep/{stream}/{session}", delete(whep_delete).options(preflight))
        .layer(middleware::map_response(cors))
        .with_state(ctx)
}

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

async fn whip_delete(
    State(gw): State<WebrtcCtx>,
    Path((stream, session)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    end(&gw, Kind::Whip, &stream, &session)
}

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
