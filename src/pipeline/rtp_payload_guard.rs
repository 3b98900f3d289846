//! A pad probe that runs a [`PayloadCheck`] on every RTP packet before a VP8, Opus, AAC or
//! MPEG depayloader: refused packets are dropped (the depayloader sees a sequence gap, as for
//! a lost packet) and each refusal is reported to `on_refused`.
//!
//! A probe on a sink pad must not return `PadProbeReturn::Drop` for a buffer: gstreamer-rs
//! takes the buffer out of the probe info (leaving NULL) and unrefs it itself, and GStreamer
//! 1.22's chain path then unrefs that NULL (`gst_mini_object_unref: assertion 'mini_object !=
//! NULL' failed`, once per dropped packet). `Handled` consumes the buffer cleanly instead.

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::media::rtp::{PayloadCheck, PayloadReject};

/// Checks every RTP buffer (or buffer list) flowing through `pad`.
pub fn guard_rtp_payload(
    pad: &gst::Pad,
    check: PayloadCheck,
    on_refused: impl Fn(PayloadReject) + Send + Sync + 'static,
) {
    pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, info| {
        match &mut info.data {
            Some(gst::PadProbeData::Buffer(buffer)) => {
                if let Err(reason) = judge(&check, buffer) {
                    on_refused(reason);
                    return gst::PadProbeReturn::Handled;
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
                    if out.is_empty() {
                        return gst::PadProbeReturn::Handled;
                    }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use gstreamer as gst;
    use gstreamer::glib;
    use gstreamer::prelude::*;

    use super::guard_rtp_payload;
    use crate::media::rtp::PayloadCheck;
    use crate::media::Codec;

    fn rtp(seq: u8, payload: &[u8]) -> gst::Buffer {
        gst::Buffer::from_slice([&[0x80, 97, 0, seq, 0, 0, 0, 0, 0, 0, 0, 1][..], payload].concat())
    }

    /// A refused packet (here an Opus code-3 TOC with no frame count) is consumed by the probe
    /// on a sink pad: never seen downstream, counted, and no GStreamer-CRITICAL (a `Drop` made
    /// GStreamer 1.22 unref NULL once per refused packet), alone or in a buffer list.
    #[test]
    fn refused_packets_are_consumed_without_a_critical() {
        gst::init().expect("gst init");
        let criticals = Arc::new(AtomicUsize::new(0));
        let seen = criticals.clone();
        let levels = glib::LogLevels::LEVEL_CRITICAL | glib::LogLevels::LEVEL_WARNING;
        let handler = glib::log_set_handler(Some("GStreamer"), levels, false, false, move |_, _, _| {
            seen.fetch_add(1, Ordering::Relaxed);
        });
        let received = Arc::new(AtomicUsize::new(0));
        let count = received.clone();
        let src = gst::Pad::builder(gst::PadDirection::Src).name("src").build();
        let sink = gst::Pad::builder(gst::PadDirection::Sink)
            .name("sink")
            .chain_function(move |_, _, _| {
                count.fetch_add(1, Ordering::Relaxed);
                Ok(gst::FlowSuccess::Ok)
            })
            .chain_list_function(|_, _, list| {
                assert!(!list.is_empty(), "an empty buffer list went on");
                Ok(gst::FlowSuccess::Ok)
            })
            .build();
        let refused = Arc::new(AtomicUsize::new(0));
        let refusals = refused.clone();
        let check = PayloadCheck::for_codec(Codec::Opus, &[]).expect("an Opus check");
        guard_rtp_payload(&sink, check, move |_| {
            refusals.fetch_add(1, Ordering::Relaxed);
        });
        src.link(&sink).expect("link");
        sink.set_active(true).expect("activate sink");
        src.set_active(true).expect("activate src");
        assert!(src.push_event(gst::event::StreamStart::new("guard")));
        assert!(src.push_event(gst::event::Segment::new(&gst::FormattedSegment::<gst::ClockTime>::new())));

        assert_eq!(src.push(rtp(1, &[0xff])), Ok(gst::FlowSuccess::Ok));
        assert_eq!(src.push(rtp(2, &[0xf8, 1, 2, 3])), Ok(gst::FlowSuccess::Ok));
        let mut list = gst::BufferList::new();
        list.get_mut().expect("new list").add(rtp(3, &[0xff]));
        list.get_mut().expect("new list").add(rtp(4, &[0xfd, 1, 2, 3]));
        assert_eq!(src.push_list(list), Ok(gst::FlowSuccess::Ok));

        glib::log_remove_handler(Some("GStreamer"), handler);
        assert_eq!(received.load(Ordering::Relaxed), 1, "only the valid packet reaches the depayloader");
        assert_eq!(refused.load(Ordering::Relaxed), 3);
        assert_eq!(criticals.load(Ordering::Relaxed), 0, "GStreamer criticals or warnings");
        let _ = src.set_active(false);
        let _ = sink.set_active(false);
    }
}
