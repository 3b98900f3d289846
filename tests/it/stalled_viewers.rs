//! Viewers that stop reading, black-box: raw TCP clients (a small receive buffer, so the
//! gateway's writes stall soon) that ask for the HTTP-FLV stream or play it over RTMP, then
//! never read again. They must be dropped from the API's consumers within a bounded time,
//! their sockets closed, the gateway's memory bounded, and a normal viewer of the same stream
//! must not notice.

use crate::common;

use std::time::{Duration, Instant};

use common::raw_rtmp::RawRtmp;
use common::{wait_until, BackgroundReader, Ffmpeg, Gateway, PublishOptions};
use tokio::io::AsyncWriteExt;

const STALLED_FLV: usize = 10;
const STALLED_RTMP: usize = 10;
const RECV_BUFFER: u32 = 4096;
/// The bound the gateway promises: lags every keyframe (1 s here) or 8 s without progress.
const DROPPED_WITHIN: Duration = Duration::from_secs(25);

fn proc_status(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

async fn stalled_http_flv(addr: &str, key: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(RECV_BUFFER).expect("SO_RCVBUF");
    let mut stream = socket.connect(addr.parse().expect("addr")).await.expect("connect");
    let request = format!("GET /live/{key}.flv HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("request");
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_that_stop_reading_are_dropped_and_others_play_on() {
    let gw = Gateway::start();
    let api = gw.api();
    let pid = gw.pid();
    let _publisher = Ffmpeg::publish(&gw.rtmp_url("/live/k"), PublishOptions::default());
    api.wait_live("k", Duration::from_secs(20)).await.expect("live");
    let normal = BackgroundReader::start(&gw.http_url("/live/k.flv")).await.expect("normal viewer");
    normal.expect_flowing(30, Duration::from_secs(10)).await.expect("normal viewer plays");
    let (fds_before, rss_before) = (open_fds(pid), proc_status(pid, "VmRSS:"));

    let mut held_flv = Vec::new();
    for _ in 0..STALLED_FLV {
        held_flv.push(stalled_http_flv(gw.http_addr(), "k").await);
    }
    let mut held_rtmp = Vec::new();
    for _ in 0..STALLED_RTMP {
        let mut raw = RawRtmp::connect_with_recv_buffer(gw.rtmp_addr(), RECV_BUFFER).await.expect("RTMP connect");
        raw.handshake().await.expect("handshake");
        raw.start_play("live", "k").await.expect("play");
        held_rtmp.push(raw);
    }
    let all = (1 + STALLED_FLV + STALLED_RTMP) as u64;
    wait_until(Duration::from_secs(10), "every viewer attached", || async {
        match api.stream("k").await {
            Ok(Some(s)) if s.total_consumers() == all => Ok(()),
            other => Err(format!("{:?}", other.map(|s| s.map(|s| s.consumers)))),
        }
    })
    .await
    .expect("attached");
    let stalled_at = Instant::now();
    let normal_tags_before = normal.count();

    let mut peak_rss = 0;
    wait_until(DROPPED_WITHIN, "the stalled viewers dropped", || {
        peak_rss = peak_rss.max(proc_status(pid, "VmRSS:"));
        async {
            match api.stream("k").await {
                Ok(Some(s)) if s.total_consumers() == 1 => Ok(()),
                other => Err(format!("{:?}", other.map(|s| s.map(|s| s.consumers)))),
            }
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.stderr_tail()));
    let dropped_after = stalled_at.elapsed();
    // Their sockets are closed too (hyper's is closed by the write-stall bound on HTTP
    // connections), still without the clients reading.
    wait_until(Duration::from_secs(20), "the stalled viewers' sockets closed", || async {
        let fds = open_fds(pid);
        if fds <= fds_before + 2 {
            Ok(())
        } else {
            Err(format!("{fds} fds open, {fds_before} before"))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.stderr_tail()));
    let rss_after = proc_status(pid, "VmRSS:");
    eprintln!(
        "stalled viewers dropped after {dropped_after:?}; RSS {rss_before} kB before, peak {peak_rss} kB, {rss_after} kB after"
    );
    assert!(peak_rss < rss_before + 64 * 1024, "RSS grew from {rss_before} kB to {peak_rss} kB");

    // The normal viewer never waited on them.
    normal.expect_flowing(30, Duration::from_secs(5)).await.expect("normal viewer still plays");
    let tags = normal.tags();
    let during = &tags[normal_tags_before.saturating_sub(1)..];
    let gap = common::flv::max_arrival_gap(during);
    assert!(gap < Duration::from_millis(1500), "the normal viewer stalled for {gap:?}");
    assert!(normal.ended().is_none(), "{:?}", normal.ended());
    let metrics = api.get("/metrics").await.expect("metrics").body;
    let dropped_slow: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("interop_consumers_dropped_slow_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert_eq!(dropped_slow, (STALLED_FLV + STALLED_RTMP) as u64, "counted as dropped for being slow");
    drop((held_flv, held_rtmp));
}

/// A player's queue is bounded by media time, not bytes: a low-bitrate stream (a few hundred
/// kb/s, where the old 1 MiB bound held many seconds) whose player pauses for 6 s resumes
/// near live after a skip to a keyframe, and is not dropped for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_that_pauses_on_a_low_bitrate_stream_resumes_near_live() {
    use interop_gateway::protocols::rtmp::{ClientConn, RtmpUrl};
    let gw = Gateway::start();
    let api = gw.api();
    let small = PublishOptions { width: 320, height: 180, ..PublishOptions::default() };
    let _publisher = Ffmpeg::publish(&gw.rtmp_url("/live/slow"), small);
    api.wait_live("slow", Duration::from_secs(20)).await.expect("live");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(RECV_BUFFER).expect("SO_RCVBUF");
    let io = socket.connect(gw.rtmp_addr().parse().expect("addr")).await.expect("connect");
    let url: RtmpUrl = gw.rtmp_url("/live/slow").parse().expect("url");
    let mut player = ClientConn::connect_over(io, &url, Duration::from_secs(5)).await.expect("RTMP connect");
    player.play().await.expect("play");
    let (before, bytes) = read_video(&mut player, Instant::now() + Duration::from_secs(4)).await;
    let rate_kbps = bytes as f64 * 8.0 / 4.0 / 1000.0;
    assert!(before.len() > 60, "the player plays: {} pictures", before.len());
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (after, _) = read_video(&mut player, Instant::now() + Duration::from_secs(3)).await;
    let skip = after
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .chain([after.first().copied().unwrap_or(0).saturating_sub(*before.last().unwrap())])
        .max()
        .unwrap_or(0);
    eprintln!("{rate_kbps:.0} kb/s; after the pause: {} pictures, longest skip {skip} ms", after.len());
    assert!(rate_kbps < 1000.0, "a low-bitrate stream: {rate_kbps:.0} kb/s (1 MiB is over 8 s of it)");
    assert!(skip >= 3000, "no more than 2 s held: the player skipped ahead (longest skip {skip} ms)");
    assert!(after.len() > 30, "and plays on after the pause: {} pictures", after.len());
    let consumers = api.stream("slow").await.expect("api").map(|s| s.total_consumers());
    assert_eq!(consumers, Some(1), "a pause is a lag, not a drop");
}

/// Reads a player until `until`: the video timestamps, and the media bytes.
async fn read_video(
    player: &mut interop_gateway::protocols::rtmp::ClientConn<tokio::net::TcpStream>,
    until: Instant,
) -> (Vec<u32>, usize) {
    use interop_gateway::protocols::rtmp::{ClientEvent, MediaKind};
    let (mut stamps, mut bytes) = (Vec::new(), 0usize);
    while let Ok(Ok(Some(event))) = tokio::time::timeout_at(until.into(), player.next_event()).await {
        if let ClientEvent::Media(m) = event {
            bytes += m.payload.len();
            if m.kind == MediaKind::Video {
                stamps.push(m.timestamp);
            }
        }
    }
    (stamps, bytes)
}
