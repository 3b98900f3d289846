//! The entry point `run(gateway, listeners, shutdown)`, so tests can start a complete server on
//! port 0, and the one place that composes the ways in: the HTTP router of the API and every
//! HTTP protocol, each given its own narrow state, and the RTMP listener.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use tokio::net::TcpListener;

use crate::config::Config;
pub use crate::gateway::{load_matrix, Gateway, ReloadStatus, ServerError};
use crate::http::routes::Routes;
use crate::http::ApiError;
use crate::protocols::rtmp::serve as rtmp_serve;
use crate::protocols::{flv, h5, hls, udp, webrtc};

/// How long shutdown waits for sessions to close before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub struct Listeners {
    pub http: TcpListener,
    pub rtmp: TcpListener,
    /// The control API and `/metrics` apart from `http` (`--api`).
    pub api: Option<TcpListener>,
    /// Relay links from the other nodes of a cluster (`cluster.relay`).
    pub relay: Option<TcpListener>,
}

impl Listeners {
    pub async fn bind(
        http: SocketAddr,
        rtmp: SocketAddr,
        api: Option<SocketAddr>,
        relay: Option<SocketAddr>,
    ) -> Result<Listeners, ServerError> {
        let bind = |what: &'static str, addr: SocketAddr| async move {
            TcpListener::bind(addr).await.map_err(|source| ServerError::Io { what: format!("{what} {addr}"), source })
        };
        let api = match api {
            Some(addr) => Some(bind("API", addr).await?),
            None => None,
        };
        let relay = match relay {
            Some(addr) => Some(bind("cluster relay", addr).await?),
            None => None,
        };
        Ok(Listeners { http: bind("HTTP", http).await?, rtmp: bind("RTMP", rtmp).await?, api, relay })
    }
}

/// Which part of the HTTP router a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serves {
    /// Everything (no `--api` listener).
    All,
    /// The media protocols, without the control API and `/metrics`.
    Media,
    /// The control API and `/metrics` (and `/healthz`).
    Api,
}

/// Serves until `shutdown` resolves, then stops accepting, closes sessions and returns.
pub async fn run(
    gw: Gateway,
    config: &Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    for decl in &config.pushes {
        let (key, url) = relay_decl(decl)?;
        let backups = decl.backup_urls.iter().map(|u| parse_rtmp_url(u)).collect::<Result<Vec<_>, _>>()?;
        gw.relays.add_push_with_backups(key, url, backups);
    }
    for decl in &config.pulls {
        if !decl.backup_urls.is_empty() {
            return Err(ServerError::Config(format!("pull of `{}`: backup_urls is for pushes only", decl.stream)));
        }
        let (key, url) = relay_decl(decl)?;
        gw.relays.add_pull(key, url).map_err(|e| ServerError::Config(e.to_string()))?;
    }
    if let (Some(cluster), Some(relay)) = (gw.cluster.as_ref(), listeners.relay) {
        let reloading = gw.clone();
        cluster.start(relay, std::sync::Arc::new(move || drop(reloading.reload())));
    }
    let own: Vec<SocketAddr> = [Some(&listeners.http), Some(&listeners.rtmp), listeners.api.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(|l| l.local_addr().ok())
        .collect();
    gw.relay_targets.set_own_listeners(own);
    if let Ok(addr) = listeners.http.local_addr() {
        gw.set_http_port(addr.port());
    }
    let open_files = crate::limits::raise_open_files_limit();
    let (rtmp_cap, http_cap) = crate::limits::connection_caps(&config.limits, open_files);
    tracing::info!(open_files, rtmp_cap, http_cap, "connection caps");
    let per_address = config.limits.max_connections_per_address;
    let rtmp_gate = crate::limits::Gate::new("rtmp", rtmp_cap).per_address(per_address);
    let rtmp = tokio::spawn(rtmp_serve::accept_loop_gated(listeners.rtmp, rtmp_state(&gw), rtmp_gate));
    let token = gw.shutdown.clone();
    let http_gate = crate::limits::Gate::new("http", http_cap).per_address(per_address);
    let (media, api) = match listeners.api {
        Some(api) => {
            let gate = crate::limits::Gate::new("api", http_cap);
            let serving =
                crate::http::serve::serve(api, router(&gw, Serves::Api), gw.limits, gw.shutdown.clone(), gate, None);
            (Serves::Media, Some(tokio::spawn(serving)))
        }
        None => (Serves::All, None),
    };
    let http = tokio::spawn(crate::http::serve::serve(
        listeners.http,
        router(&gw, media),
        gw.limits,
        gw.shutdown.clone(),
        http_gate,
        Some(flv_ctx(&gw)),
    ));
    shutdown.await;
    tracing::info!("shutting down");
    token.cancel();
    for stream in gw.hub.streams() {
        stream.kick();
    }
    let closing = async {
        let _ = rtmp.await;
        let _ = http.await;
        if let Some(api) = api {
            let _ = api.await;
        }
        // WebRTC and UDP sessions end on the shutdown token; wait for their pipelines to stop.
        gw.webrtc.wait_closed(SHUTDOWN_GRACE).await;
        gw.udp.wait_closed(SHUTDOWN_GRACE).await;
        // Conversions end with their streams.
        crate::pipeline::live::wait_all_stopped(SHUTDOWN_GRACE).await;
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, closing).await.is_err() {
        tracing::warn!("sessions did not close in time; stopping their pipelines");
    }
    stop_pipelines().await;
    Ok(())
}

/// Every HTTP route: the control API, HTTP-FLV, WHIP/WHEP, H5, HLS, recordings and the UDP
/// API, each with its own state, and the table of them (see [`crate::http::routes`]).
pub fn routes(gw: &Gateway) -> Routes {
    crate::api::routes(gw.clone())
        // HTTP-FLV play.
        .merge(flv::http::routes(flv_ctx(gw)))
        // WHIP/WHEP (with their own CORS layer).
        .merge(webrtc::routes(webrtc::WebrtcCtx {
            hub: gw.hub.clone(),
            webrtc: gw.webrtc.clone(),
            shutdown: gw.shutdown.clone(),
            admission: gw.admission.clone(),
        }))
        // H5 (JSMpeg): play, publish, player page.
        .merge(h5::routes(h5::H5Ctx {
            hub: gw.hub.clone(),
            shutdown: gw.shutdown.clone(),
            limits: gw.limits,
            admission: gw.admission.clone(),
        }))
        // HLS and LL-HLS play.
        .merge(hls::http::routes(hls::http::HlsCtx {
            outputs: gw.hls.clone(),
            admission: gw.admission.clone(),
            sessions: gw.hls_sessions.clone(),
        }))
        // Recordings and clips: files and VOD playlists.
        .merge(crate::record::http::routes(crate::record::http::FilesCtx {
            recordings: gw.recordings.clone(),
            clips: gw.clips.clone(),
            admission: gw.admission.clone(),
        }))
        // The operator's console (a built single-page app; see `console`).
        .merge(crate::console::routes(crate::console::console_dir()))
        .merge(udp::routes(udp::UdpCtx { hub: gw.hub.clone(), udp: gw.udp.clone(), shutdown: gw.shutdown.clone() }))
}

/// The HTTP router: [`routes`] and the bounds every HTTP request shares; `serves` keeps the
/// API on its own listener (or off it).
pub fn router(gw: &Gateway, serves: Serves) -> Router {
    let body_limit = axum::extract::DefaultBodyLimit::max(gw.limits.http_body_bytes);
    let bounds = crate::http::body_timeout::BodyBounds {
        timeout: gw.limits.http_body_timeout(),
        max_bytes: gw.limits.http_body_bytes,
    };
    routes(gw)
        .into_router()
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, NO_SUCH_ENDPOINT) })
        // axum's own (plain-text) rejections answer `{"error"}` too.
        .layer(axum::middleware::map_response(crate::http::error::json_rejections))
        // JSON and SDP bodies (the H5 POST streams its body and is bounded by `limits:` itself).
        .layer(body_limit)
        // Every other body is read whole within `limits.http_body_timeout_seconds` (else 408).
        .layer(axum::middleware::from_fn_with_state(bounds, crate::http::body_timeout::bound_body))
        // The control API and /metrics: tokens and roles, no cross-site state changes.
        .layer(axum::middleware::from_fn_with_state(gw.admission.clone(), crate::api::access::guard))
        .layer(axum::middleware::from_fn_with_state(serves, only_what_it_serves))
}

