//! H5 (JSMpeg) end to end with real peers on 127.0.0.1: ffmpeg publishing by RTMP and by
//! HTTP POST, WebSocket viewers and publishers (tokio-tungstenite), ffprobe reading what they
//! captured, headless Chromium playing the player page, and bad input.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use common::ffmpeg::probe_until_h264_aac;
use common::{wait_until, Api, Ffmpeg, Gateway, LineBuffer, PublishOptions, TempDir};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

const LIVE: Duration = Duration::from_secs(20);

/// A child process (ffmpeg) stopped on drop.
struct Proc {
    child: Child,
    stderr: LineBuffer,
    what: String,
}

impl Proc {
    fn spawn(what: &str, program: &str, args: &[String]) -> Proc {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        let stderr = LineBuffer::drain(child.stderr.take().expect("stderr"), |_| {});
        Proc { child, stderr, what: what.to_string() }
    }

    fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        common::wait_child(&mut self.child, timeout)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        common::stop_child(&mut self.child, Duration::from_secs(2));
        if std::thread::panicking() {
            eprintln!("--- {} stderr ---\n{}\n---", self.what, self.stderr.tail(30));
        }
    }
}

/// ffmpeg arguments for a synthetic MPEG-1/MP2 source (640x360, 30 fps, 44.1 kHz mono).
fn mpeg1_source(seconds: Option<u32>) -> Vec<String> {
    let mut args: Vec<String> = ["-hide_banner", "-nostdin", "-loglevel", "warning"].map(String::from).to_vec();
    for input in ["testsrc2=size=640x360:rate=30", "sine=frequency=440:sample_rate=44100"] {
        args.extend(["-re", "-f", "lavfi", "-i", input].map(String::from));
    }
    if let Some(s) = seconds {
        args.extend(["-t".to_string(), s.to_string()]);
    }
    args.extend(
        ["-c:v", "mpeg1video", "-bf", "0", "-g", "30", "-b:v", "1000k", "-c:a", "mp2", "-b:a", "128k", "-f", "mpegts"]
            .map(String::from),
    );
    args
}

/// `ffmpeg ... -f mpegts http://.../h5/{key}` (a chunked POST), running until dropped.
fn post_mpeg1(gw: &Gateway, key: &str) -> Proc {
    let mut args = mpeg1_source(None);
    args.push(gw.http_url(&format!("/h5/{key}")));
    Proc::spawn("ffmpeg POST", "ffmpeg", &args)
}

fn ws_url(gw: &Gateway, path: &str) -> String {
    gw.http_url(path).replacen("http://", "ws://", 1)
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> anyhow::Result<Ws> {
    let (ws, _) = tokio::time::timeout(Duration::from_secs(15), tokio_tungstenite::connect_async(url))
        .await
        .with_context(|| format!("connect {url}: timed out"))?
        .with_context(|| format!("connect {url}"))?;
    Ok(ws)
}

/// What one WebSocket viewer received.
struct Capture {
    messages: Vec<Vec<u8>>,
    /// From connecting to the first message with media (not only PAT/PMT).
    first_after: Option<Duration>,
    close: Option<String>,
}

impl Capture {
    fn bytes(&self) -> Vec<u8> {
        self.messages.concat()
    }
}

/// Reads binary messages from `url` for `duration`.
async fn capture(url: &str, duration: Duration) -> anyhow::Result<Capture> {
    let start = Instant::now();
    let mut ws = connect(url).await?;
    let mut cap = Capture { messages: Vec::new(), first_after: None, close: None };
    let deadline = tokio::time::Instant::now() + duration;
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => break,
            Ok(None) => break,
            Ok(Some(m)) => m.context("read")?,
        };
        match msg {
            Message::Binary(b) => {
                if b.chunks(188).any(|p| p.len() > 2 && !matches!(u16::from_be_bytes([p[1] & 0x1F, p[2]]), 0 | 0x1000)) {
                    cap.first_after.get_or_insert(start.elapsed());
                }
                cap.messages.push(b.to_vec());
            }
            Message::Close(frame) => {
                cap.close = Some(frame.map(|f| format!("{} {}", u16::from(f.code), f.reason)).unwrap_or_default());
                break;
            }
            _ => {}
        }
    }
    let _ = ws.close(None).await;
    Ok(cap)
}

/// ffprobe's streams and packets of a TS file.
struct TsProbe {
    streams: Vec<Value>,
    packets: Vec<Value>,
}

