//! Bench tool: N viewers of one live stream, for fan-out runs, by HTTP-FLV or by RTMP.
//!
//! usage: flv_readers URL N SECONDS [WARMUP]
//!
//! - `http://HOST:PORT/PATH`: N HTTP-FLV viewers (GET, chunked or not); the FLV tags are
//!   parsed on the fly (headers and two body bytes kept, bodies skipped).
//! - `rtmp://HOST:PORT/APP/STREAM`: N RTMP players, each the gateway's own RTMP client
//!   (`interop_gateway::protocols::rtmp::ClientConn`: handshake, connect, createStream, play,
//!   Set Chunk Size 4096 for what it sends, acknowledgements per the server's window).
//!
//! Every viewer runs for SECONDS, all on one thread. Prints one JSON line at the end:
//! - `bytes`: HTTP: bytes read; RTMP: audio/video/data message bytes;
//! - `with_data`: viewers that got any; `max_stall_ms`: the longest gap between two reads
//!   (HTTP) or two messages (RTMP) of any viewer once the warm-up is over (the time to join,
//!   a thousand viewers connecting at once, is not a stall);
//! - added latency: per audio/video tag (sequence headers aside) that arrived at least WARMUP
//!   seconds (default 4) after the start and 2 s after the viewer's first tag (so the cached-GOP
//!   burst is out), d = (arrival - the viewer's first arrival) - (tag timestamp - its first
//!   timestamp): how late the tag came against the schedule its timestamps set. A viewer's
//!   smallest d is its "on time"; `added_p50_ms`, `added_p95_ms`, `added_max_ms` are the
//!   percentiles over all viewers' tags of (d - that viewer's smallest d), `tags` how many
//!   tags were counted. A server that holds media back (batched writes) shows it here; the
//!   publisher's own jitter shows too (the same for every server it feeds).
//!   `audio_added_p95_ms`, `video_added_p95_ms`: the same per track, against the track's own
//!   smallest d (without a constant offset between the tracks' pacing).

use std::time::{Duration, Instant};

use interop_gateway::protocols::rtmp::{ClientConn, ClientEvent, MediaKind, RtmpUrl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// After its first tag, a viewer's tags count for the latency once this much has passed.
const BURST: Duration = Duration::from_secs(2);

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 && args.len() != 5 {
        eprintln!("usage: flv_readers http://HOST:PORT/PATH|rtmp://HOST:PORT/APP/STREAM N SECONDS [WARMUP]");
        std::process::exit(2);
    }
    let n: usize = args[2].parse().unwrap_or(1);
    let secs: f64 = args[3].parse().unwrap_or(10.0);
    let warmup: f64 = args.get(4).and_then(|w| w.parse().ok()).unwrap_or(4.0);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let count_from = start + Duration::from_secs_f64(warmup);
    let mut tasks = Vec::new();
    if args[1].starts_with("rtmp://") {
        let url: RtmpUrl = match args[1].parse() {
            Ok(u) => u,
            Err(e) => {
                eprintln!("flv_readers: bad RTMP URL {}: {e:?}", args[1]);
                std::process::exit(2);
            }
        };
        for _ in 0..n {
            let url = url.clone();
            tasks.push(tokio::spawn(async move { play_one(&url, deadline, count_from).await }));
        }
    } else {
        let url = args[1].trim_start_matches("http://").to_string();
        let (host, path) = url.split_once('/').unwrap_or((&url, ""));
        for _ in 0..n {
            let (host, path) = (host.to_string(), format!("/{path}"));
            tasks.push(tokio::spawn(async move { read_one(&host, &path, deadline, count_from).await }));
        }
    }
    let (mut bytes, mut ok, mut max_stall) = (0u64, 0usize, Duration::ZERO);
    let (mut added, mut by_track): (Vec<u32>, [Vec<u32>; 2]) = Default::default();
    for t in tasks {
        if let Ok(v) = t.await {
            bytes += v.bytes;
            if v.bytes > 0 {
                ok += 1;
            }
            max_stall = max_stall.max(v.stall);
            v.lat.relative_to_min(&mut added, &mut by_track);
        }
    }
    let (p50, p95, max) = percentiles(&mut added);
    let (_, audio_p95, _) = percentiles(&mut by_track[0]);
    let (_, video_p95, _) = percentiles(&mut by_track[1]);
    println!(
        "{{\"viewers\":{n},\"with_data\":{ok},\"bytes\":{bytes},\"max_stall_ms\":{},\"tags\":{},\"added_p50_ms\":{p50},\"added_p95_ms\":{p95},\"added_max_ms\":{max},\"audio_added_p95_ms\":{audio_p95},\"video_added_p95_ms\":{video_p95}}}",
        max_stall.as_millis(),
        added.len()
    );
}

