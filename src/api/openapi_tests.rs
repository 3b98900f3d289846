//! The document against the router: every route the router serves is described, and every
//! described operation is served. The router's side comes from the registry the routes were
//! added through ([`crate::http::routes`]), not from the document.

use std::collections::BTreeSet;

use super::*;
use crate::config::Config;
use crate::server::{routes, Gateway};

fn show(ops: &BTreeSet<&(String, String)>) -> String {
    ops.iter().map(|(m, p)| format!("\n  {m} {p}")).collect()
}

#[tokio::test]
async fn every_route_is_described_and_every_description_is_a_route() {
    // The repository's matrix and pipelines (tests run from the crate's root).
    let gw = Gateway::new(&Config::default()).expect("a gateway of the default configuration");
    let served = routes(&gw).table().operations();
    let documented = described(&mut build());
    gw.shutdown.cancel();
    let undocumented: BTreeSet<_> = served.difference(&documented).collect();
    let unserved: BTreeSet<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "routes without a description (add #[utoipa::path] and list the handler in its module's Doc):{}\n\
         described but not routed:{}",
        show(&undocumented),
        show(&unserved)
    );
    // The contract's names are among them.
    for op in [
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("POST", "/whip/{stream}"),
        ("POST", "/whep/{stream}"),
        ("GET", "/live/{file}"),
        ("GET", "/hls/{stream}/{file}"),
        ("POST", "/api/v1/pulls"),
    ] {
        assert!(served.contains(&(op.0.to_string(), op.1.to_string())), "{op:?} is not routed");
    }
}

/// The error bodies: `{"error"}`, and the invalid matrix's, which adds its problems to it.
const ERROR_BODIES: [&str; 2] = ["#/components/schemas/ErrorBody", "#/components/schemas/InvalidMatrix"];

#[test]
fn every_error_body_carries_an_error_string() {
    let doc: serde_json::Value = serde_json::from_str(json()).expect("the document is JSON");
    for body in ERROR_BODIES {
        let name = body.rsplit('/').next().expect("a name");
        let schema = &doc["components"]["schemas"][name];
        assert_eq!(schema["properties"]["error"]["type"], "string", "{name}");
        let required = schema["required"].as_array().expect("required fields");
        assert!(required.iter().any(|r| r == "error"), "{name}: `error` is required");
    }
}

#[test]
fn access_control_and_body_bounds_are_on_the_operations_they_guard() {
    let doc: serde_json::Value = serde_json::from_str(json()).expect("the document is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("a path item") {
            let codes = op["responses"].as_object().expect("responses");
            let errors: Vec<&String> = codes.keys().filter(|c| c.as_str() >= "400").collect();
            for code in &errors {
                let content = &codes[code.as_str()]["content"];
                let schema = content["application/json"]["schema"]["$ref"].as_str().unwrap_or("");
                assert!(
                    ERROR_BODIES.contains(&schema),
                    "{method} {path}: {code} is not an {{\"error\"}} body ({schema})"
                );
            }
            let guarded = crate::api::access::is_api(path);
            assert_eq!(op.get("security").is_some(), guarded, "{method} {path}: security");
            if guarded {
                let role = if method == "get" { "read" } else { "admin" };
                assert_eq!(op["security"][0][BEARER][0], role, "{method} {path}");
                for code in ["401", "403"] {
                    assert!(codes.contains_key(code), "{method} {path} lacks {code}");
                }
                assert_eq!(codes.contains_key("415"), method != "get", "{method} {path}: 415");
            }
            if op.get("requestBody").is_some() && !(method == "post" && path == "/h5/{stream}") {
                assert!(codes.contains_key("408") && codes.contains_key("413"), "{method} {path}: body bounds");
            }
        }
    }
    // WHIP/WHEP: 201 with Location and an SDP answer.
    for path in ["/whip/{stream}", "/whep/{stream}"] {
        let created = &paths[path]["post"]["responses"]["201"];
        assert!(created["headers"]["Location"].is_object(), "{path}: Location");
        assert!(created["content"]["application/sdp"].is_object(), "{path}: SDP answer");
        assert!(paths[path]["post"]["requestBody"]["content"]["application/sdp"].is_object(), "{path}: SDP offer");
    }
}

#[test]
fn operation_ids_are_unique_and_readable() {
    assert_eq!(operation_id("GET", "/api/v1/streams/{stream}"), "get_api_v1_streams_stream");
    assert_eq!(operation_id("GET", "/h5-assets/jsmpeg.min.js"), "get_h5_assets_jsmpeg_min_js");
    assert_eq!(operation_id("GET", "/console/"), "get_console_slash");
    let doc: serde_json::Value = serde_json::from_str(json()).expect("the document is JSON");
    let mut ids = BTreeSet::new();
    for item in doc["paths"].as_object().expect("paths").values() {
        for op in item.as_object().expect("a path item").values() {
            assert!(ids.insert(op["operationId"].as_str().expect("an id").to_string()), "{}", op["operationId"]);
        }
    }
}
