//! A push: relays a local stream to an RTMP origin (a CDN) whenever the stream is live,
//! reconnecting with backoff when the origin drops or refuses.

use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::status::{RelayState, StatusCell};
use super::RelayError;
use crate::config::RelaySettings;
use crate::hub::{ConsumerRequest, Hub, StreamKey};
use crate::media::Protocol;
use crate::protocols::flv::{FlvEgress, FlvTag as Tag, TagKind};
use crate::protocols::rtmp::{ClientConn, ClientEvent, MediaKind, RtmpUrl};

pub(super) async fn run(hub: Hub, key: StreamKey, url: RtmpUrl, status: StatusCell, settings: RelaySettings, cancel: CancellationToken) {
    let mut backoff = Backoff::new(settings.retry_min(), settings.retry_max());
    loop {
        if hub.stream(&key).is_none() {
            status.set(RelayState::Waiting);
            tokio::select! {
                _ = hub.wait_for_stream(&key) => {}
                _ = cancel.cancelled() => return,
            }
        }
        status.set(RelayState::Connecting);
        let started = Instant::now();
        let result = tokio::select! {
            r = push_once(&hub, &key, &url, &status, &settings) => r,
            _ = cancel.cancelled() => return,
        };
        backoff.ended_after(started.elapsed());
        let error = match result {
            Ok(()) => {
                tracing::info!("stream ended; push waits for it to come back");
                backoff.reset();
                continue;
            }
            Err(e) => e,
        };
        if let RelayError::Hub(crate::hub::HubError::NotFound(_)) = error {
            continue; // the stream ended between the check and the subscribe
        }
        if !super::retry_after("push", &error, &mut backoff, &settings, &status, &cancel).await {
            return;
        }
    }
}

/// One connection: Ok when the local stream ended, Err when the origin failed us.
async fn push_once(
    hub: &Hub,
    key: &StreamKey,
    url: &RtmpUrl,
    status: &StatusCell,
    settings: &RelaySettings,
) -> Result<(), RelayError> {
    let mut conn = ClientConn::connect(url, settings.connect_timeout()).await?;
    tokio::time::timeout(settings.connect_timeout(), conn.publish())
        .await
        .map_err(|_| RelayError::Timeout("publish"))??;
    let who = ConsumerRequest { protocol: Protocol::Cdn, transport: "rtmp-push".into(), remote: Some(url.to_string()) };
    let mut sub = hub.subscribe(key, who).await?;
    status.set(RelayState::Live);
    tracing::info!("pushing");
    let mut egress = FlvEgress::new();
    let mut tags = Vec::new();
    egress.start(sub.video_info(), sub.audio_info(), &mut tags);
    send(&mut conn, &mut tags, status).await?;
    loop {
        tokio::select! {
            frame = sub.next() => {
                let Some(frame) = frame else { return Ok(()) };
                if egress.frame(&frame, &mut tags).is_ok() {
                    send(&mut conn, &mut tags, status).await?;
                }
            }
            event = conn.next_event() => match event? {
                None => return Err(RelayError::Closed),
                Some(ClientEvent::Status { level, code, description }) if level == "error" => {
                    return Err(RelayError::Origin(format!("{code}: {description}")));
                }
                Some(_) => {}
            },
        }
    }
}

async fn send<S>(conn: &mut ClientConn<S>, tags: &mut Vec<Tag>, status: &StatusCell) -> Result<(), RelayError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    for t in tags.drain(..) {
        let kind = match t.kind {
            TagKind::Audio => MediaKind::Audio,
            TagKind::Video => MediaKind::Video,
            TagKind::Script => MediaKind::Data,
        };
        let body = if t.kind == TagKind::Script { with_set_data_frame(&t.body) } else { t.body };
        conn.send_media(kind, t.timestamp, &body).await?;
        status.add_bytes(body.len());
    }
    Ok(())
}

/// A publisher sends metadata as `@setDataFrame("onMetaData", {...})`.
fn with_set_data_frame(body: &bytes::Bytes) -> bytes::Bytes {
    let mut out = bytes::BytesMut::new();
    crate::protocols::rtmp::amf::write_values(&mut out, &[crate::protocols::rtmp::amf::Amf0Value::string("@setDataFrame")]);
    out.extend_from_slice(body);
    out.freeze()
}
