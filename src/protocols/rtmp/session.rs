//! Server side of an RTMP connection without IO: bytes in, [`ServerEvent`]s and reply bytes
//! out. The caller decides on publish/play requests with `accept_*`/`reject_*`.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::amf::Amf0Value;
use super::chunk::ChunkLimits;
use super::error::RtmpError;
use super::handshake::ServerHandshake;
use super::link::{Link, OUR_WINDOW_ACK_SIZE};
use super::media::{MediaKind, MediaMessage, MEDIA_STREAM_ID, OUT_CHUNK_SIZE};
use super::message::{on_status, user_event, Command, Message};

/// What a client asked for or sent.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// `connect` was answered with success (informational).
    Connect { app: String, tc_url: Option<String> },
    /// The client wants to publish; answer with `accept_publish` or `reject_publish`.
    Publish { app: String, key: String, query: Option<String> },
    /// The client wants to play; answer with `accept_play` or `reject_play`.
    Play { app: String, key: String, query: Option<String> },
    /// Audio, video or data from an accepted publisher.
    Media(MediaMessage),
    /// The publisher ended its stream (FCUnpublish, deleteStream or closeStream).
    Unpublish,
    /// The player ended (deleteStream or closeStream).
    Stop,
}

#[derive(Debug, Clone, PartialEq)]
enum Role {
    Idle,
    PublishPending { stream_id: u32, key: String },
    Publishing { stream_id: u32 },
    PlayPending { stream_id: u32, key: String },
    Playing { stream_id: u32 },
}

/// One server-side RTMP connection's protocol state.
#[derive(Debug)]
pub struct ServerSession {
    handshake: ServerHandshake,
    link: Link,
    app: Option<String>,
    /// The query of `connect`'s app (`rtmp://host/live?sign=.../KEY`), for admission.
    app_query: Option<String>,
    role: Role,
    events: VecDeque<ServerEvent>,
}

/// Splits `name?query` into the name and the query (without `?`).
pub fn split_query(s: &str) -> (String, Option<String>) {
    match s.split_once('?') {
        Some((name, query)) => (name.to_string(), Some(query.to_string())),
        None => (s.to_string(), None),
    }
}

fn result(txn: f64, values: impl IntoIterator<Item = Amf0Value>) -> Vec<Amf0Value> {
    let mut v = vec![Amf0Value::string("_result"), Amf0Value::Number(txn)];
    v.extend(values);
    v
}

impl ServerSession {
    /// A new session waiting for the client's handshake; `time_ms` goes into S1.
    pub fn new(time_ms: u32) -> Self {
        Self::with_limits(time_ms, ChunkLimits::default())
    }

    /// A new session whose peer is held to `limits` (commands only until it publishes).
    pub fn with_limits(time_ms: u32, limits: ChunkLimits) -> Self {
        ServerSession {
            handshake: ServerHandshake::new(time_ms),
            link: Link::with_limits(limits),
            app: None,
            app_query: None,
            role: Role::Idle,
            events: VecDeque::new(),
        }
    }

    /// Whether the handshake is complete.
    pub fn handshake_done(&self) -> bool {
        self.handshake.is_done()
    }

    /// The application name from `connect`, once connected.
    pub fn app(&self) -> Option<&str> {
        self.app.as_deref()
    }

