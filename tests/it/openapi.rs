//! The OpenAPI document (`GET /api/v1/openapi.json`, `interop-gateway openapi`): valid
//! OpenAPI 3.1 by a real validator (`openapi-spec-validator`, installed by
//! `scripts/install-deps.sh`), served as the CLI prints it, and every operation it describes
//! reaches a handler of a running gateway rather than the router's own "no route" answers.

use std::path::PathBuf;
use std::process::Command;

use reqwest::Method;
use serde_json::Value;

use crate::common::{repo_root, Api, Gateway, Reply, TempDir};

/// The router's answer to a path without a route (`server::NO_SUCH_ENDPOINT`).
const NO_SUCH_ENDPOINT: &str = "no such endpoint";

/// The validator `scripts/install-deps.sh` installs (or `OPENAPI_SPEC_VALIDATOR`).
fn validator() -> PathBuf {
    let path = std::env::var_os("OPENAPI_SPEC_VALIDATOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools/openapi-venv/bin/openapi-spec-validator"));
    assert!(
        path.is_file(),
        "the OpenAPI validator is missing at {}: run scripts/install-deps.sh (it pip-installs \
         openapi-spec-validator into .tools/openapi-venv)",
        path.display()
    );
    path
}

/// What `interop-gateway openapi` prints.
fn printed_document() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_interop-gateway")).arg("openapi").output().expect("run openapi");
    assert!(out.status.success(), "interop-gateway openapi: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Runs the validator on `text`: its verdict and what it said.
fn validate(text: &str) -> (bool, String) {
    let dir = TempDir::new("openapi");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, text).expect("write the document");
    let out = Command::new(validator()).args(["--schema", "3.1"]).arg(&file).output().expect("run the validator");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let text = printed_document();
    let (valid, said) = validate(&text);
    assert!(valid, "the OpenAPI validator refuses the document:\n{said}");
    // The validator is real: it refuses a document with a dangling reference.
    let mut broken: Value = serde_json::from_str(&text).expect("JSON");
    broken["components"]["schemas"].as_object_mut().expect("schemas").remove("ErrorBody");
    let (valid, said) = validate(&broken.to_string());
    assert!(!valid && said.contains("ErrorBody"), "a broken document passed: {said}");
}

/// A value for a path parameter: the handlers answer their own 4xx/404 to it.
fn fill(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').expect("closing brace") + start;
        out.push_str(&rest[..start]);
        out.push_str("openapi-probe");
        rest = &rest[end + 1..];
    }
    out + rest
}

/// A body of the operation's first documented type (one the handler refuses, or takes
/// harmlessly): `{}` for JSON, an SDP without media for SDP.
fn body_for(op: &Value) -> Option<(&str, Vec<u8>)> {
    let content = op.get("requestBody")?.get("content")?.as_object()?;
    let kind = content.keys().next()?;
    let body = match kind.as_str() {
        "application/json" => b"{}".to_vec(),
        "application/sdp" => b"v=0\r\n".to_vec(),
        _ => Vec::new(),
    };
    Some((kind.as_str(), body))
}

/// Sends one request; the body is read unless the answer is a stream (events, live media),
/// of which only the status matters here.
async fn probe(api: &Api, method: Method, path: &str, body: Option<(&str, Vec<u8>)>) -> Reply {
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().expect("client");
    let mut request = client.request(method.clone(), format!("{}{path}", api.base()));
    if let Some((content_type, bytes)) = body {
        request = request.header(reqwest::header::CONTENT_TYPE, content_type).body(bytes);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status().as_u16();
    let kind = response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let streams = kind.starts_with("text/event-stream") || kind.starts_with("video/x-flv");
    let body = if streams { String::new() } else { response.text().await.unwrap_or_default() };
    let json = serde_json::from_str(&body).ok();
    Reply { status, body, json }
}

/// Whether `reply` is the router's own (no route for the path, or not for the method).
fn is_router_fallback(reply: &Reply) -> bool {
    reply.status == 405 || (reply.status == 404 && reply.error_message() == Some(NO_SUCH_ENDPOINT))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_described_operation_reaches_a_handler() {
    // A copy of the matrix: the probes include PUT and rollback of the matrix file.
    let dir = TempDir::new("openapi-matrix");
    let matrix = dir.path().join("matrix.yaml");
    std::fs::copy(repo_root().join("matrix.yaml"), &matrix).expect("copy the matrix");
    let mut gw = Gateway::start_with(&["--matrix", matrix.to_str().expect("a UTF-8 path")], None);
    let api: Api = gw.api();
    let served = api.get("/api/v1/openapi.json").await.expect("GET openapi.json");
    assert_eq!(served.status, 200, "{}", served.body);
    let doc = served.json.clone().expect("the document is JSON");
    let printed: Value = serde_json::from_str(&printed_document()).expect("JSON");
    assert_eq!(doc, printed, "the served document differs from `interop-gateway openapi`");

    // The discriminator works: what has no route is the fallback, and a handler's 404 is not.
    let nowhere = api.get("/api/v1/openapi-probe-nowhere").await.expect("GET");
    assert!(is_router_fallback(&nowhere), "{} {}", nowhere.status, nowhere.body);
    let wrong_method = api.request(Method::PATCH, "/healthz", None).await.expect("PATCH");
    assert!(is_router_fallback(&wrong_method), "{} {}", wrong_method.status, wrong_method.body);
    let handler_404 = api.get("/api/v1/streams/openapi-probe").await.expect("GET");
    assert_eq!(handler_404.status, 404);
    assert!(!is_router_fallback(&handler_404), "{}", handler_404.body);

    let mut tried = 0;
    let mut fallbacks = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            let method: Method = method.to_ascii_uppercase().parse().expect("a method");
            let target = fill(path);
            let reply = probe(&api, method.clone(), &target, body_for(op)).await;
            tried += 1;
            if is_router_fallback(&reply) {
                fallbacks.push(format!("{method} {target} (documented {path}): {} {}", reply.status, reply.body));
            }
            // Whatever the handler answers is documented (the router's own answers aside).
            let code = reply.status.to_string();
            assert!(
                op["responses"].get(&code).is_some(),
                "{method} {target}: {} is not documented for {path}: {}",
                reply.status,
                reply.body
            );
        }
    }
    assert!(fallbacks.is_empty(), "described but not routed:\n{}", fallbacks.join("\n"));
    assert!(tried >= 50, "only {tried} operations described");
    let exit = gw.terminate(std::time::Duration::from_secs(10));
    gw.check_clean(exit);
}
