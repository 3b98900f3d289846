//! The gateway binary under test, on ephemeral 127.0.0.1 ports.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::{repo_root, stop_child, wait_child, Api, LineBuffer, TempDir};

/// How long the gateway may take to print its `listening` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `interop-gateway serve`; SIGTERM (then SIGKILL after 5 s) on drop.
pub struct Gateway {
    child: Option<Child>,
    http: String,
    rtmp: String,
    /// The `--api` listener, when the gateway has one.
    api: Option<String>,
    stderr: LineBuffer,
    /// How the process ended, once `terminate` saw it end.
    exit: Option<ExitStatus>,
    _dir: TempDir,
}

impl Gateway {
    /// Starts the gateway with the repository's matrix and pipelines.
    pub fn start() -> Gateway {
        Gateway::start_with(&[], None)
    }

    /// Starts the gateway with extra `serve` arguments and, when given, `config` written to a
    /// file passed as `--config`. `--matrix`, `--pipelines` and `--webrtc-ip` default to the
    /// repository's files and 127.0.0.1, and `--reconnect-grace` to 0, unless `extra_args`
    /// names them.
    pub fn start_with(extra_args: &[&str], config: Option<&str>) -> Gateway {
        Gateway::start_limited(extra_args, config, None)
    }

    /// [`Gateway::start_with`] with the open-files limit (soft and hard) set to `open_files`
    /// in the child before it runs, as a service manager would.
    pub fn start_with_open_files(extra_args: &[&str], config: Option<&str>, open_files: u64) -> Gateway {
        Gateway::start_limited(extra_args, config, Some(open_files))
    }

