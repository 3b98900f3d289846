//! Self-tests of the WebRTC test peers (`common::webrtc`) without the gateway: the WHIP
//! publisher and WHEP viewer talk to a stand-in endpoint whose sessions are webrtcbin peers in
//! this process. If these fail, the gateway's WebRTC tests cannot be trusted.

mod common;

use std::time::Duration;

use common::webrtc::{
    candidate_addresses, describe_received, offered_media, LoopbackEndpoint, Rejected, VideoCodec, WhepOptions, WhepViewer,
    WhipOptions, WhipPublisher,
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
    let opts = WhipOptions { video: Some(VideoCodec::Vp8), audio: false, ..WhipOptions::default() };
    let publisher = WhipPublisher::start(&endpoint.whip_url("vp8"), opts).await?;
    let offered = offered_media(publisher.offer_sdp());
    assert_eq!(offered.len(), 1, "video only: {offered:?}");
    assert!(offered[0].codecs.iter().any(|c| c.name == "VP8"), "{offered:?}");
    wait_received(&endpoint, "vp8", 31, 0).await?;
    let answerer = endpoint.answerer("vp8").expect("session");
    assert_eq!(answerer.peer.received.video_codec.lock().unwrap().as_deref(), Some("VP8"));
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
        .wait_for(MEDIA_TIMEOUT, "a keyframe forced by the viewer's PLI", |_| keyframes() > before, |_| format!("{} keyframes", keyframes()))
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
