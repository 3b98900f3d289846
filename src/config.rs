//! The gateway's configuration: an optional YAML file (`--config`), overridden by the command
//! line. Everything has a default, so `interop-gateway serve` runs with no file at all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::hub::HubConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: SocketAddr,
    pub rtmp: SocketAddr,
    /// The control API and `/metrics` on their own address, apart from the media port
    /// (none: on `http`).
    pub api: Option<SocketAddr>,
    pub matrix: PathBuf,
    pub pipelines: PathBuf,
    pub hub: HubSettings,
    pub relay: RelaySettings,
    /// Pushes started at boot: each relays `stream` to `url` whenever it is live.
    pub pushes: Vec<RelayDecl>,
    /// Pulls started at boot: each makes `url` the local publisher of `stream`.
    pub pulls: Vec<RelayDecl>,
    /// WHIP/WHEP sessions: ICE addresses, UDP ports, timeouts.
    pub webrtc: WebrtcSettings,
    /// Plain RTP (UDP) ingest and outputs: bind address, timeouts, allowed output hosts.
    pub udp: UdpSettings,
    /// What a peer may make the gateway hold: declared lengths, buffers, connections, timeouts.
    pub limits: LimitsSettings,
    /// Who may publish, play and call the API (see `auth`).
    pub auth: crate::auth::AuthSettings,
    /// Several nodes coordinated through Redis (none: one node alone).
    pub cluster: Option<crate::cluster::ClusterSettings>,
    /// HLS out: segment and part targets, playlist length, packager idle time.
    pub hls: crate::protocols::hls::HlsSettings,
    /// Recordings: directory, file length, streams recorded by rule.
    pub recording: crate::record::settings::RecordingSettings,
    /// Highlight clips: directory, live window, longest clip.
    pub clips: crate::record::settings::ClipSettings,
}

/// The `limits:` section: bounds against hostile or broken peers. A peer that passes one
/// is refused (its connection closed, or an HTTP error) with a log line naming the limit.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSettings {
    /// Largest RTMP message (and H5 PES or MPEG-1 picture) a publisher may declare or send.
    pub max_message_bytes: usize,
    /// Bytes one connection may hold in messages or PES packets still arriving.
    pub connection_buffer_bytes: usize,
    /// Largest RTMP message before the connection publishes (commands only).
    pub max_command_bytes: usize,
    /// Largest HTTP request body of the API, WHIP/WHEP SDP and WebSocket message.
    pub http_body_bytes: usize,
    /// Connections held at once per listener (RTMP, HTTP); 0: from the open-files limit.
    pub max_rtmp_connections: usize,
    pub max_http_connections: usize,
    /// Streams being published at once (every protocol); a publisher past it is refused
    /// (0: no limit).
    pub max_publishers: usize,
    /// Connections one client address may hold on a listener (loopback is not limited;
    /// 0: no limit).
    pub max_connections_per_address: usize,
    /// An HTTP client must send a request's headers within this, also between requests.
    pub http_header_timeout_seconds: f64,
    /// An HTTP request body (JSON, SDP) must arrive whole within this, else 408 (the H5 POST,
    /// a stream, is bounded by its silence instead).
    pub http_body_timeout_seconds: f64,
}

impl Default for LimitsSettings {
    fn default() -> Self {
        LimitsSettings {
            max_message_bytes: 4 << 20,
            connection_buffer_bytes: 6 << 20,
            max_command_bytes: 64 << 10,
            http_body_bytes: 256 << 10,
            max_rtmp_connections: 0,
            max_http_connections: 0,
            max_publishers: 1000,
            max_connections_per_address: 256,
            http_header_timeout_seconds: 10.0,
            http_body_timeout_seconds: 10.0,
        }
    }
}

impl LimitsSettings {
    pub fn http_header_timeout(&self) -> Duration {
        match secs(self.http_header_timeout_seconds) {
            d if d.is_zero() => Duration::from_secs(10),
            d => d,
        }
    }

