//! Bench tool: N HTTP-FLV viewers of one URL, reading and discarding, for fan-out runs.
//! Prints one JSON line at the end: bytes read, viewers that got data, longest stall.
//!
//! usage: flv_readers URL N SECONDS

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: flv_readers http://HOST:PORT/PATH N SECONDS");
        std::process::exit(2);
    }
    let url = args[1].trim_start_matches("http://").to_string();
    let (host, path) = url.split_once('/').unwrap_or((&url, ""));
    let n: usize = args[2].parse().unwrap_or(1);
    let secs: f64 = args[3].parse().unwrap_or(10.0);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (host, path) = (host.to_string(), format!("/{path}"));
        tasks.push(tokio::spawn(async move { read_one(&host, &path, deadline).await }));
    }
    let (mut bytes, mut ok, mut max_stall) = (0u64, 0usize, Duration::ZERO);
    for t in tasks {
        if let Ok((b, stall)) = t.await {
            bytes += b;
            if b > 0 {
                ok += 1;
            }
            max_stall = max_stall.max(stall);
        }
    }
    println!("{{\"viewers\":{n},\"with_data\":{ok},\"bytes\":{bytes},\"max_stall_ms\":{}}}", max_stall.as_millis());
}

async fn read_one(host: &str, path: &str, deadline: Instant) -> (u64, Duration) {
    // The server may not listen yet (ffmpeg -listen probes its input first): retry a while.
    let mut s = loop {
        match TcpStream::connect(host).await {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(_) => return (0, Duration::ZERO),
        }
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return (0, Duration::ZERO);
    }
    let mut buf = vec![0u8; 64 * 1024];
    let (mut total, mut last, mut stall) = (0u64, Instant::now(), Duration::ZERO);
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(k)) => {
                total += k as u64;
                stall = stall.max(last.elapsed());
                last = Instant::now();
            }
        }
    }
    (total, stall)
}