/// One viewer's outcome.
struct Viewer {
    bytes: u64,
    stall: Duration,
    lat: Latency,
}

/// Each counted tag's lateness against the viewer's first tag.
struct Latency {
    count_from: Instant,
    /// The first tag's arrival and timestamp (ms).
    first: Option<(Instant, u32)>,
    /// d in µs per counted tag: audio, video.
    d_us: [Vec<i64>; 2],
}

impl Latency {
    fn new(count_from: Instant) -> Self {
        Latency { count_from, first: None, d_us: [Vec::new(), Vec::new()] }
    }

    fn tag(&mut self, now: Instant, ts: u32, video: bool) {
        let (t0, ts0) = *self.first.get_or_insert((now, ts));
        if now < self.count_from || now < t0 + BURST {
            return;
        }
        // Timestamps may step back a little (audio and video interleaved): signed difference.
        let media_us = i64::from(ts.wrapping_sub(ts0) as i32) * 1000;
        self.d_us[usize::from(video)].push(now.duration_since(t0).as_micros() as i64 - media_us);
    }

    /// Appends (d - min d) in µs of every counted tag to `out`, and per track (audio, video)
    /// against the track's own smallest d to `by_track` (a constant offset between the
    /// tracks' pacing, the publisher's interleaving say, is not in those).
    fn relative_to_min(self, out: &mut Vec<u32>, by_track: &mut [Vec<u32>; 2]) {
        fn rel(d: &[i64], min: i64) -> impl Iterator<Item = u32> + '_ {
            d.iter().map(move |d| (d - min).min(i64::from(u32::MAX)) as u32)
        }
        if let Some(min) = self.d_us.iter().flatten().min().copied() {
            self.d_us.iter().for_each(|d| out.extend(rel(d, min)));
        }
        for (d, track) in self.d_us.iter().zip(by_track.iter_mut()) {
            if let Some(min) = d.iter().min().copied() {
                track.extend(rel(d, min));
            }
        }
    }
}

/// p50, p95 and max in ms (one decimal), 0 when there is nothing.
fn percentiles(v: &mut [u32]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut at = |q: f64| {
        let k = ((v.len() - 1) as f64 * q).round() as usize;
        *v.select_nth_unstable(k).1
    };
    let (p50, p95, max) = (at(0.5), at(0.95), at(1.0));
    let ms = |us: u32| (f64::from(us) / 100.0).round() / 10.0;
    (ms(p50), ms(p95), ms(max))
}

/// Whether an FLV/RTMP audio or video body is a sequence header (AVC/HEVC config, AAC
/// AudioSpecificConfig), not a frame.
fn is_sequence_header(tag_type: u8, body: &[u8]) -> bool {
    match (tag_type, body) {
        (9, [b0, 0, ..]) => matches!(b0 & 0x0f, 7 | 12) && b0 & 0x80 == 0,
        (9, [b0, ..]) => b0 & 0x80 != 0 && b0 & 0x0f == 0, // enhanced RTMP: PacketTypeSequenceStart
        (8, [b0, 0, ..]) => b0 >> 4 == 10,
        _ => false,
    }
}

/// Incremental FLV parser: keeps each tag's header and first two body bytes, skips the rest.
struct FlvParser {
    state: FlvState,
    acc: [u8; 11],
    have: usize,
    tag_type: u8,
    ts: u32,
    body: [u8; 2],
    body_want: usize,
    /// Bytes left to skip (rest of a body and its PreviousTagSize, or the file header).
    skip: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum FlvState {
    Skip,
    TagHead,
    TagBody,
}

impl FlvParser {
    fn new() -> Self {
        // The file header (9 bytes) and PreviousTagSize0 (4).
        FlvParser {
            state: FlvState::Skip,
            acc: [0; 11],
            have: 0,
            tag_type: 0,
            ts: 0,
            body: [0; 2],
            body_want: 0,
            skip: 13,
        }
    }

