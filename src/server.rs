//! The whole gateway as one value (`Gateway`) and its entry point `run(gateway, listeners,
//! shutdown)`, so tests can start a complete server on port 0.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::hub::Hub;
use crate::matrix::{Matrix, MatrixError};
use crate::pipeline::{FragmentError, Pipelines};
use crate::protocols::cdn::Relays;
use crate::protocols::rtmp::serve as rtmp_serve;

/// How long shutdown waits for sessions to close before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{0}")]
    Matrix(#[from] MatrixError),
    #[error("{0}")]
    Pipelines(#[from] FragmentError),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{0}")]
    Config(String),
}

/// The outcome of the last matrix reload, shown by the API.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadStatus {
    pub ok: bool,
    pub message: String,
    pub at: f64,
}

/// Everything a request handler or protocol session needs; cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    pub hub: Hub,
    pub relays: Relays,
    pub shutdown: CancellationToken,
    /// WHIP/WHEP settings and sessions.
    pub webrtc: crate::protocols::webrtc::Sessions,
    /// Plain RTP (UDP) ingests and outputs.
    pub udp: crate::protocols::udp::Udp,
    /// What peers may make the gateway hold (`limits:`).
    pub limits: crate::config::LimitsSettings,
    matrix_path: Arc<PathBuf>,
    pipelines_dir: Arc<PathBuf>,
    last_reload: Arc<Mutex<Option<ReloadStatus>>>,
}

/// Loads and checks the matrix and the pipeline fragments (including a GStreamer parse).
pub fn load_matrix(matrix: &std::path::Path, pipelines: &std::path::Path) -> Result<(Matrix, Pipelines), ServerError> {
    let m = Matrix::load(matrix)?;
    let p = Pipelines::load(pipelines)?;
    crate::pipeline::init();
    p.check_with_gstreamer()?;
    Ok((m, p))
}

impl Gateway {
    /// Builds the gateway from its configuration; refuses a bad matrix or bad fragments.
    pub fn new(config: &Config) -> Result<Gateway, ServerError> {
        let (matrix, pipelines) = load_matrix(&config.matrix, &config.pipelines)?;
        let hub = Hub::new(matrix, pipelines, config.hub_config());
        let shutdown = CancellationToken::new();
        let relays = Relays::new(hub.clone(), config.relay.clone(), shutdown.clone());
        let webrtc = crate::protocols::webrtc::Sessions::new(config.webrtc.clone())
            .map_err(|e| ServerError::Config(format!("webrtc: {e}")))?;
        let udp = crate::protocols::udp::Udp::new(&config.udp, config.http.ip())
            .map_err(|e| ServerError::Config(format!("udp: {e}")))?;
        Ok(Gateway {
            hub,
            relays,
            shutdown,
            webrtc,
            udp,
            limits: config.limits,
            matrix_path: Arc::new(config.matrix.clone()),
            pipelines_dir: Arc::new(config.pipelines.clone()),
            last_reload: Arc::new(Mutex::new(None)),
        })
    }

    /// Loads the matrix file again: a good one serves new sessions from now on; a bad one is
    /// refused and the running matrix stays, with the reason kept for the API.
    pub fn reload(&self) -> ReloadStatus {
        let at = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let status = match load_matrix(&self.matrix_path, &self.pipelines_dir) {
            Ok((matrix, pipelines)) => {
                self.hub.replace_matrix(matrix, pipelines);
                tracing::info!(path = %self.matrix_path.display(), "matrix reloaded");
                ReloadStatus { ok: true, message: "matrix reloaded; new sessions use it".into(), at }
            }
            Err(e) => {
                tracing::warn!(error = %e, "matrix reload refused; keeping the running matrix");
                ReloadStatus { ok: false, message: format!("reload refused, running matrix kept:\n{e}"), at }
            }
        };
        *self.last_reload.lock().unwrap_or_else(|e| e.into_inner()) = Some(status.clone());
        status
    }

    pub fn last_reload(&self) -> Option<ReloadStatus> {
        self.last_reload.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

pub struct Listeners {
    pub http: TcpListener,
    pub rtmp: TcpListener,
}

impl Listeners {
    pub async fn bind(http: SocketAddr, rtmp: SocketAddr) -> Result<Listeners, ServerError> {
        let bind = |what: &'static str, addr: SocketAddr| async move {
            TcpListener::bind(addr).await.map_err(|source| ServerError::Io { what: format!("{what} {addr}"), source })
        };
        Ok(Listeners { http: bind("HTTP", http).await?, rtmp: bind("RTMP", rtmp).await? })
    }
}

/// Serves until `shutdown` resolves, then stops accepting, closes sessions and returns.
pub async fn run(gw: Gateway, config: &Config, listeners: Listeners, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
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
    let open_files = crate::limits::raise_open_files_limit();
    let (rtmp_cap, http_cap) = crate::limits::connection_caps(&config.limits, open_files);
    tracing::info!(open_files, rtmp_cap, http_cap, "connection caps");
    let rtmp_gate = crate::limits::Gate::new("rtmp", rtmp_cap);
    let rtmp = tokio::spawn(rtmp_serve::accept_loop_gated(listeners.rtmp, gw.clone(), rtmp_gate));
    let token = gw.shutdown.clone();
    let http_gate = crate::limits::Gate::new("http", http_cap);
    let http = tokio::spawn(crate::api::serve::serve(listeners.http, gw.clone(), http_gate));
    shutdown.await;
    tracing::info!("shutting down");
    token.cancel();
    for stream in gw.hub.streams() {
        stream.kick();
    }
    let closing = async {
        let _ = rtmp.await;
        let _ = http.await;
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

/// Stops every GStreamer pipeline still running, so that none is disposed while playing and
/// no streaming thread runs while the process exits.
pub async fn stop_pipelines() {
    match tokio::task::spawn_blocking(crate::pipeline::live::stop_all).await {
        Ok(0) | Err(_) => {}
        Ok(n) => tracing::warn!(pipelines = n, "pipelines left running at shutdown were stopped"),
    }
}

fn relay_decl(decl: &crate::config::RelayDecl) -> Result<(crate::hub::StreamKey, crate::protocols::rtmp::RtmpUrl), ServerError> {
    let key = decl.stream.parse().map_err(|e: crate::hub::InvalidStreamKey| ServerError::Config(e.to_string()))?;
    Ok((key, parse_rtmp_url(&decl.url)?))
}

fn parse_rtmp_url(url: &str) -> Result<crate::protocols::rtmp::RtmpUrl, ServerError> {
    url.parse().map_err(|e: crate::protocols::rtmp::RtmpError| ServerError::Config(format!("{url}: {e}")))
}
