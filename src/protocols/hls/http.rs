//! HLS over HTTP:
//! - `GET /hls/{stream}/index.m3u8`: the multivariant playlist (one fMP4 LL-HLS variant);
//! - `GET /hls/{stream}/fmp4.m3u8`: its media playlist, with blocking reload
//!   (`_HLS_msn`, `_HLS_part`);
//! - `GET /hls/{stream}/ts.m3u8`: plain HLS with MPEG-TS segments, for old players;
//! - `GET /hls/{stream}/{instance}/{file}`: init segments, segments and parts;
//! - `GET /hls/{stream}/player`: a player page ([`super::player`]).
//!
//! Playlists are short-lived in caches and segments immutable; every answer allows any
//! origin (CORS). Playlist requests are admitted like other play requests
//! ([`super::sessions`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::live::{HlsOutputs, Packager, Packed, Variant};
use super::playlist::{self, Format, PlaylistOptions};
use super::sessions::{HlsSessions, SESSION_PARAM};
use crate::auth::{Action, Admission, Entry, Method};
use crate::http::error::ErrorBody;
use crate::http::routes::Routes;
use crate::http::{parse_key, ApiError};
use crate::hub::StreamKey;
use crate::media::TrackInfo;

#[derive(Clone)]
pub struct HlsCtx {
    pub outputs: HlsOutputs,
    pub admission: Admission,
    pub sessions: Arc<HlsSessions>,
}

pub fn routes(ctx: HlsCtx) -> Routes {
    Routes::new()
        .get("/hls/{stream}/{file}", playlist_request)
        .get("/hls/{stream}/{instance}/{file}", media_request)
        .get(super::player::HLSJS_ROUTE, super::player::hlsjs)
        .with_state(ctx)
}

/// The OpenAPI description of these routes (see `crate::api::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(playlist_request, media_request, super::player::hlsjs), components(schemas(HlsFile)))]
pub struct Doc;

/// The file names of `/hls/{stream}/{file}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // a schema only
pub enum HlsFile {
    #[serde(rename = "index.m3u8")]
    Index,
    #[serde(rename = "fmp4.m3u8")]
    Fmp4,
    #[serde(rename = "ts.m3u8")]
    Ts,
    #[serde(rename = "player")]
    Player,
}

const PLAYLIST: &str = "application/vnd.apple.mpegurl";
/// Segments never change under their URL (each packager has its own path).
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Playlists change every part: caches may keep one for about that long.
const SHORT: &str = "public, max-age=1";

type Params = Query<HashMap<String, String>>;

#[utoipa::path(get, path = "/hls/{stream}/{file}", tag = "hls",
    summary = "HLS playlists and the player page",
    description = "`index.m3u8`: the multivariant playlist (one fMP4 LL-HLS variant); `fmp4.m3u8`: its media \
        playlist, with blocking reload (`_HLS_msn`, `_HLS_part`); `ts.m3u8`: plain HLS of MPEG-TS segments; \
        `player`: an hls.js page. The first answer waits for a complete segment. Admitted like any play; \
        the playlist's URIs then carry a session parameter.",
    params(
        ("stream" = String, Path, description = "The stream key"),
        ("file" = HlsFile, Path, description = "Which playlist, or the player page"),
        ("_HLS_msn" = Option<u64>, Query, description = "Blocking reload: answer once this media sequence number is out"),
        ("_HLS_part" = Option<u64>, Query, description = "Blocking reload: ... and this part of it (needs `_HLS_msn`)"),
    ),
    responses(
        (status = 200, description = "The playlist (or the page)", content_type = "application/vnd.apple.mpegurl", body = String),
        (status = 400, description = "Bad stream key or blocking-reload parameters", body = ErrorBody),
        (status = 401, description = "Play needs credentials", body = ErrorBody),
        (status = 403, description = "Play refused", body = ErrorBody),
        (status = 404, description = "No such file, or the stream is not live", body = ErrorBody),
        (status = 406, description = "No plan for HLS from this stream", body = ErrorBody),
        (status = 500, description = "A conversion could not start", body = ErrorBody),
        (status = 503, description = "No segment (or the part) yet: try again; or hls.js is not installed (player)", body = ErrorBody),
    ))]
