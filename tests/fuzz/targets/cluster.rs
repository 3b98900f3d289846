//! What another node sends on a relay link: the handshake lines and the media messages that
//! follow (a node without the secret only gets as far as the first line, but every byte is
//! parsed as if it came from anyone).

use interop_gateway::auth::secret::Secret;
use interop_gateway::cluster::relay::handshake;
use interop_gateway::cluster::relay::wire::{self, Message};
use interop_gateway::media::{AudioInfo, Codec, Protocol, TrackInfo, TrackKind, Ts, VideoInfo};

use crate::engine::{no_setup, Sig, Target};
use crate::mutate::Shape;

fn relay_wire(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    let mut rest = input;
    loop {
        match wire::parse(rest) {
            Ok(Some((message, used))) => {
                sig.tag(match &message {
                    Message::Info(_) => "info",
                    Message::Frame { .. } => "frame",
                    Message::Keyframe => "keyframe",
                    Message::End(_) => "end",
                    Message::Ping => "ping",
                });
                // What decoded encodes and decodes to the same message.
                let mut again = bytes::BytesMut::new();
                message.encode(&mut again);
                let back = wire::parse(&again).expect("a re-encoded message parses").map(|(m, _)| m);
                assert_eq!(back.as_ref(), Some(&message), "relay message round trip");
                rest = &rest[used..];
            }
            Ok(None) => break,
            Err(e) => {
                sig.variant(&e);
                break;
            }
        }
    }
    sig.finish()
}

fn seeds() -> Vec<Vec<u8>> {
    let avcc = interop_gateway::auth::secret::unhex(
        "0142c00affe100166742c00ad902c4ec0440000003004000000783c4899201000568cb83cb20",
    )
    .expect("hex");
    let video = VideoInfo {
        codec: Codec::H264,
        width: 176,
        height: 144,
        fps: Some(15.0),
        config: Some(avcc.into()),
        bframes: true,
    };
    let audio = AudioInfo { codec: Codec::Aac, sample_rate: 44100, channels: 1, config: Some(vec![0x12, 0x08].into()) };
    let messages = [
        Message::Info(TrackInfo::Video(video)),
        Message::Info(TrackInfo::Audio(audio)),
        Message::Frame {
            kind: TrackKind::Video,
            keyframe: true,
            dts: Ts(0),
            pts: Ts(66_000_000),
            data: interop_gateway::auth::secret::unhex("00000009419a3b10bffe8cd360").expect("hex").into(),
        },
        Message::Frame {
            kind: TrackKind::Audio,
            keyframe: true,
            dts: Ts(23_000_000),
            pts: Ts(23_000_000),
            data: vec![0x21, 0x10, 0x04].into(),
        },
        Message::Keyframe,
        Message::Ping,
        Message::End("the publisher left".into()),
    ];
    let mut all = bytes::BytesMut::new();
    let mut each = Vec::new();
    for m in &messages {
        let mut one = bytes::BytesMut::new();
        m.encode(&mut one);
        all.extend_from_slice(&one);
        each.push(one.to_vec());
    }
    each.push(all.to_vec());
    each
}

pub const RELAY_WIRE: Target = Target {
    name: "relay_wire",
    dirs: &[],
    max_len: 64 << 10,
    shape: Shape::Bytes,
    dict: &[
        b"\x00\x00\x00\x01\x03",
        b"\x00\x00\x00\x01\x05",
        b"{\"codec\":\"h264\"",
        b"\"config\":\"",
        b"\x02\x00\x01",
    ],
    derive: seeds,
    setup: no_setup,
    run: relay_wire,
};

fn relay_handshake(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    let secret = Secret::new("fuzz");
    let text = String::from_utf8_lossy(input);
    for line in text.lines() {
        sig.result(&handshake::parse_greeting(line));
        let hello = handshake::check_hello(&secret, "00112233445566778899aabbccddeeff", line);
        sig.result(&hello);
        let probe = handshake::hello(&secret, "00112233445566778899aabbccddeeff", "edge", "k");
        sig.result(&handshake::check_welcome(&secret, &probe, line));
    }
    sig.finish()
}

fn handshake_seeds() -> Vec<Vec<u8>> {
    let secret = Secret::new("fuzz");
    let hello = handshake::hello(&secret, "00112233445566778899aabbccddeeff", "edge-1", "room1");
    let welcome = handshake::welcome(&secret, &hello, Protocol::Webrtc);
    let lines = [
        handshake::greeting("00112233445566778899aabbccddeeff"),
        serde_json::to_string(&hello).unwrap_or_default(),
        serde_json::to_string(&welcome).unwrap_or_default(),
        serde_json::to_string(&handshake::refusal("stream `k` is not published on node `a`")).unwrap_or_default(),
    ];
    vec![lines.join("\n").into_bytes()]
}

pub const RELAY_HANDSHAKE: Target = Target {
    name: "relay_handshake",
    dirs: &[],
    max_len: 8 << 10,
    shape: Shape::Text,
    dict: &[b"IGRELAY/1 ", b"\"node\":", b"\"mac\":", b"\"ok\":true", b"\"protocol\":\"rtmp\""],
    derive: handshake_seeds,
    setup: no_setup,
    run: relay_handshake,
};
