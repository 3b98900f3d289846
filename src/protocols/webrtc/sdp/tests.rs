use super::*;

/// An offer shaped like Chromium's (trimmed): Opus and friends, VP8 and three H.264 profiles in
/// both packetization modes, RTX and FEC.
const CHROMIUM_OFFER: &str = "v=0\r
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
a=group:BUNDLE 0 1\r
a=msid-semantic: WMS\r
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110\r
c=IN IP4 0.0.0.0\r
a=ice-ufrag:abcd\r
a=ice-pwd:abcdefghijklmnopqrstuvwx\r
a=fingerprint:sha-256 5D:18:DA:15:35:29:CB:E3:1F:68:E5:E0:FE:D4:C5:0E:01:0B:04:CB:2B:1A:B1:B8:1D:28:B3:CA:10:54:2A:16\r
a=setup:actpass\r
a=mid:0\r
a=sendonly\r
a=rtcp-mux\r
a=rtpmap:111 opus/48000/2\r
a=fmtp:111 minptime=10;useinbandfec=1\r
a=rtpmap:63 red/48000/2\r
a=rtpmap:9 G722/8000\r
a=rtpmap:13 CN/8000\r
a=rtpmap:110 telephone-event/48000\r
m=video 9 UDP/TLS/RTP/SAVPF 96 97 104 105 102 103 106 107 108 109\r
c=IN IP4 0.0.0.0\r
a=ice-ufrag:abcd\r
a=ice-pwd:abcdefghijklmnopqrstuvwx\r
a=fingerprint:sha-256 5D:18:DA:15:35:29:CB:E3:1F:68:E5:E0:FE:D4:C5:0E:01:0B:04:CB:2B:1A:B1:B8:1D:28:B3:CA:10:54:2A:16\r
a=setup:actpass\r
a=mid:1\r
a=sendonly\r
a=rtcp-mux\r
a=rtpmap:96 VP8/90000\r
a=rtcp-fb:96 nack\r
a=rtcp-fb:96 nack pli\r
a=rtpmap:97 rtx/90000\r
a=fmtp:97 apt=96\r
a=rtpmap:104 H264/90000\r
a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r
a=rtpmap:105 rtx/90000\r
a=fmtp:105 apt=104\r
a=rtpmap:102 H264/90000\r
a=rtcp-fb:102 nack\r
a=rtcp-fb:102 nack pli\r
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r
a=rtpmap:103 rtx/90000\r
a=fmtp:103 apt=102\r
a=rtpmap:106 H264/90000\r
a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r
a=rtpmap:107 rtx/90000\r
a=fmtp:107 apt=106\r
a=rtpmap:108 H264/90000\r
a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f\r
a=rtpmap:109 rtx/90000\r
a=fmtp:109 apt=108\r
";

fn init() {
    crate::pipeline::init();
}

fn offer(text: &str) -> Offer {
    init();
    parse_offer(text).unwrap_or_else(|e| panic!("{e}"))
}

fn viewer_offer() -> Offer {
    offer(&CHROMIUM_OFFER.replace("a=sendonly", "a=recvonly"))
}

#[test]
fn lists_what_chromium_offers() {
    let o = offer(CHROMIUM_OFFER);
    assert_eq!(o.medias.len(), 2);
    let audio = &o.medias[0];
    assert_eq!((audio.kind.as_str(), audio.mid.as_deref(), audio.direction), ("audio", Some("0"), Direction::SendOnly));
    let names: Vec<&str> = audio.codecs.iter().map(|c| c.name.as_str()).collect();
    // PCMU (0) and PCMA (8) have no rtpmap: static payload types.
    assert_eq!(names, ["OPUS", "RED", "G722", "PCMU", "PCMA", "CN", "TELEPHONE-EVENT"]);
    let video = &o.medias[1];
    let h264: Vec<(u8, u8, Option<u8>)> = video
        .codecs
        .iter()
        .filter(|c| c.name == "H264")
        .map(|c| (c.pt, c.packetization_mode(), c.profile_idc()))
        .collect();
    assert_eq!(h264, [(104, 0, Some(0x42)), (102, 1, Some(0x42)), (106, 1, Some(0x42)), (108, 1, Some(0x4d))]);
    assert_eq!(video.codecs[0].codec(), Some(Codec::Vp8));
    assert_eq!(video.codecs[1].codec(), None, "rtx is no codec of ours");
}

