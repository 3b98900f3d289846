//! The UDP socket of one WHEP viewer: bound on the configured address (`webrtc.ip`) in the
//! configured port range, and the address its ICE candidate announces (`webrtc.announce_ip`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

use crate::config::WebrtcSettings;

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("no free UDP port on {ip} in {min}-{max}")]
    NoPort { ip: IpAddr, min: u16, max: u16 },
    #[error("cannot bind a UDP socket on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// A bound socket and the address its candidate carries.
pub struct Bound {
    pub socket: tokio::net::UdpSocket,
    pub local: SocketAddr,
    pub candidate: SocketAddr,
}

/// The address to bind: `webrtc.ip`, or when that is unset the address this host routes from
/// (as webrtcbin offered its interfaces' addresses; loopback when there is no route).
fn bind_ip(settings: &WebrtcSettings) -> IpAddr {
    if let Some(ip) = settings.ip.filter(|ip| !ip.is_unspecified()) {
        return ip;
    }
    let routed = || -> std::io::Result<IpAddr> {
        // Connecting a UDP socket sends nothing; it only picks the source address.
        let probe = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        probe.connect((Ipv4Addr::new(192, 0, 2, 1), 9))?;
        Ok(probe.local_addr()?.ip())
    };
    routed().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

fn bind_one(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, None)?;
    // A cached GOP goes out at once: room for a burst of ~1 MB.
    let _ = socket.set_send_buffer_size(1 << 20);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Binds a viewer's socket as the settings say (must run inside the tokio runtime).
pub fn bind(settings: &WebrtcSettings) -> Result<Bound, SocketError> {
    let ip = bind_ip(settings);
    let socket = if settings.port_min > 0 {
        let (min, max) = (settings.port_min, settings.port_max.max(settings.port_min));
        let span = u32::from(max - min) + 1;
        let start = rand::random::<u32>() % span;
        (0..span)
            .map(|i| min + ((start + i) % span) as u16)
            .find_map(|port| bind_one(SocketAddr::new(ip, port)).ok())
            .ok_or(SocketError::NoPort { ip, min, max })?
    } else {
        let addr = SocketAddr::new(ip, 0);
        bind_one(addr).map_err(|e| SocketError::Bind(addr, e))?
    };
    let local = socket.local_addr().map_err(|e| SocketError::Bind(SocketAddr::new(ip, 0), e))?;
    let socket = tokio::net::UdpSocket::from_std(socket).map_err(|e| SocketError::Bind(local, e))?;
    let candidate = match settings.announce_ip {
        Some(announce) => SocketAddr::new(announce, local.port()),
        None => local,
    };
    Ok(Bound { socket, local, candidate })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_in_the_range_and_announces() {
        let settings = WebrtcSettings {
            ip: Some("127.0.0.1".parse().unwrap()),
            announce_ip: Some("203.0.113.7".parse().unwrap()),
            port_min: 41000,
            port_max: 41003,
            ..WebrtcSettings::default()
        };
        let bound: Vec<Bound> = (0..4).map(|_| bind(&settings).expect("a free port")).collect();
        for b in &bound {
            assert!((41000..=41003).contains(&b.local.port()));
            assert_eq!(b.candidate, SocketAddr::new("203.0.113.7".parse().unwrap(), b.local.port()));
        }
        assert!(matches!(bind(&settings), Err(SocketError::NoPort { .. })), "the range is used up");
    }
}
