//! A deadline on request bodies. hyper bounds the time to send headers
//! (`limits.http_header_timeout_seconds`) but not the body: a client that sends headers and
//! then trickles its body (or none of it) would hold a connection and a handler forever.
//! Bodies of the API and signaling routes (JSON, SDP) are read here, whole, within
//! `limits.http_body_timeout_seconds` and `limits.http_body_bytes`: past the time the answer is
//! 408, past the size 413, and the connection is closed (after a lingering close, see
//! [`super::linger`]). The H5 POST streams its body for as long as it publishes; it has its
//! own bound on silence instead.

use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::ApiError;

/// The bounds a body is read within.
#[derive(Clone, Copy, Debug)]
pub struct BodyBounds {
    pub timeout: Duration,
    pub max_bytes: usize,
}

/// Why a body was not read whole.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyRefusal {
    TooSlow,
    TooLarge,
    Broken(String),
}

/// Bodies that are streams, read by their handler for as long as they last.
fn is_streaming(method: &Method, path: &str) -> bool {
    method == Method::POST && path.strip_prefix("/h5/").is_some_and(|rest| !rest.contains('/'))
}

/// Reads `body` whole within `bounds`.
pub async fn read_bounded(body: Body, bounds: BodyBounds) -> Result<bytes::Bytes, BodyRefusal> {
    let read = async {
        let mut data = body.into_data_stream();
        let mut out = bytes::BytesMut::new();
        while let Some(chunk) = data.next().await {
            let chunk = chunk.map_err(|e| BodyRefusal::Broken(e.to_string()))?;
            if out.len() + chunk.len() > bounds.max_bytes {
                return Err(BodyRefusal::TooLarge);
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    };
    tokio::time::timeout(bounds.timeout, read).await.unwrap_or(Err(BodyRefusal::TooSlow))
}

/// The middleware: reads the body within its bounds before the handler runs.
pub async fn bound_body(State(bounds): State<BodyBounds>, req: Request, next: Next) -> Response {
    if req.body().is_end_stream() || is_streaming(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let refusal = match read_bounded(body, bounds).await {
        Ok(bytes) => return next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(r) => r,
    };
    let (status, message) = match refusal {
        BodyRefusal::TooSlow => {
            tracing::info!(path = %parts.uri.path(), timeout = ?bounds.timeout, "request body not received in time (limits.http_body_timeout_seconds)");
            (StatusCode::REQUEST_TIMEOUT, format!("the request body did not arrive within {:?}", bounds.timeout))
        }
        BodyRefusal::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is over the limit of {} bytes (limits.http_body_bytes)", bounds.max_bytes),
        ),
        BodyRefusal::Broken(e) => (StatusCode::BAD_REQUEST, format!("reading the request body failed: {e}")),
    };
    let mut response = ApiError::new(status, message).into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_is_read_whole_within_its_bounds_or_refused() {
        let bounds = BodyBounds { timeout: Duration::from_millis(100), max_bytes: 8 };
        assert_eq!(read_bounded(Body::from("12345678"), bounds).await.as_deref(), Ok(&b"12345678"[..]));
        assert_eq!(read_bounded(Body::from("123456789"), bounds).await, Err(BodyRefusal::TooLarge));
        let trickle = futures_util::stream::unfold(0, |n| async move {
            tokio::time::sleep(Duration::from_millis(60)).await;
            (n < 5).then(|| (Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"x")), n + 1))
        });
        assert_eq!(read_bounded(Body::from_stream(trickle), bounds).await, Err(BodyRefusal::TooSlow));
    }

    #[test]
    fn only_the_h5_post_streams_its_body() {
        assert!(is_streaming(&Method::POST, "/h5/class"));
        assert!(!is_streaming(&Method::POST, "/whip/class"));
        assert!(!is_streaming(&Method::POST, "/api/v1/streams/class/pushes"));
        assert!(!is_streaming(&Method::GET, "/h5/class"));
    }
}
