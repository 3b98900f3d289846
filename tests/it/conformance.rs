//! The conformance matrix: for each of the six source protocols a real publisher, and for
//! each of the six target protocols a real viewer. Every one of the 36 cells asserts the
//! codecs the viewer got and that the gateway ran exactly the conversions the shipped matrix
//! plans for that stream (none on copy cells). Prints the 6×6 table of results.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use common::webrtc::{WhepOptions, WhepViewer, WhipOptions, WhipPublisher};
use common::{ffprobe, free_port, repo_root, wait_until, Api, Ffmpeg, Gateway, Nginx, PublishOptions, TempDir};
use futures_util::StreamExt;
use interop_gateway::matrix::{self, Matrix, Source, SourceTrack};
use interop_gateway::media::{Codec, Protocol};

const SMALL: PublishOptions =
    PublishOptions { duration: None, bframes: false, width: 320, height: 240, fps: 30, gop: 30 };
const MEDIA: Duration = Duration::from_secs(25);

/// Keeps a source's processes and sessions alive (held for their Drop).
#[allow(dead_code)]
enum SourceGuard {
    Ffmpeg(Ffmpeg),
    Pull(Ffmpeg),
    Whip(WhipPublisher),
}

fn lavfi_inputs() -> Vec<String> {
    ["-hide_banner", "-nostdin", "-loglevel", "warning", "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"]
        .into_iter()
        .chain(["-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .map(String::from)
        .collect()
}

async fn start_source(
    proto: Protocol,
    key: &str,
    gw: &Gateway,
    nginx: &Nginx,
    dir: &Path,
) -> anyhow::Result<SourceGuard> {
    let api = gw.api();
    Ok(match proto {
        Protocol::Hls => bail!("nothing publishes HLS"),
        Protocol::Rtmp => SourceGuard::Ffmpeg(Ffmpeg::publish(&gw.rtmp_url(&format!("/live/{key}")), SMALL)),
        Protocol::Miniprogram => SourceGuard::Ffmpeg(Ffmpeg::publish(&gw.rtmp_url(&format!("/mini/{key}")), SMALL)),
        Protocol::Cdn => {
            let upstream = nginx.rtmp_url(&format!("/live/up-{key}"));
            let ff = Ffmpeg::publish(&upstream, SMALL);
            common::ffmpeg::probe_until_h264_aac(&upstream, 320, 240, 44_100, MEDIA).await?;
            api.create_pull(key, &upstream).await?;
            SourceGuard::Pull(ff)
        }
        Protocol::Webrtc => {
            let p = WhipPublisher::start(&gw.http_url(&format!("/whip/{key}")), WhipOptions::default()).await?;
            p.wait_connected(Duration::from_secs(15)).await?;
            SourceGuard::Whip(p)
        }
        Protocol::H5 => {
            let mut args = lavfi_inputs();
            args.extend(
                ["-c:v", "mpeg1video", "-b:v", "800k", "-bf", "0", "-g", "30", "-c:a", "mp2", "-b:a", "128k"]
                    .map(String::from),
            );
            args.extend(["-f".to_string(), "mpegts".to_string(), gw.http_url(&format!("/h5/{key}"))]);
            SourceGuard::Ffmpeg(Ffmpeg::run(args, "h5 POST"))
        }
        Protocol::Udp => {
            let port = even_free_port();
            let sdp = dir.join(format!("{key}.sdp"));
            let mut args = lavfi_inputs();
            args.extend(
                ["-map", "0:v", "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-bf", "0"]
                    .map(String::from),
            );
            args.extend(["-g", "30", "-pix_fmt", "yuv420p", "-f", "rtp"].map(String::from));
            args.push(format!("rtp://127.0.0.1:{port}"));
            args.extend(["-map", "1:a", "-c:a", "libopus", "-f", "rtp"].map(String::from));
            args.push(format!("rtp://127.0.0.1:{}", port + 2));
            args.extend(["-sdp_file".to_string(), sdp.display().to_string()]);
            let ff = Ffmpeg::run(args, "udp RTP");
            let text = wait_until(Duration::from_secs(10), "ffmpeg's SDP file", || async {
                std::fs::read_to_string(&sdp)
                    .ok()
                    .filter(|t| t.contains("m=audio"))
                    .ok_or_else(|| "not yet".to_string())
            })
            .await?;
            let reply = api
                .post_raw(&format!("/api/v1/streams/{key}/udp-ingest"), "application/sdp", text.into_bytes())
                .await?;
            if reply.status != 201 && reply.status != 200 {
                bail!("udp-ingest: {} {}", reply.status, reply.body);
            }
            SourceGuard::Ffmpeg(ff)
        }
    })
}

/// An even port P with P..P+3 free for UDP (RTP and RTCP of video and audio).
fn even_free_port() -> u16 {
    for _ in 0..200 {
        let base = free_port() & !1;
        if base > 1024 && base < 65000 && (base..base + 4).all(|p| std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok())
        {
            return base;
        }
    }
    panic!("no four free UDP ports in a row");
}

fn normalize(name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "mpeg1video" => "mpeg1".into(),
        "pcm_mulaw" => "pcmu".into(),
        "pcm_alaw" => "pcma".into(),
        other => other.into(),
    }
}

/// (video, audio) codecs of what ffprobe reads at `input` (a URL or a file).
async fn probe_codecs(input: &str) -> anyhow::Result<(Option<String>, Option<String>)> {
    let probe = ffprobe(input, Duration::from_secs(20)).await?;
    let pick = |kind: &str| {
        probe
            .streams
            .iter()
            .find(|s| s.codec_type.as_deref() == Some(kind))
            .and_then(|s| s.codec_name.as_deref())
            .map(normalize)
    };
    Ok((pick("video"), pick("audio")))
}

/// Plays `key` by `target` with a real client; returns the codecs it got and the conversions
/// the API showed while it played.
async fn play(
    target: Protocol,
    key: &str,
    gw: &Gateway,
    nginx: &Nginx,
    dir: &Path,
) -> anyhow::Result<((Option<String>, Option<String>), Conversions)> {
    let api = gw.api();
    match target {
        Protocol::Rtmp => {
            let got = probe_codecs(&gw.rtmp_url(&format!("/live/{key}"))).await?;
            Ok((got, conversions(&api, key).await?))
        }
        Protocol::Hls => {
            let got = probe_codecs(&gw.http_url(&format!("/hls/{key}/index.m3u8"))).await?;
            Ok((got, conversions(&api, key).await?))
        }
        Protocol::Miniprogram => {
            let got = probe_codecs(&gw.http_url(&format!("/mini/{key}.flv"))).await?;
            Ok((got, conversions(&api, key).await?))
        }
        Protocol::Cdn => {
            let out = nginx.rtmp_url(&format!("/live/out-{key}"));
            let push = api.create_push(key, &out).await?;
            let got = wait_until(MEDIA, "the push on nginx", || async {
                match probe_codecs(&out).await {
                    Ok(c) if c.0.is_some() && c.1.is_some() => Ok(c),
                    other => Err(format!("{other:?}")),
                }
            })
            .await?;
            let conv = conversions(&api, key).await?;
            api.delete_push(key, &push.id).await?;
            Ok((got, conv))
        }
        Protocol::Webrtc => {
            let viewer = WhepViewer::start(&gw.http_url(&format!("/whep/{key}")), WhepOptions::default()).await?;
            viewer.wait_decoded(20, 10, MEDIA).await?;
            let got = (viewer.video_codec().map(|c| normalize(&c)), viewer.audio_codec().map(|c| normalize(&c)));
            let conv = conversions(&api, key).await?;
            viewer.stop().await?;
            Ok((got, conv))
        }
        Protocol::H5 => {
            let file = dir.join(format!("{key}.ts"));
            capture_ws(&gw.http_url(&format!("/h5/{key}")).replace("http://", "ws://"), &file, Duration::from_secs(4))
                .await?;
            let conv = conversions(&api, key).await?;
            Ok((probe_codecs(&file.display().to_string()).await?, conv))
        }
        Protocol::Udp => {
            let port = even_free_port();
            let reply = api
                .post_json(
                    &format!("/api/v1/streams/{key}/udp-outputs"),
                    &serde_json::json!({"host": "127.0.0.1", "port": port}),
                )
                .await?;
            if reply.status != 201 && reply.status != 200 {
                bail!("udp-outputs: {} {}", reply.status, reply.body);
            }
            let sdp = match reply.json.as_ref().and_then(|j| j.get("sdp")).and_then(|s| s.as_str()) {
                Some(s) => s.to_string(),
                None => reply.body.clone(),
            };
            let file = dir.join(format!("{key}-out.sdp"));
            std::fs::write(&file, sdp)?;
            let out = tokio::process::Command::new("ffprobe")
                .args(["-v", "error", "-protocol_whitelist", "file,udp,rtp", "-show_streams", "-of", "json"])
                .arg(&file)
                .kill_on_drop(true)
                .output();
            let out =
                tokio::time::timeout(Duration::from_secs(20), out).await.context("ffprobe on the SDP timed out")??;
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).context("ffprobe JSON")?;
            let pick = |kind: &str| {
                json["streams"]
                    .as_array()
                    .and_then(|a| a.iter().find(|s| s["codec_type"] == kind))
                    .and_then(|s| s["codec_name"].as_str())
                    .map(normalize)
            };
            let conv = conversions(&api, key).await?;
            Ok(((pick("video"), pick("audio")), conv))
        }
    }
}

