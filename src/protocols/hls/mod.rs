//! HLS out (issue 13): fMP4 (CMAF) segments with LL-HLS parts, cut by a [`segmenter`] per
//! stream shared by all its HLS viewers.

pub mod playlist;
pub mod segmenter;
