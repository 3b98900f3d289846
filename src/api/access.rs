//! Who may call the control API and read `/metrics`: every `/api/` and `/metrics` request
//! passes here first. A GET needs the `read` role, anything else `admin` (tokens from
//! `auth.api_tokens`; with none, loopback clients only). State changes also need a body type
//! no web page can send without a CORS preflight (JSON, or SDP for a UDP ingest) and, from a
//! browser, a page of the gateway's own origin: no cross-site request can change anything. The caller's role goes on the request for the handlers (viewers'
//! addresses are shown to `admin` only).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::{Admission, Role};
use crate::http::client::{bearer, refusal};
use crate::http::ApiError;

/// Whether `path` is part of the control API.
pub fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path == "/metrics"
}

pub async fn guard(
    State(admission): State<Admission>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    if !is_api(req.uri().path()) {
        return next.run(req).await;
    }
    let reads = matches!(*req.method(), Method::GET | Method::HEAD);
    let needed = if reads { Role::Read } else { Role::Admin };
    let role = match admission.api(bearer(req.headers()).as_deref(), peer.ip(), needed) {
        Ok(role) => role,
        Err(denial) => return refusal(&denial).into_response(),
    };
    if !reads {
        if let Err(e) = same_origin(req.headers()) {
            return e.into_response();
        }
        if let Err(e) = body_type(req.headers()) {
            return e.into_response();
        }
    }
    req.extensions_mut().insert(role);
    next.run(req).await
}

/// A browser sends `Origin` with every cross-site POST/DELETE: it must name this very host.
fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let origin_host = origin.split_once("://").map_or("", |(_, h)| h.trim_end_matches('/'));
    if !host.is_empty() && origin_host.eq_ignore_ascii_case(host) {
        return Ok(());
    }
    Err(ApiError::new(StatusCode::FORBIDDEN, format!("cross-site API requests are refused (Origin {origin})")))
}

/// Body types the API reads; neither is one a page may send cross-site without a preflight.
const BODY_TYPES: [&str; 2] = ["application/json", "application/sdp"];

/// A request with a body must say it is JSON or SDP (a form or `text/plain`, what any web page
/// may send, is refused); one without a body passes.
fn body_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    let has_body = chunked || length.is_some_and(|n| n > 0);
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let essence = content_type.and_then(|t| t.split(';').next()).map(str::trim);
    let known = essence.is_some_and(|t| BODY_TYPES.iter().any(|b| t.eq_ignore_ascii_case(b)));
    if !has_body || known {
        return Ok(());
    }
    // A body-less type (no Content-Type) with a body is refused too.
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "the API takes JSON (or SDP for a UDP ingest): send `Content-Type: application/json` (got {})",
            content_type.unwrap_or("none")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn cross_site_and_non_json_state_changes_are_refused() {
        assert!(same_origin(&headers(&[(header::HOST, "127.0.0.1:8080")])).is_ok());
        assert!(same_origin(&headers(&[(header::HOST, "127.0.0.1:8080"), (header::ORIGIN, "http://127.0.0.1:8080")]))
            .is_ok());
        assert!(same_origin(&headers(&[(header::HOST, "127.0.0.1:8080"), (header::ORIGIN, "https://evil.example")]))
            .is_err());
        assert!(same_origin(&headers(&[(header::HOST, "127.0.0.1:8080"), (header::ORIGIN, "null")])).is_err());
        assert!(body_type(&headers(&[(header::CONTENT_LENGTH, "0")])).is_ok());
        assert!(body_type(&headers(&[])).is_ok());
        assert!(body_type(&headers(&[
            (header::CONTENT_LENGTH, "12"),
            (header::CONTENT_TYPE, "application/json; charset=utf-8")
        ]))
        .is_ok());
        assert_eq!(
            body_type(&headers(&[(header::CONTENT_LENGTH, "12"), (header::CONTENT_TYPE, "text/plain")]))
                .unwrap_err()
                .status,
            415
        );
        assert!(body_type(&headers(&[(header::CONTENT_LENGTH, "12")])).is_err());
        assert!(
            body_type(&headers(&[(header::CONTENT_LENGTH, "12"), (header::CONTENT_TYPE, "application/sdp")])).is_ok()
        );
        assert!(body_type(&headers(&[
            (header::TRANSFER_ENCODING, "chunked"),
            (header::CONTENT_TYPE, "multipart/form-data")
        ]))
        .is_err());
        assert!(is_api("/api/v1/streams") && is_api("/metrics") && !is_api("/live/x.flv") && !is_api("/healthz"));
    }
}