async fn playlist_request(
    State(ctx): State<HlsCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((stream, file)): Path<(String, String)>,
    Query(q): Params,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = parse_key(&stream)?;
    let variant = match file.as_str() {
        "index.m3u8" | "fmp4.m3u8" => Variant::Fmp4,
        "ts.m3u8" => Variant::Ts,
        "player" => return super::player::page(&key).await,
        _ => return Err(ApiError::not_found(format!("no such HLS resource `{file}`"))),
    };
    let session = admit(&ctx, &key, peer, &q, &uri, &headers).await?;
    let packager = ctx.outputs.get_or_start(&key, variant).await?;
    packager.touch();
    let hold = ctx.outputs.settings().hold();
    // The first answer waits for a complete segment (a new packager starts at the hub's
    // cached GOP): players without LL-HLS, ffmpeg among them, start on whole segments.
    let low_latency = variant == Variant::Fmp4;
    if !packager.wait_until(hold, |p| p.packaging.segments().any(|s| s.complete)).await {
        return Err(no_media_yet(&key));
    }
    let query = session.map(|id| format!("?{SESSION_PARAM}={id}")).unwrap_or_default();
    if file == "index.m3u8" {
        let text = packager.read(|p| multivariant(p, &query));
        return Ok(reply(PLAYLIST, "no-cache", text.into()));
    }
    let blocking = blocking_request(&q)?;
    if let Some((msn, part)) = blocking {
        let head = packager.read(|p| p.packaging.segments().next_back().map_or(0, |s| s.msn));
        if msn > head + 2 {
            return Err(ApiError::bad_request(format!("_HLS_msn={msn} is too far ahead of the live edge ({head})")));
        }
        if !packager.wait_until(hold, |p| p.packaging.has(msn, part)).await {
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the requested part did not come in time"));
        }
    }
    let settings = *ctx.outputs.settings();
    let opts = PlaylistOptions {
        format: if low_latency { Format::Fmp4 } else { Format::Ts },
        low_latency,
        target: settings.segment_seconds,
        part_target: settings.part_seconds,
        parts_for: 3,
    };
    let text = packager.read(|p| {
        let text = playlist::media_playlist(p.packaging.segments(), &opts).unwrap_or_default();
        let text = rewrite_uris(&text, &format!("{}/", packager.instance), &query);
        if p.ended {
            text + "#EXT-X-ENDLIST\n"
        } else {
            text
        }
    });
    let cache = if blocking.is_some() { "public, max-age=6" } else { SHORT };
    Ok(reply(PLAYLIST, cache, text.into()))
}

/// An init segment, a segment or a part of a running packager.
#[utoipa::path(get, path = "/hls/{stream}/{instance}/{file}", tag = "hls",
    summary = "HLS init segments, segments and parts",
    description = "`init-V.mp4`, `seg-N.m4s`, `seg-N.ts`, `part-N-I.m4s` of a running packager (`instance`, \
        as the playlist names it). Immutable under their URL.",
    params(
        ("stream" = String, Path, description = "The stream key"),
        ("instance" = String, Path, description = "The packager, from the playlist's URIs"),
        ("file" = String, Path, description = "The file, from the playlist's URIs"),
    ),
    responses(
        (status = 200, description = "The media", content_type = "video/iso.segment", body = Vec<u8>),
        (status = 400, description = "Bad stream key", body = ErrorBody),
        (status = 403, description = "No HLS session for the stream: load its playlist first", body = ErrorBody),
        (status = 404, description = "Not (or no longer) served", body = ErrorBody),
    ))]
