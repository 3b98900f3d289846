//! The one door H.264 from any publisher goes through before the hub (and every GStreamer
//! pipeline behind it) sees it: the avcC must parse with our own parsers, and each frame keeps
//! only the NAL units [`sanitize`](crate::media::h264::sanitize) passes. A frame with nothing
//! left, broken AVCC framing or a refused avcC is dropped.

use std::sync::Arc;

use crate::media::h264::sanitize::{check_config, clean_avcc, Reject};
use crate::media::{Codec, Frame, TrackInfo};

/// Bytes in each NAL length prefix of the hub's H.264 frames.
const HUB_NAL_LENGTH: u8 = 4;

/// Per publisher: the last track info checked, and its verdict.
#[derive(Default)]
pub(super) struct H264Gate {
    checked: Option<(Arc<TrackInfo>, Result<(), Reject>)>,
    warned: u32,
}

/// Log at most this many refusals per publisher (the metrics count them all).
const WARNINGS: u32 = 5;

impl H264Gate {
    /// The frame to publish (cleaned), or `None`; with how many units were refused.
    pub(super) fn admit(&mut self, frame: Frame) -> (Option<Frame>, usize) {
        if frame.codec() != Codec::H264 {
            return (Some(frame), 0);
        }
        if let Err(reason) = self.config_verdict(&frame.info) {
            self.warn(reason, "avcC refused; frame dropped");
            return (None, 1);
        }
        match clean_avcc(&frame.data, HUB_NAL_LENGTH) {
            Err(reason) => {
                self.warn(reason, "frame dropped");
                (None, 1)
            }
            Ok(cleaned) if cleaned.removed.is_empty() => (Some(frame), 0),
            Ok(cleaned) => {
                let refused = cleaned.removed.len();
                self.warn(cleaned.removed[0], "NAL units removed");
                let frame = cleaned.data.map(|data| Frame::new(frame.info, frame.dts, frame.pts, frame.keyframe, data));
                (frame, refused)
            }
        }
    }

    fn config_verdict(&mut self, info: &Arc<TrackInfo>) -> Result<(), Reject> {
        match &self.checked {
            Some((seen, verdict)) if Arc::ptr_eq(seen, info) => *verdict,
            _ => {
                let verdict = info.config().map_or(Ok(()), |avcc| check_config(avcc));
                self.checked = Some((info.clone(), verdict));
                verdict
            }
        }
    }

    fn warn(&mut self, reason: Reject, what: &str) {
        if self.warned < WARNINGS {
            self.warned += 1;
            tracing::warn!(%reason, "publisher's H.264: {what}");
        }
    }
}
