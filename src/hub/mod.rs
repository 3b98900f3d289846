//! Streams, publishers, consumers (work in progress).
