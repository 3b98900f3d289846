//! The mini-program profile with a live-pusher whose audio starts seconds after its video:
//! an HTTP-FLV viewer that joined before the audio gets it once it starts, on the same
//! timeline as the video (no A/V offset), and the stream announces audio from the start.

use crate::common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Gateway, HttpFlvReader, TagKind as TestTag, TempDir};
use interop_gateway::protocols::flv::{FlvReader, FlvTag, TagKind};
use interop_gateway::protocols::rtmp::{ClientConn, MediaKind, RtmpUrl};

const AUDIO_STARTS_MS: u32 = 3000;

fn clip_tags(dir: &std::path::Path) -> Vec<FlvTag> {
    let file = dir.join("clip.flv");
    let ok = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi"])
        .args(["-i", "sine=frequency=440:sample_rate=44100", "-t", "12", "-c:v", "libx264", "-bf", "0", "-g", "25"])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac"])
        .arg(&file)
        .status()
        .expect("ffmpeg runs")
        .success();
    assert!(ok);
    let mut reader = FlvReader::new();
    reader.push(&std::fs::read(&file).unwrap());
    let mut tags = Vec::new();
    while let Some(tag) = reader.next_tag().expect("clip parses") {
        tags.push(tag);
    }
    tags
}

/// Publishes the clip in real time, holding back every audio tag (sequence header included)
/// until AUDIO_STARTS_MS.
async fn publish(url: RtmpUrl, tags: Vec<FlvTag>) {
    let mut conn = ClientConn::connect(&url, Duration::from_secs(5)).await.expect("connect");
    conn.publish().await.expect("publish");
    let start = Instant::now();
    let mut audio_header: Option<Bytes> = None;
    for tag in tags {
        let due = Duration::from_millis(tag.timestamp as u64);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        let kind = match tag.kind {
            TagKind::Video => MediaKind::Video,
            TagKind::Audio => MediaKind::Audio,
            TagKind::Script => continue,
        };
        if kind == MediaKind::Audio && tag.timestamp < AUDIO_STARTS_MS {
            // The first audio tag (timestamp 0) is the AAC sequence header: keep it for later.
            audio_header.get_or_insert(tag.body);
            continue;
        }
        if kind == MediaKind::Audio {
            if let Some(header) = audio_header.take() {
                conn.send_media(MediaKind::Audio, tag.timestamp, &header).await.expect("send");
            }
        }
        if conn.send_media(kind, tag.timestamp, &tag.body).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_audio_from_a_mini_program_pusher_reaches_an_early_viewer_aligned() {
    let dir = TempDir::new("late-audio");
    let tags = clip_tags(dir.path());
    let gw = Gateway::start();
    let url: RtmpUrl = gw.rtmp_url("/mini/late").parse().unwrap();
    let publishing = tokio::spawn(publish(url, tags));
    // Live with video only (the harness' wait_live would wait for audio too).
    common::wait_until(Duration::from_secs(10), "stream late with video", || async {
        match gw.api().stream("late").await {
            Ok(Some(s)) if s.video.is_some() => Ok(s),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .expect("stream live");
    let audio_before_join = gw.api().stream("late").await.unwrap().and_then(|s| s.audio);
    assert!(audio_before_join.is_none(), "the viewer joins before the audio starts");

    // Joins well before the audio starts.
    let mut reader = HttpFlvReader::connect(&gw.http_url("/mini/late.flv")).await.expect("HTTP-FLV");
    let joined = Instant::now();
    let mut seen: Vec<(TestTag, u32, bool, Instant)> = Vec::new();
    while joined.elapsed() < Duration::from_secs(6) {
        let tag = reader.next_tag(Duration::from_secs(3)).await.expect("tags keep coming");
        seen.push((tag.kind, tag.timestamp_ms, tag.sequence_header, tag.arrival));
    }
    assert_eq!(reader.header_flags() & 0x04, 0x04, "the FLV header announces audio from the start");
    let first_video = seen.iter().position(|t| t.0 == TestTag::Video && !t.2).expect("video frames");
    let audio: Vec<_> = seen.iter().filter(|t| t.0 == TestTag::Audio && !t.2).collect();
    assert!(seen.iter().any(|t| t.0 == TestTag::Audio && t.2), "an AAC sequence header arrives once audio starts");
    assert!(audio.len() > 40, "audio flows once it starts: {} frames", audio.len());
    assert!(first_video < seen.len());

    // Aligned: each audio tag's timestamp is close to the video timestamps that arrived at the
    // same moment (both are on the one stream timeline).
    for (_, ts, _, at) in audio.iter().skip(5).take(30) {
        let nearest_video = seen
            .iter()
            .filter(|t| t.0 == TestTag::Video && !t.2)
            .min_by_key(|t| if t.3 > *at { t.3 - *at } else { *at - t.3 })
            .expect("video around");
        let offset = *ts as i64 - nearest_video.1 as i64;
        assert!(
            offset.abs() < 200,
            "audio ts {ts} vs video ts {} arriving together: offset {offset} ms",
            nearest_video.1
        );
    }
    let stream = gw.api().stream("late").await.unwrap().expect("stream listed");
    assert_eq!(stream.audio.map(|a| a.codec).as_deref(), Some("aac"));
    publishing.abort();
}