#[test]
fn ingest_prefers_h264_with_packetization_mode_1() {
    let choices = choose_for_ingest(&offer(CHROMIUM_OFFER)).unwrap();
    assert_eq!(choices.len(), 2);
    assert_eq!((choices[0].kind, choices[0].codec, choices[0].pt), (TrackKind::Audio, Codec::Opus, 111));
    let v = &choices[1];
    // 104 comes first but is packetization-mode 0; VP8 (96) only if no H.264 fits.
    assert_eq!((v.kind, v.codec, v.pt, v.mline), (TrackKind::Video, Codec::H264, 102, 1));
    assert_eq!(v.profile_level_id.as_deref(), Some("42001f"));
    let caps = v.preference_caps();
    let s = caps.structure(0).unwrap();
    assert_eq!(s.get::<i32>("payload").unwrap(), 102);
    assert_eq!(s.get::<&str>("encoding-name").unwrap(), "H264");
    assert_eq!(s.get::<i32>("clock-rate").unwrap(), 90_000);
}

#[test]
fn bundle_only_m_lines_are_not_rejected() {
    // webrtcbin's max-bundle offers put the second m-line on port 0 with a=bundle-only.
    let text =
        CHROMIUM_OFFER.replace("m=video 9 ", "m=video 0 ").replace("a=mid:1\r\n", "a=mid:1\r\na=bundle-only\r\n");
    let choices = choose_for_ingest(&offer(&text)).unwrap();
    assert_eq!(choices.iter().map(|c| c.codec).collect::<Vec<_>>(), [Codec::Opus, Codec::H264]);
    let text = CHROMIUM_OFFER.replace("m=video 9 ", "m=video 0 ");
    let o = offer(&text);
    assert!(o.medias[1].rejected, "port 0 without bundle-only rejects");
    assert_eq!(choose_for_ingest(&o).unwrap().len(), 1);
}

#[test]
fn ingest_falls_back_to_vp8() {
    let text = CHROMIUM_OFFER.replace("packetization-mode=1", "packetization-mode=0");
    let choices = choose_for_ingest(&offer(&text)).unwrap();
    assert_eq!((choices[1].codec, choices[1].pt), (Codec::Vp8, 96));
}

#[test]
fn ingest_without_usable_codecs_names_the_offer() {
    let text = CHROMIUM_OFFER
        .replace("a=rtpmap:111 opus/48000/2", "a=rtpmap:111 ISAC/16000")
        .replace("VP8/90000", "VP9/90000")
        .replace("H264/90000", "H265/90000");
    let err = choose_for_ingest(&offer(&text)).unwrap_err();
    let SdpError::NoUsableCodec(text) = &err else { panic!("{err:?}") };
    for name in ["ISAC/16000", "G722/8000", "VP9/90000", "H265/90000"] {
        assert!(text.contains(name), "{name} missing in {text}");
    }
}

#[test]
fn ingest_refuses_a_receiving_offer() {
    let err = choose_for_ingest(&viewer_offer()).unwrap_err();
    assert!(matches!(&err, SdpError::Invalid(t) if t.contains("recvonly")), "{err:?}");
}

#[test]
fn bad_offers_say_why() {
    init();
    let cases = [
        ("", "empty"),
        ("hello world", "v=0"),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "no m= lines"),
        (&*CHROMIUM_OFFER.replace("a=fingerprint", "a=x-fingerprint"), "fingerprint"),
        (&*CHROMIUM_OFFER.replace("a=ice-pwd", "a=x-ice-pwd"), "ice-pwd"),
        (&*CHROMIUM_OFFER.replace("UDP/TLS/RTP/SAVPF", "UDP/DTLS/SCTP"), "not RTP"),
    ];
    for (text, why) in cases {
        match parse_offer(text) {
            Err(SdpError::Invalid(reason)) => {
                assert!(reason.contains(why), "{why:?} not in {reason:?}")
            }
            other => panic!("{text:?}: expected Invalid, got {other:?}"),
        }
    }
}

