//! H5 (JSMpeg) end to end with real peers on 127.0.0.1: ffmpeg publishing by RTMP and by
//! HTTP POST, WebSocket viewers and publishers (tokio-tungstenite), ffprobe reading what they
//! captured, headless Chromium playing the player page, and bad input.

use crate::common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use common::ffmpeg::probe_until_h264_aac;
use common::{wait_until, Ffmpeg, Gateway, LineBuffer, PublishOptions, TempDir};
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
                if b.chunks(188).any(|p| p.len() > 2 && !matches!(u16::from_be_bytes([p[1] & 0x1F, p[2]]), 0 | 0x1000))
                {
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
        self.streams
            .iter()
            .find(|s| s["codec_type"] == kind)
            .with_context(|| format!("no {kind} stream in {:?}", self.streams))
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
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(640), Some(360)),
        "scaled to the matrix's width"
    );
    assert_eq!(audio["codec_name"], "mp2", "{audio}");
    assert_eq!(audio["sample_rate"], "44100", "a rate JSMpeg decodes");

    let frames = probe.packets_of(video["index"].as_u64().unwrap_or(0));
    assert!(
        frames.first().is_some_and(|f| f.1),
        "the capture starts at an I-frame: {:?}",
        &frames[..frames.len().min(3)]
    );
    let span = frames.last().map_or(0.0, |l| l.0) - frames[0].0 + 1.0 / 30.0;
    let expected = span * 30.0;
    eprintln!(
        "captured {} video frames over {span:.2} s of media, first message after {:?}",
        frames.len(),
        cap.first_after
    );
    assert!(span >= 4.0, "about 5 s captured, got {span:.2} s");
    assert!(
        (frames.len() as f64 - expected).abs() <= expected * 0.1,
        "{} frames for {span:.2} s at 30 fps",
        frames.len()
    );
    let pts: Vec<f64> = frames.iter().map(|f| f.0).collect();
    assert!(pts.windows(2).all(|w| w[1] > w[0]), "no B-frames: presentation order is decode order");
    // keyint 30 (pipelines/encode/mpeg1.gst): an I-frame at least every 30 frames.
    let keys: Vec<usize> = frames.iter().enumerate().filter(|(_, f)| f.1).map(|(i, _)| i).collect();
    let longest_gop =
        keys.windows(2).map(|w| w[1] - w[0]).chain([frames.len() - keys[keys.len() - 1]]).max().unwrap_or(0);
    assert!(longest_gop <= 30, "GOP of {longest_gop} frames; I-frames at {keys:?}");
    // video_bitrate 1000 kbit/s plus MP2 at 128 kbit/s and the TS overhead.
    let kbps = cap.bytes().len() as f64 * 8.0 / span / 1000.0;
    eprintln!("{kbps:.0} kbit/s on the wire, I-frames at {keys:?}");
    assert!((300.0..2500.0).contains(&kbps), "{kbps:.0} kbit/s");

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

/// ffmpeg arguments publishing H.264 + AAC by RTMP with sound and picture marked together: at
/// every whole second a white picture of 1 to 4 frames on black and a 1 kHz beep of 60 to 180 ms
/// on silence, both lengths telling the second modulo 4. GOP 2 s (60 frames), as the
/// benchmark's sources.
fn marked_source(url: &str) -> Vec<String> {
    let video = "color=c=black:s=640x360:r=30,drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:\
        enable='lt(mod(t,1),(0.5+mod(floor(t),4))/30)'";
    let audio = "sine=frequency=1000:sample_rate=44100,volume=volume=0:\
        enable='gte(mod(t,1),0.06+0.04*mod(floor(t),4))'";
    let mut args: Vec<String> = ["-hide_banner", "-nostdin", "-loglevel", "warning"].map(String::from).to_vec();
    for input in [video, audio] {
        args.extend(["-re", "-f", "lavfi", "-i", input].map(String::from));
    }
    args.extend(
        [
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "60",
            "-keyint_min",
            "60",
            "-sc_threshold",
            "0",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            "-f",
            "flv",
        ]
        .map(String::from),
    );
    args.push(url.to_string());
    args
}

/// One mark of [`marked_source`] found in a capture: where it starts (PTS, seconds) and the
/// second modulo 4 its length tells.
#[derive(Debug, Clone, Copy)]
struct Mark {
    at: f64,
    second: i64,
}

