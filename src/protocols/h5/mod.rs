//! H5: JSMpeg viewers and publishers. MPEG-TS (MPEG-1 video + MP2 audio) over WebSocket out,
//! over an HTTP POST body or a WebSocket in.
//!
//! Routes (see [`routes`]):
//! - `GET /h5/{stream}` (WebSocket): play; binary MPEG-TS, one frame per message.
//! - `POST /h5/{stream}`: publish; the chunked body is MPEG-TS (`ffmpeg -f mpegts URL`).
//! - `GET /h5/{stream}/publish` (WebSocket): publish; binary messages of MPEG-TS.
//! - `GET /h5/{stream}/player`: the JSMpeg player page; `GET /h5-assets/jsmpeg.min.js`.
//!
//! The protocol logic has no IO: [`ts`] (mux/demux), [`mpeg1_video`], [`mp2_audio`] and
//! [`ingest`]; [`interleave`] orders a viewer's frames by time; [`shared`] packetizes each frame once per stream; `play`, `publish` and
//! `player` are the thin async layer.

pub mod ingest;
pub mod interleave;
pub mod mp2_audio;
pub mod mpeg1_video;
mod play;
pub mod player;
mod publish;
pub mod shared;
pub mod ts;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Extension;

pub use play::{AUDIO_TABLES_EVERY, PING_EVERY, PONG_TIMEOUT, QUEUE_MESSAGES};
pub use publish::{PublishError, PublishSummary, PUBLISH_SILENCE};

use crate::http::routes::Routes;
use crate::http::ApiError;
use tokio_util::sync::CancellationToken;

use crate::auth::Admission;
use crate::config::LimitsSettings;
use crate::hub::{Hub, StreamKey};

/// What the H5 handlers get from the gateway.
#[derive(Clone)]
pub struct H5Ctx {
    pub hub: Hub,
    pub shutdown: CancellationToken,
    pub limits: LimitsSettings,
    pub admission: Admission,
}

/// What the H5 routes share: the per-stream packet caches and where JSMpeg is.
pub struct H5State {
    pub caches: shared::PacketCaches,
    pub jsmpeg: PathBuf,
}

/// The H5 routes, to merge into the gateway's router.
pub fn routes(ctx: H5Ctx) -> Routes {
    let state = Arc::new(H5State { caches: shared::PacketCaches::default(), jsmpeg: player::jsmpeg_path() });
    Routes::new()
        .get("/h5/{stream}", play::play)
        .post("/h5/{stream}", publish::post)
        .get("/h5/{stream}/publish", publish::websocket)
        .get("/h5/{stream}/player", player::page)
        .get(player::JSMPEG_ROUTE, player::jsmpeg)
        .map_router(|r| r.layer(Extension(state)))
        .with_state(ctx)
}

/// The OpenAPI description of these routes (see `crate::api::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(play::play, publish::post, publish::websocket, player::page, player::jsmpeg))]
pub struct Doc;

fn parse_key(raw: &str) -> Result<StreamKey, ApiError> {
    raw.parse().map_err(|e: crate::hub::InvalidStreamKey| ApiError::bad_request(e.to_string()))
}
