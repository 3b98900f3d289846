//! GStreamer elements of our own, registered by the gateway at start (no plugin files):
//! what Debian's GStreamer lacks or has broken.

pub mod aacenc;
pub mod mpeg1enc;

/// Registers every element of ours with GStreamer (call after `gstreamer::init`).
pub fn register() -> Result<(), gstreamer::glib::BoolError> {
    aacenc::register()?;
    mpeg1enc::register()?;
    Ok(())
}
