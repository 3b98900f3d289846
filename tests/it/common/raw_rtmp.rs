//! A raw TCP client for the RTMP port, to send handshakes and chunks byte by byte.

use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// RTMP handshake block size (C1, S1, C2, S2).
pub const HANDSHAKE_SIZE: usize = 1536;

/// A raw connection to an RTMP server.
pub struct RawRtmp {
    stream: TcpStream,
}

impl RawRtmp {
    /// Connects to `addr` (`127.0.0.1:PORT`).
    pub async fn connect(addr: &str) -> anyhow::Result<RawRtmp> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .with_context(|| format!("connect {addr}: timeout"))?
            .with_context(|| format!("connect {addr}"))?;
        Ok(RawRtmp { stream })
    }

    /// Connects with a small receive buffer (set before connecting, so the window stays
    /// small): a client that then stops reading stalls the server's writes quickly.
    pub async fn connect_with_recv_buffer(addr: &str, recv_buffer: u32) -> anyhow::Result<RawRtmp> {
        let addr: std::net::SocketAddr = addr.parse().with_context(|| format!("address {addr}"))?;
        let socket = tokio::net::TcpSocket::new_v4().context("socket")?;
        socket.set_recv_buffer_size(recv_buffer).context("SO_RCVBUF")?;
        let stream = tokio::time::timeout(Duration::from_secs(5), socket.connect(addr))
            .await
            .with_context(|| format!("connect {addr}: timeout"))?
            .with_context(|| format!("connect {addr}"))?;
        Ok(RawRtmp { stream })
    }

    /// Connects with a small send buffer (fixed, so the kernel does not grow it): what the
    /// client could write before the server closed is then what the server read plus at most
    /// its own receive buffer and this.
    pub async fn connect_with_send_buffer(addr: &str, send_buffer: u32) -> anyhow::Result<RawRtmp> {
        let addr: std::net::SocketAddr = addr.parse().with_context(|| format!("address {addr}"))?;
        let socket = tokio::net::TcpSocket::new_v4().context("socket")?;
        socket.set_send_buffer_size(send_buffer).context("SO_SNDBUF")?;
        let stream = tokio::time::timeout(Duration::from_secs(5), socket.connect(addr))
            .await
            .with_context(|| format!("connect {addr}: timeout"))?
            .with_context(|| format!("connect {addr}"))?;
        Ok(RawRtmp { stream })
    }

    /// After [`RawRtmp::handshake`]: sets a 4096-byte chunk size, then sends `connect` (app
    /// `app`), `createStream` and `play` of `key` on message stream 1, without reading the
    /// replies (they wait in the socket).
    pub async fn start_play(&mut self, app: &str, key: &str) -> anyhow::Result<()> {
        let mut out = chunk_type0(2, 0, 1, 0, 4, &4096u32.to_be_bytes());
        let mut connect = amf_string("connect");
        connect.extend(amf_number(1.0));
        connect.push(0x03); // object
        for (k, v) in [("app", app), ("tcUrl", &format!("rtmp://127.0.0.1/{app}"))] {
            connect.extend_from_slice(&(k.len() as u16).to_be_bytes());
            connect.extend_from_slice(k.as_bytes());
            connect.extend(amf_string(v));
        }
        connect.extend_from_slice(&[0, 0, 9]);
        out.extend(chunk_type0(3, 0, 20, 0, connect.len() as u32, &connect));
        let mut create = amf_string("createStream");
        create.extend(amf_number(2.0));
        create.push(0x05); // null
        out.extend(chunk_type0(3, 0, 20, 0, create.len() as u32, &create));
        let mut play = amf_string("play");
        play.extend(amf_number(0.0));
        play.push(0x05);
        play.extend(amf_string(key));
        out.extend(chunk_type0(8, 0, 20, 1, play.len() as u32, &play));
        self.send(&out).await
    }

    /// Writes bytes (a write error is returned: the server may already have closed).
    pub async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(bytes).await.context("write")?;
        self.stream.flush().await.context("flush")
    }

    /// Closes the write side (the server reads EOF).
    pub async fn finish(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// Plain handshake: C0+C1, read S0+S1+S2, send C2 (= S1 echoed).
    pub async fn handshake(&mut self) -> anyhow::Result<()> {
        let mut c0c1 = vec![0u8; 1 + HANDSHAKE_SIZE];
        c0c1[0] = 3;
        for (i, byte) in c0c1[9..].iter_mut().enumerate() {
            *byte = (i * 7 + 13) as u8;
        }
        self.send(&c0c1).await?;
        let mut s0s1s2 = vec![0u8; 1 + 2 * HANDSHAKE_SIZE];
        tokio::time::timeout(Duration::from_secs(5), self.stream.read_exact(&mut s0s1s2))
            .await
            .context("no S0+S1+S2 within 5 s")?
            .context("reading S0+S1+S2")?;
        if s0s1s2[0] != 3 {
            bail!("S0 version is {}, expected 3", s0s1s2[0]);
        }
        let s1 = s0s1s2[1..1 + HANDSHAKE_SIZE].to_vec();
        self.send(&s1).await
    }

    /// Reads (and discards) until the server closes the connection; fails if it is still open
    /// after `timeout`.
    pub async fn expect_closed(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => bail!("the server kept the connection open for {timeout:?}"),
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
                Ok(Ok(_)) => {}
            }
        }
    }
}

/// An AMF0 string.
pub fn amf_string(s: &str) -> Vec<u8> {
    let mut out = vec![0x02];
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    out
}

/// An AMF0 number.
pub fn amf_number(n: f64) -> Vec<u8> {
    let mut out = vec![0x00];
    out.extend_from_slice(&n.to_be_bytes());
    out
}

/// One chunk with a type-0 (full) message header; `payload` must fit one chunk (≤ 128 bytes
/// at the default chunk size) unless the test means otherwise.
pub fn chunk_type0(
    csid: u8,
    timestamp: u32,
    msg_type: u8,
    msg_stream_id: u32,
    msg_len: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = vec![csid & 0x3f];
    out.extend_from_slice(&timestamp.min(0xff_ffff).to_be_bytes()[1..]);
    out.extend_from_slice(&msg_len.to_be_bytes()[1..]);
    out.push(msg_type);
    out.extend_from_slice(&msg_stream_id.to_le_bytes());
    out.extend_from_slice(payload);
    out
}
