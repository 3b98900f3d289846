//! HLS out (issue 13): ffprobe reads both variants, LL-HLS blocking reload answers within a
//! part, one packager serves every viewer and stops after the last, CDN headers, admission
//! with sessions, and hls.js in headless Chromium plays an RTMP and a WHIP publisher.

use crate::common;

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use common::chromium::{in_loopback_netns, Chromium, PageReport, PageServer};
use common::ffmpeg::ffprobe;
use common::{Ffmpeg, Gateway, PublishOptions};

const MEDIA: Duration = Duration::from_secs(20);

async fn get(url: &str) -> anyhow::Result<reqwest::Response> {
    reqwest::Client::new().get(url).timeout(Duration::from_secs(20)).send().await.with_context(|| format!("GET {url}"))
}

async fn text(url: &str) -> anyhow::Result<String> {
    let r = get(url).await?;
    let status = r.status();
    let body = r.text().await?;
    if !status.is_success() {
        bail!("GET {url}: {status}: {body}");
    }
    Ok(body)
}

/// The URI of the preload hint: `(msn, part)` of the next part.
fn preload_hint(playlist: &str) -> Option<(u64, usize)> {
    let line = playlist.lines().find(|l| l.starts_with("#EXT-X-PRELOAD-HINT"))?;
    let uri = line.split("URI=\"").nth(1)?.split('"').next()?;
    let name = uri.rsplit('/').next()?.split('?').next()?;
    let (msn, part) = name.strip_prefix("part-")?.strip_suffix(".m4s")?.split_once('-')?;
    Some((msn.parse().ok()?, part.parse().ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffprobe_reads_both_variants_of_an_rtmp_publisher() {
    let gw = Gateway::start();
    let _publisher =
        Ffmpeg::publish(&gw.rtmp_url("/live/hls1"), PublishOptions { bframes: true, ..Default::default() });
    gw.api().wait_live("hls1", MEDIA).await.expect("live");
    for file in ["index.m3u8", "ts.m3u8"] {
        let probe = ffprobe(&gw.http_url(&format!("/hls/hls1/{file}")), MEDIA).await.expect(file);
        probe.expect_h264_aac(640, 360, 44100).unwrap_or_else(|e| panic!("{file}: {e:#}"));
    }
    // Both variants are one hub consumer each, of protocol hls, copying (RTMP -> HLS).
    let stream = gw.api().stream("hls1").await.expect("api").expect("live");
    assert_eq!(stream.consumers.get("hls"), Some(&2), "{:?}", stream.consumers);
    assert!(stream.conversions.is_empty(), "RTMP -> HLS copies: {:?}", stream.conversions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ll_hls_blocking_reload_answers_within_a_part_and_segments_are_cdn_friendly() {
    let gw = Gateway::start_with(&[], Some("hls: { idle_seconds: 2 }\n"));
    let _publisher = Ffmpeg::publish(&gw.rtmp_url("/live/hls2"), PublishOptions::default());
    gw.api().wait_live("hls2", MEDIA).await.expect("live");
    let base = gw.http_url("/hls/hls2/");
    let master = get(&format!("{base}index.m3u8")).await.expect("master");
    assert_eq!(master.status(), 200, "{:?}", master.text().await);
    assert_eq!(master.headers()["access-control-allow-origin"], "*");
    let master = get(&format!("{base}index.m3u8")).await.expect("master");
    assert_eq!(master.headers()["content-type"], "application/vnd.apple.mpegurl");
    let master = master.text().await.expect("body");
    assert!(master.contains("CODECS=\"avc1.") && master.contains("mp4a.40.2"), "{master}");
    assert!(master.contains("RESOLUTION=640x360"), "{master}");

    // Several blocking reloads of the next part: each is answered when that part exists,
    // within a part duration (200 ms) and a little scheduling slack.
    let mut waits = Vec::new();
    let mut playlist = text(&format!("{base}fmp4.m3u8")).await.expect("media playlist");
    for _ in 0..8 {
        let (msn, part) = preload_hint(&playlist).unwrap_or_else(|| panic!("no preload hint:\n{playlist}"));
        let started = Instant::now();
        playlist = text(&format!("{base}fmp4.m3u8?_HLS_msn={msn}&_HLS_part={part}")).await.expect("blocking reload");
        waits.push(started.elapsed());
        let listed = playlist.contains(&format!("part-{msn}-{part}.m4s")) || preload_hint(&playlist).unwrap().0 > msn;
        assert!(listed, "the answer lists part {msn}.{part}:\n{playlist}");
    }
    let longest = waits.iter().max().copied().unwrap_or_default();
    println!("blocking reload waits: {waits:?}");
    assert!(longest <= Duration::from_millis(350), "a blocking reload took {longest:?}: {waits:?}");
    assert!(
        get(&format!("{base}fmp4.m3u8?_HLS_msn=999999")).await.expect("far").status() == 400,
        "a request far past the live edge is refused at once"
    );

    // Segments, parts and the init are immutable; playlists short-lived.
    let media = playlist.lines().rfind(|l| !l.starts_with('#') && !l.is_empty()).expect("a segment").to_string();
    let init = playlist.split("#EXT-X-MAP:URI=\"").nth(1).and_then(|r| r.split('"').next()).expect("map").to_string();
    for uri in [&media, &init] {
        let r = get(&format!("{base}{uri}")).await.expect("media");
        assert_eq!(r.status(), 200, "{uri}");
        assert_eq!(r.headers()["cache-control"], "public, max-age=31536000, immutable", "{uri}");
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
        assert!(!r.bytes().await.expect("bytes").is_empty());
    }
    let r = get(&format!("{base}fmp4.m3u8")).await.expect("playlist");
    assert_eq!(r.headers()["cache-control"], "public, max-age=1");

    // One packager for all viewers; it stops `idle_seconds` after the last request.
    let stream = gw.api().stream("hls2").await.expect("api").expect("live");
    assert_eq!(stream.consumers.get("hls"), Some(&1), "{:?}", stream.consumers);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stream = gw.api().stream("hls2").await.expect("api").expect("live");
        if stream.consumers.get("hls").copied().unwrap_or(0) == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the packager did not stop: {:?}", stream.consumers);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Its segments are gone with it; a new request starts a new packager at a new path.
    assert_eq!(get(&format!("{base}{media}")).await.expect("stale").status(), 404);
    let again = text(&format!("{base}fmp4.m3u8")).await.expect("restarted");
    assert!(!again.contains(media.split('/').next().unwrap()), "a new path:\n{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_play_is_admitted_once_per_session() {
    let gw = Gateway::start_with(
        &[],
        Some("auth:\n  publish: [open]\n  play: [keys]\n  keys:\n    - { name: viewer, key: \"v-key\", actions: [play] }\n"),
    );
    let _publisher = Ffmpeg::publish(&gw.rtmp_url("/live/hls3"), PublishOptions::default());
    gw.api().wait_live("hls3", MEDIA).await.expect("live");
    let base = gw.http_url("/hls/hls3/");
    assert_eq!(get(&format!("{base}index.m3u8")).await.unwrap().status(), 401, "no key");
    assert_eq!(get(&format!("{base}fmp4.m3u8?key=wrong")).await.unwrap().status(), 401, "a wrong key");
    let master = text(&format!("{base}index.m3u8?key=v-key")).await.expect("with the key");
    let variant = master.lines().find(|l| l.starts_with("fmp4.m3u8?hls_session=")).expect(&master).to_string();
    // The session carries the player through the media playlist and its segments.
    let playlist = text(&format!("{base}{variant}")).await.expect("media playlist by session");
    let init = playlist.split("#EXT-X-MAP:URI=\"").nth(1).and_then(|r| r.split('"').next()).expect("map").to_string();
    assert!(init.contains("?hls_session="), "{init}");
    assert_eq!(get(&format!("{base}{init}")).await.unwrap().status(), 200);
    let bare = init.split('?').next().unwrap();
    assert_eq!(get(&format!("{base}{bare}")).await.unwrap().status(), 403, "a segment without a session");
    // ffprobe, like any player, follows the session URIs.
    let probe = ffprobe(&format!("{base}index.m3u8?key=v-key"), MEDIA).await.expect("ffprobe with the key");
    probe.expect_h264_aac(640, 360, 44100).expect("h264 + aac");
}

/// hls.js (npm) in headless Chromium plays the LL-HLS playlist of an RTMP publisher (ffmpeg)
/// and of a WHIP publisher (another Chromium, fake camera and microphone; Opus converted to
/// AAC): pictures decoded, `currentTime` advancing, audio decoded.
#[test]
fn hls_js_in_chromium_plays_rtmp_and_whip_publishers() {
    if !in_loopback_netns("hls_js_in_chromium_plays_rtmp_and_whip_publishers") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    runtime.block_on(async {
        let gw = Gateway::start();
        let api = gw.api();
        let pages = PageServer::start().await.expect("pages");
        let hlsjs = gw.http_url("/hls-assets/hls.min.js");

        let _rtmp = Ffmpeg::publish(&gw.rtmp_url("/live/hlsrtmp"), PublishOptions::default());
        api.wait_live("hlsrtmp", MEDIA).await.expect("rtmp live");
        let src = gw.http_url("/hls/hlsrtmp/index.m3u8");
        let _viewer = Chromium::start(&pages.url("hls.html", &[("src", &src), ("hlsjs", &hlsjs), ("id", "rtmp")]))
            .expect("chromium");
        let figures = plays(&pages, "rtmp").await.unwrap_or_else(|e| panic!("{e:#}\n{}", gw.stderr_tail()));
        println!("hls.js, RTMP publisher: {figures}");

        let whip = gw.http_url("/whip/hlswhip");
        let _publisher =
            Chromium::start(&pages.url("whip.html", &[("whip", &whip), ("id", "pub")])).expect("chromium whip");
        api.wait_live("hlswhip", Duration::from_secs(40)).await.expect("whip live");
        let src = gw.http_url("/hls/hlswhip/index.m3u8");
        let _viewer2 = Chromium::start(&pages.url("hls.html", &[("src", &src), ("hlsjs", &hlsjs), ("id", "whip")]))
            .expect("chromium");
        let figures = plays(&pages, "whip").await.unwrap_or_else(|e| panic!("{e:#}\n{}", gw.stderr_tail()));
        println!("hls.js, WHIP publisher: {figures}");
        let stream = api.stream("hlswhip").await.expect("api").expect("live");
        let converted: Vec<String> = stream.conversions.iter().map(|c| format!("{c:?}")).collect();
        assert!(
            converted.iter().any(|c| c.contains("opus") && c.contains("aac")),
            "Opus -> AAC for HLS: {converted:?}"
        );
    });
}

fn probe_field(r: &PageReport, name: &str) -> f64 {
    r.raw.get(name).and_then(|v| v.as_f64()).unwrap_or(0.0)
}

/// Waits until page `id` has decoded 60 pictures and audio, then checks `currentTime` moves
/// on by at least 2 s over 3 s of wall time.
async fn plays(pages: &PageServer, id: &str) -> anyhow::Result<String> {
    let wait = Duration::from_secs(40);
    let first = pages
        .wait_report(id, wait, "60 pictures and audio", |r| {
            r.kind == "probe" && probe_field(r, "decodedFrames") >= 60.0 && probe_field(r, "audioBytes") > 0.0
        })
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let last = pages.reports().into_iter().rev().find(|r| r.id == id && r.kind == "probe").context("probe")?;
    let advanced = probe_field(&last, "currentTime") - probe_field(&first, "currentTime");
    if advanced < 2.0 {
        bail!("currentTime advanced {advanced:.2} s in 3 s");
    }
    Ok(format!(
        "{} pictures, {}x{}, currentTime +{advanced:.2} s in 3 s, latency {:.2} s",
        probe_field(&last, "decodedFrames"),
        probe_field(&last, "width"),
        probe_field(&last, "height"),
        probe_field(&last, "latency")
    ))
}