    /// Feeds bytes; calls `on_tag(type, timestamp ms, first body bytes)` per complete tag head.
    fn feed(&mut self, mut data: &[u8], mut on_tag: impl FnMut(u8, u32, &[u8])) {
        loop {
            match self.state {
                FlvState::Skip => {
                    let k = self.skip.min(data.len());
                    self.skip -= k;
                    data = &data[k..];
                    if self.skip > 0 {
                        return;
                    }
                    self.state = FlvState::TagHead;
                    self.have = 0;
                }
                FlvState::TagHead => {
                    if data.is_empty() {
                        return;
                    }
                    let k = (11 - self.have).min(data.len());
                    self.acc[self.have..self.have + k].copy_from_slice(&data[..k]);
                    self.have += k;
                    data = &data[k..];
                    if self.have < 11 {
                        return;
                    }
                    let a = &self.acc;
                    self.tag_type = a[0] & 0x1f;
                    let size = u32::from_be_bytes([0, a[1], a[2], a[3]]) as usize;
                    self.ts = u32::from_be_bytes([a[7], a[4], a[5], a[6]]);
                    self.body_want = size.min(2);
                    self.skip = size - self.body_want + 4;
                    self.have = 0;
                    self.state = FlvState::TagBody;
                }
                FlvState::TagBody => {
                    let k = (self.body_want - self.have).min(data.len());
                    self.body[self.have..self.have + k].copy_from_slice(&data[..k]);
                    self.have += k;
                    data = &data[k..];
                    if self.have < self.body_want {
                        return;
                    }
                    on_tag(self.tag_type, self.ts, &self.body[..self.body_want]);
                    self.state = FlvState::Skip;
                }
            }
        }
    }
}

/// Undoes `Transfer-Encoding: chunked`.
struct Dechunk {
    state: ChunkState,
    size: usize,
    extension: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum ChunkState {
    Size,
    Data,
    /// The CRLF after a chunk's data (bytes left).
    DataEnd(u8),
    Done,
}

impl Dechunk {
    fn new() -> Self {
        Dechunk { state: ChunkState::Size, size: 0, extension: false }
    }

    fn feed(&mut self, mut data: &[u8], mut out: impl FnMut(&[u8])) {
        while !data.is_empty() {
            match self.state {
                ChunkState::Size => {
                    let c = data[0];
                    data = &data[1..];
                    match c {
                        b'\n' if self.size == 0 => self.state = ChunkState::Done,
                        b'\n' => (self.state, self.extension) = (ChunkState::Data, false),
                        b';' => self.extension = true,
                        _ if self.extension => {}
                        _ => {
                            if let Some(v) = (c as char).to_digit(16) {
                                self.size = self.size * 16 + v as usize;
                            }
                        }
                    }
                }
                ChunkState::Data => {
                    let k = self.size.min(data.len());
                    out(&data[..k]);
                    self.size -= k;
                    data = &data[k..];
                    if self.size == 0 {
                        self.state = ChunkState::DataEnd(2);
                    }
                }
                ChunkState::DataEnd(left) => {
                    data = &data[1..];
                    self.state = if left > 1 { ChunkState::DataEnd(left - 1) } else { ChunkState::Size };
                }
                ChunkState::Done => return,
            }
        }
    }
}

async fn read_one(host: &str, path: &str, deadline: Instant, count_from: Instant) -> Viewer {
    let mut v = Viewer { bytes: 0, stall: Duration::ZERO, lat: Latency::new(count_from) };
    // The server may not listen yet (ffmpeg -listen probes its input first): retry a while.
    let mut s = loop {
        match TcpStream::connect(host).await {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(_) => return v,
        }
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return v;
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut last = Instant::now();
    let mut head: Vec<u8> = Vec::new();
    let mut body_started = false;
    let mut chunked: Option<Dechunk> = None;
    let mut flv = FlvParser::new();
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        let k = match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(k)) => k,
        };
        let now = Instant::now();
        v.bytes += k as u64;
        if last >= count_from {
            // A gap in the stream, not the joining burst (connect, first bytes).
            v.stall = v.stall.max(now - last);
        }
        last = now;
        let mut data = &buf[..k];
        if !body_started {
            // The response head: kept until its blank line (bounded).
            let from = head.len().saturating_sub(3);
            head.extend_from_slice(data);
            let Some(end) = head[from..].windows(4).position(|w| w == b"\r\n\r\n").map(|p| from + p + 4) else {
                if head.len() > 16 * 1024 {
                    break;
                }
                continue;
            };
            let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
            if text.contains("transfer-encoding: chunked") {
                chunked = Some(Dechunk::new());
            }
            body_started = true;
            data = &data[data.len() - (head.len() - end)..];
        }
        let lat = &mut v.lat;
        let mut on_tag = |ty: u8, ts: u32, body: &[u8]| {
            if (ty == 8 || ty == 9) && !is_sequence_header(ty, body) {
                lat.tag(now, ts, ty == 9);
            }
        };
        match chunked.as_mut() {
            Some(d) => d.feed(data, |b| flv.feed(b, &mut on_tag)),
            None => flv.feed(data, &mut on_tag),
        }
    }
    v
}

