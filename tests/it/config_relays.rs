//! Pushes and pulls declared in the configuration file start with the gateway, and a push
//! whose origin refuses the stream shows why it is retrying.

use crate::common;

use std::time::Duration;

use common::ffmpeg::probe_until_h264_aac;
use common::{wait_until, Ffmpeg, Gateway, Nginx, PublishOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_declared_push_and_pull_run_at_start() {
    let nginx = Nginx::start();
    let upstream = nginx.rtmp_url("/live/up");
    let _source = Ffmpeg::publish(&upstream, PublishOptions::default());
    probe_until_h264_aac(&upstream, 640, 360, 44_100, Duration::from_secs(20)).await.expect("source on nginx");

    let config = format!(
        "relay: {{ retry_min_seconds: 0.5, retry_max_seconds: 2 }}\n\
         pulls:\n  - {{ stream: pulled, url: \"{upstream}\" }}\n\
         pushes:\n  - {{ stream: pulled, url: \"{}\" }}\n",
        nginx.rtmp_url("/live/back")
    );
    let gw = Gateway::start_with(&[], Some(&config));
    let api = gw.api();
    let stream = api.wait_live("pulled", Duration::from_secs(20)).await.expect("pulled stream is live");
    assert_eq!(stream.publisher.map(|p| p.protocol).as_deref(), Some("cdn"));
    // The declared push relays the pulled stream back to the origin under another name.
    probe_until_h264_aac(&nginx.rtmp_url("/live/back"), 640, 360, 44_100, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("declared push reaches nginx: {e:#}\n{}", gw.stderr_tail()));
    let pushes = api.pushes("pulled").await.expect("list pushes");
    assert_eq!(pushes.len(), 1);
    assert_eq!(pushes[0].state, "live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_push_retries_and_says_why() {
    let nginx = Nginx::start();
    let gw = Gateway::start_with(&[], Some("relay: { retry_min_seconds: 0.5, retry_max_seconds: 1 }\n"));
    let api = gw.api();
    let _ffmpeg = Ffmpeg::publish(&gw.rtmp_url("/live/k"), PublishOptions::default());
    api.wait_live("k", Duration::from_secs(20)).await.expect("k live");
    // nginx has no application `nope`: it refuses the connect.
    let push = api.create_push("k", &nginx.rtmp_url("/nope/k")).await.expect("create push");
    let relay = wait_until(Duration::from_secs(15), "push retrying with a reason", || async {
        let list = api.pushes("k").await.map_err(|e| e.to_string())?;
        let p = list.into_iter().find(|p| p.id == push.id).ok_or("push missing")?;
        if p.state == "retrying" && p.reason.is_some() {
            Ok(p)
        } else {
            Err(format!("{p:?}"))
        }
    })
    .await
    .expect("refused push retries");
    assert!(relay.next_attempt_at.as_ref().is_some_and(|v| v.is_number()), "{relay:?}");
}
