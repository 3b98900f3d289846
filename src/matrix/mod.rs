//! The conversion matrix (pure, no GStreamer).
