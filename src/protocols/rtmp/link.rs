//! What both ends of an RTMP connection do the same way once the handshake is over: read
//! messages, obey protocol control (chunk size, abort, acknowledgement window, ping), and
//! queue outgoing bytes.

use bytes::BytesMut;

use super::chunk::{ChunkDecoder, ChunkLimits};
use super::error::RtmpError;
use super::message::{parse, user_event, Message, Writer};

/// The acknowledgement window we announce to peers.
pub const OUR_WINDOW_ACK_SIZE: u32 = 5_000_000;

/// Message layer of one connection (after the handshake).
#[derive(Debug, Default)]
pub struct Link {
    decoder: ChunkDecoder,
    pub writer: Writer,
    /// Chunk stream bytes received so far.
    bytes_in: u64,
    /// `bytes_in` when we last sent an Acknowledgement.
    acked: u64,
    /// The peer's Window Acknowledgement Size (0 = none announced).
    peer_window: u32,
}

impl Link {
    /// A link whose peer is held to `limits`.
    pub fn with_limits(limits: ChunkLimits) -> Self {
        Link { decoder: ChunkDecoder::with_limits(limits), ..Link::default() }
    }

    /// Lets the peer send messages up to the media limit (it publishes).
    pub fn allow_media(&mut self) {
        self.decoder.allow_media();
    }

    /// Reads the next message that is not protocol control, handling those on the way.
    /// `None` when `input` holds no complete message (the rest stays in `input`).
    pub fn next_message(&mut self, input: &mut BytesMut) -> Result<Option<Message>, RtmpError> {
        loop {
            let before = input.len();
            let raw = self.decoder.decode(input);
            self.bytes_in += (before - input.len()) as u64;
            self.maybe_ack();
            let Some(raw) = raw? else { return Ok(None) };
            match parse(raw)? {
                Message::SetChunkSize(size) => self.decoder.set_chunk_size(size)?,
                Message::Abort(csid) => self.decoder.abort(csid),
                Message::WindowAckSize(size) => self.peer_window = size,
                Message::UserControl { event: user_event::PING_REQUEST, value } => {
                    self.writer.user_control(user_event::PING_RESPONSE, value);
                }
                Message::Ack(_) | Message::SetPeerBandwidth { .. } | Message::Other(_) => {}
                other => return Ok(Some(other)),
            }
        }
    }

    /// Sends an Acknowledgement when a whole window has arrived since the last one.
    fn maybe_ack(&mut self) {
        if self.peer_window > 0 && self.bytes_in - self.acked >= u64::from(self.peer_window) {
            // The sequence number is the byte count modulo 2^32.
            self.writer.ack(self.bytes_in as u32);
            self.acked = self.bytes_in;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::rtmp::media::MediaKind;
    use crate::protocols::rtmp::message::Writer;

    fn drain(link: &mut Link) -> Vec<Message> {
        let mut dec = ChunkDecoder::new();
        let mut msgs = Vec::new();
        while let Some(raw) = dec.decode(link.writer.buffer()).unwrap() {
            msgs.push(parse(raw).unwrap());
        }
        msgs
    }

    #[test]
    fn ping_answered_and_chunk_size_obeyed() {
        let mut peer = Writer::default();
        peer.user_control(user_event::PING_REQUEST, 42);
        peer.set_chunk_size(4096);
        peer.media(1, MediaKind::Video, 10, &[9u8; 3000]);
        let mut link = Link::default();
        let msg = link.next_message(peer.buffer()).unwrap();
        match msg {
            Some(Message::Media(m)) => assert_eq!(m.payload.len(), 3000),
            other => panic!("expected media, got {other:?}"),
        }
        assert_eq!(drain(&mut link), vec![Message::UserControl { event: user_event::PING_RESPONSE, value: 42 }]);
    }

    #[test]
    fn acknowledgements_follow_the_peer_window() {
        let mut peer = Writer::default();
        peer.window_ack_size(1000);
        for _ in 0..5 {
            peer.media(1, MediaKind::Audio, 0, &[0u8; 100]);
        }
        let mut link = Link::default();
        let total_in = peer.buffer().len() as u32;
        let mut media = 0;
        while let Some(m) = link.next_message(peer.buffer()).unwrap() {
            assert!(matches!(m, Message::Media(_)));
            media += 1;
        }
        assert_eq!(media, 5);
        // 16 + 5 * (12 + 100 (128 chunk: one chunk each)) = 576 bytes: below the window.
        assert_eq!(total_in, 16 + 5 * 112);
        assert!(drain(&mut link).is_empty());
        for _ in 0..5 {
            peer.media(1, MediaKind::Audio, 0, &[0u8; 100]);
        }
        while link.next_message(peer.buffer()).unwrap().is_some() {}
        // The window is crossed by the 9th audio message: 16 + 9 * 112 = 1024 bytes.
        assert_eq!(drain(&mut link), vec![Message::Ack(16 + 9 * 112)]);
    }
}
