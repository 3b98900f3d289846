//! FLV tags.
