//! The SDP reader, what the gateway receives from an SDP, and the SDP of an output.

use super::payload::{hex, ingest_tracks, IngestTrack};
use super::sdp::{parse, SdpError};
use super::sdp_out::{base64, output_track, port_for, render, still_fits};
use crate::media::{AudioInfo, Codec, TrackInfo, TrackKind, VideoInfo};

/// As `ffmpeg ... -f rtp ... -sdp_file` writes it for H.264 + Opus.
const FFMPEG_H264_OPUS: &str =
    "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nt=0 0\r\na=tool:libavformat 59.27.100\r\n\
m=video 41000 RTP/AVP 96\r\nc=IN IP4 127.0.0.1\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n\
m=audio 41002 RTP/AVP 97\r\nc=IN IP4 127.0.0.1\r\nb=AS:64\r\na=rtpmap:97 opus/48000/2\r\n";

/// MPEG-1 video and MP2 audio on their static payload types (no rtpmap), as ffmpeg writes.
const FFMPEG_MPEG1_MP2: &str = "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=No Name\nt=0 0\n\
m=video 5000 RTP/AVP 32\nc=IN IP4 127.0.0.1\nb=AS:200\nm=audio 5002 RTP/AVP 14\nc=IN IP4 127.0.0.1\n";

/// A GStreamer sender's SDP: parameter sets and AAC config in fmtp, an SSRC, RTCP ports given.
const GST_H264_AAC: &str = "v=0
o=- 1188340656180883 1 IN IP4 192.0.2.10
s=Session streamed with GStreamer
c=IN IP4 192.0.2.1
t=0 0
m=video 6000 RTP/AVP 96
a=rtpmap:96 H264/90000
a=fmtp:96 packetization-mode=1;profile-level-id=42c01f;sprop-parameter-sets=Z0LAH9kAUAW7ARAAAAMAEAAAAwPA8YMkgA==,aMuDyyA=
a=rtcp:6001
a=ssrc:3735928559 cname:user@host
m=audio 6010 RTP/AVP 97
a=rtpmap:97 MPEG4-GENERIC/48000/2
a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190
a=rtcp:6011
";

fn tracks(sdp: &str) -> Result<Vec<IngestTrack>, SdpError> {
    ingest_tracks(&parse(sdp)?)
}

#[test]
fn ffmpeg_h264_opus() {
    let t = tracks(FFMPEG_H264_OPUS).unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(
        (t[0].kind, t[0].codec, t[0].pt, t[0].rtp_port, t[0].rtcp_port),
        (TrackKind::Video, Codec::H264, 96, 41000, Some(41001))
    );
    assert_eq!((t[0].encoding.as_str(), t[0].clock_rate), ("H264", 90000));
    assert_eq!(t[0].params, [("packetization-mode".to_string(), "1".to_string())]);
    assert_eq!((t[1].kind, t[1].codec, t[1].pt, t[1].rtp_port), (TrackKind::Audio, Codec::Opus, 97, 41002));
    assert_eq!((t[1].encoding.as_str(), t[1].clock_rate, t[1].channels), ("OPUS", 48000, Some(2)));
}

#[test]
fn static_payload_types_need_no_rtpmap() {
    let t = tracks(FFMPEG_MPEG1_MP2).unwrap();
    assert_eq!((t[0].codec, t[0].encoding.as_str(), t[0].clock_rate), (Codec::Mpeg1, "MPV", 90000));
    assert_eq!((t[1].codec, t[1].encoding.as_str(), t[1].clock_rate), (Codec::Mp2, "MPA", 90000));
    let pcmu = FFMPEG_MPEG1_MP2.replace("RTP/AVP 14", "RTP/AVP 0");
    let t = tracks(&pcmu).unwrap();
    assert_eq!((t[1].codec, t[1].clock_rate, t[1].channels), (Codec::Pcmu, 8000, Some(1)));
    let pcma = FFMPEG_MPEG1_MP2.replace("RTP/AVP 14", "RTP/AVP 8");
    assert_eq!(tracks(&pcma).unwrap()[1].codec, Codec::Pcma);
}

