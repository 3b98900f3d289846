//! The HTTP layer every HTTP way in shares, below the API and the protocols: our own HTTP/1
//! accept loop with its bounds ([`serve`], [`linger`], [`body_timeout`], [`write_stall`]),
//! the `{"error": ...}` answers and request parsing ([`error`]), and what a request says about
//! its client for admission ([`client`]), and the route registry every router is built with
//! ([`routes`]). It imports neither the API nor the protocols.

pub mod body_timeout;
pub mod client;
pub mod error;
pub mod linger;
pub mod routes;
pub mod serve;
pub mod write_stall;

pub use error::{parse_json, parse_key, ApiError};
