use super::*;
use crate::protocols::webrtc::sdp::{choose_for_egress, parse_offer, EgressTracks};

/// A WHEP offer shaped like Chromium's (trimmed): Opus, VP8 and H.264 in both packetization
/// modes and two profiles, with RTX.
const OFFER: &str = "v=0\r
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
a=group:BUNDLE 0 1\r
a=msid-semantic: WMS\r
m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r
c=IN IP4 0.0.0.0\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=ice-ufrag:abcd\r
a=ice-pwd:abcdefghijklmnopqrstuvwx\r
a=ice-options:trickle\r
a=fingerprint:sha-256 5D:18:DA:15:35:29:CB:E3:1F:68:E5:E0:FE:D4:C5:0E:01:0B:04:CB:2B:1A:B1:B8:1D:28:B3:CA:10:54:2A:16\r
a=setup:actpass\r
a=mid:0\r
a=recvonly\r
a=rtcp-mux\r
a=rtpmap:111 opus/48000/2\r
a=fmtp:111 minptime=10;useinbandfec=1\r
a=rtpmap:0 PCMU/8000\r
m=video 9 UDP/TLS/RTP/SAVPF 96 97 104 105 102 103 108 109\r
c=IN IP4 0.0.0.0\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=ice-ufrag:abcd\r
a=ice-pwd:abcdefghijklmnopqrstuvwx\r
a=ice-options:trickle\r
a=fingerprint:sha-256 5D:18:DA:15:35:29:CB:E3:1F:68:E5:E0:FE:D4:C5:0E:01:0B:04:CB:2B:1A:B1:B8:1D:28:B3:CA:10:54:2A:16\r
a=setup:actpass\r
a=mid:1\r
a=recvonly\r
a=rtcp-mux\r
a=rtcp-rsize\r
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
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r
a=rtpmap:103 rtx/90000\r
a=fmtp:103 apt=102\r
a=rtpmap:108 H264/90000\r
a=rtcp-fb:108 nack\r
a=rtcp-fb:108 nack pli\r
a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032\r
a=rtpmap:109 rtx/90000\r
a=fmtp:109 apt=108\r
";

fn negotiate(tracks: EgressTracks) -> Result<Negotiated, SdpError> {
    crate::pipeline::init();
    let offer = parse_offer(OFFER).expect("offer");
    let choices = choose_for_egress(&offer, tracks).expect("choices");
    answer(OFFER, &offer, &choices, "127.0.0.1:40000".parse().unwrap(), Instant::now())
}

#[test]
fn answers_the_chosen_payload_types_with_rtx_ice_lite_and_the_candidate() {
    let n =
        negotiate(EgressTracks { video: Some((Codec::H264, Some(100))), audio: Some(Codec::Opus) }).expect("answer");
    let kinds: Vec<_> = n.tracks.iter().map(|t| (t.kind, t.mid.to_string(), *t.pt, t.clock_rate)).collect();
    assert_eq!(kinds, [(TrackKind::Audio, "0".into(), 111, 48_000), (TrackKind::Video, "1".into(), 108, 90_000)]);
    let a = &n.answer;
    assert!(a.contains("a=ice-lite"), "{a}");
    assert!(a.contains("a=candidate:") && a.contains("127.0.0.1 40000 typ host"), "{a}");
    assert!(a.contains("a=rtpmap:108 H264/90000"), "{a}");
    assert!(a.contains("profile-level-id=640032"), "{a}");
    assert!(a.contains("a=fmtp:109 apt=108"), "RTX for NACKs: {a}");
    assert!(a.contains("a=rtpmap:111 opus/48000/2"), "{a}");
    assert!(a.contains("a=sendonly"), "{a}");
    assert!(!a.contains("VP8"), "only what the gateway sends: {a}");
    // Both tracks in one media stream, so browsers lip-sync them.
    let streams: Vec<&str> =
        a.lines().filter_map(|l| l.strip_prefix("a=msid:")).filter_map(|v| v.split(' ').next()).collect();
    assert_eq!(streams, [STREAM_ID, STREAM_ID], "{a}");
}

#[test]
fn a_stream_without_audio_answers_video_only() {
    let n = negotiate(EgressTracks { video: Some((Codec::H264, Some(66))), audio: None }).expect("answer");
    assert_eq!(n.tracks.len(), 1);
    assert_eq!(*n.tracks[0].pt, 102, "a baseline stream prefers the baseline payload type");
}

#[test]
fn one_stream_adds_an_msid_only_where_there_is_none() {
    let offer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=msid:s v\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n";
    let out = one_stream(offer);
    assert_eq!(
        out,
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=msid:interop-gateway audio\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=msid:s v\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n"
    );
}
