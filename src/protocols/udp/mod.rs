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
//! - `ingest` / `publish`: the receiving pipeline and the ingest session.
//! - `egress` / `output`: the sending pipeline and the output session.
//! - `registry`: sessions by id; `http`: the axum handlers; `metrics`: counters for `/metrics`.

mod chains;
mod clock;
mod egress;
mod error;
pub mod filter;
mod frames;
pub use crate::addr_rules as hosts;
mod http;
mod ingest;
mod metrics;
mod output;
pub mod payload;
mod publish;
mod registry;
mod running;
pub mod sdp;
pub mod sdp_out;
#[cfg(test)]
mod sdp_tests;

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
pub use http::routes;
pub use metrics::UdpMetrics;
pub use registry::Kind;

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
    allowed_hosts: Vec<HostRule>,
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
    /// passes its HTTP listen address). Refuses unparsable host rules.
    pub fn new(config: &UdpSettings, default_bind: IpAddr) -> Result<Udp, hosts::BadHostRule> {
        let allowed_hosts = hosts::parse_all(&config.allowed_output_hosts)?;
        Ok(Udp {
            settings: Arc::new(Settings {
                bind: config.bind.unwrap_or(default_bind),
                ingest_timeout: config.ingest_timeout(),
                latency_ms: config.jitter_latency_ms,
                allowed_hosts,
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

    pub fn allowed_hosts(&self) -> &[HostRule] {
        &self.settings.allowed_hosts
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
        self.metrics
            .render(text, self.count(Kind::Ingest), self.count(Kind::Output));
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
        let udp = Udp::new(&c.udp, "0.0.0.0".parse().unwrap()).unwrap();
        assert_eq!(udp.bind(), "10.0.0.5".parse::<IpAddr>().unwrap());
        assert_eq!(
            (udp.ingest_timeout(), udp.latency_ms()),
            (Duration::from_secs(3), 50)
        );
        assert!(hosts::allowed(
            udp.allowed_hosts(),
            "10.1.2.3".parse().unwrap()
        ));
        assert!(!hosts::allowed(
            udp.allowed_hosts(),
            "127.0.0.1".parse().unwrap()
        ));

        let defaults = Udp::new(&Config::default().udp, "127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(
            defaults.bind(),
            "127.0.0.1".parse::<IpAddr>().unwrap(),
            "the HTTP address by default"
        );
        assert_eq!(defaults.ingest_timeout(), Duration::from_secs(10));
        assert!(hosts::allowed(
            defaults.allowed_hosts(),
            "127.0.0.1".parse().unwrap()
        ));
        assert!(!hosts::allowed(
            defaults.allowed_hosts(),
            "192.0.2.1".parse().unwrap()
        ));

        let bad: Config =
            serde_saphyr::from_str("udp: { allowed_output_hosts: [not-an-address] }\n").unwrap();
        assert!(Udp::new(&bad.udp, "127.0.0.1".parse().unwrap()).is_err());
        assert!(serde_saphyr::from_str::<Config>("udp: { bogus: 1 }\n").is_err());
    }
}
