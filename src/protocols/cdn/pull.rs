//! A pull: plays a remote RTMP stream and makes it the local publisher of a key (protocol
//! `cdn`), reconnecting with backoff when the origin drops or has no such stream.

use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::status::{RelayState, StatusCell};
use super::RelayError;
use crate::config::RelaySettings;
use crate::hub::{Hub, StreamKey};
use crate::media::Protocol;
use crate::protocols::flv::{FlvIngest, TagKind};
use crate::protocols::rtmp::{ClientConn, ClientEvent, MediaKind, RtmpUrl};

pub(super) async fn run(
    hub: Hub,
    key: StreamKey,
    url: RtmpUrl,
    status: StatusCell,
    settings: RelaySettings,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(settings.retry_min(), settings.retry_max());
    loop {
        status.set(RelayState::Connecting);
        let error = tokio::select! {
            e = pull_once(&hub, &key, &url, &status, &settings) => e,
            _ = cancel.cancelled() => return,
        };
        if status.snapshot().state == RelayState::Live {
            // It got going: a flapping origin is retried promptly, not after a grown delay.
            backoff.reset();
        }
        if !super::retry_after("pull", &error, &mut backoff, &settings, &status, &cancel).await {
            return;
        }
    }
}

/// One connection; always ends in the reason it ended.
async fn pull_once(
    hub: &Hub,
    key: &StreamKey,
    url: &RtmpUrl,
    status: &StatusCell,
    settings: &RelaySettings,
) -> RelayError {
    let mut conn = match ClientConn::connect(url, settings.connect_timeout()).await {
        Ok(c) => c,
        Err(e) => return e.into(),
    };
    match tokio::time::timeout(settings.connect_timeout(), conn.play()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return e.into(),
        Err(_) => return RelayError::Timeout("play"),
    }
    let mut ingest = FlvIngest::new();
    let mut publisher = None;
    loop {
        let event = tokio::select! {
            e = conn.next_event() => e,
            _ = kicked(&publisher) => return RelayError::Kicked,
        };
        let msg = match event {
            Err(e) => return e.into(),
            Ok(None) => return RelayError::Closed,
            Ok(Some(ClientEvent::Media(msg))) => msg,
            Ok(Some(ClientEvent::StreamEof)) => return RelayError::Origin("the origin's stream ended".into()),
            Ok(Some(ClientEvent::Status { code, description, .. })) => {
                if code.contains("UnpublishNotify") || code.contains("Play.Stop") || code.contains("StreamNotFound") {
                    return RelayError::Origin(format!("{code}: {description}"));
                }
                continue;
            }
        };
        status.add_bytes(msg.payload.len());
        let kind = match msg.kind {
            MediaKind::Audio => TagKind::Audio,
            MediaKind::Video => TagKind::Video,
            MediaKind::Data => TagKind::Script,
        };
        let frames = match ingest.push(kind, msg.timestamp, msg.payload.clone()) {
            Ok(frames) => frames,
            Err(e) => {
                tracing::debug!(error = %e, "tag skipped");
                continue;
            }
        };
        if frames.is_empty() {
            continue;
        }
        if publisher.is_none() {
            match hub.claim_and_publish(key.clone(), Protocol::Cdn, "rtmp-pull", Some(url.to_string())).await {
                Ok(p) => publisher = Some(p),
                Err(e) => return e.into(),
            }
            status.set(RelayState::Live);
            tracing::info!("pulled stream is live");
        }
        if let Some(p) = publisher.as_mut() {
            p.add_bytes_in(msg.payload.len());
            for frame in frames {
                p.push_arc(frame);
            }
        }
    }
}

async fn kicked(publisher: &Option<crate::hub::Publisher>) {
    match publisher {
        Some(p) => p.kicked().await,
        None => std::future::pending().await,
    }
}
