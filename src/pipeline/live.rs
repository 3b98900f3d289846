//! Every pipeline that is set playing is held here until it is back at Null.
//!
//! GStreamer must never dispose a pipeline that is still playing (a `GStreamer-CRITICAL`, and
//! at process exit a crash while its streaming threads run). Holding a reference here until
//! the pipeline's stop has completed makes that impossible, whichever task or `Drop` lets go
//! of it last; shutdown stops whatever sessions left behind ([`stop_all`]) and waits for it.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

static LIVE: Mutex<Option<HashMap<usize, gst::Pipeline>>> = Mutex::new(None);

fn live() -> MutexGuard<'static, Option<HashMap<usize, gst::Pipeline>>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

fn id(pipeline: &gst::Pipeline) -> usize {
    pipeline.as_ptr() as usize
}

/// Holds `pipeline` until [`stop_now`] (or [`stop_all`]) has set it to Null. Call before
/// setting it playing.
pub fn hold(pipeline: &gst::Pipeline) {
    super::alive::register(pipeline);
    live().get_or_insert_with(HashMap::new).insert(id(pipeline), pipeline.clone());
}

/// Sets `pipeline` to Null (blocking: joins its streaming threads), then lets go of it.
pub fn stop_now(pipeline: &gst::Pipeline) {
    let _ = pipeline.set_state(gst::State::Null);
    if let Some(map) = live().as_mut() {
        map.remove(&id(pipeline));
    }
}

/// [`stop_now`] off the async workers, awaited.
pub async fn stop(pipeline: gst::Pipeline) {
    let _ = tokio::task::spawn_blocking(move || stop_now(&pipeline)).await;
}

/// Stops `pipeline` without blocking an async worker: stopping joins the streaming threads,
/// so inside a tokio runtime it runs on the blocking pool (for `Drop` impls, which cannot
/// await). Should the runtime be going away, the pipeline stays held and [`stop_all`] stops it.
pub fn stop_in_background(pipeline: gst::Pipeline) {
    let stop = move || stop_now(&pipeline);
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => drop(rt.spawn_blocking(stop)),
        Err(_) => stop(),
    }
}

/// Pipelines set playing and not yet stopped.
pub fn count() -> usize {
    live().as_ref().map_or(0, HashMap::len)
}

/// Stops every pipeline still held (blocking); returns how many there were.
pub fn stop_all() -> usize {
    let pipelines: Vec<gst::Pipeline> = live().as_ref().map(|m| m.values().cloned().collect()).unwrap_or_default();
    for pipeline in &pipelines {
        tracing::debug!(pipeline = %pipeline.name(), "stopping a pipeline left running at shutdown");
        stop_now(pipeline);
    }
    pipelines.len()
}

/// Waits (bounded) until no pipeline is held; true if none is.
pub async fn wait_all_stopped(timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if count() == 0 {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn playing(name: &str) -> gst::Pipeline {
        super::super::init();
        let p =
            gst::parse::launch("audiotestsrc is-live=true ! fakesink").unwrap().downcast::<gst::Pipeline>().unwrap();
        p.set_property("name", name);
        hold(&p);
        p.set_state(gst::State::Playing).unwrap();
        p
    }

    #[test]
    fn a_held_pipeline_outlives_its_owner_until_stopped() {
        let a = playing("live-test-a");
        let b = playing("live-test-b");
        let weak = a.downgrade();
        drop(a);
        assert!(weak.upgrade().is_some(), "held although its owner dropped it");
        stop_now(&b);
        assert_eq!(b.current_state(), gst::State::Null);
        assert!(live().as_ref().is_some_and(|m| !m.contains_key(&id(&b))));
        let a = weak.upgrade().expect("held");
        assert!(stop_all() >= 1);
        assert_eq!(a.current_state(), gst::State::Null);
        drop(a);
        // GStreamer's own threads may still hold it for a moment after the state change.
        let gone = (0..200).any(|_| {
            let gone = weak.upgrade().is_none();
            if !gone {
                std::thread::sleep(Duration::from_millis(10));
            }
            gone
        });
        assert!(gone, "let go once stopped");
    }
}
