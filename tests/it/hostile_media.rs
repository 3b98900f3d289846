//! Hostile media from real peers: H.264 that GStreamer 1.22's parsers and depayloaders crash
//! on, and WebRTC offers that would cost the gateway sockets and threads. The gateway must stay
//! up, keep serving the stream and every other one, and count what it refused.
//!
//! - A truncated subset SPS (NAL type 15, MVC profile) inside an otherwise valid RTMP stream,
//!   watched through a UDP output (whose `h264parse` segfaulted on it).
//! - RTP ingest with FU-A packets cut to one or two bytes, mutated FU-A fragments, STAP-B /
//!   MTAP / FU-B packets (25–27, 29) and the subset SPS, between real x264 packets.
//! - WHIP offers with 200 m-lines, with `a=ssrc:0`, more pending sessions than allowed, and a
//!   second offer for a key whose first one never connected.

use crate::common;

use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ffprobe, Api, Ffmpeg, Gateway, PublishOptions, TempDir};
use serde_json::json;

/// The unit that crashed `h264parse` (`gst_h264_sps_clear`): a subset SPS of profile 118
/// (MVC) cut short after its level_idc.
const TRUNCATED_SUBSET_SPS: [u8; 4] = [0x6f, 118, 0x00, 0x1e];

/// `seconds` of testsrc2 at 320x240, 25 fps, as an H.264 Annex-B stream (x264, baseline, a
/// keyframe each second, SPS/PPS before each).
fn encode_h264(dir: &Path, seconds: u32) -> Vec<u8> {
    let path = dir.join("clean.h264");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
        .args(["-t", &seconds.to_string(), "-c:v", "libx264", "-profile:v", "baseline", "-g", "25", "-bf", "0"])
        .args(["-tune", "zerolatency", "-f", "h264", "-y"])
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not encode the test stream");
    std::fs::read(&path).expect("read the encoded stream")
}

