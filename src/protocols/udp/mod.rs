//! Plain RTP over UDP, described by SDP, both ways.
//!
//! - Ingest: `POST /api/v1/streams/{stream}/udp-ingest` with the SDP of the RTP being sent to
//!   the gateway; the gateway binds the SDP's ports on `udp.bind` and publishes the stream
//!   (protocol `udp`, transport `rtp`). `DELETE` on the returned location stops it; no RTP
//!   for `udp.ingest_timeout_seconds` ends it.
//! - Outputs: `POST /api/v1/streams/{stream}/udp-outputs {"host","port"}` sends the stream as
//!   RTP (video to `port`, audio to `port+2`, RTCP on the port after each) to an allowed host
//!   and answers with the SDP a receiver needs.
//!
//! Modules, pure ones first:
//! - [`sdp`]: reads an SDP; [`payload`]: what of it the gateway can receive; [`sdp_out`]: the
//!   SDP of an output; [`filter`]: which datagrams reach the jitter buffer; [`hosts`]: where
//!   outputs may go; `clock`: output timestamps; `chains`: the GStreamer chain per codec.
//! - `depay`, `reorder`, `sync`, `light`: the light receive path (pure): depacketizers, the
//!   reorder buffer, RTP time → clock with lip sync, and all of it per ingest.
//! - `receiver`: an ingest's ports, read by the light path (H.264, Opus, AAC, PCMU/PCMA) or
//!   by `ingest`, the GStreamer receiving pipeline (the other codecs); `publish`: the ingest
//!   session.
//! - `egress` / `output`: the sending pipeline and the output session.
//! - `registry`: sessions by id; `http`: the axum handlers; `metrics`: counters for `/metrics`.

mod batch;
mod chains;
mod clock;
mod depay;
mod egress;
mod error;
pub mod filter;
mod frames;
pub use crate::addr_rules as hosts;
mod http;
mod ingest;
pub mod light;
mod metrics;
mod output;
pub mod payload;
mod publish;
mod receiver;
mod registry;
mod reorder;
mod running;
pub mod sdp;
pub mod sdp_out;
#[cfg(test)]
mod sdp_tests;
mod sync;

/// What the UDP API handlers and sessions get from the gateway.
#[derive(Clone)]
pub struct UdpCtx {
    pub hub: crate::hub::Hub,
    pub udp: Udp,
    pub shutdown: tokio_util::sync::CancellationToken,
}

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub use error::UdpError;
pub use http::{routes, Doc};
pub use metrics::UdpMetrics;
pub use registry::Kind;

use crate::auth::relay_targets::RelayTargets;
use crate::config::UdpSettings;
use hosts::HostRule;
use registry::Registry;

/// A started ingest or output: its resource, the JSON describing it and, for outputs, the SDP.
pub struct Started {
    pub location: String,
    pub body: serde_json::Value,
    pub sdp: Option<String>,
}

struct Settings {
    bind: IpAddr,
    ingest_timeout: Duration,
    latency_ms: u32,
    /// The ports ingests may bind.
    ingest_ports: std::ops::RangeInclusive<u16>,
    /// `udp.allowed_output_hosts` (deprecated): allowed besides `targets`.
    allowed_hosts: Vec<HostRule>,
    /// Where relays may send (`relay.allowed_hosts`): outputs are relays.
    targets: Arc<RelayTargets>,
}

/// The gateway's UDP side: settings, sessions and counters (cheap to clone).
#[derive(Clone)]
pub struct Udp {
    settings: Arc<Settings>,
    registry: Registry,
    metrics: Arc<UdpMetrics>,
}

impl Udp {
    /// `default_bind` is used when the configuration names no bind address (the gateway
    /// passes its HTTP listen address); outputs send where `targets` allows. Refuses
    /// unparsable host rules.
    pub fn new(
        config: &UdpSettings,
        default_bind: IpAddr,
        targets: Arc<RelayTargets>,
    ) -> Result<Udp, hosts::BadHostRule> {
        let allowed_hosts = hosts::parse_all(&config.allowed_output_hosts)?;
        if !allowed_hosts.is_empty() {
            tracing::warn!("udp.allowed_output_hosts is deprecated: UDP outputs are relays, list their hosts in relay.allowed_hosts");
        }
        Ok(Udp {
            settings: Arc::new(Settings {
                bind: config.bind.unwrap_or(default_bind),
                ingest_timeout: config.ingest_timeout(),
                latency_ms: config.jitter_latency_ms,
                ingest_ports: config.ingest_port_min.max(1)..=config.ingest_port_max,
                allowed_hosts,
                targets,
            }),
            registry: Registry::default(),
            metrics: Arc::new(UdpMetrics::default()),
        })
    }

    /// The address ingest ports are bound on.
    pub fn bind(&self) -> IpAddr {
        self.settings.bind
    }

    pub fn ingest_timeout(&self) -> Duration {
        self.settings.ingest_timeout
    }

