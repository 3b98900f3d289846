//! The `interop-gateway` binary: `serve`, `check`, `plan`, `sign`, `openapi`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use interop_gateway::config::Config;
use interop_gateway::matrix::{self, Matrix, Source};
use interop_gateway::media::Protocol;
use interop_gateway::pipeline::Pipelines;
use interop_gateway::server::{self, Gateway, Listeners};

/// jemalloc for every Rust allocation: a long-running server's allocator, which gives freed
/// memory back to the system over time (glibc malloc kept what many short sessions had used;
/// see docs/reliability.md). Its statistics are in `/metrics` (`interop_jemalloc_bytes`).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "interop-gateway",
    version,
    about = "Live-media gateway: WebRTC, RTMP, UDP/RTP, H5 and mini-program, converted only where the matrix says"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// Print the query string (no `?`) that signs a publish or play URL of a stream, valid
    /// for `--ttl` seconds: append it to any URL of that stream.
    Sign {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        action: SignAction,
        #[arg(long)]
        stream: String,
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// signed (the default when `auth.secret` is set), tencent or aliyun.
        #[arg(long)]
        method: Option<SignMethod>,
        /// The request path `aliyun` signs (default `/live/STREAM`, as RTMP sends it).
        #[arg(long)]
        path: Option<String>,
    },
    /// Validate a matrix: exit 0 when valid, else one line per problem.
    Check {
        #[arg(default_value = "matrix.yaml")]
        file: PathBuf,
    },
    /// Show which tracks a bridge copies and converts, and the pipelines it would build.
    Plan {
        #[arg(long)]
        from: Protocol,
        #[arg(long)]
        to: Protocol,
        #[arg(long, default_value = "matrix.yaml")]
        matrix: PathBuf,
        #[arg(long, default_value = "pipelines")]
        pipelines: PathBuf,
    },
    /// Print the OpenAPI 3.1 document of the HTTP API (as `GET /api/v1/openapi.json` serves it).
    Openapi,
}