async fn media_request(
    State(ctx): State<HlsCtx>,
    Path((stream, instance, file)): Path<(String, String, String)>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let key = parse_key(&stream)?;
    let gone = || ApiError::not_found(format!("`{file}` of stream `{key}` is not (or no longer) served"));
    let name = MediaName::parse(&file).ok_or_else(gone)?;
    let variant = name.variant();
    let packager = ctx.outputs.running(&key, variant).filter(|p| p.instance == instance).ok_or_else(gone)?;
    if ctx.admission.policy().is_open(Action::Play) || session_ok(&ctx, &q, &key) {
        packager.touch();
    } else {
        return Err(ApiError::new(StatusCode::FORBIDDEN, format!("no HLS session for `{key}`; load its playlist")));
    }
    let hold = ctx.outputs.settings().hold();
    let (content_type, body) = match name {
        MediaName::Init(version) => ("video/mp4", packager.read(|p| p.packaging.init(version))),
        MediaName::Segment { msn, ts } => {
            wait_coming(&packager, msn, None, hold).await;
            let body = packager.read(|p| p.packaging.segment(msn).filter(|s| s.complete).map(|s| s.bytes()));
            (if ts { "video/mp2t" } else { "video/iso.segment" }, body)
        }
        MediaName::Part { msn, index } => {
            wait_coming(&packager, msn, Some(index), hold).await;
            let body = packager
                .read(|p| p.packaging.segment(msn).and_then(|s| s.parts.get(index)).map(|part| part.data.clone()));
            ("video/iso.segment", body)
        }
    };
    let body = body.ok_or_else(gone)?;
    ctx.outputs.count_bytes_out(body.len());
    Ok(reply(content_type, IMMUTABLE, body))
}

/// Waits for a part or segment at or just past the live edge (a preload hint, the open
/// segment); older or far-off ones are answered at once.
async fn wait_coming(packager: &Packager, msn: u64, part: Option<usize>, hold: std::time::Duration) {
    let head = packager.read(|p| p.packaging.segments().next_back().map(|s| s.msn));
    if head.is_some_and(|h| msn >= h && msn <= h + 1) {
        packager.wait_until(hold, |p| p.packaging.has(msn, part)).await;
    }
}

enum MediaName {
    Init(u32),
    Segment { msn: u64, ts: bool },
    Part { msn: u64, index: usize },
}

impl MediaName {
    /// `init-V.mp4`, `seg-N.m4s`, `seg-N.ts`, `part-N-I.m4s`.
    fn parse(file: &str) -> Option<MediaName> {
        if let Some(v) = file.strip_prefix("init-").and_then(|r| r.strip_suffix(".mp4")) {
            return v.parse().ok().map(MediaName::Init);
        }
        if let Some(rest) = file.strip_prefix("seg-") {
            if let Some(n) = rest.strip_suffix(".m4s") {
                return n.parse().ok().map(|msn| MediaName::Segment { msn, ts: false });
            }
            return rest.strip_suffix(".ts")?.parse().ok().map(|msn| MediaName::Segment { msn, ts: true });
        }
        let (msn, index) = file.strip_prefix("part-")?.strip_suffix(".m4s")?.split_once('-')?;
        Some(MediaName::Part { msn: msn.parse().ok()?, index: index.parse().ok()? })
    }

    fn variant(&self) -> Variant {
        match self {
            MediaName::Segment { ts: true, .. } => Variant::Ts,
            _ => Variant::Fmp4,
        }
    }
}

