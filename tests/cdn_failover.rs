//! CDN pushes with backup destinations against two real nginx-rtmp origins: the push moves to
//! the backup when the primary dies and back once it returns; and a flapping origin is
//! retried promptly, not after a delay that grew while it was briefly up.

mod common;

use std::time::{Duration, Instant};

use common::api::Relay;
use common::ffmpeg::probe_until_h264_aac;
use common::{wait_until, Api, Ffmpeg, Gateway, Nginx, PublishOptions};
use serde_json::json;

const LIVE: Duration = Duration::from_secs(20);

/// Waits until push `id` is live on `url`; returns it and how long that took.
async fn wait_live_on(api: &Api, key: &str, id: &str, url: &str, timeout: Duration) -> (Relay, Duration) {
    let started = Instant::now();
    let relay = wait_until(timeout, &format!("push live on {url}"), || async {
        let list = api.pushes(key).await.map_err(|e| e.to_string())?;
        let p = list.into_iter().find(|p| p.id == id).ok_or("push missing")?;
        if p.state == "live" && p.active_url.as_deref() == Some(url) { Ok(p) } else { Err(format!("{p:?}")) }
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
