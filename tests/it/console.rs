//! The operator's console (`GET /console`) in real headless Chromium, driven through the
//! DevTools protocol by `tests/console/drive.mjs` (puppeteer-core, the system Chromium),
//! against a gateway with API tokens and two live ffmpeg RTMP publishers. Like every browser
//! test it runs inside a loopback-only network namespace (WHEP's ICE reaches only `lo`).
//!
//! Asserted: the console asks for a token (401); with a read token the stream list shows both
//! streams with their codecs and bitrates, and kicking is refused with the 403 shown; with
//! the admin token a preview decodes frames (the counter grows) in each protocol — WHEP
//! (getStats framesDecoded), HTTP-FLV through mpegts.js and HLS through hls.js (the video
//! element's decoded frames), H5 through JSMpeg (its decoded pictures) — beside the plan the
//! gateway uses; the matrix table shows every cell and a cell's plan on hover; an edit typed
//! with an error shows `line:col: message` and is not applied (the generation stays); a good
//! edit is applied (new generation, `GET /api/v1/matrix` shows it) and rolled back with one
//! click; a recording is started and stopped and a clip cut from the console. Screenshots
//! land in `<target>/artifacts/console/`.
//!
//! The API the console relies on is checked here without the browser too: the event stream
//! (401 without a token, `event: state` frames with the streams and bitrates), and a PUT of a
//! bad matrix (422 with the problems, the generation and file unchanged).

use crate::common;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use common::chromium::{in_loopback_netns, CHROMIUM};
use common::{repo_root, wait_child, Api, Ffmpeg, Gateway, LineBuffer, Nginx, PublishOptions, TempDir};
use serde_json::{json, Value};

const ADMIN: &str = "console-admin-token";
const READ: &str = "console-read-token";
const LIVE: Duration = Duration::from_secs(20);
/// Bound on the whole browser session (each step inside has its own).
const DRIVE: Duration = Duration::from_secs(180);

/// `<target>/artifacts/console/`.
fn artifacts() -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(&tmp).join("artifacts").join("console")
}

