//! Streams, publishers, consumers.
