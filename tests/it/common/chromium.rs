//! Debian's headless Chromium as a real WHIP publisher / WHEP viewer, driven by the pages in
//! `tests/pages/` (no CDP, no driver): the page gets its endpoint in the query string and
//! POSTs events and `getStats()` figures back to a [`PageServer`] in the test.
//!
//! The browser and the gateway must run in a network namespace that has only `lo`, so the
//! browser's ICE can reach nothing but loopback: start such tests with
//! [`in_loopback_netns`] (see there for the recipe).

mod netns;
mod pages;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::{wait_child, LineBuffer, TempDir};

pub use netns::{in_loopback_netns, only_loopback_addresses, NETNS_ENV};
pub use pages::{InboundStats, OutboundStats, PageReport, PageServer, PageStats};

/// The browser binary itself (`/usr/bin/chromium` is a wrapper that adds extension and API-key
/// settings we do not want).
pub const CHROMIUM: &str = "/usr/lib/chromium/chromium";

/// A headless Chromium showing one page, with a fresh empty profile; the whole process group
/// is killed on drop and the profile removed.
pub struct Chromium {
    child: Option<Child>,
    stderr: LineBuffer,
    profile: TempDir,
}

impl Chromium {
    /// Starts the browser on `page_url` with a fake camera and microphone (granted without a
    /// prompt), loopback ICE allowed, autoplay allowed, and nothing that phones home.
    pub fn start(page_url: &str) -> anyhow::Result<Chromium> {
        let profile = TempDir::new("chromium");
        let data_dir = profile.path().join("data");
        let home = profile.path().join("home");
        std::fs::create_dir_all(&home)?;
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                "--allow-loopback-in-peer-connection",
                "--autoplay-policy=no-user-gesture-required",
            ])
            .arg(format!("--user-data-dir={}", data_dir.display()))
            .arg(page_url)
            // Chromium also writes under $HOME (~/.pki) and the XDG dirs: keep that in the profile.
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, so drop can end the renderer and helper processes too.
            .process_group(0)
            .spawn()
            .with_context(|| format!("spawn {CHROMIUM} (apt-get install chromium)"))?;
        let pipe = child.stderr.take().context("chromium stderr")?;
        let stderr = LineBuffer::drain(pipe, |_| {});
        Ok(Chromium { child: Some(child), stderr, profile })
    }

    /// Whether the browser process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The last `n` lines the browser logged.
    pub fn stderr_tail(&self, n: usize) -> String {
        self.stderr.tail(n)
    }

    /// Kills the browser's process group, reaps it and waits (bounded) until the group is
    /// gone (also done on drop).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // The group id is the browser's pid (process_group(0) above). Its crashpad handlers
        // run in their own sessions and exit when the browser does.
        let group = child.id() as i32;
        signal_group(group, SIGKILL);
        if wait_child(&mut child, Duration::from_secs(5)).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && group_alive(group) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

extern "C" {
    /// libc's kill(2) (dash's `kill` builtin cannot signal a process group).
    fn kill(pid: i32, sig: i32) -> i32;
}

const SIGKILL: i32 = 9;

/// Sends `signal` to every process of group `group`; true when the group exists.
fn signal_group(group: i32, signal: i32) -> bool {
    // SAFETY: kill(2) with a negative pid only signals that process group; no memory involved.
    group > 1 && unsafe { kill(-group, signal) } == 0
}

/// Whether any process of group `group` still exists (signal 0 only checks).
fn group_alive(group: i32) -> bool {
    signal_group(group, 0)
}

impl Drop for Chromium {
    fn drop(&mut self) {
        self.stop();
        // Dying helpers may still have been writing to the profile: retry until it is gone.
        for _ in 0..20 {
            if std::fs::remove_dir_all(self.profile.path()).is_ok() || !self.profile.path().exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if std::thread::panicking() {
            eprintln!(
                "--- chromium ({}) stderr, last lines ---\n{}\n---",
                self.profile.path().display(),
                self.stderr.tail(40)
            );
        }
    }
}
