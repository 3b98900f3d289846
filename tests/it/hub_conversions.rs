//! The hub's conversions with real GStreamer pipelines: built on the first consumer that
//! needs one, shared by every consumer needing the same output, gone a grace period after the
//! last leaves; copy consumers never start one. Media: an ffmpeg-made FLV, read by our demuxer.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use interop_gateway::hub::{ConsumerRequest, Hub, HubConfig, Publisher, StreamKey};
use interop_gateway::matrix::{Leg, Matrix, Reason};
use interop_gateway::media::{Codec, Frame, Protocol, TrackInfo};
use interop_gateway::pipeline::{self, Pipelines};
use interop_gateway::protocols::flv::{FlvIngest, FlvReader};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// 4 s of 320x240 H.264 (no B-frames) + AAC 44.1 kHz, demuxed into frames.
fn clip_frames(dir: &Path) -> Vec<Arc<Frame>> {
    let file = dir.join("clip.flv");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi"])
        .args(["-i", "sine=frequency=440:sample_rate=44100", "-t", "4", "-c:v", "libx264", "-bf", "0", "-g", "25"])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2"])
        .arg(&file)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg made the clip");
    let mut reader = FlvReader::new();
    reader.push(&std::fs::read(&file).expect("clip readable"));
    let mut ingest = FlvIngest::new();
    let mut frames = Vec::new();
    while let Some(tag) = reader.next_tag().expect("clip parses") {
        frames.extend(ingest.push(tag.kind, tag.timestamp, tag.body).expect("ingest takes the clip"));
    }
    frames
}

fn hub(grace: Duration) -> Hub {
    pipeline::init();
    let matrix = Matrix::load(&root().join("matrix.yaml")).expect("shipped matrix loads");
    let pipelines = Pipelines::load(&root().join("pipelines")).expect("shipped pipelines load");
    Hub::new(matrix, pipelines, HubConfig { grace, ..HubConfig::default() })
}

fn who(protocol: Protocol) -> ConsumerRequest {
    ConsumerRequest { protocol, transport: "test".into(), remote: None }
}

