//! GStreamer's own RTMP elements against the gateway: rtmp2sink publishes, rtmp2src plays
//! and decodes, both through the real server (OBS and ffmpeg speak the same subset).

use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::ffmpeg::probe_until_h264_aac;
use common::{stop_child, wait_child, Gateway};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp2sink_publishes_and_rtmp2src_plays_through_the_gateway() {
    let gw = Gateway::start();
    let url = gw.rtmp_url("/live/gst");
    let mut publisher = Command::new("gst-launch-1.0")
        .args(["-q", "videotestsrc", "is-live=true", "!", "video/x-raw,width=320,height=240,framerate=25/1", "!"])
        .args([
            "x264enc",
            "tune=zerolatency",
            "key-int-max=25",
            "!",
            "h264parse",
            "!",
            "flvmux",
            "name=m",
            "streamable=true",
        ])
        .args(["!", "rtmp2sink", &format!("location={url}"), "audiotestsrc", "is-live=true", "!", "audioconvert", "!"])
        .args(["audio/x-raw,rate=48000,channels=2", "!", "voaacenc", "!", "aacparse", "!", "m."])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gst-launch runs");
    let probe = probe_until_h264_aac(&gw.http_url("/live/gst.flv"), 320, 240, 48_000, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("rtmp2sink's stream readable by HTTP-FLV: {e:#}\n{}", gw.stderr_tail()));
    assert_eq!(probe.streams.len(), 2);

    // rtmp2src plays it back; 50 decoded frames and it exits on its own.
    let mut player = Command::new("gst-launch-1.0")
        .args(["-q", "rtmp2src", &format!("location={url}"), "!", "flvdemux", "name=d", "d.video", "!", "queue", "!"])
        .args(["h264parse", "!", "avdec_h264", "!", "identity", "eos-after=50", "!", "fakesink"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gst-launch runs");
    let status = wait_child(&mut player, Duration::from_secs(20));
    stop_child(&mut player, Duration::from_secs(1));
    stop_child(&mut publisher, Duration::from_secs(2));
    let status = status.unwrap_or_else(|| panic!("rtmp2src did not get 50 frames in 20 s\n{}", gw.stderr_tail()));
    assert!(status.success(), "rtmp2src pipeline failed: {status:?}\n{}", gw.stderr_tail());
}
