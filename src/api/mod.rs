//! The control API (JSON), `/healthz` and `/metrics`.

pub mod access;
mod cluster;
mod events;
mod matrix;
mod matrix_edit;
mod metrics;
mod recordings;
mod relays;
mod streams;

use axum::routing::{delete, get, post};
use axum::Router;

pub use crate::http::{parse_json, parse_key, ApiError};

use crate::gateway::Gateway;

pub fn router(gw: Gateway) -> Router {
    Router::new()
        .route("/healthz", get(cluster::healthz))
        .route("/api/v1/cluster", get(cluster::get))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/streams", get(streams::list))
        .route("/api/v1/streams/{stream}", get(streams::get).delete(streams::kick))
        .route("/api/v1/streams/{stream}/pushes", post(relays::add_push).get(relays::list_stream_pushes))
        .route("/api/v1/streams/{stream}/pushes/{id}", delete(relays::delete_stream_push))
        .route("/api/v1/pushes", get(relays::list_pushes))
        .route("/api/v1/pushes/{id}", get(relays::get_relay).delete(relays::delete_push))
        .route("/api/v1/pulls", post(relays::add_pull).get(relays::list_pulls))
        .route("/api/v1/pulls/{id}", get(relays::get_relay).delete(relays::delete_pull))
        .route("/api/v1/streams/{stream}/recordings", post(recordings::start))
        .route("/api/v1/streams/{stream}/recordings/{id}", delete(recordings::stop))
        .route("/api/v1/recordings", get(recordings::list))
        .route("/api/v1/recordings/{id}", get(recordings::get))
        .route("/api/v1/clips", post(recordings::clip))
        .route("/api/v1/matrix", get(matrix::get).put(matrix_edit::put))
        .route("/api/v1/matrix/check", post(matrix_edit::check))
        .route("/api/v1/matrix/rollback", post(matrix_edit::rollback))
        .route("/api/v1/matrix/source", get(matrix_edit::source))
        .route("/api/v1/events", get(events::events))
        .route("/api/v1/matrix/plan", get(matrix::plan))
        .route("/api/v1/matrix/reload", post(matrix::reload))
        .with_state(gw)
}