/// The NAL units of an Annex-B stream (start codes removed).
fn nal_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(n, &s)| {
            let end = starts.get(n + 1).map_or(data.len(), |&next| next - 3);
            let mut nal = &data[s..end];
            while let [rest @ .., 0] = nal {
                nal = rest;
            }
            nal
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// Sum of a Prometheus counter's samples whose labels contain `labels`.
async fn metric(api: &Api, name: &str, labels: &str) -> u64 {
    let text = api.get("/metrics").await.map(|r| r.body).unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn thread_count(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Threads:").map(|v| v.trim().parse().unwrap_or(0))))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_subset_sps_over_rtmp_never_reaches_gstreamer() {
    let dir = TempDir::new("hostile-rtmp");
    // The subset SPS before every keyframe's slice, inside an otherwise valid stream.
    let mut crafted = Vec::new();
    let mut previous = 0u8;
    for nal in nal_units(&encode_h264(dir.path(), 20)) {
        let t = nal[0] & 0x1f;
        if t == 5 && previous != 5 {
            crafted.extend_from_slice(&[0, 0, 0, 1]);
            crafted.extend_from_slice(&TRUNCATED_SUBSET_SPS);
        }
        crafted.extend_from_slice(&[0, 0, 0, 1]);
        crafted.extend_from_slice(nal);
        previous = t;
    }
    let file = dir.path().join("crafted.h264");
    std::fs::write(&file, &crafted).expect("write the crafted stream");

    let mut gw = Gateway::start();
    let api = gw.api();
    let _calm = Ffmpeg::publish(&gw.rtmp_url("/live/calm"), PublishOptions::default());
    // The crafted video copied as is, with AAC audio beside it (raw H.264 cannot loop).
    let args: Vec<String> =
        ["-hide_banner", "-nostdin", "-loglevel", "warning", "-re", "-f", "h264", "-framerate", "25", "-i"]
            .iter()
            .map(|s| s.to_string())
            .chain([file.display().to_string()])
            .chain(["-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-shortest"].map(String::from))
            .chain(["-c:v", "copy", "-c:a", "aac", "-f", "flv"].map(String::from))
            .chain([gw.rtmp_url("/live/hostile")])
            .collect();
    let _hostile = Ffmpeg::run(args, "crafted publisher");
    api.wait_live("hostile", Duration::from_secs(20)).await.expect("the crafted stream is published");
    api.wait_live("calm", Duration::from_secs(20)).await.expect("the calm stream is published");

    // A UDP output parses the video with h264parse: the path that crashed.
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind the output's receiver");
    receiver.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let port = receiver.local_addr().expect("addr").port();
    api.post_json("/api/v1/streams/hostile/udp-outputs", &json!({ "host": "127.0.0.1", "port": port }))
        .await
        .and_then(|r| r.expect_success("POST udp-outputs"))
        .expect("a UDP output of the crafted stream");

    // Three keyframes (each with its subset SPS) go through while packets keep coming.
    let mut packets = 0u64;
    let until = Instant::now() + Duration::from_secs(4);
    let mut buf = [0u8; 2048];
    while Instant::now() < until {
        if receiver.recv(&mut buf).is_ok() {
            packets += 1;
        }
    }
    assert!(gw.is_running(), "the gateway died:\n{}", gw.stderr_tail());
    assert!(packets > 50, "the UDP output sent {packets} packets in 4 s");
    let refused = metric(&api, "interop_h264_refused_total", "protocol=\"rtmp\"").await;
    assert!(refused >= 3, "refused H.264 units counted: {refused}");
    let calm = ffprobe(&gw.rtmp_url("/live/calm"), Duration::from_secs(15)).await.expect("probe the calm stream");
    assert_eq!(calm.video().and_then(|v| v.codec_name.as_deref()), Some("h264"), "the other stream still plays");
    let hostile =
        ffprobe(&gw.rtmp_url("/live/hostile"), Duration::from_secs(15)).await.expect("probe the crafted stream");
    assert_eq!(hostile.video().and_then(|v| v.width), Some(320), "the crafted stream itself still plays");
    assert!(gw.is_running(), "the gateway died:\n{}", gw.stderr_tail());
}

/// RTP packets of one H.264 stream (RFC 6184, single NAL units and FU-A), 25 pictures a second.
struct Packetizer {
    seq: u16,
    ssrc: u32,
}

impl Packetizer {
    fn packet(&mut self, timestamp: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 96 | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&timestamp.to_be_bytes());
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        p
    }

    /// The packets of one NAL unit; `last` sets the marker on its last packet.
    fn nal(&mut self, timestamp: u32, nal: &[u8], last: bool) -> Vec<Vec<u8>> {
        const MAX: usize = 1200;
        if nal.len() <= MAX {
            return vec![self.packet(timestamp, last, nal)];
        }
        let (header, mut rest) = (nal[0], &nal[1..]);
        let mut out = Vec::new();
        let mut first = true;
        while !rest.is_empty() {
            let n = rest.len().min(MAX);
            let end = n == rest.len();
            let fu_header = (header & 0x1f) | if first { 0x80 } else { 0 } | if end { 0x40 } else { 0 };
            let payload = [&[(header & 0xe0) | 28, fu_header][..], &rest[..n]].concat();
            out.push(self.packet(timestamp, last && end, &payload));
            rest = &rest[n..];
            first = false;
        }
        out
    }
}

/// A small deterministic generator for the mutations.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
}

