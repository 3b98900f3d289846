//! Why a WHIP or WHEP request failed, and the HTTP status that says so.

use axum::http::StatusCode;

use super::peer::PeerError;
use super::sdp::SdpError;
use crate::http::ApiError;
use crate::hub::HubError;

#[derive(Debug, thiserror::Error)]
pub enum WebrtcError {
    #[error("{0}")]
    Sdp(#[from] SdpError),
    #[error("{0}")]
    Hub(#[from] HubError),
    #[error("{0}")]
    Peer(#[from] PeerError),
    #[error("content type `{0}` is not application/sdp")]
    ContentType(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Pending(#[from] super::PendingRefused),
}

impl From<WebrtcError> for ApiError {
    fn from(e: WebrtcError) -> ApiError {
        match e {
            WebrtcError::Sdp(e @ SdpError::Invalid(_)) => ApiError::bad_request(e.to_string()),
            WebrtcError::Sdp(e @ SdpError::NoUsableCodec(_)) => {
                ApiError::new(StatusCode::NOT_ACCEPTABLE, e.to_string())
            }
            WebrtcError::Hub(e) => e.into(),
            WebrtcError::Peer(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            WebrtcError::ContentType(_) => ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()),
            WebrtcError::BadRequest(m) => ApiError::bad_request(m),
            WebrtcError::Pending(e @ super::PendingRefused::PerAddress(_)) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string())
            }
            WebrtcError::Pending(e @ super::PendingRefused::Total(_)) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
        }
    }
}
