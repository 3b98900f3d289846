//! The RTMP layer against real peers on 127.0.0.1: ffmpeg and GStreamer publish to a tiny
//! server loop built on `ServerConn`, ffprobe plays from it, and `ClientConn` pushes to and
//! plays from nginx-rtmp. Every process started here is killed on drop; every wait is bounded.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use interop_gateway::protocols::rtmp::amf::{self, Amf0Value};
use interop_gateway::protocols::rtmp::{
    encode_media_chunks, ClientConn, ClientEvent, MediaKind, MediaMessage, RtmpUrl, ServerConn, ServerEvent,
};

const STEP: Duration = Duration::from_secs(10);
const RUN: Duration = Duration::from_secs(60);

async fn bounded<F: std::future::Future>(limit: Duration, what: &str, f: F) -> F::Output {
    tokio::time::timeout(limit, f).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A child process killed (and reaped) when dropped.
struct Proc {
    child: Child,
    name: &'static str,
}

impl Proc {
    fn spawn(name: &'static str, program: &str, args: &[&str]) -> Proc {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program} (needed by this test): {e}"));
        Proc { child, name }
    }

    /// Waits for the exit (bounded); returns success and the captured stdout and stderr.
    async fn finish(mut self, limit: Duration) -> (bool, String, String) {
        let (mut out, mut err) = (String::new(), String::new());
        let (stdout, stderr) = (self.child.stdout.take(), self.child.stderr.take());
        let name = self.name;
        let child = &mut self.child;
        let status = bounded(limit, name, async {
            let read_out = async {
                if let Some(mut p) = stdout {
                    let _ = p.read_to_string(&mut out).await;
                }
            };
            let read_err = async {
                if let Some(mut p) = stderr {
                    let _ = p.read_to_string(&mut err).await;
                }
            };
            tokio::join!(read_out, read_err);
            child.wait().await
        })
        .await;
        (status.map(|s| s.success()).unwrap_or(false), out, err)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let port = l.local_addr().expect("local addr").port();
    (l, port)
}

/// Accepts one publisher, accepts its publish, and collects its media until it leaves.
async fn serve_one_publisher(l: TcpListener) -> (ServerEvent, Vec<MediaMessage>) {
    let (tcp, addr) = bounded(STEP, "publisher connects", l.accept()).await.expect("accept");
    let mut conn = ServerConn::accept(tcp, STEP).await.expect("handshake");
    conn.set_peer_addr(addr);
    let mut publish = None;
    let mut media = Vec::new();
    loop {
        match bounded(STEP, "next event", conn.next_event()).await.expect("protocol error") {
            Some(ServerEvent::Connect { app, .. }) => assert_eq!(app, "live"),
            Some(ev @ ServerEvent::Publish { .. }) => {
                publish = Some(ev);
                conn.accept_publish().await.expect("accept publish");
            }
            Some(ServerEvent::Media(m)) => media.push(m),
            // After unpublishing, publishers (rtmp2sink) still send deleteStream and expect
            // the server to stay until they hang up, as servers do.
            Some(ServerEvent::Unpublish) => {}
            None => break,
            Some(other) => panic!("unexpected event {other:?}"),
        }
    }
    conn.close().await;
    (publish.expect("a publish request"), media)
}

fn first_bytes(m: &MediaMessage) -> (u8, u8) {
    (m.payload.first().copied().unwrap_or(0), m.payload.get(1).copied().unwrap_or(0xff))
}

/// H.264 video and AAC audio with sequence headers first and timestamps that grow.
fn check_published_media(media: &[MediaMessage], min_duration_ms: u32) {
    let video: Vec<_> = media.iter().filter(|m| m.kind == MediaKind::Video).collect();
    let audio: Vec<_> = media.iter().filter(|m| m.kind == MediaKind::Audio).collect();
    assert!(video.len() >= 50, "{} video messages", video.len());
    assert!(audio.len() >= 80, "{} audio messages", audio.len());
    assert_eq!(first_bytes(video[0]), (0x17, 0x00), "AVC sequence header first");
    assert_eq!(first_bytes(audio[0]).0 >> 4, 10, "AAC audio");
    assert_eq!(first_bytes(audio[0]).1, 0x00, "AAC sequence header first");
    assert!(video.iter().skip(1).any(|m| first_bytes(m) == (0x17, 0x01)), "a keyframe");
    for list in [&video, &audio] {
        assert!(list.windows(2).all(|w| w[0].timestamp <= w[1].timestamp), "timestamps never go back");
        let last = list.last().map_or(0, |m| m.timestamp);
        assert!(last >= min_duration_ms, "last timestamp {last} ms");
    }
}

fn ffmpeg_publish_args(url: &str, realtime: bool) -> Vec<String> {
    let mut args: Vec<String> = ["-hide_banner", "-loglevel", "error", "-nostdin"].map(String::from).to_vec();
    if realtime {
        args.push("-re".into());
    }
    for a in [
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        "3",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-g",
        "25",
        "-c:a",
        "aac",
        "-f",
        "flv",
        url,
    ] {
        args.push(a.into());
    }
    args
}

/// Runs ffmpeg as a publisher into our server loop; returns what the server saw.
async fn capture_from_ffmpeg(realtime: bool) -> (ServerEvent, Vec<MediaMessage>) {
    let (l, port) = listener().await;
    let url = format!("rtmp://127.0.0.1:{port}/live/k");
    let args = ffmpeg_publish_args(&url, realtime);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ffmpeg = Proc::spawn("ffmpeg", "ffmpeg", &args);
    let served = bounded(RUN, "ffmpeg publish", serve_one_publisher(l)).await;
    let (ok, _, err) = ffmpeg.finish(STEP).await;
    assert!(ok, "ffmpeg failed: {err}");
    served
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publishes_to_our_server() {
    let (publish, media) = capture_from_ffmpeg(true).await;
    assert_eq!(publish, ServerEvent::Publish { app: "live".into(), key: "k".into(), query: None });
    check_published_media(&media, 2500);
    let data = media.iter().find(|m| m.kind == MediaKind::Data).expect("metadata");
    let values = amf::read_values(&data.payload).expect("AMF0 metadata");
    assert_eq!(values[0].as_str(), Some("@setDataFrame"));
    assert_eq!(values[1].as_str(), Some("onMetaData"));
    assert_eq!(values[2].get("width").and_then(Amf0Value::as_f64), Some(320.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_rtmp2sink_publishes_to_our_server() {
    let (l, port) = listener().await;
    let location = format!("location=rtmp://127.0.0.1:{port}/live/k?token=t1");
    let pipeline = [
        "-q",
        "videotestsrc",
        "num-buffers=75",
        "!",
        "video/x-raw,width=320,height=240,framerate=25/1",
        "!",
        "x264enc",
        "key-int-max=25",
        "speed-preset=veryfast",
        "!",
        "h264parse",
        "!",
        "flvmux",
        "name=m",
        "streamable=true",
        "!",
        "rtmp2sink",
        &location,
        "audiotestsrc",
        "num-buffers=130",
        "!",
        "audio/x-raw,rate=44100,channels=2",
        "!",
        "audioconvert",
        "!",
        "voaacenc",
        "!",
        "aacparse",
        "!",
        "m.",
    ];
    let gst = Proc::spawn("gst-launch-1.0", "gst-launch-1.0", &pipeline);
    let (publish, media) = bounded(RUN, "gst publish", serve_one_publisher(l)).await;
    let (ok, _, err) = gst.finish(STEP).await;
    assert!(ok, "gst-launch-1.0 failed: {err}");
    assert_eq!(publish, ServerEvent::Publish { app: "live".into(), key: "k".into(), query: Some("token=t1".into()) });
    check_published_media(&media, 2500);
}

/// The metadata a player gets: `@setDataFrame` removed.
fn player_data(payload: &Bytes) -> Bytes {
    let mut rest: &[u8] = payload;
    match amf::read_value(&mut rest) {
        Ok(Amf0Value::String(s)) if s == "@setDataFrame" => payload.slice(payload.len() - rest.len()..),
        _ => payload.clone(),
    }
}

/// The captured messages chunked once for all players.
fn encode_for_players(media: &[MediaMessage]) -> Vec<Bytes> {
    media
        .iter()
        .map(|m| {
            let payload = if m.kind == MediaKind::Data { player_data(&m.payload) } else { m.payload.clone() };
            encode_media_chunks(m.kind, m.timestamp, &payload)
        })
        .collect()
}

/// Accepts one player of `/live/k`, sends it `shared`, optionally ends the play (Stream
/// EOF + UnpublishNotify), and serves it until it hangs up.
async fn serve_one_player(l: TcpListener, shared: Vec<Bytes>, end_play: bool) {
    let (tcp, _) = bounded(STEP, "player connects", l.accept()).await.expect("accept");
    let mut conn = ServerConn::accept(tcp, STEP).await.expect("handshake");
    loop {
        match bounded(STEP, "next event", conn.next_event()).await.expect("protocol error") {
            Some(ServerEvent::Connect { .. }) => {}
            Some(ServerEvent::Play { app, key, query }) => {
                assert_eq!((app.as_str(), key.as_str(), query), ("live", "k", None));
                conn.accept_play().await.expect("accept play");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    for chunks in &shared {
        if conn.send_chunks(chunks).await.is_err() {
            return; // a prober may leave once it has seen enough
        }
    }
    if end_play {
        conn.end_play().await.expect("end play");
    }
    while let Ok(Some(_)) = bounded(STEP, "player leaves", conn.next_event()).await {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffprobe_plays_from_our_server() {
    let (_, media) = capture_from_ffmpeg(false).await;
    check_published_media(&media, 2500);
    let shared = encode_for_players(&media);

    let (l, port) = listener().await;
    let url = format!("rtmp://127.0.0.1:{port}/live/k");
    let ffprobe = Proc::spawn("ffprobe", "ffprobe", &["-v", "error", "-show_streams", "-of", "json", &url]);
    let server = serve_one_player(l, shared, false);
    bounded(RUN, "play to ffprobe", server).await;
    let (ok, out, err) = ffprobe.finish(STEP).await;
    assert!(ok, "ffprobe failed: {err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("ffprobe JSON");
    let streams = json["streams"].as_array().expect("streams");
    let codec = |kind: &str| {
        streams.iter().find(|s| s["codec_type"] == kind).and_then(|s| s["codec_name"].as_str()).map(str::to_string)
    };
    assert_eq!(codec("video").as_deref(), Some("h264"), "{out}");
    assert_eq!(codec("audio").as_deref(), Some("aac"), "{out}");
    let video = streams.iter().find(|s| s["codec_type"] == "video").expect("video stream");
    assert_eq!((video["width"].as_u64(), video["height"].as_u64()), (Some(320), Some(240)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_rtmp2src_plays_from_our_server() {
    let (_, media) = capture_from_ffmpeg(false).await;
    // Coded frames: AVC packet type 1 (not the sequence header, not ffmpeg's end-of-sequence).
    let frames = media.iter().filter(|m| m.kind == MediaKind::Video && m.payload.get(1) == Some(&1)).count();
    let shared = encode_for_players(&media);
    let (l, port) = listener().await;
    let location = format!("location=rtmp://127.0.0.1:{port}/live/k");
    let pipeline = [
        "rtmp2src",
        &location,
        "!",
        "flvdemux",
        "name=d",
        "d.video",
        "!",
        "queue",
        "!",
        "h264parse",
        "!",
        "avdec_h264",
        "!",
        "fakesink",
        "name=vsink",
        "silent=false",
        "d.audio",
        "!",
        "queue",
        "!",
        "aacparse",
        "!",
        "fakesink",
    ];
    let mut args = vec!["-v", "-m"];
    args.extend(pipeline);
    let gst = Proc::spawn("gst-launch-1.0", "gst-launch-1.0", &args);
    // Stream EOF ends the play: rtmp2src goes to EOS and gst-launch exits cleanly.
    bounded(RUN, "play to rtmp2src", serve_one_player(l, shared, true)).await;
    let (ok, out, err) = gst.finish(STEP).await;
    assert!(ok, "gst-launch-1.0 failed: {err}\n{out}");
    assert!(out.contains("EOS"), "no EOS on the bus: {err}");
    let decoded = out.matches("vsink: last-message = chain").count();
    assert_eq!(decoded, frames, "every video frame decoded");
}

/// nginx with the RTMP module, in its own temporary directory.
struct Nginx {
    _proc: Proc,
    dir: PathBuf,
    port: u16,
}

impl Nginx {
    async fn start() -> Nginx {
        let module = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
        assert!(std::path::Path::new(module).exists(), "{module} missing: install libnginx-mod-rtmp");
        let dir = std::env::temp_dir().join(format!("rtmp-wire-nginx-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("logs")).expect("temp dir");
        // A free port: bind, read it, release it for nginx.
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let d = dir.display();
        let conf = format!(
            "load_module {module};\ndaemon off;\nmaster_process off;\nerror_log {d}/e.log info;\npid {d}/n.pid;\n\
             events {{}}\nrtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}\n"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let conf_arg = conf_path.display().to_string();
        let prefix = format!("{d}/");
        let proc = Proc::spawn("nginx", "nginx", &["-p", &prefix, "-c", &conf_arg]);
        let nginx = Nginx { _proc: proc, dir, port };
        bounded(STEP, "nginx listens", async {
            while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        nginx
    }

    fn url(&self, path: &str) -> RtmpUrl {
        format!("rtmp://127.0.0.1:{}{path}", self.port).parse().expect("URL")
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("e.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `sub` appears in `all` in order (not necessarily adjacent).
fn is_subsequence(sub: &[&Bytes], all: &[&Bytes]) -> bool {
    let mut it = all.iter();
    sub.iter().all(|s| it.any(|a| a == s))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_pushes_to_nginx_and_plays_back() {
    let (_, media) = capture_from_ffmpeg(false).await;
    let nginx = Nginx::start().await;
    let url = nginx.url("/live/k");

    // The player subscribes first (nginx-rtmp lets a live player wait for its publisher).
    let mut player =
        ClientConn::connect(&url, STEP).await.unwrap_or_else(|e| panic!("connect: {e}\n{}", nginx.error_log()));
    player.play().await.expect("play");

    let mut publisher = ClientConn::connect(&url, STEP).await.expect("publisher connects");
    publisher.publish().await.unwrap_or_else(|e| panic!("publish: {e}\n{}", nginx.error_log()));

    let pushed = media.clone();
    let push = tokio::spawn(async move {
        for m in &pushed {
            publisher.send_media(m.kind, m.timestamp, &m.payload).await.expect("send media");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        publisher.close().await;
    });

    let mut got = Vec::new();
    let mut statuses = Vec::new();
    bounded(RUN, "play back from nginx", async {
        loop {
            let next = tokio::time::timeout(STEP, player.next_event()).await;
            let Ok(next) = next else {
                panic!(
                    "no media from nginx within {STEP:?}; statuses {statuses:?}, {} messages so far\n{}",
                    got.len(),
                    nginx.error_log()
                )
            };
            match next.expect("play error") {
                Some(ClientEvent::Media(m)) => got.push(m),
                Some(ClientEvent::Status { code, .. }) => {
                    let done = code == "NetStream.Play.UnpublishNotify";
                    statuses.push(code);
                    if done {
                        break;
                    }
                }
                Some(ClientEvent::StreamEof) => {
                    statuses.push("StreamEOF".into());
                    break;
                }
                None => break,
            }
        }
    })
    .await;
    bounded(STEP, "push ends", push).await.expect("push task");
    player.close().await;

    // Without `publish_notify on`, nginx-rtmp ends a live play with User Control Stream EOF only.
    assert_eq!(statuses, vec!["StreamEOF".to_string()]);
    let meta = got.iter().find(|m| m.kind == MediaKind::Data).expect("metadata from nginx");
    assert_eq!(amf::read_values(&meta.payload).expect("AMF0")[0].as_str(), Some("onMetaData"));
    for kind in [MediaKind::Video, MediaKind::Audio] {
        let sent: Vec<&Bytes> = media.iter().filter(|m| m.kind == kind).map(|m| &m.payload).collect();
        let recv: Vec<&Bytes> = got.iter().filter(|m| m.kind == kind).map(|m| &m.payload).collect();
        assert_eq!(recv.first(), sent.first(), "{kind:?} sequence header comes back unchanged");
        assert!(recv.len() * 10 >= sent.len() * 9, "{kind:?}: {} of {} messages came back", recv.len(), sent.len());
        assert!(is_subsequence(&recv, &sent), "{kind:?} payloads come back unchanged and in order");
        let times: Vec<u32> = got.iter().filter(|m| m.kind == kind).map(|m| m.timestamp).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{kind:?} timestamps never go back");
    }
}
