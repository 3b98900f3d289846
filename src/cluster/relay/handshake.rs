//! How two nodes prove to each other that they share the cluster secret before any media
//! flows, both ways, without sending it and without a replay window:
//!
//! 1. origin → edge: `IGRELAY/1 NONCE_O\n`
//! 2. edge → origin: a JSON [`Hello`] line: its node, the stream, its own nonce, and
//!    HMAC-SHA256(secret, "edge\nNONCE_O\nNODE\nSTREAM")
//! 3. origin → edge: a JSON [`Welcome`] line: the stream's protocol (as its publisher sent it)
//!    and HMAC-SHA256(secret, "origin\nNONCE_E\nSTREAM\nPROTOCOL"), or why not.
//!
//! Then [`super::wire`] messages. Lines are bounded; the whole exchange is timed by callers.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::auth::secret::{self, Secret};
use crate::media::Protocol;

pub const GREETING: &str = "IGRELAY/1";
/// The longest handshake line read.
pub const MAX_LINE: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("not a relay link (bad greeting)")]
    Greeting,
    #[error("handshake line longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("malformed handshake line: {0}")]
    Malformed(String),
    #[error("the peer does not know the cluster secret")]
    BadProof,
    #[error("refused: {0}")]
    Refused(String),
    #[error("connection: {0}")]
    Io(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub node: String,
    pub stream: String,
    pub nonce: String,
    pub mac: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A fresh random nonce (hex).
pub fn nonce() -> String {
    secret::hex(&rand::random::<[u8; 16]>())
}

pub fn greeting(nonce: &str) -> String {
    format!("{GREETING} {nonce}\n")
}

/// The origin's nonce from its greeting line.
pub fn parse_greeting(line: &str) -> Result<String, HandshakeError> {
    match line.trim_end().split_once(' ') {
        Some((GREETING, nonce)) if valid_nonce(nonce) => Ok(nonce.to_string()),
        _ => Err(HandshakeError::Greeting),
    }
}

fn valid_nonce(nonce: &str) -> bool {
    (16..=64).contains(&nonce.len()) && nonce.bytes().all(|b| b.is_ascii_hexdigit())
}

fn proof(secret: &Secret, parts: &[&str]) -> String {
    // HMAC takes keys of any length.
    let mut m = Hmac::<Sha256>::new_from_slice(secret.expose()).unwrap_or_else(|_| unreachable!());
    m.update(parts.join("\n").as_bytes());
    secret::hex(&m.finalize().into_bytes())
}

/// What the edge sends, answering the origin's nonce.
pub fn hello(secret: &Secret, origin_nonce: &str, node: &str, stream: &str) -> Hello {
    let mac = proof(secret, &["edge", origin_nonce, node, stream]);
    Hello { node: node.to_string(), stream: stream.to_string(), nonce: nonce(), mac }
}

/// The origin's check of a hello line.
pub fn check_hello(secret: &Secret, origin_nonce: &str, line: &str) -> Result<Hello, HandshakeError> {
    let hello: Hello = serde_json::from_str(line).map_err(|e| HandshakeError::Malformed(e.to_string()))?;
    if !valid_nonce(&hello.nonce) || !crate::cluster::settings::valid_node(&hello.node) {
        return Err(HandshakeError::Malformed("bad node or nonce".into()));
    }
    let expected = proof(secret, &["edge", origin_nonce, &hello.node, &hello.stream]);
    if !secret::equal(expected.as_bytes(), hello.mac.to_ascii_lowercase().as_bytes()) {
        return Err(HandshakeError::BadProof);
    }
    Ok(hello)
}

/// The origin's answer to a hello it accepts.
pub fn welcome(secret: &Secret, hello: &Hello, protocol: Protocol) -> Welcome {
    let mac = proof(secret, &["origin", &hello.nonce, &hello.stream, protocol.as_str()]);
    Welcome { ok: true, protocol: Some(protocol), mac: Some(mac), error: None }
}

pub fn refusal(reason: &str) -> Welcome {
    Welcome { ok: false, protocol: None, mac: None, error: Some(reason.to_string()) }
}

/// The edge's check of the origin's answer: the stream's protocol.
pub fn check_welcome(secret: &Secret, hello: &Hello, line: &str) -> Result<Protocol, HandshakeError> {
    let welcome: Welcome = serde_json::from_str(line).map_err(|e| HandshakeError::Malformed(e.to_string()))?;
    if !welcome.ok {
        return Err(HandshakeError::Refused(welcome.error.unwrap_or_default()));
    }
    let (Some(protocol), Some(mac)) = (welcome.protocol, welcome.mac) else {
        return Err(HandshakeError::Malformed("no protocol or proof".into()));
    };
    let expected = proof(secret, &["origin", &hello.nonce, &hello.stream, protocol.as_str()]);
    if !secret::equal(expected.as_bytes(), mac.to_ascii_lowercase().as_bytes()) {
        return Err(HandshakeError::BadProof);
    }
    Ok(protocol)
}

/// Reads one `\n`-terminated line of at most [`MAX_LINE`] bytes, byte by byte (nothing past
/// the line is consumed: the media follows it on the same connection).
pub async fn read_line(reader: &mut (impl AsyncRead + Unpin)) -> Result<String, HandshakeError> {
    let mut line = Vec::new();
    loop {
        let byte = reader.read_u8().await.map_err(|e| HandshakeError::Io(e.to_string()))?;
        if byte == b'\n' {
            break;
        }
        if line.len() >= MAX_LINE {
            return Err(HandshakeError::TooLong);
        }
        line.push(byte);
    }
    String::from_utf8(line).map_err(|_| HandshakeError::Malformed("not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_prove_the_secret_and_a_wrong_or_replayed_proof_fails() {
        let s = Secret::new("cluster-secret");
        let origin_nonce = nonce();
        let greeting_line = greeting(&origin_nonce);
        assert_eq!(parse_greeting(&greeting_line).unwrap(), origin_nonce);
        let hello = hello(&s, &origin_nonce, "b", "room1");
        let line = serde_json::to_string(&hello).unwrap();
        assert_eq!(check_hello(&s, &origin_nonce, &line).unwrap(), hello);
        assert_eq!(check_hello(&Secret::new("guess"), &origin_nonce, &line), Err(HandshakeError::BadProof));
        // The same hello replayed to another connection (another nonce) fails.
        assert_eq!(check_hello(&s, &nonce(), &line), Err(HandshakeError::BadProof));
        // Another stream under the same proof fails.
        let other = line.replace("room1", "room2");
        assert_eq!(check_hello(&s, &origin_nonce, &other), Err(HandshakeError::BadProof));

        let answer = serde_json::to_string(&welcome(&s, &hello, Protocol::Webrtc)).unwrap();
        assert_eq!(check_welcome(&s, &hello, &answer).unwrap(), Protocol::Webrtc);
        assert_eq!(check_welcome(&Secret::new("guess"), &hello, &answer), Err(HandshakeError::BadProof));
        let lied = answer.replace("webrtc", "rtmp");
        assert_eq!(check_welcome(&s, &hello, &lied), Err(HandshakeError::BadProof));
        let no = serde_json::to_string(&refusal("not published here")).unwrap();
        assert_eq!(check_welcome(&s, &hello, &no), Err(HandshakeError::Refused("not published here".into())));
    }

    #[test]
    fn greetings_and_lines_from_strangers_are_refused() {
        for bad in ["", "GET / HTTP/1.1", "IGRELAY/1", "IGRELAY/1 xyz", "IGRELAY/2 00112233445566778899aabbccddeeff"] {
            assert_eq!(parse_greeting(bad), Err(HandshakeError::Greeting), "{bad}");
        }
        let s = Secret::new("k");
        assert!(matches!(check_hello(&s, "00", "{not json"), Err(HandshakeError::Malformed(_))));
        let bad_node = r#"{"node":"a b","stream":"k","nonce":"00112233445566778899aabbccddeeff","mac":"00"}"#;
        assert!(matches!(check_hello(&s, "00", bad_node), Err(HandshakeError::Malformed(_))));
    }

    #[tokio::test]
    async fn a_line_is_read_up_to_its_bound_and_nothing_after_it() {
        let mut input: &[u8] = b"first line\nrest";
        assert_eq!(read_line(&mut input).await.unwrap(), "first line");
        assert_eq!(input, b"rest");
        let long = vec![b'x'; MAX_LINE + 10];
        assert_eq!(read_line(&mut &long[..]).await, Err(HandshakeError::TooLong));
        assert!(matches!(read_line(&mut &b"no end"[..]).await, Err(HandshakeError::Io(_))));
    }
}
