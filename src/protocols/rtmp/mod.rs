//! RTMP.