#[test]
fn egress_prefers_the_streams_profile() {
    let o = viewer_offer();
    let pick = |profile| {
        let tracks = EgressTracks { video: Some((Codec::H264, profile)), audio: Some(Codec::Opus) };
        let choices = choose_for_egress(&o, tracks).unwrap();
        (choices[0].pt, choices[1].pt)
    };
    assert_eq!(pick(Some(0x4d)), (111, 108), "main profile has its own payload type");
    assert_eq!(pick(Some(0x64)), (111, 102), "high is not offered: the first packetization-mode 1");
    assert_eq!(pick(None), (111, 102));
    let vp8 = choose_for_egress(&o, EgressTracks { video: Some((Codec::Vp8, None)), audio: None }).unwrap();
    assert_eq!(vp8.len(), 1, "no audio track: the audio m-line stays unanswered");
    assert_eq!((vp8[0].codec, vp8[0].pt), (Codec::Vp8, 96));
}

#[test]
fn egress_refuses_a_codec_the_viewer_lacks() {
    let text = CHROMIUM_OFFER.replace("a=sendonly", "a=recvonly").replace("H264/90000", "H265/90000");
    let tracks = EgressTracks { video: Some((Codec::H264, None)), audio: Some(Codec::Opus) };
    let err = choose_for_egress(&offer(&text), tracks).unwrap_err();
    assert!(matches!(&err, SdpError::NoUsableCodec(t) if t.contains("h264") && t.contains("H265/90000")), "{err:?}");
    let err = choose_for_egress(&offer(CHROMIUM_OFFER), tracks).unwrap_err();
    assert!(matches!(&err, SdpError::Invalid(t) if t.contains("sendonly")), "{err:?}");
    let none = EgressTracks { video: None, audio: None };
    let err = choose_for_egress(&viewer_offer(), none).unwrap_err();
    assert!(matches!(&err, SdpError::NoUsableCodec(t) if t.contains("no track")), "{err:?}");
}

#[test]
fn announce_rewrites_candidates_of_the_same_family() {
    let answer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n\
        a=candidate:1 1 UDP 2015364095 10.0.0.5 40048 typ host\r\n\
        a=candidate:2 1 UDP 2015363583 fe80::1 40050 typ host\r\na=mid:0\r\n";
    let out = announce(answer, "203.0.113.7".parse().unwrap());
    assert!(out.contains("a=candidate:1 1 UDP 2015364095 203.0.113.7 40048 typ host\r\n"), "{out}");
    assert!(out.contains("a=candidate:2 1 UDP 2015363583 fe80::1 40050 typ host\r\n"), "{out}");
    assert!(out.starts_with("v=0\r\n") && out.ends_with("a=mid:0\r\n"));
    assert!(!out.contains("10.0.0.5"));
}

#[test]
fn answers_carry_the_offered_profile() {
    let choices = choose_for_ingest(&offer(CHROMIUM_OFFER)).unwrap();
    let answer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 OPUS/48000/2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n\
        a=fmtp:102 packetization-mode=1;level-asymmetry-allowed=1\r\na=recvonly\r\n";
    let out = complete_answer(answer, &choices);
    assert!(
        out.contains("a=fmtp:102 packetization-mode=1;level-asymmetry-allowed=1;profile-level-id=42001f\r\n"),
        "{out}"
    );
    assert_eq!(complete_answer(&out, &choices), out, "idempotent");
    // No fmtp at all: one is added after the rtpmap.
    let bare = "v=0\r\nm=audio 9 X 111\r\nm=video 9 X 102\r\na=rtpmap:102 H264/90000\r\na=recvonly\r\n";
    let out = complete_answer(bare, &choices);
    assert!(
        out.contains(
            "a=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;profile-level-id=42001f\r\na=recvonly"
        ),
        "{out}"
    );
}
