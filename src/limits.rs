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
        tracing::warn!(
            rtmp,
            http,
            open_files,
            "connection caps above the open-files limit; the process may run out of descriptors"
        );
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
    /// Connections one (non-loopback) address may hold; 0: no limit.
    per_address: usize,
    by_address: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    open: AtomicUsize,
    refused: AtomicUsize,
    last_warning: std::sync::Mutex<Option<Instant>>,
}

/// One admitted connection; frees its place when dropped.
#[derive(Debug)]
pub struct Permit {
    inner: Arc<GateInner>,
    /// The address counted against `per_address`, if it was.
    address: Option<std::net::IpAddr>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.inner.open.fetch_sub(1, Ordering::AcqRel);
        if let Some(ip) = self.address {
            let mut by = self.inner.by_address.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = by.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    by.remove(&ip);
                }
            }
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The listener holds its maximum of connections.
    Listener,
    /// This address holds its maximum (`limits.max_connections_per_address`).
    Address,
}

impl Gate {
    pub fn new(name: &'static str, cap: usize) -> Gate {
        Gate {
            inner: Arc::new(GateInner {
                name,
                cap,
                per_address: 0,
                by_address: Default::default(),
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

    /// The same gate, also holding each client address (but loopback) to `cap` connections
    /// (0: no limit). Call before the gate is shared.
    pub fn per_address(mut self, cap: usize) -> Gate {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.per_address = cap;
        }
        self
    }

    /// A place for one more connection from `peer`, unless a cap is reached.
    pub fn try_enter(&self, peer: std::net::SocketAddr) -> Result<Permit, Full> {
        let inner = &self.inner;
        let counted = (inner.per_address > 0 && !peer.ip().is_loopback()).then(|| peer.ip());
        if let Some(ip) = counted {
            let mut by = inner.by_address.lock().unwrap_or_else(|e| e.into_inner());
            let n = by.entry(ip).or_insert(0);
            if *n >= inner.per_address {
                return Err(Full::Address);
            }
            *n += 1;
        }
        // From here the permit owns the address count: dropping it gives the place back.
        let permit = Permit { inner: inner.clone(), address: counted };
        inner.open.fetch_add(1, Ordering::AcqRel);
        if inner.open.load(Ordering::Acquire) > inner.cap {
            return Err(Full::Listener);
        }
        Ok(permit)
    }

    /// Counts a refusal and logs it (at most once a second, with the count since).
    pub fn note_refused(&self, peer: std::net::SocketAddr, why: Full) {
        let total = self.inner.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.inner.last_warning.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            *last = Some(Instant::now());
            match why {
                Full::Listener => tracing::warn!(
                    listener = self.inner.name,
                    %peer,
                    cap = self.inner.cap,
                    refused_total = total,
                    "connection refused: the listener holds its maximum of connections (limits.max_{}_connections)",
                    self.inner.name
                ),
                Full::Address => tracing::warn!(
                    listener = self.inner.name,
                    %peer,
                    cap = self.inner.per_address,
                    refused_total = total,
                    "connection refused: this address holds its maximum of connections (limits.max_connections_per_address)"
                ),
            }
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
        let peer: std::net::SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let gate = Gate::new("rtmp", 2);
        let a = gate.try_enter(peer).expect("first");
        let _b = gate.try_enter(peer).expect("second");
        assert_eq!(gate.try_enter(peer).unwrap_err(), Full::Listener);
        assert_eq!(gate.open(), 2, "a refused try gives its place back");
        drop(a);
        assert_eq!(gate.open(), 1);
        assert!(gate.try_enter(peer).is_ok());
    }

    #[test]
    fn one_address_holds_at_most_its_share_but_loopback_is_not_counted() {
        let gate = Gate::new("http", 10).per_address(2);
        let one: std::net::SocketAddr = "198.51.100.1:1000".parse().unwrap();
        let two: std::net::SocketAddr = "198.51.100.2:1000".parse().unwrap();
        let a = gate.try_enter(one).unwrap();
        let _b = gate.try_enter(one).unwrap();
        assert_eq!(gate.try_enter(one).unwrap_err(), Full::Address);
        assert!(gate.try_enter(two).is_ok(), "another address is not held back");
        drop(a);
        assert!(gate.try_enter(one).is_ok(), "a closed connection frees the address's place");
        let local: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
        let held: Vec<_> = (0..5).map(|_| gate.try_enter(local).unwrap()).collect();
        assert_eq!(held.len(), 5);
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