    /// The jitter buffer's latency.
    pub fn latency_ms(&self) -> u32 {
        self.settings.latency_ms
    }

    /// Refuses an ingest whose SDP names a port outside `udp.ingest_port_min..=max`.
    pub fn check_ingest_ports(&self, ports: impl IntoIterator<Item = u16>) -> Result<(), UdpError> {
        let range = &self.settings.ingest_ports;
        match ports.into_iter().find(|p| !range.contains(p)) {
            Some(port) => Err(UdpError::PortNotAllowed(format!(
                "port {port} is outside the ports UDP ingests may bind ({}-{}, udp.ingest_port_min/max)",
                range.start(),
                range.end()
            ))),
            None => Ok(()),
        }
    }

    /// Whether an output may send to `host` (resolved to `addresses`); else why not.
    pub fn check_output_host(&self, host: &str, addresses: &[IpAddr]) -> Result<(), String> {
        let legacy = &self.settings.allowed_hosts;
        if !legacy.is_empty() && !addresses.is_empty() && addresses.iter().all(|a| hosts::allowed(legacy, *a)) {
            return Ok(());
        }
        self.settings.targets.check(host, addresses)
    }

    pub fn metrics(&self) -> &Arc<UdpMetrics> {
        &self.metrics
    }

    fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Sessions of this kind running now.
    pub fn count(&self, kind: Kind) -> usize {
        self.registry.count(kind)
    }

    /// Waits (bounded) until every ingest and output has ended and freed its pipeline and
    /// ports; true if they all have.
    pub async fn wait_closed(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.registry.count(Kind::Ingest) + self.registry.count(Kind::Output) > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Appends the UDP counters to a `/metrics` text.
    pub fn render_metrics(&self, text: &mut String) {
        self.metrics.render(text, self.count(Kind::Ingest), self.count(Kind::Output));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_udp_section_configures_bind_timeout_and_hosts() {
        let c: Config = serde_saphyr::from_str(
            "udp: { bind: 10.0.0.5, ingest_timeout_seconds: 3, jitter_latency_ms: 50, allowed_output_hosts: [10.1.0.0/16] }\n",
        )
        .unwrap();
        let open = Arc::new(RelayTargets::default());
        let udp = Udp::new(&c.udp, "0.0.0.0".parse().unwrap(), open.clone()).unwrap();
        assert_eq!(udp.bind(), "10.0.0.5".parse::<IpAddr>().unwrap());
        assert_eq!((udp.ingest_timeout(), udp.latency_ms()), (Duration::from_secs(3), 50));
        let ip = |s: &str| vec![s.parse::<IpAddr>().unwrap()];
        // The deprecated list still allows; relay.allowed_hosts (empty: not internal) too.
        assert!(udp.check_output_host("a", &ip("10.1.2.3")).is_ok());
        assert!(udp.check_output_host("b", &ip("198.51.100.7")).is_ok());
        assert!(udp.check_output_host("c", &ip("127.0.0.1")).is_err());

        let defaults = Udp::new(&Config::default().udp, "127.0.0.1".parse().unwrap(), open).unwrap();
        assert_eq!(defaults.bind(), "127.0.0.1".parse::<IpAddr>().unwrap(), "the HTTP address by default");
        assert_eq!(defaults.ingest_timeout(), Duration::from_secs(10));
        let refused = defaults.check_output_host("127.0.0.1", &ip("127.0.0.1")).unwrap_err();
        assert!(refused.contains("relay.allowed_hosts"), "{refused}");
        let listed = Arc::new(RelayTargets::new(&["127.0.0.1".into()]).unwrap());
        let local = Udp::new(&Config::default().udp, "127.0.0.1".parse().unwrap(), listed).unwrap();
        assert!(local.check_output_host("127.0.0.1", &ip("127.0.0.1")).is_ok());
        assert!(local.check_output_host("x", &ip("198.51.100.7")).is_err());

        assert!(defaults.check_ingest_ports([5004, 5005]).is_ok());
        assert!(
            matches!(defaults.check_ingest_ports([5004, 80]), Err(UdpError::PortNotAllowed(m)) if m.contains("port 80"))
        );
        let narrow: Config =
            serde_saphyr::from_str("udp: { ingest_port_min: 30000, ingest_port_max: 30009 }\n").unwrap();
        let narrow = Udp::new(&narrow.udp, "127.0.0.1".parse().unwrap(), Arc::new(RelayTargets::default())).unwrap();
        assert!(narrow.check_ingest_ports([30000, 30009]).is_ok());
        assert!(narrow.check_ingest_ports([30010]).is_err());

        let bad: Config = serde_saphyr::from_str("udp: { allowed_output_hosts: [not-an-address] }\n").unwrap();
        assert!(Udp::new(&bad.udp, "127.0.0.1".parse().unwrap(), Arc::new(RelayTargets::default())).is_err());
        assert!(serde_saphyr::from_str::<Config>("udp: { bogus: 1 }\n").is_err());
    }
}
