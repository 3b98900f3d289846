//! AAC helpers: AudioSpecificConfig, ADTS.
