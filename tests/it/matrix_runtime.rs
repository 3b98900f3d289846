//! The matrix at run time: `check` and `plan` on the command line, `serve` refusing a bad
//! matrix, `POST /api/v1/matrix/reload` and SIGHUP swapping a good one in and keeping the
//! running one when the new one is bad, and `/metrics`.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::{repo_root, wait_until, BackgroundReader, Ffmpeg, Gateway, PublishOptions, TempDir};

fn gateway_bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_interop-gateway"));
    c.current_dir(repo_root());
    c
}

#[test]
fn check_accepts_the_shipped_matrix_and_prints_file_line_col_for_a_bad_one() {
    let ok = gateway_bin().args(["check", "matrix.yaml"]).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));

    let bad = gateway_bin().args(["check", "fixtures/matrices/unknown_codec.yaml"]).output().unwrap();
    assert!(!bad.status.success());
    let text = String::from_utf8_lossy(&bad.stderr);
    let line = text.lines().find(|l| l.contains("mpeg2")).unwrap_or_else(|| panic!("no line names mpeg2:\n{text}"));
    // FILE:LINE:COL: message, pointing at `mpeg2` in `h5: { video: [mpeg2], ...`.
    assert!(line.starts_with("fixtures/matrices/unknown_codec.yaml:5:"), "{line}");
    let col: u32 = line.split(':').nth(2).unwrap().parse().unwrap();
    assert!(col > 10, "column points into the line: {line}");

    let several = gateway_bin().args(["check", "fixtures/matrices/several_problems.yaml"]).output().unwrap();
    assert!(!several.status.success());
    let lines: Vec<_> = String::from_utf8_lossy(&several.stderr).lines().map(str::to_string).collect();
    assert!(lines.len() >= 2, "one line per problem: {lines:?}");
    assert!(lines.iter().all(|l| l.split(':').count() >= 4), "{lines:?}");
}

