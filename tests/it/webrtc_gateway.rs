//! The gateway's WebRTC side, black-box: WHIP publishers and WHEP viewers (webrtcbin peers in
//! this process, ICE on 127.0.0.1 only) against the gateway binary, with ffmpeg, ffprobe, an
//! FLV reader and nginx-rtmp on the other side of the bridge.

use crate::common;

use std::time::{Duration, Instant};

use common::ffmpeg::probe_until_h264_aac;
use common::webrtc::{
    candidate_addresses, offered_media, Rejected, VideoFormat, WhepOptions, WhepViewer, WhipOptions, WhipPublisher,
};
use common::{wait_until, Api, BackgroundReader, Ffmpeg, Gateway, Nginx, PublishOptions, TagKind};
use serde_json::Value;

const MEDIA: Duration = Duration::from_secs(20);
const PROBE: Duration = Duration::from_secs(25);

/// The stream as raw JSON (the harness's typed view has no conversion reasons).
async fn stream_json(api: &Api, key: &str) -> Option<Value> {
    let reply = api.get(&format!("/api/v1/streams/{key}")).await.ok()?;
    (reply.status == 200).then_some(reply.json).flatten()
}

/// `(track, from, to, reason, consumers)` of the conversions running for `key`.
async fn conversions(api: &Api, key: &str) -> Vec<(String, String, String, String, u64)> {
    let Some(json) = stream_json(api, key).await else {
        return Vec::new();
    };
    let field = |c: &Value, k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    json.get("conversions")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|c| {
                    let consumers = c.get("consumers").and_then(Value::as_u64).unwrap_or(0);
                    (field(c, "track"), field(c, "from"), field(c, "to"), field(c, "reason"), consumers)
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_gone(api: &Api, key: &str, timeout: Duration) -> anyhow::Result<()> {
    wait_until(timeout, &format!("stream {key} gone"), || async move {
        match api.stream(key).await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

async fn whip(gw: &Gateway, key: &str, opts: WhipOptions) -> WhipPublisher {
    match WhipPublisher::start(&gw.http_url(&format!("/whip/{key}")), opts).await {
        Ok(p) => p,
        Err(e) => panic!("WHIP publish to {key}: {e:#}"),
    }
}

async fn whep(gw: &Gateway, key: &str) -> WhepViewer {
    match WhepViewer::start(&gw.http_url(&format!("/whep/{key}")), WhepOptions::default()).await {
        Ok(v) => v,
        Err(e) => panic!("WHEP play of {key}: {e:#}"),
    }
}

/// The status of a refused WHIP/WHEP start.
fn rejected_status(result: anyhow::Result<impl Sized>) -> (u16, String) {
    match result {
        Ok(_) => panic!("expected a refusal, got 201"),
        Err(e) => match e.downcast_ref::<Rejected>() {
            Some(r) => (r.status, r.body.clone()),
            None => panic!("expected an HTTP refusal, got {e:#}"),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_publish_reaches_rtmp_http_flv_and_the_cdn_as_h264_aac() {
    let gw = Gateway::start();
    let api = gw.api();
    let publisher = whip(&gw, "class1", WhipOptions::default()).await;

    // The answer: only the configured address, the offered H.264 payload type and profile.
    assert_eq!(candidate_addresses(publisher.answer_sdp()), ["127.0.0.1"], "{}", publisher.answer_sdp());
    let offered = offered_media(publisher.offer_sdp());
    let answered = offered_media(publisher.answer_sdp());
    let offered_h264 = offered[0].codecs.iter().find(|c| c.name == "H264").expect("H264 offered");
    let answered_video: Vec<_> = answered[0].codecs.iter().filter(|c| !c.name.eq_ignore_ascii_case("rtx")).collect();
    assert_eq!(answered_video.len(), 1, "one video payload type answered:\n{}", publisher.answer_sdp());
    assert_eq!((answered_video[0].name.as_str(), answered_video[0].pt), ("H264", offered_h264.pt));
    let profile = |fmtp: &str| fmtp.split(';').find(|p| p.starts_with("profile-level-id=")).map(str::to_string);
    assert_eq!(
        profile(&answered_video[0].fmtp),
        profile(&offered_h264.fmtp),
        "answered profile\n--- offer\n{}\n--- answer\n{}",
        publisher.offer_sdp(),
        publisher.answer_sdp()
    );
    assert!(answered_video[0].fmtp.contains("packetization-mode=1"));
    assert!(publisher.answer_sdp().contains("nack pli"), "PLI feedback answered");
    assert_eq!(answered[1].codecs.iter().map(|c| c.name.to_ascii_uppercase()).collect::<Vec<_>>(), ["OPUS"]);

    publisher.wait_connected(MEDIA).await.expect("ICE+DTLS connected");
    let stream = api.wait_live("class1", MEDIA).await.expect("live");
    assert_eq!(stream.publisher.as_ref().map(|p| p.protocol.as_str()), Some("webrtc"));
    let video = stream.video.as_ref().expect("video");
    assert_eq!((video.codec.as_str(), video.width, video.height), ("h264", Some(320), Some(240)));
    assert_eq!(stream.audio.as_ref().map(|a| a.codec.as_str()), Some("opus"));

    probe_until_h264_aac(&gw.rtmp_url("/live/class1"), 320, 240, 48000, PROBE).await.expect("RTMP play");
    probe_until_h264_aac(&gw.http_url("/live/class1.flv"), 320, 240, 48000, PROBE).await.expect("HTTP-FLV play");

    let nginx = Nginx::start();
    api.create_push("class1", &nginx.rtmp_url("/live/class1")).await.expect("push to the CDN");
    probe_until_h264_aac(&nginx.rtmp_url("/live/class1"), 320, 240, 48000, PROBE).await.expect("CDN play");
    let running = conversions(&api, "class1").await;
    assert_eq!(
        running.iter().map(|c| (c.0.as_str(), c.1.as_str(), c.2.as_str())).collect::<Vec<_>>(),
        [("audio", "opus", "aac")],
        "only audio converts toward RTMP and the CDN; video is copied"
    );

    let location = publisher.location().cloned().expect("location");
    assert!(location.path().starts_with("/whip/class1/"), "{location}");
    assert_eq!(publisher.stop().await.expect("DELETE"), 200);
    wait_gone(&api, "class1", Duration::from_secs(5)).await.expect("DELETE ends the stream");
    let again = api.delete(location.path()).await.expect("second DELETE");
    assert_eq!(again.status, 404, "{}", again.body);
}

/// Lip sync across the bridge: in the FLV a viewer gets, audio (converted to AAC) and video
/// keep their capture alignment (each track's smallest arrival-minus-timestamp is the same
/// within 150 ms), and neither track's timestamps go backwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_audio_and_video_share_one_timeline() {
    let gw = Gateway::start();
    let api = gw.api();
    let publisher = whip(&gw, "sync", WhipOptions::default()).await;
    publisher.wait_connected(MEDIA).await.expect("connected");
    api.wait_live("sync", MEDIA).await.expect("live");
    let reader = BackgroundReader::start(&gw.http_url("/live/sync.flv")).await.expect("HTTP-FLV");
    reader.expect_flowing(200, MEDIA).await.expect("tags flow");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let tags = reader.tags();
    for kind in [TagKind::Video, TagKind::Audio] {
        let ts: Vec<u32> =
            tags.iter().filter(|t| t.kind == kind && !t.sequence_header).map(|t| t.timestamp_ms).collect();
        assert!(ts.len() > 50, "{kind:?}: {} tags", ts.len());
        assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{kind:?} timestamps go backwards: {ts:?}");
    }
    // Skip the cached GOP sent at join (it arrives in a burst).
    let start = reader.connected_at + Duration::from_secs(2);
    let lateness = |kind: TagKind| {
        tags.iter()
            .filter(|t| t.kind == kind && !t.sequence_header && t.arrival > start)
            .map(|t| t.arrival.duration_since(reader.connected_at).as_millis() as i64 - t.timestamp_ms as i64)
            .min()
            .expect("tags after the join")
    };
    let (video, audio) = (lateness(TagKind::Video), lateness(TagKind::Audio));
    eprintln!("arrival minus timestamp: video {video} ms, audio {audio} ms");
    assert!((audio - video).abs() < 150, "audio is off video by {} ms (video {video}, audio {audio})", audio - video);
    drop(publisher);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_publish_plays_by_whep_and_bframes_are_reencoded_only_for_webrtc() {
    for bframes in [false, true] {
        let gw = Gateway::start();
        let api = gw.api();
        let _ffmpeg =
            Ffmpeg::publish(&gw.rtmp_url("/live/teacher"), PublishOptions { bframes, ..PublishOptions::default() });
        api.wait_live("teacher", MEDIA).await.expect("live");
        let viewer = whep(&gw, "teacher").await;
        assert_eq!(candidate_addresses(viewer.answer_sdp()), ["127.0.0.1"]);
        viewer.wait_decoded(60, 40, MEDIA).await.unwrap_or_else(|e| panic!("bframes={bframes}: {e:#}"));
        assert_eq!(viewer.video_codec().as_deref(), Some("H264"));
        assert_eq!(viewer.audio_codec().as_deref(), Some("OPUS"));
        assert_eq!(viewer.video_size(), Some((640, 360)));

        let running = conversions(&api, "teacher").await;
        let audio: Vec<_> = running.iter().filter(|c| c.0 == "audio").collect();
        assert_eq!(audio.len(), 1, "{running:?}");
        assert_eq!((audio[0].1.as_str(), audio[0].2.as_str()), ("aac", "opus"));
        let video: Vec<_> = running.iter().filter(|c| c.0 == "video").collect();
        if bframes {
            assert_eq!(video.len(), 1, "B-frames are re-encoded for WebRTC: {running:?}");
            assert_eq!((video[0].1.as_str(), video[0].2.as_str(), video[0].3.as_str()), ("h264", "h264", "bframes"));
        } else {
            assert!(video.is_empty(), "video without B-frames is copied: {running:?}");
        }
        // An RTMP player of the same stream gets the source video, copied.
        probe_until_h264_aac(&gw.rtmp_url("/live/teacher"), 640, 360, 44100, PROBE).await.expect("RTMP play");
        assert_eq!(conversions(&api, "teacher").await.iter().filter(|c| c.0 == "video").count(), usize::from(bframes));
        assert_eq!(viewer.stop().await.expect("DELETE"), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_opus_to_aac_conversion_serves_every_flv_viewer_and_goes_after_they_leave() {
    let gw = Gateway::start_with(&[], Some("hub: { grace_seconds: 1 }\n"));
    let api = gw.api();
    let publisher = whip(&gw, "room", WhipOptions::default()).await;
    publisher.wait_connected(MEDIA).await.expect("connected");
    api.wait_live("room", MEDIA).await.expect("live");

    let mut readers = Vec::new();
    for _ in 0..3 {
        readers.push(BackgroundReader::start(&gw.http_url("/live/room.flv")).await.expect("HTTP-FLV"));
    }
    let viewers = vec![whep(&gw, "room").await, whep(&gw, "room").await];
    for r in &readers {
        r.expect_flowing(60, MEDIA).await.expect("FLV viewer gets media");
    }
    for v in &viewers {
        v.wait_decoded(30, 20, MEDIA).await.expect("WHEP viewer decodes");
        assert_eq!(v.video_codec().as_deref(), Some("H264"));
    }
    let stream = api.stream("room").await.expect("API").expect("live");
    assert_eq!(stream.consumers.get("rtmp"), Some(&3), "{:?}", stream.consumers);
    assert_eq!(stream.consumers.get("webrtc"), Some(&2), "{:?}", stream.consumers);
    let running = conversions(&api, "room").await;
    assert_eq!(running.len(), 1, "one conversion for all: {running:?}");
    assert_eq!(running[0], ("audio".into(), "opus".into(), "aac".into(), "rule".into(), 3));

    drop(readers);
    for v in viewers {
        assert_eq!(v.stop().await.expect("DELETE"), 200);
    }
    wait_until(Duration::from_secs(10), "consumers gone and the conversion torn down", || async {
        let stream = api.stream("room").await.map_err(|e| e.to_string())?.ok_or("stream gone")?;
        let running = conversions(&api, "room").await;
        if stream.total_consumers() == 0 && running.is_empty() {
            Ok(())
        } else {
            Err(format!("consumers {:?}, conversions {running:?}", stream.consumers))
        }
    })
    .await
    .expect("grace period over");
    drop(publisher);
}

/// A hand-written offer (as a browser's, trimmed): no candidates, so ICE never connects.
fn offer(direction: &str, video: &str, audio: &str) -> String {
    let fingerprint =
        "sha-256 5D:18:DA:15:35:29:CB:E3:1F:68:E5:E0:FE:D4:C5:0E:01:0B:04:CB:2B:1A:B1:B8:1D:28:B3:CA:10:54:2A:16";
    let common = format!(
        "c=IN IP4 0.0.0.0\r\na=ice-ufrag:wxyz\r\na=ice-pwd:0123456789abcdefghijklmn\r\na=fingerprint:{fingerprint}\r\n\
         a=setup:actpass\r\na=rtcp-mux\r\na={direction}\r\n"
    );
    format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
         m=video 9 UDP/TLS/RTP/SAVPF 102\r\n{common}a=mid:0\r\n{video}\
         m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n{common}a=mid:1\r\n{audio}"
    )
}

const H264: &str = "a=rtpmap:102 H264/90000\r\na=rtcp-fb:102 nack pli\r\n\
    a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";
const OPUS: &str = "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n";

async fn post_sdp(gw: &Gateway, path: &str, sdp: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.http_url(path))
        .header("Content-Type", "application/sdp")
        .header("Origin", "http://classroom.example")
        .body(sdp.to_string())
        .send()
        .await
        .expect("POST")
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_fitting_status_and_cors_everywhere() {
    let gw = Gateway::start();
    let api = gw.api();

    let garbage = post_sdp(&gw, "/whip/k", "this is not SDP").await;
    assert_eq!(garbage.status(), 400);
    assert_eq!(header(&garbage, "access-control-allow-origin"), "*", "CORS on errors too");
    assert!(garbage.text().await.unwrap().contains("v=0"), "the reason is given");
    let no_ice = post_sdp(&gw, "/whip/k", &offer("sendonly", H264, OPUS).replace("a=ice-pwd", "a=x-ice-pwd")).await;
    assert_eq!(no_ice.status(), 400);
    assert!(no_ice.text().await.unwrap().contains("ice-pwd"));

    let hevc = "a=rtpmap:102 H265/90000\r\n";
    let g722 = "a=rtpmap:111 G722/8000\r\n";
    let unusable = post_sdp(&gw, "/whip/k", &offer("sendonly", hevc, g722)).await;
    assert_eq!(unusable.status(), 406);
    let body = unusable.text().await.unwrap();
    assert!(body.contains("H265/90000") && body.contains("G722/8000"), "names what was offered: {body}");
    assert!(api.stream("k").await.unwrap().is_none(), "a refused offer publishes nothing");

    let wrong_type = reqwest::Client::new()
        .post(gw.http_url("/whip/k"))
        .header("Content-Type", "text/plain")
        .body("v=0")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 415);

    // WHIP on a live key.
    let publisher = whip(&gw, "live1", WhipOptions::default()).await;
    let (status, body) =
        rejected_status(WhipPublisher::start(&gw.http_url("/whip/live1"), WhipOptions::default()).await);
    assert_eq!(status, 409, "{body}");
    drop(publisher);

    let (status, body) = rejected_status(WhepViewer::start(&gw.http_url("/whep/nobody"), WhepOptions::default()).await);
    assert_eq!(status, 404, "{body}");

    for path in ["/whip/k/0123456789abcdef", "/whep/k/0123456789abcdef"] {
        let reply = api.delete(path).await.unwrap();
        assert_eq!(reply.status, 404, "DELETE {path}: {}", reply.body);
    }

    for path in ["/whip/k", "/whep/k", "/whip/k/0123456789abcdef"] {
        let preflight = reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, gw.http_url(path))
            .header("Origin", "http://classroom.example")
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type,authorization")
            .send()
            .await
            .unwrap();
        assert!(preflight.status().is_success(), "OPTIONS {path}: {}", preflight.status());
        assert_eq!(header(&preflight, "access-control-allow-origin"), "*");
        let methods = header(&preflight, "access-control-allow-methods");
        assert!(methods.contains("POST") && methods.contains("DELETE"), "{methods}");
        let headers = header(&preflight, "access-control-allow-headers").to_ascii_lowercase();
        assert!(headers.contains("content-type") && headers.contains("authorization"), "{headers}");
        assert!(header(&preflight, "access-control-expose-headers").contains("Location"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_that_never_connects_is_given_up_and_freed() {
    let gw = Gateway::start_with(&[], Some("webrtc: { ice_timeout_seconds: 2 }\n"));
    let api = gw.api();

    // WHIP: the stream exists while ICE tries, then goes.
    let reply = post_sdp(&gw, "/whip/lost", &offer("sendonly", H264, OPUS)).await;
    assert_eq!(reply.status(), 201);
    assert_eq!(header(&reply, "content-type"), "application/sdp");
    assert_eq!(header(&reply, "access-control-expose-headers"), "Location");
    let location = header(&reply, "location").to_string();
    assert!(location.starts_with("/whip/lost/"), "{location}");
    let answer = reply.text().await.unwrap();
    assert!(answer.contains("a=fmtp:102") && answer.contains("profile-level-id=42e01f"), "{answer}");
    assert_eq!(candidate_addresses(&answer), ["127.0.0.1"]);
    let started = Instant::now();
    assert!(api.stream("lost").await.unwrap().is_some(), "live while ICE tries");
    wait_gone(&api, "lost", Duration::from_secs(6)).await.expect("given up");
    assert!(started.elapsed() >= Duration::from_millis(1500), "not before the timeout: {:?}", started.elapsed());
    assert_eq!(api.delete(&location).await.unwrap().status, 404, "the session is freed");

    // WHEP: the consumer is counted while ICE tries, then removed.
    let _ffmpeg = Ffmpeg::publish(&gw.rtmp_url("/live/src"), PublishOptions::default());
    api.wait_live("src", MEDIA).await.expect("live");
    let reply = post_sdp(&gw, "/whep/src", &offer("recvonly", H264, OPUS)).await;
    assert_eq!(reply.status(), 201);
    let location = header(&reply, "location").to_string();
    assert_eq!(api.stream("src").await.unwrap().unwrap().consumers.get("webrtc"), Some(&1));
    wait_until(Duration::from_secs(6), "the WHEP consumer removed", || async {
        let s = api.stream("src").await.map_err(|e| e.to_string())?.ok_or("stream gone")?;
        if s.total_consumers() == 0 {
            Ok(())
        } else {
            Err(format!("{:?}", s.consumers))
        }
    })
    .await
    .expect("given up");
    assert_eq!(api.delete(&location).await.unwrap().status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_publisher_that_stops_sending_ends_its_stream() {
    use gstreamer::prelude::*;
    let gw = Gateway::start_with(&[], Some("webrtc: { publisher_timeout_seconds: 2 }\n"));
    let api = gw.api();
    let publisher = whip(&gw, "quiet", WhipOptions::default()).await;
    publisher.wait_connected(MEDIA).await.expect("connected");
    api.wait_live("quiet", MEDIA).await.expect("live");
    // Media stops; the ICE agent (its own thread) keeps the connection alive.
    let pipeline =
        publisher.peer().webrtcbin().parent().and_then(|p| p.downcast::<gstreamer::Pipeline>().ok()).expect("pipeline");
    pipeline.set_state(gstreamer::State::Paused).expect("pause the publisher");
    let paused = Instant::now();
    wait_gone(&api, "quiet", Duration::from_secs(8)).await.expect("stream ended after the silence");
    assert!(paused.elapsed() >= Duration::from_millis(1500), "{:?}", paused.elapsed());
    assert!(gw.stderr_tail().contains("no media for"), "{}", gw.stderr_tail());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyframes_are_asked_for_periodically_whoever_watches_and_on_a_viewers_pli() {
    let gw = Gateway::start_with(&[], Some("webrtc: { keyframe_interval_seconds: 1 }\n"));
    let api = gw.api();
    // A 20 s GOP: every other keyframe is one the gateway asked for.
    let format = VideoFormat { keyframe_interval: 600, ..VideoFormat::default() };
    let publisher = whip(&gw, "gop", WhipOptions { format, ..WhipOptions::default() }).await;
    publisher.wait_connected(MEDIA).await.expect("connected");
    api.wait_live("gop", MEDIA).await.expect("live");

    // Only a WHEP viewer: the periodic requests go on (a new viewer's cached start is one
    // recent GOP, watched or not), and its PLI reaches the publisher.
    let viewer = whep(&gw, "gop").await;
    viewer.wait_decoded(20, 10, MEDIA).await.expect("viewer decodes");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = publisher.keyframes_encoded();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let periodic = publisher.keyframes_encoded() - before;
    assert!(periodic >= 2, "{periodic} keyframes in 3 s without RTMP-family viewers (interval 1 s)");
    let before = publisher.keyframes_encoded();
    assert!(viewer.request_keyframe(), "viewer sends a PLI");
    wait_until(Duration::from_secs(3), "a keyframe after the viewer's PLI", || async {
        let now = publisher.keyframes_encoded();
        if now > before {
            Ok(())
        } else {
            Err(format!("{now} keyframes"))
        }
    })
    .await
    .expect("PLI forwarded to the publisher");

    // An HTTP-FLV viewer: a keyframe every second.
    let reader = BackgroundReader::start(&gw.http_url("/live/gop.flv")).await.expect("HTTP-FLV");
    reader.expect_flowing(30, MEDIA).await.expect("FLV flows");
    let before = publisher.keyframes_encoded();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let asked = publisher.keyframes_encoded() - before;
    assert!((3..=6).contains(&asked), "{asked} keyframes in 4 s at a 1 s interval");
    let flv_keyframes = reader.tags().iter().filter(|t| t.is_video_frame() && t.keyframe).count();
    assert!(flv_keyframes >= 4, "{flv_keyframes} keyframes reached the FLV viewer");
    drop(viewer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announce_ip_and_port_range_show_in_the_answer() {
    let config = "webrtc: { announce_ip: 192.0.2.10, port_min: 42000, port_max: 42100 }\n";
    let gw = Gateway::start_with(&[], Some(config));
    let reply = post_sdp(&gw, "/whip/nat", &offer("sendonly", H264, OPUS)).await;
    assert_eq!(reply.status(), 201);
    let location = header(&reply, "location").to_string();
    let answer = reply.text().await.unwrap();
    assert_eq!(candidate_addresses(&answer), ["192.0.2.10"], "{answer}");
    let ports: Vec<u16> = answer
        .lines()
        .filter_map(|l| l.trim().strip_prefix("a=candidate:"))
        .filter_map(|c| c.split_whitespace().nth(5)?.parse().ok())
        .collect();
    assert!(!ports.is_empty() && ports.iter().all(|p| (42000..=42100).contains(p)), "{ports:?}");
    assert_eq!(gw.api().delete(&location).await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_webrtc_sessions_and_exits_cleanly() {
    let mut gw = Gateway::start();
    let api = gw.api();
    let publisher = whip(&gw, "bye", WhipOptions::default()).await;
    publisher.wait_connected(MEDIA).await.expect("connected");
    api.wait_live("bye", MEDIA).await.expect("live");
    let viewer = whep(&gw, "bye").await;
    viewer.wait_decoded(10, 5, MEDIA).await.expect("viewer decodes");
    let started = Instant::now();
    let status = gw.terminate(Duration::from_secs(10)).expect("exits on SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(6), "{:?}", started.elapsed());
    drop((publisher, viewer));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_publishers_are_copied_to_webrtc_viewers_and_converted_for_rtmp() {
    use common::webrtc::VideoCodec;
    let gw = Gateway::start();
    let api = gw.api();
    let publisher = whip(&gw, "vp8", WhipOptions { video: Some(VideoCodec::Vp8), ..WhipOptions::default() }).await;
    let answered = offered_media(publisher.answer_sdp());
    assert!(answered[0].codecs.iter().any(|c| c.name == "VP8"), "{}", publisher.answer_sdp());
    publisher.wait_connected(MEDIA).await.expect("connected");
    let stream = api.wait_live("vp8", MEDIA).await.expect("live");
    assert_eq!(stream.video.as_ref().map(|v| v.codec.as_str()), Some("vp8"));

    let viewer = whep(&gw, "vp8").await;
    viewer.wait_decoded(30, 20, MEDIA).await.expect("WHEP viewer decodes");
    assert_eq!(viewer.video_codec().as_deref(), Some("VP8"), "webrtc→webrtc copies VP8");
    assert_eq!(viewer.video_size(), Some((320, 240)));

    probe_until_h264_aac(&gw.rtmp_url("/live/vp8"), 320, 240, 48000, PROBE).await.expect("RTMP gets H.264");
    let running = conversions(&api, "vp8").await;
    let video: Vec<_> = running.iter().filter(|c| c.0 == "video").map(|c| (c.1.as_str(), c.2.as_str())).collect();
    assert_eq!(video, [("vp8", "h264")], "{running:?}");
    drop(viewer);
}
