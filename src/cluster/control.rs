//! Control messages from the other nodes (Redis pub/sub): reload the matrix, disconnect a
//! stream's publisher. A node acts on its own request before sending it, and ignores its echo.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::records::{Action, Control};
use super::Cluster;

/// Wait before subscribing again after the store went away.
const RESUBSCRIBE: Duration = Duration::from_secs(1);

pub(super) async fn listen(cluster: Cluster, reload: Arc<dyn Fn() + Send + Sync>) {
    let shutdown = cluster.shutdown().clone();
    loop {
        if let Ok(pubsub) = cluster.store().control_subscription().await {
            let mut messages = pubsub.into_on_message();
            loop {
                let message = tokio::select! {
                    m = messages.next() => m,
                    _ = shutdown.cancelled() => return,
                };
                let Some(message) = message else { break };
                match Control::parse(message.get_payload_bytes()) {
                    Some(control) if control.from != cluster.node() => apply(&cluster, &control, reload.as_ref()),
                    Some(_) => {}
                    None => tracing::debug!("control message ignored (not one of ours)"),
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RESUBSCRIBE) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

fn apply(cluster: &Cluster, control: &Control, reload: &(dyn Fn() + Send + Sync)) {
    match &control.action {
        Action::Reload => {
            tracing::info!(from = %control.from, "matrix reload asked by another node");
            reload();
        }
        Action::Kick { stream } => {
            let Ok(key) = stream.parse::<crate::hub::StreamKey>() else { return };
            if let Some(live) = cluster.hub().stream(&key) {
                tracing::info!(from = %control.from, stream = %key, "publisher disconnected as another node asked");
                live.kick();
            }
        }
    }
}