/// `serve`'s options: each overrides the configuration file.
#[derive(clap::Args)]
struct ServeArgs {
    /// YAML configuration file (command-line options override it).
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    matrix: Option<PathBuf>,
    /// HTTP address (API, HTTP-FLV, WHIP/WHEP, H5).
    #[arg(long)]
    http: Option<SocketAddr>,
    #[arg(long)]
    rtmp: Option<SocketAddr>,
    /// The control API and /metrics on their own address (then not on --http).
    #[arg(long, value_name = "ADDR:PORT")]
    api: Option<SocketAddr>,
    /// The address ICE offers for WebRTC sessions.
    #[arg(long)]
    webrtc_ip: Option<std::net::IpAddr>,
    /// Folder of GStreamer pipeline fragments.
    #[arg(long)]
    pipelines: Option<PathBuf>,
    /// Seconds a stream whose publisher left waits for it to reconnect
    /// (`hub.reconnect_grace_seconds`; 0: the stream ends with its publisher).
    #[arg(long, value_name = "SECONDS")]
    reconnect_grace: Option<f64>,
    /// A host, address or CIDR network pushes and pulls made through the API may dial
    /// (added to `relay.allowed_hosts`; repeatable).
    #[arg(long, value_name = "HOST")]
    allow_relay_host: Vec<String>,
    /// Join a cluster coordinated by this Redis (`redis://HOST:PORT`; see `cluster:`).
    #[arg(long, value_name = "URL", requires = "node")]
    cluster: Option<String>,
    /// This node's name in the cluster (unique per node).
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SignAction {
    Publish,
    Play,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SignMethod {
    Signed,
    Tencent,
    Aliyun,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => {
            glib_slices_from_malloc();
            serve(args)
        }
        Command::Check { file } => return check(&file),
        Command::Sign { config, action, stream, ttl, method, path } => {
            sign(&config, action, &stream, ttl, method, path)
        }
        Command::Plan { from, to, matrix, pipelines } => plan(from, to, &matrix, &pipelines),
        Command::Openapi => {
            println!("{}", interop_gateway::api::openapi::json());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(file: &std::path::Path) -> ExitCode {
    let (text, ok) = matrix::check_report(file);
    if ok {
        println!("{text}");
        ExitCode::SUCCESS
    } else {
        eprintln!("{text}");
        ExitCode::FAILURE
    }
}

fn sign(
    config: &std::path::Path,
    action: SignAction,
    stream: &str,
    ttl: u64,
    method: Option<SignMethod>,
    path: Option<String>,
) -> anyhow::Result<()> {
    use interop_gateway::auth::{signature, vendor, Action};
    let auth = Config::load(config)?.auth;
    let action = match action {
        SignAction::Publish => Action::Publish,
        SignAction::Play => Action::Play,
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).context("clock")?.as_secs();
    let expires = now.saturating_add(ttl);
    let method = method
        .or_else(|| (!auth.secret.is_empty()).then_some(SignMethod::Signed))
        .or_else(|| (!auth.tencent_key.is_empty()).then_some(SignMethod::Tencent))
        .or_else(|| (!auth.aliyun_key.is_empty()).then_some(SignMethod::Aliyun))
        .context("the config has no auth.secret, auth.tencent_key or auth.aliyun_key to sign with")?;
    let query = match method {
        SignMethod::Signed if !auth.secret.is_empty() => signature::query(&auth.secret, action, stream, expires),
        SignMethod::Tencent if !auth.tencent_key.is_empty() => {
            vendor::tencent_query(&auth.tencent_key, stream, expires)
        }
        SignMethod::Aliyun if !auth.aliyun_key.is_empty() => {
            let path = path.unwrap_or_else(|| format!("/live/{stream}"));
            vendor::aliyun_query(&auth.aliyun_key, &path, expires)
        }
        _ => anyhow::bail!("the config has no key for that method (auth.secret, auth.tencent_key, auth.aliyun_key)"),
    };
    println!("{query}");
    Ok(())
}

fn plan(
    from: Protocol,
    to: Protocol,
    matrix_path: &std::path::Path,
    pipelines: &std::path::Path,
) -> anyhow::Result<()> {
    let m = Matrix::load(matrix_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let p = Pipelines::load(pipelines).map_err(|e| anyhow::anyhow!("{e}"))?;
    let plan = matrix::plan(&m, from, &Source::default_for(&m, from), to).map_err(|e| anyhow::anyhow!("{e}"))?;
    print!("{}", matrix::render_plan(&plan, Some(&p), m.params(from, to)));
    Ok(())
}

fn serve(flags: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let mut cfg = match &flags.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(m) = flags.matrix {
        cfg.matrix = m;
    }
    if let Some(a) = flags.http {
        cfg.http = a;
    }
    if let Some(a) = flags.rtmp {
        cfg.rtmp = a;
    }
    if flags.api.is_some() {
        cfg.api = flags.api;
    }
    if let Some(p) = flags.pipelines {
        cfg.pipelines = p;
    }
    if let Some(ip) = flags.webrtc_ip {
        cfg.webrtc.ip = Some(ip);
    }
    if let Some(seconds) = flags.reconnect_grace {
        cfg.hub.reconnect_grace_seconds = seconds;
    }
    cfg.relay.allowed_hosts.extend(flags.allow_relay_host);
    if let Some(node) = flags.node {
        use interop_gateway::cluster::ClusterSettings;
        let section = match (flags.cluster, cfg.cluster.take()) {
            (Some(url), Some(section)) => ClusterSettings { redis: url, ..section },
            (Some(url), None) => ClusterSettings::from_flags(url, node.clone()),
            (None, Some(section)) => section,
            (None, None) => anyhow::bail!("--node needs --cluster URL (or a cluster: section)"),
        };
        cfg.cluster = Some(ClusterSettings { node, ..section });
    }
    // jemalloc purges the pages it freed only when an arena is used again, unless its
    // background thread does it (10 s decay): an idle gateway then gives them back too.
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(error = %e, "jemalloc background thread not started");
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("INTEROP_WORKER_THREADS").ok().and_then(|v| v.parse().ok()) {
        builder.worker_threads(n);
    }
    let runtime = builder.enable_all().build().context("starting the runtime")?;
    let served = runtime.block_on(async move {
        let gw = Gateway::new(&cfg)?;
        gw.admission.warn_if_open();
        let relay = cfg.cluster.as_ref().map(|c| c.relay);
        let listeners = Listeners::bind(cfg.http, cfg.rtmp, cfg.api, relay).await?;
        let http_addr = listeners.http.local_addr().context("HTTP address")?;
        let rtmp_addr = listeners.rtmp.local_addr().context("RTMP address")?;
        let mut listening = format!("listening http={http_addr} rtmp={rtmp_addr}");
        if let Some(api_addr) = listeners.api.as_ref().map(|l| l.local_addr()).transpose().context("API address")? {
            listening.push_str(&format!(" api={api_addr}"));
        }
        if let Some(relay_addr) =
            listeners.relay.as_ref().map(|l| l.local_addr()).transpose().context("relay address")?
        {
            listening.push_str(&format!(" relay={relay_addr}"));
        }
        // Before `listening` is announced: from then on a SIGTERM is a clean shutdown.
        let stop = shutdown_signal();
        eprintln!("{listening}");
        let reload_gw = gw.clone();
        tokio::spawn(async move { reload_on_sighup(reload_gw).await });
        tokio::spawn(trim_malloc_periodically());
        server::run(gw, &cfg, listeners, stop).await?;
        anyhow::Ok(())
    });
    // Tasks still alive are dropped with the runtime; whatever pipeline their drops could not
    // stop any more is stopped here, before the process exits.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    interop_gateway::pipeline::live::stop_all();
    served?;
    Ok(())
}

/// SIGTERM or Ctrl-C. The SIGTERM handler is installed when this is called, not when the
/// future is first polled: a SIGTERM that comes while the server is still starting is a
/// clean shutdown too, not the default action (the process killed).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate()).ok();
    async move {
        match term {
            Some(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

async fn reload_on_sighup(gw: Gateway) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
    while hup.recv().await.is_some() {
        let status = gw.reload();
        tracing::info!(ok = status.ok, message = %status.message, "SIGHUP reload");
    }
}

/// GStreamer, GLib, libnice and FFmpeg allocate with the C library's malloc, whatever Rust's
/// allocator is; glibc keeps what its per-thread arenas freed (a burst of sessions left RSS tens
/// of MB above what is in use, see docs/reliability.md). Giving it back every
/// `INTEROP_MALLOC_TRIM_SECS` (default 30; 0: never) keeps RSS near what is live.
async fn trim_malloc_periodically() {
    let secs = std::env::var("INTEROP_MALLOC_TRIM_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(30u64);
    if secs == 0 {
        return;
    }
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        // Walks every arena under its lock: off the async workers.
        let _ = tokio::task::spawn_blocking(trim_malloc).await;
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_malloc() {
    // SAFETY: malloc_trim takes no pointer and only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_malloc() {}

/// GLib before 2.76 (Debian 12 has 2.74) serves small objects from its own slice allocator,
/// whose per-thread caches keep what GStreamer's streaming threads freed: 18 MiB after the
/// first WebRTC sessions, never returned (docs/reliability.md). `G_SLICE=always-malloc` sends
/// them to malloc, which gives them back; GLib reads it in its library constructors, before
/// `main`, so the process runs itself again once with it set (same pid, arguments and fds).
/// An operator's own `G_SLICE` is kept; newer GLib ignores the variable.
fn glib_slices_from_malloc() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("G_SLICE").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let err = std::process::Command::new(exe).args(std::env::args_os().skip(1)).env("G_SLICE", "always-malloc").exec();
    eprintln!("warning: running again with G_SLICE=always-malloc failed ({err}); GLib keeps its slice caches");
}
