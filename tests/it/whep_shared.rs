//! WHEP viewers of one stream share its RTP packetization (`webrtc.egress: str0m`, opt-in
//! for now): the gateway packetizes each frame once, whatever the number of viewers, and each
//! viewer (a webrtcbin peer in this process, decoding) still gets pictures and sound. The
//! webrtcbin sender stays available by config (`webrtc.egress: webrtcbin`).

use crate::common;

use std::time::Duration;

use common::webrtc::{WhepOptions, WhepViewer};
use common::{Api, Ffmpeg, Gateway, PublishOptions};

const MEDIA: Duration = Duration::from_secs(20);

/// The value of an unlabelled counter in `/metrics`.
async fn metric(api: &Api, name: &str) -> u64 {
    let body = api.get("/metrics").await.expect("metrics").body;
    body.lines().find_map(|l| l.strip_prefix(&format!("{name} ")).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
}

async fn viewer(gw: &Gateway, key: &str) -> WhepViewer {
    WhepViewer::start(&gw.http_url(&format!("/whep/{key}")), WhepOptions::default())
        .await
        .unwrap_or_else(|e| panic!("WHEP viewer of {key}: {e:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_viewers_of_one_stream_share_its_packetization_and_each_decodes() {
    let gw = Gateway::start_with(&[], Some("webrtc:\n  egress: str0m\n"));
    let api = gw.api();
    let _ffmpeg = Ffmpeg::publish(&gw.rtmp_url("/live/shared"), PublishOptions::default());
    api.wait_live("shared", MEDIA).await.expect("live");
    let viewers = [viewer(&gw, "shared").await, viewer(&gw, "shared").await, viewer(&gw, "shared").await];
    for (i, v) in viewers.iter().enumerate() {
        v.wait_decoded(30, 20, MEDIA).await.unwrap_or_else(|e| panic!("viewer {i}: {e:#}"));
        assert_eq!(v.video_codec().as_deref(), Some("H264"));
        assert_eq!(v.audio_codec().as_deref(), Some("OPUS"));
    }
    // Over a window where all three play: frames packetized against frames the viewers got.
    let packetized = metric(&api, "interop_webrtc_frames_packetized_total").await;
    let got: Vec<u64> = viewers.iter().map(|v| v.frames_decoded() + v.audio_buffers()).collect();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let packetized = metric(&api, "interop_webrtc_frames_packetized_total").await - packetized;
    let got: Vec<u64> =
        viewers.iter().zip(&got).map(|(v, before)| v.frames_decoded() + v.audio_buffers() - before).collect();
    let total: u64 = got.iter().sum();
    assert!(got.iter().all(|&g| g > 100), "each viewer plays on: {got:?}");
    // The source makes ~80 frames a second (30 video, 50 Opus): each packetized once, not
    // once per viewer (three viewers got ~3x as many).
    assert!(packetized > 0 && packetized < 500, "packetized {packetized} frames in 4 s");
    assert!(total > 2 * packetized, "packetized {packetized}, viewers got {got:?}: not shared");
    for v in viewers {
        assert_eq!(v.stop().await.expect("DELETE"), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webrtcbin_sender_stays_available_by_config() {
    let gw = Gateway::start_with(&[], Some("webrtc:\n  egress: webrtcbin\n"));
    let api = gw.api();
    let _ffmpeg = Ffmpeg::publish(&gw.rtmp_url("/live/old"), PublishOptions::default());
    api.wait_live("old", MEDIA).await.expect("live");
    let packetized = metric(&api, "interop_webrtc_frames_packetized_total").await;
    let v = viewer(&gw, "old").await;
    v.wait_decoded(30, 20, MEDIA).await.expect("decoded");
    assert!(!v.answer_sdp().contains("a=ice-lite"), "webrtcbin answers as a full ICE agent");
    assert_eq!(metric(&api, "interop_webrtc_frames_packetized_total").await, packetized, "GStreamer payloaded");
    assert_eq!(v.stop().await.expect("DELETE"), 200);
}
