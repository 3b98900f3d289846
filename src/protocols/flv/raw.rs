//! HTTP-FLV play on a connection of its own. A connection whose first request is
//! `GET /live/KEY.flv` or `GET /mini/KEY.flv` is answered here instead of by hyper, and the
//! FLV is written straight to its socket: one vectored system call per batch of frames, the
//! stream's shared tag bodies never copied per viewer ([`SocketSink`]). This is how most
//! players connect (one connection per stream). A connection that starts with any other
//! request, or whose request line did not arrive in its first segment, is served by hyper,
//! whose FLV route ([`super::http`]) runs the same viewer loop through a queue.
//!
//! The request is held to the same bounds as hyper's: its head within the header timeout and
//! [`MAX_HEAD`] bytes; an error is answered as the router would (status and JSON body).

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri};
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::http::{open, serve as serve_viewer, FlvCtx};
use super::sink::SocketSink;
use crate::http::ApiError;
use crate::media::Protocol;

/// The largest request head taken (hyper's default limit is larger; a player's is far
/// smaller).
pub const MAX_HEAD: usize = 16 * 1024;
/// The bytes looked at to recognise a play request.
const PEEK: usize = 512;
/// How many headers a request may have.
const MAX_HEADERS: usize = 64;

const OK_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nCache-Control: no-cache\r\n\
Access-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n";

/// Which play route a request line (the start of a connection's bytes) asks for, if it is
/// `GET /live/…​.flv` or `GET /mini/…​.flv`. Pure.
pub fn play_route(start: &[u8]) -> Option<Protocol> {
    let line_end = start.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&start[..line_end]).ok()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if method != "GET" || !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return None;
    }
    let path = target.split('?').next()?;
    let (protocol, file) = if let Some(file) = path.strip_prefix("/live/") {
        (Protocol::Rtmp, file)
    } else {
        (Protocol::Miniprogram, path.strip_prefix("/mini/")?)
    };
    (file.ends_with(".flv") && !file.contains('/')).then_some(protocol)
}

/// Whether the connection's first request is an HTTP-FLV play (see the module doc), looking
/// without taking; waits at most `wait` for its first bytes.
pub async fn is_play(io: &TcpStream, wait: Duration) -> bool {
    let mut start = [0u8; PEEK];
    match tokio::time::timeout(wait, io.peek(&mut start)).await {
        Ok(Ok(n)) => play_route(&start[..n]).is_some(),
        _ => false,
    }
}

/// The request as the play handler takes it.
struct Request {
    protocol: Protocol,
    file: String,
    uri: Uri,
    headers: HeaderMap,
}

/// Parses a complete request head (through its blank line). Errors are 400s.
fn parse_head(head: &[u8]) -> Result<Request, ApiError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(ApiError::bad_request("incomplete request head")),
        Err(e) => return Err(ApiError::bad_request(format!("bad request: {e}"))),
    }
    let target = req.path.ok_or_else(|| ApiError::bad_request("no request target"))?;
    let uri: Uri = target.parse().map_err(|_| ApiError::bad_request("bad request target"))?;
    let start = [req.method.unwrap_or(""), " ", target, " HTTP/1.1\r\n"].concat();
    let protocol = play_route(start.as_bytes()).ok_or_else(|| ApiError::not_found("no such endpoint"))?;
    let file = percent_decode(uri.path().rsplit('/').next().unwrap_or(""))
        .ok_or_else(|| ApiError::bad_request("bad percent-encoding in the request path"))?;
    let mut headers = HeaderMap::new();
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| ApiError::bad_request("bad header name"))?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| ApiError::bad_request("bad header value"))?;
        headers.append(name, value);
    }
    Ok(Request { protocol, file, uri, headers })
}

/// What a request head asks for, as this path reads it: the play route and the file, or why
/// it is refused (for the fuzzer and tests; the server uses the same parse).
pub fn request_of(head: &[u8]) -> Result<(Protocol, String), String> {
    let _ = play_route(head);
    parse_head(head).map(|r| (r.protocol, r.file)).map_err(|e| e.message)
}

