//! The receiving side of one UDP ingest, either way it is done:
//!
//! - light (the codecs [`light::handles`]): the ingest's ports as tokio sockets, read by the
//!   session task itself, each readable socket drained in one go (a [`Batch`] of datagrams
//!   per system call); the datagrams go through
//!   [`LightIngest`] (pure) and the frames come back on the same task. No thread, no
//!   pipeline, no channel.
//! - GStreamer (anything else: VP8, MPEG video, MPEG audio): the rtpbin pipeline of
//!   [`ingest`](super::ingest), frames arriving on a channel.

use std::future::Future;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::batch::{Batch, SLOTS};
use super::error::UdpError;
use super::ingest::Receiver as GstReceiver;
use super::light::{self, LightIngest};
use super::metrics::UdpMetrics;
use super::payload::IngestTrack;
use crate::media::Frame;

/// Frames queued between the GStreamer pipeline's threads and the session task.
const FRAME_QUEUE: usize = 1024;
/// Datagrams read from one socket before the others get their turn.
const BATCH: usize = 64;
/// Largest datagram read (bigger ones are cut, and then malformed).
const MAX_DATAGRAM: usize = 65_536;

/// What [`Receiver::next`] brings.
pub enum Event {
    /// Frames are ready: [`Receiver::take_frames`].
    Frames,
    /// The pipeline failed.
    Error(String),
    /// The media channel closed.
    Closed,
}

/// A running receiver; dropping it frees the ports.
pub enum Receiver {
    Light(Box<Light>),
    Gst { receiver: GstReceiver, frames: mpsc::Receiver<Frame>, pending: Vec<Frame> },
}

impl Receiver {
    /// Binds every port of `tracks` on `bind` and starts receiving.
    pub fn start(
        name: &str,
        tracks: &[IngestTrack],
        bind: IpAddr,
        latency_ms: u32,
        metrics: Arc<UdpMetrics>,
    ) -> Result<Receiver, UdpError> {
        if light::handles(tracks) && std::env::var_os("INTEROP_UDP_INGEST_GSTREAMER").is_none() {
            return Ok(Receiver::Light(Box::new(Light::start(tracks, bind, latency_ms, metrics)?)));
        }
        let (tx, frames) = mpsc::channel(FRAME_QUEUE);
        let receiver = GstReceiver::start(name, tracks, bind, latency_ms, metrics, tx)?;
        Ok(Receiver::Gst { receiver, frames, pending: Vec::new() })
    }

    /// Which path receives: `light` or `gstreamer`.
    pub fn path(&self) -> &'static str {
        match self {
            Receiver::Light(_) => "light",
            Receiver::Gst { .. } => "gstreamer",
        }
    }

    /// Waits for frames (or the end). Cancel-safe: frames already made are kept for the
    /// next call.
    pub async fn next(&mut self) -> Event {
        match self {
            Receiver::Light(light) => {
                light.receive().await;
                Event::Frames
            }
            Receiver::Gst { receiver, frames, pending } => {
                if !pending.is_empty() {
                    return Event::Frames;
                }
                tokio::select! {
                    e = receiver.next_error() => Event::Error(e),
                    frame = frames.recv() => match frame {
                        Some(frame) => {
                            pending.push(frame);
                            Event::Frames
                        }
                        None => Event::Closed,
                    },
                }
            }
        }
    }

    /// The frames made since the last call, in order.
    pub fn take_frames(&mut self) -> std::vec::Drain<'_, Frame> {
        match self {
            Receiver::Light(light) => light.pending.drain(..),
            Receiver::Gst { pending, .. } => pending.drain(..),
        }
    }

    /// How long since the last accepted RTP packet (or since the start, before the first).
    pub fn silence(&self) -> Duration {
        match self {
            Receiver::Light(light) => light.silence(),
            Receiver::Gst { receiver, .. } => receiver.silence(),
        }
    }

    /// Stops receiving; the ports are free once this returns.
    pub async fn stop(&mut self) {
        match self {
            Receiver::Light(light) => light.sockets.clear(),
            Receiver::Gst { receiver, .. } => receiver.stop().await,
        }
    }
}

