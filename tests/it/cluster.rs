//! Cluster mode, black-box: a real `redis-server` and three gateway processes on loopback,
//! with ffmpeg, ffprobe, WHIP/WHEP peers, a WebSocket (H5) viewer and HTTP-FLV readers.

use crate::common;

use std::time::Duration;

use anyhow::{ensure, Context};
use common::ffmpeg::probe_until_h264_aac;
use common::webrtc::{Rejected, WhepOptions, WhepViewer, WhipOptions, WhipPublisher};
use common::{wait_until, Api, BackgroundReader, Ffmpeg, Gateway, PublishOptions, Redis};
use futures_util::StreamExt;
use serde_json::Value;

const MEDIA: Duration = Duration::from_secs(20);
const PROBE: Duration = Duration::from_secs(25);
const SECRET: &str = "test-cluster-secret";

/// A node of a cluster on `redis`, with a secret and a reconnect grace to fail over within.
fn node(redis: &Redis, name: &str) -> Gateway {
    node_with(redis, name, "")
}

/// [`node`] with more configuration (`extra`, YAML).
fn node_with(redis: &Redis, name: &str, extra: &str) -> Gateway {
    let config = format!(
        "cluster:\n  redis: \"{}\"\n  node: \"{name}\"\n  relay: \"127.0.0.1:0\"\n  secret: \"{SECRET}\"\n{extra}",
        redis.url()
    );
    Gateway::start_with(&["--reconnect-grace", "12"], Some(&config))
}

