//! RTMP: the handshake, the chunk stream with its messages, AMF0, and whole connections as
//! the server (a publisher or player talking to us) and as the client (an origin we pull
//! from or push to) see them.

use bytes::BytesMut;

use interop_gateway::protocols::flv::{FlvIngest, TagKind};
use interop_gateway::protocols::rtmp::amf;
use interop_gateway::protocols::rtmp::chunk::{msg_type, ChunkDecoder};
use interop_gateway::protocols::rtmp::handshake::{ClientHandshake, ServerHandshake, HANDSHAKE_SIZE};
use interop_gateway::protocols::rtmp::message::{self, Message};
use interop_gateway::protocols::rtmp::{
    ClientEvent, ClientSession, ClientState, MediaKind, MediaMessage, ServerEvent, ServerSession,
};

use crate::engine::{corpus_files, no_seeds, no_setup, reads, Sig, Target};
use crate::mutate::Shape;

/// Command names, AMF0 markers and chunk headers worth inserting.
const RTMP_DICT: &[&[u8]] = &[
    b"\x02\x00\x07connect",
    b"\x02\x00\x07publish",
    b"\x02\x00\x04play",
    b"\x02\x00\x0ccreateStream",
    b"\x02\x00\x0cdeleteStream",
    b"\x02\x00\x07_result",
    b"\x02\x00\x08onStatus",
    b"\x02\x00\x0aonMetaData",
    b"\x00\x00\x00\x09",
    b"\x03\x00\x03app\x02\x00\x04live",
    b"\x0a\xff\xff\xff\xff",
    b"\x08\x7f\xff\xff\xff",
    b"\x0c\xff\xff\xff\xff",
    b"\x02\x00\x00\x00\x00\x00\x04\x01\x00\x00\x00\x00\x7f\xff\xff\xff",
    b"\x02\x00\x00\x00\x00\x00\x06\x04\x00\x00\x00\x00\x00\x06\x00\x00\x00\x01",
    b"\x03\xff\xff\xff\xff\xff\xff\x14\x00\x00\x00\x00",
    b"\x04\xff\xff\xff\x00\x10\x00\x09\x01\x00\x00\x00\x00\x00\x00\x01",
    b"\x16",
    b"\x17\x00\x00\x00\x00",
    b"\xaf\x00",
];

/// Messages are parsed the way a connection's link does: protocol control applied.
fn decode_all(decoder: &mut ChunkDecoder, input: &mut BytesMut, sig: &mut Sig) -> Result<(), ()> {
    loop {
        match decoder.decode(input) {
            Ok(Some(raw)) => {
                sig.add(u64::from(raw.type_id));
                match message::parse(raw) {
                    Ok(Message::SetChunkSize(size)) => {
                        let r = decoder.set_chunk_size(size);
                        sig.result(&r);
                        if r.is_err() {
                            return Err(());
                        }
                    }
                    Ok(Message::Abort(csid)) => decoder.abort(csid),
                    Ok(m) => sig.variant(&m),
                    Err(e) => {
                        sig.variant(&e);
                        return Err(());
                    }
                }
            }
            Ok(None) => return Ok(()),
            Err(e) => {
                sig.variant(&e);
                return Err(());
            }
        }
    }
}

fn chunk_stream(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    let mut decoder = ChunkDecoder::new();
    let mut buf = BytesMut::new();
    for read in reads(input) {
        buf.extend_from_slice(read);
        if decode_all(&mut decoder, &mut buf, &mut sig).is_err() {
            break;
        }
    }
    sig.finish()
}

pub const RTMP_CHUNK: Target = Target {
    name: "rtmp_chunk",
    dirs: &["rtmp_chunk"],
    max_len: 64 << 10,
    shape: Shape::Bytes,
    dict: RTMP_DICT,
    derive: no_seeds,
    setup: no_setup,
    run: chunk_stream,
};

fn handshake(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    let mut server = ServerHandshake::new(0);
    let mut client = ClientHandshake::start(0, &mut BytesMut::new());
    let (mut to_server, mut to_client, mut out) = (BytesMut::new(), BytesMut::new(), BytesMut::new());
    let (mut server_live, mut client_live) = (true, true);
    for read in reads(input) {
        if server_live {
            to_server.extend_from_slice(read);
            let r = server.process(&mut to_server, &mut out);
            sig.result(&r);
            server_live = r.is_ok() && !server.is_done();
        }
        if client_live {
            to_client.extend_from_slice(read);
            let r = client.process(&mut to_client, &mut out);
            sig.result(&r);
            client_live = r.is_ok() && !client.is_done();
        }
        out.clear();
    }
    sig.add(u64::from(server.is_done()) << 1 | u64::from(client.is_done()));
    assert!(to_server.len() <= input.len() && to_client.len() <= input.len());
    sig.finish()
}

pub const RTMP_HANDSHAKE: Target = Target {
    name: "rtmp_handshake",
    dirs: &["rtmp_handshake"],
    max_len: 4 * HANDSHAKE_SIZE,
    shape: Shape::Bytes,
    dict: &[b"\x03", b"\x06", b"\x00\x00\x00\x00"],
    derive: no_seeds,
    setup: no_setup,
    run: handshake,
};

