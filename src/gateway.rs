//! The gateway as one value: the hub, the relays, every protocol's sessions, the admission
//! policy and the limits, built from the configuration. `server` composes the ways in from it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::auth::Admission;
use crate::config::Config;
use crate::hub::Hub;
use crate::matrix::{Matrix, MatrixError};
use crate::pipeline::{FragmentError, Pipelines};
use crate::protocols::cdn::Relays;

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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReloadStatus {
    pub ok: bool,
    pub message: String,
    pub at: f64,
}

/// Everything the gateway runs; cheap to clone. Each way in gets only its part (`server`).
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
    /// Who may publish, play and call the API (`auth:`).
    pub admission: Admission,
    /// How late the runtime and the process wake (see [`crate::watchdog`]).
    pub watchdog: Arc<crate::watchdog::Watchdog>,
    /// Where pushes and pulls may dial (`relay.allowed_hosts`).
    pub relay_targets: Arc<crate::auth::relay_targets::RelayTargets>,
    /// This node's part of a cluster (`cluster:`); none on one node.
    pub cluster: Option<crate::cluster::Cluster>,
    /// HLS packagers, one per stream and variant (`hls:`).
    pub hls: crate::protocols::hls::HlsOutputs,
    /// HLS viewing sessions (when play needs admission).
    pub hls_sessions: Arc<crate::protocols::hls::sessions::HlsSessions>,
    /// Recordings (`recording:`) and clips (`clips:`).
    pub recordings: crate::record::recordings::Recordings,
    pub clips: crate::record::clips::Clips,
    /// The media (HTTP) listener's address as configured; its port, once bound, in
    /// [`Gateway::http_port`].
    pub http_addr: std::net::SocketAddr,
    http_port: Arc<std::sync::atomic::AtomicU16>,
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
        let watchdog = crate::watchdog::Watchdog::start(shutdown.clone());
        let webrtc = crate::protocols::webrtc::Sessions::new(config.webrtc.clone())
            .map_err(|e| ServerError::Config(format!("webrtc: {e}")))?;
        let admission = Admission::new(&config.auth).map_err(|e| ServerError::Config(e.to_string()))?;
        let relay_targets = crate::auth::relay_targets::RelayTargets::new(&config.relay.allowed_hosts)
            .map_err(|e| ServerError::Config(format!("relay.allowed_hosts: {e}")))?;
        let relay_targets = Arc::new(relay_targets);
        let cluster = match &config.cluster {
            Some(settings) => {
                let cluster = crate::cluster::Cluster::new(settings.clone(), hub.clone(), shutdown.clone())
                    .map_err(|e| ServerError::Config(e.to_string()))?;
                hub.set_remote(Arc::new(cluster.clone()));
                Some(cluster)
            }
            None => None,
        };
        config.hls.validate().map_err(ServerError::Config)?;
        let hls = crate::protocols::hls::HlsOutputs::new(hub.clone(), config.hls, shutdown.clone());
        let hls_sessions = Arc::new(crate::protocols::hls::sessions::HlsSessions::new(
            config.hls.idle().max(std::time::Duration::from_secs(30)),
        ));
        config.recording.validate().map_err(ServerError::Config)?;
        config.clips.validate().map_err(ServerError::Config)?;
        let recordings =
            crate::record::recordings::Recordings::new(hub.clone(), config.recording.clone(), admission.clone());
        let clips = crate::record::clips::Clips::new(hub.clone(), config.clips.clone(), recordings.clone());
        let on_publish = crate::record::autostart::spawn(recordings.clone(), clips.clone(), shutdown.clone());
        hub.set_observer(Arc::new(crate::hub::observer::Observers(vec![
            Arc::new(admission.clone()),
            Arc::new(on_publish),
        ])));
        let udp = crate::protocols::udp::Udp::new(&config.udp, config.http.ip(), relay_targets.clone())
            .map_err(|e| ServerError::Config(format!("udp: {e}")))?;
        Ok(Gateway {
            hub,
            relays,
            shutdown,
            webrtc,
            udp,
            limits: config.limits,
            admission,
            relay_targets,
            cluster,
            hls,
            hls_sessions,
            recordings,
            clips,
            http_addr: config.http,
            http_port: Arc::new(std::sync::atomic::AtomicU16::new(config.http.port())),
            watchdog,
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

    /// Resolves `url`'s host (bounded) and checks it against `relay.allowed_hosts`.
    pub async fn check_relay_target(&self, url: &crate::protocols::rtmp::RtmpUrl) -> Result<(), String> {
        let lookup = tokio::net::lookup_host((url.host.as_str(), url.port));
        let addresses: Vec<std::net::IpAddr> =
            match tokio::time::timeout(std::time::Duration::from_secs(3), lookup).await {
                Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                Ok(Err(e)) => return Err(format!("`{}` does not resolve: {e}", url.host)),
                Err(_) => return Err(format!("resolving `{}` timed out", url.host)),
            };
        self.relay_targets.check_dial(&url.host, &addresses, url.port, is_local_address)
    }

    /// The media listener's port (the bound one once serving: `--http 127.0.0.1:0` too).
    pub fn http_port(&self) -> u16 {
        self.http_port.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_http_port(&self, port: u16) {
        self.http_port.store(port, std::sync::atomic::Ordering::Relaxed);
    }

    /// The matrix file `reload` reads (the console's editor writes it).
    pub fn matrix_path(&self) -> &std::path::Path {
        &self.matrix_path
    }

    pub fn last_reload(&self) -> Option<ReloadStatus> {
        self.last_reload.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Whether `ip` is an address of this machine: only those can be bound.
pub fn is_local_address(ip: std::net::IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}
