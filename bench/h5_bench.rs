//! Bench tool for `bench/h5.py`. Two commands:
//!
//! - `read URL N WARMUP SECONDS`: N viewers of one MPEG-TS URL, `ws://` (the gateway's H5
//!   WebSocket) or `http://` (e.g. an ffmpeg `-listen 1` output). Each reads and discards for
//!   WARMUP + SECONDS and counts the video pictures (PES starts on the PMT's video PID) it got
//!   in the last SECONDS. Prints one JSON line: viewers, with_data, bytes, the slowest and
//!   fastest viewer's pictures per second, the longest stall, and messages that were not whole
//!   188-byte packets (WebSocket only).
//! - `codec CLIP`: the gateway's own video conversion without IO, on one thread: `filesrc !
//!   flvdemux ! h264parse ! avdec_h264 max-threads=1 ! videoconvert ! igmpeg1enc ! fakesink`
//!   (plus the audio branch `aacparse ! avdec_aac ! audioresample ! avenc_mp2`), run to EOS.
//!   Prints one JSON line: CPU seconds (user + system of this process) and wall seconds.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("read") if args.len() == 6 => {
            let n = args[3].parse().unwrap_or(1);
            let warmup = args[4].parse().unwrap_or(2.0);
            let secs = args[5].parse().unwrap_or(10.0);
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(read(&args[2], n, warmup, secs));
        }
        Some("codec") if args.len() == 3 => codec(&args[2]),
        _ => {
            eprintln!("usage: h5_bench read ws://HOST:PORT/h5/KEY|http://... N WARMUP SECONDS\n       h5_bench codec CLIP.flv");
            std::process::exit(2);
        }
    }
}

/// Counts video pictures in a TS byte stream (any chunking).
#[derive(Default)]
struct PictureCounter {
    partial: Vec<u8>,
    video_pid: Option<u16>,
    pmt_pid: Option<u16>,
    pictures: u64,
}

impl PictureCounter {
    fn push(&mut self, data: &[u8]) -> u64 {
        let before = self.pictures;
        self.partial.extend_from_slice(data);
        let whole = self.partial.len() / 188 * 188;
        let mut i = 0;
        while i < whole {
            let p = &self.partial[i..i + 188];
            i += 188;
            if p[0] != 0x47 {
                continue;
            }
            let start = p[1] & 0x40 != 0;
            let pid = u16::from_be_bytes([p[1] & 0x1F, p[2]]);
            let mut off = 4;
            if p[3] & 0x20 != 0 {
                off += 1 + p[4] as usize;
            }
            if off >= 188 || p[3] & 0x10 == 0 {
                continue;
            }
            let payload = &p[off..];
            if start && pid == 0 && payload.len() > 13 {
                let s = &payload[1 + payload[0] as usize..];
                if s.len() >= 12 {
                    self.pmt_pid = Some(u16::from_be_bytes([s[10], s[11]]) & 0x1FFF);
                }
            } else if start && Some(pid) == self.pmt_pid {
                self.video_pid = video_pid(&payload[1 + payload[0] as usize..]);
            } else if start && Some(pid) == self.video_pid {
                self.pictures += 1;
            }
        }
        self.partial.drain(..whole);
        self.pictures - before
    }
}

/// The PID of the first MPEG-1/2 video stream (types 1, 2) in a PMT section.
fn video_pid(section: &[u8]) -> Option<u16> {
    let len = (((section.get(1)? & 0x0F) as usize) << 8 | *section.get(2)? as usize).min(section.len() - 3);
    let info = (((section.get(10)? & 0x0F) as usize) << 8) | *section.get(11)? as usize;
    let mut rest = section.get(12 + info..3 + len - 4)?;
    while rest.len() >= 5 {
        let pid = u16::from_be_bytes([rest[1], rest[2]]) & 0x1FFF;
        if matches!(rest[0], 0x01 | 0x02) {
            return Some(pid);
        }
        let es = (((rest[3] & 0x0F) as usize) << 8) | rest[4] as usize;
        rest = rest.get(5 + es..)?;
    }
    None
}

#[derive(Default)]
struct Seen {
    bytes: u64,
    pictures: u64,
    stall: Duration,
    bad: u64,
}

async fn read(url: &str, n: usize, warmup: f64, secs: f64) {
    let start = Instant::now();
    let counting = start + Duration::from_secs_f64(warmup);
    let deadline = counting + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let url = url.to_string();
            tokio::spawn(async move { read_one(&url, counting, deadline).await })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.push(t.await.unwrap_or_default());
    }
    let fps: Vec<f64> = all.iter().map(|s| s.pictures as f64 / secs).collect();
    let min = fps.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = fps.iter().cloned().fold(0.0, f64::max);
    println!(
        "{{\"viewers\":{n},\"with_data\":{},\"bytes\":{},\"min_fps\":{:.2},\"max_fps\":{max:.2},\"max_stall_ms\":{},\"bad_messages\":{}}}",
        all.iter().filter(|s| s.bytes > 0).count(),
        all.iter().map(|s| s.bytes).sum::<u64>(),
        if min.is_finite() { min } else { 0.0 },
        all.iter().map(|s| s.stall).max().unwrap_or_default().as_millis(),
        all.iter().map(|s| s.bad).sum::<u64>(),
    );
}

