//! The OpenAPI 3.1 description of every HTTP route, generated from the handlers'
//! `#[utoipa::path]` attributes and the API's own types (`ToSchema`), served at
//! `GET /api/v1/openapi.json` and printed by `interop-gateway openapi`.
//!
//! Each module documents the routes it adds: the control API here ([`ControlDoc`]), each
//! media protocol in its own `Doc` ([`document`] merges them). What every control-API
//! operation shares is added by [`AccessControl`] from the rules of [`super::access`]: the
//! bearer token and its role, 401/403, and for state changes 415 and the same-origin 403;
//! [`BodyBounds`] adds the 408/413 of a body read too slowly or too large. A test compares
//! the document's operations with the router's (`crate::http::routes`), both ways.

use std::sync::OnceLock;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder};
use utoipa::OpenApi;

use super::{cluster, events, matrix, matrix_edit, metrics, recordings, relays, streams};
use crate::http::error::ErrorBody;

/// The name of the bearer security scheme.
pub const BEARER: &str = "api_token";

/// The tags, in the order a reader meets them.
const TAGS: [(&str, &str); 12] = [
    ("streams", "Live streams: who publishes, which codecs, who watches, what converts."),
    ("relays", "CDN pushes and pulls (RTMP), with their state."),
    ("recordings", "Recordings and clips (the files themselves are under the `media` tag)."),
    ("matrix", "The conversion matrix: what runs, what a bridge would do, reloading it."),
    ("udp", "UDP/RTP ingest and outputs, described by SDP."),
    ("cluster", "The nodes of a cluster."),
    ("operations", "Health, metrics, this description and the console's event stream."),
    (
        "media",
        "Media endpoints (not the control API): play and publish. Admitted by `auth.play` / \
         `auth.publish` (a key, a signed query, a webhook, ...) from the query string or \
         `Authorization: Bearer`; a refusal is 401 or 403 with `{\"error\"}`.",
    ),
    ("webrtc", "WHIP (RFC 9725) publish and WHEP play: SDP offer in, 201 with `Location` and the SDP answer out."),
    ("hls", "HLS and LL-HLS play: playlists, segments, parts, a player page."),
    ("h5", "H5 (JSMpeg): MPEG-TS over WebSocket out, over a POST body or a WebSocket in; a player page."),
    (
        "console",
        "The operator's console: a page and its files, served without access control (they hold nothing; \
         what the page shows comes from the control API, under its rules).",
    ),
];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "interop-gateway",
        description = "The control API of interop-gateway (JSON; every error is `{\"error\": \"...\"}` with a \
            fitting status) and its media endpoints.\n\n\
            **Access.** `/api/` and `/metrics` need a bearer token of `auth.api_tokens`: role `read` for GET, \
            `admin` for anything else (with no tokens configured, loopback clients only, without a token). \
            A state change must come with a JSON (or SDP) body type, and from a browser only from a page of the \
            gateway's own origin.\n\n\
            **Listeners.** With `--api ADDR`, the control API and `/metrics` are served there only and the \
            media endpoints on `--http` only (either answers 404 `no such endpoint on this listener` for the \
            other's paths; `/healthz` is on both).\n\n\
            **Bounds.** Request bodies are read within `limits.http_body_timeout_seconds` (else 408) and \
            `limits.http_body_bytes` (else 413). Past `limits.max_http_connections`, every path but `/healthz` \
            answers 503 with `Retry-After`. A path without a route answers 404 `{\"error\": \"no such endpoint\"}`; \
            a method the path does not take, 405.",
    ),
    paths(
        cluster::healthz,
        metrics::metrics,
        document,
        cluster::get,
        streams::list,
        streams::get,
        streams::kick,
        relays::add_push,
        relays::list_stream_pushes,
        relays::delete_stream_push,
        relays::list_pushes,
        relays::get_push,
        relays::delete_push,
        relays::add_pull,
        relays::list_pulls,
        relays::get_pull,
        relays::delete_pull,
        recordings::start,
        recordings::stop,
        recordings::list,
        recordings::get,
        recordings::clip,
        matrix::get,
        matrix::plan,
        matrix::reload,
        matrix_edit::source,
        matrix_edit::check,
        matrix_edit::put,
        matrix_edit::rollback,
        events::events,
    ),
    components(schemas(ErrorBody, streams::ScopeName, events::Snapshot))
)]
pub struct ControlDoc;

/// The whole document: the control API's and every media protocol's routes, with what the
/// access guard and the body bounds add to each operation.
pub fn build() -> Document {
    let mut doc = ControlDoc::openapi();
    doc.merge(crate::protocols::udp::Doc::openapi());
    doc.merge(crate::protocols::flv::http::Doc::openapi());
    doc.merge(crate::protocols::webrtc::Doc::openapi());
    doc.merge(crate::protocols::h5::Doc::openapi());
    doc.merge(crate::protocols::hls::http::Doc::openapi());
    doc.merge(crate::record::http::Doc::openapi());
    doc.merge(crate::console::Doc::openapi());
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc.tags = Some(
        TAGS.iter()
            .map(|(name, text)| utoipa::openapi::tag::TagBuilder::new().name(*name).description(Some(*text)).build())
            .collect(),
    );
    AccessControl.apply(&mut doc);
    BodyBounds.apply(&mut doc);
    for (path, method, op) in operations(&mut doc) {
        op.operation_id = Some(operation_id(method, path));
    }
    doc
}

