//! The player page, `GET /h5/{stream}/player`: JSMpeg playing `ws(s)://<same host>/h5/{stream}`
//! on a full-window canvas. JSMpeg itself is the npm package `@cycjimmy/jsmpeg-player`
//! (installed at setup by `npm ci`), served from `node_modules/` at [`JSMPEG_ROUTE`]; both
//! answer 503 with the reason when it is not installed.
//!
//! Query options: `audio=0` (no sound), `gl=0` (2D canvas instead of WebGL).
//! Embedding: once a second the page posts `{type: "h5-player", stream, decodedFrames,
//! width, height, nonBlank, connected}` to its parent window (when framed) and puts the
//! decoded-frame count in `document.title`.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::{parse_key, H5State};
use crate::http::ApiError;

/// Where the gateway serves the JSMpeg script.
pub const JSMPEG_ROUTE: &str = "/h5-assets/jsmpeg.min.js";
/// The environment variable that overrides where JSMpeg is read from.
pub const JSMPEG_ENV: &str = "INTEROP_JSMPEG";
/// Where `npm ci` in the repository root puts JSMpeg (relative to the working directory).
pub const JSMPEG_DEFAULT: &str = "node_modules/@cycjimmy/jsmpeg-player/dist/jsmpeg-player.umd.min.js";

/// The JSMpeg script to serve: `$INTEROP_JSMPEG`, else [`JSMPEG_DEFAULT`].
pub fn jsmpeg_path() -> PathBuf {
    std::env::var_os(JSMPEG_ENV).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(JSMPEG_DEFAULT))
}

fn not_installed(path: &std::path::Path, error: &std::io::Error) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "the H5 player needs JSMpeg, which is not installed: cannot read {} ({error}); run `npm ci` in the \
             repository root (scripts/install-deps.sh does) or set {JSMPEG_ENV} to jsmpeg-player.umd.min.js",
            path.display()
        ),
    )
}

/// `GET /h5-assets/jsmpeg.min.js`.
#[utoipa::path(get, path = "/h5-assets/jsmpeg.min.js", tag = "h5",
    summary = "JSMpeg, for the player page",
    responses(
        (status = 200, description = "The script", content_type = "text/javascript; charset=utf-8", body = String),
        (status = 503, description = "JSMpeg is not installed (`npm ci`)", body = crate::http::error::ErrorBody),
    ))]
pub async fn jsmpeg(Extension(h5): Extension<Arc<H5State>>) -> Result<Response, ApiError> {
    let body = tokio::fs::read(&h5.jsmpeg).await.map_err(|e| not_installed(&h5.jsmpeg, &e))?;
    Ok((
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        body,
    )
        .into_response())
}

/// `GET /h5/{stream}/player`.
#[utoipa::path(get, path = "/h5/{stream}/player", tag = "h5",
    summary = "A JSMpeg player page for the stream",
    params(("stream" = String, Path, description = "The stream key")),
    responses(
        (status = 200, description = "The page", content_type = "text/html; charset=utf-8", body = String),
        (status = 400, description = "Bad stream key", body = crate::http::error::ErrorBody),
        (status = 503, description = "JSMpeg is not installed (`npm ci`)", body = crate::http::error::ErrorBody),
    ))]