async fn capture_ws(url: &str, file: &Path, span: Duration) -> anyhow::Result<()> {
    let (mut ws, _) = tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(url))
        .await
        .context("WebSocket connect timed out")??;
    let mut bytes = Vec::new();
    let start = Instant::now();
    while start.elapsed() < span {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(msg))) if msg.is_binary() => bytes.extend_from_slice(&msg.into_data()),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => bail!("WebSocket: {e}"),
            Ok(None) => break,
            Err(_) => bail!("no H5 data for 5 s"),
        }
    }
    std::fs::write(file, bytes)?;
    Ok(())
}

type Conversions = BTreeSet<(String, String, String)>;

async fn conversions(api: &Api, key: &str) -> anyhow::Result<Conversions> {
    let stream = api.stream(key).await?.with_context(|| format!("stream {key} not listed"))?;
    Ok(stream.conversions.iter().map(|c| (c.track.clone(), c.from.clone(), c.to.clone())).collect())
}

/// What the shipped matrix plans for this stream (its real codecs as the API shows them).
async fn expected(
    matrix: &Matrix,
    api: &Api,
    key: &str,
    from: Protocol,
    to: Protocol,
) -> anyhow::Result<(matrix::Plan, Conversions)> {
    let s = api.stream(key).await?.context("stream listed")?;
    let track = |c: Option<String>| c.and_then(|c| c.parse::<Codec>().ok()).map(SourceTrack::new);
    let source = Source { video: track(s.video.map(|v| v.codec)), audio: track(s.audio.map(|a| a.codec)) };
    let plan = matrix::plan(matrix, from, &source, to)?;
    let conv = plan.conversions().map(|(t, f, to, _)| (t.to_string(), f.to_string(), to.to_string())).collect();
    Ok((plan, conv))
}