/// Hostile payloads for one picture's slot: the over-reading FU-A sizes, packetization types
/// the depayloader errors on, the subset SPS alone and in a STAP-A, and a mutated fragment.
fn hostile_payloads(rng: &mut Lcg, fragment: Option<&[u8]>) -> Vec<Vec<u8>> {
    let mut out = vec![
        vec![0x7c],
        vec![0x7c, 0x85],
        vec![0x7c, 0x05],
        vec![0x7c, 0xc5, 0x88],
        TRUNCATED_SUBSET_SPS.to_vec(),
        [&[24u8, 0, 4][..], &TRUNCATED_SUBSET_SPS].concat(),
    ];
    for t in [25u8, 26, 27, 29] {
        out.push(vec![0x60 | t, 0x85, 0x00, 0x02, 0x65, 0x88]);
    }
    if let Some(fragment) = fragment {
        let mut mutated = fragment.to_vec();
        let cut = 1 + rng.next() as usize % mutated.len().max(1);
        mutated.truncate(cut.min(mutated.len()));
        for _ in 0..3 {
            let i = rng.next() as usize % mutated.len();
            mutated[i] ^= 1 << (rng.next() % 8);
        }
        out.push(mutated);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_rtp_is_dropped_and_counted_while_the_ingest_goes_on() {
    let dir = TempDir::new("hostile-rtp");
    let nals = encode_h264(dir.path(), 8);
    let nals = nal_units(&nals);
    let gw = Gateway::start();
    let api = gw.api();
    let socket = UdpSocket::bind("127.0.0.1:0").expect("sender socket");
    let port = {
        let probe = UdpSocket::bind("127.0.0.1:0").expect("probe a port");
        probe.local_addr().expect("addr").port() & !1
    };
    let sdp = format!(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=hostile\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=video {port} RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n"
    );
    let reply = api
        .post_raw("/api/v1/streams/rtp/udp-ingest", "application/sdp", sdp.into_bytes())
        .await
        .expect("POST udp-ingest");
    assert_eq!(reply.status, 201, "{}", reply.body);

    let mut pack = Packetizer { seq: 1000, ssrc: 0x1234_5678 };
    let mut rng = Lcg(7);
    let started = Instant::now();
    let (mut picture, mut hostile_sent) = (0u32, 0usize);
    let mut gateway_ok = true;
    for (i, nal) in nals.iter().enumerate() {
        let t = nal[0] & 0x1f;
        let timestamp = 90_000 / 25 * picture;
        let packets = pack.nal(timestamp, nal, matches!(t, 1 | 5));
        let fragment = packets.iter().find(|p| p.len() > 14 && p[12] & 0x1f == 28).map(|p| p[12..].to_vec());
        for p in &packets {
            let _ = socket.send_to(p, ("127.0.0.1", port));
        }
        // From the second to the fourth second: hostile packets between the real ones.
        let elapsed = started.elapsed();
        if matches!(t, 1 | 5) && elapsed > Duration::from_secs(2) && elapsed < Duration::from_millis(3800) {
            for payload in hostile_payloads(&mut rng, fragment.as_deref()) {
                let p = pack.packet(timestamp, false, &payload);
                let _ = socket.send_to(&p, ("127.0.0.1", port));
                hostile_sent += 1;
            }
        }
        if matches!(t, 1 | 5) {
            picture += 1;
            let due = started + Duration::from_millis(40 * u64::from(picture));
            tokio::time::sleep(due.saturating_duration_since(Instant::now())).await;
        }
        if i % 50 == 0 && api.healthz().await.map_or(true, |s| s != 200) {
            gateway_ok = false;
            break;
        }
    }
    assert!(gateway_ok, "the gateway stopped answering:\n{}", gw.stderr_tail());
    assert!(hostile_sent >= 150, "sent {hostile_sent} hostile datagrams");
    let refused = metric(&api, "interop_udp_packets_dropped_total", "reason=\"h264_payload\"").await;
    assert!(refused as usize >= hostile_sent / 2, "{refused} of {hostile_sent} hostile packets counted");
    let stream = api.stream("rtp").await.expect("GET stream");
    let video = stream.and_then(|s| s.video).expect("the ingest still publishes video");
    assert_eq!((video.width, video.height), (Some(320), Some(240)), "{video:?}");
    // Keep sending real pictures while a player reads the stream back: it still decodes.
    let sender = tokio::spawn(async move {
        for round in 0..6u32 {
            for nal in &nal_units(&std::fs::read(dir.path().join("clean.h264")).unwrap_or_default()) {
                let t = nal[0] & 0x1f;
                let timestamp = 90_000 / 25 * picture;
                for p in pack.nal(timestamp, nal, matches!(t, 1 | 5)) {
                    let _ = socket.send_to(&p, ("127.0.0.1", port));
                }
                if matches!(t, 1 | 5) {
                    picture += 1;
                    tokio::time::sleep(Duration::from_millis(40)).await;
                }
            }
            let _ = round;
        }
    });
    let probe = ffprobe(&gw.rtmp_url("/live/rtp"), Duration::from_secs(15)).await.expect("probe after the attack");
    assert_eq!(probe.video().and_then(|v| v.codec_name.as_deref()), Some("h264"), "{probe:?}");
    sender.abort();
    assert!(api.healthz().await.is_ok_and(|s| s == 200), "{}", gw.stderr_tail());
}

const FINGERPRINT: &str =
    "sha-256 5D:18:DA:15:35:29:CB:E3:1F:68:E5:E0:FE:D4:C5:0E:01:0B:04:CB:2B:1A:B1:B8:1D:28:B3:CA:10:54:2A:16";

/// A browser-like WHIP offer (no candidates: ICE never connects) with `medias` m-lines of
/// alternating video and audio, `extra` added to the first.
fn whip_offer(medias: usize, extra: &str) -> String {
    let mut text = String::from("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
    for i in 0..medias {
        let (kind, pt, map) = if i % 2 == 0 {
            ("video", 102, "H264/90000\r\na=fmtp:102 packetization-mode=1;profile-level-id=42e01f")
        } else {
            ("audio", 111, "opus/48000/2")
        };
        text.push_str(&format!(
            "m={kind} 9 UDP/TLS/RTP/SAVPF {pt}\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:wxyz\r\na=ice-pwd:0123456789abcdefghijklmn\r\n\
             a=fingerprint:{FINGERPRINT}\r\na=setup:actpass\r\na=rtcp-mux\r\na=sendonly\r\na=mid:{i}\r\na=rtpmap:{pt} {map}\r\n{}",
            if i == 0 { extra } else { "" }
        ));
    }
    text
}

async fn post_offer(api: &Api, path: &str, offer: String) -> common::Reply {
    api.post_raw(path, "application/sdp", offer.into_bytes()).await.expect("POST offer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_offers_cannot_amplify_or_squat_keys() {
    let config = "webrtc: { max_pending_per_address: 3, ice_timeout_seconds: 20 }\n";
    let gw = Gateway::start_with(&[], Some(config));
    let api = gw.api();
    let threads_before = thread_count(gw.pid());

    let huge = post_offer(&api, "/whip/huge", whip_offer(200, "")).await;
    assert_eq!(huge.status, 400, "{}", huge.body);
    assert!(huge.body.contains("200 m-lines"), "{}", huge.body);
    let ssrc0 = post_offer(&api, "/whip/zero", whip_offer(2, "a=ssrc:0 cname:x\r\n")).await;
    assert_eq!(ssrc0.status, 400, "{}", ssrc0.body);
    assert!(ssrc0.body.contains("SSRC 0"), "{}", ssrc0.body);
    assert!(api.stream("huge").await.expect("GET").is_none() && api.stream("zero").await.expect("GET").is_none());
    let threads_after = thread_count(gw.pid());
    assert!(threads_after <= threads_before + 8, "threads {threads_before} -> {threads_after} for two refused offers");

    // Three pending sessions from 127.0.0.1 are allowed; the fourth waits for one to go.
    let mut locations = Vec::new();
    for key in ["a", "b", "c"] {
        let r = post_offer(&api, &format!("/whip/{key}"), whip_offer(2, "")).await;
        assert_eq!(r.status, 201, "{key}: {}", r.body);
        locations.push(r);
    }
    let refused = post_offer(&api, "/whip/d", whip_offer(2, "")).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(refused.error_message().unwrap_or("").contains("max_pending_per_address"), "{}", refused.body);

    // A newer offer for a key whose session never connected takes the key over (no 409),
    // without needing another pending slot beyond the one it frees.
    let again = post_offer(&api, "/whip/a", whip_offer(2, "")).await;
    assert_eq!(again.status, 201, "{}", again.body);
    // The replaced session gave its slot back, the new one holds one: still three pending.
    let still = post_offer(&api, "/whip/d", whip_offer(2, "")).await;
    assert_eq!(still.status, 429, "{}", still.body);
    let stderr = gw.stderr_tail();
    assert!(!stderr.contains("GStreamer-CRITICAL"), "{stderr}");
    assert!(stderr.contains("replaced by a newer offer"), "{stderr}");
}

/// Hostile payloads for the RTP payload checks of `encoding` (RFC 7741, 7587, 2250, 3640):
/// cut descriptors and headers, lengths past the end, impossible counts; then `real` cut short
/// and bit-flipped.
fn hostile_rtp_payloads(encoding: &str, rng: &mut Lcg, real: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = match encoding {
        "VP8" => vec![
            vec![0x90],
            vec![0x90, 0x80],
            vec![0x90, 0x80, 0x81],
            vec![0x90, 0xf0, 0x81, 0x23, 0x01],
            vec![0x10, 0x00],
            vec![0x10, 0x50, 0x42, 0, 0x9d],
        ],
        "OPUS" => vec![
            vec![0xff],
            vec![0xff, 0x00],
            vec![0xff, 0x41, 200, 1],
            vec![0xfe, 9, 1],
            vec![0xfd, 1, 2, 3],
            vec![0xff, 0x82, 9, 1],
            vec![0xff, 0x3f],
        ],
        "MPV" => vec![vec![0, 0, 0x1c], vec![0x04, 0, 0x1c, 1, 0, 0], vec![0x80, 0, 0, 0, 0], vec![0, 0, 0x1c, 1]],
        _ => vec![
            vec![0x00],
            vec![0x10, 0, 0, 0, 1],
            vec![0, 16, 0, 0, 9],
            vec![0, 32, 0, 0x18, 0, 0x20, 0x21],
            vec![0, 0, 1],
            vec![0xff, 0xff, 1, 2],
        ],
    };
    if !real.is_empty() {
        let mut mutated = real[..1 + rng.next() as usize % real.len()].to_vec();
        for _ in 0..3 {
            let i = rng.next() as usize % mutated.len();
            mutated[i] ^= 1 << (rng.next() % 8);
        }
        out.push(mutated);
    }
    out
}

/// Forwards ffmpeg's RTP from `from` to the gateway's `to` port, renumbering the sequence so
/// that hostile packets (same header, next number) fit between real ones while `hostile` is
/// set. Returns the hostile datagrams sent once `stop` is set.
fn relay(from: UdpSocket, to: u16, encoding: &'static str, hostile: Arc<AtomicBool>, stop: Arc<AtomicBool>) -> usize {
    let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
    let mut rng = Lcg(u64::from(to));
    let (mut seq, mut sent) = (5000u16, 0usize);
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let Ok(n) = from.recv(&mut buf) else { continue };
        if n < 12 {
            continue;
        }
        let mut packet = buf[..n].to_vec();
        packet[2..4].copy_from_slice(&seq.to_be_bytes());
        seq = seq.wrapping_add(1);
        let _ = from.send_to(&packet, ("127.0.0.1", to));
        if hostile.load(Ordering::Relaxed) {
            for payload in hostile_rtp_payloads(encoding, &mut rng, &packet[12..]) {
                let mut p = packet[..12].to_vec();
                p[1] &= 0x7f;
                p[2..4].copy_from_slice(&seq.to_be_bytes());
                seq = seq.wrapping_add(1);
                p.extend_from_slice(&payload);
                let _ = from.send_to(&p, ("127.0.0.1", to));
                sent += 1;
            }
        }
    }
    sent
}

/// ffmpeg sends `video` and `audio` RTP through a relay that mixes in hostile packets from the
/// second to the fourth second; the ingest goes on, the packets are counted, a player decodes.
async fn hostile_payloads_through_udp_ingest(
    key: &str,
    video: (&'static str, &str, &str),
    audio: (&'static str, &str, &str),
) {
    let gw = Gateway::start();
    let api = gw.api();
    let port = {
        let probe = UdpSocket::bind("127.0.0.1:0").expect("probe a port");
        probe.local_addr().expect("addr").port() & !3
    };
    let (vport, aport) = (port, port + 2);
    let sdp = format!(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=hostile\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video {vport} RTP/AVP {}\r\nm=audio {aport} RTP/AVP {}\r\n",
        video.1, audio.1
    );
    let reply = api
        .post_raw(&format!("/api/v1/streams/{key}/udp-ingest"), "application/sdp", sdp.into_bytes())
        .await
        .expect("POST udp-ingest");
    assert_eq!(reply.status, 201, "{}", reply.body);
    let (hostile, stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let mut relays = Vec::new();
    let mut targets = Vec::new();
    for ((encoding, _, _), to) in [(video, vport), (audio, aport)] {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("relay socket");
        targets.push(socket.local_addr().expect("relay addr").port());
        let (h, s) = (hostile.clone(), stop.clone());
        relays.push(std::thread::spawn(move || relay(socket, to, encoding, h, s)));
    }
    let rtp = |i: usize| format!("rtp://127.0.0.1:{}?pkt_size=1200", targets[i]);
    let mut args: Vec<String> = [
        "-hide_banner",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        "20",
        "-map",
        "0:v",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(video.2.split(' ').map(String::from));
    args.extend(["-ssrc".into(), "1111".into(), "-f".into(), "rtp".into(), rtp(0), "-map".into(), "1:a".into()]);
    args.extend(audio.2.split(' ').map(String::from));
    args.extend(["-ssrc".into(), "2222".into(), "-f".into(), "rtp".into(), rtp(1)]);
    let _sender = Ffmpeg::run(args, key);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    hostile.store(true, Ordering::Relaxed);
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert!(api.healthz().await.is_ok_and(|s| s == 200), "the gateway stopped answering:\n{}", gw.stderr_tail());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    hostile.store(false, Ordering::Relaxed);
    let probe = ffprobe(&gw.rtmp_url(&format!("/live/{key}")), Duration::from_secs(15)).await;
    stop.store(true, Ordering::Relaxed);
    let sent: usize = relays.into_iter().map(|r| r.join().unwrap_or(0)).sum();
    assert!(sent >= 100, "sent {sent} hostile datagrams");
    // Nearly all of them are invalid (only the bit-flipped copy of a real packet may be valid),
    // but a loaded machine counts the last ones late (jitter buffer, queued datagrams): wait,
    // bounded, for at least half.
    let until = Instant::now() + Duration::from_secs(10);
    let mut refused = metric(&api, "interop_udp_packets_dropped_total", "reason=\"payload\"").await;
    while (refused as usize) < sent / 2 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        refused = metric(&api, "interop_udp_packets_dropped_total", "reason=\"payload\"").await;
    }
    assert!(refused as usize >= sent / 2, "{refused} of {sent} hostile packets counted");
    let probe = probe.unwrap_or_else(|e| panic!("probe after the attack: {e:#}\n{}", gw.stderr_tail()));
    assert!(probe.video().is_some() && probe.audio().is_some(), "{probe:?}");
    assert!(api.healthz().await.is_ok_and(|s| s == 200), "{}", gw.stderr_tail());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_vp8_and_opus_rtp_is_dropped_and_counted() {
    hostile_payloads_through_udp_ingest(
        "vp8",
        ("VP8", "96\r\na=rtpmap:96 VP8/90000", "-c:v libvpx -deadline realtime -b:v 300k -g 25 -payload_type 96"),
        ("OPUS", "97\r\na=rtpmap:97 opus/48000/2", "-c:a libopus -ac 2 -payload_type 97"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_mpeg_video_and_aac_rtp_is_dropped_and_counted() {
    hostile_payloads_through_udp_ingest(
        "mpv",
        ("MPV", "32", "-c:v mpeg1video -bf 0 -g 25 -b:v 500k -payload_type 32"),
        (
            "AAC",
            "97\r\na=rtpmap:97 MPEG4-GENERIC/48000/1\r\na=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1188",
            "-c:a aac -ac 1 -payload_type 97",
        ),
    )
    .await;
}
