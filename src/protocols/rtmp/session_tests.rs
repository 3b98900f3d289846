//! The server session driven by our client session (in memory) and by hand-built messages.

use bytes::{BufMut, Bytes, BytesMut};

use super::*;
use crate::protocols::rtmp::amf::{self, Amf0Value};
use crate::protocols::rtmp::chunk::{msg_type, write_message, ChunkDecoder};
use crate::protocols::rtmp::handshake::HANDSHAKE_SIZE;
use crate::protocols::rtmp::message::{parse, user_event, Message, Writer};
use crate::protocols::rtmp::{encode_media_chunks, ClientEvent, ClientSession, ClientState, RtmpUrl};

/// Moves bytes both ways until neither side has anything to say.
fn pump(client: &mut ClientSession, server: &mut ServerSession) -> Result<(), RtmpError> {
    for _ in 0..100 {
        let mut to_server = client.output().split();
        let mut to_client = server.output().split();
        if to_server.is_empty() && to_client.is_empty() {
            return Ok(());
        }
        server.handle_input(&mut to_server)?;
        client.handle_input(&mut to_client)?;
        assert!(to_server.is_empty() && to_client.is_empty(), "all bytes consumed");
    }
    panic!("sessions keep talking");
}

fn server_events(server: &mut ServerSession) -> Vec<ServerEvent> {
    std::iter::from_fn(|| server.poll_event()).collect()
}

fn client_events(client: &mut ClientSession) -> Vec<ClientEvent> {
    std::iter::from_fn(|| client.poll_event()).collect()
}

fn connected(url: &str) -> (ClientSession, ServerSession) {
    let url: RtmpUrl = url.parse().unwrap();
    let mut client = ClientSession::new(&url, 1);
    let mut server = ServerSession::new(2);
    pump(&mut client, &mut server).unwrap();
    assert!(server.handshake_done());
    assert_eq!(client.state(), ClientState::Connected);
    (client, server)
}