/// Publishes frames paced 4× faster than real time, until told to stop.
fn pump(mut publisher: Publisher, frames: Vec<Arc<Frame>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for round in 0..3i64 {
            for f in &frames {
                let shift = interop_gateway::media::Ts::from_millis(round * 4000);
                publisher.push(Frame::new(f.info.clone(), f.dts + shift, f.pts + shift, f.keyframe, f.data.clone()));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shared_conversion_per_output_and_gone_after_grace() {
    let dir = tempdir();
    let frames = clip_frames(&dir);
    let hub = hub(Duration::from_millis(300));
    let key: StreamKey = "conv".parse().unwrap();
    let publisher = hub.publish(key.clone(), Protocol::Rtmp, "test", None).unwrap();
    let stream = publisher.stream().clone();
    let pumping = pump(publisher, frames);

    // A copy consumer (rtmp → miniprogram is copy): no conversion.
    let mut mini = hub.subscribe(&key, who(Protocol::Miniprogram)).await.expect("mini subscribes");
    assert!(mini.plan().video.as_ref().is_some_and(Leg::is_copy));
    assert!(mini.plan().audio.as_ref().is_some_and(Leg::is_copy));
    let first = mini.next().await.expect("mini gets frames");
    assert!(first.is_video_keyframe() || first.info.codec() == Codec::Aac, "starts at the GOP");
    assert!(stream.conversions().is_empty(), "copy cells run no conversion");

    // Two WebRTC consumers: rtmp → webrtc converts AAC to Opus, once.
    let mut a = hub.subscribe(&key, who(Protocol::Webrtc)).await.expect("webrtc subscribes");
    let mut b = hub.subscribe(&key, who(Protocol::Webrtc)).await.expect("second webrtc subscribes");
    assert!(matches!(a.plan().audio, Some(Leg::Convert { from: Codec::Aac, to: Codec::Opus, reason: Reason::Rule })));
    let conversions = stream.conversions();
    assert_eq!(
        conversions.len(),
        1,
        "one conversion shared: {:?}",
        conversions.iter().map(|c| &c.key).collect::<Vec<_>>()
    );
    assert_eq!(conversions[0].consumers(), 2);

    for sub in [&mut a, &mut b] {
        let mut opus = 0;
        let mut video = 0;
        while opus < 20 || video < 10 {
            let f = tokio::time::timeout(Duration::from_secs(10), sub.next())
                .await
                .expect("frames keep coming")
                .expect("not ended");
            match f.info.as_ref() {
                TrackInfo::Audio(a) => {
                    assert_eq!(a.codec, Codec::Opus);
                    assert_eq!(a.sample_rate, 48_000);
                    opus += 1;
                }
                TrackInfo::Video(v) => {
                    assert_eq!(v.codec, Codec::H264);
                    video += 1;
                }
            }
        }
    }

    drop(a);
    assert_eq!(stream.conversions().len(), 1, "still used by one consumer");
    drop(b);
    assert_eq!(stream.conversions().len(), 1, "kept through the grace period");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(stream.conversions().is_empty(), "gone after the grace period");

    // A new consumer after teardown starts a fresh one.
    let c = hub.subscribe(&key, who(Protocol::Webrtc)).await.expect("webrtc subscribes again");
    assert_eq!(stream.conversions().len(), 1);
    drop(c);
    drop(mini);
    pumping.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_publisher_refused_and_unknown_stream_not_found() {
    let hub = hub(Duration::ZERO);
    let key: StreamKey = "dup".parse().unwrap();
    let _first = hub.publish(key.clone(), Protocol::Rtmp, "test", None).unwrap();
    assert!(hub.publish(key.clone(), Protocol::Rtmp, "test", None).is_err());
    let missing: StreamKey = "nobody".parse().unwrap();
    assert!(hub.subscribe(&missing, who(Protocol::Rtmp)).await.is_err());
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ig-hubconv-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos() as u64).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_skips_to_keyframes_then_is_dropped_without_blocking_the_publisher() {
    use interop_gateway::hub::{CacheLimits, EndReason};
    let dir = tempdir();
    let frames = clip_frames(&dir);
    pipeline::init();
    let matrix = Matrix::load(&root().join("matrix.yaml")).unwrap();
    let pipelines = Pipelines::load(&root().join("pipelines")).unwrap();
    let limits = CacheLimits { queue_frames: 16, ..CacheLimits::default() };
    let hub = Hub::new(matrix, pipelines, HubConfig { limits, max_lag_events: 2, ..HubConfig::default() });
    let key: StreamKey = "slow".parse().unwrap();
    let mut publisher = hub.publish(key.clone(), Protocol::Rtmp, "test", None).unwrap();
    for f in frames.iter().take(60) {
        publisher.push_arc(f.clone());
    }
    let mut slow = hub.subscribe(&key, who(Protocol::Rtmp)).await.unwrap();
    let mut fast = hub.subscribe(&key, who(Protocol::Rtmp)).await.unwrap();

    // The publisher pushes a whole second pass at once: it never waits for anyone.
    let shift = interop_gateway::media::Ts::from_millis(4000);
    let started = std::time::Instant::now();
    for f in &frames {
        publisher.push(Frame::new(f.info.clone(), f.dts + shift, f.pts + shift, f.keyframe, f.data.clone()));
        while let Ok(Some(_)) = tokio::time::timeout(Duration::ZERO, fast.next()).await {}
    }
    assert!(started.elapsed() < Duration::from_secs(2), "publishing never blocks on consumers");

    // The slow one drains its backlog, lags, and resumes at a keyframe: of the frames from the
    // burst on (and a third pass starting mid-GOP, read as it comes), the first video is a key.
    let mut video_after: Vec<bool> = Vec::new();
    let mut take = |f: Arc<Frame>| {
        if f.dts >= shift && f.info.codec() == Codec::H264 {
            video_after.push(f.keyframe);
        }
    };
    while let Ok(Some(f)) = tokio::time::timeout(Duration::from_millis(200), slow.next()).await {
        take(f);
    }
    let third = interop_gateway::media::Ts::from_millis(8000);
    for f in frames.iter().skip(5) {
        publisher.push(Frame::new(f.info.clone(), f.dts + third, f.pts + third, f.keyframe, f.data.clone()));
        while let Ok(Some(f)) = tokio::time::timeout(Duration::from_millis(1), slow.next()).await {
            take(f);
        }
    }
    assert!(!video_after.is_empty(), "video flows again after the lag");
    assert!(video_after[0], "after falling behind it restarts at a keyframe");

    // Falling behind again and again ends it.
    for round in 3..8i64 {
        let shift = interop_gateway::media::Ts::from_millis(4000 * round);
        for f in &frames {
            publisher.push(Frame::new(f.info.clone(), f.dts + shift, f.pts + shift, f.keyframe, f.data.clone()));
        }
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), slow.next()).await {}
        if slow.end_reason().is_some() {
            break;
        }
    }
    assert_eq!(slow.end_reason(), Some(&EndReason::TooSlow));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reencode_keeps_the_stream_timeline_and_makes_keyframes_on_request() {
    use interop_gateway::pipeline::{TranscodeSink, Transcoder};
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    let dir = tempdir();
    let frames: Vec<_> = clip_frames(&dir).into_iter().filter(|f| f.info.codec() == Codec::H264).collect();
    pipeline::init();
    let pipelines = Pipelines::load(&root().join("pipelines")).unwrap();
    let params: BTreeMap<String, String> = [("keyint".to_string(), "1000".to_string())].into();
    let middle = pipelines.conversion(Codec::H264, Codec::H264, &params).unwrap();
    let out: Arc<Mutex<Vec<(i64, bool)>>> = Arc::default();
    let sink = TranscodeSink {
        on_frame: {
            let out = out.clone();
            Box::new(move |f: Frame| out.lock().unwrap().push((f.dts.as_millis(), f.keyframe)))
        },
        on_error: Box::new(|e| panic!("pipeline error: {e}")),
    };
    let mut t = Transcoder::start("reencode-test", &middle, frames[0].info.clone(), Codec::H264, sink).unwrap();
    let keyframes = t.keyframe_requester();
    let shift = interop_gateway::media::Ts::from_millis(7000);
    for (i, f) in frames.iter().enumerate().take(80) {
        let f = Frame::new(f.info.clone(), f.dts + shift, f.pts + shift, f.keyframe, f.data.clone());
        t.push(&f).unwrap();
        if i == 50 {
            // Let the encoder catch up, then ask: the next output frames include a keyframe.
            tokio::time::sleep(Duration::from_millis(300)).await;
            keyframes.request();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let out = out.lock().unwrap().clone();
    assert!(out.len() > 60, "frames came out: {}", out.len());
    // Timestamps stay on the input's timeline (no encoder offset leaks out).
    assert!(
        out.iter().all(|(dts, _)| (6900..=7000 + 4000).contains(dts)),
        "dts range: {:?}",
        (out.first(), out.last())
    );
    let keys: Vec<usize> = out.iter().enumerate().filter(|(_, f)| f.1).map(|(i, _)| i).collect();
    assert!(keys.len() >= 2 && keys[0] == 0, "the first frame and a requested one are keyframes: {keys:?}");
    assert!(keys.iter().skip(1).any(|&i| (45..75).contains(&i)), "a keyframe follows the request: {keys:?}");
    drop(t);
    let _ = std::fs::remove_dir_all(&dir);
}
