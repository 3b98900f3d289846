//! A light WHEP load client: N viewers of one or more WHEP URLs, each a str0m `Rtc` in RTP
//! mode on its own loopback UDP socket (ICE, DTLS, SRTP, RTCP, NACK; no depacketizing, no
//! decoding), all on one thread, so the client costs little beside the gateway it loads.
//!
//! Per viewer it counts RTP packets, video frames (marker bits) and keyframes (IDR slices seen
//! in single NAL, STAP-A or FU-A start packets) over the measured window, and prints one JSON
//! line at the end: `{"viewers", "connected", "min_fps", "avg_fps", "min_audio_pps",
//! "keyframes_min", "video_pts", "bytes"}`.
//!
//! usage: whep_viewers N WARMUP_S SECONDS URL [URL...]   (viewer k plays URL k % len)

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

#[derive(Default, Clone)]
struct Counts {
    video_packets: u64,
    audio_packets: u64,
    frames: u64,
    keyframes: u64,
    bytes: u64,
}

struct Viewer {
    rtc: Rtc,
    socket: tokio::net::UdpSocket,
    local: SocketAddr,
    /// The session's resource (DELETE ends it).
    location: Option<String>,
    connected: bool,
    debug_sr: bool,
    /// The last RTP timestamp and arrival, video then audio.
    last: [Option<(u32, Instant)>; 2],
    counts: Counts,
    /// Counts when the measured window started.
    at_start: Option<Counts>,
}

fn is_keyframe_packet(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else { return false };
    match first & 0x1f {
        5 => true,
        24 => {
            let mut rest = &payload[1..];
            while rest.len() > 2 {
                let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                if rest.get(2).is_some_and(|b| b & 0x1f == 5) {
                    return true;
                }
                rest = rest.get(2 + len..).unwrap_or(&[]);
            }
            false
        }
        28 => payload.get(1).is_some_and(|b| b & 0x80 != 0 && b & 0x1f == 5),
        _ => false,
    }
}

/// `http://host:port` of a URL.
fn base_of(url: &str) -> String {
    let after = url.find("://").map_or(0, |i| i + 3);
    let end = url[after..].find('/').map_or(url.len(), |i| after + i);
    url[..end].to_string()
}

async fn connect(url: &str, http: &reqwest::Client) -> anyhow::Result<Viewer> {
    let std_socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    std_socket.set_nonblocking(true)?;
    let local = std_socket.local_addr()?;
    let socket = tokio::net::UdpSocket::from_std(std_socket)?;
    let mut rtc = Rtc::builder()
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
        .set_stats_interval(None)
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp")?);
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, pending) = change.apply().ok_or_else(|| anyhow::anyhow!("no offer"))?;
    let reply = http.post(url).header("content-type", "application/sdp").body(offer.to_sdp_string()).send().await?;
    let status = reply.status();
    let reply_location = reply.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
    let text = reply.text().await?;
    if status.as_u16() != 201 {
        anyhow::bail!("{url}: {status}: {text}");
    }
    let location = reply_location.map(|l| base_of(url) + &l);
    let answer = SdpAnswer::from_sdp_string(&text)?;
    rtc.sdp_api().accept_answer(pending, answer)?;
    Ok(Viewer {
        rtc,
        socket,
        local,
        location,
        connected: false,
        debug_sr: std::env::var_os("WHEP_SR_DEBUG").is_some(),
        last: [None; 2],
        counts: Counts::default(),
        at_start: None,
    })
}

