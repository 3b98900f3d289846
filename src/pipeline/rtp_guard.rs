//! A pad probe that runs [`RtpH264Check`] on every RTP packet before an H.264 depayloader:
//! refused packets are replaced (header kept, payload cleaned or emptied) so the sequence has
//! no gap; each refusal is reported to `on_refused`.

use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::media::h264::rtp::{RtpH264Check, RtpVerdict};
use crate::media::h264::sanitize::Reject;

/// Checks every RTP buffer (or buffer list) flowing through `pad`, which must carry the
/// packets of one H.264 RTP stream in sequence order (after a jitter buffer).
pub fn guard_h264_rtp(pad: &gst::Pad, on_refused: impl Fn(Reject) + Send + Sync + 'static) {
    let check = Arc::new(Mutex::new(RtpH264Check::new()));
    pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, info| {
        let mut check = check.lock().unwrap_or_else(|e| e.into_inner());
        match &mut info.data {
            Some(gst::PadProbeData::Buffer(buffer)) => match judge(&mut check, buffer, &on_refused) {
                Outcome::Keep => {}
                Outcome::Replace(new) => *buffer = new,
                // Not `Drop`: see `rtp_payload_guard` (a NULL unref on GStreamer 1.22).
                Outcome::Drop => return gst::PadProbeReturn::Handled,
            },
            Some(gst::PadProbeData::BufferList(list)) => {
                let mut out = gst::BufferList::new_sized(list.len());
                let mut changed = false;
                for buffer in list.iter_owned() {
                    match judge(&mut check, &buffer, &on_refused) {
                        Outcome::Keep => out.make_mut().add(buffer),
                        Outcome::Replace(new) => {
                            changed = true;
                            out.make_mut().add(new)
                        }
                        Outcome::Drop => changed = true,
                    }
                }
                if changed && out.is_empty() {
                    return gst::PadProbeReturn::Handled;
                }
                if changed {
                    *list = out;
                }
            }
            _ => {}
        }
        gst::PadProbeReturn::Ok
    });
}

enum Outcome {
    Keep,
    Replace(gst::Buffer),
    Drop,
}

fn judge(check: &mut RtpH264Check, buffer: &gst::Buffer, on_refused: &impl Fn(Reject)) -> Outcome {
    let Ok(map) = buffer.map_readable() else { return Outcome::Drop };
    let (packet, reason) = match check.check(map.as_slice()) {
        RtpVerdict::Pass => return Outcome::Keep,
        RtpVerdict::Replace { packet, reason } => (packet, reason),
    };
    drop(map);
    on_refused(reason);
    if packet.is_empty() {
        return Outcome::Drop;
    }
    let mut new = gst::Buffer::from_mut_slice(packet);
    if let Some(dest) = new.get_mut() {
        let flags = gst::BufferCopyFlags::FLAGS | gst::BufferCopyFlags::TIMESTAMPS | gst::BufferCopyFlags::META;
        if buffer.copy_into(dest, flags, ..).is_err() {
            dest.set_pts(buffer.pts());
            dest.set_dts(buffer.dts());
        }
    }
    Outcome::Replace(new)
}
