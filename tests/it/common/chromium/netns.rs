//! Running one test inside a loopback-only network namespace.
//!
//! Recipe (works as root here, and for unprivileged users where user namespaces are allowed):
//!
//! ```text
//! unshare --map-root-user --net --pid --fork --kill-child --mount-proc \
//!     sh -c 'ip link set lo up && "$@"' sh <test binary> <test name> --exact ...
//! ```
//!
//! - `--net`: a new network namespace: only `lo`, down until `ip link set lo up`.
//! - `--map-root-user`: a user namespace where we are root, so `ip link` is permitted.
//! - `--pid --fork --mount-proc`: `sh` is pid 1 of a new pid namespace; when the test exits,
//!   sh exits and the kernel kills everything left in the namespace (browser helpers, the
//!   gateway), so nothing outlives the test. `--kill-child`: killing `unshare` kills sh.
//!
//! The test binary re-runs itself that way ([`in_loopback_netns`]); inside, the test checks
//! that no interface but `lo` has an address before it starts anything.

use std::process::{Command, Stdio};
use std::time::Duration;

use super::super::{stop_child, wait_child, LineBuffer};

/// Set (to `1`) in the environment of the test re-run inside the namespace.
pub const NETNS_ENV: &str = "IGW_LOOPBACK_NETNS";

/// How long the whole re-run test may take.
const NETNS_TIMEOUT: Duration = Duration::from_secs(240);

/// Call first in a `#[test]` (not `#[tokio::test]`: build the runtime after it) named
/// `test_name` (its path within the calling file's module, e.g. `chromium_whip_publishes`;
/// the module is the caller's file name, as `tests/it/main.rs` declares them).
///
/// Outside the namespace: re-runs this test binary with only `test_name` inside a fresh
/// loopback-only namespace, waits for it (bounded), panics with its output if it failed, and
/// returns `false`: the caller returns. Inside: panics unless only `lo` has addresses and
/// returns `true`: the caller runs the test body.
#[track_caller]
pub fn in_loopback_netns(test_name: &str) -> bool {
    let caller = std::path::Path::new(std::panic::Location::caller().file());
    let module = caller.file_stem().and_then(|s| s.to_str()).expect("a test file");
    let full_name = format!("{module}::{test_name}");
    if std::env::var(NETNS_ENV).as_deref() == Ok("1") {
        if let Err(error) = only_loopback_addresses() {
            panic!("refusing to run {test_name}: {error}");
        }
        return true;
    }
    let exe = std::env::current_exe().expect("current test binary");
    let mut child = Command::new("unshare")
        .args(["--map-root-user", "--net", "--pid", "--fork", "--kill-child", "--mount-proc"])
        .args(["sh", "-c", "ip link set lo up && \"$@\"", "sh"])
        .arg(&exe)
        .args([full_name.as_str(), "--exact", "--nocapture", "--include-ignored", "--test-threads=1"])
        .env(NETNS_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn unshare (util-linux)");
    let stdout = LineBuffer::drain(child.stdout.take().expect("stdout"), |_| {});
    let stderr = LineBuffer::drain(child.stderr.take().expect("stderr"), |_| {});
    let status = wait_child(&mut child, NETNS_TIMEOUT);
    if status.is_none() {
        stop_child(&mut child, Duration::from_secs(2));
    }
    // Let the drain threads take the last lines.
    std::thread::sleep(Duration::from_millis(100));
    let output = format!("--- stdout ---\n{}\n--- stderr ---\n{}", stdout.tail(200), stderr.tail(200));
    match status {
        None => panic!("{test_name} in the loopback namespace did not finish within {NETNS_TIMEOUT:?}\n{output}"),
        Some(status) if !status.success() => {
            panic!("{test_name} failed in the loopback namespace ({status})\n{output}")
        }
        Some(_) if !stdout.contains("1 passed") => {
            panic!("{test_name}: the re-run in the namespace ran no test (wrong name?)\n{output}")
        }
        Some(_) => false,
    }
}

/// Fails unless every address of every interface (per `ip -o addr show`) is on `lo`.
pub fn only_loopback_addresses() -> anyhow::Result<()> {
    let output = Command::new("ip").args(["-o", "addr", "show"]).output()?;
    anyhow::ensure!(output.status.success(), "ip -o addr show failed: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    let others: Vec<&str> = text.lines().filter(|l| l.split_whitespace().nth(1) != Some("lo")).collect();
    anyhow::ensure!(others.is_empty(), "interfaces other than lo have addresses: {others:?}");
    anyhow::ensure!(text.contains("127.0.0.1"), "lo has no 127.0.0.1 (is it up?): {text}");
    Ok(())
}
