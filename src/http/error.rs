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

pub fn parse_key(raw: &str) -> Result<crate::hub::StreamKey, ApiError> {
    raw.parse().map_err(|e: crate::hub::InvalidStreamKey| ApiError::bad_request(e.to_string()))
}