pub async fn page(Extension(h5): Extension<Arc<H5State>>, Path(stream): Path<String>) -> Result<Response, ApiError> {
    let key = parse_key(&stream)?;
    if let Err(e) = tokio::fs::metadata(&h5.jsmpeg).await {
        return Err(not_installed(&h5.jsmpeg, &e));
    }
    // Stream keys are letters, digits, `-`, `_` and `.`: nothing to escape in HTML or JS.
    let html = PAGE.replace("{{STREAM}}", key.as_str()).replace("{{JSMPEG}}", JSMPEG_ROUTE);
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], html)
        .into_response())
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{STREAM}} - H5 player</title>
<style>
  html, body { margin: 0; height: 100%; background: #000; }
  canvas { display: block; width: 100%; height: 100%; object-fit: contain; }
  #status { position: fixed; left: 8px; bottom: 8px; color: #ccc; font: 12px sans-serif; }
</style>
</head>
<body>
<canvas id="video"></canvas>
<div id="status">connecting...</div>
<script src="{{JSMPEG}}"></script>
<script>
"use strict";
(function () {
  var stream = "{{STREAM}}";
  var params = new URLSearchParams(location.search);
  // The page's own query (but its player options) goes on to the WebSocket: credentials of
  // a signed or keyed URL (`?expires=...&sign=...`), since a browser sends no headers there.
  var credentials = new URLSearchParams(location.search);
  credentials.delete("audio");
  credentials.delete("gl");
  var query = credentials.toString();
  var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/h5/" + encodeURIComponent(stream) + (query ? "?" + query : "");
  var canvas = document.getElementById("video");
  var status = document.getElementById("status");
  var decoded = 0;
  var connected = false;
  var player = new JSMpeg.Player(url, {
    canvas: canvas,
    autoplay: true,
    audio: params.get("audio") !== "0",
    disableGl: params.get("gl") === "0",
    preserveDrawingBuffer: true,
    reconnectInterval: 2,
    onSourceEstablished: function () { connected = true; },
    onVideoDecode: function () { decoded += 1; }
  });
  window.h5player = player;

  // Whether the picture has content: a small copy of the canvas with some contrast in it.
  var probe = document.createElement("canvas");
  probe.width = 32;
  probe.height = 18;
  function nonBlank() {
    if (!canvas.width || !canvas.height) return false;
    var ctx = probe.getContext("2d");
    ctx.drawImage(canvas, 0, 0, probe.width, probe.height);
    var px = ctx.getImageData(0, 0, probe.width, probe.height).data;
    var lo = 255, hi = 0;
    for (var i = 0; i < px.length; i += 4) {
      var y = (px[i] * 3 + px[i + 1] * 6 + px[i + 2]) / 10;
      if (y < lo) lo = y;
      if (y > hi) hi = y;
    }
    return hi - lo > 16;
  }

  window.h5stats = function () {
    return { type: "h5-player", stream: stream, decodedFrames: decoded, width: canvas.width,
             height: canvas.height, nonBlank: nonBlank(), connected: connected };
  };
  setInterval(function () {
    var s = window.h5stats();
    status.textContent = s.connected ? s.width + "x" + s.height + ", " + s.decodedFrames + " frames" : "waiting for " + stream + "...";
    document.title = stream + " - " + s.decodedFrames + " frames";
    if (window.parent !== window) window.parent.postMessage(s, "*");
  }, 1000);
})();
</script>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::h5::shared::PacketCaches;

    fn state(jsmpeg: PathBuf) -> Extension<Arc<H5State>> {
        Extension(Arc::new(H5State { caches: PacketCaches::default(), jsmpeg }))
    }

    #[tokio::test]
    async fn without_jsmpeg_the_page_and_the_script_say_why() {
        let missing = std::env::temp_dir().join("no-such-dir-ig").join("jsmpeg.min.js");
        let err = page(state(missing.clone()), Path("class1".into())).await.expect_err("not installed");
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            err.message.contains("npm ci") && err.message.contains(&missing.display().to_string()),
            "{}",
            err.message
        );
        let err = jsmpeg(state(missing)).await.expect_err("not installed");
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn the_page_plays_its_stream_from_the_same_host() {
        let file = std::env::temp_dir().join(format!("ig-jsmpeg-{}.js", std::process::id()));
        std::fs::write(&file, "var JSMpeg = {};").expect("write");
        let response = page(state(file.clone()), Path("class-1.a".into())).await.expect("page");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
        let html = String::from_utf8_lossy(&body);
        assert!(html.contains(r#"var stream = "class-1.a";"#), "{html}");
        assert!(html.contains("location.host + \"/h5/\""), "same host");
        assert!(html.contains(JSMPEG_ROUTE));
        let err = page(state(file.clone()), Path("bad key!".into())).await.expect_err("bad key");
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        let _ = std::fs::remove_file(file);
    }
}