    fn start_limited(extra_args: &[&str], config: Option<&str>, open_files: Option<u64>) -> Gateway {
        let dir = TempDir::new("gateway");
        let root = repo_root();
        let mut args: Vec<String> =
            vec!["serve".into(), "--http".into(), "127.0.0.1:0".into(), "--rtmp".into(), "127.0.0.1:0".into()];
        let named = |flag: &str| extra_args.iter().any(|a| *a == flag || a.starts_with(&format!("{flag}=")));
        if !named("--matrix") {
            args.extend(["--matrix".into(), root.join("matrix.yaml").display().to_string()]);
        }
        if !named("--pipelines") {
            args.extend(["--pipelines".into(), root.join("pipelines").display().to_string()]);
        }
        if !named("--webrtc-ip") {
            args.extend(["--webrtc-ip".into(), "127.0.0.1".into()]);
        }
        // Tests see a stream end with its publisher unless they test the reconnect grace
        // (tests/reconnect.rs passes `--reconnect-grace`).
        if !named("--reconnect-grace") {
            args.extend(["--reconnect-grace".into(), "0".into()]);
        }
        // The tests' CDN origins (nginx-rtmp) listen on loopback, which relays may not dial
        // unless allowed (a test whose config sets `relay.allowed_hosts` decides itself).
        if !named("--allow-relay-host") && !config.is_some_and(|c| c.contains("allowed_hosts:")) {
            args.extend(["--allow-relay-host".into(), "127.0.0.1".into()]);
        }
        if let Some(text) = config {
            let path = dir.path().join("config.yaml");
            std::fs::write(&path, text).expect("write gateway config");
            args.extend(["--config".into(), path.display().to_string()]);
        }
        args.extend(extra_args.iter().map(|a| a.to_string()));

        let mut command = Command::new(env!("CARGO_BIN_EXE_interop-gateway"));
        if let Some(n) = open_files {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit { rlim_cur: n, rlim_max: n };
            // SAFETY: setrlimit is async-signal-safe and only reads `limit`.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = command
            .args(&args)
            .current_dir(&root)
            .env("RUST_LOG", std::env::var("GATEWAY_RUST_LOG").unwrap_or_else(|_| "info".into()))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn interop-gateway");

        let (tx, rx) = mpsc::channel();
        let pipe = child.stderr.take().expect("gateway stderr");
        let stderr = LineBuffer::drain(pipe, move |line| {
            if let Some(addrs) = parse_listening(line) {
                let _ = tx.send((addrs, parse_api(line)));
            }
        });

        let mut gateway = Gateway {
            child: Some(child),
            http: String::new(),
            rtmp: String::new(),
            api: None,
            stderr,
            exit: None,
            _dir: dir,
        };
        match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(((http, rtmp), api)) => {
                gateway.http = http;
                gateway.rtmp = rtmp;
                gateway.api = api;
                gateway
            }
            Err(error) => {
                // Give the drain thread a moment to collect the last lines of a crash.
                std::thread::sleep(Duration::from_millis(200));
                let exited = gateway.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
                let what = match error {
                    mpsc::RecvTimeoutError::Timeout => format!("within {STARTUP_TIMEOUT:?}"),
                    mpsc::RecvTimeoutError::Disconnected => "before closing its stderr".to_string(),
                };
                panic!(
                    "gateway did not print `listening http=ADDR rtmp=ADDR` {what} (exit status: {exited:?}); \
                     args: {args:?}\n--- gateway stderr ---\n{}",
                    gateway.stderr.tail(200)
                );
            }
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// `rtmp://127.0.0.1:PORT{path}`.
    pub fn rtmp_url(&self, path: &str) -> String {
        format!("rtmp://{}{path}", self.rtmp)
    }

    /// The HTTP listen address (`127.0.0.1:PORT`).
    pub fn http_addr(&self) -> &str {
        &self.http
    }

    /// The RTMP listen address (`127.0.0.1:PORT`).
    pub fn rtmp_addr(&self) -> &str {
        &self.rtmp
    }

    /// A control-API client for this gateway.
    pub fn api(&self) -> Api {
        Api::new(self.http_url(""))
    }

    /// A control-API client for the `--api` listener (panics without one).
    pub fn api_listener(&self) -> Api {
        Api::new(format!("http://{}", self.api.as_deref().expect("the gateway has an --api listener")))
    }

    /// The last 200 lines the gateway logged.
    pub fn stderr_tail(&self) -> String {
        self.stderr.tail(200)
    }

    /// The gateway's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Kills the process at once (SIGKILL), as a crash or a pulled plug would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            self.exit = child.wait().ok();
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit; `None` if it did not exit (the
    /// process is then killed on drop).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        super::send_sigterm(child.id());
        let status = wait_child(child, timeout);
        if status.is_some() {
            self.child = None;
            self.exit = status;
        }
        status
    }
}

/// What in the gateway's stderr fails any test: GLib/GStreamer criticals (a pipeline disposed
/// while playing, a bad caps or pad use) always point at a real defect.
pub const STDERR_FAILURES: &[&str] = &["GStreamer-CRITICAL", "CRITICAL **"];

impl Gateway {
    /// Panics when the gateway logged a GStreamer/GLib critical or ended by a crash (a signal
    /// other than the SIGKILL sent to a gateway that would not stop). Every test goes through
    /// it when its `Gateway` is dropped.
    pub fn check_clean(&self, exit: Option<ExitStatus>) {
        let criticals = self.stderr.matching(STDERR_FAILURES);
        let crashed = exit.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s)).filter(|sig| *sig != 9);
        if !criticals.is_empty() || crashed.is_some() {
            panic!(
                "the gateway {}{}\n--- gateway stderr, last lines ---\n{}",
                crashed.map(|s| format!("crashed (signal {s}); ")).unwrap_or_default(),
                if criticals.is_empty() {
                    String::new()
                } else {
                    format!("logged criticals:\n{}", criticals.join("\n"))
                },
                self.stderr.tail(60)
            );
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let mut exit = self.exit;
        if let Some(child) = self.child.as_mut() {
            stop_child(child, Duration::from_secs(5));
            exit = child.try_wait().ok().flatten();
        }
        self.stderr.wait_closed(Duration::from_secs(2));
        if !std::thread::panicking() {
            self.check_clean(exit);
        }
        if std::thread::panicking() {
            eprintln!(
                "--- gateway (http={} rtmp={}) stderr, last lines ---\n{}\n--- end gateway stderr ---",
                self.http,
                self.rtmp,
                self.stderr.tail(200)
            );
        }
    }
}

/// The `api=ADDR` of a `listening` line, if any.
pub fn parse_api(line: &str) -> Option<String> {
    let at = line.find("listening http=")?;
    let start = line[at..].find(" api=")? + at + " api=".len();
    let value: String = line[start..].chars().take_while(|c| !c.is_whitespace() && *c != '"').collect();
    (!value.is_empty()).then_some(value)
}

/// Parses `... listening http=ADDR rtmp=ADDR ...` into `(http, rtmp)`.
pub fn parse_listening(line: &str) -> Option<(String, String)> {
    let at = line.find("listening http=")?;
    let rest = &line[at + "listening ".len()..];
    let value = |key: &str| -> Option<String> {
        let start = rest.find(key)? + key.len();
        let value: String =
            rest[start..].chars().take_while(|c| !c.is_whitespace() && *c != ',' && *c != '"').collect();
        (!value.is_empty()).then_some(value)
    };
    Some((value("http=")?, value("rtmp=")?))
}
