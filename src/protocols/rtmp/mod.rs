//! RTMP: server and client, a sans-IO protocol core with a thin tokio layer.

pub mod amf;
