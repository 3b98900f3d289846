//! HTTP-FLV's two paths (issue 14): a connection whose first request is a FLV play is served
//! without hyper, straight to its socket (`flv::raw`); a FLV play on a connection that asked
//! something else first goes through hyper. Both give a player the same FLV, starting at a
//! keyframe; the first path answers errors as the router does.

use crate::common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::flv::{check_join_start, FlvParser};
use common::{ffprobe, Ffmpeg, Gateway, PublishOptions};

/// Sends `requests` on one connection and reads until `want` bytes of body follow the last
/// response head, or the connection ends, for at most 10 s: (the last head, its body bytes).
async fn exchange(addr: &str, requests: &[String], want: usize) -> (String, Vec<u8>) {
    let mut io = TcpStream::connect(addr).await.expect("connect");
    let mut all = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    for (i, request) in requests.iter().enumerate() {
        io.write_all(request.as_bytes()).await.expect("send request");
        let last = i + 1 == requests.len();
        let read = async {
            loop {
                let heads = all.windows(4).filter(|w| w == b"\r\n\r\n").count();
                let body_from =
                    all.windows(4).enumerate().filter(|(_, w)| w == b"\r\n\r\n").nth(i).map(|(at, _)| at + 4);
                if !last && heads > i && body_from.is_some_and(|from| all.len() > from) {
                    break; // the earlier answer (a short body) is in
                }
                if last && body_from.is_some_and(|from| all.len().saturating_sub(from) >= want) {
                    break;
                }
                let n = io.read(&mut buf).await.expect("read");
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n]);
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read).await.expect("answers within 10 s");
    }
    let text_end = all.windows(4).enumerate().rfind(|(_, w)| w == b"\r\n\r\n").map(|(at, _)| at).expect("a head");
    let head_start = all[..text_end].windows(4).rposition(|w| w == b"\r\n\r\n").map_or(0, |at| at + 4);
    let head_start =
        all[head_start..text_end].windows(5).position(|w| w == b"HTTP/").map_or(head_start, |at| head_start + at);
    (String::from_utf8_lossy(&all[head_start..text_end]).into_owned(), all[text_end + 4..].to_vec())
}

fn get(path: &str, addr: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n")
}

#[tokio::test]
async fn a_player_connection_and_a_kept_alive_one_both_get_flv_from_a_keyframe() {
    let gw = Gateway::start();
    let api = gw.api();
    let _ffmpeg = Ffmpeg::publish(&gw.rtmp_url("/live/p"), PublishOptions::default());
    api.wait_live("p", Duration::from_secs(20)).await.expect("publisher live");
    let addr = gw.http_addr().to_string();

    // A player's own connection: no chunked framing, the FLV itself, closed at the end.
    let (head, body) = exchange(&addr, &[get("/live/p.flv", &addr)], 200_000).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: video/x-flv"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding"), "{head}");
    let mut parser = FlvParser::default();
    parser.push(&body);
    let mut tags = Vec::new();
    while let Some(tag) = parser.next_tag().expect("valid FLV") {
        tags.push(tag);
    }
    assert!(tags.len() > 20, "{} tags", tags.len());
    check_join_start(&tags).expect("starts with sequence headers, then a keyframe");
    let audio = tags.iter().filter(|t| t.kind == common::TagKind::Audio).count();
    assert!(audio > 5, "audio goes out beside the picture: {audio} audio tags");

    // The same play after another request on a kept-alive connection: hyper's, chunked.
    let (head, body) = exchange(&addr, &[get("/healthz", &addr), get("/live/p.flv", &addr)], 50_000).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{head}");
    let start = body.windows(3).position(|w| w == b"FLV").expect("an FLV header in the first chunk");
    assert!(start < 16, "the body starts with the FLV header (after its chunk size): {start}");

    // A real client (ffmpeg's HTTP) reads the stream on its own connection.
    let probe = ffprobe(&gw.http_url("/live/p.flv"), Duration::from_secs(20)).await.expect("ffprobe reads it");
    assert!(probe.video().is_some() && probe.audio().is_some(), "{probe:?}");
}

#[tokio::test]
async fn errors_on_a_player_connection_are_answered_as_the_router_answers_them() {
    let gw = Gateway::start();
    let addr = gw.http_addr().to_string();
    for (request, status) in [
        (get("/live/nobody.flv", &addr), "404"),
        (get("/mini/nobody.flv", &addr), "404"),
        (get("/live/bad%00key.flv", &addr), "400"),
        (format!("GET /live/x.flv HTTP/1.1\r\nHost: {addr}\r\nno colon here\r\n\r\n"), "400"),
    ] {
        // Read to the end: the connection closes after the answer.
        let (head, body) = exchange(&addr, std::slice::from_ref(&request), usize::MAX).await;
        assert!(head.starts_with(&format!("HTTP/1.1 {status}")), "{request:?}: {head}");
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{request:?}: {e}"));
        assert!(json["error"].as_str().is_some_and(|e| !e.is_empty()), "{request:?}: {json}");
    }
    // The gateway still serves.
    let (head, _) = exchange(&addr, &[get("/healthz", &addr)], 1).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}
