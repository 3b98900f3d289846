//! interop-gateway: a live-media gateway that bridges WebRTC, RTMP, raw UDP (RTP), H5/JSMpeg
//! and WeChat mini-program streams, converting tracks only where the matrix says so.
//!
//! Layout:
//! - [`media`]: the one internal stream format every protocol converts to and from.
//! - [`matrix`]: `matrix.yaml`, its validation and the planner (pure, no GStreamer).
//! - [`pipeline`]: GStreamer fragments from `pipelines/` and the conversions built from them.
//! - [`hub`]: streams, their publishers, consumers and shared conversions.
//! - [`protocols`]: one folder per wire protocol (RTMP, FLV, CDN relays, ...).
//! - [`auth`]: admission (who may publish, play, call the API), pure.
//! - [`api`]: the HTTP control API and HTTP media endpoints.
//! - [`cluster`]: several nodes coordinated through Redis (claims, relays between nodes).
//! - [`record`]: stream recordings (fMP4 files with an index, VOD playlists) and highlight
//!   clips cut from a live window or from recordings.

pub mod addr_rules;
pub mod api;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod console;
pub mod gateway;
pub mod http;
pub mod hub;
pub mod limits;
pub mod matrix;
pub mod media;
pub mod pipeline;
pub mod protocols;
pub mod record;
pub mod server;
pub mod socket;
pub mod sync;
pub mod watchdog;
