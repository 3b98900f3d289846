//! `igmpeg1enc`: MPEG-1 video encoder through libavcodec (placeholder until implemented).

pub fn register() -> Result<(), gstreamer::glib::BoolError> {
    Ok(())
}
