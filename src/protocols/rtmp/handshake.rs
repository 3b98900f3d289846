//! The plain ("simple") RTMP handshake, both sides, without IO.
//!
//! Server: reads C0+C1, answers S0 (version 3), S1 (time, zero version field, random) and
//! S2 (an echo of C1), then reads C2 and ignores its content. A zero version field in S1 makes
//! ffmpeg skip digest validation; clients that sent a digest C1 (ffmpeg, OBS) get their C1
//! echoed, which they accept. Client: sends C0+C1 with a zero version field (so nginx-rtmp
//! uses the old-style handshake), reads S0+S1+S2 and answers C2 = echo of S1.

use bytes::{Buf, BufMut, BytesMut};
use rand::RngCore;

use super::error::RtmpError;

/// Size of C1/C2/S1/S2.
pub const HANDSHAKE_SIZE: usize = 1536;
/// The only RTMP version byte we speak (plain RTMP, no RTMPE).
pub const RTMP_VERSION: u8 = 3;

fn put_c1_s1(out: &mut BytesMut, time_ms: u32) {
    out.put_u32(time_ms);
    out.put_u32(0);
    let mut random = [0u8; HANDSHAKE_SIZE - 8];
    rand::thread_rng().fill_bytes(&mut random);
    out.put_slice(&random);
}

fn check_version(v: u8) -> Result<(), RtmpError> {
    if v == RTMP_VERSION {
        Ok(())
    } else {
        Err(RtmpError::Handshake(format!("unsupported RTMP version byte {v} (only plain RTMP version 3; no RTMPE)")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    WaitC0C1,
    WaitC2,
    Done,
}

/// Server side of the handshake.
#[derive(Debug)]
pub struct ServerHandshake {
    state: ServerState,
    time_ms: u32,
}

impl ServerHandshake {
    /// `time_ms` goes into S1's time field (any epoch).
    pub fn new(time_ms: u32) -> Self {
        ServerHandshake { state: ServerState::WaitC0C1, time_ms }
    }

    /// Consumes handshake bytes from `input` and appends the replies to `out`. Returns `true`
    /// once complete; whatever then remains in `input` is chunk stream data.
    pub fn process(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<bool, RtmpError> {
        if self.state == ServerState::WaitC0C1 {
            if let Some(&v) = input.first() {
                check_version(v)?;
            }
            if input.len() < 1 + HANDSHAKE_SIZE {
                return Ok(false);
            }
            input.advance(1);
            let c1 = input.split_to(HANDSHAKE_SIZE);
            out.reserve(1 + 2 * HANDSHAKE_SIZE);
            out.put_u8(RTMP_VERSION);
            put_c1_s1(out, self.time_ms);
            out.put_slice(&c1);
            self.state = ServerState::WaitC2;
        }
        if self.state == ServerState::WaitC2 {
            if input.len() < HANDSHAKE_SIZE {
                return Ok(false);
            }
            input.advance(HANDSHAKE_SIZE);
            self.state = ServerState::Done;
        }
        Ok(true)
    }

    pub fn is_done(&self) -> bool {
        self.state == ServerState::Done
    }
}

/// Client side of the handshake.
#[derive(Debug)]
pub struct ClientHandshake {
    done: bool,
}

impl ClientHandshake {
    /// Starts the handshake: appends C0+C1 to `out`.
    pub fn start(time_ms: u32, out: &mut BytesMut) -> Self {
        out.reserve(1 + HANDSHAKE_SIZE);
        out.put_u8(RTMP_VERSION);
        put_c1_s1(out, time_ms);
        ClientHandshake { done: false }
    }

    /// Consumes S0+S1+S2 from `input` and appends C2 to `out`. Returns `true` once complete.
    pub fn process(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<bool, RtmpError> {
        if self.done {
            return Ok(true);
        }
        if let Some(&v) = input.first() {
            check_version(v)?;
        }
        if input.len() < 1 + 2 * HANDSHAKE_SIZE {
            return Ok(false);
        }
        input.advance(1);
        let s1 = input.split_to(HANDSHAKE_SIZE);
        input.advance(HANDSHAKE_SIZE); // S2: an echo of C1 by old servers, a digest by new ones
        out.put_slice(&s1);
        self.done = true;
        Ok(true)
    }

    pub fn is_done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_complete_against_each_other() {
        let mut to_server = BytesMut::new();
        let mut client = ClientHandshake::start(7, &mut to_server);
        assert_eq!(to_server.len(), 1 + HANDSHAKE_SIZE);
        assert_eq!(to_server[0], 3);
        assert_eq!(&to_server[1..9], &[0, 0, 0, 7, 0, 0, 0, 0]);
        let c1 = to_server[1..].to_vec();

        let mut server = ServerHandshake::new(99);
        let mut to_client = BytesMut::new();
        // Partial C0+C1: nothing yet.
        let mut partial = to_server.split_to(100);
        assert!(!server.process(&mut partial, &mut to_client).unwrap());
        assert!(to_client.is_empty());
        partial.unsplit(to_server);
        let mut to_server = partial;
        assert!(!server.process(&mut to_server, &mut to_client).unwrap());
        assert_eq!(to_client.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(to_client[0], 3);
        // S1: our time and a zero version field; S2: C1 echoed.
        assert_eq!(&to_client[1..9], &[0, 0, 0, 99, 0, 0, 0, 0]);
        assert_eq!(&to_client[1 + HANDSHAKE_SIZE..], &c1[..]);
        let s1 = to_client[1..1 + HANDSHAKE_SIZE].to_vec();

        let mut to_server = BytesMut::new();
        assert!(client.process(&mut to_client, &mut to_server).unwrap());
        assert!(client.is_done());
        assert_eq!(&to_server[..], &s1[..], "C2 echoes S1");

        // C2 plus the first chunk bytes: the chunk bytes stay in the input.
        to_server.extend_from_slice(&[0x03, 1, 2]);
        let mut out = BytesMut::new();
        assert!(server.process(&mut to_server, &mut out).unwrap());
        assert!(server.is_done());
        assert!(out.is_empty());
        assert_eq!(&to_server[..], &[0x03, 1, 2]);
    }

    #[test]
    fn digest_style_c1_is_echoed_unchanged() {
        // ffmpeg/OBS put a non-zero version (e.g. 9.0.124.2 / 10.0.32.18) and a digest in C1.
        let mut input = BytesMut::new();
        input.put_u8(3);
        input.put_u32(0);
        input.put_slice(&[0x0A, 0x00, 0x20, 0x12]);
        input.extend((0..HANDSHAKE_SIZE - 8).map(|i| i as u8));
        let c1 = input[1..].to_vec();
        let mut out = BytesMut::new();
        let mut server = ServerHandshake::new(0);
        assert!(!server.process(&mut input, &mut out).unwrap());
        assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c1[..]);
    }

    #[test]
    fn wrong_version_is_refused_at_once() {
        let mut out = BytesMut::new();
        let mut input = BytesMut::from(&[6u8][..]);
        assert!(matches!(ServerHandshake::new(0).process(&mut input, &mut out), Err(RtmpError::Handshake(_))));
        let mut input = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
        assert!(ServerHandshake::new(0).process(&mut input, &mut out).is_err());
        let mut client = ClientHandshake::start(0, &mut BytesMut::new());
        let mut input = BytesMut::from(&[0x16u8, 3, 1][..]);
        assert!(client.process(&mut input, &mut out).is_err());
    }
}
