//! What arrives over HTTP and UDP besides media containers: SDP offers (WHIP/WHEP), the SDP of
//! a UDP ingest, and RTP/RTCP datagrams through the ingest's packet filter.

use interop_gateway::media::h264::rtp::payload_bounds;
use interop_gateway::media::rtp::aac::AuHeaderLayout;
use interop_gateway::media::rtp::PayloadCheck;
use interop_gateway::media::Codec;
use interop_gateway::protocols::udp::filter::{looks_like_rtcp, parse_rtp, valid_rtcp, RtpFilter, Verdict};
use interop_gateway::protocols::udp::light::LightIngest;
use interop_gateway::protocols::udp::payload::IngestTrack;
use interop_gateway::protocols::udp::{payload, sdp as udp_sdp, UdpMetrics};
use interop_gateway::protocols::webrtc::sdp::{choose_for_egress, choose_for_ingest, parse_offer, EgressTracks};

use crate::engine::{no_seeds, Sig, Target};
use crate::mutate::{hash, Rng, Shape};

const SDP_DICT: &[&[u8]] = &[
    b"v=0\r\n",
    b"m=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
    b"m=audio 5002 RTP/AVP 97\r\n",
    b"m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n",
    b"c=IN IP4 127.0.0.1\r\n",
    b"c=IN IP6 ::1\r\n",
    b"a=rtpmap:96 H264/90000\r\n",
    b"a=rtpmap:97 opus/48000/2\r\n",
    b"a=rtpmap:97 MPEG4-GENERIC/44100/2\r\n",
    b"a=fmtp:96 packetization-mode=1;profile-level-id=42e01f;sprop-parameter-sets=Z0IAH5WoFAFuQA==,aM48gA==\r\n",
    b"a=fmtp:97 streamtype=5;mode=AAC-hbr;config=1210;sizelength=13\r\n",
    b"a=rtcp:5003\r\n",
    b"a=rtcp-mux\r\n",
    b"a=ssrc:0 cname:x\r\n",
    b"a=ssrc:4294967295 cname:x\r\n",
    b"a=sendonly\r\n",
    b"a=recvonly\r\n",
    b"a=inactive\r\n",
    b"a=mid:0\r\n",
    b"a=ice-ufrag:abcd\r\n",
    b"a=ice-pwd:abcdefghijklmnopqrstuvwx\r\n",
    b"a=fingerprint:sha-256 00:11\r\n",
    b"a=group:BUNDLE 0 1\r\n",
    b"profile-level-id=",
    b"packetization-mode=",
    b"config=",
    b"/90000",
    b"\xef\xbb\xbf",
];

/// Text as the HTTP handlers get it (bodies that are not UTF-8 are refused before parsing;
/// here they are read lossily so the mutants still reach the parser).
fn text(input: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(input)
}

fn udp_sdp(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    let text = text(input);
    let parsed = udp_sdp::parse(&text);
    sig.result(&parsed);
    if let Ok(sdp) = parsed {
        sig.count(sdp.media.len());
        let tracks = payload::ingest_tracks(&sdp);
        sig.result(&tracks);
        for t in tracks.unwrap_or_default() {
            sig.variant(&t.codec);
            sig.add(u64::from(t.rtcp_port.is_some()));
        }
    }
    for word in text.split([' ', ';', '=', ',']).take(64) {
        if let Some(bytes) = payload::hex(word) {
            assert_eq!(bytes.len() * 2, word.trim().len(), "hex {word:?}");
        }
    }
    sig.finish()
}

pub const UDP_SDP: Target = Target {
    name: "udp_sdp",
    dirs: &["udp_sdp"],
    max_len: 8 << 10,
    shape: Shape::Text,
    dict: SDP_DICT,
    derive: no_seeds,
    setup: crate::engine::no_setup,
    run: udp_sdp,
};

fn gst_init() {
    interop_gateway::pipeline::init();
}

