//! Why a UDP ingest or output request failed, and the HTTP status that says so.

use axum::http::StatusCode;

use super::sdp::SdpError;
use crate::http::ApiError;
use crate::hub::HubError;

#[derive(Debug, thiserror::Error)]
pub enum UdpError {
    /// The SDP is unusable (400).
    #[error("{0}")]
    Sdp(#[from] SdpError),
    #[error("{0}")]
    Hub(#[from] HubError),
    /// A port the SDP names is held by someone else (409).
    #[error("{0}")]
    PortInUse(String),
    /// A port cannot be bound for another reason, e.g. a privileged port (400).
    #[error("{0}")]
    Bind(String),
    /// A port outside `udp.ingest_port_min..=ingest_port_max` (403).
    #[error("{0}")]
    PortNotAllowed(String),
    /// The output's host is not allowed (`relay.allowed_hosts`; 403).
    #[error("{0}")]
    HostNotAllowed(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// The stream's tracks did not show up in time to describe them (503).
    #[error("{0}")]
    NotReady(String),
    /// GStreamer could not build or start the pipeline (500).
    #[error("cannot run the RTP pipeline: {0}")]
    Pipeline(String),
}

impl From<UdpError> for ApiError {
    fn from(e: UdpError) -> ApiError {
        let status = match &e {
            UdpError::Hub(_) => None,
            UdpError::Sdp(_) | UdpError::Bind(_) | UdpError::BadRequest(_) => Some(StatusCode::BAD_REQUEST),
            UdpError::PortInUse(_) => Some(StatusCode::CONFLICT),
            UdpError::HostNotAllowed(_) | UdpError::PortNotAllowed(_) => Some(StatusCode::FORBIDDEN),
            UdpError::NotFound(_) => Some(StatusCode::NOT_FOUND),
            UdpError::NotReady(_) => Some(StatusCode::SERVICE_UNAVAILABLE),
            UdpError::Pipeline(_) => Some(StatusCode::INTERNAL_SERVER_ERROR),
        };
        match (status, e) {
            (_, UdpError::Hub(h)) => h.into(),
            (Some(status), e) => ApiError::new(status, e.to_string()),
            (None, e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}
