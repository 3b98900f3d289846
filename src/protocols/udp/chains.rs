//! The GStreamer chains per codec: how a track is depayloaded on ingest and payloaded on
//! egress, in gst-launch syntax (the element properties that matter are explained inline).

use crate::media::Codec;

/// `depayloader ! parser ! appsink name=sink`: RTP in, the internal frame format out.
pub fn depayload(codec: Codec) -> &'static str {
    match codec {
        // AVC with avcC codec_data, one access unit per buffer, as the hub carries H.264.
        Codec::H264 => "rtph264depay ! h264parse ! video/x-h264,stream-format=avc,alignment=au ! appsink name=sink",
        Codec::Vp8 => "rtpvp8depay ! appsink name=sink",
        // RFC 2250: whole pictures, sequence headers kept before I-pictures.
        Codec::Mpeg1 => "rtpmpvdepay ! mpegvideoparse ! appsink name=sink",
        Codec::Opus => "rtpopusdepay ! appsink name=sink",
        // Raw access units; aacparse fills rate and channels in from the config.
        Codec::Aac => "rtpmp4gdepay ! aacparse ! audio/mpeg,stream-format=raw ! appsink name=sink",
        Codec::Pcmu => "rtppcmudepay ! appsink name=sink",
        Codec::Pcma => "rtppcmadepay ! appsink name=sink",
        // One MPEG audio frame per buffer, with layer, rate and channels in the caps.
        Codec::Mp2 => "rtpmpadepay ! mpegaudioparse ! appsink name=sink",
    }
}

/// `appsrc name=src ! [parser !] payloader name=pay pt=PT`: frames in, RTP out.
pub fn payload(codec: Codec, pt: u8) -> String {
    let pay = match codec {
        // SPS/PPS before every IDR: a receiver can join at any keyframe.
        Codec::H264 => {
            format!("h264parse ! rtph264pay name=pay pt={pt} config-interval=-1 aggregate-mode=zero-latency")
        }
        Codec::Vp8 => format!("rtpvp8pay name=pay pt={pt} picture-id-mode=15-bit"),
        Codec::Mpeg1 => format!("rtpmpvpay name=pay pt={pt}"),
        Codec::Opus => format!("rtpopuspay name=pay pt={pt}"),
        Codec::Aac => format!("rtpmp4gpay name=pay pt={pt}"),
        Codec::Pcmu => format!("rtppcmupay name=pay pt={pt}"),
        Codec::Pcma => format!("rtppcmapay name=pay pt={pt}"),
        Codec::Mp2 => format!("rtpmpapay name=pay pt={pt}"),
    };
    format!("appsrc name=src format=time is-live=true do-timestamp=false ! {pay}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use gstreamer as gst;

    #[test]
    fn every_codec_has_chains_gstreamer_can_build() {
        crate::pipeline::init();
        for codec in Codec::ALL {
            for description in [depayload(codec).to_string(), payload(codec, 96)] {
                let bin = gst::parse::bin_from_description(&description, true);
                assert!(bin.is_ok(), "{codec}: {description}: {:?}", bin.err());
            }
        }
    }
}