#[test]
fn gstreamer_h264_aac_with_fmtp_rtcp_ports_and_ssrc() {
    let t = tracks(GST_H264_AAC).unwrap();
    let v = &t[0];
    assert_eq!((v.rtp_port, v.rtcp_port, v.ssrc), (6000, Some(6001), Some(3_735_928_559)));
    let param = |t: &IngestTrack, k: &str| t.params.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    assert_eq!(
        param(v, "sprop-parameter-sets").as_deref(),
        Some("Z0LAH9kAUAW7ARAAAAMAEAAAAwPA8YMkgA==,aMuDyyA="),
        "base64 '=' kept"
    );
    assert_eq!(param(v, "profile-level-id").as_deref(), Some("42c01f"));
    let a = &t[1];
    assert_eq!((a.codec, a.encoding.as_str(), a.clock_rate, a.channels), (Codec::Aac, "MPEG4-GENERIC", 48000, Some(2)));
    assert_eq!((param(a, "config").as_deref(), param(a, "sizelength").as_deref()), (Some("1190"), Some("13")));
    assert_eq!((a.rtp_port, a.rtcp_port), (6010, Some(6011)));
    // The connection address is where the sender aims (maybe a public address): only checked
    // for multicast, not required to be ours.
    assert_eq!(parse(GST_H264_AAC).unwrap().connection.as_deref(), Some("192.0.2.1"));
}

#[test]
fn the_first_usable_payload_type_is_chosen() {
    let sdp = "v=0\r\nm=video 7000 RTP/AVP 26 98 96\r\na=rtpmap:98 H265/90000\r\na=rtpmap:96 VP8/90000\r\n";
    let t = tracks(sdp).unwrap();
    assert_eq!((t[0].codec, t[0].pt), (Codec::Vp8, 96));
}

#[test]
fn rtcp_mux_binds_no_rtcp_port_and_disabled_lines_are_skipped() {
    let sdp = "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=audio 7000 RTP/AVP 0\r\na=rtcp-mux\r\n";
    let t = tracks(sdp).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].codec, t[0].mline, t[0].rtcp_port), (Codec::Pcmu, 1, None));
}