async fn read_one(url: &str, counting: Instant, deadline: Instant) -> Seen {
    let mut seen = Seen::default();
    let mut counter = PictureCounter::default();
    let mut last = Instant::now();
    let mut note = |seen: &mut Seen, data: &[u8]| {
        let pictures = counter.push(data);
        if Instant::now() >= counting {
            seen.pictures += pictures;
            seen.stall = seen.stall.max(last.elapsed());
        }
        seen.bytes += data.len() as u64;
        last = Instant::now();
    };
    if url.starts_with("ws://") {
        // Retried: the stream may not be live yet.
        let mut ws = loop {
            match tokio_tungstenite::connect_async(url).await {
                Ok((ws, _)) => break ws,
                Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(300)).await,
                Err(_) => return seen,
            }
        };
        while let Ok(Some(Ok(m))) =
            tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), ws.next()).await
        {
            if let Message::Binary(b) = m {
                if b.len() % 188 != 0 {
                    seen.bad += 1;
                }
                note(&mut seen, &b);
            }
        }
        return seen;
    }
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = loop {
        match TcpStream::connect(host).await {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(_) => return seen,
        }
    };
    let req = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return seen;
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut header = Vec::new();
    let mut body: Option<Dechunk> = None;
    let mut data = Vec::new();
    while let Ok(Ok(k)) =
        tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), s.read(&mut buf)).await
    {
        if k == 0 {
            break;
        }
        let input = match &mut body {
            Some(_) => &buf[..k],
            None => {
                header.extend_from_slice(&buf[..k]);
                let Some(end) = header.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                let head = String::from_utf8_lossy(&header[..end]).to_ascii_lowercase();
                body = Some(Dechunk { chunked: head.contains("transfer-encoding: chunked"), ..Dechunk::default() });
                header.drain(..end + 4);
                &header[..]
            }
        };
        data.clear();
        if let Some(d) = &mut body {
            d.push(input, &mut data);
        }
        note(&mut seen, &data);
        header.clear();
    }
    seen
}

/// Removes HTTP/1.1 chunked transfer coding (ffmpeg's `-listen 1` server uses it).
#[derive(Default)]
struct Dechunk {
    chunked: bool,
    /// Bytes left in the current chunk's data.
    left: usize,
    /// A chunk-size line being read (None: in data or its CRLF).
    line: Option<Vec<u8>>,
    /// CRLF bytes to skip after a chunk's data.
    skip: usize,
}

impl Dechunk {
    fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        if !self.chunked {
            out.extend_from_slice(input);
            return;
        }
        while !input.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(input.len());
                self.skip -= n;
                input = &input[n..];
            } else if self.left > 0 {
                let n = self.left.min(input.len());
                out.extend_from_slice(&input[..n]);
                self.left -= n;
                input = &input[n..];
                if self.left == 0 {
                    self.skip = 2;
                }
            } else {
                let line = self.line.get_or_insert_with(Vec::new);
                let byte = input[0];
                input = &input[1..];
                if byte == b'\n' {
                    let text = String::from_utf8_lossy(line).trim().to_string();
                    let size = text.split(';').next().unwrap_or("");
                    self.left = usize::from_str_radix(size, 16).unwrap_or(0);
                    self.line = None;
                } else {
                    line.push(byte);
                }
            }
        }
    }
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process, from /proc (clock ticks of 1/100 s on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    tick(11) + tick(12)
}

fn codec(clip: &str) {
    use gstreamer as gst;
    use gstreamer::prelude::*;
    interop_gateway::pipeline::init();
    let description = format!(
        "filesrc location={clip} ! flvdemux name=d \
         d.video ! queue ! h264parse ! avdec_h264 max-threads=1 ! videoconvert ! video/x-raw,format=I420 \
           ! igmpeg1enc bitrate=1000000 gop-size=30 ! fakesink sync=false \
         d.audio ! queue ! aacparse ! avdec_aac ! audioconvert ! audioresample ! audio/x-raw,rate=44100 \
           ! avenc_mp2 bitrate=128000 ! fakesink sync=false"
    );
    let pipeline = gst::parse::launch(&description).expect("pipeline");
    let bus = pipeline.bus().expect("bus");
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    pipeline.set_state(gst::State::Playing).expect("play");
    let msg =
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(600), &[gst::MessageType::Eos, gst::MessageType::Error]);
    let (cpu, wall) = (cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
    let _ = pipeline.set_state(gst::State::Null);
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => println!("{{\"cpu_seconds\":{cpu:.3},\"wall_seconds\":{wall:.3}}}"),
        Some(gst::MessageView::Error(e)) => {
            eprintln!("codec pipeline failed: {} ({:?})", e.error(), e.debug());
            std::process::exit(1);
        }
        _ => {
            eprintln!("codec pipeline: no EOS");
            std::process::exit(1);
        }
    }
}
