//! Bench tool: the floor under any HTTP-FLV server that writes once per video frame.
//!
//! usage: write_floor SECONDS [FPS] [VIDEO_BYTES] [AUDIO_BYTES] [AUDIO_TAGS_PER_S]
//!
//! Not a server: one thread, std only, no parsing, no per-viewer state but the socket. It
//! listens on a free loopback port (printed as `listening PORT` on stdout), answers every
//! connection with an HTTP 200 head and an FLV header at once (without reading the request),
//! then every 1/FPS seconds builds one video tag of VIDEO_BYTES and the audio tags due since
//! the previous frame (AUDIO_BYTES each, AUDIO_TAGS_PER_S a second) into one buffer, and
//! writes that same buffer to every viewer with one `write` system call each. A viewer whose
//! socket is full or closed is dropped. Defaults: 30 fps, 3,970-byte video and 372-byte audio
//! tags at 43 a second, the ~135 kB per viewer-second of the bench clip.
//!
//! What this process spends per viewer-second is what writing once per frame costs in the
//! kernel (TCP on loopback, including the receiving side's work that runs in the sender's
//! context) plus a minimum of user-space work: no server that keeps the added latency within
//! one frame can go much below it. `bench/srs.py` runs it as the side "floor" beside SRS and
//! the gateway, on the same readers (`flv_readers`).

use std::io::{ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nConnection: close\r\n\r\n";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: f64| args.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(default);
    if args.len() < 2 {
        eprintln!("usage: write_floor SECONDS [FPS] [VIDEO_BYTES] [AUDIO_BYTES] [AUDIO_TAGS_PER_S]");
        std::process::exit(2);
    }
    let (seconds, fps) = (arg(1, 10.0), arg(2, 30.0));
    let (video_bytes, audio_bytes, audio_rate) = (arg(3, 3970.0) as usize, arg(4, 372.0) as usize, arg(5, 43.0));

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    println!("listening {}", listener.local_addr().expect("addr").port());
    std::io::stdout().flush().ok();

    let start = Instant::now();
    let frame = Duration::from_secs_f64(1.0 / fps);
    let mut viewers: Vec<TcpStream> = Vec::new();
    let (mut frames, mut audio_sent, mut dropped) = (0u64, 0u64, 0usize);
    let mut batch = Vec::with_capacity(video_bytes + 8 * audio_bytes + 256);
    while start.elapsed().as_secs_f64() < seconds {
        accept(&listener, &mut viewers);
        let now_ms = start.elapsed().as_millis() as u32;
        batch.clear();
        let audio_due = (start.elapsed().as_secs_f64() * audio_rate) as u64;
        while audio_sent < audio_due {
            let ts = (audio_sent as f64 * 1000.0 / audio_rate) as u32;
            put_tag(&mut batch, 8, ts, audio_bytes, &[0xaf, 0x01]);
            audio_sent += 1;
        }
        let key = frames % (fps as u64 * 2) == 0;
        put_tag(&mut batch, 9, now_ms, video_bytes, &[if key { 0x17 } else { 0x27 }, 0x01, 0, 0, 0]);
        frames += 1;
        viewers.retain_mut(|v| {
            let kept = matches!(v.write(&batch), Ok(n) if n == batch.len());
            dropped += usize::from(!kept);
            kept
        });
        let next = start + frame * frames as u32;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    eprintln!("write_floor: {frames} frames, {} viewers at the end, {dropped} dropped", viewers.len());
}

/// Takes every pending connection and answers it with the HTTP head, the FLV header and the
/// video sequence header (readers skip it).
fn accept(listener: &TcpListener, viewers: &mut Vec<TcpStream>) {
    loop {
        match listener.accept() {
            Ok((mut s, _)) => {
                let _ = s.set_nodelay(true);
                let mut first = HEAD.to_vec();
                first.extend_from_slice(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
                put_tag(&mut first, 9, 0, 16, &[0x17, 0x00, 0, 0, 0, 0x01]);
                if s.write_all(&first).is_ok() && s.set_nonblocking(true).is_ok() {
                    viewers.push(s);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(_) => return,
        }
    }
}

/// One FLV tag of `size` body bytes (starting with `prefix`, zeros after) and its
/// PreviousTagSize.
fn put_tag(out: &mut Vec<u8>, kind: u8, ts: u32, size: usize, prefix: &[u8]) {
    let size = size.max(prefix.len());
    out.push(kind);
    out.extend_from_slice(&(size as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&ts.to_be_bytes()[1..]);
    out.push((ts >> 24) as u8);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(prefix);
    out.resize(out.len() + size - prefix.len(), 0);
    out.extend_from_slice(&(11 + size as u32).to_be_bytes());
}
