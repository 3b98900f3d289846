//! `igaacenc`: AAC-LC encoder through fdk-aac (placeholder until implemented).

pub fn register() -> Result<(), gstreamer::glib::BoolError> {
    Ok(())
}
