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

/// One chunk with a type-0 (full) message header; `payload` must fit one chunk (≤ 128 bytes
/// at the default chunk size) unless the test means otherwise.
pub fn chunk_type0(csid: u8, timestamp: u32, msg_type: u8, msg_stream_id: u32, msg_len: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![csid & 0x3f];
    out.extend_from_slice(&timestamp.min(0xff_ffff).to_be_bytes()[1..]);
    out.extend_from_slice(&msg_len.to_be_bytes()[1..]);
    out.push(msg_type);
    out.extend_from_slice(&msg_stream_id.to_le_bytes());
    out.extend_from_slice(payload);
    out
}
