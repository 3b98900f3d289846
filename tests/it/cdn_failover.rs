//! CDN pushes with backup destinations against two real nginx-rtmp origins: the push moves to
//! the backup when the primary dies and back once it returns; a flapping origin is retried
//! promptly, not after a delay that grew while it was briefly up; and an origin that accepts
//! the push and then stops reading fails over within the write-stall bound.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::api::Relay;
use common::ffmpeg::probe_until_h264_aac;
use common::raw_rtmp::{amf_number, amf_string, chunk_type0, HANDSHAKE_SIZE};
use common::{wait_until, Api, BackgroundReader, Ffmpeg, Gateway, Nginx, PublishOptions};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIVE: Duration = Duration::from_secs(20);

/// Waits until push `id` is live on `url`; returns it and how long that took.
async fn wait_live_on(api: &Api, key: &str, id: &str, url: &str, timeout: Duration) -> (Relay, Duration) {
    let started = Instant::now();
    let relay = wait_until(timeout, &format!("push live on {url}"), || async {
        let list = api.pushes(key).await.map_err(|e| e.to_string())?;
        let p = list.into_iter().find(|p| p.id == id).ok_or("push missing")?;
        if p.state == "live" && p.active_url.as_deref() == Some(url) {
            Ok(p)
        } else {
            Err(format!("{p:?}"))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    (relay, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_falls_over_to_its_backup_and_back_to_the_primary() {
    let mut primary = Nginx::start();
    let backup = Nginx::start();
    let gw = Gateway::start_with(
        &[],
        Some("relay: { retry_min_seconds: 0.3, retry_max_seconds: 1, failback_seconds: 1, connect_timeout_seconds: 2 }\n"),
    );
    let api = gw.api();
    let _publisher = Ffmpeg::publish(&gw.rtmp_url("/live/class"), PublishOptions::default());
    api.wait_live("class", LIVE).await.expect("class live");
    let (primary_url, backup_url) = (primary.rtmp_url("/live/class"), backup.rtmp_url("/live/class"));
    let reply = api
        .post_json("/api/v1/streams/class/pushes", &json!({ "url": primary_url, "backup_urls": [backup_url] }))
        .await
        .expect("POST push");
    assert_eq!(reply.status, 201, "{}", reply.body);
    let created = reply.json.expect("JSON");
    assert_eq!(created["backup_urls"], json!([backup_url]), "{created}");
    let id = created["id"].as_str().expect("id").to_string();

    let (relay, _) = wait_live_on(&api, "class", &id, &primary_url, LIVE).await;
    assert_eq!(relay.url, primary_url);
    probe_until_h264_aac(&primary_url, 640, 360, 44_100, LIVE).await.expect("the primary carries the stream");

    // The primary dies: the push moves to the backup, which viewers can read.
    primary.stop();
    let (_, failover) = wait_live_on(&api, "class", &id, &backup_url, Duration::from_secs(10)).await;
    let listed = api.get("/api/v1/streams/class/pushes").await.expect("list").json.expect("JSON");
    assert_eq!(listed["pushes"][0]["on_backup"], true, "{listed}");
    probe_until_h264_aac(&backup_url, 640, 360, 44_100, LIVE).await.expect("the backup carries the stream");

    // The primary comes back: the push returns to it within a few failback checks.
    primary.restart();
    let (_, failback) = wait_live_on(&api, "class", &id, &primary_url, Duration::from_secs(10)).await;
    let listed = api.get("/api/v1/streams/class/pushes").await.expect("list").json.expect("JSON");
    assert_eq!(listed["pushes"][0]["on_backup"], false, "{listed}");
    assert!(listed["pushes"][0]["failovers"].as_u64().unwrap_or(0) >= 2, "{listed}");
    probe_until_h264_aac(&primary_url, 640, 360, 44_100, LIVE).await.expect("the primary carries the stream again");
    eprintln!("failover to the backup took {failover:?}; back to the primary {failback:?}");
}

/// Issue 10: the backoff only reset after 10 s live, so an origin that kept dropping the push
/// made it wait longer each time (up to `retry_max_seconds`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_origin_is_retried_after_the_minimum_delay_each_time() {
    let mut origin = Nginx::start();
    let gw = Gateway::start_with(&[], Some("relay: { retry_min_seconds: 0.5, retry_max_seconds: 8 }\n"));
    let api = gw.api();
    let _publisher = Ffmpeg::publish(&gw.rtmp_url("/live/flap"), PublishOptions::default());
    api.wait_live("flap", LIVE).await.expect("flap live");
    let url = origin.rtmp_url("/live/flap");
    let push = api.create_push("flap", &url).await.expect("create push");
    wait_live_on(&api, "flap", &push.id, &url, LIVE).await;
    let mut took = Vec::new();
    for round in 0..5 {
        origin.stop();
        wait_until(Duration::from_secs(10), "the push notices", || async {
            let list = api.pushes("flap").await.map_err(|e| e.to_string())?;
            match list.first() {
                Some(p) if p.state != "live" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await
        .unwrap_or_else(|e| panic!("round {round}: {e:#}"));
        origin.restart();
        let (_, after) = wait_live_on(&api, "flap", &push.id, &url, Duration::from_secs(15)).await;
        took.push(after);
    }
    eprintln!("back live after each restart: {took:?}");
    // Doubling without a reset would wait 0.5, 1, 2, 4, 8 s.
    assert!(took.iter().all(|d| *d < Duration::from_secs(3)), "{took:?}");
}

/// An RTMP origin that accepts one publish and then never reads again (a CDN node that hung,
/// its TCP connection still open): a raw listener with a small receive buffer that answers the
/// handshake, `connect`, `createStream` and `publish`, then holds the socket unread.
struct HungOrigin {
    port: u16,
    published: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl HungOrigin {
    async fn start() -> HungOrigin {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        socket.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let port = socket.local_addr().expect("local addr").port();
        let listener = socket.listen(4).expect("listen");
        let published = Arc::new(AtomicBool::new(false));
        let flag = published.clone();
        let task = tokio::spawn(async move {
            let Ok((mut io, _)) = listener.accept().await else { return };
            if let Err(e) = serve_until_published(&mut io).await {
                eprintln!("hung origin: {e:#}");
                return;
            }
            flag.store(true, Ordering::SeqCst);
            // Never reads again; the socket stays open until the test ends.
            std::future::pending::<()>().await;
            drop(io);
        });
        HungOrigin { port, published, task }
    }

    fn rtmp_url(&self, path: &str) -> String {
        format!("rtmp://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for HungOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads until `needle` has arrived (in `seen`, which keeps everything read).
async fn read_until(io: &mut tokio::net::TcpStream, seen: &mut Vec<u8>, needle: &[u8]) -> anyhow::Result<()> {
    let mut buf = [0u8; 4096];
    while !seen.windows(needle.len()).any(|w| w == needle) {
        let n = tokio::time::timeout(Duration::from_secs(10), io.read(&mut buf)).await??;
        anyhow::ensure!(n > 0, "the gateway closed before sending {:?}", String::from_utf8_lossy(needle));
        seen.extend_from_slice(&buf[..n]);
    }
    Ok(())
}

/// The server side of a plain handshake and of the exchange up to `NetStream.Publish.Start`.
async fn serve_until_published(io: &mut tokio::net::TcpStream) -> anyhow::Result<()> {
    let mut c0c1 = vec![0u8; 1 + HANDSHAKE_SIZE];
    io.read_exact(&mut c0c1).await?;
    let mut reply = vec![3u8];
    reply.extend((0..HANDSHAKE_SIZE).map(|i| (i * 11 + 5) as u8)); // S1
    reply.extend_from_slice(&c0c1[1..]); // S2 echoes C1
    io.write_all(&reply).await?;
    let mut c2 = vec![0u8; HANDSHAKE_SIZE];
    io.read_exact(&mut c2).await?;
    let mut seen = Vec::new();
    read_until(io, &mut seen, &amf_string("connect")).await?;
    let mut result = amf_string("_result");
    result.extend(amf_number(1.0));
    result.extend([0x05, 0x05]); // null properties, null information
    io.write_all(&chunk_type0(3, 0, 20, 0, result.len() as u32, &result)).await?;
    read_until(io, &mut seen, &amf_string("createStream")).await?;
    let mut created = amf_string("_result");
    created.extend(amf_number(4.0)); // the gateway's createStream transaction
    created.push(0x05);
    created.extend(amf_number(1.0)); // message stream 1
    io.write_all(&chunk_type0(3, 0, 20, 0, created.len() as u32, &created)).await?;
    read_until(io, &mut seen, &amf_string("publish")).await?;
    let mut status = amf_string("onStatus");
    status.extend(amf_number(0.0));
    status.push(0x05);
    status.push(0x03); // object
    for (k, v) in [("level", "status"), ("code", "NetStream.Publish.Start"), ("description", "go")] {
        status.extend_from_slice(&(k.len() as u16).to_be_bytes());
        status.extend_from_slice(k.as_bytes());
        status.extend(amf_string(v));
    }
    status.extend_from_slice(&[0, 0, 9]);
    io.write_all(&chunk_type0(5, 0, 20, 1, status.len() as u32, &status)).await?;
    io.flush().await?;
    Ok(())
}

/// Issue 10: a push awaited its writes with no bound, so an origin that stopped reading hung
/// the push for ever. Now a destination that takes nothing for `relay.write_stall_seconds`
/// has failed: the push moves to its backup, which carries the stream, and no other viewer
/// notices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_stops_reading_fails_over_within_the_stall_bound() {
    let hung = HungOrigin::start().await;
    let backup = Nginx::start();
    let gw = Gateway::start_with(
        &[],
        Some("relay: { write_stall_seconds: 2, failback_seconds: 600, retry_min_seconds: 0.3, connect_timeout_seconds: 3 }\n"),
    );
    let api = gw.api();
    let _publisher = Ffmpeg::publish(&gw.rtmp_url("/live/hung"), PublishOptions::default());
    let small = PublishOptions { width: 320, height: 180, fps: 15, gop: 15, ..PublishOptions::default() };
    let _other_publisher = Ffmpeg::publish(&gw.rtmp_url("/live/other"), small);
    api.wait_live("hung", LIVE).await.expect("hung live");
    api.wait_live("other", LIVE).await.expect("other live");
    let viewer = BackgroundReader::start(&gw.http_url("/live/other.flv")).await.expect("viewer of another stream");
    viewer.expect_flowing(15, Duration::from_secs(10)).await.expect("the other viewer plays");
    let tags_before = viewer.count();

    let (hung_url, backup_url) = (hung.rtmp_url("/live/hung"), backup.rtmp_url("/live/hung"));
    let reply = api
        .post_json("/api/v1/streams/hung/pushes", &json!({ "url": hung_url, "backup_urls": [backup_url] }))
        .await
        .expect("POST push");
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id = reply.json.expect("JSON")["id"].as_str().expect("id").to_string();
    wait_live_on(&api, "hung", &id, &hung_url, LIVE).await;
    wait_until(Duration::from_secs(10), "the hung origin saw the publish", || async {
        if hung.published.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("not yet".to_string())
        }
    })
    .await
    .expect("published to the hung origin");
    let stopped_reading = Instant::now();

    // Its socket buffers fill, then nothing moves for 2 s: the push moves to the backup.
    wait_live_on(&api, "hung", &id, &backup_url, Duration::from_secs(30)).await;
    let failover = stopped_reading.elapsed();
    let listed = api.get("/api/v1/streams/hung/pushes").await.expect("list").json.expect("JSON");
    assert_eq!(listed["pushes"][0]["on_backup"], true, "{listed}");
    assert!(listed["pushes"][0]["failovers"].as_u64().unwrap_or(0) >= 1, "{listed}");
    assert!(gw.stderr_tail().contains("took nothing for 2s"), "the move was not for the stall:\n{}", gw.stderr_tail());
    probe_until_h264_aac(&backup_url, 640, 360, 44_100, LIVE).await.expect("the backup carries the stream");

    // The other stream's viewer never waited on the hung origin.
    viewer.expect_flowing(15, Duration::from_secs(5)).await.expect("the other viewer still plays");
    let tags = viewer.tags();
    let gap = common::flv::max_arrival_gap(&tags[tags_before.saturating_sub(1)..]);
    assert!(gap < Duration::from_millis(1500), "the other viewer stalled for {gap:?}");
    assert!(viewer.ended().is_none(), "{:?}", viewer.ended());
    eprintln!(
        "the push left the hung origin {failover:?} after it stopped reading; other viewer's longest gap {gap:?}"
    );
}
