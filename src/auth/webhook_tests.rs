//! The webhook against a real HTTP server on 127.0.0.1 (axum), answering as a platform would.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Json;

use super::webhook::{Event, Events, Webhook};
use super::{Action, AuthSettings, DenyReason, Entry, Request};
use crate::auth::request::parse_query;

#[derive(Clone, Default)]
struct Seen(Arc<std::sync::Mutex<Vec<serde_json::Value>>>, Arc<AtomicUsize>);

/// Allows stream "good" when `token=t` is in the query, refuses others, hangs on "slow".
async fn admit(State(seen): State<Seen>, Json(q): Json<serde_json::Value>) -> StatusCode {
    seen.0.lock().unwrap().push(q.clone());
    match q["stream"].as_str() {
        Some("slow") => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            StatusCode::OK
        }
        Some("good") if q["query"]["token"] == "t" => StatusCode::NO_CONTENT,
        _ => StatusCode::FORBIDDEN,
    }
}

async fn flaky(State(seen): State<Seen>, Json(q): Json<serde_json::Value>) -> StatusCode {
    seen.0.lock().unwrap().push(q);
    // Refuses the first try of every notice, so delivery needs a retry.
    if seen.1.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

async fn server(seen: Seen) -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().route("/admit", post(admit)).route("/events", post(flaky)).with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), task)
}

fn settings(url: &str, cache: f64) -> AuthSettings {
    AuthSettings {
        webhook: Some(format!("{url}/admit")),
        webhook_timeout_ms: 300,
        webhook_cache_seconds: cache,
        ..AuthSettings::default()
    }
}

fn request<'a>(stream: &'a str, query: &'a [(String, String)]) -> Request<'a> {
    Request {
        ip: "127.0.0.1".parse().unwrap(),
        ..Request::for_test(Action::Publish, Entry::Rtmp, stream, "/live/x", query)
    }
}

#[tokio::test]
async fn a_2xx_allows_anything_else_or_silence_refuses() {
    let seen = Seen::default();
    let (url, task) = server(seen.clone()).await;
    let hook = Webhook::new(&settings(&url, 0.0)).unwrap();
    let token = parse_query("token=t");
    assert_eq!(hook.ask(&request("good", &token)).await, Ok(()));
    let wrong = parse_query("token=x");
    assert_eq!(hook.ask(&request("good", &wrong)).await.unwrap_err().reason, DenyReason::Webhook(403));
    let started = std::time::Instant::now();
    assert_eq!(hook.ask(&request("slow", &token)).await.unwrap_err().reason, DenyReason::Webhook(0));
    assert!(started.elapsed() < Duration::from_secs(2), "the timeout bounds the wait");
    let first = seen.0.lock().unwrap()[0].clone();
    assert_eq!(first["action"], "publish");
    assert_eq!(first["protocol"], "rtmp");
    assert_eq!(first["ip"], "127.0.0.1");
    assert_eq!(first["query"]["token"], "t");
    task.abort();
    let _ = task.await;
    // Nobody listening any more: refused, fail closed.
    assert_eq!(hook.ask(&request("good", &token)).await.unwrap_err().reason, DenyReason::Webhook(0));
}

#[tokio::test]
async fn allowing_answers_are_cached_refusals_are_not() {
    let seen = Seen::default();
    let (url, task) = server(seen.clone()).await;
    let hook = Webhook::new(&settings(&url, 30.0)).unwrap();
    let token = parse_query("token=t");
    for _ in 0..5 {
        assert_eq!(hook.ask(&request("good", &token)).await, Ok(()));
    }
    let wrong = parse_query("token=x");
    for _ in 0..3 {
        assert!(hook.ask(&request("good", &wrong)).await.is_err());
    }
    assert_eq!(hook.calls.load(Ordering::Relaxed), 4, "one call for the 5 allowed, 3 for the refused");
    assert_eq!(hook.cache_hits.load(Ordering::Relaxed), 4);
    assert_eq!(seen.0.lock().unwrap().len(), 4);
    task.abort();
}

#[tokio::test]
async fn event_notices_are_retried_until_delivered() {
    let seen = Seen::default();
    let (url, task) = server(seen.clone()).await;
    let events = Events::start(&[format!("{url}/events")]);
    events.send(Event::Publish, "rtmp", "room1", Some("127.0.0.1".parse().unwrap()));
    events.send(Event::Unpublish, "rtmp", "room1", None);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while seen.0.lock().unwrap().len() < 4 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = seen.0.lock().unwrap().clone();
    assert_eq!(got.len(), 4, "each notice refused once, then delivered: {got:?}");
    assert_eq!((got[1]["event"].as_str(), got[3]["event"].as_str()), (Some("publish"), Some("unpublish")));
    assert_eq!(got[0]["stream"], "room1");
    task.abort();
}