/// Media as `serve.rs` hands it to the FLV ingest.
fn ingest(flv: &mut FlvIngest, m: MediaMessage, sig: &mut Sig) {
    let kind = match m.kind {
        MediaKind::Audio => TagKind::Audio,
        MediaKind::Video => TagKind::Video,
        MediaKind::Data => TagKind::Script,
    };
    let r = flv.push(kind, m.timestamp, m.payload);
    sig.result(&r);
}

/// A whole connection to our server: handshake, commands, publish or play, media into the
/// FLV ingest, replies taken as they would be written.
fn server(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    let mut session = ServerSession::new(0);
    let mut flv = FlvIngest::new();
    let mut buf = BytesMut::new();
    let mut written = 0usize;
    for read in reads(input) {
        buf.extend_from_slice(read);
        let r = session.handle_input(&mut buf);
        while let Some(event) = session.poll_event() {
            sig.variant(&event);
            let answer = match event {
                ServerEvent::Publish { key, .. } if key.len() % 3 == 2 => session.reject_publish("refused"),
                ServerEvent::Publish { .. } => session.accept_publish(),
                ServerEvent::Play { key, .. } if key.len() % 3 == 2 => session.reject_play("refused"),
                ServerEvent::Play { .. } => {
                    let r = session.accept_play();
                    session.end_play();
                    r
                }
                ServerEvent::Media(m) => {
                    ingest(&mut flv, m, &mut sig);
                    Ok(())
                }
                _ => Ok(()),
            };
            sig.result(&answer);
        }
        written += session.output().split().len();
        if let Err(e) = r {
            sig.variant(&e);
            break;
        }
    }
    sig.count(written);
    sig.finish()
}

pub const RTMP_SERVER: Target = Target {
    name: "rtmp_server",
    dirs: &["rtmp_server"],
    max_len: 64 << 10,
    shape: Shape::Bytes,
    dict: RTMP_DICT,
    derive: no_seeds,
    setup: no_setup,
    run: server,
};

/// One client session reading what an origin sends, publishing or playing.
fn client_session(input: &[u8], publish: bool, sig: &mut Sig) {
    let url = "rtmp://127.0.0.1/live/fuzz".parse().expect("a valid RTMP URL");
    let mut session = ClientSession::new(&url, 0);
    let mut flv = FlvIngest::new();
    let mut buf = BytesMut::new();
    let mut started = false;
    for read in reads(input) {
        buf.extend_from_slice(read);
        let r = session.handle_input(&mut buf);
        if !started && session.state() == ClientState::Connected {
            started = true;
            let s = if publish { session.start_publish() } else { session.start_play() };
            sig.result(&s);
        }
        while let Some(event) = session.poll_event() {
            sig.variant(&event);
            if let ClientEvent::Media(m) = event {
                ingest(&mut flv, m, sig);
            }
        }
        if session.state() == ClientState::Publishing {
            let r = session.send_media(MediaKind::Audio, 0, &[0xaf, 0x01, 0x21]);
            sig.result(&r);
        }
        session.output().clear();
        if let Err(e) = r {
            sig.variant(&e);
            break;
        }
    }
    sig.variant(&session.state());
    session.finish();
}

fn client(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    client_session(input, true, &mut sig);
    client_session(input, false, &mut sig);
    sig.finish()
}

pub const RTMP_CLIENT: Target = Target {
    name: "rtmp_client",
    dirs: &["rtmp_client"],
    max_len: 64 << 10,
    shape: Shape::Bytes,
    dict: RTMP_DICT,
    derive: no_seeds,
    setup: no_setup,
    run: client,
};

/// AMF0 as commands and `onMetaData` carry it; what reads back writes and reads back the same.
fn amf0(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    let r = amf::read_values(input);
    sig.result(&r);
    if let Ok(values) = r {
        sig.count(values.len());
        let mut out = BytesMut::new();
        amf::write_values(&mut out, &values);
        let again = amf::read_values(&out).expect("AMF0 written by us reads back");
        assert_eq!(format!("{again:?}"), format!("{values:?}"), "AMF0 round trip");
    }
    sig.finish()
}

/// The AMF0 bodies of the commands and data messages in the recorded RTMP sessions.
fn amf0_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (_, data) in corpus_files(&["rtmp_chunk"]) {
        let mut decoder = ChunkDecoder::new();
        let mut buf = BytesMut::from(&data[..]);
        while let Ok(Some(raw)) = decoder.decode(&mut buf) {
            match raw.type_id {
                msg_type::COMMAND_AMF0 | msg_type::DATA_AMF0 => seeds.push(raw.payload.to_vec()),
                msg_type::SET_CHUNK_SIZE => {
                    if let Ok(Message::SetChunkSize(size)) = message::parse(raw) {
                        let _ = decoder.set_chunk_size(size);
                    }
                }
                _ => {}
            }
        }
    }
    seeds
}

pub const AMF0: Target = Target {
    name: "amf0",
    dirs: &["amf0"],
    max_len: 16 << 10,
    shape: Shape::Bytes,
    dict: RTMP_DICT,
    derive: amf0_seeds,
    setup: no_setup,
    run: amf0,
};
