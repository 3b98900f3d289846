//! A pad probe that runs a [`PayloadCheck`] on every RTP packet before a VP8, Opus, AAC or
//! MPEG depayloader: refused packets are dropped (the depayloader sees a sequence gap, as for
//! a lost packet) and each refusal is reported to `on_refused`.

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::media::rtp::{PayloadCheck, PayloadReject};

/// Checks every RTP buffer (or buffer list) flowing through `pad`.
pub fn guard_rtp_payload(pad: &gst::Pad, check: PayloadCheck, on_refused: impl Fn(PayloadReject) + Send + Sync + 'static) {
    pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, info| {
        match &mut info.data {
            Some(gst::PadProbeData::Buffer(buffer)) => {
                if let Err(reason) = judge(&check, buffer) {
                    on_refused(reason);
                    return gst::PadProbeReturn::Drop;
                }
            }
            Some(gst::PadProbeData::BufferList(list)) => {
                let bad = list.iter().filter_map(|b| judge(&check, b).err()).collect::<Vec<_>>();
                if !bad.is_empty() {
                    let mut out = gst::BufferList::new_sized(list.len());
                    for buffer in list.iter_owned() {
                        if judge(&check, &buffer).is_ok() {
                            out.make_mut().add(buffer);
                        }
                    }
                    bad.into_iter().for_each(&on_refused);
                    *list = out;
                }
            }
            _ => {}
        }
        gst::PadProbeReturn::Ok
    });
}

fn judge(check: &PayloadCheck, buffer: &gst::BufferRef) -> Result<(), PayloadReject> {
    let map = buffer.map_readable().map_err(|_| PayloadReject::RtpHeader)?;
    check.check(map.as_slice())
}
