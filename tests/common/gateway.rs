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
    stderr: LineBuffer,
    _dir: TempDir,
}

impl Gateway {
    /// Starts the gateway with the repository's matrix and pipelines.
    pub fn start() -> Gateway {
        Gateway::start_with(&[], None)
    }

    /// Starts the gateway with extra `serve` arguments and, when given, `config` written to a
    /// file passed as `--config`. `--matrix`, `--pipelines` and `--webrtc-ip` default to the
    /// repository's files and 127.0.0.1 unless `extra_args` names them.
    pub fn start_with(extra_args: &[&str], config: Option<&str>) -> Gateway {
        let dir = TempDir::new("gateway");
        let root = repo_root();
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--http".into(),
            "127.0.0.1:0".into(),
            "--rtmp".into(),
            "127.0.0.1:0".into(),
        ];
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
        if let Some(text) = config {
            let path = dir.path().join("config.yaml");
            std::fs::write(&path, text).expect("write gateway config");
            args.extend(["--config".into(), path.display().to_string()]);
        }
        args.extend(extra_args.iter().map(|a| a.to_string()));

        // INTEROP_GATEWAY_BIN: a copy of the binary to test (a target dir shared by several
        // worktrees holds whichever one was linked last).
        let bin = std::env::var("INTEROP_GATEWAY_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_interop-gateway").to_string());
        let mut child = Command::new(bin)
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
                let _ = tx.send(addrs);
            }
        });

        let mut gateway = Gateway { child: Some(child), http: String::new(), rtmp: String::new(), stderr, _dir: dir };
        match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok((http, rtmp)) => {
                gateway.http = http;
                gateway.rtmp = rtmp;
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

    /// Sends SIGTERM and waits up to `timeout` for the exit; `None` if it did not exit (the
    /// process is then killed on drop).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        super::send_sigterm(child.id());
        let status = wait_child(child, timeout);
        if status.is_some() {
            self.child = None;
        }
        status
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            stop_child(child, Duration::from_secs(5));
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

/// Parses `... listening http=ADDR rtmp=ADDR ...` into `(http, rtmp)`.
pub fn parse_listening(line: &str) -> Option<(String, String)> {
    let at = line.find("listening http=")?;
    let rest = &line[at + "listening ".len()..];
    let value = |key: &str| -> Option<String> {
        let start = rest.find(key)? + key.len();
        let value: String = rest[start..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != ',' && *c != '"')
            .collect();
        (!value.is_empty()).then_some(value)
    };
    Some((value("http=")?, value("rtmp=")?))
}