fn webrtc_sdp(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    let offer = parse_offer(&text(input));
    sig.result(&offer);
    let Ok(offer) = offer else { return sig.finish() };
    sig.count(offer.medias.len());
    let _ = offer.describe();
    let ingest = choose_for_ingest(&offer);
    sig.result(&ingest);
    for tracks in [
        EgressTracks { video: Some((Codec::H264, Some(66))), audio: Some(Codec::Opus) },
        EgressTracks { video: Some((Codec::H264, Some(100))), audio: None },
        EgressTracks { video: Some((Codec::Vp8, None)), audio: Some(Codec::Opus) },
        EgressTracks { video: None, audio: Some(Codec::Opus) },
    ] {
        let egress = choose_for_egress(&offer, tracks);
        sig.result(&egress);
        for c in egress.unwrap_or_default() {
            let _ = c.preference_caps();
        }
    }
    sig.finish()
}

pub const WEBRTC_SDP: Target = Target {
    name: "webrtc_sdp",
    dirs: &["webrtc_sdp", "udp_sdp"],
    max_len: 16 << 10,
    shape: Shape::Text,
    dict: SDP_DICT,
    derive: no_seeds,
    setup: gst_init,
    run: webrtc_sdp,
};

/// The datagrams of a `u16 length + bytes` record input (a short tail is one more datagram).
fn datagrams(input: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = input;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let body = &rest[2..];
        let n = len.min(body.len());
        out.push(&body[..n]);
        rest = &body[n..];
    }
    out
}

fn rtp_filter(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    let packets = datagrams(input);
    let mut rng = Rng::new(hash(input));
    // The payload type the SDP would name: the first RTP packet's, as the test senders use.
    let pt = packets.iter().find_map(|p| parse_rtp(p)).map_or(96, |h| h.pt);
    let announced = packets.iter().find_map(|p| parse_rtp(p)).map(|h| h.ssrc).filter(|_| rng.one_in(2));
    let mut filter = RtpFilter::new(pt, announced);
    let mut now = 0u64;
    for p in packets {
        let gap = if rng.one_in(50) { 20_000 } else { 40 };
        now += rng.below(gap) as u64;
        let rtcp = looks_like_rtcp(p);
        let valid = valid_rtcp(p);
        assert!(!valid || rtcp, "a valid RTCP packet looks like RTCP");
        let verdict = filter.check(p, now);
        if verdict == Verdict::Pass {
            assert!(parse_rtp(p).is_some_and(|h| h.pt == pt), "passed a packet of another payload type");
        }
        sig.variant(&verdict);
        sig.add(u64::from(rtcp) << 1 | u64::from(valid));
    }
    sig.add(u64::from(filter.ssrc().is_some()));
    sig.finish()
}

pub const RTP_FILTER: Target = Target {
    name: "rtp_filter",
    dirs: &["rtp_filter"],
    max_len: 32 << 10,
    shape: Shape::Records16,
    dict: &[b"\x80\x60", b"\x80\xe0", b"\x81\xc8\x00\x06", b"\x80\xc9\x00\x01", b"\x90\x60", b"\xa0\x60", b"\x8f\x60"],
    derive: no_seeds,
    setup: crate::engine::no_setup,
    run: rtp_filter,
};

/// The AU-header layouts an SDP's fmtp can name: the common ones, and one drawn from the input
/// (every field up to the 64 bits `from_fmtp` allows).
fn aac_layouts(rng: &mut Rng) -> [AuHeaderLayout; 3] {
    let fmtp = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
    let hbr =
        AuHeaderLayout::from_fmtp(&fmtp(&[("sizelength", "13"), ("indexlength", "3"), ("indexdeltalength", "3")]));
    let lbr = AuHeaderLayout::from_fmtp(&fmtp(&[("sizelength", "6"), ("indexlength", "2"), ("indexdeltalength", "2")]));
    let mut field = || if rng.one_in(3) { 0 } else { rng.below(65) as u32 };
    let drawn = AuHeaderLayout {
        size: field(),
        index: field(),
        index_delta: field(),
        cts_delta: field(),
        dts_delta: field(),
        stream_state: field(),
        random_access: false,
    };
    let drawn = AuHeaderLayout { random_access: rng.one_in(2), ..drawn };
    [hbr, lbr, drawn]
}