/// The router's answer (404) to a path it has no route for.
pub const NO_SUCH_ENDPOINT: &str = "no such endpoint";

fn flv_ctx(gw: &Gateway) -> flv::http::FlvCtx {
    flv::http::FlvCtx { hub: gw.hub.clone(), admission: gw.admission.clone() }
}

/// With an API listener, the control API is not found on the media port and only the API
/// (and `/healthz`) is found on the API port.
async fn only_what_it_serves(
    axum::extract::State(serves): axum::extract::State<Serves>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = req.uri().path();
    // The console goes with the API it calls.
    let api = crate::api::access::is_api(path) || crate::console::is_console(path);
    let found = match serves {
        Serves::All => true,
        Serves::Media => !api,
        Serves::Api => api || path == "/healthz",
    };
    if found {
        next.run(req).await
    } else {
        ApiError::new(StatusCode::NOT_FOUND, "no such endpoint on this listener").into_response()
    }
}

fn rtmp_state(gw: &Gateway) -> rtmp_serve::RtmpCtx {
    rtmp_serve::RtmpCtx {
        hub: gw.hub.clone(),
        shutdown: gw.shutdown.clone(),
        limits: gw.limits,
        admission: gw.admission.clone(),
    }
}

/// Stops every GStreamer pipeline still running, so that none is disposed while playing and
/// no streaming thread runs while the process exits.
pub async fn stop_pipelines() {
    match tokio::task::spawn_blocking(crate::pipeline::live::stop_all).await {
        Ok(0) | Err(_) => {}
        Ok(n) => tracing::warn!(pipelines = n, "pipelines left running at shutdown were stopped"),
    }
}

fn relay_decl(
    decl: &crate::config::RelayDecl,
) -> Result<(crate::hub::StreamKey, crate::protocols::rtmp::RtmpUrl), ServerError> {
    let key = decl.stream.parse().map_err(|e: crate::hub::InvalidStreamKey| ServerError::Config(e.to_string()))?;
    Ok((key, parse_rtmp_url(&decl.url)?))
}

fn parse_rtmp_url(url: &str) -> Result<crate::protocols::rtmp::RtmpUrl, ServerError> {
    url.parse().map_err(|e: crate::protocols::rtmp::RtmpError| ServerError::Config(format!("{url}: {e}")))
}
