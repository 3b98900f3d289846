//! Shared harness for the black-box tests: the gateway binary, nginx-rtmp as a CDN origin,
//! ffmpeg publishers, ffprobe, an independent HTTP-FLV reader, raw RTMP sockets and the
//! control API (its JSON shapes live in `api.rs`, in one place).
//!
//! Everything is bounded: every wait has a timeout and every child process is killed on drop.
#![allow(dead_code, unused_imports)]

pub mod api;
pub mod chromium;
pub mod ffmpeg;
pub mod flv;
pub mod gateway;
pub mod nginx;
pub mod raw_rtmp;
pub mod redis;
pub mod webrtc;

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use api::{Api, Reply};
pub use ffmpeg::{ffprobe, Ffmpeg, Probe, PublishOptions};
pub use flv::{BackgroundReader, FlvTag, HttpFlvReader, TagKind};
pub use gateway::Gateway;
pub use nginx::Nginx;
pub use redis::Redis;

/// The repository root (where `matrix.yaml` and `pipelines/` live).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/interop-gw-<label>-<pid>-<n>-<nanos>`.
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let path = std::env::temp_dir().join(format!("interop-gw-{label}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Polls `probe` every 100 ms until it yields `Some`, or fails after `timeout` naming `what`
/// and the last observation (`last` is updated by the probe for that purpose).
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe().await {
            Ok(value) => return Ok(value),
            Err(observed) => observed,
        };
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends SIGTERM to `pid` (there is no `kill` binary on every machine; the shell builtin is).
pub fn send_sigterm(pid: u32) {
    let _ = std::process::Command::new("sh").args(["-c", &format!("kill -TERM {pid} 2>/dev/null")]).status();
}

/// Sends SIGHUP to `pid` (the gateway reloads its matrix on it).
pub fn send_sighup(pid: u32) {
    let _ = std::process::Command::new("sh").args(["-c", &format!("kill -HUP {pid} 2>/dev/null")]).status();
}

/// Waits for `child` to exit, up to `timeout`; `None` when it is still running.
pub fn wait_child(child: &mut std::process::Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => return None,
        }
    }
}

/// SIGTERM, then SIGKILL if it has not exited within `grace`; always reaps.
pub fn stop_child(child: &mut std::process::Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    send_sigterm(child.id());
    if wait_child(child, grace).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Collects a child's stderr (or stdout) lines on a thread so the pipe never fills.
#[derive(Clone, Default)]
pub struct LineBuffer {
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Set once the pipe is at its end (every line is in `lines`).
    closed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl LineBuffer {
    /// Starts draining `pipe` into a new buffer; `on_line` sees every line first.
    pub fn drain<R, F>(pipe: R, mut on_line: F) -> LineBuffer
    where
        R: std::io::Read + Send + 'static,
        F: FnMut(&str) + Send + 'static,
    {
        use std::io::BufRead;
        let buffer = LineBuffer::default();
        let lines = buffer.lines.clone();
        let closed = buffer.closed.clone();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(pipe);
            let mut raw = Vec::new();
            loop {
                raw.clear();
                match reader.read_until(b'\n', &mut raw) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = strip_ansi(&String::from_utf8_lossy(&raw));
                        let line = line.trim_end().to_string();
                        on_line(&line);
                        if let Ok(mut all) = lines.lock() {
                            all.push(line);
                        }
                    }
                }
            }
            closed.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        buffer
    }

    /// Waits up to `timeout` for the pipe's end (the process exited and its last lines are
    /// read); false if it did not come.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Every line so far that contains one of `needles`.
    pub fn matching(&self, needles: &[&str]) -> Vec<String> {
        self.lines
            .lock()
            .map(|l| l.iter().filter(|line| needles.iter().any(|n| line.contains(n))).cloned().collect())
            .unwrap_or_default()
    }

    /// The last `n` lines joined with newlines.
    pub fn tail(&self, n: usize) -> String {
        let all = self.lines.lock().map(|l| l.clone()).unwrap_or_default();
        let start = all.len().saturating_sub(n);
        all[start..].join("\n")
    }

    /// Whether any line so far contains `needle`.
    pub fn contains(&self, needle: &str) -> bool {
        self.lines.lock().map(|l| l.iter().any(|line| line.contains(needle))).unwrap_or(false)
    }
}

/// Removes ANSI escape sequences (`ESC [ ... letter`) from a log line.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
