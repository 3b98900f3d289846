//! H5: JSMpeg viewers and publishers. MPEG-TS (MPEG-1 video + MP2 audio) over WebSocket out,
//! over an HTTP POST body or a WebSocket in.

pub mod ts;
pub mod mp2_audio;
pub mod mpeg1_video;
pub mod ingest;
