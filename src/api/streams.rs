//! `GET/DELETE /api/v1/streams[/{stream}]`: what is live, who watches, what converts.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::Extension;

use crate::auth::Role;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use crate::gateway::Gateway;
use crate::http::error::ErrorBody;
use crate::http::{parse_key, ApiError};
use crate::hub::Stream;
use crate::media::{Codec, TrackInfo};

#[derive(Serialize, utoipa::ToSchema)]
pub struct StreamList {
    pub streams: Vec<StreamView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StreamView {
    pub key: String,
    pub publisher: PublisherView,
    pub video: Option<VideoView>,
    pub audio: Option<AudioView>,
    /// Consumers by protocol.
    pub consumers: BTreeMap<String, usize>,
    pub sessions: Vec<SessionView>,
    pub conversions: Vec<ConversionView>,
    pub bytes_in: u64,
    /// The publisher left and the stream waits (its reconnect grace) for another.
    pub reconnecting: bool,
    /// Publishers that continued the stream after the one before left.
    pub reconnects: u64,
    /// In a cluster: the node the stream is published on (this one, or the one it is
    /// relayed from).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PublisherView {
    pub id: u64,
    pub protocol: String,
    pub transport: String,
    pub remote: Option<String>,
    pub since: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct VideoView {
    pub codec: Codec,
    pub width: u32,
    pub height: u32,
    pub fps: Option<f64>,
    pub bframes: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AudioView {
    pub codec: Codec,
    pub sample_rate: u32,
    pub channels: u8,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub id: u64,
    pub protocol: String,
    pub transport: String,
    pub remote: Option<String>,
    pub since: u64,
    pub bytes_out: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ConversionView {
    pub track: String,
    pub from: Codec,
    pub to: Codec,
    pub consumers: usize,
    /// Why it runs: the matrix names it (`rule`), an `auto` cell, a copy that cannot work
    /// for this stream's codec, or B-frames the receiver cannot take.
    pub reason: crate::matrix::Reason,
    pub params: String,
    pub pipeline: String,
    pub frames_in: u64,
    pub frames_out: u64,
    pub error: Option<String>,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// What `GET /api/v1/streams` answers: this node's streams, or the cluster's.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // a schema only
pub enum StreamsAnswer {
    Node(StreamList),
    Cluster(super::cluster::ClusterStreams),
}

pub fn view(stream: &Stream) -> StreamView {
    let video = stream.video_info().and_then(|i| match i.as_ref() {
        TrackInfo::Video(v) => {
            Some(VideoView { codec: v.codec, width: v.width, height: v.height, fps: v.fps, bframes: v.bframes })
        }
        _ => None,
    });
    let audio = stream.audio_info().and_then(|i| match i.as_ref() {
        TrackInfo::Audio(a) => Some(AudioView { codec: a.codec, sample_rate: a.sample_rate, channels: a.channels }),
        _ => None,
    });
    let sessions: Vec<SessionView> = stream
        .consumers()
        .iter()
        .map(|c| SessionView {
            id: c.id.0,
            protocol: c.protocol.to_string(),
            transport: c.transport.clone(),
            remote: c.remote.clone(),
            since: unix(c.started),
            bytes_out: c.bytes_out.load(Ordering::Relaxed),
        })
        .collect();
    let mut consumers = BTreeMap::new();
    for s in &sessions {
        *consumers.entry(s.protocol.clone()).or_insert(0) += 1;
    }
    let conversions = stream
        .conversions()
        .iter()
        .map(|c| ConversionView {
            track: c.key.track.to_string(),
            from: c.key.from,
            to: c.key.to,
            consumers: c.consumers(),
            reason: c.reason,
            params: c.key.params.clone(),
            pipeline: c.description.clone(),
            frames_in: c.frames_in(),
            frames_out: c.frames_out(),
            error: c.error(),
        })
        .collect();
    let p = &stream.publisher();
    StreamView {
        key: stream.key.to_string(),
        publisher: PublisherView {
            id: p.id.0,
            protocol: p.protocol.to_string(),
            transport: p.transport.clone(),
            remote: p.remote.clone(),
            since: unix(p.started),
        },
        video,
        audio,
        consumers,
        sessions,
        conversions,
        bytes_in: stream.bytes_in(),
        reconnecting: stream.is_reconnecting(),
        reconnects: stream.takeovers(),
        owner: None,
    }
}

/// [`view`] with the owner node named, in a cluster.
fn view_in(gw: &Gateway, stream: &Stream) -> StreamView {
    let mut v = view(stream);
    v.owner = gw.cluster.as_ref().map(|c| c.owner_name(stream));
    v
}

/// `?scope=cluster`: the whole cluster's view instead of this node's.
#[derive(serde::Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Scope {
    /// `node` (the default): this gateway only; `cluster`: every node of its cluster.
    #[param(value_type = Option<ScopeName>)]
    scope: Option<String>,
}

/// The values of `?scope=`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // a schema only: `Scope` parses the text itself, to answer its own 400
pub enum ScopeName {
    Node,
    Cluster,
}

impl Scope {
    pub fn is_cluster(&self) -> Result<bool, ApiError> {
        match self.scope.as_deref() {
            None | Some("node") => Ok(false),
            Some("cluster") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!("scope `{other}`: use `node` or `cluster`"))),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/streams", tag = "streams",
    summary = "List the live streams",
    description = "Each stream's publisher, codecs, consumers by protocol and running conversions. \
        Addresses of publishers and viewers are shown to the `admin` role only. With \
        `?scope=cluster`, every node's streams (owner and viewers per node) instead.",
    params(Scope),
    responses(
        (status = 200, description = "This node's streams (`StreamList`), or with `?scope=cluster` the cluster's (`ClusterStreams`)",
            body = StreamsAnswer),
        (status = 400, description = "Bad `scope`", body = ErrorBody),
        (status = 404, description = "`scope=cluster` on a gateway not in a cluster", body = ErrorBody),
        (status = 503, description = "`scope=cluster`: the cluster store is unreachable", body = ErrorBody),
    ))]
pub async fn list(
    State(gw): State<Gateway>,
    role: Option<Extension<Role>>,
    Query(scope): Query<Scope>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    if scope.is_cluster()? {
        return Ok(super::cluster::streams(&gw).await?.into_response());
    }
    Ok(Json(StreamList { streams: views_for(&gw, role.as_deref()) }).into_response())
}

#[utoipa::path(get, path = "/api/v1/streams/{stream}", tag = "streams",
    summary = "One live stream",
    params(("stream" = String, Path, description = "The stream key")),
    responses(
        (status = 200, description = "The stream", body = StreamView),
        (status = 400, description = "Bad stream key", body = ErrorBody),
        (status = 404, description = "The stream is not live", body = ErrorBody),
    ))]
pub async fn get(
    State(gw): State<Gateway>,
    role: Option<Extension<Role>>,
    Path(key): Path<String>,
) -> Result<Json<StreamView>, ApiError> {
    let key = parse_key(&key)?;
    let stream = gw.hub.stream(&key).ok_or_else(|| ApiError::not_found(format!("stream `{key}` is not live")))?;
    Ok(Json(for_role(view_in(&gw, &stream), role.as_deref())))
}

/// This node's streams as `role` may see them (also what the console's events carry).
pub(super) fn views_for(gw: &Gateway, role: Option<&Role>) -> Vec<StreamView> {
    gw.hub.streams().iter().map(|s| for_role(view_in(gw, s), role)).collect()
}

/// Viewers' and publishers' addresses are for the admin role only.
fn for_role(mut view: StreamView, role: Option<&Role>) -> StreamView {
    if role != Some(&Role::Admin) {
        view.publisher.remote = None;
        for s in &mut view.sessions {
            s.remote = None;
        }
    }
    view
}

/// Disconnects the stream's publisher (`?scope=cluster`: on every node, wherever it is).
#[utoipa::path(delete, path = "/api/v1/streams/{stream}", tag = "streams",
    summary = "Disconnect a stream's publisher",
    description = "With `?scope=cluster`, on every node of the cluster, wherever it publishes.",
    params(("stream" = String, Path, description = "The stream key"), Scope),
    responses(
        (status = 204, description = "Disconnected"),
        (status = 400, description = "Bad stream key or `scope`, or `scope=cluster` outside a cluster", body = ErrorBody),
        (status = 404, description = "The stream is not live", body = ErrorBody),
        (status = 503, description = "`scope=cluster`: not sent to the other nodes", body = ErrorBody),
    ))]
pub async fn kick(
    State(gw): State<Gateway>,
    Path(key): Path<String>,
    Query(scope): Query<Scope>,
) -> Result<StatusCode, ApiError> {
    let key = parse_key(&key)?;
    let local = gw.hub.stream(&key);
    if scope.is_cluster()? {
        let cluster = gw.cluster.as_ref().ok_or_else(|| ApiError::bad_request("this gateway is not in a cluster"))?;
        if let Some(stream) = &local {
            stream.kick();
        }
        cluster
            .broadcast(crate::cluster::records::Action::Kick { stream: key.to_string() })
            .await
            .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("not sent to the other nodes: {e}")))?;
        tracing::info!(stream = %key, "publisher disconnected on every node by the API");
        return Ok(StatusCode::NO_CONTENT);
    }
    let stream = local.ok_or_else(|| ApiError::not_found(format!("stream `{key}` is not live")))?;
    stream.kick();
    tracing::info!(stream = %key, "publisher disconnected by the API");
    Ok(StatusCode::NO_CONTENT)
}