/// The flashes and beeps of a TS file on its own timestamps (`-copyts`: blackdetect and
/// silencedetect report PTS): (flashes, beeps). Marks cut by the start or end of the file are
/// left out.
fn marks(path: &Path) -> anyhow::Result<(Vec<Mark>, Vec<Mark>)> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-nostats", "-copyts", "-i"])
        .arg(path)
        .args(["-vf", "blackdetect=d=0.3:pix_th=0.2", "-af", "silencedetect=n=-30dB:d=0.3", "-f", "null", "-"])
        .output()
        .context("run ffmpeg")?;
    ensure!(out.status.success(), "ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr));
    let log = String::from_utf8_lossy(&out.stderr);
    let value = |line: &str, key: &str| -> Option<f64> {
        let rest = &line[line.find(key)? + key.len()..];
        rest.trim_start().split(|c: char| c.is_whitespace() || c == '|').next()?.parse().ok()
    };
    // A mark runs from the end of one black (silent) stretch to the start of the next.
    let spans = |start_key: &str, end_key: &str| -> Vec<(f64, f64)> {
        let mut quiet_end: Option<f64> = None;
        let mut spans = Vec::new();
        for line in log.lines() {
            if let Some(start) = value(line, start_key) {
                if let Some(from) = quiet_end.take() {
                    spans.push((from, start - from));
                }
            }
            if let Some(end) = value(line, end_key) {
                quiet_end = Some(end);
            }
        }
        spans
    };
    let flashes = spans("black_start:", "black_end:")
        .into_iter()
        .map(|(at, len)| Mark { at, second: ((len * 30.0).round() as i64 - 1).rem_euclid(4) })
        .collect();
    let beeps = spans("silence_start:", "silence_end:")
        .into_iter()
        .map(|(at, len)| Mark { at, second: (((len - 0.06) / 0.04).round() as i64).rem_euclid(4) })
        .collect();
    Ok((flashes, beeps))
}

