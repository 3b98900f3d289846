//! CDN push and pull.