/// One bound port of the light path.
struct Port {
    track: usize,
    rtcp: bool,
    socket: UdpSocket,
}

/// The light path: sockets, the pure receive logic, the frames it made.
pub struct Light {
    core: LightIngest,
    sockets: Vec<Port>,
    started: Instant,
    /// Since `started`, of the last accepted RTP packet.
    last_packet: Option<Duration>,
    batch: Batch,
    pending: Vec<Frame>,
    /// Armed while a gap holds packets back.
    timer: Pin<Box<tokio::time::Sleep>>,
    timer_armed: bool,
}

impl Light {
    fn start(
        tracks: &[IngestTrack],
        bind: IpAddr,
        latency_ms: u32,
        metrics: Arc<UdpMetrics>,
    ) -> Result<Light, UdpError> {
        let mut sockets = Vec::new();
        for (track, t) in tracks.iter().enumerate() {
            sockets.push(Port { track, rtcp: false, socket: bind_port(bind, t.rtp_port)? });
            if let Some(port) = t.rtcp_port {
                sockets.push(Port { track, rtcp: true, socket: bind_port(bind, port)? });
            }
        }
        Ok(Light {
            core: LightIngest::new(tracks, Duration::from_millis(u64::from(latency_ms)), metrics),
            sockets,
            started: Instant::now(),
            last_packet: None,
            batch: Batch::new(MAX_DATAGRAM),
            pending: Vec::new(),
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            timer_armed: false,
        })
    }

    fn silence(&self) -> Duration {
        let elapsed = self.started.elapsed();
        elapsed.saturating_sub(self.last_packet.unwrap_or_default())
    }

    /// Waits until some socket is readable or the reorder deadline passes, then reads what
    /// is there; returns once frames are pending.
    async fn receive(&mut self) {
        while self.pending.is_empty() {
            let mut ready = 0u64;
            std::future::poll_fn(|cx| {
                for (i, port) in self.sockets.iter().enumerate() {
                    if port.socket.poll_recv_ready(cx).is_ready() {
                        ready |= 1 << i;
                    }
                }
                let timer = self.timer_armed && self.timer.as_mut().poll(cx).is_ready();
                if ready != 0 || timer {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
            for i in 0..self.sockets.len() {
                if ready & (1 << i) != 0 {
                    self.drain_socket(i);
                }
            }
            let now = self.started.elapsed();
            self.core.poll(now, &mut self.pending);
            match self.core.deadline() {
                Some(deadline) => {
                    self.timer.as_mut().reset((self.started + deadline).into());
                    self.timer_armed = true;
                }
                None => self.timer_armed = false,
            }
        }
    }

    fn drain_socket(&mut self, i: usize) {
        for _ in 0..BATCH / SLOTS {
            let Some(port) = self.sockets.get(i) else { return };
            let (track, rtcp) = (port.track, port.rtcp);
            let empty = self.batch.read(&port.socket);
            let now = self.started.elapsed();
            for data in self.batch.datagrams() {
                if rtcp {
                    self.core.on_rtcp(track, data);
                } else if self.core.on_rtp(track, data, now, &mut self.pending) {
                    self.last_packet = Some(now);
                }
            }
            if empty {
                return;
            }
        }
    }
}

/// Binds one UDP port (never shared: a port bound twice would split the packets).
fn bind_port(bind: IpAddr, port: u16) -> Result<UdpSocket, UdpError> {
    let addr = SocketAddr::new(bind, port);
    let refused = |e: std::io::Error| match e.kind() {
        ErrorKind::AddrInUse => UdpError::PortInUse(format!("UDP port {port} on {bind} is already in use")),
        _ => UdpError::Bind(format!("cannot bind UDP port {port} on {bind}: {e}")),
    };
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(refused)?;
    let _ = socket.set_recv_buffer_size(1 << 20);
    socket.set_nonblocking(true).map_err(refused)?;
    socket.bind(&addr.into()).map_err(refused)?;
    UdpSocket::from_std(socket.into()).map_err(refused)
}