async fn play_one(url: &RtmpUrl, deadline: Instant, count_from: Instant) -> Viewer {
    let mut v = Viewer { bytes: 0, stall: Duration::ZERO, lat: Latency::new(count_from) };
    // The server may not listen or have the stream yet: retry a while.
    let mut conn = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return v;
        }
        if let Ok(Ok(mut c)) =
            tokio::time::timeout(left, ClientConn::connect(url, left.min(Duration::from_secs(10)))).await
        {
            if let Ok(Ok(())) = tokio::time::timeout(left, c.play()).await {
                break c;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // As for HTTP (from the request on): from NetStream.Play.Start on.
    let mut last = Instant::now();
    while let Ok(Ok(Some(event))) =
        tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), conn.next_event()).await
    {
        let ClientEvent::Media(m) = event else { continue };
        let now = Instant::now();
        v.bytes += m.payload.len() as u64;
        if last >= count_from {
            // A gap in the stream, not the joining burst (connect, first bytes).
            v.stall = v.stall.max(now - last);
        }
        last = now;
        let ty = match m.kind {
            MediaKind::Audio => 8,
            MediaKind::Video => 9,
            _ => continue,
        };
        if !is_sequence_header(ty, &m.payload) {
            v.lat.tag(now, m.timestamp, ty == 9);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(ty: u8, ts: u32, body: &[u8]) -> Vec<u8> {
        let n = body.len() as u32;
        let mut t = vec![
            ty,
            (n >> 16) as u8,
            (n >> 8) as u8,
            n as u8,
            (ts >> 16) as u8,
            (ts >> 8) as u8,
            ts as u8,
            (ts >> 24) as u8,
            0,
            0,
            0,
        ];
        t.extend_from_slice(body);
        t.extend_from_slice(&(n + 11).to_be_bytes());
        t
    }

    #[test]
    fn parses_tags_across_any_split_and_chunking() {
        let mut flv = b"FLV\x01\x05\0\0\0\x09\0\0\0\0".to_vec();
        flv.extend(tag(18, 0, b"\x02\0\x0aonMetaData"));
        flv.extend(tag(9, 0, &[0x17, 0, 0, 0, 0, 1, 2, 3]));
        flv.extend(tag(8, 5, &[0xaf, 1, 9, 9]));
        flv.extend(tag(9, 0x0100_0021, &[0x27, 1]));
        flv.extend(tag(8, 7, &[0xaf]));
        for split in 1..flv.len() {
            let mut got = Vec::new();
            let mut p = FlvParser::new();
            for part in flv.chunks(split) {
                p.feed(part, |ty, ts, b| got.push((ty, ts, b.to_vec())));
            }
            assert_eq!(
                got,
                vec![
                    (18, 0, vec![2, 0]),
                    (9, 0, vec![0x17, 0]),
                    (8, 5, vec![0xaf, 1]),
                    (9, 0x0100_0021, vec![0x27, 1]),
                    (8, 7, vec![0xaf])
                ]
            );
            // The same bytes chunked, the chunks split again.
            let mut wire = Vec::new();
            for c in flv.chunks(split.max(3)) {
                wire.extend(format!("{:x};x=y\r\n", c.len()).bytes());
                wire.extend_from_slice(c);
                wire.extend(b"\r\n");
            }
            wire.extend(b"0\r\n\r\n");
            let (mut d, mut p, mut again) = (Dechunk::new(), FlvParser::new(), Vec::new());
            for part in wire.chunks(7) {
                d.feed(part, |b| p.feed(b, |ty, ts, _| again.push((ty, ts))));
            }
            assert_eq!(again, got.iter().map(|g| (g.0, g.1)).collect::<Vec<_>>());
        }
    }

    #[test]
    fn added_latency_is_relative_to_each_viewers_earliest_tag() {
        let t0 = Instant::now();
        let mut l = Latency::new(t0);
        l.tag(t0, 1000, true);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        l.tag(at(2000), 3000, true); // d = 0
        l.tag(at(2100), 3000, true); // 100 late
        l.tag(at(2200), 3250, true); // 50 early: the minimum
        l.tag(at(2300), 3290, false); // audio: 10 late
        let (mut out, mut by_track) = Default::default();
        l.relative_to_min(&mut out, &mut by_track);
        assert_eq!(out, vec![60_000, 50_000, 150_000, 0]);
        assert_eq!(by_track, [vec![0], vec![50_000, 150_000, 0]]);
        let mut v = vec![5000, 1000, 3000, 2000, 4000];
        assert_eq!(percentiles(&mut v), (3.0, 5.0, 5.0));
        assert!(
            is_sequence_header(9, &[0x17, 0])
                && !is_sequence_header(9, &[0x17, 1])
                && is_sequence_header(8, &[0xaf, 0])
        );
    }
}