fn error(sdp: &str) -> String {
    match tracks(sdp) {
        Ok(t) => panic!("expected a refusal, got {t:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unparsable_sdps_are_refused_with_the_line() {
    assert!(error("").contains("empty"));
    assert!(error("{\"not\": \"sdp\"}").contains("line 1"));
    assert!(error("hello").contains("line 1"));
    assert!(error("v=1\r\n").contains("version"));
    assert!(error("v=0\r\nm=video\r\n").contains("line 2"));
    assert!(error("v=0\r\nm=video abc RTP/AVP 96\r\n").contains("not a port"));
    assert!(error("v=0\r\nm=video 5000 RTP/AVP\r\n").contains("no payload type"));
    assert!(error("v=0\r\nm=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264\r\n").contains("no clock rate"));
    assert!(error("v=0\r\nm=video 5000 RTP/AVP 96\r\na=rtpmap:300 H264/90000\r\n").contains("0-127"));
    assert!(error("v=0\r\nm=audio 5000 RTP/AVP 0\r\nthis is not sdp\r\n").contains("line 3"));
}

#[test]
fn sdps_without_ports_or_media_are_refused() {
    assert_eq!(tracks("v=0\r\ns=x\r\n"), Err(SdpError::NoMedia));
    assert_eq!(tracks("v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"), Err(SdpError::NoPort));
}

#[test]
fn payloads_the_gateway_cannot_take_are_refused_with_a_reason() {
    let cases = [
        ("v=0\r\nm=video 5000 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n", "H265"),
        ("v=0\r\nm=video 5000 RTP/AVP 26\r\n", "JPEG"),
        ("v=0\r\nm=audio 5000 RTP/AVP 33\r\n", "MP2T"),
        ("v=0\r\nm=video 5000 RTP/AVP 97\r\n", "no a=rtpmap"),
        ("v=0\r\nm=audio 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n", "video codec, in a audio m-line"),
        ("v=0\r\nm=video 5000 RTP/SAVP 96\r\na=rtpmap:96 H264/90000\r\n", "only plain RTP"),
        ("v=0\r\nm=application 5000 RTP/AVP 96\r\n", "only audio and video"),
        ("v=0\r\nm=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=2\r\n", "packetization-mode=2"),
        ("v=0\r\nm=audio 5000 RTP/AVP 96\r\na=rtpmap:96 MPEG4-GENERIC/44100/2\r\na=fmtp:96 mode=AAC-hbr;sizelength=13\r\n", "without `config`"),
        ("v=0\r\nm=audio 5000 RTP/AVP 96\r\na=rtpmap:96 MPEG4-GENERIC/44100/2\r\na=fmtp:96 mode=generic;config=1210\r\n", "mode `generic`"),
        ("v=0\r\nm=audio 5000 RTP/AVP 96\r\na=rtpmap:96 MPEG4-GENERIC/44100/2\r\na=fmtp:96 mode=AAC-hbr;config=zz;sizelength=13\r\n", "not hex"),
        ("v=0\r\nc=IN IP4 239.1.1.1/32\r\nm=audio 5000 RTP/AVP 0\r\n", "multicast"),
        ("v=0\r\nm=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=video 5010 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n", "a second video"),
    ];
    for (sdp, reason) in cases {
        let e = error(sdp);
        assert!(e.contains(reason), "{sdp:?}: `{e}` lacks `{reason}`");
        assert!(e.starts_with("m-line"), "{e}");
    }
}

#[test]
fn colliding_ports_are_refused() {
    // Audio RTP on the video's RTCP port.
    let e = error("v=0\r\nm=video 5000 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\nm=audio 5001 RTP/AVP 0\r\n");
    assert!(e.contains("port 5001"), "{e}");
    let e = error("v=0\r\nm=audio 65535 RTP/AVP 0\r\n");
    assert!(e.contains("no port for RTCP"), "{e}");
}

#[test]
fn hex_and_base64() {
    assert_eq!(hex("1190"), Some(vec![0x11, 0x90]));
    assert_eq!(hex("120856E500"), Some(vec![0x12, 0x08, 0x56, 0xe5, 0x00]));
    assert_eq!(hex("123"), None);
    assert_eq!(hex("zz"), None);
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(&[0x68, 0xcb, 0x83, 0xcb, 0x20]), "aMuDyyA=");
}

#[test]
fn an_output_sdp_carries_parameter_sets_and_the_aac_config() {
    // avcC with one SPS (Z0LAH9kA... from above, decoded) and one PPS.
    let sps: &[u8] = &[
        0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00,
        0x03, 0x03, 0xc0, 0xf1, 0x83, 0x24, 0x80,
    ];
    let pps: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];
    let avcc = crate::media::h264::AvcConfig::build(sps, pps).unwrap();
    let video = TrackInfo::Video(VideoInfo {
        codec: Codec::H264,
        width: 1280,
        height: 720,
        fps: None,
        config: Some(avcc),
        bframes: false,
    });
    let audio = TrackInfo::Audio(AudioInfo {
        codec: Codec::Aac,
        sample_rate: 44100,
        channels: 1,
        config: Some(vec![0x12, 0x08].into()),
    });
    let tracks: Vec<_> = [video, audio].iter().map(|i| output_track(i, port_for(i.kind(), 9000).unwrap())).collect();
    assert_eq!((tracks[0].port, tracks[1].port), (9000, 9002));
    let sdp = render(&tracks, "127.0.0.1".parse().unwrap(), "127.0.0.1".parse().unwrap(), "test", 7);
    for line in [
        "v=0\r\n",
        "c=IN IP4 127.0.0.1\r\n",
        "m=video 9000 RTP/AVP 96\r\n",
        "a=rtpmap:96 H264/90000\r\n",
        "a=fmtp:96 packetization-mode=1;profile-level-id=42c01f;sprop-parameter-sets=Z0LAH9kAUAW7ARAAAAMAEAAAAwPA8YMkgA==,aMuDyyA=\r\n",
        "m=audio 9002 RTP/AVP 97\r\n",
        "a=rtpmap:97 MPEG4-GENERIC/44100/1\r\n",
        "config=1208\r\n",
        "a=rtcp:9003\r\n",
    ] {
        assert!(sdp.contains(line), "missing {line:?} in\n{sdp}");
    }
    // And the gateway reads its own SDP back.
    let back = ingest_tracks(&parse(&sdp).unwrap()).unwrap();
    assert_eq!(
        back.iter().map(|t| (t.codec, t.rtp_port, t.rtcp_port)).collect::<Vec<_>>(),
        [(Codec::H264, 9000, Some(9001)), (Codec::Aac, 9002, Some(9003))]
    );
}

