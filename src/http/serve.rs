//! The HTTP accept loop: one hyper HTTP/1.1 connection per client (upgrades for WebSockets),
//! within the listener's connection cap, with a deadline on request headers.
//!
//! - Close: lingering (see [`super::linger`]), so an answer sent before the whole request
//!   was read (413, 408) reaches the client.
//! - Headers: a client must send each request's headers within
//!   `limits.http_header_timeout_seconds`, also while a kept-alive connection waits for its
//!   next request, so slow (slowloris) and idle clients are closed.
//! - HTTP-FLV: a connection whose first request is a FLV play is answered without hyper and
//!   written straight to its socket (see [`crate::protocols::flv::raw`]).
//! - Cap: past `limits.max_http_connections`, [`HTTP_OVERFLOW`] more connections are served
//!   by a small router that answers `GET /healthz` and 503 with `{"error"}` to anything else,
//!   then closes (they must send their request within a second); past that, connections are
//!   closed at once. Each refusal is logged.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use super::linger::SharedTcp;
use super::write_stall::{StallGuard, WRITE_STALL};
use super::ApiError;
use crate::config::LimitsSettings;
use crate::limits::{Gate, Permit, HTTP_OVERFLOW};
use crate::protocols::flv::http::FlvCtx;
use tokio_util::sync::CancellationToken;

/// How long a connection past the cap may take to send its request headers.
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves `listener` until the gateway's shutdown token; then waits for open connections
/// (their handlers end on the same token).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: LimitsSettings,
    shutdown: CancellationToken,
    gate: Gate,
    flv: Option<FlvCtx>,
) {
    let overflow_gate = Gate::new("http-overflow", HTTP_OVERFLOW);
    let overflow_app = overflow_router(gate.cap());
    let header_timeout = limits.http_header_timeout();
    while let Some((io, peer)) = crate::limits::accept(&listener, "HTTP", Duration::from_millis(50), &shutdown).await {
        let (router, permit, timeout, flv) = match gate.try_enter(peer) {
            Ok(p) => (app.clone(), p, header_timeout, flv.clone()),
            Err(why) => {
                gate.note_refused(peer, why);
                match overflow_gate.try_enter(peer) {
                    // Past the cap a client must ask at once, so idle ones cannot hold
                    // the places kept for /healthz.
                    Ok(p) => (overflow_app.clone(), p, OVERFLOW_HEADER_TIMEOUT.min(header_timeout), None),
                    Err(_) => continue, // closed at once
                }
            }
        };
        tokio::spawn(connection(io, peer, router, permit, timeout, shutdown.clone(), flv));
    }
    while gate.open() + overflow_gate.open() > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn connection(
    io: TcpStream,
    peer: SocketAddr,
    router: Router,
    _permit: Permit,
    header_timeout: Duration,
    shutdown: tokio_util::sync::CancellationToken,
    flv: Option<FlvCtx>,
) {
    if let Some(flv) = flv {
        // A player's connection: written straight to its socket (see `flv::raw`).
        if crate::protocols::flv::raw::is_play(&io, header_timeout).await {
            return crate::protocols::flv::raw::serve(io, peer, flv, header_timeout, shutdown).await;
        }
    }
    let service = router.map_request(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req.map(axum::body::Body::new)
    });
    let service = TowerToHyperService::new(service);
    let shared = SharedTcp::new(io);
    // hyper's handle is dropped with the block; the upgrade of a WebSocket keeps its own.
    let served = {
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(StallGuard::new(shared.clone(), WRITE_STALL)), service)
            .with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => {
                match r {
                    // An idle or slow client sent no request to answer: closed at once.
                    Err(e) if e.is_timeout() => {
                        tracing::info!(%peer, "HTTP connection closed: no complete request headers within {header_timeout:?}");
                        false
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
                        true
                    }
                    Ok(()) => true,
                }
            }
            _ = shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
                false
            }
        }
    };
    if !served {
        return; // shutting down, or nothing was answered
    }
    // A refused request's unread body must not turn the close into a reset that loses the
    // answer (see `linger`).
    let discarded = shared.linger().await;
    if discarded > 0 {
        tracing::debug!(%peer, discarded, "unread request bytes discarded before closing");
    }
}

/// What a connection past the cap is served: `/healthz`, else 503, and the connection closes.
fn overflow_router(cap: usize) -> Router {
    let refuse = move || async move {
        let mut r = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many connections: the gateway holds its maximum of {cap} HTTP connections; try again later"),
        )
        .into_response();
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        Ok::<_, Infallible>(r)
    };
    Router::new().route("/healthz", get(|| async { "ok" })).fallback(refuse).layer(axum::middleware::map_response(
        |mut r: axum::response::Response| async move {
            r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        },
    ))
}
