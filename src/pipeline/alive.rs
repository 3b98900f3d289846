//! How many GStreamer pipelines are alive (not yet finalized), for `/metrics` and the soak.
//!
//! [`super::live::hold`] registers every pipeline here before it plays; the count is of those
//! whose GObject still exists, so a pipeline leaked by a lost reference (or stopped but kept)
//! still counts after `live` has let go of it.

use std::sync::Mutex;

use gstreamer as gst;
use gstreamer::prelude::*;

static LIVE: Mutex<Vec<gst::glib::WeakRef<gst::Pipeline>>> = Mutex::new(Vec::new());

/// Records `pipeline` as alive until its last reference goes.
pub fn register(pipeline: &gst::Pipeline) {
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    live.retain(|w| w.upgrade().is_some());
    live.push(pipeline.downgrade());
}

/// The registered pipelines not yet finalized.
pub fn count() -> usize {
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    live.retain(|w| w.upgrade().is_some());
    live.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_until_the_last_reference_goes() {
        super::super::init();
        let before = count();
        let p = gst::Pipeline::with_name("live-count-test");
        register(&p);
        let other = p.clone();
        assert!(count() > before);
        drop(p);
        assert!(count() > before, "a clone still holds it");
        drop(other);
        // Other tests may create pipelines in parallel; ours is gone in any case.
        let live = LIVE.lock().unwrap();
        assert!(live.iter().filter_map(|w| w.upgrade()).all(|p| p.name() != "live-count-test"));
    }
}