    /// Bytes to send to the client (take them with `split()`; a partial write may leave a
    /// rest, which must be sent before anything else).
    pub fn output(&mut self) -> &mut BytesMut {
        self.link.writer.buffer()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// Consumes whatever complete handshake data or messages `input` holds; the incomplete
    /// rest stays in `input`.
    pub fn handle_input(&mut self, input: &mut BytesMut) -> Result<(), RtmpError> {
        if !self.handshake.is_done() && !self.handshake.process(input, self.link.writer.buffer())? {
            return Ok(());
        }
        while let Some(msg) = self.link.next_message(input)? {
            self.handle_message(msg)?;
        }
        Ok(())
    }

    fn handle_message(&mut self, msg: Message) -> Result<(), RtmpError> {
        match msg {
            Message::Command(cmd) => self.handle_command(cmd),
            Message::Media(m) => {
                self.media(m);
                Ok(())
            }
            Message::Aggregate(list) => {
                list.into_iter().for_each(|m| self.media(m));
                Ok(())
            }
            Message::UserControl { event, .. } => {
                tracing::trace!(event, "RTMP user control event ignored");
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn media(&mut self, m: MediaMessage) {
        if matches!(self.role, Role::Publishing { .. }) {
            self.events.push_back(ServerEvent::Media(m));
        } else {
            tracing::debug!(kind = ?m.kind, "RTMP media from a client that is not publishing dropped");
        }
    }

    fn reply(&mut self, stream_id: u32, values: &[Amf0Value]) {
        self.link.writer.command(stream_id, values);
    }

    fn handle_command(&mut self, cmd: Command) -> Result<(), RtmpError> {
        let txn = cmd.transaction_id;
        if cmd.name == "connect" {
            return self.connect(&cmd);
        }
        let Some(app) = self.app.clone() else {
            return Err(RtmpError::Protocol(format!("`{}` before `connect`", cmd.name)));
        };
        match cmd.name.as_str() {
            "releaseStream" | "_checkbw" => {
                if txn != 0.0 {
                    self.reply(0, &result(txn, [Amf0Value::Null, Amf0Value::Undefined]));
                }
            }
            "FCPublish" | "FCUnpublish" => {
                let (name, code) = if cmd.name == "FCPublish" {
                    ("onFCPublish", "NetStream.Publish.Start")
                } else {
                    ("onFCUnpublish", "NetStream.Unpublish.Success")
                };
                let key = cmd.arg_str(0).unwrap_or_default().to_string();
                self.reply(
                    0,
                    &[
                        Amf0Value::string(name),
                        Amf0Value::Number(0.0),
                        Amf0Value::Null,
                        Amf0Value::object([("code", Amf0Value::string(code)), ("description", Amf0Value::string(key))]),
                    ],
                );
                if txn != 0.0 {
                    self.reply(0, &result(txn, [Amf0Value::Null, Amf0Value::Undefined]));
                }
                if cmd.name == "FCUnpublish" {
                    self.end_stream();
                }
            }
            "createStream" => {
                let sid = f64::from(MEDIA_STREAM_ID);
                self.reply(0, &result(txn, [Amf0Value::Null, Amf0Value::Number(sid)]));
            }
            "publish" | "play" => {
                if self.role != Role::Idle {
                    return Err(RtmpError::Protocol(format!(
                        "`{}` on a connection that already publishes or plays",
                        cmd.name
                    )));
                }
                let (key, query) = split_query(cmd.arg_str(0).unwrap_or_default());
                // Credentials may come in the app's query or the stream name's: both count.
                let query = match (self.app_query.clone(), query) {
                    (Some(a), Some(s)) => Some(format!("{a}&{s}")),
                    (a, s) => a.or(s),
                };
                let stream_id = cmd.stream_id;
                if cmd.name == "publish" {
                    // Media may follow at once, before the publish is answered.
                    self.link.allow_media();
                    self.role = Role::PublishPending { stream_id, key: key.clone() };
                    self.events.push_back(ServerEvent::Publish { app, key, query });
                } else {
                    self.role = Role::PlayPending { stream_id, key: key.clone() };
                    self.events.push_back(ServerEvent::Play { app, key, query });
                }
            }
            "deleteStream" | "closeStream" => self.end_stream(),
            "getStreamLength" => {
                if txn != 0.0 {
                    self.reply(0, &result(txn, [Amf0Value::Null, Amf0Value::Number(0.0)]));
                }
            }
            "_result" | "_error" | "onStatus" | "receiveAudio" | "receiveVideo" | "pause" => {
                tracing::debug!(command = %cmd.name, "RTMP command ignored");
            }
            other => {
                tracing::debug!(command = %other, txn, "unknown RTMP command");
                if txn != 0.0 {
                    self.reply(
                        0,
                        &[
                            Amf0Value::string("_error"),
                            Amf0Value::Number(txn),
                            Amf0Value::Null,
                            super::message::status_object(
                                "error",
                                "NetConnection.Call.Failed",
                                &format!("Method not found ({other})"),
                            ),
                        ],
                    );
                }
            }
        }
        Ok(())
    }

    fn connect(&mut self, cmd: &Command) -> Result<(), RtmpError> {
        if self.app.is_some() {
            return Err(RtmpError::Protocol("second `connect` on one connection".into()));
        }
        let text = |k: &str| cmd.object.get(k).and_then(Amf0Value::as_str).map(str::to_string);
        let raw_app = text("app").unwrap_or_default();
        let (app, app_query) = split_query(&raw_app);
        self.app_query = app_query;
        let app = app.trim_matches('/').to_string();
        let tc_url = text("tcUrl");
        let encoding = cmd.object.get("objectEncoding").and_then(Amf0Value::as_f64).unwrap_or(0.0);

        let w = &mut self.link.writer;
        w.window_ack_size(OUR_WINDOW_ACK_SIZE);
        w.set_peer_bandwidth(OUR_WINDOW_ACK_SIZE, 2);
        w.set_chunk_size(OUT_CHUNK_SIZE);
        let info = Amf0Value::object([
            ("level", Amf0Value::string("status")),
            ("code", Amf0Value::string("NetConnection.Connect.Success")),
            ("description", Amf0Value::string("Connection succeeded.")),
            ("objectEncoding", Amf0Value::Number(encoding)),
        ]);
        let props = Amf0Value::object([
            ("fmsVer", Amf0Value::string("FMS/3,0,1,123")),
            ("capabilities", Amf0Value::Number(31.0)),
        ]);
        self.reply(0, &result(cmd.transaction_id, [props, info]));
        self.app = Some(app.clone());
        self.events.push_back(ServerEvent::Connect { app, tc_url });
        Ok(())
    }

    /// deleteStream / closeStream / FCUnpublish: the publisher or player is done.
    fn end_stream(&mut self) {
        match std::mem::replace(&mut self.role, Role::Idle) {
            Role::Publishing { .. } => self.events.push_back(ServerEvent::Unpublish),
            Role::Playing { .. } => self.events.push_back(ServerEvent::Stop),
            _ => {}
        }
    }

    /// Answers a pending publish with Stream Begin + `NetStream.Publish.Start`.
    pub fn accept_publish(&mut self) -> Result<(), RtmpError> {
        let Role::PublishPending { stream_id, key } = &self.role else {
            return Err(RtmpError::Protocol("accept_publish without a pending publish".into()));
        };
        let (stream_id, key) = (*stream_id, key.clone());
        self.link.writer.user_control(user_event::STREAM_BEGIN, stream_id);
        let desc = format!("{key} is now published.");
        self.reply(stream_id, &on_status("status", "NetStream.Publish.Start", &desc));
        self.role = Role::Publishing { stream_id };
        Ok(())
    }

    /// Answers a pending publish with `NetStream.Publish.BadName` carrying `reason`; the
    /// caller then closes the connection.
    pub fn reject_publish(&mut self, reason: &str) -> Result<(), RtmpError> {
        self.refuse_publish("NetStream.Publish.BadName", reason)
    }

    /// Answers a pending publish with an error status `code` (e.g.
    /// `NetStream.Publish.Unauthorized`) carrying `reason`; the caller then closes.
    pub fn refuse_publish(&mut self, code: &str, reason: &str) -> Result<(), RtmpError> {
        let Role::PublishPending { stream_id, .. } = self.role else {
            return Err(RtmpError::Protocol("reject_publish without a pending publish".into()));
        };
        self.reply(stream_id, &on_status("error", code, reason));
        self.role = Role::Idle;
        Ok(())
    }

    /// Answers a pending play with Stream Begin, `NetStream.Play.Reset`, `NetStream.Play.Start`
    /// and `|RtmpSampleAccess`; media may follow.
    pub fn accept_play(&mut self) -> Result<(), RtmpError> {
        let Role::PlayPending { stream_id, key } = &self.role else {
            return Err(RtmpError::Protocol("accept_play without a pending play".into()));
        };
        let (stream_id, key) = (*stream_id, key.clone());
        self.link.writer.user_control(user_event::STREAM_BEGIN, stream_id);
        let reset = format!("Playing and resetting {key}.");
        self.reply(stream_id, &on_status("status", "NetStream.Play.Reset", &reset));
        let start = format!("Started playing {key}.");
        self.reply(stream_id, &on_status("status", "NetStream.Play.Start", &start));
        let mut access = BytesMut::new();
        super::amf::write_values(
            &mut access,
            &[Amf0Value::string("|RtmpSampleAccess"), Amf0Value::Boolean(true), Amf0Value::Boolean(true)],
        );
        self.link.writer.media(stream_id, MediaKind::Data, 0, &access);
        self.role = Role::Playing { stream_id };
        Ok(())
    }

    /// Answers a pending play with `NetStream.Play.StreamNotFound` carrying `reason`.
    pub fn reject_play(&mut self, reason: &str) -> Result<(), RtmpError> {
        self.refuse_play("NetStream.Play.StreamNotFound", reason)
    }

    /// Answers a pending play with an error status `code` carrying `reason`.
    pub fn refuse_play(&mut self, code: &str, reason: &str) -> Result<(), RtmpError> {
        let Role::PlayPending { stream_id, .. } = self.role else {
            return Err(RtmpError::Protocol("reject_play without a pending play".into()));
        };
        self.reply(stream_id, &on_status("error", code, reason));
        self.role = Role::Idle;
        Ok(())
    }

    /// Tells a player the stream ended (Stream EOF + `NetStream.Play.UnpublishNotify`).
    pub fn end_play(&mut self) {
        if let Role::Playing { stream_id } = self.role {
            let w = &mut self.link.writer;
            w.user_control(user_event::STREAM_EOF, stream_id);
            self.reply(stream_id, &on_status("status", "NetStream.Play.UnpublishNotify", "Stream ended."));
        }
    }

    /// Queues chunks pre-encoded by `encode_media_chunks`.
    pub fn send_chunks(&mut self, chunks: &Bytes) {
        self.link.writer.raw(chunks);
    }

    /// Queues one media message on stream 1.
    pub fn send_media(&mut self, kind: MediaKind, timestamp: u32, payload: &[u8]) {
        self.link.writer.media(MEDIA_STREAM_ID, kind, timestamp, payload);
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
