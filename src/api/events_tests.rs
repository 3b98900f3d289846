use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

#[test]
fn frames_are_event_then_data_lines_then_a_blank_line() {
    assert_eq!(frame("state", r#"{"a":1}"#), "event: state\ndata: {\"a\":1}\n\n");
    // A line break in the data becomes a second data line (a reader joins them with \n).
    assert_eq!(frame("x", "one\r\ntwo\nthree"), "event: x\ndata: one\ndata: two\ndata: three\n\n");
    assert_eq!(frame("x", ""), "event: x\ndata: \n\n");
    assert!(KEEPALIVE_FRAME.starts_with(':') && KEEPALIVE_FRAME.ends_with("\n\n"));
}

#[test]
fn rates_come_from_counter_deltas() {
    let mut rates = Rates::default();
    let t0 = Instant::now();
    let first = rates.update(&[("a".into(), 1000, 0)], t0);
    assert_eq!(first["a"], Bitrate { in_bps: 0, out_bps: 0 });
    let second = rates.update(&[("a".into(), 126_000, 250_000)], t0 + Duration::from_secs(1));
    assert_eq!(second["a"], Bitrate { in_bps: 1_000_000, out_bps: 2_000_000 });
    // A counter that went down (viewers left) is no traffic, not a huge number.
    let third = rates.update(&[("a".into(), 126_000, 10)], t0 + Duration::from_secs(2));
    assert_eq!(third["a"], Bitrate { in_bps: 0, out_bps: 0 });
    // A stream that ended is forgotten; when it comes back it starts from 0 again.
    assert!(rates.update(&[], t0 + Duration::from_secs(3)).is_empty());
    assert_eq!(rates.update(&[("a".into(), 5, 5)], t0 + Duration::from_secs(4))["a"].in_bps, 0);
}

#[tokio::test]
async fn sends_changes_only_keeps_alive_and_ends_on_stop() {
    // Popped from the end: "a", then "b" five times unchanged, then "c".
    let values = Arc::new(std::sync::Mutex::new(vec!["c", "b", "b", "b", "b", "b", "a"]));
    let source = values.clone();
    let stop = CancellationToken::new();
    let period = Duration::from_millis(50);
    let stream = event_stream(
        move || {
            let v = source.lock().unwrap().pop().unwrap_or("c");
            async move { v.to_string() }
        },
        period,
        Duration::from_millis(175),
        stop.clone(),
    );
    futures_util::pin_mut!(stream);
    let mut next = async || String::from_utf8(stream.next().await.unwrap().unwrap().to_vec()).unwrap();
    assert_eq!(next().await, frame("state", "a"));
    let started = tokio::time::Instant::now();
    assert_eq!(next().await, frame("state", "b"));
    assert!(started.elapsed() >= period * 9 / 10, "one snapshot a period: {:?}", started.elapsed());
    // "b" unchanged four more times (200 ms): no event, but a keepalive after 175 ms.
    let mut keepalives = 0;
    let last = loop {
        let chunk = next().await;
        if chunk != KEEPALIVE_FRAME {
            break chunk;
        }
        keepalives += 1;
    };
    assert_eq!(last, frame("state", "c"), "an unchanged snapshot is not sent again");
    assert!(keepalives >= 1, "no keepalive in 200 ms without an event");
    stop.cancel();
    assert!(stream.next().await.is_none(), "stop ends the stream");
}

/// Counts how many snapshots were taken, and whether the stream was dropped.
struct Probe {
    taken: AtomicU64,
    dropped: AtomicU64,
}

struct DropFlag(Arc<Probe>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// A real server and a client that reads the headers and then nothing: the snapshots taken
/// stop growing once the socket is full (nothing piles up in the gateway), and closing the
/// client ends the stream.
#[tokio::test]
async fn a_slow_reader_holds_snapshots_back_and_a_gone_one_ends_the_stream() {
    const SIZE: usize = 256 * 1024;
    let probe = Arc::new(Probe { taken: AtomicU64::new(0), dropped: AtomicU64::new(0) });
    let p = probe.clone();
    let app = axum::Router::new().route(
        "/events",
        axum::routing::get(move || {
            let p = p.clone();
            async move {
                let flag = Arc::new(DropFlag(p.clone()));
                let stream = event_stream(
                    move || {
                        let _alive = flag.clone();
                        let n = p.taken.fetch_add(1, Ordering::SeqCst);
                        // Every snapshot differs, so each one is sent.
                        async move { format!("{n:08}{}", "x".repeat(SIZE)) }
                    },
                    Duration::from_millis(1),
                    KEEPALIVE,
                    CancellationToken::new(),
                );
                Body::from_stream(stream)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client.write_all(b"GET /events HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let mut head = vec![0u8; 1024];
    let n = client.read(&mut head).await.unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head[..n]));

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after_fill = probe.taken.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = probe.taken.load(Ordering::SeqCst);
    // Unbounded, 1 ms snapshots would be ~1500 more; bounded, the socket's buffers (a few MiB
    // on loopback) and one event in hand are all there is.
    assert!(
        later - after_fill <= 1,
        "snapshots kept being taken for a reader that reads nothing: {after_fill} -> {later}"
    );
    println!(
        "slow reader: {after_fill} snapshots of {SIZE} bytes taken until the socket was full, {later} after 1.5 s more"
    );
    assert!(later < 200, "{later} snapshots of {SIZE} bytes taken before the socket filled");
    assert_eq!(probe.dropped.load(Ordering::SeqCst), 0);

    drop(client);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while probe.dropped.load(Ordering::SeqCst) == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(probe.dropped.load(Ordering::SeqCst), 1, "the stream of a reader that left was not dropped");
    server.abort();
}