async fn json(api: &Api, path: &str) -> Option<Value> {
    let reply = api.get(path).await.ok()?;
    (reply.status == 200).then_some(reply.json).flatten()
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The value of an unlabelled gauge in `/metrics`.
async fn metric(api: &Api, name: &str) -> Option<f64> {
    let body = api.get("/metrics").await.ok()?.body;
    body.lines().find_map(|l| l.strip_prefix(&format!("{name} ")).and_then(|v| v.trim().parse().ok()))
}

async fn wait_metric(api: &Api, name: &str, want: f64, timeout: Duration) -> anyhow::Result<()> {
    wait_until(timeout, &format!("{name} = {want}"), || async move {
        match metric(api, name).await {
            Some(v) if v == want => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// Reads an H5 viewer's WebSocket for `seconds` and ffprobes what came: (video, audio) codecs.
async fn h5_codecs(gw: &Gateway, key: &str, seconds: u64) -> anyhow::Result<(String, String)> {
    let url = gw.http_url(&format!("/h5/{key}")).replacen("http://", "ws://", 1);
    let (mut ws, _) = tokio::time::timeout(Duration::from_secs(20), tokio_tungstenite::connect_async(&url))
        .await
        .context("H5 connect timed out")??;
    let mut ts = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let tokio_tungstenite::tungstenite::Message::Binary(b) = message? {
            ts.extend_from_slice(&b);
        }
    }
    ensure!(ts.len() > 188 * 10, "only {} bytes of MPEG-TS", ts.len());
    let dir = common::TempDir::new("h5-capture");
    let path = dir.path().join("h5.ts");
    std::fs::write(&path, &ts)?;
    let probe = common::ffprobe(&path.display().to_string(), PROBE).await?;
    let codec = |s: Option<&common::ffmpeg::ProbeStream>| s.and_then(|s| s.codec_name.clone()).unwrap_or_default();
    Ok((codec(probe.video()), codec(probe.audio())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_on_any_node_get_their_codecs_converted_where_they_watch() {
    let redis = Redis::start();
    let (a, b, c) = (node(&redis, "a"), node(&redis, "b"), node(&redis, "c"));

    // An RTMP teacher on node A.
    let _teacher = Ffmpeg::publish(&a.rtmp_url("/live/rtmp-class"), PublishOptions::default());
    a.api().wait_live("rtmp-class", MEDIA).await.expect("live on A");
    probe_until_h264_aac(&b.rtmp_url("/live/rtmp-class"), 640, 360, 44100, PROBE).await.expect("RTMP on B");
    probe_until_h264_aac(&c.http_url("/live/rtmp-class.flv"), 640, 360, 44100, PROBE).await.expect("HTTP-FLV on C");
    let (video, audio) = h5_codecs(&c, "rtmp-class", 4).await.expect("H5 on C");
    assert_eq!((video.as_str(), audio.as_str()), ("mpeg1video", "mp2"));
    let viewer = WhepViewer::start(&b.http_url("/whep/rtmp-class"), WhepOptions::default()).await.expect("WHEP on B");
    viewer.wait_decoded(30, 20, MEDIA).await.expect("WHEP decodes");
    assert_eq!(viewer.video_codec().as_deref(), Some("H264"));
    assert_eq!(viewer.audio_codec().as_deref(), Some("OPUS"));
    // B relays it from A and converts AAC->Opus itself; A converts nothing for B.
    let on_b = json(&b.api(), "/api/v1/streams/rtmp-class").await.expect("stream on B");
    assert_eq!(str_at(&on_b, "/owner"), "a", "{on_b}");
    assert_eq!(str_at(&on_b, "/publisher/transport"), "relay", "{on_b}");
    assert_eq!(str_at(&on_b, "/publisher/protocol"), "rtmp", "{on_b}");
    let converted_on_b: Vec<String> = on_b["conversions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| format!("{}->{}", str_at(c, "/from"), str_at(c, "/to")))
        .collect();
    assert!(converted_on_b.contains(&"aac->opus".to_string()), "{converted_on_b:?}");
    let on_a = json(&a.api(), "/api/v1/streams/rtmp-class").await.expect("stream on A");
    assert_eq!(str_at(&on_a, "/owner"), "a");
    assert!(on_a["conversions"].as_array().is_none_or(|l| l.is_empty()), "A converts nothing to relay: {on_a}");
    assert_eq!(viewer.stop().await.expect("DELETE"), 200);

    // A WHIP teacher on node B: still `webrtc` on every node, Opus->AAC made on A for A's viewer.
    let whip =
        WhipPublisher::start(&b.http_url("/whip/webrtc-class"), WhipOptions::default()).await.expect("WHIP on B");
    b.api().wait_live("webrtc-class", MEDIA).await.expect("live on B");
    probe_until_h264_aac(&a.rtmp_url("/live/webrtc-class"), 320, 240, 48000, PROBE).await.expect("RTMP on A");
    let on_a = json(&a.api(), "/api/v1/streams/webrtc-class").await.expect("stream on A");
    assert_eq!((str_at(&on_a, "/owner"), str_at(&on_a, "/publisher/protocol")), ("b", "webrtc"), "{on_a}");
    let on_b = json(&b.api(), "/api/v1/streams/webrtc-class").await.expect("stream on B");
    assert!(on_b["conversions"].as_array().is_none_or(|l| l.is_empty()), "B converts nothing to relay: {on_b}");
    probe_until_h264_aac(&c.http_url("/live/webrtc-class.flv"), 320, 240, 48000, PROBE).await.expect("HTTP-FLV on C");
    drop(whip);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_on_one_node_share_one_relay_and_a_key_has_one_publisher_cluster_wide() {
    let redis = Redis::start();
    let (a, b, c) = (node(&redis, "a"), node(&redis, "b"), node(&redis, "c"));
    let _teacher = Ffmpeg::publish(&a.rtmp_url("/live/shared"), PublishOptions::default());
    a.api().wait_live("shared", MEDIA).await.expect("live on A");

    let mut readers = Vec::new();
    for _ in 0..3 {
        let reader = BackgroundReader::start(&b.http_url("/live/shared.flv")).await.expect("HTTP-FLV on B");
        readers.push(reader);
    }
    for reader in &readers {
        reader.expect_flowing(30, MEDIA).await.expect("frames on B");
    }
    wait_metric(&b.api(), "interop_cluster_links_in", 1.0, MEDIA).await.expect("one link into B");
    wait_metric(&a.api(), "interop_cluster_links_out", 1.0, MEDIA).await.expect("one link out of A");
    let on_a = json(&a.api(), "/api/v1/streams/shared").await.expect("stream on A");
    let relays: Vec<&Value> =
        on_a["sessions"].as_array().into_iter().flatten().filter(|s| str_at(s, "/transport") == "relay").collect();
    assert_eq!(relays.len(), 1, "{on_a}");

    // The whole cluster, from node C.
    let cluster = json(&c.api(), "/api/v1/cluster").await.expect("cluster view");
    let names: Vec<&str> = cluster["nodes"].as_array().into_iter().flatten().map(|n| str_at(n, "/node")).collect();
    assert_eq!(names, ["a", "b", "c"], "{cluster}");
    let everywhere = wait_until(MEDIA, "cluster streams show B's viewers", || async {
        let v = json(&c.api(), "/api/v1/streams?scope=cluster").await.ok_or("no answer")?;
        let s = v["streams"].as_array().and_then(|l| l.iter().find(|s| str_at(s, "/key") == "shared").cloned());
        match s {
            Some(s) if s.pointer("/viewers/b").and_then(Value::as_u64) == Some(3) => Ok(s),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .expect("cluster streams");
    assert_eq!(str_at(&everywhere, "/owner"), "a");

    // A second publisher of the live key, on another node, is refused.
    let mut second = Ffmpeg::publish(&c.rtmp_url("/live/shared"), PublishOptions::default());
    let exited = second.wait_exit(Duration::from_secs(15));
    assert!(exited.is_some_and(|s| !s.success()), "the second RTMP publisher was not refused");
    let refused = WhipPublisher::start(&b.http_url("/whip/shared"), WhipOptions::default()).await;
    let status = refused.err().and_then(|e| e.downcast_ref::<Rejected>().map(|r| r.status));
    assert_eq!(status, Some(409));
    for reader in &readers {
        reader.expect_flowing(10, MEDIA).await.expect("B's viewers undisturbed");
    }

    // The relay goes a grace period after the last viewer on B left.
    drop(readers);
    wait_metric(&b.api(), "interop_cluster_links_in", 0.0, Duration::from_secs(20)).await.expect("B's link closed");
    wait_metric(&a.api(), "interop_cluster_links_out", 0.0, Duration::from_secs(10)).await.expect("A serves none");
}

/// Waits until `gw` has the stream from a publisher of its own (not relayed).
async fn published_on(gw: &Gateway, key: &str) {
    let path = format!("/api/v1/streams/{key}");
    let path = path.as_str();
    wait_until(MEDIA, "the node publishes the stream itself", || async move {
        let s = json(&gw.api(), path).await.ok_or("not live")?;
        (str_at(&s, "/publisher/transport") == "rtmp").then_some(()).ok_or(format!("{s}"))
    })
    .await
    .expect("publisher on the node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publisher_moving_or_its_node_killed_brings_every_viewer_back() {
    let redis = Redis::start();
    let (a, b, mut c) = (node(&redis, "a"), node(&redis, "b"), node(&redis, "c"));
    let teacher = Ffmpeg::publish(&a.rtmp_url("/live/failover"), PublishOptions::default());
    a.api().wait_live("failover", MEDIA).await.expect("live on A");
    let on_a = BackgroundReader::start(&a.http_url("/live/failover.flv")).await.expect("viewer on A");
    let on_b = BackgroundReader::start(&b.http_url("/live/failover.flv")).await.expect("viewer on B");
    on_a.expect_flowing(30, MEDIA).await.expect("A plays");
    on_b.expect_flowing(30, MEDIA).await.expect("B plays");

    // The teacher's software reconnects, to another node (as a load balancer would send it):
    // the viewers of the node it left and of the others continue.
    drop(teacher);
    let teacher = Ffmpeg::publish(&c.rtmp_url("/live/failover"), PublishOptions::default());
    published_on(&c, "failover").await;
    on_a.expect_flowing(60, MEDIA).await.expect("A's viewer continues");
    on_b.expect_flowing(60, MEDIA).await.expect("B's viewer continues");
    for (gw, name) in [(&a, "A"), (&b, "B")] {
        let s = json(&gw.api(), "/api/v1/streams/failover").await.expect("stream");
        assert_eq!(str_at(&s, "/owner"), "c", "{name}: {s}");
    }

    // Now the owner dies (kill -9) and the teacher comes back on A.
    c.kill();
    drop(teacher);
    let _teacher = Ffmpeg::publish(&a.rtmp_url("/live/failover"), PublishOptions::default());
    published_on(&a, "failover").await;
    on_a.expect_flowing(60, MEDIA).await.expect("A's viewer continues");
    on_b.expect_flowing(60, MEDIA).await.expect("B's viewer continues");
    assert_eq!(on_a.ended(), None);
    assert_eq!(on_b.ended(), None);
    let relayed = json(&b.api(), "/api/v1/streams/failover").await.expect("stream on B");
    assert_eq!(str_at(&relayed, "/owner"), "a", "{relayed}");
    assert!(redis.cli(&["GET", "igw:claim:failover"]).starts_with("a/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_nodes_keep_their_streams_and_refuse_new_publishes_until_it_is_back() {
    let mut redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let _teacher = Ffmpeg::publish(&a.rtmp_url("/live/steady"), PublishOptions::default());
    a.api().wait_live("steady", MEDIA).await.expect("live on A");
    let viewer = BackgroundReader::start(&b.http_url("/live/steady.flv")).await.expect("viewer on B");
    viewer.expect_flowing(30, MEDIA).await.expect("B plays");

    redis.kill();
    wait_until(MEDIA, "A says it is degraded", || async {
        let body = a.api().get("/healthz").await.map_err(|e| e.to_string())?.body;
        body.starts_with("degraded").then_some(()).ok_or(body)
    })
    .await
    .expect("healthz");
    viewer.expect_flowing(60, MEDIA).await.expect("the relayed viewer continues without Redis");
    let refused = WhipPublisher::start(&b.http_url("/whip/newcomer"), WhipOptions::default()).await;
    let status = refused.err().and_then(|e| e.downcast_ref::<Rejected>().map(|r| r.status));
    assert_eq!(status, Some(503), "a publish that cannot be claimed is refused");

    redis.restart();
    wait_until(MEDIA, "A's claim written again", || async {
        let v = redis.cli(&["GET", "igw:claim:steady"]);
        v.starts_with("a/").then_some(()).ok_or(v)
    })
    .await
    .expect("claim restored");
    assert_eq!(a.api().get("/healthz").await.expect("healthz").body, "ok");
    viewer.expect_flowing(30, MEDIA).await.expect("still playing");
    let whip =
        WhipPublisher::start(&b.http_url("/whip/newcomer"), WhipOptions::default()).await.expect("publish again");
    b.api().wait_live("newcomer", MEDIA).await.expect("newcomer live");
    probe_until_h264_aac(&a.http_url("/live/newcomer.flv"), 320, 240, 48000, PROBE).await.expect("played on A");
    drop(whip);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_push_runs_once_on_the_owner_and_kicks_and_reloads_reach_every_node() {
    let redis = Redis::start();
    let nginx = common::Nginx::start();
    let pushes = format!("pushes:\n  - {{ stream: lesson, url: \"{}\" }}\n", nginx.rtmp_url("/live/lesson"));
    let (a, b, c) = (node_with(&redis, "a", &pushes), node_with(&redis, "b", &pushes), node_with(&redis, "c", &pushes));
    let _teacher = Ffmpeg::publish(&a.rtmp_url("/live/lesson"), PublishOptions::default());
    a.api().wait_live("lesson", MEDIA).await.expect("live on A");
    let viewer = BackgroundReader::start(&b.http_url("/live/lesson.flv")).await.expect("viewer on B");
    viewer.expect_flowing(30, MEDIA).await.expect("B plays");

    // The CDN gets the stream from its owner only; the other nodes' pushes wait.
    probe_until_h264_aac(&nginx.rtmp_url("/live/lesson"), 640, 360, 44100, PROBE).await.expect("CDN play");
    let state = |gw: &Gateway| {
        let api = gw.api();
        async move { api.pushes("lesson").await.ok().and_then(|p| p.first().map(|r| r.state.clone())) }
    };
    assert_eq!(state(&a).await.as_deref(), Some("live"));
    assert_eq!(state(&b).await.as_deref(), Some("waiting"), "B relays the stream and does not push it");
    assert_eq!(state(&c).await.as_deref(), Some("waiting"));

    // A matrix reload asked of one node reaches all.
    let reply = c.api().post_json("/api/v1/matrix/reload?scope=cluster", &serde_json::json!({})).await.expect("reload");
    assert_eq!(reply.status, 200, "{}", reply.body);
    for gw in [&a, &b] {
        wait_until(Duration::from_secs(10), "the other node reloaded", || async move {
            let m = json(&gw.api(), "/api/v1/matrix").await.ok_or("no matrix")?;
            (m["generation"].as_u64() == Some(1)).then_some(()).ok_or(format!("{}", m["generation"]))
        })
        .await
        .expect("reloaded");
    }

    // A kick asked of a node that only relays the stream disconnects its publisher.
    let reply = b.api().delete("/api/v1/streams/lesson?scope=cluster").await.expect("kick");
    assert_eq!(reply.status, 204, "{}", reply.body);
    for gw in [&a, &b] {
        wait_until(Duration::from_secs(10), "the stream gone", || async move {
            match gw.api().stream("lesson").await {
                Ok(None) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await
        .expect("kicked everywhere");
    }
}
