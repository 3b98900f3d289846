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
    /// Seconds a stream whose publisher left keeps its consumers waiting for a publisher to
    /// continue it (0: the stream ends with its publisher).
    pub reconnect_grace_seconds: f64,
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
    /// Where outputs may send RTP: addresses and CIDR networks (`*`: anywhere).
    pub allowed_output_hosts: Vec<String>,
}

impl Default for UdpSettings {
    fn default() -> Self {
        UdpSettings {
            bind: None,
            ingest_timeout_seconds: 10.0,
            jitter_latency_ms: 200,
            allowed_output_hosts: vec!["127.0.0.0/8".into(), "::1".into()],
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http: ([0, 0, 0, 0], 8080).into(),
            rtmp: ([0, 0, 0, 0], 1935).into(),
            matrix: "matrix.yaml".into(),
            pipelines: "pipelines".into(),
            hub: HubSettings::default(),
            relay: RelaySettings::default(),
            pushes: Vec::new(),
            pulls: Vec::new(),
            webrtc: WebrtcSettings::default(),
            udp: UdpSettings::default(),
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
            reconnect_grace_seconds: d.reconnect_grace.as_secs_f64(),
        }
    }
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings { retry_min_seconds: 1.0, retry_max_seconds: 30.0, max_attempts: 0, connect_timeout_seconds: 5.0 }
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
        hub.reconnect_grace = secs(self.hub.reconnect_grace_seconds);
        hub
    }
}

impl RelaySettings {
    pub fn retry_min(&self) -> Duration {
        secs(self.retry_min_seconds)
    }

    pub fn retry_max(&self) -> Duration {
        secs(self.retry_max_seconds.max(self.retry_min_seconds))
    }

    pub fn connect_timeout(&self) -> Duration {
        secs(self.connect_timeout_seconds)
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(if s.is_finite() && s > 0.0 { s } else { 0.0 })
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
