//! The HTTP side of the gateway: the control API (JSON) and the HTTP media endpoints.

mod body_timeout;
mod error;
mod flv;
pub mod linger;
mod matrix;
mod metrics;
mod relays;
pub mod serve;
mod streams;
pub mod write_stall;

use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::Router;

pub use error::{parse_json, parse_key, ApiError};

use crate::server::Gateway;

pub fn router(gw: Gateway) -> Router {
    let body_limit = axum::extract::DefaultBodyLimit::max(gw.limits.http_body_bytes);
    let bounds = body_timeout::BodyBounds {
        timeout: gw.limits.http_body_timeout(),
        max_bytes: gw.limits.http_body_bytes,
    };
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/streams", get(streams::list))
        .route(
            "/api/v1/streams/{stream}",
            get(streams::get).delete(streams::kick),
        )
        .route(
            "/api/v1/streams/{stream}/pushes",
            post(relays::add_push).get(relays::list_stream_pushes),
        )
        .route(
            "/api/v1/streams/{stream}/pushes/{id}",
            delete(relays::delete_stream_push),
        )
        .route("/api/v1/pushes", get(relays::list_pushes))
        .route(
            "/api/v1/pushes/{id}",
            get(relays::get_relay).delete(relays::delete_push),
        )
        .route(
            "/api/v1/pulls",
            post(relays::add_pull).get(relays::list_pulls),
        )
        .route(
            "/api/v1/pulls/{id}",
            get(relays::get_relay).delete(relays::delete_pull),
        )
        .route("/api/v1/matrix", get(matrix::get))
        .route("/api/v1/matrix/plan", get(matrix::plan))
        .route("/api/v1/matrix/reload", post(matrix::reload))
        .route("/live/{file}", get(flv::live))
        .route("/mini/{file}", get(flv::mini))
        // WHIP/WHEP (with their own CORS layer).
        .merge(crate::protocols::webrtc::routes())
        // H5 (JSMpeg): play, publish, player page.
        .merge(crate::protocols::h5::routes())
        .merge(crate::protocols::udp::routes())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        // JSON and SDP bodies (the H5 POST streams its body and is bounded by `limits:` itself).
        .layer(body_limit)
        // Every other body is read whole within `limits.http_body_timeout_seconds` (else 408).
        .layer(axum::middleware::from_fn_with_state(
            bounds,
            body_timeout::bound_body,
        ))
        .with_state(gw)
}
