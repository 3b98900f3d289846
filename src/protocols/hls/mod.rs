//! HLS out (issue 13): fMP4 (CMAF) segments with LL-HLS parts, cut by a [`segmenter`] per
//! stream shared by all its HLS viewers, or plain MPEG-TS segments cut by [`ts`] for players
//! without fMP4.

pub mod playlist;
pub mod segmenter;
pub mod ts;