    pub fn http_body_timeout(&self) -> Duration {
        match secs(self.http_body_timeout_seconds) {
            d if d.is_zero() => Duration::from_secs(10),
            d => d,
        }
    }

    /// The RTMP chunk decoder's bounds before and after a connection publishes.
    pub fn rtmp(&self) -> crate::protocols::rtmp::chunk::ChunkLimits {
        let buffer = self.connection_buffer_bytes.max(self.max_message_bytes);
        crate::protocols::rtmp::chunk::ChunkLimits {
            max_message: u32::try_from(self.max_message_bytes).unwrap_or(u32::MAX),
            max_buffer: buffer,
            max_command: u32::try_from(self.max_command_bytes.min(self.max_message_bytes)).unwrap_or(u32::MAX),
        }
    }

    /// The H5 (MPEG-TS) ingest's bounds.
    pub fn ts(&self) -> crate::protocols::h5::ts::demux::TsLimits {
        crate::protocols::h5::ts::demux::TsLimits {
            max_pes: self.max_message_bytes,
            max_buffer: self.connection_buffer_bytes.max(self.max_message_bytes),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubSettings {
    /// Seconds an unused conversion lives on after its last consumer leaves.
    pub grace_seconds: f64,
    /// Times a consumer may fall behind before it is disconnected.
    pub max_lag_events: u32,
    /// Frames per track a consumer may be behind before it has lagged.
    pub queue_frames: usize,
    /// The longest GOP kept for joiners: a new viewer never starts further back than this.
    pub max_gop_seconds: f64,
    /// Seconds a stream whose publisher left keeps its consumers waiting for a publisher to
    /// continue it (0: the stream ends with its publisher).
    pub reconnect_grace_seconds: f64,
    /// A viewer whose connection takes nothing for this long is disconnected.
    pub write_stall_seconds: f64,
    /// HTTP-FLV and RTMP viewers: the least time between two writes to one viewer, what
    /// arrives meanwhile going out in one write (SRS's `mw_latency`). Fewer system calls for
    /// up to this much added latency; 0 (the default): each video frame is written as it
    /// arrives, the audio beside it with it.
    pub merge_window_seconds: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelaySettings {
    /// First retry delay after a failure; doubles up to `retry_max_seconds`.
    pub retry_min_seconds: f64,
    pub retry_max_seconds: f64,
    /// Give up after this many failed attempts in a row (0: never).
    pub max_attempts: u32,
    pub connect_timeout_seconds: f64,
    /// A push live on a backup destination checks its primary this often, and moves back
    /// to it once it accepts the stream.
    pub failback_seconds: f64,
    /// Where pushes and pulls may dial: host names, addresses, CIDR networks. Empty: any
    /// host but loopback, link-local and unspecified addresses.
    pub allowed_hosts: Vec<String>,
    /// A push whose destination takes nothing for this long fails over to the next one.
    pub write_stall_seconds: f64,
}

/// The `webrtc:` section: where ICE binds, what the SDP announces, and session timeouts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebrtcSettings {
    /// The address ICE binds to and offers (`--webrtc-ip`); none: every interface.
    pub ip: Option<std::net::IpAddr>,
    /// The address written into SDP candidates instead of `ip` (NAT 1:1); default: `ip`.
    pub announce_ip: Option<std::net::IpAddr>,
    /// The UDP port range ICE uses (0 and 0: any port).
    pub port_min: u16,
    pub port_max: u16,
    /// How often a WebRTC publisher is asked for a keyframe while RTMP/mini/CDN consumers watch.
    pub keyframe_interval_seconds: f64,
    /// A session whose ICE has not connected after this long is given up.
    pub ice_timeout_seconds: f64,
    /// A WHIP publisher that sends no media for this long ends its stream.
    pub publisher_timeout_seconds: f64,
    /// Most m-lines an offer may carry (each costs webrtcbin sockets and threads); 400 past it.
    pub max_media_per_offer: usize,
    /// Sessions answered but not yet connected, per client address (429 past it) and in
    /// total (503 past it): each holds sockets and threads until ICE connects or times out.
    pub max_pending_per_address: usize,
    pub max_pending: usize,
    /// What sends to WHEP viewers: `webrtcbin` (the default: one GStreamer webrtcbin pipeline
    /// per viewer) or `str0m` (RTP made once per track and shared, each viewer a sans-IO str0m
    /// session, driven with the other viewers by one task per core: several times cheaper per
    /// viewer, but its A/V offset on GStreamer receivers is not yet reliably within the 40 ms
    /// target, see docs/whep-egress.md).
    pub egress: WhepEgress,
}

/// The WHEP sender (`webrtc.egress`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhepEgress {
    Str0m,
    #[default]
    Webrtcbin,
}

impl Default for WebrtcSettings {
    fn default() -> Self {
        WebrtcSettings {
            ip: None,
            announce_ip: None,
            port_min: 0,
            port_max: 0,
            keyframe_interval_seconds: 2.0,
            ice_timeout_seconds: 15.0,
            publisher_timeout_seconds: 10.0,
            max_media_per_offer: 3,
            max_pending_per_address: 10,
            max_pending: 50,
            egress: WhepEgress::default(),
        }
    }
}

impl WebrtcSettings {
    pub fn keyframe_interval(&self) -> Duration {
        secs(self.keyframe_interval_seconds)
    }

    pub fn ice_timeout(&self) -> Duration {
        secs(self.ice_timeout_seconds)
    }

    pub fn publisher_timeout(&self) -> Duration {
        secs(self.publisher_timeout_seconds)
    }

    /// The address candidates carry in SDP, when it differs from the bound one.
    pub fn announced(&self) -> Option<std::net::IpAddr> {
        self.announce_ip.filter(|a| Some(*a) != self.ip)
    }
}

/// The `udp:` section: plain RTP ingest (ports from the sender's SDP) and outputs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UdpSettings {
    /// The address ingest ports are bound on; none: the HTTP listen address.
    pub bind: Option<std::net::IpAddr>,
    /// An ingest that receives no RTP for this long ends its stream.
    pub ingest_timeout_seconds: f64,
    /// The jitter buffer's latency (reordering and lip sync happen within it).
    pub jitter_latency_ms: u32,
    /// The ports an ingest's SDP may name (RTP and RTCP), inclusive: nothing else is bound.
    pub ingest_port_min: u16,
    pub ingest_port_max: u16,
    /// Deprecated: outputs are relays and go where `relay.allowed_hosts` allows. Addresses
    /// and networks listed here are allowed too (as in earlier versions; `*`: anywhere).
    pub allowed_output_hosts: Vec<String>,
}

impl Default for UdpSettings {
    fn default() -> Self {
        UdpSettings {
            bind: None,
            ingest_timeout_seconds: 10.0,
            jitter_latency_ms: 200,
            ingest_port_min: 1024,
            ingest_port_max: 65535,
            allowed_output_hosts: Vec::new(),
        }
    }
}

impl UdpSettings {
    pub fn ingest_timeout(&self) -> Duration {
        secs(self.ingest_timeout_seconds)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayDecl {
    pub stream: String,
    pub url: String,
    /// Pushes only: destinations tried in order when the current one fails.
    #[serde(default)]
    pub backup_urls: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http: ([0, 0, 0, 0], 8080).into(),
            rtmp: ([0, 0, 0, 0], 1935).into(),
            api: None,
            matrix: "matrix.yaml".into(),
            pipelines: "pipelines".into(),
            hub: HubSettings::default(),
            relay: RelaySettings::default(),
            pushes: Vec::new(),
            pulls: Vec::new(),
            webrtc: WebrtcSettings::default(),
            udp: UdpSettings::default(),
            limits: LimitsSettings::default(),
            auth: crate::auth::AuthSettings::default(),
            cluster: None,
            hls: crate::protocols::hls::HlsSettings::default(),
            recording: Default::default(),
            clips: Default::default(),
        }
    }
}

impl Default for HubSettings {
    fn default() -> Self {
        let d = HubConfig::default();
        HubSettings {
            grace_seconds: d.grace.as_secs_f64(),
            max_lag_events: d.max_lag_events,
            queue_frames: d.limits.queue_frames,
            max_gop_seconds: d.limits.max_gop_age.as_millis() as f64 / 1000.0,
            reconnect_grace_seconds: d.reconnect_grace.as_secs_f64(),
            write_stall_seconds: d.write_stall.as_secs_f64(),
            merge_window_seconds: d.batching.merge_window.as_secs_f64(),
        }
    }
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings {
            retry_min_seconds: 1.0,
            retry_max_seconds: 30.0,
            max_attempts: 0,
            connect_timeout_seconds: 5.0,
            failback_seconds: 30.0,
            allowed_hosts: Vec::new(),
            write_stall_seconds: crate::hub::egress::WRITE_STALL.as_secs_f64(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: {reason}")]
    Parse { path: String, reason: String },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Read { path: path.display().to_string(), reason: e.to_string() })?;
        serde_saphyr::from_str(&text)
            .map_err(|e| ConfigError::Parse { path: path.display().to_string(), reason: e.to_string() })
    }

