use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use bytes::Bytes;

use super::*;
use crate::hub::stream::{ConsumerMeta, PublisherMeta, Stream};
use crate::hub::track::{CacheLimits, TrackOutput};
use crate::hub::{Metrics, SessionId};
use crate::matrix::Leg;
use crate::media::{AudioInfo, Codec, Protocol, VideoInfo};

fn infos() -> (Arc<TrackInfo>, Arc<TrackInfo>) {
    let v = TrackInfo::Video(VideoInfo {
        codec: Codec::Mpeg1,
        width: 2,
        height: 2,
        fps: None,
        config: None,
        bframes: false,
    });
    let a = TrackInfo::Audio(AudioInfo { codec: Codec::Mp2, sample_rate: 44_100, channels: 1, config: None });
    (Arc::new(v), Arc::new(a))
}

fn frame(info: &Arc<TrackInfo>, ms: i64, key: bool) -> Arc<Frame> {
    Arc::new(Frame::new(info.clone(), Ts::from_millis(ms), Ts::from_millis(ms), key, Bytes::from_static(b"x")))
}

/// A subscription to two fresh outputs (nothing cached: a conversion that just started).
fn subscribe(video: &TrackOutput, audio: &TrackOutput) -> Subscription {
    let publisher = PublisherMeta {
        id: SessionId::next(),
        protocol: Protocol::Rtmp,
        transport: "rtmp".into(),
        remote: None,
        started: SystemTime::now(),
    };
    let stream = Arc::new(Stream::new("k".parse().unwrap(), publisher, CacheLimits::default()));
    let meta = Arc::new(ConsumerMeta {
        id: SessionId::next(),
        protocol: Protocol::H5,
        transport: "ws".into(),
        remote: None,
        started: SystemTime::now(),
        bytes_out: AtomicU64::new(0),
    });
    let lease = ConsumerLease {
        stream,
        meta,
        conversions: Vec::new(),
        grace: Duration::ZERO,
        metrics: Arc::new(Metrics::default()),
        observer: Default::default(),
        unreported: Default::default(),
    };
    let leg = |from, to| Leg::Convert { from, to, reason: crate::matrix::Reason::Rule };
    let plan = Plan {
        from: Protocol::Rtmp,
        to: Protocol::H5,
        video: Some(leg(Codec::H264, Codec::Mpeg1)),
        audio: Some(leg(Codec::Aac, Codec::Mp2)),
    };
    Subscription::new(plan, video.join(), audio.join(), 5, lease)
}

async fn next_ms(sub: &mut Subscription) -> (TrackKind, i64) {
    let f = tokio::time::timeout(Duration::from_secs(5), sub.next()).await.expect("a frame in time").expect("a frame");
    (f.kind(), f.dts.as_millis())
}

#[tokio::test]
async fn audio_before_the_first_picture_waits_for_it_and_older_audio_is_dropped() {
    let (v, a) = infos();
    let (video, audio) = (
        TrackOutput::new(TrackKind::Video, CacheLimits::default()),
        TrackOutput::new(TrackKind::Audio, CacheLimits::default()),
    );
    let mut sub = subscribe(&video, &audio);
    // A fresh audio conversion's output comes first, from before the picture's start.
    for ms in [1000, 1026, 1052, 3000, 3026] {
        audio.push(frame(&a, ms, true));
    }
    video.push(frame(&v, 3000, true));
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(next_ms(&mut sub).await);
    }
    video.push(frame(&v, 3033, false));
    got.push(next_ms(&mut sub).await);
    audio.push(frame(&a, 3052, true));
    got.push(next_ms(&mut sub).await);
    use TrackKind::{Audio as A, Video as V};
    assert_eq!(got, [(V, 3000), (A, 3000), (A, 3026), (V, 3033), (A, 3052)]);
    // Later audio from before the picture's start (a late copy) is dropped too.
    audio.push(frame(&a, 2990, true));
    audio.push(frame(&a, 3078, true));
    assert_eq!(next_ms(&mut sub).await, (A, 3078));
}

async fn batch_ms(sub: &mut Subscription, batching: Batching) -> Vec<(TrackKind, i64)> {
    let mut out = Vec::new();
    let more = tokio::time::timeout(Duration::from_secs(5), sub.next_batch(&mut out, batching))
        .await
        .expect("a batch in time");
    assert!(more, "the subscription goes on");
    out.iter().map(|f| (f.kind(), f.dts.as_millis())).collect()
}

#[tokio::test]
async fn a_batch_is_one_picture_with_the_audio_beside_it_and_audio_alone_waits_for_the_next() {
    use TrackKind::{Audio as A, Video as V};
    let (v, a) = infos();
    let (video, audio) = (
        TrackOutput::new(TrackKind::Video, CacheLimits::default()),
        TrackOutput::new(TrackKind::Audio, CacheLimits::default()),
    );
    let mut sub = subscribe(&video, &audio);
    let batching = Batching::default();
    video.push(frame(&v, 1000, true));
    audio.push(frame(&a, 1000, true));
    audio.push(frame(&a, 1020, true));
    assert_eq!(batch_ms(&mut sub, batching).await, [(V, 1000), (A, 1000), (A, 1020)], "what is ready, at once");
    // Audio alone does not make a batch: it goes out with the next picture, in dts order.
    audio.push(frame(&a, 1040, true));
    let pushing = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        audio.push(frame(&a, 1060, true));
        video.push(frame(&v, 1033, false));
    };
    let (got, ()) = tokio::join!(batch_ms(&mut sub, batching), pushing);
    assert_eq!(got, [(V, 1033), (A, 1040), (A, 1060)]);
    // The picture pauses: audio already waiting goes out on its own after the hold.
    audio.push(frame(&a, 1080, true));
    let started = Instant::now();
    assert_eq!(batch_ms(&mut sub, batching).await, [(A, 1080)]);
    let waited = started.elapsed();
    assert!(waited >= batching.audio_hold && waited < Duration::from_secs(2), "waited {waited:?}");
}

