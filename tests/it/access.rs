//! Access control with real clients (issue 11): each method allowing and refusing on every
//! way in. ffmpeg publishes and ffprobe plays over RTMP with signed query strings (from the
//! `sign` command, and an expired one); nginx-rtmp as an edge pulls the gateway with a signed
//! URL; HTTP-FLV and the H5 WebSocket take query tokens; a small local server answers the
//! admission webhook and receives the event hooks; the control API refuses calls without a
//! token, read tokens that change things, cross-site requests, and sits on its own listener;
//! relays refuse internal addresses. Chromium (WHIP with a bearer token, JSMpeg with a query
//! token) runs last, re-run inside a loopback network namespace like every browser test.

use crate::common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use common::chromium::{in_loopback_netns, Chromium, PageServer};
use common::{ffprobe, wait_until, Ffmpeg, Gateway, Nginx, PublishOptions, TempDir};
use interop_gateway::auth::secret::Secret;
use interop_gateway::auth::{signature, Action};
use serde_json::{json, Value};

const SECRET: &str = "access-test-secret-0123456789";
const LIVE: Duration = Duration::from_secs(15);

fn signed_config() -> String {
    format!("auth:\n  secret: \"{SECRET}\"\n  publish: [signed]\n  play: [signed]\n")
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The query string signing `action` on `stream` until `expires`.
fn sign(action: Action, stream: &str, expires: u64) -> String {
    signature::query(&Secret::new(SECRET), action, stream, expires)
}

/// What `interop-gateway sign` prints on its last line.
fn sign_cli(config: &str, action: &str, stream: &str, ttl: u64) -> String {
    let dir = TempDir::new("sign");
    let path = dir.path().join("gw.yaml");
    std::fs::write(&path, config).expect("write config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_interop-gateway"))
        .args(["sign", "--config"])
        .arg(&path)
        .args(["--action", action, "--stream", stream, "--ttl", &ttl.to_string()])
        .output()
        .expect("run sign");
    assert!(out.status.success(), "sign: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines().last().unwrap_or_default().trim().to_string()
}

fn publisher(url: &str) -> Ffmpeg {
    Ffmpeg::publish(url, PublishOptions { duration: Some(Duration::from_secs(60)), ..PublishOptions::default() })
}

/// A publisher the gateway refuses exits by itself, failing, and leaves no stream.
async fn expect_refused_publish(api: &common::Api, url: &str, key: &str) {
    let mut ffmpeg = publisher(url);
    let status = ffmpeg.wait_exit(Duration::from_secs(15)).expect("a refused publisher ends");
    assert!(!status.success(), "ffmpeg succeeded publishing to {url}");
    assert!(api.stream(key).await.unwrap().is_none(), "a refused publish left stream {key}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_publish_and_play_need_a_valid_signature() {
    let config = signed_config();
    let gw = Gateway::start_with(&[], Some(&config));
    let url = |query: &str| gw.rtmp_url(&format!("/live/class1?{query}"));

    expect_refused_publish(&gw.api(), &gw.rtmp_url("/live/class1"), "class1").await;
    expect_refused_publish(&gw.api(), &url(&sign(Action::Publish, "class1", now() - 60)), "class1").await;
    expect_refused_publish(&gw.api(), &url(&sign(Action::Publish, "other", now() + 600)), "class1").await;
    expect_refused_publish(&gw.api(), &url(&sign(Action::Play, "class1", now() + 600)), "class1").await;
    let log = gw.stderr_tail();
    assert!(log.contains("NetStream.Publish.Unauthorized") || log.contains("refused"), "{log}");

    let query = sign_cli(&config, "publish", "class1", 600);
    assert!(query.starts_with("expires=") && query.contains("&sign="), "{query}");
    let _teacher = publisher(&url(&query));
    gw.api().wait_live("class1", LIVE).await.expect("a signed publish goes live");

    let probe = ffprobe(&url(&sign(Action::Play, "class1", now() + 600)), Duration::from_secs(20)).await;
    let probe = probe.expect("a signed play reads the stream");
    assert!(probe.video().is_some() && probe.audio().is_some(), "{probe:?}");
    for bad in [String::new(), sign(Action::Play, "class1", now() - 1), query.clone()] {
        let refused = ffprobe(&url(&bad), Duration::from_secs(20)).await;
        assert!(refused.is_err(), "play with `{bad}` was allowed");
    }
    // Signatures are credentials: never in the log.
    let sig = query.split("sign=").nth(1).unwrap_or("none");
    assert!(!gw.stderr_tail().contains(sig), "the signature reached the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nginx_edge_pulls_the_gateway_with_a_signed_url() {
    let gw = Gateway::start_with(&[], Some(&signed_config()));
    let _teacher = publisher(&gw.rtmp_url(&format!("/live/class1?{}", sign(Action::Publish, "class1", now() + 600))));
    gw.api().wait_live("class1", LIVE).await.expect("live");
    let play = sign(Action::Play, "class1", now() + 600);
    let edge = |query: &str| {
        Nginx::start_with(&format!(
            "application edge {{ live on; pull rtmp://{} app=live name=class1 \"playPath=class1?{query}\"; }}",
            gw.rtmp_addr()
        ))
    };
    let good = edge(&play);
    let probe = ffprobe(&good.rtmp_url("/edge/class1"), Duration::from_secs(25)).await;
    let probe = probe.with_context(|| good.log_tail()).expect("the edge plays what it pulled");
    assert!(probe.video().is_some() && probe.audio().is_some(), "{probe:?}");

    let bad = edge("expires=1&sign=00");
    assert!(
        ffprobe(&bad.rtmp_url("/edge/class1"), Duration::from_secs(15)).await.is_err(),
        "an unsigned pull was served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_flv_and_the_h5_websocket_take_query_tokens() {
    let gw = Gateway::start_with(&[], Some(&signed_config()));
    let _teacher = publisher(&gw.rtmp_url(&format!("/live/class1?{}", sign(Action::Publish, "class1", now() + 600))));
    gw.api().wait_live("class1", LIVE).await.expect("live");
    let play = sign(Action::Play, "class1", now() + 600);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();

    let refused = client.get(gw.http_url("/live/class1.flv")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");
    let expired = client
        .get(gw.http_url(&format!("/live/class1.flv?{}", sign(Action::Play, "class1", now() - 5))))
        .send()
        .await
        .unwrap();
    assert!(matches!(expired.status().as_u16(), 401 | 403), "{}", expired.status());
    let mut allowed = client.get(gw.http_url(&format!("/live/class1.flv?{play}"))).send().await.unwrap();
    assert_eq!(allowed.status(), 200);
    let first = allowed.chunk().await.unwrap().unwrap_or_default();
    assert!(first.starts_with(b"FLV"), "an FLV file starts");
    drop(allowed);

    let ws = |query: &str| gw.http_url(&format!("/h5/class1{query}")).replacen("http://", "ws://", 1);
    match tokio_tungstenite::connect_async(ws("")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("an H5 viewer without a token was not refused before the upgrade: {:?}", other.map(|_| ())),
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(ws(&format!("?{play}"))).await.expect("a signed H5 viewer");
    use futures_util::StreamExt;
    let message = tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("media within 10 s");
    assert!(matches!(message, Some(Ok(tokio_tungstenite::tungstenite::Message::Binary(_)))), "{message:?}");
    assert_eq!(gw.api().stream("class1").await.unwrap().unwrap().consumers.get("h5"), Some(&1));
}

/// What the local webhook server saw.
#[derive(Default)]
struct Seen {
    questions: Vec<Value>,
    events: Vec<Value>,
}

/// A webhook server: `/admit` allows stream `good` (204), makes `slow` wait 3 s, refuses the
/// rest (403); `/events` keeps every notice.
async fn hook_server(seen: Arc<Mutex<Seen>>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use axum::routing::post;
    let admit = {
        let seen = seen.clone();
        move |axum::Json(q): axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                let stream = q["stream"].as_str().unwrap_or_default().to_string();
                seen.lock().unwrap().questions.push(q);
                match stream.as_str() {
                    "good" => axum::http::StatusCode::NO_CONTENT,
                    "slow" => {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                        axum::http::StatusCode::NO_CONTENT
                    }
                    _ => axum::http::StatusCode::FORBIDDEN,
                }
            }
        }
    };
    let events = move |axum::Json(e): axum::Json<Value>| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().events.push(e);
            axum::http::StatusCode::OK
        }
    };
    let app = axum::Router::new().route("/admit", post(admit)).route("/events", post(events));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (
        addr,
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admission_webhook_decides_and_event_hooks_hear_every_session() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (addr, server) = hook_server(seen.clone()).await;
    let config = format!(
        "auth:\n  publish: [webhook]\n  play: [open]\n  webhook: \"http://{addr}/admit\"\n  webhook_timeout_ms: 1000\n  event_hooks: [\"http://{addr}/events\"]\n"
    );
    let gw = Gateway::start_with(&[], Some(&config));
    expect_refused_publish(&gw.api(), &gw.rtmp_url("/live/bad?token=t"), "bad").await;
    // `slow` is answered after the timeout: fail closed.
    expect_refused_publish(&gw.api(), &gw.rtmp_url("/live/slow"), "slow").await;
    let teacher = publisher(&gw.rtmp_url("/live/good?token=t"));
    gw.api().wait_live("good", LIVE).await.expect("the webhook allowed `good`");
    {
        let seen = seen.lock().unwrap();
        let asked = seen.questions.iter().find(|q| q["stream"] == "good").expect("asked about good");
        assert_eq!((asked["action"].as_str(), asked["protocol"].as_str()), (Some("publish"), Some("rtmp")), "{asked}");
        assert_eq!(asked["ip"], "127.0.0.1", "{asked}");
        assert_eq!(asked["query"]["token"], "t", "the query reaches the webhook: {asked}");
    }
    let probe = ffprobe(&gw.rtmp_url("/live/good"), Duration::from_secs(20)).await.expect("play is open");
    assert!(probe.video().is_some());
    drop(teacher);
    wait_until(Duration::from_secs(10), "publish, play, stop and unpublish notices", || {
        let seen = seen.clone();
        async move {
            let events: Vec<String> = seen
                .lock()
                .unwrap()
                .events
                .iter()
                .filter(|e| e["stream"] == "good")
                .map(|e| e["event"].as_str().unwrap_or_default().to_string())
                .collect();
            let all = ["publish", "play", "stop", "unpublish"].iter().all(|want| events.iter().any(|e| e == want));
            if all {
                Ok(())
            } else {
                Err(format!("{events:?}"))
            }
        }
    })
    .await
    .unwrap();
    let publish = seen.lock().unwrap().events.iter().find(|e| e["event"] == "publish").cloned().unwrap();
    assert_eq!((publish["protocol"].as_str(), publish["ip"].as_str()), (Some("rtmp"), Some("127.0.0.1")), "{publish}");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_needs_a_token_and_lives_on_its_own_listener() {
    let config = "auth:\n  api_tokens:\n    - { token: \"admin-token\", role: admin }\n    - { token: \"read-token\", role: read }\n";
    let gw = Gateway::start_with(&["--api", "127.0.0.1:0"], Some(config));
    let media = gw.api();
    assert_eq!(media.get("/api/v1/streams").await.unwrap().status, 404, "no API on the media port");
    assert_eq!(media.healthz().await.unwrap(), 200);

    let api = gw.api_listener();
    let admin = api.with_token("admin-token");
    let read = api.with_token("read-token");
    assert_eq!(api.get("/api/v1/streams").await.unwrap().status, 401, "no token");
    assert_eq!(api.with_token("wrong").get("/api/v1/streams").await.unwrap().status, 401, "a wrong token");
    assert_eq!(api.get("/metrics").await.unwrap().status, 401, "/metrics too");
    assert_eq!(read.get("/api/v1/streams").await.unwrap().status, 200);
    assert_eq!(read.get("/metrics").await.unwrap().status, 200);
    let push = json!({ "url": "rtmp://127.0.0.1:1935/live/x" });
    assert_eq!(read.post_json("/api/v1/streams/k/pushes", &push).await.unwrap().status, 403, "read may not change");
    assert_eq!(read.request(reqwest::Method::DELETE, "/api/v1/streams/k", None).await.unwrap().status, 403);
    let made = admin.post_json("/api/v1/streams/k/pushes", &push).await.unwrap();
    assert_eq!(made.status, 201, "{}", made.body);
    // What any web page can send: a text/plain body, or a request from another origin.
    let plain = admin.post_raw("/api/v1/streams/k/pushes", "text/plain", push.to_string().into_bytes()).await.unwrap();
    assert_eq!(plain.status, 415, "{}", plain.body);
    let client = reqwest::Client::new();
    let cross = client
        .post(format!("http://{}/api/v1/matrix/reload", gw_api_addr(&gw)))
        .bearer_auth("admin-token")
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    assert!(cross.headers().get("access-control-allow-origin").is_none(), "no permissive CORS on the API");
    // The token never reaches the log.
    assert!(!gw.stderr_tail().contains("admin-token"));
}

fn gw_api_addr(gw: &Gateway) -> String {
    gw.api_listener().base().trim_start_matches("http://").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_may_not_dial_internal_addresses_or_the_gateway_itself() {
    let gw = Gateway::start_with(&[], Some("relay: { allowed_hosts: [] }\n"));
    let api = gw.api();
    let own = format!("rtmp://{}/live/loop", gw.rtmp_addr());
    for url in
        [own.as_str(), "rtmp://169.254.169.254/live/x", "rtmp://127.0.0.1:1936/live/x", "rtmp://localhost/live/x"]
    {
        let push = api.post_json("/api/v1/streams/k/pushes", &json!({ "url": url })).await.unwrap();
        assert_eq!(push.status, 403, "push to {url}: {}", push.body);
        let pull = api.post_json("/api/v1/pulls", &json!({ "stream": "p", "url": url })).await.unwrap();
        assert_eq!(pull.status, 403, "pull from {url}: {}", pull.body);
    }
    let output =
        api.post_json("/api/v1/streams/k/udp-outputs", &json!({ "host": "127.0.0.1", "port": 5004 })).await.unwrap();
    assert_eq!(output.status, 403, "{}", output.body);
    assert!(api.pushes("k").await.unwrap().is_empty(), "refused pushes leave nothing");

    // An allow-list decides alone.
    let listed = Gateway::start_with(&["--allow-relay-host", "192.0.2.0/24"], None);
    let push = listed
        .api()
        .post_json("/api/v1/streams/k/pushes", &json!({ "url": "rtmp://127.0.0.1:1935/live/x" }))
        .await
        .unwrap();
    assert_eq!(push.status, 403, "{}", push.body);
    assert!(push.body.contains("relay.allowed_hosts"), "{}", push.body);
    let allowed = listed
        .api()
        .post_json("/api/v1/streams/k/pushes", &json!({ "url": "rtmp://192.0.2.7:1935/live/x" }))
        .await
        .unwrap();
    assert_eq!(allowed.status, 201, "{}", allowed.body);
}

/// Chromium publishes by WHIP with `Authorization: Bearer` (a static key), and is refused
/// without it; Chromium's JSMpeg plays the H5 player page with a signed query.
#[test]
fn chromium_whip_with_a_bearer_token_and_jsmpeg_with_a_query_token() {
    if !in_loopback_netns("chromium_whip_with_a_bearer_token_and_jsmpeg_with_a_query_token") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let body = async {
        let config = format!(
            "auth:\n  secret: \"{SECRET}\"\n  publish: [keys]\n  play: [signed]\n  keys:\n    - {{ name: teacher, key: \"teacher-token\", actions: [publish] }}\n"
        );
        let gw = Gateway::start_with(&[], Some(&config));
        let api = gw.api();
        let pages = PageServer::start().await?;
        let whip = gw.http_url("/whip/classroom");
        let _refused = Chromium::start(&pages.url("whip.html", &[("whip", &whip), ("id", "nopub")]))?;
        let error = wait_until(Duration::from_secs(40), "the refused WHIP publisher's error", || {
            let reports = pages.reports();
            async move {
                reports
                    .iter()
                    .find(|r| r.id == "nopub" && r.event.as_deref() == Some("error"))
                    .and_then(|r| r.detail.clone())
                    .ok_or_else(|| "no error yet".to_string())
            }
        })
        .await?;
        assert!(error.contains("HTTP 401"), "{error}");
        assert!(api.stream("classroom").await?.is_none());

        let _publisher =
            Chromium::start(&pages.url("whip.html", &[("whip", &whip), ("id", "pub"), ("token", "teacher-token")]))?;
        pages.wait_event("pub", "answered", Duration::from_secs(40)).await?;
        let stream = api.wait_live("classroom", Duration::from_secs(40)).await?;
        assert_eq!(stream.publisher.as_ref().map(|p| p.protocol.as_str()), Some("webrtc"));

        let player = gw.http_url(&format!("/h5/classroom/player?{}", sign(Action::Play, "classroom", now() + 600)));
        let _viewer = Chromium::start(&pages.url("h5-player.html", &[("id", "h5"), ("player", &player)]))?;
        pages
            .wait_report("h5", Duration::from_secs(60), "JSMpeg decoding 30 frames", |r| {
                r.kind == "h5" && r.raw["player"]["decodedFrames"].as_u64().is_some_and(|n| n >= 30)
            })
            .await?;
        anyhow::Ok(())
    };
    if let Err(error) = runtime.block_on(body) {
        panic!("{error:#}");
    }
}

/// The vendor conventions with real clients (ffmpeg publishes with a Tencent-style URL, an
/// HTTP-FLV viewer plays with an Alibaba-style one, both from the `sign` command), the Origin
/// allow-list for browser egress, `limits.max_publishers`, and viewers' addresses shown to the
/// admin role only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_signatures_origins_publisher_limits_and_hidden_addresses() {
    let config = "auth:\n  tencent_key: \"tx-key-0123\"\n  aliyun_key: \"ali-key-0123\"\n  publish: [tencent]\n  play: [aliyun]\n  \
                  allowed_origins: [\"school.example\"]\n  allow_empty_origin: true\n  api_tokens:\n    - { token: \"admin-token\", role: admin }\n    \
                  - { token: \"read-token\", role: read }\nlimits: { max_publishers: 1 }\n";
    let gw = Gateway::start_with(&[], Some(config));
    let admin_api = gw.api().with_token("admin-token");
    let sign_with = |args: &[&str]| {
        let dir = TempDir::new("sign");
        let path = dir.path().join("gw.yaml");
        std::fs::write(&path, config).expect("write config");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_interop-gateway"))
            .arg("sign")
            .arg("--config")
            .arg(&path)
            .args(args)
            .output()
            .expect("run sign");
        assert!(out.status.success(), "sign: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string()
    };
    let tx = sign_with(&["--action", "publish", "--stream", "class1", "--method", "tencent"]);
    assert!(tx.contains("txSecret=") && tx.contains("txTime="), "{tx}");
    expect_refused_publish(&admin_api, &gw.rtmp_url("/live/class1?txSecret=00&txTime=FFFFFFFF"), "class1").await;
    let _teacher = publisher(&gw.rtmp_url(&format!("/live/class1?{tx}")));
    gw.api().with_token("admin-token").wait_live("class1", LIVE).await.expect("a Tencent-signed publish goes live");
    // One publisher at most: a second stream is refused, even correctly signed.
    let tx2 = sign_with(&["--action", "publish", "--stream", "class2", "--method", "tencent"]);
    expect_refused_publish(&admin_api, &gw.rtmp_url(&format!("/live/class2?{tx2}")), "class2").await;

    let ali =
        sign_with(&["--action", "play", "--stream", "class1", "--method", "aliyun", "--path", "/live/class1.flv"]);
    assert!(ali.starts_with("auth_key="), "{ali}");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let get = |query: String, origin: Option<&'static str>| {
        let mut request = client.get(gw.http_url(&format!("/live/class1.flv{query}")));
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        request.send()
    };
    assert_eq!(get(String::new(), None).await.unwrap().status(), 401);
    assert!(matches!(get("?auth_key=1-0-0-00".into(), None).await.unwrap().status().as_u16(), 401 | 403));
    assert_eq!(
        get(format!("?{ali}"), Some("https://leech.example")).await.unwrap().status(),
        403,
        "another site's page"
    );
    let mut viewer = get(format!("?{ali}"), Some("https://school.example")).await.unwrap();
    assert_eq!(viewer.status(), 200);
    assert!(viewer.chunk().await.unwrap().unwrap_or_default().starts_with(b"FLV"));

    // The viewer's address: for the admin role only.
    let api = gw.api();
    let sessions = |reply: common::Reply| reply.json.map(|j| j["sessions"].clone()).unwrap_or_default();
    let admin = sessions(api.with_token("admin-token").get("/api/v1/streams/class1").await.unwrap());
    let read = sessions(api.with_token("read-token").get("/api/v1/streams/class1").await.unwrap());
    let remotes = |v: &Value| v.as_array().map(|a| a.iter().filter(|s| s["remote"].is_string()).count()).unwrap_or(0);
    assert!(remotes(&admin) >= 1, "admin sees the viewer's address: {admin}");
    assert_eq!(remotes(&read), 0, "a read token does not: {read}");
    drop(viewer);
}
