//! Bad input while a stream runs and a reader reads it: garbage on the RTMP port, broken
//! chunks after a valid handshake, a second publisher on the live key, bad API JSON, unknown
//! streams. Each must be refused or closed on its own; the reader keeps receiving data and
//! `/healthz` stays 200.

use crate::common;

use std::time::Duration;

use serde_json::json;

use common::raw_rtmp::{chunk_type0, RawRtmp};
use common::{BackgroundReader, Ffmpeg, Gateway, PublishOptions};

/// A gateway with `/live/k` published by ffmpeg and read over HTTP-FLV.
struct Running {
    gw: Gateway,
    publisher: Ffmpeg,
    reader: BackgroundReader,
}

async fn running_stream() -> Running {
    let gw = Gateway::start();
    let publisher = Ffmpeg::publish(&gw.rtmp_url("/live/k"), PublishOptions::default());
    gw.api().wait_live("k", Duration::from_secs(20)).await.expect("publisher live");
    let reader = BackgroundReader::start(&gw.http_url("/live/k.flv")).await.expect("reader connects");
    reader.expect_flowing(30, Duration::from_secs(10)).await.expect("reader gets data");
    Running { gw, publisher, reader }
}

impl Running {
    /// The reader still gets audio and video, the publisher still runs, `/healthz` is 200.
    async fn assert_unharmed(&mut self, after: &str) {
        self.reader
            .expect_flowing(30, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("after {after}: reader: {e:#}"));
        assert!(self.publisher.is_running(), "after {after}: publisher stopped:\n{}", self.publisher.stderr_tail());
        let health = self.gw.api().healthz().await.unwrap_or_else(|e| panic!("after {after}: /healthz: {e:#}"));
        assert_eq!(health, 200, "after {after}: /healthz");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_rtmp_port_closes_only_that_connection() {
    let mut run = running_stream().await;
    let addr = run.gw.rtmp_addr().to_string();

    // An invalid version byte ('G' of an HTTP request) followed by enough bytes for C1.
    let mut raw = RawRtmp::connect(&addr).await.expect("connect");
    let mut garbage = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    garbage.resize(2000, b'x');
    let _ = raw.send(&garbage).await;
    raw.expect_closed(Duration::from_secs(5)).await.expect("bad version byte closes the connection");
    run.assert_unharmed("an HTTP request on the RTMP port").await;

    // Pseudo-random bytes after a valid version byte, then EOF.
    let mut raw = RawRtmp::connect(&addr).await.expect("connect");
    let mut noise: Vec<u8> = (0..10_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    noise[0] = 3;
    let _ = raw.send(&noise).await;
    raw.finish().await;
    raw.expect_closed(Duration::from_secs(5)).await.expect("closed after noise + EOF");
    run.assert_unharmed("random bytes").await;

    // Connections that end early: nothing at all, and half a C1.
    drop(RawRtmp::connect(&addr).await.expect("connect"));
    let mut raw = RawRtmp::connect(&addr).await.expect("connect");
    let _ = raw.send(&[3u8; 700]).await;
    raw.finish().await;
    raw.expect_closed(Duration::from_secs(5)).await.expect("closed after a truncated C1");
    run.assert_unharmed("truncated handshakes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_chunks_after_a_valid_handshake_close_only_that_connection() {
    let mut run = running_stream().await;
    let addr = run.gw.rtmp_addr().to_string();

    // A type-1 chunk on a chunk stream that never had a type-0 header.
    let mut raw = RawRtmp::connect(&addr).await.expect("connect");
    raw.handshake().await.expect("handshake");
    let _ = raw.send(&[0x45, 0, 0, 0, 0, 0, 10, 20, 1, 2, 3]).await;
    raw.expect_closed(Duration::from_secs(5)).await.expect("type-1 chunk without a previous header closes");
    run.assert_unharmed("a type-1 chunk on a fresh chunk stream").await;

    // A command message cut short: the header promises 100 bytes, 10 arrive, then EOF.
    let mut raw = RawRtmp::connect(&addr).await.expect("connect");
    raw.handshake().await.expect("handshake");
    let _ =
        raw.send(&chunk_type0(3, 0, 20, 0, 100, &[0x02, 0x00, 0x07, b'c', b'o', b'n', b'n', b'e', b'c', b't'])).await;
    raw.finish().await;
    raw.expect_closed(Duration::from_secs(5)).await.expect("truncated message + EOF closes");
    run.assert_unharmed("a truncated chunk").await;

    // A full-sized command message whose AMF0 body is garbage.
    let mut raw = RawRtmp::connect(&addr).await.expect("connect");
    raw.handshake().await.expect("handshake");
    let _ = raw.send(&chunk_type0(3, 0, 20, 0, 16, &[0xff; 16])).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    raw.finish().await;
    raw.expect_closed(Duration::from_secs(5)).await.expect("closed after garbage AMF + EOF");
    run.assert_unharmed("a garbage AMF0 command").await;

    // A message header claiming the largest length (16 MiB) with a set-chunk-size of 0x7fffffff
    // before it, then EOF: no unbounded buffering, no crash.
    let mut raw = RawRtmp::connect(&addr).await.expect("connect");
    raw.handshake().await.expect("handshake");
    let _ = raw.send(&chunk_type0(2, 0, 1, 0, 4, &0x7fff_ffffu32.to_be_bytes())).await;
    let _ = raw.send(&chunk_type0(4, 0, 9, 1, 0xff_ffff, &[0x17; 1000])).await;
    raw.finish().await;
    raw.expect_closed(Duration::from_secs(5)).await.expect("huge message + EOF closes");
    run.assert_unharmed("a huge message header").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_publisher_on_a_live_key_is_refused() {
    let mut run = running_stream().await;
    let mut second = Ffmpeg::publish(&run.gw.rtmp_url("/live/k"), PublishOptions::default());
    let status = second.wait_exit(Duration::from_secs(15));
    match status {
        Some(s) => assert!(!s.success(), "second publisher exited 0:\n{}", second.stderr_tail()),
        None => panic!("second publisher still running after 15 s:\n{}", second.stderr_tail()),
    }
    run.assert_unharmed("a refused second publisher").await;
    let stream = run.gw.api().stream("k").await.expect("GET k").expect("k still exists");
    assert_eq!(stream.publisher.map(|p| p.protocol), Some("rtmp".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_api_json_is_400_with_a_reason() {
    let mut run = running_stream().await;
    let api = run.gw.api();
    let rtmp = "rtmp://127.0.0.1:1/live/x";

    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("truncated JSON", b"{".to_vec(), &[]),
        ("missing url", json!({"stream": "x"}).to_string().into_bytes(), &["url"]),
        ("missing stream", json!({"url": rtmp}).to_string().into_bytes(), &["stream"]),
        (
            "non-rtmp url",
            json!({"stream": "x", "url": "http://127.0.0.1/a.flv"}).to_string().into_bytes(),
            &["url", "rtmp"],
        ),
        ("url of the wrong type", json!({"stream": "x", "url": 5}).to_string().into_bytes(), &["url"]),
        (
            "bad stream key",
            json!({"stream": "no spaces/or slashes", "url": rtmp}).to_string().into_bytes(),
            &["stream", "key"],
        ),
    ];
    for (what, body, words) in cases {
        let reply = api.post_raw("/api/v1/pulls", "application/json", body).await.expect("POST pulls");
        assert_eq!(reply.status, 400, "{what}: {}", reply.body);
        let message = reply.error_message().unwrap_or_else(|| panic!("{what}: no {{\"error\"}} in {}", reply.body));
        assert!(!message.trim().is_empty(), "{what}: empty error");
        let lower = message.to_lowercase();
        assert!(
            words.is_empty() || words.iter().any(|w| lower.contains(w)),
            "{what}: error {message:?} names none of {words:?}"
        );
    }
    let pushes =
        api.post_raw("/api/v1/streams/k/pushes", "application/json", b"{\"url\":".to_vec()).await.expect("POST pushes");
    assert_eq!(pushes.status, 400, "truncated push JSON: {}", pushes.body);
    assert!(pushes.error_message().is_some(), "push error body: {}", pushes.body);
    let pulls = api.pulls().await.expect("list pulls");
    assert!(pulls.is_empty(), "a rejected request created a pull: {pulls:?}");
    run.assert_unharmed("bad API JSON").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_streams_and_relays_are_404_json() {
    let mut run = running_stream().await;
    let api = run.gw.api();
    let requests = [
        (reqwest::Method::GET, "/api/v1/streams/nope"),
        (reqwest::Method::DELETE, "/api/v1/streams/nope"),
        (reqwest::Method::DELETE, "/api/v1/pulls/no-such-pull"),
        (reqwest::Method::DELETE, "/api/v1/streams/k/pushes/no-such-push"),
    ];
    for (method, path) in requests {
        let reply = api.request(method.clone(), path, None).await.expect("request");
        assert_eq!(reply.status, 404, "{method} {path}: {}", reply.body);
        assert!(reply.error_message().is_some_and(|m| !m.is_empty()), "{method} {path}: body {}", reply.body);
    }
    for path in ["/live/nope.flv", "/mini/nope.flv"] {
        let reply = api.get(path).await.expect("GET");
        assert_eq!(reply.status, 404, "GET {path}: {}", reply.body);
    }
    run.assert_unharmed("requests for unknown streams").await;
}
