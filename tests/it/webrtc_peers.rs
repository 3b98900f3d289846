//! Self-tests of the WebRTC test peers (`common::webrtc`) without the gateway: the WHIP
//! publisher and WHEP viewer talk to a stand-in endpoint whose sessions are webrtcbin peers in
//! this process. If these fail, the gateway's WebRTC tests cannot be trusted.

use crate::common;

use std::time::Duration;

use common::webrtc::{
    candidate_addresses, describe_received, is_constrained_baseline, offered_media, LoopbackEndpoint, Rejected,
    VideoCodec, VideoFormat, WhepOptions, WhepViewer, WhipOptions, WhipPublisher,
};

const MEDIA_TIMEOUT: Duration = Duration::from_secs(15);

/// Waits until the endpoint's WHIP receiver for `stream` decoded `frames` and `audio`.
async fn wait_received(endpoint: &LoopbackEndpoint, stream: &str, frames: u64, audio: u64) -> anyhow::Result<()> {
    let answerer = endpoint.answerer(stream).ok_or_else(|| anyhow::anyhow!("no WHIP session for {stream}"))?;
    answerer
        .peer
        .wait_for(
            MEDIA_TIMEOUT,
            &format!("{frames} frames and {audio} audio buffers at the WHIP receiver"),
            |p| p.received.frames() >= frames && p.received.audio() >= audio,
            describe_received,
        )
        .await
}

