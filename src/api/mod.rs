//! The control API (JSON), `/healthz`, `/metrics` and the API's own description
//! (`/api/v1/openapi.json`, see [`openapi`]).

pub mod access;
mod cluster;
mod events;
mod matrix;
mod matrix_edit;
mod metrics;
pub mod openapi;
mod recordings;
mod relays;
mod streams;

pub use crate::http::{parse_json, parse_key, ApiError};

use crate::gateway::Gateway;
use crate::http::routes::Routes;

/// The control API's routes. A new one needs its `#[utoipa::path]` too (see [`openapi`]).
pub fn routes(gw: Gateway) -> Routes {
    Routes::new()
        .get("/healthz", cluster::healthz)
        .get("/api/v1/cluster", cluster::get)
        .get("/metrics", metrics::metrics)
        .get("/api/v1/openapi.json", openapi::document)
        .get("/api/v1/streams", streams::list)
        .get("/api/v1/streams/{stream}", streams::get)
        .delete("/api/v1/streams/{stream}", streams::kick)
        .post("/api/v1/streams/{stream}/pushes", relays::add_push)
        .get("/api/v1/streams/{stream}/pushes", relays::list_stream_pushes)
        .delete("/api/v1/streams/{stream}/pushes/{id}", relays::delete_stream_push)
        .get("/api/v1/pushes", relays::list_pushes)
        .get("/api/v1/pushes/{id}", relays::get_push)
        .delete("/api/v1/pushes/{id}", relays::delete_push)
        .post("/api/v1/pulls", relays::add_pull)
        .get("/api/v1/pulls", relays::list_pulls)
        .get("/api/v1/pulls/{id}", relays::get_pull)
        .delete("/api/v1/pulls/{id}", relays::delete_pull)
        .post("/api/v1/streams/{stream}/recordings", recordings::start)
        .delete("/api/v1/streams/{stream}/recordings/{id}", recordings::stop)
        .get("/api/v1/recordings", recordings::list)
        .get("/api/v1/recordings/{id}", recordings::get)
        .post("/api/v1/clips", recordings::clip)
        .get("/api/v1/matrix", matrix::get)
        .put("/api/v1/matrix", matrix_edit::put)
        .post("/api/v1/matrix/check", matrix_edit::check)
        .post("/api/v1/matrix/rollback", matrix_edit::rollback)
        .get("/api/v1/matrix/source", matrix_edit::source)
        .get("/api/v1/events", events::events)
        .get("/api/v1/matrix/plan", matrix::plan)
        .post("/api/v1/matrix/reload", matrix::reload)
        .with_state(gw)
}