/// A unique id of an operation, from its method and path: `get_api_v1_streams_stream`; a
/// trailing slash adds `_slash` (`/console/` beside `/console`). (Handlers' own names, which
/// utoipa takes by default, repeat across modules.)
fn operation_id(method: &str, path: &str) -> String {
    let words = path.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty());
    let slash = (path.len() > 1 && path.ends_with('/')).then(|| "slash".to_string());
    std::iter::once(method.to_ascii_lowercase())
        .chain(words.map(str::to_string))
        .chain(slash)
        .collect::<Vec<_>>()
        .join("_")
}

/// The document as JSON text (built once).
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| build().to_pretty_json().expect("the OpenAPI document serializes"))
}

/// `GET /api/v1/openapi.json`.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    summary = "This description (OpenAPI 3.1)",
    responses((status = 200, description = "The OpenAPI 3.1 document of every route", content_type = "application/json",
        body = serde_json::Value)))]
pub async fn document() -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], json()).into_response()
}

/// Every operation of the document with its path and method.
fn operations(doc: &mut Document) -> impl Iterator<Item = (&str, &'static str, &mut Operation)> {
    doc.paths.paths.iter_mut().flat_map(|(path, item)| {
        [
            ("GET", item.get.as_mut()),
            ("PUT", item.put.as_mut()),
            ("POST", item.post.as_mut()),
            ("DELETE", item.delete.as_mut()),
            ("OPTIONS", item.options.as_mut()),
            ("HEAD", item.head.as_mut()),
            ("PATCH", item.patch.as_mut()),
            ("TRACE", item.trace.as_mut()),
        ]
        .into_iter()
        .filter_map(move |(method, op)| op.map(|op| (path.as_str(), method, op)))
    })
}

/// `(METHOD, path)` of every operation the document describes.
pub fn described(doc: &mut Document) -> std::collections::BTreeSet<(String, String)> {
    operations(doc).map(|(path, method, _)| (method.to_string(), path.to_string())).collect()
}

/// An `{"error"}` answer.
fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    RefOr::T(ResponseBuilder::new().description(description).content("application/json", content).build())
}

/// Adds `status` to `op`, or when a handler documents it already, says what else answers it.
fn add_error(op: &mut Operation, status: u16, description: &str) {
    let responses = &mut op.responses.responses;
    match responses.get_mut(&status.to_string()) {
        Some(RefOr::T(r)) => {
            if !r.description.contains(description) {
                r.description = format!("{}; or: {description}", r.description);
            }
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            responses.insert(status.to_string(), error_response(description));
        }
    }
}

/// What [`super::access::guard`] adds to the control API and `/metrics`.
pub struct AccessControl;

impl AccessControl {
    fn apply(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some(
            "A token of `auth.api_tokens` (`Authorization: Bearer TOKEN`). Role `read` may GET the control \
             API and `/metrics`; role `admin` may also change things (POST, PUT, DELETE). Without \
             `api_tokens`, only loopback clients are served, and need no token."
                .to_string(),
        );
        components.add_security_scheme(BEARER, SecurityScheme::Http(bearer));
        for (path, method, op) in operations(doc) {
            if !super::access::is_api(path) {
                continue;
            }
            let reads = method == "GET" || method == "HEAD";
            let role = if reads { "read" } else { "admin" };
            op.security = Some(vec![SecurityRequirement::new(BEARER, [role])]);
            add_error(op, 401, "no or unknown API token");
            add_error(
                op,
                403,
                &format!("the token's role is below `{role}` (or a non-loopback client without tokens configured)"),
            );
            if !reads {
                add_error(op, 403, "a cross-site request (its `Origin` is not this host)");
                add_error(op, 415, "a body that is not `application/json` (or `application/sdp` for a UDP ingest)");
            }
        }
    }
}

/// What [`crate::http::body_timeout::bound_body`] adds to an operation that takes a body.
pub struct BodyBounds;

impl BodyBounds {
    fn apply(&self, doc: &mut Document) {
        for (path, method, op) in operations(doc) {
            // The H5 POST is a stream, bounded by its own silence timeout instead.
            let streams = method == "POST" && path == "/h5/{stream}";
            if op.request_body.is_none() || streams {
                continue;
            }
            add_error(op, 408, "the body did not arrive within `limits.http_body_timeout_seconds`");
            add_error(op, 413, "the body is over `limits.http_body_bytes`");
        }
    }
}

#[cfg(test)]
#[path = "openapi_tests.rs"]
mod tests;