/// Every payload check the UDP and WHIP ingests run before a GStreamer depayloader, on every
/// datagram: none panics, and judging the packet is judging its payload.
fn rtp_payload(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    let mut rng = Rng::new(hash(input));
    let mut checks = vec![PayloadCheck::Vp8, PayloadCheck::Opus, PayloadCheck::MpegVideo, PayloadCheck::MpegAudio];
    checks.extend(aac_layouts(&mut rng).into_iter().map(PayloadCheck::Aac));
    for packet in datagrams(input) {
        let bounds = payload_bounds(packet);
        sig.add(u64::from(bounds.is_some()));
        for check in &checks {
            let verdict = check.check(packet);
            if let Some((start, end)) = bounds {
                assert_eq!(verdict, check.check_payload(&packet[start..end]), "{check:?}");
            }
            sig.result(&verdict);
        }
    }
    sig.finish()
}

pub const RTP_PAYLOAD: Target = Target {
    name: "rtp_payload",
    dirs: &["rtp_filter", "rtp_payload"],
    max_len: 32 << 10,
    shape: Shape::Records16,
    dict: &[
        b"\x80\x60",
        b"\x90\x60",
        b"\xa0\x60",
        b"\x00\x10",
        b"\x90\x80\x00",
        b"\xff\xfe",
        b"\x00\x00\x01\xb3",
        b"\xff\xfd",
    ],
    derive: no_seeds,
    setup: crate::engine::no_setup,
    run: rtp_payload,
};

const HTTP_DICT: &[&[u8]] = &[
    b"GET ",
    b" HTTP/1.1\r\n",
    b"/live/",
    b"/mini/",
    b".flv",
    b"?token=",
    b"%2D",
    b"%",
    b"Host: 127.0.0.1\r\n",
    b"Authorization: Bearer x\r\n",
    b"\r\n\r\n",
    b": ",
];

fn flv_request(input: &[u8]) -> u64 {
    use interop_gateway::protocols::flv::raw::{play_route, request_of};
    let route = play_route(input).map_or(0, |p| p.index() as u8 + 1);
    match request_of(input) {
        Ok((protocol, file)) => hash(&[route, protocol.index() as u8, file.len().min(255) as u8]),
        Err(why) => hash(&[route, 100, why.as_bytes().first().copied().unwrap_or(0)]),
    }
}

/// The head of an HTTP-FLV play answered without hyper (`flv::raw`).
pub const FLV_REQUEST: Target = Target {
    name: "flv_request",
    dirs: &["flv_request"],
    max_len: 16 << 10,
    shape: Shape::Text,
    dict: HTTP_DICT,
    derive: no_seeds,
    setup: crate::engine::no_setup,
    run: flv_request,
};

