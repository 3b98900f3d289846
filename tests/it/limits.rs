//! Hostile clients against the real gateway binary: memory bombs (RTMP chunks declaring huge
//! messages, an MPEG-TS POST with endless PES packets), slow HTTP headers, and connection
//! floods under a low open-files limit. Each attack is refused (its connection closed, or an
//! HTTP error naming the limit) while the gateway's memory stays bounded and `/healthz` and
//! new viewers keep working.

use crate::common;

use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::raw_rtmp::{chunk_type0, RawRtmp};
use common::{BackgroundReader, Ffmpeg, Gateway, PublishOptions};

/// Small limits so the attacks run in seconds.
const LIMITS: &str = "limits: { max_message_bytes: 1048576, connection_buffer_bytes: 2097152, http_header_timeout_seconds: 2, http_body_timeout_seconds: 2 }\n";
const MIB: u64 = 1 << 20;

/// The process's resident set (VmRSS) in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kb * 1024
}

/// Samples RSS every 20 ms until dropped; `peak()` is the highest seen.
struct RssWatch {
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssWatch {
    fn start(pid: u32) -> RssWatch {
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(rss(pid)));
        let p = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                p.fetch_max(rss(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        RssWatch { peak, task }
    }

    fn peak(&self) -> u64 {
        self.peak.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// --- AMF0 and RTMP commands, written by hand -------------------------------------------------

fn amf_str(out: &mut Vec<u8>, s: &str) {
    out.push(0x02);
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn amf_num(out: &mut Vec<u8>, n: f64) {
    out.push(0x00);
    out.extend_from_slice(&n.to_be_bytes());
}

/// A command message (AMF0, type 20) on chunk stream 3, cut into 128-byte chunks.
fn command(stream_id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = chunk_type0(3, 0, 20, stream_id, body.len() as u32, &body[..body.len().min(128)]);
    for piece in body.chunks(128).skip(1) {
        out.push(0xC3);
        out.extend_from_slice(piece);
    }
    out
}

/// connect to /live, createStream, publish `key` on message stream 1.
fn publish_commands(key: &str) -> Vec<u8> {
    let mut connect = Vec::new();
    amf_str(&mut connect, "connect");
    amf_num(&mut connect, 1.0);
    connect.push(0x03);
    connect.extend_from_slice(&3u16.to_be_bytes());
    connect.extend_from_slice(b"app");
    amf_str(&mut connect, "live");
    connect.extend_from_slice(&[0, 0, 9]);
    let mut create = Vec::new();
    amf_str(&mut create, "createStream");
    amf_num(&mut create, 2.0);
    create.push(0x05);
    let mut publish = Vec::new();
    amf_str(&mut publish, "publish");
    amf_num(&mut publish, 0.0);
    publish.push(0x05);
    amf_str(&mut publish, key);
    amf_str(&mut publish, "live");
    let mut out = command(0, &connect);
    out.extend(command(0, &create));
    out.extend(command(1, &publish));
    out
}

/// A publisher that declares a 1 MiB video message on each of 60 chunk streams and sends
/// 64 KiB of each, 60 times over: 3.75 MiB per round, 225 MiB if nothing stopped it. Returns
/// the bytes written before the gateway closed the connection. Its send buffer is fixed at
/// 256 KiB: left to the kernel's autotuning it grows to several MiB on a loaded machine, and
/// what it held would count as sent.
async fn rtmp_bomb(addr: String, key: String) -> anyhow::Result<u64> {
    let mut raw = RawRtmp::connect_with_send_buffer(&addr, 256 * 1024).await?;
    raw.handshake().await?;
    raw.send(&publish_commands(&key)).await?;
    // Set Chunk Size 64 KiB.
    raw.send(&chunk_type0(2, 0, 1, 0, 4, &65536u32.to_be_bytes())).await?;
    let piece = vec![0x17u8; 65536];
    let mut sent = 0u64;
    for round in 0..60u32 {
        for csid in 4..64u8 {
            let mut chunk = if round == 0 { chunk_type0(csid, 0, 9, 1, MIB as u32, &[]) } else { vec![0xC0 | csid] };
            chunk.extend_from_slice(&piece);
            if raw.send(&chunk).await.is_err() {
                return Ok(sent);
            }
            sent += chunk.len() as u64;
        }
    }
    raw.expect_closed(Duration::from_secs(5)).await?;
    Ok(sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_chunk_bombs_are_refused_and_memory_stays_bounded() {
    let gw = Gateway::start_with(&[], Some(LIMITS));
    let pid = gw.pid();
    let before = rss(pid);
    let watch = RssWatch::start(pid);

    // Before publishing, a connection may only send commands: a 1 MiB one is refused at once.
    let mut raw = RawRtmp::connect(gw.rtmp_addr()).await.expect("connect");
    raw.handshake().await.expect("handshake");
    let _ = raw.send(&chunk_type0(3, 0, 20, 0, MIB as u32, &[0x02; 128])).await;
    raw.expect_closed(Duration::from_secs(2)).await.expect("a 1 MiB command closes the connection");

    let started = Instant::now();
    let bombs: Vec<_> =
        (0..20).map(|i| tokio::spawn(rtmp_bomb(gw.rtmp_addr().to_string(), format!("bomb{i}")))).collect();
    let mut total = 0;
    for b in bombs {
        let sent = b.await.expect("join").expect("bomb connection");
        // Refused once its 2 MiB budget was used (a round more may be in the socket buffers).
        assert!(sent < 12 * MIB, "a connection could send {sent} bytes before it was closed");
        total += sent;
    }
    let elapsed = started.elapsed();
    let peak = watch.peak();
    let after = rss(pid);
    eprintln!(
        "20 bombs: {} MiB sent in {elapsed:?}; RSS {} MiB before, peak {} MiB, after {} MiB",
        total / MIB,
        before / MIB,
        peak / MIB,
        after / MIB
    );
    assert!(elapsed < Duration::from_secs(10), "closing the bombs took {elapsed:?}");
    // 20 connections x 2 MiB budget, plus room for read buffers and the allocator.
    assert!(peak < before + 20 * 2 * MIB + 48 * MIB, "peak RSS {} MiB from {} MiB", peak / MIB, before / MIB);
    assert!(gw.stderr_tail().contains("passed a configured limit"), "no log line for the refusals");
    assert_eq!(gw.api().healthz().await.expect("healthz"), 200);
    assert!(gw.api().streams().await.expect("streams").is_empty(), "a refused publisher left a stream");
}

// --- MPEG-TS by hand --------------------------------------------------------------------------

fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= (b as u32) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 { (crc << 1) ^ 0x04C1_1DB7 } else { crc << 1 };
        }
    }
    crc
}

/// One TS packet on `pid` carrying `payload` (padded with an adaptation field if short).
fn ts_packet(pid: u16, start: bool, cc: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x47, (u8::from(start) << 6) | (pid >> 8) as u8, pid as u8];
    if payload.len() >= 184 {
        p.push(0x10 | (cc & 0x0F));
        p.extend_from_slice(&payload[..184]);
    } else {
        p.push(0x30 | (cc & 0x0F));
        let stuffing = 184 - payload.len() - 1;
        p.push(stuffing as u8);
        if stuffing > 0 {
            p.push(0);
            p.extend(std::iter::repeat_n(0xFF, stuffing - 1));
        }
        p.extend_from_slice(payload);
    }
    p
}

/// A PSI section (pointer field first) with its CRC.
fn section(table_id: u8, id: u16, body: &[u8]) -> Vec<u8> {
    let length = 5 + body.len() + 4;
    let mut s = vec![table_id, 0xB0 | (length >> 8) as u8, length as u8];
    s.extend_from_slice(&id.to_be_bytes());
    s.extend_from_slice(&[0xC1, 0, 0]);
    s.extend_from_slice(body);
    let crc = crc32_mpeg2(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    let mut out = vec![0];
    out.extend(s);
    out
}

/// PAT and a PMT listing MPEG-1 video on `pids` (every one a candidate for buffering).
fn tables(pids: &[u16]) -> Vec<u8> {
    let mut out = ts_packet(0, true, 0, &section(0, 1, &[0, 1, 0xF0, 0x00]));
    let mut pmt = vec![0xE0 | (pids[0] >> 8) as u8, pids[0] as u8, 0xF0, 0];
    for pid in pids {
        pmt.extend_from_slice(&[0x01, 0xE0 | (pid >> 8) as u8, *pid as u8, 0xF0, 0]);
    }
    // 40 entries do not fit one packet: the section continues in the next ones.
    for (i, piece) in section(2, 1, &pmt).chunks(184).enumerate() {
        out.extend(ts_packet(0x1000, i == 0, i as u8, piece));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ts_post_with_endless_pes_packets_is_refused_with_413() {
    let gw = Gateway::start_with(&[], Some(LIMITS));
    let pid = gw.pid();
    let before = rss(pid);
    let watch = RssWatch::start(pid);

    // 40 video PIDs, each starting a PES without length, then continuation packets in turn:
    // 40 x 8 MiB could be buffered by the old demuxer; the budget here is 2 MiB.
    let pids: Vec<u16> = (0x100..0x128).collect();
    let mut body = tables(&pids);
    let pes_start = [0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1];
    for (i, &p) in pids.iter().enumerate() {
        body.extend(ts_packet(p, true, i as u8, &[&pes_start[..], &[0u8; 170][..]].concat()));
    }
    for round in 1..400u32 {
        for &p in &pids {
            body.extend(ts_packet(p, false, round as u8, &[0xAA; 184]));
        }
    }
    let size = body.len() as u64;
    let (reply, sent) = chunked_post(gw.http_addr(), "/h5/tsbomb", body).await.expect("POST /h5/tsbomb");
    let peak = watch.peak();
    eprintln!(
        "TS bomb of {} MiB ({} KiB sent): {reply:?}; RSS {} MiB before, peak {} MiB",
        size / MIB,
        sent >> 10,
        before / MIB,
        peak / MIB
    );
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("over the limit") || reply.contains("longer than the limit"), "{reply}");
    assert!(peak < before + 48 * MIB, "peak RSS {} MiB from {} MiB", peak / MIB, before / MIB);
    assert!(gw.api().stream("tsbomb").await.expect("stream").is_none(), "the refused POST left a stream");
}

/// Sends an HTTP request's first line and one header line, then a header byte every
/// 500 ms, never ending the headers; returns how long the gateway kept the connection.
async fn slowloris(addr: String) -> anyhow::Result<Duration> {
    let mut s = TcpStream::connect(&addr).await?;
    let started = Instant::now();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await?;
    let mut buf = [0u8; 1024];
    loop {
        tokio::select! {
            r = s.read(&mut buf) => match r {
                Ok(0) | Err(_) => return Ok(started.elapsed()),
                Ok(_) => {}
            },
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                if s.write_all(b"a").await.is_err() {
                    return Ok(started.elapsed());
                }
                if started.elapsed() > Duration::from_secs(15) {
                    anyhow::bail!("still open after 15 s");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_http_connections_are_closed() {
    let gw = Gateway::start_with(&[], Some(LIMITS));
    let addr = gw.http_addr().to_string();
    let slow: Vec<_> = (0..50).map(|_| tokio::spawn(slowloris(addr.clone()))).collect();
    // Meanwhile the gateway answers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    assert_eq!(gw.api().healthz().await.expect("healthz"), 200);
    assert!(t.elapsed() < Duration::from_secs(1), "/healthz took {:?}", t.elapsed());
    for s in slow {
        let held = s.await.expect("join").expect("slowloris");
        assert!(
            held >= Duration::from_millis(1500) && held < Duration::from_secs(5),
            "a slow client was held {held:?} (timeout 2 s)"
        );
    }

    // A kept-alive connection that sends nothing after its answer is closed too.
    let mut s = TcpStream::connect(&addr).await.expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("request");
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(8), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("an idle kept-alive connection was still open after 8 s"),
        }
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
    let idle = started.elapsed();
    assert!(idle < Duration::from_secs(5), "idle connection closed after {idle:?}");
    assert!(gw.stderr_tail().contains("no complete request headers within"), "no log line for the timeouts");
}

/// Issue 10: headers were timed out, bodies were not. A client that sends a request's headers
/// and then trickles its body (a byte every 500 ms of a declared 1,000) gets 408 once the body
/// timeout (2 s here) passes, and its connection is closed, while it is still sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_trickles_is_answered_408_and_closed() {
    let gw = Gateway::start_with(&[], Some(LIMITS));
    let s = TcpStream::connect(gw.http_addr()).await.expect("connect");
    let (mut rd, mut wr) = s.into_split();
    let head = "POST /api/v1/streams/slow/pushes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{";
    wr.write_all(head.as_bytes()).await.expect("headers");
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if wr.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("a trickling body held the connection for 10 s: {}", String::from_utf8_lossy(&got)),
        }
    }
    let held = started.elapsed();
    trickle.abort();
    let reply = String::from_utf8_lossy(&got);
    eprintln!("trickling body answered after {held:?}: {reply:?}");
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("did not arrive within"), "{reply}");
    assert!(
        held >= Duration::from_millis(1500) && held < Duration::from_secs(6),
        "answered after {held:?} (timeout 2 s)"
    );
    // The gateway's stderr is drained by a thread: give it a moment under load.
    let mut logged = false;
    for _ in 0..30 {
        logged = gw.stderr_tail().contains("request body not received in time");
        if logged {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(logged, "no log line for the timeout");
    // A body that comes at once is still served.
    let ok = gw
        .api()
        .post_json("/api/v1/streams/slow/pushes", &serde_json::json!({ "url": "rtmp://127.0.0.1:1/live/x" }))
        .await
        .expect("POST");
    assert_eq!(ok.status, 201, "{}", ok.body);
}

/// Opens `n` TCP connections to `addr` and keeps them (until dropped).
async fn hold(addr: &str, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => held.push(s),
            other => panic!("connect {addr} failed after {} connections: {other:?}", held.len()),
        }
    }
    held
}

/// How many of `conns` the peer closed within `wait`.
async fn closed_count(conns: &mut [TcpStream], wait: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + wait;
    let mut closed = 0;
    let mut buf = [0u8; 64];
    for c in conns.iter_mut() {
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout_at(deadline, c.read(&mut buf)).await {
            closed += 1;
        }
    }
    closed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_floods_under_a_low_open_files_limit_are_refused_and_health_and_viewers_work() {
    // 256 descriptors, soft and hard: the gateway cannot raise it, so its caps come from it.
    let gw = Gateway::start_with_open_files(&[], Some("limits: { http_header_timeout_seconds: 30 }\n"), 256);
    let publisher = Ffmpeg::publish(&gw.rtmp_url("/live/k"), PublishOptions::default());
    gw.api().wait_live("k", Duration::from_secs(20)).await.expect("publisher live");

    // 300 RTMP connections, more than the descriptors the gateway has.
    let mut rtmp = hold(gw.rtmp_addr(), 300).await;
    let refused = closed_count(&mut rtmp[250..], Duration::from_secs(2)).await;
    assert_eq!(refused, 50, "RTMP connections past the cap are closed at once");
    let t = Instant::now();
    assert_eq!(gw.api().healthz().await.expect("healthz during the RTMP flood"), 200);
    assert!(t.elapsed() < Duration::from_secs(1), "/healthz took {:?}", t.elapsed());
    let viewer =
        BackgroundReader::start(&gw.http_url("/live/k.flv")).await.expect("a new viewer during the RTMP flood");
    viewer.expect_flowing(30, Duration::from_secs(10)).await.expect("the new viewer gets media");

    // 300 idle HTTP connections: /healthz is still answered; a new viewer past the cap is
    // told why (503), not left waiting.
    let http = hold(gw.http_addr(), 300).await;
    // The idle ones past the cap are dropped within a second, freeing room for /healthz.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = Instant::now();
    let health = raw_get(gw.http_addr(), "/healthz").await.expect("healthz during the HTTP flood");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let refused = raw_get(gw.http_addr(), "/live/k.flv").await.expect("a viewer past the cap");
    assert!(refused.starts_with("HTTP/1.1 503") && refused.contains("too many connections"), "{refused}");
    assert!(t.elapsed() < Duration::from_secs(2), "answers took {:?}", t.elapsed());
    // The viewer admitted before the flood keeps playing.
    viewer.expect_flowing(30, Duration::from_secs(10)).await.expect("the earlier viewer keeps playing");
    assert!(gw.stderr_tail().contains("connection refused: the listener holds its maximum"), "no log line");
    drop(http);
    drop(rtmp);
    drop(publisher);
}

/// One GET on a fresh connection; the whole answer (the gateway closes after it, or 2 s).
async fn raw_get(addr: &str, path: &str) -> anyhow::Result<String> {
    let mut s = TcpStream::connect(addr).await.context("connect")?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if got.windows(4).any(|w| w == b"\r\n\r\n") && path == "/healthz" {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&got).into_owned())
}

/// POSTs `body` with chunked encoding (as ffmpeg does) while reading the answer, and stops
/// sending once it arrives; returns the answer and the body bytes sent.
async fn chunked_post(addr: &str, path: &str, body: Vec<u8>) -> anyhow::Result<(String, usize)> {
    let s = TcpStream::connect(addr).await.context("connect")?;
    let (mut rd, mut wr) = s.into_split();
    let head =
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: video/mp2t\r\nTransfer-Encoding: chunked\r\n\r\n");
    let writer = tokio::spawn(async move {
        let mut sent = 0;
        if wr.write_all(head.as_bytes()).await.is_err() {
            return sent;
        }
        for piece in body.chunks(32 * 1024) {
            let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
            chunk.extend_from_slice(piece);
            chunk.extend_from_slice(b"\r\n");
            if wr.write_all(&chunk).await.is_err() {
                return sent;
            }
            sent += piece.len();
        }
        let _ = wr.write_all(b"0\r\n\r\n").await;
        sent
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => anyhow::bail!("no complete answer within 20 s: {}", String::from_utf8_lossy(&got)),
        }
        let text = String::from_utf8_lossy(&got);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>()))
                .transpose()?;
            if length.is_some_and(|len| got.len() >= end + 4 + len) {
                break;
            }
        }
    }
    // The gateway closes after refusing, which ends the writer.
    let sent = match tokio::time::timeout(Duration::from_secs(5), writer).await {
        Ok(Ok(n)) => n,
        _ => anyhow::bail!("the gateway kept reading the refused body"),
    };
    Ok((String::from_utf8_lossy(&got).into_owned(), sent))
}
