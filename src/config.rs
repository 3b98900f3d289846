//! Gateway configuration.