#[test]
fn output_payload_types_per_codec() {
    let audio = |codec| TrackInfo::Audio(AudioInfo { codec, sample_rate: 48000, channels: 2, config: None });
    let video =
        |codec| TrackInfo::Video(VideoInfo { codec, width: 0, height: 0, fps: None, config: None, bframes: false });
    let pt = |i: TrackInfo| {
        let t = output_track(&i, 5000);
        (t.pt, t.encoding, t.clock_rate)
    };
    assert_eq!(pt(video(Codec::Mpeg1)), (32, "MPV", 90000));
    assert_eq!(pt(video(Codec::Vp8)), (96, "VP8", 90000));
    assert_eq!(pt(audio(Codec::Opus)), (97, "opus", 48000));
    assert_eq!(pt(audio(Codec::Pcmu)), (0, "PCMU", 8000));
    assert_eq!(pt(audio(Codec::Pcma)), (8, "PCMA", 8000));
    assert_eq!(pt(audio(Codec::Mp2)), (14, "MPA", 90000));
    assert_eq!(output_track(&video(Codec::H264), 5000).fmtp.as_deref(), Some("packetization-mode=1"), "no avcC yet");
    assert_eq!(port_for(TrackKind::Audio, 65534), None);
}

#[test]
fn an_output_ends_only_when_its_sdp_no_longer_describes_the_track() {
    let aac = |sample_rate, channels, config: &'static [u8]| {
        TrackInfo::Audio(AudioInfo { codec: Codec::Aac, sample_rate, channels, config: Some(config.into()) })
    };
    let video = |width, config: Option<Vec<u8>>| {
        TrackInfo::Video(VideoInfo {
            codec: Codec::H264,
            width,
            height: 360,
            fps: None,
            config: config.map(Into::into),
            bframes: false,
        })
    };
    let announced = output_track(&aac(44100, 2, &[0x12, 0x10]), 9002);
    assert_eq!(still_fits(&announced, &aac(44100, 2, &[0x12, 0x10])), Ok(()));
    // A teacher back at 48 kHz: the receiver's clock and AudioSpecificConfig are wrong now.
    let err = still_fits(&announced, &aac(48000, 2, &[0x11, 0x90])).unwrap_err();
    assert!(err.contains("48000 Hz") && err.contains("44100 Hz") && err.contains("again"), "{err}");
    // Mono at the same rate, or another object type at the same rate and channels.
    assert!(still_fits(&announced, &aac(44100, 1, &[0x12, 0x08])).is_err());
    let other = still_fits(&announced, &aac(44100, 2, &[0x2a, 0x10])).unwrap_err();
    assert!(other.contains("configuration"), "{other}");
    // Opus after AAC is another encoding.
    let opus = TrackInfo::Audio(AudioInfo { codec: Codec::Opus, sample_rate: 48000, channels: 2, config: None });
    assert!(still_fits(&announced, &opus).is_err());
    // H.264 at another size keeps going: its parameter sets travel in-band.
    let shown = output_track(&video(640, None), 9000);
    assert_eq!(still_fits(&shown, &video(320, Some(vec![1, 2, 3]))), Ok(()));
    let vp8 = TrackInfo::Video(VideoInfo {
        codec: Codec::Vp8,
        width: 320,
        height: 240,
        fps: None,
        config: None,
        bframes: false,
    });
    assert!(still_fits(&shown, &vp8).is_err());
}
