//! HTTP control API.
