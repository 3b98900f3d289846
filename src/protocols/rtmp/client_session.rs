//! Client side of an RTMP connection without IO: connect, then publish or play.

use std::collections::VecDeque;

use bytes::BytesMut;

use super::amf::Amf0Value;
use super::error::RtmpError;
use super::handshake::ClientHandshake;
use super::link::Link;
use super::media::{MediaKind, MediaMessage, OUT_CHUNK_SIZE};
use super::message::{read_status, user_event, Command, Message};
use super::url::RtmpUrl;

/// What the server sent after a publish or play started.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// Media while playing.
    Media(MediaMessage),
    /// An `onStatus` after the publish/play started, e.g. `NetStream.Play.UnpublishNotify`.
    Status { level: String, code: String, description: String },
    /// User Control "Stream EOF" for the stream we play: the origin's publisher left.
    /// (nginx-rtmp sends only this unless `publish_notify on`.)
    StreamEof,
}

/// Where the client is in its exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    Handshaking,
    /// `connect` sent, waiting for its `_result`.
    Connecting,
    Connected,
    /// `createStream` sent (for publishing when `publish` is true).
    CreatingStream {
        publish: bool,
    },
    PublishPending,
    Publishing,
    PlayPending,
    Playing,
}

const TXN_CONNECT: f64 = 1.0;
const TXN_CREATE_STREAM: f64 = 4.0;
const TXN_PUBLISH_PLAY: f64 = 5.0;

/// One client-side RTMP connection's protocol state.
#[derive(Debug)]
pub struct ClientSession {
    handshake: ClientHandshake,
    link: Link,
    url: RtmpUrl,
    state: ClientState,
    stream_id: u32,
    events: VecDeque<ClientEvent>,
}

fn rejected(info: Option<&Amf0Value>, fallback_code: &str) -> RtmpError {
    let (_, code, description) = info.map(read_status).unwrap_or_default();
    let code = if code.is_empty() { fallback_code.to_string() } else { code };
    RtmpError::Rejected { code, description }
}

/// Whether a data message is `|RtmpSampleAccess`.
fn is_sample_access(payload: &[u8]) -> bool {
    const NAME: &[u8] = b"|RtmpSampleAccess";
    payload.len() >= 3 + NAME.len() && payload[0] == 0x02 && &payload[3..3 + NAME.len()] == NAME
}

impl ClientSession {
    /// Starts a session for `url`: C0+C1 are queued in the output. `time_ms` goes into C1.
    pub fn new(url: &RtmpUrl, time_ms: u32) -> Self {
        let mut link = Link::default();
        let handshake = ClientHandshake::start(time_ms, link.writer.buffer());
        ClientSession {
            handshake,
            link,
            url: url.clone(),
            state: ClientState::Handshaking,
            stream_id: 0,
            events: VecDeque::new(),
        }
    }

    pub fn state(&self) -> ClientState {
        self.state
    }

