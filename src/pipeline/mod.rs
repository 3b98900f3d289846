//! GStreamer pipelines.
