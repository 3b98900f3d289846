//! HLS out (issue 13): a live playlist of fMP4 (CMAF) segments with LL-HLS parts and
//! blocking reload ([`segmenter`]), and a plain MPEG-TS variant ([`ts`]), cut by one packager
//! per stream and variant ([`live`]) shared by all its HLS viewers and served by [`http`].

pub mod http;
pub mod live;
pub mod player;
pub mod playlist;
pub mod segmenter;
pub mod sessions;
pub mod settings;
pub mod ts;

pub use live::{HlsOutputs, Variant};
pub use settings::HlsSettings;
