//! Black-box tests of the RTMP family: RTMP and mini-program publish/play, HTTP-FLV, the
//! stream API, CDN push (with retry) and pull, and clean shutdown. Real peers on 127.0.0.1:
//! ffmpeg publishes, ffprobe and an independent FLV parser read, nginx-rtmp is the CDN origin.

use crate::common;

use std::time::Duration;

use common::api::LIVE_FLV_CONSUMER_PROTOCOL;
use common::ffmpeg::probe_until_h264_aac;
use common::flv::check_join_start;
use common::{wait_until, Api, BackgroundReader, Ffmpeg, Gateway, HttpFlvReader, Nginx, PublishOptions};

const PROBE: Duration = Duration::from_secs(20);

/// Waits until the API shows `key` live, failing the test after 20 s.
async fn wait_live(api: &Api, key: &str) -> common::api::StreamInfo {
    api.wait_live(key, Duration::from_secs(20)).await.expect("stream goes live")
}

/// Waits until a relay in `list` reaches `state`; `list` fetches the current relays.
async fn wait_relay_state<F, Fut>(what: &str, id: &str, state: &str, timeout: Duration, list: F) -> common::api::Relay
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Vec<common::api::Relay>>>,
{
    wait_until(timeout, &format!("{what} {id} in state {state}"), || {
        let fetch = list();
        async move {
            let relays = fetch.await.map_err(|e| format!("{e:#}"))?;
            match relays.iter().find(|r| r.id == id) {
                Some(r) if r.state == state => Ok(r.clone()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await
    .expect("relay state")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_publish_plays_by_rtmp_and_http_flv_and_shows_in_the_api() {
    let gw = Gateway::start();
    let api = gw.api();
    let mut ffmpeg = Ffmpeg::publish(&gw.rtmp_url("/live/k"), PublishOptions::default());
    let stream = wait_live(&api, "k").await;

    probe_until_h264_aac(&gw.rtmp_url("/live/k"), 640, 360, 44100, PROBE).await.expect("play by RTMP");
    probe_until_h264_aac(&gw.http_url("/live/k.flv"), 640, 360, 44100, PROBE).await.expect("play by HTTP-FLV");

    assert_eq!(stream.key, "k");
    assert_eq!(stream.publisher.as_ref().map(|p| p.protocol.as_str()), Some("rtmp"));
    let video = stream.video.as_ref().expect("video");
    assert_eq!((video.codec.as_str(), video.width, video.height), ("h264", Some(640), Some(360)));
    let fps = video.fps.expect("frame rate shown");
    assert!((29.0..=31.0).contains(&fps), "fps {fps}");
    let audio = stream.audio.as_ref().expect("audio");
    assert_eq!((audio.codec.as_str(), audio.sample_rate, audio.channels), ("aac", Some(44100), Some(1)));
    assert!(stream.conversions.is_empty(), "rtmp→rtmp/flv copies: {:?}", stream.conversions);

    let listed = api.streams().await.expect("list streams");
    assert!(listed.iter().any(|s| s.key == "k"), "k in {listed:?}");
    assert!(ffmpeg.is_running(), "publisher still running:\n{}", ffmpeg.stderr_tail());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mini_program_publish_plays_from_mini_by_rtmp_and_http_flv() {
    let gw = Gateway::start();
    let api = gw.api();
    let _ffmpeg = Ffmpeg::publish(&gw.rtmp_url("/mini/m"), PublishOptions::default());
    let stream = wait_live(&api, "m").await;
    assert_eq!(stream.publisher.as_ref().map(|p| p.protocol.as_str()), Some("miniprogram"));

    probe_until_h264_aac(&gw.rtmp_url("/mini/m"), 640, 360, 44100, PROBE).await.expect("play /mini by RTMP");
    probe_until_h264_aac(&gw.http_url("/mini/m.flv"), 640, 360, 44100, PROBE).await.expect("play /mini by HTTP-FLV");
    let stream = api.stream("m").await.expect("get m").expect("m exists");
    assert!(stream.conversions.is_empty(), "miniprogram→miniprogram copies: {:?}", stream.conversions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_flv_streams_are_404() {
    let gw = Gateway::start();
    for path in ["/live/unknown.flv", "/mini/unknown.flv"] {
        let reply = gw.api().get(path).await.expect("GET");
        assert_eq!(reply.status, 404, "GET {path}: {}", reply.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_flv_reader_is_counted_as_a_consumer_while_connected() {
    let gw = Gateway::start();
    let api = gw.api();
    let _ffmpeg = Ffmpeg::publish(&gw.rtmp_url("/live/k"), PublishOptions::default());
    let before = wait_live(&api, "k").await;
    assert_eq!(before.total_consumers(), 0, "no consumers yet: {:?}", before.consumers);

    let reader = BackgroundReader::start(&gw.http_url("/live/k.flv")).await.expect("connect .flv");
    reader.expect_flowing(30, Duration::from_secs(10)).await.expect("FLV data flows");
    check_join_start(&reader.tags()).expect("the reader starts at a keyframe");
    let api_ref = &api;
    wait_until(Duration::from_secs(5), "one FLV consumer in the API", || async move {
        let s = api_ref.stream("k").await.map_err(|e| e.to_string())?.ok_or("no stream")?;
        let n = s.consumers.get(LIVE_FLV_CONSUMER_PROTOCOL).copied().unwrap_or(0);
        if n == 1 && s.total_consumers() == 1 {
            Ok(())
        } else {
            Err(format!("{:?}", s.consumers))
        }
    })
    .await
    .expect("consumer counted");

    drop(reader);
    wait_until(Duration::from_secs(10), "consumer gone after the reader disconnects", || async move {
        let s = api_ref.stream("k").await.map_err(|e| e.to_string())?.ok_or("no stream")?;
        if s.total_consumers() == 0 {
            Ok(())
        } else {
            Err(format!("{:?}", s.consumers))
        }
    })
    .await
    .expect("consumer removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiners_start_at_a_cached_keyframe_without_waiting() {
    let gw = Gateway::start();
    // A 5 s GOP: a joiner without a GOP cache would wait 2.5 s on average for a keyframe.
    let opts = PublishOptions { gop: 150, ..PublishOptions::default() };
    let _ffmpeg = Ffmpeg::publish(&gw.rtmp_url("/live/g"), opts);
    wait_live(&gw.api(), "g").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for joiner in 0..3 {
        let mut reader = HttpFlvReader::connect(&gw.http_url("/live/g.flv")).await.expect("connect");
        let mut tags = Vec::new();
        // Read up to the first coded video frame; check_join_start says whether it is a keyframe.
        let first_frame_at = loop {
            let tag = reader.next_tag(Duration::from_secs(8)).await.expect("tag");
            let (frame, arrival) = (tag.is_video_frame(), tag.arrival);
            tags.push(tag);
            if frame {
                break arrival;
            }
        };
        check_join_start(&tags).unwrap_or_else(|e| panic!("joiner {joiner}: {e:#}"));
        let waited = first_frame_at.duration_since(reader.connected_at);
        assert!(waited < Duration::from_secs(1), "joiner {joiner} waited {waited:?} for its first keyframe");
        tokio::time::sleep(Duration::from_millis(1300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_stream_disconnects_its_publisher() {
    let gw = Gateway::start();
    let api = gw.api();
    let mut ffmpeg = Ffmpeg::publish(&gw.rtmp_url("/live/k"), PublishOptions::default());
    wait_live(&api, "k").await;

    api.delete_stream("k").await.expect("DELETE").expect_success("delete stream").expect("2xx");
    let status = ffmpeg.wait_exit(Duration::from_secs(15));
    assert!(status.is_some(), "ffmpeg still publishing after DELETE:\n{}", ffmpeg.stderr_tail());
    let api_ref = &api;
    wait_until(Duration::from_secs(10), "stream k gone from the list", || async move {
        let list = api_ref.streams().await.map_err(|e| e.to_string())?;
        if list.iter().any(|s| s.key == "k" && s.publisher.is_some()) {
            Err(format!("{list:?}"))
        } else {
            Ok(())
        }
    })
    .await
    .expect("stream gone");
    let unknown = api.delete_stream("never-published").await.expect("DELETE unknown");
    assert_eq!(unknown.status, 404, "{}", unknown.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdn_push_relays_to_nginx_and_comes_back_after_the_origin_restarts() {
    let mut nginx = Nginx::start();
    let gw = Gateway::start();
    let api = gw.api();
    let _ffmpeg = Ffmpeg::publish(&gw.rtmp_url("/live/k"), PublishOptions::default());
    wait_live(&api, "k").await;

    let origin = nginx.rtmp_url("/live/k");
    let push = api.create_push("k", &origin).await.expect("create push");
    assert_eq!(push.url, origin);
    let api_ref = &api;
    wait_relay_state("push", &push.id, "live", Duration::from_secs(20), || api_ref.pushes("k")).await;
    probe_until_h264_aac(&origin, 640, 360, 44100, PROBE).await.expect("push reaches nginx");

    nginx.stop();
    let retrying =
        wait_relay_state("push", &push.id, "retrying", Duration::from_secs(20), || api_ref.pushes("k")).await;
    assert!(
        retrying.next_attempt_at.as_ref().is_some_and(|v| !v.is_null()),
        "a retrying push shows its next attempt time: {retrying:?}"
    );

    nginx.restart();
    wait_relay_state("push", &push.id, "live", Duration::from_secs(45), || api_ref.pushes("k")).await;
    probe_until_h264_aac(&origin, 640, 360, 44100, PROBE).await.expect("push is back on nginx");

    api.delete_push("k", &push.id).await.expect("DELETE push").expect_success("delete push").expect("2xx");
    let pushes = api.pushes("k").await.expect("list pushes");
    assert!(pushes.iter().all(|p| p.id != push.id), "deleted push still listed: {pushes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdn_pull_makes_a_local_cdn_stream_that_plays_by_http_flv() {
    let nginx = Nginx::start();
    let source = nginx.rtmp_url("/live/src");
    let _ffmpeg = Ffmpeg::publish(&source, PublishOptions::default());
    probe_until_h264_aac(&source, 640, 360, 44100, PROBE).await.expect("source on nginx");

    let gw = Gateway::start();
    let api = gw.api();
    let pull = api.create_pull("p", &source).await.expect("create pull");
    assert_eq!(pull.stream.as_deref(), Some("p"));
    let api_ref = &api;
    wait_relay_state("pull", &pull.id, "live", Duration::from_secs(20), || api_ref.pulls()).await;
    let stream = wait_live(&api, "p").await;
    assert_eq!(stream.publisher.as_ref().map(|p| p.protocol.as_str()), Some("cdn"));
    probe_until_h264_aac(&gw.http_url("/live/p.flv"), 640, 360, 44100, PROBE).await.expect("pulled stream plays");

    api.delete_pull(&pull.id).await.expect("DELETE pull").expect_success("delete pull").expect("2xx");
    let pulls = api.pulls().await.expect("list pulls");
    assert!(pulls.iter().all(|p| p.id != pull.id), "deleted pull still listed: {pulls:?}");
    wait_until(Duration::from_secs(10), "stream p unpublished after its pull is deleted", || async move {
        match api_ref.stream("p").await {
            Ok(None) => Ok(()),
            Ok(Some(s)) if s.publisher.is_none() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .expect("pull stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_publisher_and_a_reader_exits_cleanly() {
    let mut gw = Gateway::start();
    let _ffmpeg = Ffmpeg::publish(&gw.rtmp_url("/live/k"), PublishOptions::default());
    wait_live(&gw.api(), "k").await;
    let reader = BackgroundReader::start(&gw.http_url("/live/k.flv")).await.expect("connect .flv");
    reader.expect_flowing(30, Duration::from_secs(10)).await.expect("FLV data flows");

    let status = gw.terminate(Duration::from_secs(10));
    match status {
        Some(s) => assert!(s.success(), "exit status after SIGTERM: {s}\n{}", gw.stderr_tail()),
        None => panic!("gateway still running 10 s after SIGTERM"),
    }
}