impl TsProbe {
    fn read(path: &Path) -> anyhow::Result<TsProbe> {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-show_streams", "-show_packets", "-of", "json"])
            .arg(path)
            .output()
            .context("run ffprobe")?;
        ensure!(out.status.success(), "ffprobe failed: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).context("ffprobe JSON")?;
        let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
        Ok(TsProbe { streams: list("streams"), packets: list("packets") })
    }

    fn stream(&self, kind: &str) -> anyhow::Result<&Value> {
        self.streams.iter().find(|s| s["codec_type"] == kind).with_context(|| format!("no {kind} stream in {:?}", self.streams))
    }

    /// (pts seconds, keyframe) of the packets of stream `index`.
    fn packets_of(&self, index: u64) -> Vec<(f64, bool)> {
        self.packets
            .iter()
            .filter(|p| p["stream_index"].as_u64() == Some(index))
            .filter_map(|p| {
                let t = p["pts_time"].as_str()?.parse::<f64>().ok()?;
                Some((t, p["flags"].as_str().unwrap_or("").contains('K')))
            })
            .collect()
    }
}

fn write_file(dir: &TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write capture");
    path
}

/// Every message a whole number of 188-byte packets, each starting with the sync byte.
fn check_packets(cap: &Capture) -> anyhow::Result<()> {
    ensure!(!cap.messages.is_empty(), "no messages");
    for (i, m) in cap.messages.iter().enumerate() {
        ensure!(!m.is_empty() && m.len() % 188 == 0, "message {i} is {} bytes", m.len());
        ensure!(m.chunks(188).all(|p| p[0] == 0x47), "message {i}: a packet without the sync byte");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_h264_aac_plays_as_mpeg1_mp2_over_websocket() -> anyhow::Result<()> {
    let gw = Gateway::start();
    let opts = PublishOptions { width: 960, height: 540, ..PublishOptions::default() };
    let _ffmpeg = Ffmpeg::publish(&gw.rtmp_url("/live/k"), opts);
    gw.api().wait_live("k", LIVE).await?;

    let cap = capture(&ws_url(&gw, "/h5/k"), Duration::from_secs(5)).await?;
    check_packets(&cap)?;
    let dir = TempDir::new("h5-capture");
    let file = write_file(&dir, "k.ts", &cap.bytes());
    let probe = TsProbe::read(&file)?;
    let video = probe.stream("video")?;
    let audio = probe.stream("audio")?;
    assert_eq!(video["codec_name"], "mpeg1video", "{video}");
    assert_eq!((video["width"].as_u64(), video["height"].as_u64()), (Some(640), Some(360)), "scaled to the matrix's width");
    assert_eq!(audio["codec_name"], "mp2", "{audio}");
    assert_eq!(audio["sample_rate"], "44100", "a rate JSMpeg decodes");

    let frames = probe.packets_of(video["index"].as_u64().unwrap_or(0));
    assert!(frames.first().is_some_and(|f| f.1), "the capture starts at an I-frame: {:?}", &frames[..frames.len().min(3)]);
    let span = frames.last().map_or(0.0, |l| l.0) - frames[0].0 + 1.0 / 30.0;
    let expected = span * 30.0;
    eprintln!("captured {} video frames over {span:.2} s of media, first message after {:?}", frames.len(), cap.first_after);
    assert!(span >= 4.0, "about 5 s captured, got {span:.2} s");
    assert!((frames.len() as f64 - expected).abs() <= expected * 0.1, "{} frames for {span:.2} s at 30 fps", frames.len());
    let pts: Vec<f64> = frames.iter().map(|f| f.0).collect();
    assert!(pts.windows(2).all(|w| w[1] > w[0]), "no B-frames: presentation order is decode order");

    // A second viewer starts from the cached GOP at once, at an I-frame.
    let cap = capture(&ws_url(&gw, "/h5/k"), Duration::from_millis(1500)).await?;
    let first = cap.first_after.context("second viewer got nothing")?;
    assert!(first < Duration::from_millis(800), "second viewer waited {first:?}");
    let file = write_file(&dir, "k2.ts", &cap.bytes());
    let probe = TsProbe::read(&file)?;
    let index = probe.stream("video")?["index"].as_u64().unwrap_or(0);
    assert!(probe.packets_of(index).first().is_some_and(|f| f.1), "second viewer starts at an I-frame");
    Ok(())
}
