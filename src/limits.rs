//! Process-wide resource bounds: the open-files limit and how many connections each listener
//! holds at once, so a flood of connections is refused clearly instead of starving the
//! process of file descriptors (where `/healthz` and every new viewer would time out).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::LimitsSettings;

/// Share of the open-files limit the listeners may use together when no cap is configured;
/// the rest is for pipelines, WebRTC and UDP sockets, files and the accept of a refusal.
const AUTO_SHARE: f64 = 0.75;
/// Connections above the HTTP cap still served for `/healthz` (and answered 503 otherwise).
pub const HTTP_OVERFLOW: usize = 32;

/// Raises the soft open-files limit to the hard one; returns the soft limit now in force.
pub fn raise_open_files_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot read the open-files limit");
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let before = lim.rlim_cur;
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::info!(from = before, to = lim.rlim_max, "open-files limit raised to the hard limit");
            lim.rlim_cur = lim.rlim_max;
        } else {
            tracing::warn!(error = %std::io::Error::last_os_error(), soft = before, "cannot raise the open-files limit");
        }
    }
    lim.rlim_cur
}

/// The per-listener connection caps: configured, else a share of `open_files` each.
pub fn connection_caps(settings: &LimitsSettings, open_files: u64) -> (usize, usize) {
    let budget = ((open_files as f64 * AUTO_SHARE) as usize).saturating_sub(HTTP_OVERFLOW).max(2);
    let auto = budget / 2;
    let pick = |configured: usize| if configured == 0 { auto } else { configured };
    let (rtmp, http) = (pick(settings.max_rtmp_connections), pick(settings.max_http_connections));
    if rtmp + http + HTTP_OVERFLOW > open_files as usize {
        tracing::warn!(rtmp, http, open_files, "connection caps above the open-files limit; the process may run out of descriptors");
    }
    (rtmp, http)
}

/// Counts one listener's connections against its cap.
#[derive(Clone, Debug)]
pub struct Gate {
    inner: Arc<GateInner>,
}

#[derive(Debug)]
struct GateInner {
    name: &'static str,
    cap: usize,
    open: AtomicUsize,
    refused: AtomicUsize,
    last_warning: std::sync::Mutex<Option<Instant>>,
}

/// One admitted connection; frees its place when dropped.
#[derive(Debug)]
pub struct Permit {
    inner: Arc<GateInner>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.inner.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    pub fn new(name: &'static str, cap: usize) -> Gate {
        Gate {
            inner: Arc::new(GateInner {
                name,
                cap,
                open: AtomicUsize::new(0),
                refused: AtomicUsize::new(0),
                last_warning: std::sync::Mutex::new(None),
            }),
        }
    }

    pub fn cap(&self) -> usize {
        self.inner.cap
    }

    /// Connections held now.
    pub fn open(&self) -> usize {
        self.inner.open.load(Ordering::Acquire)
    }

    /// Connections refused so far.
    pub fn refused(&self) -> usize {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// A place for one more connection, unless the cap is reached.
    pub fn try_enter(&self) -> Option<Permit> {
        let admitted = self
            .inner
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.inner.cap).then_some(n + 1))
            .is_ok();
        admitted.then(|| Permit { inner: self.inner.clone() })
    }

    /// Counts a refusal and logs it (at most once a second, with the count since).
    pub fn note_refused(&self, peer: std::net::SocketAddr) {
        let total = self.inner.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.inner.last_warning.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            *last = Some(Instant::now());
            tracing::warn!(
                listener = self.inner.name,
                %peer,
                cap = self.inner.cap,
                refused_total = total,
                "connection refused: the listener holds its maximum of connections (limits.max_{}_connections)",
                self.inner.name
            );
        }
    }
}

/// The next connection on `listener`, set up as every media listener wants it (no Nagle
/// delay, [`bound_send_buffer`]); `None` once `shutdown` is cancelled. An accept that fails
/// (EMFILE and the like) is logged and retried after `backoff`, so descriptors can come back.
pub async fn accept(
    listener: &tokio::net::TcpListener,
    what: &'static str,
    backoff: Duration,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)> {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((io, peer)) => {
                    let _ = io.set_nodelay(true);
                    bound_send_buffer(&io);
                    return Some((io, peer));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "{what} accept failed");
                    tokio::time::sleep(backoff).await;
                }
            },
            _ = shutdown.cancelled() => return None,
        }
    }
}

/// The kernel send buffer of a connection that may carry media to a viewer. Linux grows an
/// unset one up to `tcp_wmem`'s maximum (4 MiB: over 30 s of a 1 Mbit/s stream), which a
/// viewer that stopped reading would fill before the gateway's own bounded queues could see
/// it fall behind; a fixed size (the kernel doubles it) keeps that to a few seconds.
pub const EGRESS_SEND_BUFFER: usize = 256 * 1024;

/// Sets [`EGRESS_SEND_BUFFER`] on `io` (best effort: a failure only leaves the kernel's size).
pub fn bound_send_buffer(io: &tokio::net::TcpStream) {
    if let Err(e) = socket2::SockRef::from(io).set_send_buffer_size(EGRESS_SEND_BUFFER) {
        tracing::debug!(error = %e, "SO_SNDBUF not set");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_admits_up_to_its_cap_and_frees_places() {
        let gate = Gate::new("rtmp", 2);
        let a = gate.try_enter().expect("first");
        let _b = gate.try_enter().expect("second");
        assert!(gate.try_enter().is_none());
        drop(a);
        assert_eq!(gate.open(), 1);
        assert!(gate.try_enter().is_some());
    }

    #[test]
    fn caps_come_from_the_open_files_limit_unless_configured() {
        let mut s = LimitsSettings::default();
        let (rtmp, http) = connection_caps(&s, 1024);
        assert_eq!(rtmp, http);
        assert!(rtmp + http + HTTP_OVERFLOW <= 1024 * 3 / 4, "{rtmp} + {http}");
        s.max_rtmp_connections = 10;
        assert_eq!(connection_caps(&s, 1024).0, 10);
    }
}
