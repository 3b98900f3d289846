//! One publisher, 20 HTTP-FLV consumers joining and leaving at random (seeded), one reader
//! that stays, and two readers that never read: every joiner starts at a keyframe, readers
//! get continuous data, and the publisher is never held back by anyone.

use crate::common;

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::AsyncWriteExt;

use common::flv::{check_join_start, max_arrival_gap, FlvTag};
use common::{wait_until, BackgroundReader, Ffmpeg, Gateway, HttpFlvReader, PublishOptions, TagKind};

const CHURNERS: u64 = 20;
const CHURN_FOR: Duration = Duration::from_secs(20);
/// Longest allowed silence for a reader (a GOP is 1 s; tags come every ~23 ms).
const MAX_GAP: Duration = Duration::from_secs(1);

/// What one join saw.
struct Join {
    churner: u64,
    index: usize,
    connect_error: Option<String>,
    read_error: Option<String>,
    connected_at: Instant,
    tags: Vec<FlvTag>,
}

/// One churner: wait a random time, join, read for a random time, leave; until `until`.
async fn churn(url: String, churner: u64, seed: u64, until: Instant) -> Vec<Join> {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(churner));
    let mut joins = Vec::new();
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..1500))).await;
        let stay = Duration::from_millis(rng.gen_range(600..4000));
        let mut join = Join {
            churner,
            index: joins.len(),
            connect_error: None,
            read_error: None,
            connected_at: Instant::now(),
            tags: Vec::new(),
        };
        match HttpFlvReader::connect(&url).await {
            Err(e) => join.connect_error = Some(format!("{e:#}")),
            Ok(mut reader) => {
                join.connected_at = reader.connected_at;
                let leave_at = tokio::time::Instant::from_std(reader.connected_at + stay);
                loop {
                    match tokio::time::timeout_at(leave_at, reader.next_tag(Duration::from_secs(3))).await {
                        Err(_) => break, // time to leave
                        Ok(Ok(tag)) => join.tags.push(tag),
                        Ok(Err(e)) => {
                            join.read_error = Some(format!("{e:#}"));
                            break;
                        }
                    }
                }
            }
        }
        joins.push(join);
    }
    joins
}

/// A reader that sends its request and then never reads (a tiny receive buffer fills fast).
async fn stalled_reader(http_addr: &str, path: &str) -> tokio::net::TcpStream {
    let addr = http_addr.parse().expect("http addr");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut stream = socket.connect(addr).await.expect("connect stalled reader");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {http_addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send request");
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn churning_consumers_start_at_keyframes_and_never_stall_the_publisher() {
    let seed: u64 = std::env::var("CHURN_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_2024);
    eprintln!("hub_churn seed {seed} (set CHURN_SEED to replay)");

    let gw = Gateway::start();
    let api = gw.api();
    let mut ffmpeg = Ffmpeg::publish(&gw.rtmp_url("/live/c"), PublishOptions::default());
    api.wait_live("c", Duration::from_secs(20)).await.expect("publisher live");
    let api_ref = &api;

    let url = gw.http_url("/live/c.flv");
    let stayer = BackgroundReader::start(&url).await.expect("long-lived reader");
    let _stalled =
        [stalled_reader(gw.http_addr(), "/live/c.flv").await, stalled_reader(gw.http_addr(), "/live/c.flv").await];

    let until = Instant::now() + CHURN_FOR;
    let tasks: Vec<_> = (0..CHURNERS).map(|c| tokio::spawn(churn(url.clone(), c, seed, until))).collect();
    let mut joins = Vec::new();
    for task in tasks {
        joins.extend(task.await.expect("churner task"));
    }

    // Every join connected, started with a sequence header then a keyframe, quickly, and
    // then got data without a long silence.
    assert!(joins.len() as u64 >= CHURNERS * 3, "only {} joins in {CHURN_FOR:?}", joins.len());
    for join in &joins {
        let who = format!("churner {} join {}", join.churner, join.index);
        assert!(join.connect_error.is_none(), "{who}: {:?}", join.connect_error);
        assert!(join.read_error.is_none(), "{who}: {:?} after {} tags", join.read_error, join.tags.len());
        check_join_start(&join.tags).unwrap_or_else(|e| panic!("{who}: {e:#}"));
        let first_frame = join.tags.iter().find(|t| t.is_video_frame()).expect("checked above");
        let waited = first_frame.arrival.duration_since(join.connected_at);
        assert!(waited < MAX_GAP, "{who}: first keyframe after {waited:?}");
        let gap = max_arrival_gap(&join.tags);
        assert!(gap < MAX_GAP, "{who}: {gap:?} without data");
    }

    // The reader that stayed saw continuous data whose timestamps kept pace with wall time.
    let tags = stayer.tags();
    assert!(stayer.ended().is_none(), "long-lived reader stopped: {:?}", stayer.ended());
    check_join_start(&tags).expect("long-lived reader starts at a keyframe");
    let gap = max_arrival_gap(&tags);
    assert!(gap < MAX_GAP, "long-lived reader: {gap:?} without data");
    let video: Vec<&FlvTag> = tags.iter().filter(|t| t.kind == TagKind::Video && t.coded_frame).collect();
    let (first, last) = (video.first().expect("video"), video.last().expect("video"));
    let media = Duration::from_millis(u64::from(last.timestamp_ms.saturating_sub(first.timestamp_ms)));
    let wall = last.arrival.duration_since(first.arrival);
    assert!(wall >= CHURN_FOR, "long-lived reader covered only {wall:?}");
    let drift = media.abs_diff(wall);
    // The first frames may be a burst from the GOP cache (up to a GOP ahead of wall time).
    assert!(drift < Duration::from_millis(1500), "media time {media:?} vs wall time {wall:?}");
    let since_last = Instant::now().duration_since(last.arrival);
    assert!(since_last < MAX_GAP, "no video for {since_last:?} at the end");
    assert!(ffmpeg.is_running(), "publisher stopped:\n{}", ffmpeg.stderr_tail());

    // Every churner that left is no longer counted (the stalled readers may or may not be).
    wait_until(Duration::from_secs(10), "consumers back to the long-lived reader (+ stalled ones)", || async move {
        let s = api_ref.stream("c").await.map_err(|e| e.to_string())?.ok_or("no stream")?;
        let n = s.total_consumers();
        if (1..=3).contains(&n) {
            Ok(())
        } else {
            Err(format!("{:?}", s.consumers))
        }
    })
    .await
    .expect("left consumers are removed");
}
