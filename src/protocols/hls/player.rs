//! The HLS player page, `GET /hls/{stream}/player`: hls.js (the npm package, installed at
//! setup by `npm ci`, served at [`HLSJS_ROUTE`]) playing `index.m3u8` in LL-HLS mode, or
//! Safari's own HLS. Query options: `ll=0` (plain HLS), `variant=ts` (the MPEG-TS playlist).
//! The page's other query parameters (credentials of a keyed or signed URL) go on to the
//! playlist. Once a second it puts decoded frames and latency in `document.title`.

use std::path::PathBuf;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::ApiError;
use crate::hub::StreamKey;

pub const HLSJS_ROUTE: &str = "/hls-assets/hls.min.js";
/// The environment variable that overrides where hls.js is read from.
pub const HLSJS_ENV: &str = "INTEROP_HLSJS";
pub const HLSJS_DEFAULT: &str = "node_modules/hls.js/dist/hls.min.js";

pub fn hlsjs_path() -> PathBuf {
    std::env::var_os(HLSJS_ENV).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(HLSJS_DEFAULT))
}

fn not_installed(error: &std::io::Error) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "the HLS player needs hls.js, which is not installed: cannot read {} ({error}); run `npm ci` in the \
             repository root (scripts/install-deps.sh does) or set {HLSJS_ENV} to hls.min.js",
            hlsjs_path().display()
        ),
    )
}

/// `GET /hls-assets/hls.min.js`.
#[utoipa::path(get, path = "/hls-assets/hls.min.js", tag = "hls",
    summary = "hls.js, for the player page",
    responses(
        (status = 200, description = "The script", content_type = "text/javascript; charset=utf-8", body = String),
        (status = 503, description = "hls.js is not installed (`npm ci`)", body = crate::http::error::ErrorBody),
    ))]
pub async fn hlsjs() -> Result<Response, ApiError> {
    let body = tokio::fs::read(hlsjs_path()).await.map_err(|e| not_installed(&e))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        body,
    )
        .into_response())
}

/// `GET /hls/{stream}/player`.
pub async fn page(key: &StreamKey) -> Result<Response, ApiError> {
    if let Err(e) = tokio::fs::metadata(hlsjs_path()).await {
        return Err(not_installed(&e));
    }
    // Stream keys are letters, digits, `-`, `_` and `.`: nothing to escape in HTML or JS.
    let html = PAGE.replace("{{STREAM}}", key.as_str()).replace("{{HLSJS}}", HLSJS_ROUTE);
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], html)
        .into_response())
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{STREAM}} - HLS player</title>
<style>
  html, body { margin: 0; height: 100%; background: #000; }
  video { display: block; width: 100%; height: 100%; object-fit: contain; }
</style>
</head>
<body>
<video id="video" controls autoplay muted playsinline></video>
<script src="{{HLSJS}}"></script>
<script>
"use strict";
(function () {
  var params = new URLSearchParams(location.search);
  var credentials = new URLSearchParams(location.search);
  ["ll", "variant"].forEach(function (k) { credentials.delete(k); });
  var query = credentials.toString();
  var file = params.get("variant") === "ts" ? "ts.m3u8" : "index.m3u8";
  var src = file + (query ? "?" + query : "");
  var video = document.getElementById("video");
  if (window.Hls && Hls.isSupported()) {
    var hls = new Hls({ lowLatencyMode: params.get("ll") !== "0" });
    hls.loadSource(src);
    hls.attachMedia(video);
    window.hls = hls;
  } else {
    video.src = src;
  }
  setInterval(function () {
    var q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : { totalVideoFrames: 0 };
    var latency = window.hls && window.hls.latency ? window.hls.latency.toFixed(1) + " s" : "";
    document.title = "{{STREAM}} - " + q.totalVideoFrames + " frames " + latency;
  }, 1000);
})();
</script>
</body>
</html>
"#;