/// Reads the first `state` event of `/api/v1/events` (bounded).
async fn first_event(api_base: &str, token: Option<&str>) -> anyhow::Result<(u16, String)> {
    let client = reqwest::Client::new();
    let mut request = client.get(format!("{api_base}/api/v1/events"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let mut response = tokio::time::timeout(Duration::from_secs(10), request.send()).await??;
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    if status != 200 {
        return Ok((status, response.text().await.unwrap_or_default()));
    }
    anyhow::ensure!(content_type == "text/event-stream", "content type {content_type}");
    let mut text = String::new();
    // Two events: the second one carries bitrates measured over a second.
    while text.matches("\n\n").count() < 2 {
        let chunk = tokio::time::timeout(Duration::from_secs(5), response.chunk()).await??.context("stream ended")?;
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    Ok((status, text))
}

/// Checks the API the console stands on, without a browser.
async fn check_api(gw: &Gateway, admin: &Api, matrix_file: &std::path::Path) -> anyhow::Result<()> {
    let base = gw.http_url("");
    let (status, _) = first_event(&base, None).await?;
    assert_eq!(status, 401, "the event stream is behind the API guard");
    let (status, text) = first_event(&base, Some(READ)).await?;
    assert_eq!(status, 200);
    let second = text.split("\n\n").nth(1).context("a second event")?;
    assert!(second.starts_with("event: state\ndata: "), "{second}");
    let data: Value = serde_json::from_str(second.trim_start_matches("event: state\ndata: "))?;
    let keys: Vec<&str> =
        data["streams"].as_array().context("streams")?.iter().filter_map(|s| s["key"].as_str()).collect();
    assert!(keys.contains(&"teacher") && keys.contains(&"lab"), "{keys:?}");
    assert!(data["bitrates"]["teacher"]["in_bps"].as_u64().unwrap_or(0) > 10_000, "bitrate in: {}", data["bitrates"]);
    assert!(data["streams"][0]["publisher"]["remote"].is_null(), "addresses are for admin tokens only");

    let before = admin.get("/api/v1/matrix").await?.json.context("matrix")?["generation"].as_u64();
    let original = std::fs::read_to_string(matrix_file)?;
    let bad = original.replacen("audio: aac->opus", "audio: aac->opsu", 1);
    let reply = admin
        .request(
            reqwest::Method::PUT,
            "/api/v1/matrix",
            Some(("application/json", json!({ "yaml": bad }).to_string().into_bytes())),
        )
        .await?;
    assert_eq!(reply.status, 422, "{}", reply.body);
    let problem = &reply.json.as_ref().context("json")?["problems"][0];
    assert!(
        problem["line"].as_u64().unwrap_or(0) > 0 && problem["message"].as_str().unwrap_or("").contains("opsu"),
        "{problem}"
    );
    let check = admin.post_json("/api/v1/matrix/check", &json!({ "yaml": bad })).await?;
    assert_eq!(check.json.as_ref().context("json")?["problems"], reply.json.as_ref().context("json")?["problems"]);
    assert_eq!(admin.get("/api/v1/matrix").await?.json.context("matrix")?["generation"].as_u64(), before);
    assert_eq!(std::fs::read_to_string(matrix_file)?, original, "a refused matrix is not written");
    let reply = admin.post_json("/api/v1/matrix/rollback", &json!({})).await?;
    assert_eq!(reply.status, 409, "no previous matrix yet: {}", reply.body);
    let read = Api::new(base.clone()).with_token(READ);
    assert_eq!(read.post_json("/api/v1/matrix/check", &json!({ "yaml": original })).await?.status, 403);
    Ok(())
}

/// Runs the browser session; returns its report.
fn drive(base: &str, push_url: &str) -> anyhow::Result<Value> {
    let script = repo_root().join("tests/console/drive.mjs");
    let input = json!({
        "base": base,
        "chromium": CHROMIUM,
        "streams": ["teacher", "lab"],
        "previewStream": "teacher",
        "pushUrl": push_url,
        "pulledStream": "pulled",
        "readToken": READ,
        "adminToken": ADMIN,
        "artifacts": artifacts(),
    });
    let mut child = Command::new("node")
        .arg(&script)
        .arg(input.to_string())
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .context("spawn node (npm ci installs puppeteer-core)")?;
    let stdout = LineBuffer::drain(child.stdout.take().context("stdout")?, |_| {});
    let stderr = LineBuffer::drain(child.stderr.take().context("stderr")?, |line| eprintln!("{line}"));
    let status = wait_child(&mut child, DRIVE);
    if status.is_none() {
        // The driver's own process group: node and the browser it started.
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
        let _ = child.wait();
        anyhow::bail!("the console driver did not finish within {DRIVE:?}\n{}", stderr.tail(60));
    }
    std::thread::sleep(Duration::from_millis(100));
    let tail = stdout.tail(1);
    let last = tail.lines().next_back().unwrap_or("");
    serde_json::from_str(last).with_context(|| format!("driver output `{last}`\n{}", stderr.tail(60)))
}

fn frames(report: &Value, protocol: &str) -> (u64, u64) {
    let p = &report["previews"][protocol];
    (p["framesBefore"].as_u64().unwrap_or(0), p["framesAfter"].as_u64().unwrap_or(0))
}

#[test]
fn console_in_chromium_lists_previews_and_edits_the_matrix() {
    if !in_loopback_netns("console_in_chromium_lists_previews_and_edits_the_matrix") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let dir = TempDir::new("console");
        let matrix_file = dir.path().join("matrix.yaml");
        let original = std::fs::read_to_string(repo_root().join("matrix.yaml")).expect("matrix.yaml");
        std::fs::write(&matrix_file, &original).expect("copy matrix.yaml");
        let config = format!(
            "auth:\n  api_tokens:\n    - {{ token: \"{ADMIN}\", role: admin }}\n    - {{ token: \"{READ}\", role: read }}\n\
             recording: {{ dir: \"{0}/rec\", segment_seconds: 2 }}\nclips: {{ dir: \"{0}/clips\" }}\n",
            dir.path().display()
        );
        let matrix_arg = matrix_file.display().to_string();
        let gw = Gateway::start_with(&["--matrix", &matrix_arg], Some(&config));
        let admin = gw.api().with_token(ADMIN);
        let _teacher = Ffmpeg::publish(&gw.rtmp_url("/live/teacher"), PublishOptions::default());
        let _lab = Ffmpeg::publish(
            &gw.rtmp_url("/live/lab"),
            PublishOptions { width: 320, height: 240, fps: 25, gop: 50, ..PublishOptions::default() },
        );
        admin.wait_live("teacher", LIVE).await.expect("teacher live");
        admin.wait_live("lab", LIVE).await.expect("lab live");
        let console = reqwest::get(gw.http_url("/console")).await.expect("GET /console");
        assert_eq!(console.status(), 200, "is the console built? (npm run build)");
        check_api(&gw, &admin, &matrix_file).await.expect("the API under the console");

        // The CDN origin the console pushes to and pulls back from.
        let mut origin = Nginx::start();
        let push_url = origin.rtmp_url("/live/from-console");

        let base = gw.http_url("");
        let push = push_url.clone();
        let report = tokio::task::spawn_blocking(move || drive(&base, &push)).await.expect("join").expect("driver");
        let pretty = serde_json::to_string_pretty(&report).unwrap_or_default();
        println!("console driver report: {pretty}");
        let _ = std::fs::write(artifacts().join("report.json"), &pretty);
        assert_eq!(report["ok"], true, "{}", report["failure"]);

        // The token was asked for, and the read token could not kick.
        assert!(report["login"].as_str().unwrap_or("").contains("401"), "{}", report["login"]);
        let kick = report["kickNotice"].as_str().unwrap_or("");
        assert!(kick.contains("403") && kick.contains("admin"), "{kick}");
        assert!(admin.stream("teacher").await.expect("api").is_some(), "the refused kick kicked nobody");

        // The stream list: both streams with codecs, resolution and a bitrate.
        let rows = report["rows"].as_array().expect("rows");
        let row = |key: &str| -> Vec<String> {
            rows.iter()
                .find(|r| r["key"] == key)
                .map(|r| r["cells"].as_array().into_iter().flatten().filter_map(Value::as_str).map(String::from).collect())
                .unwrap_or_else(|| panic!("no row for {key}: {rows:?}"))
        };
        // Cells: stream, publisher, video, audio, in / out, viewers, conversions, actions.
        let teacher = row("teacher");
        assert!(teacher[1].starts_with("rtmp"), "{teacher:?}");
        assert_eq!(teacher[2], "h264 640×360 30 fps", "{teacher:?}");
        assert_eq!(teacher[3], "aac 44100 Hz 1 ch", "{teacher:?}");
        assert!(!teacher[4].starts_with("0 b/s"), "a bitrate in: {teacher:?}");
        let lab = row("lab");
        assert_eq!(lab[2], "h264 320×240 25 fps", "{lab:?}");

        // Previews: frames decoded, and growing, in every protocol, with the plan beside.
        for protocol in ["whep", "flv", "h5", "hls"] {
            let (a, b) = frames(&report, protocol);
            assert!(a >= 20 && b > a, "{protocol}: frames {a} -> {b}: {}", report["previews"][protocol]);
        }
        // While the WHEP preview plays, the row shows its viewer and the AAC -> Opus it needs.
        let whep_row: Vec<&str> =
            report["previews"]["whep"]["row"].as_array().expect("row").iter().filter_map(Value::as_str).collect();
        assert!(whep_row.get(5).is_some_and(|v| v.contains("webrtc 1")), "{whep_row:?}");
        assert!(whep_row.get(6).is_some_and(|c| c.contains("audio aac→opus ×1 (rule)") && c.contains("opusenc")), "{whep_row:?}");
        let plan = |p: &str| report["previews"][p]["plan"].as_str().unwrap_or("").to_string();
        assert!(plan("whep").contains("audio: convert aac -> opus"), "{}", plan("whep"));
        assert!(plan("flv").contains("video: copy h264") && plan("flv").contains("audio: copy aac"), "{}", plan("flv"));
        assert!(plan("h5").contains("video: convert h264 -> mpeg1") && plan("h5").contains("appsrc !"), "{}", plan("h5"));

        // Actions with the admin token: a recording started and stopped, a clip cut.
        let clip = report["clipNotice"].as_str().unwrap_or("");
        assert!(clip.contains("clip of teacher: http") && clip.contains(".mp4"), "{clip}");
        let recordings = report["recordings"].as_array().expect("recordings");
        assert!(
            recordings.iter().any(|r| r[1] == "lab" && r[2] == "stopped" && r[3].as_str().is_some_and(|d| d.ends_with(" s"))),
            "{recordings:?}"
        );
        let on_disk: Vec<_> = std::fs::read_dir(dir.path().join("rec/lab")).expect("recordings of lab").flatten().collect();
        assert!(on_disk.iter().any(|e| e.file_name().to_string_lossy().ends_with(".mp4")), "{on_disk:?}");

        // A push to the origin and a pull back from it, both live, then both stopped; the
        // pulled stream carried the teacher's picture (codecs, size) through the real origin.
        let relays = report["relays"].as_array().expect("relays");
        let live = |kind: &str, stream: &str| {
            relays.iter().any(|r| r[0] == kind && r[2] == stream && r[4].as_str().is_some_and(|s| s.starts_with("live")))
        };
        assert!(live("push", "teacher") && live("pull", "pulled"), "{relays:?}");
        let pulled: Vec<&str> = report["pulledRow"].as_array().expect("row").iter().filter_map(Value::as_str).collect();
        assert_eq!(pulled.get(2).copied(), Some("h264 640×360 30 fps"), "{pulled:?}");
        assert_eq!(report["relaysAfterStop"], 0);
        assert!(admin.get("/api/v1/pushes").await.expect("api").json.expect("json")["pushes"].as_array().is_none_or(|p| p.is_empty()));
        origin.stop();

        // The matrix: 6 publishers × 7 viewers, a cell's plan on hover.
        assert_eq!(report["matrixCells"], 42);
        let tip = report["hoverTip"].as_str().unwrap_or("");
        assert!(tip.contains("rtmp → webrtc") && tip.contains("aac → opus"), "{tip}");

        // The bad edit: line:col shown, not applied.
        let problems: Vec<&str> = report["problems"].as_array().expect("problems").iter().filter_map(Value::as_str).collect();
        let bad_line = original.lines().position(|l| l.contains("audio: aac->opus")).map(|i| i + 1);
        let rtmp_line = original.lines().position(|l| l == "  rtmp:").expect("rtmp row") + 2;
        assert!(
            problems.iter().any(|p| p.starts_with(&format!("{rtmp_line}:")) && p.contains("opsu")),
            "problems {problems:?} (first aac->opus at {bad_line:?}, the rtmp row's at {rtmp_line})"
        );
        assert_eq!(report["applyDisabled"], true);
        let g0 = report["generationBefore"].as_u64().expect("generation");
        assert_eq!(report["generationAfterError"].as_u64(), Some(g0), "an invalid edit changes nothing");

        // The good edit applied, then rolled back.
        let g1 = report["generationApplied"].as_u64().expect("generation");
        assert!(g1 > g0, "applied: generation {g0} -> {g1}");
        assert_eq!(report["appliedWidth"], "480");
        assert!(report["appliedCell"].as_str().unwrap_or("").contains("width=480"), "{}", report["appliedCell"]);
        let g2 = report["generationRolledBack"].as_u64().expect("generation");
        assert!(g2 > g1, "rolled back: generation {g1} -> {g2}");
        assert_eq!(report["rolledBackWidth"], "640");
        assert!(report["rolledBackCell"].as_str().unwrap_or("").contains("width=640"));
        assert_eq!(std::fs::read_to_string(&matrix_file).expect("matrix file"), original, "rolled back on disk");
        let previous = std::fs::read_to_string(dir.path().join("matrix.yaml.previous")).expect("previous text kept");
        assert!(previous.contains("width: 480"), "the text rolled back from is the previous one now");

        let shots = report["screenshots"].as_array().expect("screenshots");
        assert!(shots.len() >= 10, "{shots:?}");
        for shot in shots {
            let path = shot.as_str().expect("path");
            let bytes = std::fs::read(path).expect("screenshot");
            assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 5000, "{path}");
        }
        assert!(report["errors"].as_array().is_none_or(|e| e.is_empty()), "page errors: {}", report["errors"]);
    });
}