/// The bench's `latency` A/V row rtmp->h5 read +2 s: the first viewer of the H5 conversions got
/// every second of the audio cache (up to 10 s) converted before the first converted picture
/// (from the cached GOP), so the TS began with seconds of MP2 ahead of the first MPEG-1 picture
/// and its PCR. GStreamer 1.22's tsdemux, fed bytes as a WebSocket client feeds it, gives every
/// buffer no timestamp after about half a second of PES ahead of the first PCR, and its parsers
/// then count each track from its own first frame: 2 s apart. (The PTS themselves agreed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h5_sound_and_picture_start_together_and_keep_the_sources_alignment() -> anyhow::Result<()> {
    let gw = Gateway::start();
    let _ffmpeg = Ffmpeg::run(marked_source(&gw.rtmp_url("/live/av")), "ffmpeg marked source");
    gw.api().wait_live("av", LIVE).await?;
    // More audio cached than the GOP, and the GOP no longer fresh, when the first viewer comes.
    tokio::time::sleep(Duration::from_millis(3300)).await;
    let cap = capture(&ws_url(&gw, "/h5/av"), Duration::from_secs(6)).await?;
    check_packets(&cap)?;
    let dir = TempDir::new("h5-av");
    let file = write_file(&dir, "av.ts", &cap.bytes());
    let probe = TsProbe::read(&file)?;
    let video = probe.stream("video")?["index"].as_u64().unwrap_or(0);
    let audio = probe.stream("audio")?["index"].as_u64().unwrap_or(1);

    // Sound starts with the picture: no audio ahead of the first picture, in time or in the TS.
    let pts = |index: u64| probe.packets_of(index).into_iter().map(|p| p.0).collect::<Vec<f64>>();
    let (video_pts, audio_pts) = (pts(video), pts(audio));
    let (first_video, first_audio) = (video_pts.first().copied(), audio_pts.first().copied());
    let (Some(first_video), Some(first_audio)) = (first_video, first_audio) else {
        bail!("video and audio expected: {} video, {} audio packets", video_pts.len(), audio_pts.len());
    };
    eprintln!("first video PTS {first_video:.3}, first audio PTS {first_audio:.3}");
    assert!(
        (first_audio - first_video).abs() < 0.1,
        "first audio PTS {first_audio:.3} s, first video PTS {first_video:.3} s: they should start together"
    );
    // On the wire (one PES per message; ffprobe's packet order is not it, its demuxer holds a
    // video PES until the next one starts).
    let pid = |m: &Vec<u8>| m.chunks(188).find(|p| p[1] & 0x40 != 0).map(|p| u16::from_be_bytes([p[1] & 0x1F, p[2]]));
    let pids: Vec<u16> = cap.messages.iter().filter_map(pid).filter(|p| !matches!(p, 0 | 0x1000)).collect();
    let (video_pid, audio_pid) = (0x100, 0x101);
    ensure!(
        pids.contains(&video_pid) && pids.contains(&audio_pid),
        "PIDs on the wire: {:?}",
        &pids[..pids.len().min(20)]
    );
    let ahead = pids.iter().take_while(|&&p| p != video_pid).filter(|&&p| p == audio_pid).count();
    let ahead_span = audio_pts.get(ahead.saturating_sub(1)).map_or(0.0, |last| last - first_audio);
    assert!(ahead_span < 0.3, "{ahead} audio frames ({ahead_span:.3} s) sent before the first picture");

    // And each beep is stamped with the flash of its second, as the source sent them.
    let (flashes, beeps) = marks(&file)?;
    eprintln!("flashes {flashes:?}\nbeeps {beeps:?}");
    let offsets: Vec<f64> = beeps
        .iter()
        .filter_map(|b| {
            let flash = flashes
                .iter()
                .filter(|f| f.second == b.second)
                .min_by(|x, y| (x.at - b.at).abs().total_cmp(&(y.at - b.at).abs()))?;
            ((flash.at - b.at).abs() < 2.0).then_some(b.at - flash.at)
        })
        .collect();
    eprintln!("beep - flash (s): {offsets:?}");
    ensure!(offsets.len() >= 3, "too few flash/beep pairs: flashes {flashes:?}, beeps {beeps:?}");
    assert!(
        offsets.iter().all(|d| d.abs() < 0.1),
        "beep PTS - flash PTS of the same second should be near 0 (the source sends them together): {offsets:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posted_mpeg1_mp2_plays_as_h264_aac_by_rtmp_and_http_flv_and_as_is_over_websocket() -> anyhow::Result<()> {
    let gw = Gateway::start();
    let api = gw.api();
    let _ffmpeg = post_mpeg1(&gw, "k2");
    let live = api.wait_live("k2", LIVE).await?;
    assert_eq!(live.publisher.as_ref().map(|p| p.protocol.as_str()), Some("h5"));
    let video = live.video.as_ref().context("video")?;
    assert_eq!((video.codec.as_str(), video.width, video.height), ("mpeg1", Some(640), Some(360)));
    assert_eq!(live.audio.as_ref().map(|a| a.codec.as_str()), Some("mp2"));

    probe_until_h264_aac(&gw.rtmp_url("/live/k2"), 640, 360, 44_100, Duration::from_secs(30)).await?;
    probe_until_h264_aac(&gw.http_url("/live/k2.flv"), 640, 360, 44_100, Duration::from_secs(30)).await?;

    // H5 to H5 is a copy: the published pictures, no conversion for the WebSocket viewer.
    let cap = capture(&ws_url(&gw, "/h5/k2"), Duration::from_secs(2)).await?;
    check_packets(&cap)?;
    let dir = TempDir::new("h5-copy");
    let probe = TsProbe::read(&write_file(&dir, "copy.ts", &cap.bytes()))?;
    assert_eq!(probe.stream("video")?["codec_name"], "mpeg1video");
    assert_eq!(probe.stream("audio")?["codec_name"], "mp2");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_publisher_plays_as_h264_aac_by_rtmp() -> anyhow::Result<()> {
    let gw = Gateway::start();
    let dir = TempDir::new("h5-ws-publish");
    let file = dir.path().join("src.ts");
    let mut args = mpeg1_source(Some(12));
    args.retain(|a| a != "-re");
    args.push(file.display().to_string());
    let mut make = Proc::spawn("ffmpeg (file)", "ffmpeg", &args);
    let status = make.wait(Duration::from_secs(60)).context("ffmpeg did not finish the file")?;
    ensure!(status.success(), "ffmpeg failed: {}", make.stderr.tail(10));
    let ts = std::fs::read(&file)?;

    let mut ws = connect(&ws_url(&gw, "/h5/k3/publish")).await?;
    // Sent at about real time (12 s of media) in odd-sized messages.
    let sender = tokio::spawn(async move {
        let chunk = ts.len() / 120 + 1;
        for part in ts.chunks(chunk) {
            ws.send(Message::Binary(part.to_vec().into())).await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ws.close(None).await?;
        expect_close_reply(&mut ws).await
    });
    let live = gw.api().wait_live("k3", LIVE).await?;
    assert_eq!(live.publisher.as_ref().map(|p| p.protocol.as_str()), Some("h5"));
    probe_until_h264_aac(&gw.rtmp_url("/live/k3"), 640, 360, 44_100, Duration::from_secs(10)).await?;
    sender.await??;
    wait_until(Duration::from_secs(10), "k3 gone after the publisher closed", || async {
        match gw.api().stream("k3").await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await?;
    Ok(())
}

/// Keeps reading a viewer's WebSocket in the background; counts bytes.
fn spawn_reader(mut ws: Ws) -> (tokio::task::JoinHandle<()>, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c = count.clone();
    let task = tokio::spawn(async move {
        while let Some(Ok(m)) = ws.next().await {
            c.fetch_add(m.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
    });
    (task, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_viewers_share_one_conversion_per_track_torn_down_after_grace() -> anyhow::Result<()> {
    let gw = Gateway::start_with(&[], Some("hub:\n  grace_seconds: 1\n"));
    let api = gw.api();
    let _ffmpeg = Ffmpeg::publish(&gw.rtmp_url("/live/k"), PublishOptions::default());
    api.wait_live("k", LIVE).await?;
    let mut viewers = Vec::new();
    for _ in 0..10 {
        viewers.push(spawn_reader(connect(&ws_url(&gw, "/h5/k")).await?));
    }
    let info = wait_until(Duration::from_secs(15), "10 H5 viewers on one conversion per track", || async {
        let s = api.stream("k").await.map_err(|e| e.to_string())?.ok_or("not live")?;
        let ok = s.consumers.get("h5") == Some(&10)
            && s.conversions.len() == 2
            && s.conversions.iter().all(|c| c.consumers == 10);
        if ok {
            Ok(s)
        } else {
            Err(format!("{:?} {:?}", s.consumers, s.conversions))
        }
    })
    .await?;
    let mut pairs: Vec<(String, String, String)> =
        info.conversions.iter().map(|c| (c.track.clone(), c.from.clone(), c.to.clone())).collect();
    pairs.sort();
    assert_eq!(pairs, [("audio".into(), "aac".into(), "mp2".into()), ("video".into(), "h264".into(), "mpeg1".into())]);
    // Every viewer is fed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (_, count) in &viewers {
        assert!(count.load(std::sync::atomic::Ordering::Relaxed) > 50_000, "a viewer got little");
    }
    for (task, _) in viewers {
        task.abort();
    }
    wait_until(Duration::from_secs(10), "no consumer and no conversion after the grace period", || async {
        let s = api.stream("k").await.map_err(|e| e.to_string())?.ok_or("not live")?;
        if s.total_consumers() == 0 && s.conversions.is_empty() {
            Ok(())
        } else {
            Err(format!("{:?} {:?}", s.consumers, s.conversions))
        }
    })
    .await?;
    Ok(())
}

/// POSTs `body` to `/h5/{key}`; returns (status, error text).
async fn post_body(gw: &Gateway, key: &str, body: Vec<u8>) -> anyhow::Result<(u16, String)> {
    let reply = gw.api().post_raw(&format!("/h5/{key}"), "video/mp2t", body).await?;
    Ok((reply.status, reply.error_message().unwrap_or_default().to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_a_reason_and_leaves_no_stream() -> anyhow::Result<()> {
    let gw = Gateway::start();
    let api = gw.api();

    // A WebSocket to a stream that is not live: 404 before the upgrade.
    match tokio_tungstenite::connect_async(ws_url(&gw, "/h5/nobody")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status().as_u16(), 404),
        Err(other) => bail!("expected HTTP 404, got {other}"),
        Ok(_) => bail!("a WebSocket to an unknown stream was accepted"),
    }
    // A plain GET on the play URL of a live stream says to use a WebSocket (checked below).

    // Not MPEG-TS at all.
    let (status, error) = post_body(&gw, "bad", b"FLV\x01\x05\x00\x00\x00\x09".repeat(100)).await?;
    assert_eq!(status, 415, "{error}");
    assert!(error.contains("not MPEG-TS") && error.contains("0x47"), "{error}");

    // MPEG-TS with H.264 video and AAC audio.
    let dir = TempDir::new("h5-bad");
    let h264 = dir.path().join("h264.ts");
    let args: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine",
        "-t",
        "1",
        "-c:v",
        "libx264",
        "-c:a",
        "aac",
        "-f",
        "mpegts",
    ]
    .map(String::from)
    .into_iter()
    .chain([h264.display().to_string()])
    .collect();
    let mut make = Proc::spawn("ffmpeg (h264 ts)", "ffmpeg", &args);
    ensure!(make.wait(Duration::from_secs(60)).is_some_and(|s| s.success()), "ffmpeg: {}", make.stderr.tail(10));
    let (status, error) = post_body(&gw, "bad", std::fs::read(&h264)?).await?;
    assert_eq!(status, 415, "{error}");
    assert!(error.contains("no MPEG-1 video") && error.contains("H.264"), "{error}");

    // MPEG-TS cut before its first picture is complete: 400.
    let mut args = mpeg1_source(Some(1));
    args.retain(|a| a != "-re");
    let mpeg1 = dir.path().join("mpeg1.ts");
    args.push(mpeg1.display().to_string());
    let mut make = Proc::spawn("ffmpeg (mpeg1 ts)", "ffmpeg", &args);
    ensure!(make.wait(Duration::from_secs(60)).is_some_and(|s| s.success()), "ffmpeg: {}", make.stderr.tail(10));
    let whole = std::fs::read(&mpeg1)?;
    // Cut at the first video packet (ffmpeg's video PID is 0x100): tables only.
    let cut = whole.chunks(188).position(|p| u16::from_be_bytes([p[1] & 0x1F, p[2]]) == 0x100).context("no video")?;
    let (status, error) = post_body(&gw, "bad", whole[..188 * cut].to_vec()).await?;
    assert_eq!(status, 400, "{error}");
    assert!(error.contains("without an MPEG-1 I-picture"), "{error}");
    assert!(api.stream("bad").await?.is_none(), "no half-made stream left behind");

    // A whole short file is accepted, and ends when the body ends.
    let reply = api.post_raw("/h5/short", "video/mp2t", whole).await?;
    assert_eq!(reply.status, 200, "{:?}", reply.error_message());
    assert!(api.stream("short").await?.is_none(), "the stream ended with the body");

    // A WebSocket publisher sending something else is closed with the reason.
    let mut ws = connect(&ws_url(&gw, "/h5/bad/publish")).await?;
    ws.send(Message::Binary(b"GIF89a....".repeat(40).into())).await?;
    let close = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Close(frame) = m {
                return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
        }
        None
    })
    .await?
    .context("no close frame")?;
    assert_eq!(close.0, 1003, "{close:?}");
    assert!(close.1.contains("not MPEG-TS"), "{close:?}");
    assert!(api.stream("bad").await?.is_none());

    // The same key twice: the second publisher is refused while the first is live.
    let _first = post_mpeg1(&gw, "twice");
    api.wait_live("twice", LIVE).await?;
    let (status, error) = post_body(&gw, "twice", vec![0x47; 188]).await?;
    assert_eq!(status, 409, "{error}");
    // And a plain GET of the play URL is not a WebSocket.
    let reply = api.get("/h5/twice").await?;
    assert_eq!(reply.status, 426, "{:?}", reply.error_message());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_stops_reading_is_dropped_without_stalling_the_others() -> anyhow::Result<()> {
    let gw = Gateway::start_with(&[], Some("hub:\n  grace_seconds: 1\n"));
    let api = gw.api();
    let _ffmpeg = post_mpeg1(&gw, "k");
    api.wait_live("k", LIVE).await?;

    // The stuck viewer: a WebSocket handshake on a socket with a tiny receive buffer that is
    // then never read.
    let addr: std::net::SocketAddr = gw.http_addr().parse()?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let stream = socket.connect(addr).await?;
    let (stuck, _) = tokio_tungstenite::client_async(ws_url(&gw, "/h5/k"), stream).await?;
    let (good, good_bytes) = spawn_reader(connect(&ws_url(&gw, "/h5/k")).await?);
    wait_until(Duration::from_secs(10), "two H5 viewers", || async {
        let s = api.stream("k").await.map_err(|e| e.to_string())?.ok_or("not live")?;
        if s.consumers.get("h5") == Some(&2) {
            Ok(())
        } else {
            Err(format!("{:?}", s.consumers))
        }
    })
    .await?;
    let started = Instant::now();
    let mut last = good_bytes.load(std::sync::atomic::Ordering::Relaxed);
    let mut worst_gap = Duration::ZERO;
    let mut last_growth = Instant::now();
    let dropped_after = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = good_bytes.load(std::sync::atomic::Ordering::Relaxed);
        if now > last {
            worst_gap = worst_gap.max(last_growth.elapsed());
            last_growth = Instant::now();
            last = now;
        }
        let s = api.stream("k").await?.context("stream gone")?;
        if s.consumers.get("h5") == Some(&1) {
            break started.elapsed();
        }
        ensure!(started.elapsed() < Duration::from_secs(30), "the stuck viewer is still attached: {:?}", s.consumers);
    };
    eprintln!("stuck viewer dropped after {dropped_after:?}; the other's longest gap {worst_gap:?}");
    assert!(worst_gap < Duration::from_millis(1500), "the reading viewer stalled for {worst_gap:?}");
    assert!(dropped_after < Duration::from_secs(15), "the stuck viewer was dropped only after {dropped_after:?}");
    // The reading viewer goes on.
    let before = good_bytes.load(std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(good_bytes.load(std::sync::atomic::Ordering::Relaxed) > before + 100_000);
    drop(stuck);
    good.abort();
    Ok(())
}

/// Decoded frames and picture content, as the player page reports them.
fn player_state(report: &common::chromium::PageReport) -> Option<(u64, bool)> {
    let p = &report.raw["player"];
    Some((p["decodedFrames"].as_u64()?, p["nonBlank"].as_bool()?))
}

#[test]
fn chromium_plays_the_h5_player_page() {
    use common::chromium::{in_loopback_netns, Chromium, PageServer};
    if !in_loopback_netns("chromium_plays_the_h5_player_page") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let body = async {
        let gw = Gateway::start();
        let api = gw.api();
        let _ffmpeg = Ffmpeg::publish(&gw.rtmp_url("/live/k"), PublishOptions::default());
        api.wait_live("k", LIVE).await?;
        let page = api.get("/h5/k/player").await?;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("JSMpeg.Player") && page.body.contains("/h5-assets/jsmpeg.min.js"));
        let script = api.get("/h5-assets/jsmpeg.min.js").await?;
        assert_eq!(script.status, 200, "{}", script.body);
        assert!(script.body.contains("JSMpeg"), "the npm package's script");

        let pages = PageServer::start().await?;
        let player = gw.http_url("/h5/k/player");
        let _browser = Chromium::start(&pages.url("h5-player.html", &[("id", "h5"), ("player", &player)]))?;
        let timeout = Duration::from_secs(60);
        let first = pages
            .wait_report("h5", timeout, "30 frames decoded and a picture on the canvas", |r| {
                r.kind == "h5" && player_state(r).is_some_and(|(frames, picture)| frames >= 30 && picture)
            })
            .await?;
        let (frames, _) = player_state(&first).context("player state")?;
        let later = pages
            .wait_report("h5", Duration::from_secs(20), "30 frames more", |r| {
                r.kind == "h5" && player_state(r).is_some_and(|(n, picture)| n >= frames + 30 && picture)
            })
            .await?;
        eprintln!("JSMpeg in Chromium: {}", later.raw["player"]);
        assert_eq!(later.raw["player"]["width"], 640, "JSMpeg's canvas has the MPEG-1 size");
        let stream = api.stream("k").await?.context("live")?;
        assert_eq!(stream.consumers.get("h5"), Some(&1), "the browser is the H5 viewer");
        anyhow::Ok(())
    };
    if let Err(error) = runtime.block_on(body) {
        panic!("{error:#}");
    }
}

/// After our close, the gateway's close frame arrives (not a dropped connection, which a
/// browser reports as 1006).
async fn expect_close_reply(ws: &mut Ws) -> anyhow::Result<()> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.context("no close reply within 5 s")? {
            Some(Ok(Message::Close(_))) => return Ok(()),
            Some(Ok(_)) => continue,
            other => bail!("the connection ended without a close reply: {other:?}"),
        }
    }
}

/// Issue 10: a WebSocket publisher that closed got no close reply (the client saw 1006).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_publisher_that_closes_gets_a_close_reply() -> anyhow::Result<()> {
    let gw = Gateway::start();
    for round in 0..3 {
        let mut ws = connect(&ws_url(&gw, "/h5/closing/publish")).await?;
        if round > 0 {
            // Some bytes that are not (yet) a full TS packet, then the close.
            ws.send(Message::Binary(vec![0x47, 0x40, 0x00, 0x10].into())).await?;
        }
        ws.close(None).await?;
        expect_close_reply(&mut ws).await.with_context(|| format!("round {round}"))?;
    }
    Ok(())
}