/// A path segment percent-decoded, as the router's path extractor decodes it; None if an
/// escape is malformed or the result is not UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let hex = std::str::from_utf8(bytes.get(at + 1..at + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            at += 3;
        } else {
            out.push(bytes[at]);
            at += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Reads the request head (through its blank line) within `wait`; None if it did not come
/// whole in time or within [`MAX_HEAD`].
async fn read_head(io: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let read = async {
        let mut head = Vec::with_capacity(1024);
        let mut buf = [0u8; 2048];
        loop {
            // Never past the blank line: peek, then take only the head.
            let n = io.peek(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            let seen = head.len();
            head.extend_from_slice(&buf[..n]);
            let end = head.windows(4).position(|w| w == b"\r\n\r\n").map(|at| at + 4);
            let take = end.map_or(n, |end| end - seen);
            head.truncate(seen + take);
            io.read_exact(&mut buf[..take]).await.ok()?;
            if end.is_some() {
                return Some(head);
            }
            if head.len() > MAX_HEAD {
                return None;
            }
        }
    };
    tokio::time::timeout(wait, read).await.ok().flatten()
}

/// Serves one connection whose first request is an HTTP-FLV play (see [`is_play`]): reads
/// its head within `header_timeout`, answers an error as the router would, or plays until
/// the viewer leaves, the stream ends or the gateway shuts down.
pub async fn serve(
    mut io: TcpStream,
    peer: SocketAddr,
    gw: FlvCtx,
    header_timeout: Duration,
    shutdown: CancellationToken,
) {
    let Some(head) = read_head(&mut io, header_timeout).await else {
        tracing::info!(%peer, "HTTP connection closed: no complete request headers within {header_timeout:?}");
        return;
    };
    let opened = match parse_head(&head) {
        Ok(req) => open(&gw, req.protocol, peer, &req.file, &req.uri, &req.headers).await,
        Err(e) => Err(e),
    };
    let (sub, span) = match opened {
        Ok(opened) => opened,
        Err(e) => return answer_error(io, e).await,
    };
    if write_all_within(&mut io, OK_HEAD, header_timeout).await.is_err() {
        return;
    }
    let mut sink = SocketSink::new(io);
    async {
        tokio::select! {
            () = serve_viewer(&gw, sub, &mut sink) => {}
            () = shutdown.cancelled() => {}
        }
    }
    .instrument(span)
    .await;
    let mut io = sink.into_inner();
    let _ = tokio::time::timeout(Duration::from_secs(1), io.shutdown()).await;
}

async fn write_all_within(io: &mut TcpStream, bytes: &[u8], wait: Duration) -> std::io::Result<()> {
    tokio::time::timeout(wait, io.write_all(bytes)).await.map_err(|_| std::io::ErrorKind::TimedOut)?
}

/// Answers `error` as the router would (its status and JSON body), then closes.
async fn answer_error(mut io: TcpStream, error: ApiError) {
    let response = error.into_response();
    let status = response.status();
    let content_type = response.headers().get(axum::http::header::CONTENT_TYPE).cloned();
    let body = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut out = format!("HTTP/1.1 {} {}\r\n", status.as_u16(), status.canonical_reason().unwrap_or(""));
    if let Some(ct) = content_type.as_ref().and_then(|v| v.to_str().ok()) {
        out.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&body);
    let _ = write_all_within(&mut io, &bytes, Duration::from_secs(2)).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), io.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_flv_plays_on_the_two_routes_are_taken() {
        assert_eq!(play_route(b"GET /live/a.flv HTTP/1.1\r\nHost: x\r\n\r\n"), Some(Protocol::Rtmp));
        assert_eq!(play_route(b"GET /mini/a.flv?token=t HTTP/1.0\r\n"), Some(Protocol::Miniprogram));
        for other in [
            &b"GET /live/a.flv HTTP/1.1"[..], // no end of line yet
            b"HEAD /live/a.flv HTTP/1.1\r\n",
            b"GET /live/a.m3u8 HTTP/1.1\r\n",
            b"GET /live/x/a.flv HTTP/1.1\r\n",
            b"GET /api/v1/streams HTTP/1.1\r\n",
            b"GET /live/a.flv HTTP/2\r\n",
            b"GET  /live/a.flv HTTP/1.1\r\n",
            b"\xff\xfe\r\n",
        ] {
            assert_eq!(play_route(other), None, "{:?}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn a_head_is_parsed_into_what_admission_reads() {
        let req = parse_head(b"GET /live/s1.flv?token=abc HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer x\r\n\r\n")
            .expect("parsed");
        assert_eq!(req.protocol, Protocol::Rtmp);
        assert_eq!(req.file, "s1.flv");
        assert_eq!(req.uri.query(), Some("token=abc"));
        assert_eq!(req.headers.get("authorization").unwrap(), "Bearer x");
        assert!(parse_head(b"GET /live/s1.flv HTTP/1.1\r\nBad Header\r\n\r\n").is_err());
        assert_eq!(parse_head(b"GET /live/a%2Db.flv HTTP/1.1\r\n\r\n").expect("parsed").file, "a-b.flv");
        assert!(parse_head(b"GET /live/a%ZZ.flv HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_head(b"GET /live/a%ff.flv HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_head(b"GET /live/s1.flv HTTP/1.1\r\nHost: h\r\n").is_err());
    }
}
