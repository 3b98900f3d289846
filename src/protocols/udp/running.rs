//! A started GStreamer pipeline owned by one UDP session (ingest or output): its bus errors
//! arrive on a channel, and it is stopped off the async workers, also when dropped.

use gstreamer as gst;
use gstreamer::prelude::*;
use tokio::sync::mpsc;

pub(super) struct Running {
    pipeline: gst::Pipeline,
    errors: mpsc::UnboundedReceiver<String>,
}

impl Running {
    /// Routes the bus's errors to a channel and sets the pipeline playing; on failure, the
    /// pipeline's own error text when it gave one.
    pub(super) fn start(pipeline: gst::Pipeline) -> Result<Running, String> {
        let (tx, errors) = mpsc::unbounded_channel();
        if let Some(bus) = pipeline.bus() {
            bus.set_sync_handler(move |_, msg| {
                if let gst::MessageView::Error(err) = msg.view() {
                    let source = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
                    let debug = err.debug().map(|d| format!(" ({d})")).unwrap_or_default();
                    let _ = tx.send(format!("{source}: {}{debug}", err.error()));
                }
                gst::BusSyncReply::Drop
            });
        }
        crate::pipeline::live::hold(&pipeline);
        let mut running = Running { pipeline, errors };
        if let Err(e) = running.pipeline.set_state(gst::State::Playing) {
            return Err(running.errors.try_recv().unwrap_or_else(|_| e.to_string()));
        }
        Ok(running)
    }

    pub(super) fn pipeline(&self) -> &gst::Pipeline {
        &self.pipeline
    }

    /// Stops the pipeline (off the async workers) and waits until it has; its ports are free
    /// once this returns.
    pub(super) async fn stop(&self) {
        crate::pipeline::live::stop(self.pipeline.clone()).await;
    }

    /// The next error the pipeline reports; pending forever if none does.
    pub(super) async fn next_error(&mut self) -> String {
        match self.errors.recv().await {
            Some(e) => e,
            None => std::future::pending().await,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        crate::pipeline::stop_in_background(self.pipeline.clone());
    }
}
