//! The black-box tests: the built gateway binary against real peers on 127.0.0.1 (ffmpeg,
//! ffprobe, nginx-rtmp, GStreamer, Chromium), one module per concern and `common` their
//! harness. One test binary, not one per file: the harness and the crate's generics are
//! compiled and linked once, which takes minutes off a fresh build. Run one module with e.g.
//! `cargo nextest run --release -E 'test(/^rtmp_family::/)'`.

mod common;

mod aacenc;
mod access;
mod bad_input;
mod cdn_failover;
mod cluster;
mod config_relays;
mod conformance;
mod console;
mod egress_start;
mod flv_paths;
mod flv_roundtrip;
mod gst_interop;
mod h5;
mod harness;
mod hls;
mod hostile_media;
mod hub_churn;
mod hub_conversions;
mod limits;
mod matrix;
mod matrix_runtime;
mod mini_late_audio;
mod mini_profile;
mod mpeg1enc;
mod openapi;
mod reconnect;
mod recording;
mod rtmp_family;
mod rtmp_wire;
mod stalled_viewers;
mod udp;
mod webrtc_browser;
mod webrtc_gateway;
mod webrtc_peers;
mod whep_shared;