fn payload(len: usize, seed: u8) -> Bytes {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[test]
fn client_publish_reaches_the_server() {
    let (mut client, mut server) = connected("rtmp://example.org:1935/live/cam1?token=abc");
    assert_eq!(
        server_events(&mut server),
        vec![ServerEvent::Connect { app: "live".into(), tc_url: Some("rtmp://example.org:1935/live".into()) }]
    );
    client.start_publish().unwrap();
    pump(&mut client, &mut server).unwrap();
    assert_eq!(
        server_events(&mut server),
        vec![ServerEvent::Publish { app: "live".into(), key: "cam1".into(), query: Some("token=abc".into()) }]
    );
    assert_eq!(client.state(), ClientState::PublishPending);
    server.accept_publish().unwrap();
    pump(&mut client, &mut server).unwrap();
    assert_eq!(client.state(), ClientState::Publishing);

    let (meta, video, audio) = (payload(300, 1), payload(20_000, 2), payload(400, 3));
    client.send_media(MediaKind::Data, 0, &meta).unwrap();
    client.send_media(MediaKind::Video, 0, &video).unwrap();
    client.send_media(MediaKind::Audio, 23, &audio).unwrap();
    client.send_media(MediaKind::Video, 0x0100_0000, &video[..5000]).unwrap();
    pump(&mut client, &mut server).unwrap();
    let events = server_events(&mut server);
    let expected = [
        (MediaKind::Data, 0, meta),
        (MediaKind::Video, 0, video.clone()),
        (MediaKind::Audio, 23, audio),
        (MediaKind::Video, 0x0100_0000, video.slice(..5000)),
    ];
    assert_eq!(events.len(), expected.len());
    for (event, (kind, timestamp, payload)) in events.iter().zip(expected) {
        match event {
            ServerEvent::Media(m) => {
                assert_eq!((m.kind, m.timestamp, m.payload.len()), (kind, timestamp, payload.len()));
                assert!(m.payload == payload, "payload of {kind:?} at {timestamp} differs");
            }
            other => panic!("expected media, got {other:?}"),
        }
    }

    client.finish();
    pump(&mut client, &mut server).unwrap();
    assert_eq!(server_events(&mut server), vec![ServerEvent::Unpublish]);
}

#[test]
fn rejected_publish_reaches_the_client_with_the_reason() {
    let (mut client, mut server) = connected("rtmp://h/live/taken");
    client.start_publish().unwrap();
    pump(&mut client, &mut server).unwrap();
    server_events(&mut server);
    server.reject_publish("stream `taken` already has a publisher").unwrap();
    match pump(&mut client, &mut server) {
        Err(RtmpError::Rejected { code, description }) => {
            assert_eq!(code, "NetStream.Publish.BadName");
            assert_eq!(description, "stream `taken` already has a publisher");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(server.accept_publish().is_err(), "nothing pending any more");
}

#[test]
fn play_exchange_delivers_shared_chunks_and_status() {
    let (mut client, mut server) = connected("rtmp://h/mini/s1");
    server_events(&mut server);
    client.start_play().unwrap();
    pump(&mut client, &mut server).unwrap();
    assert_eq!(
        server_events(&mut server),
        vec![ServerEvent::Play { app: "mini".into(), key: "s1".into(), query: None }]
    );
    server.accept_play().unwrap();
    pump(&mut client, &mut server).unwrap();
    assert_eq!(client.state(), ClientState::Playing);

    let video = payload(9000, 4);
    let shared = encode_media_chunks(MediaKind::Video, 40, &video);
    server.send_chunks(&shared);
    server.send_media(MediaKind::Audio, 0x0123_4567, b"\xaf\x01aac");
    pump(&mut client, &mut server).unwrap();
    let events = client_events(&mut client);
    let summary: Vec<_> = events
        .iter()
        .map(|e| match e {
            ClientEvent::Media(m) => (m.kind, m.timestamp, m.payload.len()),
            other => panic!("expected media, got {other:?}"),
        })
        .collect();
    assert_eq!(summary, vec![(MediaKind::Video, 40, 9000), (MediaKind::Audio, 0x0123_4567, 5)]);
    assert!(matches!(&events[0], ClientEvent::Media(m) if m.payload == video));
    assert!(matches!(&events[1], ClientEvent::Media(m) if &m.payload[..] == b"\xaf\x01aac"));

    server.end_play();
    pump(&mut client, &mut server).unwrap();
    assert_eq!(
        client_events(&mut client),
        vec![
            ClientEvent::StreamEof,
            ClientEvent::Status {
                level: "status".into(),
                code: "NetStream.Play.UnpublishNotify".into(),
                description: "Stream ended.".into()
            }
        ]
    );
    client.finish();
    pump(&mut client, &mut server).unwrap();
    assert_eq!(server_events(&mut server), vec![ServerEvent::Stop]);
}

#[test]
fn rejected_play_is_stream_not_found() {
    let (mut client, mut server) = connected("rtmp://h/live/none");
    client.start_play().unwrap();
    pump(&mut client, &mut server).unwrap();
    server.reject_play("no stream `none`").unwrap();
    match pump(&mut client, &mut server) {
        Err(RtmpError::Rejected { code, description }) => {
            assert_eq!((code.as_str(), description.as_str()), ("NetStream.Play.StreamNotFound", "no stream `none`"));
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// A hand-driven client: raw handshake and messages, replies decoded.
struct RawClient {
    writer: Writer,
    decoder: ChunkDecoder,
    server: ServerSession,
}

impl RawClient {
    fn new() -> Self {
        let mut server = ServerSession::new(0);
        let mut input = BytesMut::new();
        input.put_u8(3);
        input.put_bytes(0x5A, 2 * HANDSHAKE_SIZE);
        server.handle_input(&mut input).unwrap();
        assert!(server.handshake_done());
        let s012 = server.output().split();
        assert_eq!(s012.len(), 1 + 2 * HANDSHAKE_SIZE);
        RawClient { writer: Writer::default(), decoder: ChunkDecoder::new(), server }
    }

    fn command(&mut self, values: &[Amf0Value]) -> Result<Vec<Message>, RtmpError> {
        self.writer.command(0, values);
        self.exchange()
    }

    /// Sends what the writer holds, returns the server's replies (obeying Set Chunk Size).
    fn exchange(&mut self) -> Result<Vec<Message>, RtmpError> {
        self.server.handle_input(self.writer.buffer())?;
        let out = self.server.output();
        let mut replies = Vec::new();
        while let Some(raw) = self.decoder.decode(out).unwrap() {
            let msg = parse(raw).unwrap();
            if let Message::SetChunkSize(n) = msg {
                self.decoder.set_chunk_size(n).unwrap();
            }
            replies.push(msg);
        }
        Ok(replies)
    }
}

fn cmd(name: &str, txn: f64, rest: &[Amf0Value]) -> Vec<Amf0Value> {
    let mut v = vec![Amf0Value::string(name), Amf0Value::Number(txn)];
    v.extend_from_slice(rest);
    v
}

fn command_of(m: &Message) -> (&str, f64, &[Amf0Value]) {
    match m {
        Message::Command(c) => (c.name.as_str(), c.transaction_id, &c.args),
        other => panic!("expected a command, got {other:?}"),
    }
}

#[test]
fn connect_reply_as_players_expect() {
    let mut c = RawClient::new();
    // ffmpeg/Flash may send connect as an AMF3 command (type 17, format byte 0).
    let mut body = BytesMut::new();
    body.put_u8(0);
    let object = Amf0Value::object([
        ("app", Amf0Value::string("live?vhost=x")),
        ("tcUrl", Amf0Value::string("rtmp://h/live?vhost=x")),
        ("objectEncoding", Amf0Value::Number(3.0)),
    ]);
    amf::write_values(&mut body, &cmd("connect", 1.0, &[object]));
    write_message(c.writer.buffer(), 128, 3, msg_type::COMMAND_AMF3, 0, 0, &body).unwrap();
    let replies = c.exchange().unwrap();
    assert_eq!(replies[0], Message::WindowAckSize(5_000_000));
    assert_eq!(replies[1], Message::SetPeerBandwidth { size: 5_000_000, limit: 2 });
    assert_eq!(replies[2], Message::SetChunkSize(4096));
    let (name, txn, args) = command_of(&replies[3]);
    assert_eq!((name, txn), ("_result", 1.0));
    let info = &args[0];
    assert_eq!(info.get("code").and_then(Amf0Value::as_str), Some("NetConnection.Connect.Success"));
    assert_eq!(info.get("objectEncoding").and_then(Amf0Value::as_f64), Some(3.0));
    assert_eq!(replies.len(), 4);
    assert_eq!(
        c.server.poll_event(),
        Some(ServerEvent::Connect { app: "live".into(), tc_url: Some("rtmp://h/live?vhost=x".into()) })
    );
}

#[test]
fn auxiliary_and_unknown_commands_are_answered() {
    let mut c = RawClient::new();
    c.command(&cmd("connect", 1.0, &[Amf0Value::object([("app", Amf0Value::string("live"))])])).unwrap();
    let key = Amf0Value::string("k");

    let r = c.command(&cmd("releaseStream", 2.0, &[Amf0Value::Null, key.clone()])).unwrap();
    assert_eq!(command_of(&r[0]).0, "_result");
    let r = c.command(&cmd("FCPublish", 3.0, &[Amf0Value::Null, key.clone()])).unwrap();
    let (name, _, args) = command_of(&r[0]);
    assert_eq!(name, "onFCPublish");
    assert_eq!(args[0].get("code").and_then(Amf0Value::as_str), Some("NetStream.Publish.Start"));
    assert_eq!(command_of(&r[1]).0, "_result");
    let r = c.command(&cmd("createStream", 4.0, &[Amf0Value::Null])).unwrap();
    assert_eq!(command_of(&r[0]), ("_result", 4.0, &[Amf0Value::Number(1.0)][..]));
    let r = c.command(&cmd("getStreamLength", 5.0, &[Amf0Value::Null, key.clone()])).unwrap();
    assert_eq!(command_of(&r[0]), ("_result", 5.0, &[Amf0Value::Number(0.0)][..]));

    let r = c.command(&cmd("someVendorCall", 6.0, &[Amf0Value::Null])).unwrap();
    let (name, txn, args) = command_of(&r[0]);
    assert_eq!((name, txn), ("_error", 6.0));
    assert_eq!(args[0].get("code").and_then(Amf0Value::as_str), Some("NetConnection.Call.Failed"));
    assert!(c.command(&cmd("someNotification", 0.0, &[Amf0Value::Null])).unwrap().is_empty());

    c.writer.user_control(user_event::PING_REQUEST, 1234);
    assert_eq!(c.exchange().unwrap(), vec![Message::UserControl { event: user_event::PING_RESPONSE, value: 1234 }]);

    // Media before an accepted publish is not an event.
    c.writer.media(1, MediaKind::Video, 0, b"early");
    c.exchange().unwrap();
    assert_eq!(c.server.poll_event(), Some(ServerEvent::Connect { app: "live".into(), tc_url: None }));
    assert_eq!(c.server.poll_event(), None);
}

#[test]
fn accepted_play_sends_the_status_sequence() {
    let mut c = RawClient::new();
    c.command(&cmd("connect", 1.0, &[Amf0Value::object([("app", Amf0Value::string("live"))])])).unwrap();
    c.writer.command(1, &cmd("play", 0.0, &[Amf0Value::Null, Amf0Value::string("k?t=1"), Amf0Value::Number(-1000.0)]));
    assert!(c.exchange().unwrap().is_empty(), "no answer before the caller decides");
    c.server.poll_event();
    assert_eq!(
        c.server.poll_event(),
        Some(ServerEvent::Play { app: "live".into(), key: "k".into(), query: Some("t=1".into()) })
    );
    c.server.accept_play().unwrap();
    let r = c.exchange().unwrap();
    assert_eq!(r[0], Message::UserControl { event: user_event::STREAM_BEGIN, value: 1 });
    let code = |m: &Message| command_of(m).2[0].get("code").and_then(Amf0Value::as_str).map(str::to_string);
    assert_eq!(code(&r[1]).as_deref(), Some("NetStream.Play.Reset"));
    assert_eq!(code(&r[2]).as_deref(), Some("NetStream.Play.Start"));
    match &r[3] {
        Message::Media(m) => {
            assert_eq!(m.kind, MediaKind::Data);
            let v = amf::read_values(&m.payload).unwrap();
            assert_eq!(v[0], Amf0Value::string("|RtmpSampleAccess"));
        }
        other => panic!("expected |RtmpSampleAccess, got {other:?}"),
    }
}

#[test]
fn protocol_violations_are_errors_not_panics() {
    let mut c = RawClient::new();
    assert!(matches!(
        c.command(&cmd("publish", 0.0, &[Amf0Value::Null, Amf0Value::string("k")])),
        Err(RtmpError::Protocol(_))
    ));

    let mut c = RawClient::new();
    c.command(&cmd("connect", 1.0, &[Amf0Value::object([("app", Amf0Value::string("live"))])])).unwrap();
    assert!(c.command(&cmd("connect", 2.0, &[Amf0Value::Null])).is_err());

    let mut c = RawClient::new();
    c.writer.buffer().extend_from_slice(&[0x45, 1, 2, 3, 4, 5, 6, 7]);
    assert!(matches!(c.exchange(), Err(RtmpError::Chunk(_))));

    let mut server = ServerSession::new(0);
    let mut http = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
    assert!(matches!(server.handle_input(&mut http), Err(RtmpError::Handshake(_))));
}

#[test]
fn connect_error_reaches_the_client_with_the_description() {
    let url: RtmpUrl = "rtmp://h/nosuchapp/k".parse().unwrap();
    let mut client = ClientSession::new(&url, 0);
    let c0c1 = client.output().split();
    assert_eq!(c0c1.len(), 1 + HANDSHAKE_SIZE);
    // S0+S1+S2, then the server refuses the connect.
    let mut input = BytesMut::new();
    input.put_u8(3);
    input.put_bytes(7, 2 * HANDSHAKE_SIZE);
    let mut w = Writer::default();
    w.command(
        0,
        &[
            Amf0Value::string("_error"),
            Amf0Value::Number(1.0),
            Amf0Value::Null,
            crate::protocols::rtmp::message::status_object("error", "NetConnection.Connect.Rejected", "no such app"),
        ],
    );
    input.extend_from_slice(w.buffer());
    match client.handle_input(&mut input) {
        Err(RtmpError::Rejected { code, description }) => {
            assert_eq!((code.as_str(), description.as_str()), ("NetConnection.Connect.Rejected", "no such app"));
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    // C2 and connect went out before the refusal.
    let sent = client.output().split();
    assert!(sent.len() > HANDSHAKE_SIZE);
}
