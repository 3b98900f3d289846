//! API errors: every one answers `{"error": "..."}` with a fitting status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;

use crate::hub::HubError;

/// The body of every error answer: `{"error": "..."}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in words.
    #[schema(example = "stream `room1` is not live")]
    pub error: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: self.message })).into_response()
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> ApiError {
        let status = match &e {
            HubError::NotFound(_) => StatusCode::NOT_FOUND,
            HubError::AlreadyPublishing(_) | HubError::ClaimedElsewhere(..) => StatusCode::CONFLICT,
            HubError::NotReady(_) | HubError::TooManyPublishers(..) | HubError::ClusterUnavailable(..) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            HubError::Plan { .. } => StatusCode::NOT_ACCEPTABLE,
            HubError::Conversion { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

/// Parses a JSON body ourselves so that every problem is a 400 that says what is wrong.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("request body is empty; expected a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            ApiError::bad_request(format!("invalid JSON body: {inner}"))
        } else {
            ApiError::bad_request(format!("invalid JSON body: field `{path}`: {inner}"))
        }
    })
}

/// Turns axum's own plain-text refusals (an extractor's rejection: a path segment that is not
/// UTF-8, a query that does not parse, ...) into `{"error": ...}` like every other error.
pub async fn json_rejections(response: Response) -> Response {
    let plain = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/plain"));
    if !(plain && (response.status().is_client_error() || response.status().is_server_error())) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let mut json = ApiError::new(parts.status, String::from_utf8_lossy(&text).trim().to_string()).into_response();
    for (name, value) in &parts.headers {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            json.headers_mut().insert(name, value.clone());
        }
    }
    json
}

pub fn parse_key(raw: &str) -> Result<crate::hub::StreamKey, ApiError> {
    raw.parse().map_err(|e: crate::hub::InvalidStreamKey| ApiError::bad_request(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plain_text_refusals_become_json() {
        let plain = (StatusCode::BAD_REQUEST, "Invalid URL: bad percent-encoding").into_response();
        let json = json_rejections(plain).await;
        assert_eq!(json.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(json.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], br#"{"error":"Invalid URL: bad percent-encoding"}"#);
        let ok = json_rejections("ok".into_response()).await;
        assert_eq!(axum::body::to_bytes(ok.into_body(), 1024).await.unwrap(), "ok");
    }
}