#[test]
fn plan_prints_copied_and_converted_tracks_with_the_pipeline() {
    let out = gateway_bin().args(["plan", "--from", "webrtc", "--to", "rtmp"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(text.contains("video") && text.contains("copy"), "{text}");
    assert!(text.contains("opus") && text.contains("aac"), "{text}");
    assert!(text.contains("opusdec") && text.contains("igaacenc"), "the pipeline description: {text}");

    let copy = gateway_bin().args(["plan", "--from", "rtmp", "--to", "cdn"]).output().unwrap();
    let text = String::from_utf8_lossy(&copy.stdout).to_lowercase();
    assert!(copy.status.success() && !text.contains("igaacenc") && !text.contains("x264enc"), "{text}");

    let bad = gateway_bin().args(["plan", "--from", "webrtc", "--to", "carrier-pigeon"]).output().unwrap();
    assert!(!bad.status.success());
}

#[test]
fn serve_refuses_to_start_on_a_bad_matrix() {
    let out = gateway_bin()
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--rtmp",
            "127.0.0.1:0",
            "--matrix",
            "fixtures/matrices/missing_pair.yaml",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("fixtures/matrices/missing_pair.yaml:"), "names the file and place:\n{text}");
}

fn api_json(reply: &common::Reply) -> serde_json::Value {
    reply.json.clone().unwrap_or_else(|| panic!("not JSON: {}", reply.body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_a_good_matrix_and_keeps_the_running_one_when_bad() {
    let dir = TempDir::new("reload");
    let path = dir.path().join("matrix.yaml");
    let shipped = std::fs::read_to_string(repo_root().join("matrix.yaml")).unwrap();
    std::fs::write(&path, &shipped).unwrap();
    let path_arg = path.display().to_string();
    let mut gw = Gateway::start_with(&["--matrix", &path_arg], None);
    let api = gw.api();

    // A stream keeps running through every reload.
    let _publisher = Ffmpeg::publish(&gw.rtmp_url("/live/r"), PublishOptions::default());
    api.wait_live("r", Duration::from_secs(20)).await.expect("stream r live");
    let reader = BackgroundReader::start(&gw.http_url("/live/r.flv")).await.expect("reader");

    let before = api_json(&api.get("/api/v1/matrix").await.unwrap());
    assert_eq!(before["generation"], 0);

    // A bad matrix: refused with its place; the running one stays.
    let broken = shipped.replacen(
        "rtmp:        { video: [h264], audio: [aac], bframes: true }",
        "rtmp:        { video: [h264], audio: [aac, speex], bframes: true }",
        1,
    );
    assert_ne!(broken, shipped, "the edit applies to the shipped matrix");
    std::fs::write(&path, &broken).unwrap();
    let refused = api.post_raw("/api/v1/matrix/reload", "application/json", Vec::new()).await.unwrap();
    assert_eq!(refused.status, 422, "{}", refused.body);
    let why = refused.error_message().unwrap_or_default().to_string();
    assert!(why.contains("speex") && why.contains(&format!("{path_arg}:")), "reason with file:line:col: {why}");
    let after_bad = api_json(&api.get("/api/v1/matrix").await.unwrap());
    assert_eq!(after_bad["generation"], 0);
    assert_eq!(after_bad["matrix"], before["matrix"], "running matrix kept");
    assert_eq!(after_bad["last_reload"]["ok"], false);

    // A good change through the API: rtmp → webrtc audio rule set to auto.
    let changed = shipped.replacen(
        "webrtc:      { video: copy, audio: aac->opus }",
        "webrtc:      { video: copy, audio: auto }",
        1,
    );
    if changed == shipped {
        panic!("the test's edit no longer matches matrix.yaml; update the test");
    }
    std::fs::write(&path, &changed).unwrap();
    let ok = api.post_raw("/api/v1/matrix/reload", "application/json", Vec::new()).await.unwrap();
    assert_eq!(ok.status, 200, "{}", ok.body);
    let now = api_json(&api.get("/api/v1/matrix").await.unwrap());
    assert_eq!(now["generation"], 1);
    assert_ne!(now["matrix"], before["matrix"]);

    // SIGHUP does the same.
    std::fs::write(&path, &shipped).unwrap();
    common::send_sighup(gw.pid());
    wait_until(Duration::from_secs(10), "SIGHUP reload", || async {
        let reply = api.get("/api/v1/matrix").await.map_err(|e| e.to_string())?;
        let m = api_json(&reply);
        if m["generation"] == 2 {
            Ok(m)
        } else {
            Err(format!("generation {}", m["generation"]))
        }
    })
    .await
    .expect("SIGHUP reloaded the matrix");

    reader.expect_flowing(30, Duration::from_secs(10)).await.expect("the running stream was not disturbed");
    assert!(gw.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_streams_consumers_and_bytes() {
    let gw = Gateway::start();
    let api = gw.api();
    let _publisher = Ffmpeg::publish(&gw.rtmp_url("/live/m"), PublishOptions::default());
    api.wait_live("m", Duration::from_secs(20)).await.expect("stream m live");
    let reader = BackgroundReader::start(&gw.http_url("/live/m.flv")).await.expect("reader");
    reader.expect_flowing(10, Duration::from_secs(10)).await.expect("reader gets data");
    let text = api.get("/metrics").await.unwrap().body;
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    };
    assert_eq!(value("interop_streams"), 1.0);
    assert_eq!(value("interop_consumers{protocol=\"rtmp\"}"), 1.0);
    assert_eq!(value("interop_publishers{protocol=\"rtmp\"}"), 1.0);
    assert!(value("interop_bytes_in_total{protocol=\"rtmp\"}") > 10_000.0);
    assert!(value("interop_bytes_out_total{protocol=\"rtmp\"}") > 10_000.0);
    assert_eq!(value("interop_conversions_total_running"), 0.0);
    assert!(text.contains("# TYPE interop_bytes_in_total counter"));
    // The watchdog's probes wake every 100 ms; on a box this quiet neither is seconds late.
    for probe in ["runtime", "thread"] {
        let delay = value(&format!("interop_wake_delay_max_seconds{{probe=\"{probe}\"}}"));
        assert!((0.0..2.0).contains(&delay), "{probe} probe woke {delay} s late");
        value(&format!("interop_wake_pauses_total{{probe=\"{probe}\"}}"));
    }
}