    pub fn hub_config(&self) -> HubConfig {
        let mut hub = HubConfig::default();
        hub.grace = secs(self.hub.grace_seconds);
        hub.max_lag_events = self.hub.max_lag_events;
        hub.limits.queue_frames = self.hub.queue_frames.max(16);
        hub.limits.max_gop_age =
            crate::media::Ts::from_millis((secs(self.hub.max_gop_seconds.min(86_400.0)).as_millis() as i64).max(100));
        hub.reconnect_grace = secs(self.hub.reconnect_grace_seconds);
        hub.write_stall = stall_or_default(self.hub.write_stall_seconds);
        // At most 2 s: a longer window would only turn viewers into laggards.
        hub.batching.merge_window = secs(self.hub.merge_window_seconds.min(2.0));
        hub.max_publishers = self.limits.max_publishers;
        hub
    }
}

impl RelaySettings {
    pub fn retry_min(&self) -> Duration {
        secs(self.retry_min_seconds)
    }

    pub fn failback(&self) -> Duration {
        secs(self.failback_seconds.max(0.1))
    }

    pub fn retry_max(&self) -> Duration {
        secs(self.retry_max_seconds.max(self.retry_min_seconds))
    }

    pub fn connect_timeout(&self) -> Duration {
        secs(self.connect_timeout_seconds)
    }

