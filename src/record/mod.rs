//! Recording side of a stream: the rolling window of its recent frames ([`window`]) and the
//! highlight clips cut from it or from recording files ([`clip`]).

pub mod clip;
pub mod window;