#[test]
fn reads_offered_codecs_and_h264_profiles() {
    let sdp = "v=0\r\no=- 1 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
               m=video 9 UDP/TLS/RTP/SAVPF 102 103 96\r\na=rtpmap:102 H264/90000\r\n\
               a=fmtp:102 packetization-mode=1;profile-level-id=42001f\r\na=rtpmap:103 rtx/90000\r\n\
               a=fmtp:103 apt=102\r\na=rtpmap:96 VP8/90000\r\n\
               m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n";
    let media = offered_media(sdp);
    assert_eq!(media.len(), 2);
    assert_eq!(media[0].kind, "video");
    let video: Vec<_> = media[0].codecs.iter().map(|c| (c.pt, c.name.as_str())).collect();
    assert_eq!(video, [(102, "H264"), (103, "rtx"), (96, "VP8")]);
    assert_eq!(media[0].codecs[1].fmtp, "apt=102");
    assert_eq!(media[0].codecs[2].fmtp, "");
    let audio: Vec<_> = media[1].codecs.iter().map(|c| (c.pt, c.name.as_str())).collect();
    assert_eq!(audio, [(111, "opus"), (0, "PCMU")]);

    for (fmtp, constrained) in [
        ("packetization-mode=1;profile-level-id=42e01f", true),
        ("profile-level-id=42c015;packetization-mode=1", true),
        ("packetization-mode=1;profile-level-id=42001f", false),
        ("packetization-mode=1;profile-level-id=4d001f", false),
        ("packetization-mode=1", false),
    ] {
        assert_eq!(is_constrained_baseline(fmtp), constrained, "{fmtp}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_publisher_h264_opus_reaches_a_receiver() -> anyhow::Result<()> {
    let endpoint = LoopbackEndpoint::start(30).await?;
    let publisher = WhipPublisher::start(&endpoint.whip_url("class1"), WhipOptions::default()).await?;

    assert_eq!(candidate_addresses(publisher.offer_sdp()), ["127.0.0.1"], "offer candidates");
    assert_eq!(candidate_addresses(publisher.answer_sdp()), ["127.0.0.1"], "answer candidates");
    let offered = offered_media(publisher.offer_sdp());
    assert_eq!(offered.iter().map(|m| m.kind.as_str()).collect::<Vec<_>>(), ["video", "audio"]);
    let h264 = offered[0].codecs.iter().find(|c| c.name == "H264").expect("H264 offered");
    for param in ["packetization-mode=1", "profile-level-id=42c0", "sprop-parameter-sets="] {
        assert!(h264.fmtp.contains(param), "{param} in {h264:?}");
    }
    assert!(publisher.offer_sdp().contains("a=rtcp-fb:96 nack pli"), "PLI feedback offered");
    assert!(offered[1].codecs.iter().any(|c| c.name.eq_ignore_ascii_case("opus")), "{offered:?}");
    assert!(publisher.offer_sdp().contains("a=group:BUNDLE"), "max-bundle offer");

    publisher.wait_connected(MEDIA_TIMEOUT).await?;
    wait_received(&endpoint, "class1", 31, 21).await?;
    let answerer = endpoint.answerer("class1").expect("session");
    assert_eq!(answerer.peer.received.video_codec.lock().unwrap().as_deref(), Some("H264"));
    assert_eq!(answerer.peer.received.audio_codec.lock().unwrap().as_deref(), Some("OPUS"));
    assert_eq!(*answerer.peer.received.video_size.lock().unwrap(), Some((320, 240)));
    assert!(publisher.frames_encoded() >= 31);
    assert!(publisher.bytes_sent().await? > 10_000, "outbound-rtp bytes-sent");
    drop(answerer);

    assert_eq!(publisher.stop().await?, 200, "DELETE on Location");
    assert_eq!(endpoint.session_count(), 0, "session ended by DELETE; requests: {:?}", endpoint.requests());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_publisher_vp8_without_audio() -> anyhow::Result<()> {
    let endpoint = LoopbackEndpoint::start(30).await?;
    let format = VideoFormat { width: 640, height: 360, fps: 25, keyframe_interval: 50 };
    let opts = WhipOptions { video: Some(VideoCodec::Vp8), audio: false, format, ..WhipOptions::default() };
    let publisher = WhipPublisher::start(&endpoint.whip_url("vp8"), opts).await?;
    let offered = offered_media(publisher.offer_sdp());
    assert_eq!(offered.len(), 1, "video only: {offered:?}");
    assert!(offered[0].codecs.iter().any(|c| c.name == "VP8"), "{offered:?}");
    wait_received(&endpoint, "vp8", 31, 0).await?;
    let answerer = endpoint.answerer("vp8").expect("session");
    assert_eq!(answerer.peer.received.video_codec.lock().unwrap().as_deref(), Some("VP8"));
    assert_eq!(*answerer.peer.received.video_size.lock().unwrap(), Some((640, 360)));
    assert_eq!(answerer.peer.received.audio(), 0);
    drop(answerer);
    // Dropping the publisher DELETEs the session too.
    drop(publisher);
    assert_eq!(endpoint.session_count(), 0, "requests: {:?}", endpoint.requests());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_viewer_decodes_h264_and_opus() -> anyhow::Result<()> {
    let endpoint = LoopbackEndpoint::start(30).await?;
    let viewer = WhepViewer::start(&endpoint.whep_url("class1"), WhepOptions::default()).await?;
    assert_eq!(candidate_addresses(viewer.offer_sdp()), ["127.0.0.1"]);
    assert_eq!(candidate_addresses(viewer.answer_sdp()), ["127.0.0.1"]);
    let offered = offered_media(viewer.offer_sdp());
    let video: Vec<_> = offered[0].codecs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(&video[..2], ["H264", "VP8"], "preference order");

    viewer.wait_decoded(31, 21, MEDIA_TIMEOUT).await?;
    assert_eq!(viewer.video_codec().as_deref(), Some("H264"));
    assert_eq!(viewer.audio_codec().as_deref(), Some("OPUS"));
    assert_eq!(viewer.video_size(), Some((320, 240)));
    assert_eq!(viewer.stop().await?, 200);
    assert_eq!(endpoint.session_count(), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_viewer_prefers_vp8_when_asked() -> anyhow::Result<()> {
    let endpoint = LoopbackEndpoint::start(30).await?;
    let opts = WhepOptions { video: vec![VideoCodec::Vp8, VideoCodec::H264], ..WhepOptions::default() };
    let viewer = WhepViewer::start(&endpoint.whep_url("s"), opts).await?;
    viewer.wait_decoded(31, 21, MEDIA_TIMEOUT).await?;
    assert_eq!(viewer.video_codec().as_deref(), Some("VP8"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_keyframe_request_reaches_the_sender() -> anyhow::Result<()> {
    // The sender makes one keyframe at start and then only on request (PLI/FIR).
    let endpoint = LoopbackEndpoint::start(100_000).await?;
    let viewer = WhepViewer::start(&endpoint.whep_url("kf"), WhepOptions::default()).await?;
    let sender = endpoint.senders("kf").pop().expect("WHEP session");
    // The viewer's depayloader asks for a keyframe by itself when it joins without SPS/PPS
    // (like browsers do); wait until the sender's keyframe count has been still for 1.5 s.
    viewer.wait_decoded(10, 21, MEDIA_TIMEOUT).await?;
    let keyframes = || sender.peer.sent.video_keyframes.load(std::sync::atomic::Ordering::Relaxed);
    let mut before = keyframes();
    let settle_deadline = std::time::Instant::now() + MEDIA_TIMEOUT;
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = keyframes();
        if now == before {
            break;
        }
        assert!(std::time::Instant::now() < settle_deadline, "the sender keeps making keyframes on its own: {now}");
        before = now;
    }
    assert!(viewer.request_keyframe(), "keyframe request sent upstream; {}", describe_received(viewer.peer()));
    sender
        .peer
        .wait_for(
            MEDIA_TIMEOUT,
            "a keyframe forced by the viewer's PLI",
            |_| keyframes() > before,
            |_| format!("{} keyframes", keyframes()),
        )
        .await?;
    viewer.wait_decoded(31, 21, MEDIA_TIMEOUT).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_offers_report_status_and_reason() -> anyhow::Result<()> {
    let endpoint = LoopbackEndpoint::start(30).await?;
    // The stand-in answers 400 when its webrtcbin cannot take the offer; a real endpoint's
    // refusal reaches the test the same way.
    let url = format!("{}/whip/x/not-a-post-target", endpoint.base_url());
    let error = match WhipPublisher::start(&url, WhipOptions::default()).await {
        Ok(_) => anyhow::bail!("POST to a DELETE-only path was accepted"),
        Err(error) => error,
    };
    let rejected = error.downcast_ref::<Rejected>().ok_or_else(|| anyhow::anyhow!("not a Rejected: {error:#}"))?;
    assert_eq!(rejected.status, 405, "{rejected}");
    Ok(())
}

// --- Headless Chromium (each test re-runs itself in a loopback-only network namespace) ---

mod browser {
    use std::time::Duration;

    use super::common::chromium::{in_loopback_netns, Chromium, PageServer};
    use super::common::webrtc::{describe_received, LoopbackEndpoint};

    const BROWSER_TIMEOUT: Duration = Duration::from_secs(30);

    fn run(body: impl std::future::Future<Output = anyhow::Result<()>>) {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        if let Err(error) = runtime.block_on(body) {
            panic!("{error:#}");
        }
    }

    #[test]
    fn chromium_runs_in_loopback_netns() {
        if !in_loopback_netns("browser::chromium_runs_in_loopback_netns") {
            return;
        }
        run(async {
            let pages = PageServer::start().await?;
            let mut browser = Chromium::start(&pages.url("probe.html", &[("id", "probe")]))?;
            let probe = pages.wait_report("probe", BROWSER_TIMEOUT, "the probe report", |r| r.kind == "probe").await?;
            let tracks = probe.raw["tracks"].as_array().cloned().unwrap_or_default();
            assert!(
                tracks.iter().any(|t| t.as_str().is_some_and(|t| t.starts_with("video:"))),
                "fake camera: {tracks:?}"
            );
            assert!(
                tracks.iter().any(|t| t.as_str().is_some_and(|t| t.starts_with("audio:"))),
                "fake microphone: {tracks:?}"
            );
            let addresses = probe.raw["candidateAddresses"].as_array().cloned().unwrap_or_default();
            assert!(!addresses.is_empty(), "no ICE candidate gathered");
            assert!(addresses.iter().all(|a| a == "127.0.0.1"), "candidates: {addresses:?}");
            // The in-page call over loopback decodes the fake camera.
            let stats = pages
                .wait_stats("probe", BROWSER_TIMEOUT, "30 frames decoded in the in-page call", |s| {
                    s.inbound("video").frames_decoded > 30
                })
                .await?;
            assert_eq!(stats.connection_state, "connected");
            assert!(browser.is_running());
            Ok(())
        });
    }

    #[test]
    fn chromium_publishes_by_whip_to_webrtcbin() {
        if !in_loopback_netns("browser::chromium_publishes_by_whip_to_webrtcbin") {
            return;
        }
        run(async {
            let endpoint = LoopbackEndpoint::start(30).await?;
            let pages = PageServer::start().await?;
            let page = pages.url("whip.html", &[("whip", &endpoint.whip_url("cls")), ("id", "pub")]);
            let _browser = Chromium::start(&page)?;
            let location = pages.wait_event("pub", "answered", BROWSER_TIMEOUT).await?;
            assert!(location.starts_with(&endpoint.whip_url("cls")), "Location {location}");
            let requests = endpoint.requests();
            assert!(
                requests.iter().any(|r| r.starts_with("OPTIONS preflight")),
                "the browser sent a CORS preflight: {requests:?}"
            );

            let answerer = endpoint.answerer("cls").ok_or_else(|| anyhow::anyhow!("no WHIP session"))?;
            answerer
                .peer
                .wait_for(
                    BROWSER_TIMEOUT,
                    "31 frames and 21 audio buffers from Chromium",
                    |p| p.received.frames() > 30 && p.received.audio() > 20,
                    describe_received,
                )
                .await?;
            assert_eq!(answerer.peer.received.video_codec.lock().unwrap().as_deref(), Some("H264"), "H.264 preferred");
            assert_eq!(answerer.peer.received.audio_codec.lock().unwrap().as_deref(), Some("OPUS"));
            let stats = pages
                .wait_stats("pub", BROWSER_TIMEOUT, "outbound video stats", |s| s.outbound("video").frames_encoded > 0)
                .await?;
            assert_eq!(stats.outbound("video").codec.as_deref(), Some("video/H264"));
            Ok(())
        });
    }

    #[test]
    fn chromium_plays_by_whep_from_webrtcbin() {
        if !in_loopback_netns("browser::chromium_plays_by_whep_from_webrtcbin") {
            return;
        }
        run(async {
            let endpoint = LoopbackEndpoint::start(30).await?;
            let pages = PageServer::start().await?;
            let page = pages.url("whep.html", &[("whep", &endpoint.whep_url("cls")), ("id", "view"), ("stop", "8")]);
            let _browser = Chromium::start(&page)?;
            let stats = pages
                .wait_stats("view", BROWSER_TIMEOUT, "30 frames decoded and 20 audio packets", |s| {
                    s.inbound("video").frames_decoded > 30 && s.inbound("audio").packets_received > 20
                })
                .await?;
            assert_eq!(stats.inbound("video").codec.as_deref(), Some("video/H264"));
            assert_eq!(stats.inbound("audio").codec.as_deref(), Some("audio/opus"));
            assert_eq!((stats.inbound("video").frame_width, stats.inbound("video").frame_height), (320, 240));
            // The page DELETEs its session after 8 s.
            assert_eq!(pages.wait_event("view", "stopped", BROWSER_TIMEOUT).await?, "200");
            assert_eq!(endpoint.session_count(), 0);
            Ok(())
        });
    }
}
