//! H.264 helpers: avcC, SPS, Annex-B <-> AVCC.