async fn wait_no_conversions(api: &Api, key: &str) {
    let _ = wait_until(Duration::from_secs(10), "conversions gone", || async {
        match conversions(api, key).await {
            Ok(c) if c.is_empty() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

fn short(c: &Conversions) -> String {
    if c.is_empty() {
        "copy".into()
    } else {
        c.iter().map(|(_, f, t)| format!("{f}>{t}")).collect::<Vec<_>>().join("+")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cell_of_the_matrix_delivers_what_it_says() {
    let dir = TempDir::new("conformance");
    let nginx = Nginx::start();
    let gw = Gateway::start_with(
        &[],
        Some("hub: { grace_seconds: 0.5 }\nhls: { idle_seconds: 3 }\nrelay: { retry_min_seconds: 0.5, retry_max_seconds: 2 }\n"),
    );
    let api = gw.api();
    let shipped = Matrix::load(&repo_root().join("matrix.yaml")).expect("shipped matrix");
    let mut table: Vec<Vec<String>> = Vec::new();
    let mut failures = Vec::new();
    for from in Protocol::PUBLISHERS {
        let key = format!("c-{from}");
        let mut row = Vec::new();
        let guard = match start_source(from, &key, &gw, &nginx, dir.path()).await {
            Ok(g) => Some(g),
            Err(e) => {
                failures.push(format!("{from} source: {e:#}"));
                None
            }
        };
        let live = guard.is_some() && api.wait_live(&key, MEDIA).await.is_ok();
        for to in Protocol::ALL {
            if !live {
                row.push("no source".to_string());
                continue;
            }
            wait_no_conversions(&api, &key).await;
            let cell = async {
                let (plan, want) = expected(&shipped, &api, &key, from, to).await?;
                let (got, ran) = tokio::time::timeout(Duration::from_secs(40), play(to, &key, &gw, &nginx, dir.path()))
                    .await
                    .context("cell timed out")??;
                let want_codecs = (
                    plan.video.map(|l| l.output_codec().to_string()),
                    plan.audio.map(|l| l.output_codec().to_string()),
                );
                if got != want_codecs {
                    bail!("viewer got {got:?}, the plan says {want_codecs:?}");
                }
                if ran != want {
                    bail!("conversions {} ran, the plan says {}", short(&ran), short(&want));
                }
                anyhow::Ok(short(&want))
            };
            match cell.await {
                Ok(text) => row.push(format!("ok {text}")),
                Err(e) => {
                    failures.push(format!("{from} -> {to}: {e:#}"));
                    row.push("FAIL".into());
                }
            }
        }
        drop(guard);
        table.push(row);
    }
    let mut out = format!(
        "\n| from \\ to | {} |\n|---|{}\n",
        Protocol::ALL.map(|p| p.to_string()).join(" | "),
        "---|".repeat(Protocol::ALL.len())
    );
    for (from, row) in Protocol::ALL.iter().zip(&table) {
        out.push_str(&format!("| {from} | {} |\n", row.join(" | ")));
    }
    println!("{out}");
    assert!(
        failures.is_empty(),
        "{} of 42 cells failed:\n{}\n{out}\n{}",
        failures.len(),
        failures.join("\n"),
        gw.stderr_tail()
    );
}
