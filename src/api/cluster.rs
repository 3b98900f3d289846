//! The cluster as the API shows it: `GET /api/v1/cluster` (the nodes and their load),
//! `GET /api/v1/streams?scope=cluster` (every node's streams: owner, viewers per node), and
//! `/healthz` saying when the cluster store cannot be reached.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::cluster::{unix_ms, Cluster, NodeRecord};
use crate::gateway::Gateway;
use crate::http::error::ErrorBody;
use crate::http::ApiError;
use crate::media::Protocol;

#[derive(Serialize, utoipa::ToSchema)]
pub struct ClusterView {
    /// The node that answers.
    pub node: String,
    pub redis: StoreView,
    pub nodes: Vec<NodeView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StoreView {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct NodeView {
    pub node: String,
    pub relay: String,
    /// CPU the node's process used over its last heartbeat, in cores.
    pub cpu: f64,
    /// Streams published on the node, and streams it relays from others.
    pub published: usize,
    pub relayed: usize,
    /// Viewers on the node (relay links to other nodes not counted).
    pub viewers: usize,
    pub started_ms: u64,
    /// How long ago the node last wrote its record.
    pub seen_ms_ago: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ClusterStreams {
    pub streams: Vec<ClusterStream>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ClusterStream {
    pub key: String,
    /// The node its publisher is on.
    pub owner: String,
    pub protocol: Protocol,
    /// Viewers per node.
    pub viewers: BTreeMap<String, usize>,
}

fn cluster_of(gw: &Gateway) -> Result<&Cluster, ApiError> {
    gw.cluster.as_ref().ok_or_else(|| ApiError::not_found("this gateway is not in a cluster (no cluster: section)"))
}

fn unreachable(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("the cluster store (Redis) is unreachable: {e}"))
}

#[utoipa::path(get, path = "/api/v1/cluster", tag = "cluster",
    summary = "The cluster: its nodes and their load",
    responses(
        (status = 200, description = "The nodes as the cluster store (Redis) knows them", body = ClusterView),
        (status = 404, description = "This gateway is not in a cluster", body = ErrorBody),
    ))]
pub async fn get(State(gw): State<Gateway>) -> Result<Json<ClusterView>, ApiError> {
    let cluster = cluster_of(&gw)?;
    let (redis, records) = match cluster.store().nodes().await {
        Ok(records) => (StoreView { ok: true, error: None }, records),
        Err(e) => (StoreView { ok: false, error: Some(e.to_string()) }, Vec::new()),
    };
    let now = unix_ms();
    let nodes = records.iter().map(|r| node_view(r, now)).collect();
    Ok(Json(ClusterView { node: cluster.node().to_string(), redis, nodes }))
}

fn node_view(r: &NodeRecord, now: u64) -> NodeView {
    let published = r.streams.iter().filter(|s| s.owner == r.node).count();
    NodeView {
        node: r.node.clone(),
        relay: r.relay.clone(),
        cpu: r.cpu,
        published,
        relayed: r.streams.len() - published,
        viewers: r.viewers(),
        started_ms: r.started_ms,
        seen_ms_ago: now.saturating_sub(r.seen_ms),
    }
}

/// Every node's streams, merged per key.
pub async fn streams(gw: &Gateway) -> Result<Json<ClusterStreams>, ApiError> {
    let cluster = cluster_of(gw)?;
    let records = cluster.store().nodes().await.map_err(unreachable)?;
    let mut merged: BTreeMap<String, ClusterStream> = BTreeMap::new();
    for record in &records {
        for s in &record.streams {
            let entry = merged.entry(s.key.clone()).or_insert_with(|| ClusterStream {
                key: s.key.clone(),
                owner: s.owner.clone(),
                protocol: s.protocol,
                viewers: BTreeMap::new(),
            });
            if s.owner == record.node {
                // The owner's own record is the authority on who publishes.
                entry.owner = s.owner.clone();
                entry.protocol = s.protocol;
            }
            entry.viewers.insert(record.node.clone(), s.viewers);
        }
    }
    Ok(Json(ClusterStreams { streams: merged.into_values().collect() }))
}

/// `ok`, or in a cluster whose store cannot be reached, what still works (200: this node
/// keeps serving its streams).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    summary = "Liveness",
    description = "200 while serving: `ok`, or in a cluster whose store is unreachable `degraded: ...` \
        (live streams continue). Needs no token; answered even past the connection cap.",
    responses(
        (status = 200, description = "`ok` or `degraded: ...`", content_type = "text/plain", body = String, example = "ok"),
    ))]
pub async fn healthz(State(gw): State<Gateway>) -> Response {
    match gw.cluster.as_ref().map(|c| c.store().health()) {
        Some(Err(e)) => format!(
            "degraded: the cluster store (Redis) is unreachable ({e}); live streams continue, new publishes are refused\n"
        )
        .into_response(),
        _ => "ok".into_response(),
    }
}
