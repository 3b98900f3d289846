//! ICE setup of one webrtcbin, before any description is set: the address libnice binds (and
//! so offers), UDP only, and the port range.
//!
//! By default libnice gathers every interface address and never the loopback one. Adding a
//! local address to the agent makes it the only host candidate. GStreamer's ICE object
//! (`GstWebRTCNice`) exposes libnice's `nice_agent_add_local_address()` as its
//! `add-local-ip-address` action signal, so no FFI is needed for it.

use std::net::IpAddr;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_webrtc as gst_webrtc;

use crate::config::WebrtcSettings;

#[derive(Debug, thiserror::Error)]
pub enum IceError {
    #[error("webrtcbin has no ICE agent")]
    NoAgent,
    #[error("the ICE agent refused the local address {0}")]
    Address(IpAddr),
    #[error("invalid UDP port range {min}-{max}")]
    PortRange { min: u16, max: u16 },
}

/// Checks the settings once, at startup.
pub fn check(settings: &WebrtcSettings) -> Result<(), IceError> {
    let (min, max) = (settings.port_min, settings.port_max);
    if (min, max) != (0, 0) && (min == 0 || max < min) {
        return Err(IceError::PortRange { min, max });
    }
    Ok(())
}

/// Applies the settings to `webrtcbin`'s ICE agent.
pub fn configure(webrtcbin: &gst::Element, settings: &WebrtcSettings) -> Result<(), IceError> {
    check(settings)?;
    let ice = webrtcbin
        .find_property("ice-agent")
        .and_then(|_| webrtcbin.property::<Option<gst_webrtc::WebRTCICE>>("ice-agent"))
        .ok_or(IceError::NoAgent)?;
    if let Some(ip) = settings.ip.filter(|ip| !ip.is_unspecified()) {
        let added: bool = ice.emit_by_name("add-local-ip-address", &[&ip.to_string()]);
        if !added {
            return Err(IceError::Address(ip));
        }
    }
    if ice.find_property("ice-tcp").is_some() {
        ice.set_property("ice-tcp", false);
    }
    // libnice asks the LAN's router for a UPnP port mapping and holds "gathering complete"
    // back until it answers or `upnp-timeout` (200 ms) passes: every answer waited that long.
    // A gateway announces its address itself (`ip`, `announce_ip`); no router maps for it.
    if let Some(agent) = ice.find_property("agent").and_then(|_| ice.property::<Option<glib::Object>>("agent")) {
        if agent.find_property("upnp").is_some() {
            agent.set_property("upnp", false);
        }
    }
    if settings.port_min > 0 {
        // min first: the agent keeps min <= max, and the default max is 65535.
        ice.set_property("min-rtp-port", u32::from(settings.port_min));
        ice.set_property("max-rtp-port", u32::from(settings.port_max));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        let mut s = WebrtcSettings::default();
        assert!(check(&s).is_ok());
        (s.port_min, s.port_max) = (20000, 20100);
        assert!(check(&s).is_ok());
        (s.port_min, s.port_max) = (20100, 20000);
        assert!(check(&s).is_err());
        (s.port_min, s.port_max) = (0, 20000);
        assert!(check(&s).is_err());
    }

    #[test]
    fn agent_takes_the_address_and_ports() {
        crate::pipeline::init();
        let webrtcbin = gst::ElementFactory::make("webrtcbin").build().unwrap();
        let settings = WebrtcSettings {
            ip: Some("127.0.0.1".parse().unwrap()),
            port_min: 31000,
            port_max: 31010,
            ..WebrtcSettings::default()
        };
        configure(&webrtcbin, &settings).unwrap();
        let ice: gst_webrtc::WebRTCICE = webrtcbin.property("ice-agent");
        assert_eq!(ice.property::<u32>("min-rtp-port"), 31000);
        assert_eq!(ice.property::<u32>("max-rtp-port"), 31010);
        assert!(!ice.property::<bool>("ice-tcp"));
        let agent: glib::Object = ice.property("agent");
        assert!(!agent.property::<bool>("upnp"), "UPnP discovery holds every answer back by its timeout");
    }
}