#[tokio::test]
async fn audio_found_alone_waits_at_most_the_hold_for_its_picture() {
    use TrackKind::{Audio as A, Video as V};
    let (v, a) = infos();
    let (video, audio) = (
        TrackOutput::new(TrackKind::Video, CacheLimits::default()),
        TrackOutput::new(TrackKind::Audio, CacheLimits::default()),
    );
    let mut sub = subscribe(&video, &audio);
    let batching = Batching { audio_hold: Duration::from_millis(40), merge_window: Duration::ZERO };
    video.push(frame(&v, 1000, true));
    assert_eq!(batch_ms(&mut sub, batching).await, [(V, 1000)]);
    // Audio that comes while only video is awaited is found after the gap, then waits
    // the hold for a picture.
    let pushing = async {
        tokio::time::sleep(VIDEO_GAP / 2).await;
        audio.push(frame(&a, 1010, true));
    };
    let started = Instant::now();
    let (got, ()) = tokio::join!(batch_ms(&mut sub, batching), pushing);
    assert_eq!(got, [(A, 1010)]);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    // The stream ends: what is left goes out, then no more batches.
    audio.push(frame(&a, 1030, true));
    drop((video, audio));
    let mut out = Vec::new();
    assert!(sub.next_batch(&mut out, batching).await);
    assert_eq!(out.len(), 1);
    assert!(!sub.next_batch(&mut out, batching).await);
    assert_eq!(sub.end_reason(), Some(&EndReason::StreamEnded));
}

#[tokio::test]
async fn without_a_picture_audio_goes_out_alone_after_the_wait() {
    let (v, a) = infos();
    let (video, audio) = (
        TrackOutput::new(TrackKind::Video, CacheLimits::default()),
        TrackOutput::new(TrackKind::Audio, CacheLimits::default()),
    );
    let mut sub = subscribe(&video, &audio);
    sub.first_picture_wait = Duration::from_millis(50);
    audio.push(frame(&a, 1000, true));
    audio.push(frame(&a, 1026, true));
    assert_eq!(next_ms(&mut sub).await, (TrackKind::Audio, 1000));
    assert_eq!(next_ms(&mut sub).await, (TrackKind::Audio, 1026));
    // A picture that comes late does not hold back or drop audio any more.
    video.push(frame(&v, 2000, true));
    assert_eq!(next_ms(&mut sub).await, (TrackKind::Video, 2000));
    audio.push(frame(&a, 1052, true));
    assert_eq!(next_ms(&mut sub).await, (TrackKind::Audio, 1052));
}

#[tokio::test]
async fn a_consumer_whose_output_is_full_skips_to_a_keyframe_then_ends() {
    let (v, a) = infos();
    let (video, audio) = (
        TrackOutput::new(TrackKind::Video, CacheLimits::default()),
        TrackOutput::new(TrackKind::Audio, CacheLimits::default()),
    );
    let mut sub = subscribe(&video, &audio);
    video.push(frame(&v, 0, true));
    assert_eq!(next_ms(&mut sub).await, (TrackKind::Video, 0));
    assert!(!sub.lagged());
    for (ms, key) in [(33, false), (66, true)] {
        video.push(frame(&v, ms, key));
    }
    assert_eq!(next_ms(&mut sub).await, (TrackKind::Video, 66), "skipped to the keyframe");
    // Sound that comes while skipping is dropped with the pictures; after the keyframe it flows.
    audio.push(frame(&a, 70, true));
    assert_eq!(next_ms(&mut sub).await, (TrackKind::Audio, 70));
    for _ in 1..5 {
        assert!(!sub.lagged());
    }
    assert!(sub.lagged(), "one lag more than max_lag_events (5) ends it");
    assert_eq!(sub.end_reason(), Some(&EndReason::TooSlow));
    assert!(sub.next().await.is_none());
}

#[tokio::test]
async fn held_audio_goes_out_when_the_video_ends() {
    let (_, a) = infos();
    let (video, audio) = (
        TrackOutput::new(TrackKind::Video, CacheLimits::default()),
        TrackOutput::new(TrackKind::Audio, CacheLimits::default()),
    );
    let mut sub = subscribe(&video, &audio);
    audio.push(frame(&a, 1000, true));
    video.close();
    assert_eq!(next_ms(&mut sub).await, (TrackKind::Audio, 1000));
    audio.close();
    assert!(sub.next().await.is_none());
    assert_eq!(sub.end_reason(), Some(&EndReason::StreamEnded));
}