/// The tracks the light UDP ingest path receives, for payload type `pt`: H.264 with and
/// without SDP parameter sets, Opus, AAC-hbr, AAC with a layout drawn from the input, PCMU.
fn light_tracks(pt: u8, ssrc: Option<u32>, rng: &mut Rng) -> Vec<IngestTrack> {
    let p = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
    let drawn = aac_layouts(rng)[2];
    let n = |v: u32| v.to_string();
    let drawn = [
        ("mode".to_string(), "AAC-hbr".to_string()),
        ("config".to_string(), "1210".to_string()),
        ("sizelength".to_string(), n(drawn.size)),
        ("indexlength".to_string(), n(drawn.index)),
        ("indexdeltalength".to_string(), n(drawn.index_delta)),
        ("ctsdeltalength".to_string(), n(drawn.cts_delta)),
        ("dtsdeltalength".to_string(), n(drawn.dts_delta)),
        ("randomaccessindication".to_string(), n(u32::from(drawn.random_access))),
        ("streamstateindication".to_string(), n(drawn.stream_state)),
    ];
    let hbr = p(&[
        ("mode", "AAC-hbr"),
        ("config", "1190"),
        ("sizelength", "13"),
        ("indexlength", "3"),
        ("indexdeltalength", "3"),
    ]);
    let sprop = p(&[("packetization-mode", "1"), ("sprop-parameter-sets", "Z0IAH5WoFAFuQA==,aM48gA==")]);
    let track = |codec: Codec, clock_rate: u32, params: Vec<(String, String)>| IngestTrack {
        kind: codec.kind(),
        codec,
        mline: 0,
        pt,
        encoding: codec.as_str().to_uppercase(),
        clock_rate,
        channels: Some(2),
        params,
        rtp_port: 5004,
        rtcp_port: Some(5005),
        ssrc,
    };
    vec![
        track(Codec::H264, 90_000, Vec::new()),
        track(Codec::H264, 90_000, sprop),
        track(Codec::Opus, 48_000, Vec::new()),
        track(Codec::Aac, 48_000, hbr),
        track(Codec::Aac, 1 + rng.below(96_000) as u32, drawn.to_vec()),
        track(Codec::Pcmu, 8000, Vec::new()),
    ]
}

/// Datagrams through the light UDP ingest (filter, reorder buffer, payload checks,
/// depacketizers, sender reports, clock), each track alone: nothing panics, frames are never
/// empty, H.264 frames are well-framed AVCC and decode times never go backwards.
fn rtp_light(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    let packets = datagrams(input);
    let mut rng = Rng::new(hash(input));
    let pt = packets.iter().find_map(|p| parse_rtp(p)).map_or(96, |h| h.pt);
    let announced = packets.iter().find_map(|p| parse_rtp(p)).map(|h| h.ssrc).filter(|_| rng.one_in(2));
    let latency = std::time::Duration::from_millis(rng.below(400) as u64);
    for track in light_tracks(pt, announced, &mut rng) {
        let codec = track.codec;
        let mut ingest = LightIngest::new(&[track], latency, std::sync::Arc::new(UdpMetrics::default()));
        let mut now = std::time::Duration::ZERO;
        let mut frames = Vec::new();
        let mut last_dts = None;
        for p in &packets {
            let gap = if rng.one_in(50) { 5_000 } else { 30 };
            now += std::time::Duration::from_millis(rng.below(gap) as u64);
            if looks_like_rtcp(p) {
                ingest.on_rtcp(0, p);
            } else {
                sig.add(u64::from(ingest.on_rtp(0, p, now, &mut frames)));
            }
            if rng.one_in(4) {
                ingest.poll(now + latency, &mut frames);
            }
            for f in frames.drain(..) {
                assert!(!f.data.is_empty(), "{codec}: an empty frame");
                assert_eq!(f.codec(), codec);
                if codec == Codec::H264 {
                    let nals = interop_gateway::media::h264::avcc_nal_list(&f.data, 4);
                    assert!(nals.is_ok(), "{codec}: AVCC framing {nals:?}");
                    if last_dts.is_some_and(|d| f.dts < d) {
                        panic!("{codec}: decode time went back");
                    }
                    last_dts = Some(f.dts);
                }
                sig.add(u64::from(f.keyframe));
                sig.count(f.data.len().min(4));
            }
        }
        sig.add(u64::from(ingest.deadline().is_some()));
    }
    sig.finish()
}

pub const RTP_LIGHT: Target = Target {
    name: "rtp_light",
    dirs: &["rtp_filter", "rtp_light"],
    max_len: 32 << 10,
    shape: Shape::Records16,
    dict: &[
        b"\x80\x60",
        b"\x80\xe0",
        b"\x81\xc8\x00\x06",
        b"\x7c\x85",
        b"\x7c\x45",
        b"\x18\x00\x04\x67",
        b"\x00\x10",
        b"\x00\x20",
        b"\xff\xfd",
    ],
    derive: no_seeds,
    setup: crate::engine::no_setup,
    run: rtp_light,
};