    /// Bytes to send to the server.
    pub fn output(&mut self) -> &mut BytesMut {
        self.link.writer.buffer()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Consumes handshake data and messages from `input`. A refused connect, publish or
    /// play is an [`RtmpError::Rejected`].
    pub fn handle_input(&mut self, input: &mut BytesMut) -> Result<(), RtmpError> {
        if self.state == ClientState::Handshaking {
            if !self.handshake.process(input, self.link.writer.buffer())? {
                return Ok(());
            }
            self.send_connect();
        }
        while let Some(msg) = self.link.next_message(input)? {
            match msg {
                Message::Command(cmd) => self.handle_command(cmd)?,
                Message::Media(m) => self.media(m),
                Message::Aggregate(list) => list.into_iter().for_each(|m| self.media(m)),
                Message::UserControl { event: user_event::STREAM_EOF, value }
                    if self.state == ClientState::Playing && value == self.stream_id =>
                {
                    self.events.push_back(ClientEvent::StreamEof);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn send_connect(&mut self) {
        let w = &mut self.link.writer;
        w.set_chunk_size(OUT_CHUNK_SIZE);
        let object = Amf0Value::object([
            ("app", Amf0Value::string(self.url.app.clone())),
            ("type", Amf0Value::string("nonprivate")),
            ("flashVer", Amf0Value::string("FMLE/3.0 (compatible; interop-gateway)")),
            ("tcUrl", Amf0Value::string(self.url.tc_url.clone())),
            ("fpad", Amf0Value::Boolean(false)),
            ("capabilities", Amf0Value::Number(15.0)),
            ("audioCodecs", Amf0Value::Number(4071.0)),
            ("videoCodecs", Amf0Value::Number(252.0)),
            ("videoFunction", Amf0Value::Number(1.0)),
            ("objectEncoding", Amf0Value::Number(0.0)),
        ]);
        w.command(0, &[Amf0Value::string("connect"), Amf0Value::Number(TXN_CONNECT), object]);
        self.state = ClientState::Connecting;
    }

    fn media(&mut self, m: MediaMessage) {
        if m.kind == MediaKind::Data && is_sample_access(&m.payload) {
            return; // Flash player permissions, not stream data
        }
        if self.state == ClientState::Playing {
            self.events.push_back(ClientEvent::Media(m));
        }
    }

    fn handle_command(&mut self, cmd: Command) -> Result<(), RtmpError> {
        let info = cmd.args.first();
        match (cmd.name.as_str(), cmd.transaction_id) {
            ("_result", TXN_CONNECT) if self.state == ClientState::Connecting => {
                self.state = ClientState::Connected;
            }
            ("_error", TXN_CONNECT) if self.state == ClientState::Connecting => {
                return Err(rejected(info, "NetConnection.Connect.Rejected"));
            }
            ("_result", TXN_CREATE_STREAM) => {
                if let ClientState::CreatingStream { publish } = self.state {
                    let id = info.and_then(Amf0Value::as_f64).unwrap_or(1.0);
                    self.stream_id = if id >= 0.0 && id <= f64::from(u32::MAX) { id as u32 } else { 1 };
                    self.send_publish_or_play(publish);
                }
            }
            ("_error", TXN_CREATE_STREAM) => {
                return Err(rejected(info, "NetStream.CreateStream.Failed"));
            }
            ("onStatus", _) => {
                let (level, code, description) = info.map(read_status).unwrap_or_default();
                return self.status(level, code, description);
            }
            ("close", _) => {
                return Err(RtmpError::Rejected {
                    code: "NetConnection.Connect.Closed".into(),
                    description: "server sent close".into(),
                })
            }
            (name, txn) => tracing::trace!(command = name, txn, "RTMP command ignored"),
        }
        Ok(())
    }

    fn status(&mut self, level: String, code: String, description: String) -> Result<(), RtmpError> {
        let pending = matches!(self.state, ClientState::PublishPending | ClientState::PlayPending);
        if pending && level == "error" {
            return Err(RtmpError::Rejected { code, description });
        }
        match (self.state, code.as_str()) {
            (ClientState::PublishPending, "NetStream.Publish.Start") => {
                self.state = ClientState::Publishing;
            }
            (ClientState::PlayPending, "NetStream.Play.Start") => self.state = ClientState::Playing,
            (ClientState::Publishing | ClientState::Playing, _) => {
                self.events.push_back(ClientEvent::Status { level, code, description });
            }
            _ => tracing::debug!(%code, "RTMP status before publish/play started"),
        }
        Ok(())
    }

    fn send_publish_or_play(&mut self, publish: bool) {
        let key = Amf0Value::string(self.url.key.clone());
        let sid = self.stream_id;
        let txn = Amf0Value::Number(TXN_PUBLISH_PLAY);
        let w = &mut self.link.writer;
        if publish {
            w.command(sid, &[Amf0Value::string("publish"), txn, Amf0Value::Null, key, Amf0Value::string("live")]);
            self.state = ClientState::PublishPending;
        } else {
            // start -2000 (as ffmpeg sends): live if there is one, else recorded.
            w.command(sid, &[Amf0Value::string("play"), txn, Amf0Value::Null, key, Amf0Value::Number(-2000.0)]);
            w.set_buffer_length(sid, 3000);
            self.state = ClientState::PlayPending;
        }
    }

    fn create_stream(&mut self, publish: bool) -> Result<(), RtmpError> {
        if self.state != ClientState::Connected {
            return Err(RtmpError::Protocol(format!(
                "cannot start to {} in state {:?}",
                if publish { "publish" } else { "play" },
                self.state
            )));
        }
        let key = Amf0Value::string(self.url.key.clone());
        let w = &mut self.link.writer;
        if publish {
            for (i, name) in ["releaseStream", "FCPublish"].into_iter().enumerate() {
                w.command(
                    0,
                    &[Amf0Value::string(name), Amf0Value::Number(2.0 + i as f64), Amf0Value::Null, key.clone()],
                );
            }
        }
        w.command(0, &[Amf0Value::string("createStream"), Amf0Value::Number(TXN_CREATE_STREAM), Amf0Value::Null]);
        self.state = ClientState::CreatingStream { publish };
        Ok(())
    }

    /// Sends releaseStream, FCPublish and createStream; `publish` follows its result.
    pub fn start_publish(&mut self) -> Result<(), RtmpError> {
        self.create_stream(true)
    }

    /// Sends createStream; `play` follows its result.
    pub fn start_play(&mut self) -> Result<(), RtmpError> {
        self.create_stream(false)
    }

    /// Queues a media message on our stream (only once publishing).
    pub fn send_media(&mut self, kind: MediaKind, timestamp: u32, payload: &[u8]) -> Result<(), RtmpError> {
        if self.state != ClientState::Publishing {
            return Err(RtmpError::Protocol(format!("send_media in state {:?}", self.state)));
        }
        self.link.writer.media(self.stream_id, kind, timestamp, payload);
        Ok(())
    }

    /// Queues FCUnpublish + deleteStream (publishing) or deleteStream (playing).
    pub fn finish(&mut self) {
        let sid = Amf0Value::Number(f64::from(self.stream_id));
        let w = &mut self.link.writer;
        if self.state == ClientState::Publishing {
            let key = Amf0Value::string(self.url.key.clone());
            w.command(0, &[Amf0Value::string("FCUnpublish"), Amf0Value::Number(6.0), Amf0Value::Null, key]);
        }
        if matches!(self.state, ClientState::Publishing | ClientState::Playing) {
            w.command(0, &[Amf0Value::string("deleteStream"), Amf0Value::Number(7.0), Amf0Value::Null, sid]);
            self.state = ClientState::Connected;
        }
    }
}