/// Admits a playlist request: a live session of this stream passes; otherwise the full
/// admission, which opens a session unless play is open to all.
async fn admit(
    ctx: &HlsCtx,
    key: &StreamKey,
    peer: SocketAddr,
    q: &HashMap<String, String>,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Option<String>, ApiError> {
    if let Some(id) = q.get(SESSION_PARAM).filter(|id| ctx.sessions.check(id, key)) {
        return Ok(Some(id.clone()));
    }
    let how =
        crate::http::client::admit(&ctx.admission, Action::Play, Entry::Hls, key.as_str(), peer.ip(), uri, headers)
            .await?;
    Ok((how != Method::Open).then(|| ctx.sessions.open(key)))
}

fn session_ok(ctx: &HlsCtx, q: &HashMap<String, String>, key: &StreamKey) -> bool {
    q.get(SESSION_PARAM).is_some_and(|id| ctx.sessions.check(id, key))
}

/// `_HLS_msn` and `_HLS_part` of a blocking playlist reload, if given.
fn blocking_request(q: &HashMap<String, String>) -> Result<Option<(u64, Option<usize>)>, ApiError> {
    let msn = match q.get("_HLS_msn") {
        None => {
            if q.contains_key("_HLS_part") {
                return Err(ApiError::bad_request("_HLS_part needs _HLS_msn"));
            }
            return Ok(None);
        }
        Some(m) => m.parse::<u64>().map_err(|_| ApiError::bad_request(format!("bad _HLS_msn `{m}`")))?,
    };
    let part = match q.get("_HLS_part") {
        None => None,
        Some(p) => Some(p.parse::<usize>().map_err(|_| ApiError::bad_request(format!("bad _HLS_part `{p}`")))?),
    };
    Ok(Some((msn, part)))
}

/// Prefixes every URI of a media playlist with `prefix` and appends `query`.
fn rewrite_uris(text: &str, prefix: &str, query: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.lines().filter(|l| !l.is_empty()) {
        if !line.starts_with('#') {
            out.push_str(prefix);
            out.push_str(line);
            out.push_str(query);
        } else if let Some((head, rest)) = line.split_once("URI=\"") {
            let (uri, tail) = rest.split_once('"').unwrap_or((rest, ""));
            let _ = write!(out, "{head}URI=\"{prefix}{uri}{query}\"{tail}");
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// The multivariant playlist: the fMP4 variant with its codecs, resolution and bitrate.
fn multivariant(p: &Packed, query: &str) -> String {
    let mut codecs = Vec::new();
    let mut resolution = String::new();
    if let Some(TrackInfo::Video(v)) = p.video.as_deref() {
        let profile =
            v.config.as_ref().filter(|c| c.len() >= 4).map(|c| format!("{:02x}{:02x}{:02x}", c[1], c[2], c[3]));
        codecs.push(format!("avc1.{}", profile.as_deref().unwrap_or("42e01f")));
        if v.width > 0 && v.height > 0 {
            resolution = format!(",RESOLUTION={}x{}", v.width, v.height);
        }
    }
    if let Some(TrackInfo::Audio(a)) = p.audio.as_deref() {
        let object_type = a.config.as_ref().and_then(|c| c.first()).map_or(2, |b| b >> 3);
        codecs.push(format!("mp4a.40.{object_type}"));
    }
    let bandwidth = match p.bitrate() {
        0 => 2_000_000,
        b => b + b / 5,
    };
    format!(
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},CODECS=\"{}\"{resolution}\nfmp4.m3u8{query}\n",
        codecs.join(",")
    )
}

fn no_media_yet(key: &StreamKey) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("stream `{key}` has no HLS segment yet; try again"))
}

fn reply(content_type: &'static str, cache: &'static str, body: Bytes) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, cache),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_names() {
        assert!(matches!(MediaName::parse("init-2.mp4"), Some(MediaName::Init(2))));
        assert!(matches!(MediaName::parse("seg-17.m4s"), Some(MediaName::Segment { msn: 17, ts: false })));
        assert!(matches!(MediaName::parse("seg-17.ts"), Some(MediaName::Segment { msn: 17, ts: true })));
        assert!(matches!(MediaName::parse("part-17-3.m4s"), Some(MediaName::Part { msn: 17, index: 3 })));
        for bad in ["seg-.m4s", "part-1.m4s", "init-x.mp4", "seg-1.mp4", "../etc", "part-1-2-3.m4s", ""] {
            assert!(MediaName::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn uris_get_the_packager_path_and_the_session() {
        let text = "#EXTM3U\n#EXT-X-MAP:URI=\"init-1.mp4\"\n#EXT-X-PART:DURATION=0.200,URI=\"part-3-0.m4s\",INDEPENDENT=YES\n#EXTINF:2.000,\nseg-3.m4s\n";
        let got = rewrite_uris(text, "ab12/", "?hls_session=x");
        assert_eq!(
            got,
            "#EXTM3U\n#EXT-X-MAP:URI=\"ab12/init-1.mp4?hls_session=x\"\n#EXT-X-PART:DURATION=0.200,URI=\"ab12/part-3-0.m4s?hls_session=x\",INDEPENDENT=YES\n#EXTINF:2.000,\nab12/seg-3.m4s?hls_session=x\n"
        );
    }

    #[test]
    fn blocking_parameters() {
        let q = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(blocking_request(&q(&[])).unwrap(), None);
        assert_eq!(blocking_request(&q(&[("_HLS_msn", "5")])).unwrap(), Some((5, None)));
        assert_eq!(blocking_request(&q(&[("_HLS_msn", "5"), ("_HLS_part", "2")])).unwrap(), Some((5, Some(2))));
        assert!(blocking_request(&q(&[("_HLS_part", "2")])).is_err());
        assert!(blocking_request(&q(&[("_HLS_msn", "-1")])).is_err());
    }
}