impl Viewer {
    /// Drains the Rtc; returns its next timeout.
    fn drain(&mut self) -> Instant {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return t,
                Ok(Output::Transmit(t)) => {
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(Event::Connected)) => self.connected = true,
                Ok(Output::Event(Event::SenderFeedback(f))) if self.debug_sr => {
                    // WHEP_SR_DEBUG: where the sender's report puts the track's last packet,
                    // against when it arrived (equal across tracks when the reports agree).
                    let sr = f.sender_info;
                    let audio = sr.rtp_time.denom() == 48_000;
                    if let Some((ts, at)) = self.last[usize::from(audio)] {
                        let rate = f64::from(sr.rtp_time.denom());
                        let sr_ts = sr.rtp_time.numer() as u32;
                        let ahead = f64::from(ts.wrapping_sub(sr_ts) as i32) / rate;
                        let ntp = sr.ntp_time.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
                        let arrival = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap_or_default()
                            .as_secs_f64()
                            - at.elapsed().as_secs_f64();
                        eprintln!(
                            "SR {} packet-at-ntp minus arrival: {:+.1} ms",
                            if audio { "audio" } else { "video" },
                            1000.0 * (ntp + ahead - arrival)
                        );
                    }
                }
                Ok(Output::Event(Event::RtpPacket(p))) => {
                    let audio = p.header.payload_type == 111.into();
                    self.last[usize::from(audio)] = Some((p.header.timestamp, Instant::now()));
                    self.counts.bytes += p.payload.len() as u64;
                    // The client offers Opus as payload type 111 (str0m's default), video otherwise.
                    if p.header.payload_type != 111.into() {
                        self.counts.video_packets += 1;
                        if p.header.marker {
                            self.counts.frames += 1;
                        }
                        if is_keyframe_packet(&p.payload) {
                            self.counts.keyframes += 1;
                        }
                    } else {
                        self.counts.audio_packets += 1;
                    }
                }
                Ok(Output::Event(_)) => {}
                Err(e) => {
                    eprintln!("viewer failed: {e}");
                    return Instant::now() + Duration::from_secs(3600);
                }
            }
        }
    }

    async fn run(mut self, start_at: Instant, end_at: Instant) -> (bool, Counts, Counts, Option<String>) {
        let mut buf = vec![0u8; 2048];
        let mut next = self.drain();
        loop {
            let now = Instant::now();
            if self.at_start.is_none() && now >= start_at {
                self.at_start = Some(self.counts.clone());
            }
            if now >= end_at {
                break;
            }
            let until = next.min(end_at).min(if self.at_start.is_none() { start_at } else { end_at });
            let sleep = until.saturating_duration_since(now);
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => {
                    if let Ok((n, source)) = r {
                        if let Ok(contents) = buf[..n].try_into() {
                            let input = Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: self.local, contents });
                            let _ = self.rtc.handle_input(input);
                        }
                    }
                }
                _ = tokio::time::sleep(sleep) => {
                    let _ = self.rtc.handle_input(Input::Timeout(Instant::now()));
                }
            }
            next = self.drain();
        }
        let start = self.at_start.take().unwrap_or_default();
        (self.connected, start, self.counts, self.location)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        anyhow::bail!("usage: whep_viewers N WARMUP_S SECONDS URL [URL...]");
    }
    let n: usize = args[1].parse()?;
    let warmup: f64 = args[2].parse()?;
    let seconds: f64 = args[3].parse()?;
    let urls = &args[4..];
    let http = reqwest::Client::new();
    let begin = Instant::now();
    let start_at = begin + Duration::from_secs_f64(warmup);
    let end_at = start_at + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    let mut failed = 0;
    for k in 0..n {
        match connect(&urls[k % urls.len()], &http).await {
            Ok(v) => tasks.push(tokio::spawn(v.run(start_at, end_at))),
            Err(e) => {
                failed += 1;
                eprintln!("viewer {k}: {e}");
            }
        }
    }
    let setup = begin.elapsed().as_secs_f64();
    let mut fps = Vec::new();
    let mut audio = Vec::new();
    let mut keyframes = Vec::new();
    let mut connected = 0;
    let mut bytes = 0;
    let mut locations = Vec::new();
    for t in tasks {
        let (ok, a, b, location) = t.await?;
        locations.extend(location);
        connected += usize::from(ok);
        fps.push((b.frames - a.frames) as f64 / seconds);
        audio.push((b.audio_packets - a.audio_packets) as f64 / seconds);
        keyframes.push(b.keyframes);
        bytes += b.bytes - a.bytes;
    }
    // End the sessions (as a WHEP player leaving does), so the gateway stops sending at once.
    let deletes = locations.iter().map(|l| http.delete(l).send());
    futures_util::future::join_all(deletes).await;
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let avg = |v: &[f64]| if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 };
    println!(
        "{}",
        serde_json::json!({
            "viewers": n, "failed": failed, "connected": connected, "setup_s": setup,
            "min_fps": if fps.is_empty() { 0.0 } else { min(&fps) }, "avg_fps": avg(&fps),
            "min_audio_pps": if audio.is_empty() { 0.0 } else { min(&audio) },
            "keyframes_min": keyframes.iter().copied().min().unwrap_or(0),
            "bytes_per_s": bytes as f64 / seconds,
        })
    );
    Ok(())
}