    pub fn write_stall(&self) -> Duration {
        stall_or_default(self.write_stall_seconds)
    }
}

/// A write-stall bound from the file; 0 (or less) means the default.
fn stall_or_default(seconds: f64) -> Duration {
    match secs(seconds) {
        d if d.is_zero() => crate::hub::egress::WRITE_STALL,
        d => d,
    }
}

/// The longest duration a setting may give (longer ones mean "for ever" and act as a year, so
/// `Instant + duration` cannot overflow).
const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// Seconds from the file as a duration: negative and NaN as 0, huge values (`1e30`, which
/// `Duration::from_secs_f64` panics on) capped at [`MAX_SECONDS`].
fn secs(s: f64) -> Duration {
    let s = if s.is_nan() || s <= 0.0 { 0.0 } else { s.min(MAX_SECONDS) };
    Duration::from_secs_f64(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_file_and_refuses_unknown_keys() {
        let c: Config = serde_saphyr::from_str(
            "rtmp: 127.0.0.1:1936\nhub: { grace_seconds: 0.5 }\npushes:\n  - { stream: k, url: rtmp://h/live/k }\n",
        )
        .unwrap();
        assert_eq!(c.rtmp.port(), 1936);
        assert_eq!(c.hub_config().grace, Duration::from_millis(500));
        assert_eq!(c.pushes[0].stream, "k");
        assert!(serde_saphyr::from_str::<Config>("bogus: 1\n").is_err());
    }

    /// The README's two configuration examples are what users copy: both must load, and the
    /// access-control one must build a gateway's admission policy.
    #[test]
    fn the_readme_examples_load() {
        let readme = include_str!("../README.md");
        let block = |start: &str| -> String {
            let rest = readme.split(&format!("```yaml\n{start}")).nth(1).expect("example in README");
            format!("{start}{}", rest.split("```").next().unwrap_or(""))
        };
        let full: Config = serde_saphyr::from_str(&block("http:")).expect("README configuration");
        assert_eq!(full.limits.max_connections_per_address, 256);
        let auth: Config = serde_saphyr::from_str(&block("auth:")).expect("README access-control example");
        assert_eq!(auth.relay.allowed_hosts, ["cdn.example.com", "10.0.0.0/8"]);
        assert_eq!((auth.udp.ingest_port_min, auth.udp.ingest_port_max), (30000, 30999));
        crate::auth::Admission::new(&auth.auth).expect("the example's auth section compiles");
    }

    /// Fuzz finding (fuzz/corpus/config/regress-huge-seconds.yaml): a huge number of seconds
    /// made `Duration::from_secs_f64` panic when the server read the setting.
    #[test]
    fn huge_and_odd_seconds_do_not_panic() {
        let c: Config = serde_saphyr::from_str(
            "hub: { grace_seconds: 1e300 }\nrelay: { retry_max_seconds: 99999999999999999999999999, connect_timeout_seconds: .inf }\nwebrtc: { ice_timeout_seconds: -1, publisher_timeout_seconds: .nan }\n",
        )
        .unwrap();
        let year = Duration::from_secs(365 * 24 * 3600);
        assert_eq!(c.hub_config().grace, year);
        assert_eq!((c.relay.retry_max(), c.relay.connect_timeout()), (year, year));
        assert_eq!((c.webrtc.ice_timeout(), c.webrtc.publisher_timeout()), (Duration::ZERO, Duration::ZERO));
    }

    #[test]
    fn limits_section() {
        let c: Config = serde_saphyr::from_str(
            "limits: { max_message_bytes: 1000, connection_buffer_bytes: 500, max_rtmp_connections: 7 }\n",
        )
        .unwrap();
        assert_eq!(c.limits.max_rtmp_connections, 7);
        let rtmp = c.limits.rtmp();
        // The buffer can always hold one whole message; commands stay below messages.
        assert_eq!((rtmp.max_message, rtmp.max_buffer, rtmp.max_command), (1000, 1000, 1000));
        assert_eq!(Config::default().limits.http_header_timeout(), Duration::from_secs(10));
        assert!(serde_saphyr::from_str::<Config>("limits: { max_bytes: 1 }\n").is_err());
    }

    #[test]
    fn webrtc_section() {
        let c: Config = serde_saphyr::from_str(
            "webrtc: { ip: 10.0.0.5, announce_ip: 203.0.113.7, port_min: 20000, port_max: 20100, ice_timeout_seconds: 3 }\n",
        )
        .unwrap();
        assert_eq!(c.webrtc.ip, Some("10.0.0.5".parse().unwrap()));
        assert_eq!(c.webrtc.announced(), Some("203.0.113.7".parse().unwrap()));
        assert_eq!((c.webrtc.port_min, c.webrtc.port_max), (20000, 20100));
        assert_eq!(c.webrtc.ice_timeout(), Duration::from_secs(3));
        assert_eq!(c.webrtc.keyframe_interval(), Duration::from_secs(2));
        assert_eq!(Config::default().webrtc.announced(), None);
    }
}
