//! Codec configuration the gateway reads itself: H.264 SPS, avcC and AVCC/Annex-B payloads,
//! AAC AudioSpecificConfig and ADTS.

use interop_gateway::media::aac::{adts_frames, build_adts_header, strip_adts, AdtsHeader, AudioSpecificConfig};
use interop_gateway::media::h264::{self, AvcConfig, Sps};

use crate::engine::{no_seeds, no_setup, Sig, Target};
use crate::mutate::Shape;

fn h264_sps(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    let sps = Sps::parse(input);
    sig.result(&sps);
    if let Ok(sps) = sps {
        sig.add(u64::from(sps.may_have_bframes().map_or(2, u8::from)));
        // An SPS that parses makes an avcC that parses back.
        let avcc = AvcConfig::build(input, &[0x68, 0xce, 0x3c, 0x80]);
        sig.result(&avcc);
        if let Ok(bytes) = avcc {
            let back = AvcConfig::parse(&bytes).expect("an avcC we built parses");
            assert_eq!(back.first_sps().as_ref().ok(), Some(&sps));
        }
    }
    sig.finish()
}

/// The SPS of the avcC seeds.
fn sps_seeds() -> Vec<Vec<u8>> {
    crate::engine::corpus_files(&["h264_avcc"])
        .into_iter()
        .filter_map(|(_, d)| AvcConfig::parse(&d).ok())
        .flat_map(|c| c.sps.into_iter().map(|s| s.to_vec()))
        .collect()
}

pub const H264_SPS: Target = Target {
    name: "h264_sps",
    dirs: &["h264_sps"],
    max_len: 512,
    shape: Shape::Bytes,
    dict: &[
        b"\x67\x64\x00\x1f",
        b"\x67\x42\xc0\x1e",
        b"\x67\x76\x00\x28",
        b"\x67\xf4",
        b"\x00\x00\x03",
        b"\x80",
        b"\xff\xff",
    ],
    derive: sps_seeds,
    setup: no_setup,
    run: h264_sps,
};

fn h264_avcc(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    let config = AvcConfig::parse(input);
    sig.result(&config);
    if let Ok(config) = config {
        sig.count(config.sps.len());
        sig.count(config.pps.len());
        sig.result(&config.first_sps());
        // What parsed serializes, and the result parses to the same record.
        if let Ok(bytes) = config.to_bytes() {
            let back = AvcConfig::parse(&bytes).expect("a serialized avcC parses");
            assert_eq!(back, config, "avcC round trip");
        }
    }
    sig.finish()
}

pub const H264_AVCC: Target = Target {
    name: "h264_avcc",
    dirs: &["h264_avcc"],
    max_len: 2048,
    shape: Shape::Bytes,
    dict: &[
        b"\x01\x64\x00\x1f\xff\xe1",
        b"\x01\x42\xc0\x1e\xff\xe1",
        b"\xfd\xf8\xf8\x00",
        b"\x00\x04\x68\xce\x3c\x80",
        b"\xe1\x00",
    ],
    derive: no_seeds,
    setup: no_setup,
    run: h264_avcc,
};

fn h264_payload(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    let nals = h264::annexb_nals(input);
    sig.result(&nals);
    if let Ok(nals) = &nals {
        sig.count(nals.len());
        for nal in nals.iter().take(32) {
            sig.add(u64::from(h264::nal_type(nal).unwrap_or(32)));
            let rbsp = h264::unescape_rbsp(nal);
            assert!(rbsp.len() <= nal.len());
        }
    }
    if let Ok(avcc) = h264::annexb_to_avcc(input) {
        let back = h264::avcc_to_annexb(&avcc, 4).expect("AVCC we wrote reads");
        let again = h264::annexb_nals(&back).unwrap_or_default();
        assert_eq!(Ok(again), nals, "Annex-B → AVCC → Annex-B keeps the NAL units");
        sig.result(&h264::is_keyframe(&avcc, 4));
    }
    for size in 1..=4u8 {
        let list = h264::avcc_nal_list(input, size);
        sig.result(&list);
        if let Ok(list) = list {
            for to in [1u8, 2, 4] {
                if let Ok(converted) = h264::convert_nal_length_size(input, size, to) {
                    assert_eq!(h264::avcc_nal_list(&converted, to).ok(), Some(list.clone()));
                }
            }
        }
    }
    sig.finish()
}

pub const H264_PAYLOAD: Target = Target {
    name: "h264_payload",
    dirs: &["h264_payload"],
    max_len: 16 << 10,
    shape: Shape::Bytes,
    dict: &[b"\x00\x00\x00\x01", b"\x00\x00\x01", b"\x00\x00\x03", b"\x00\x00\x00\x00\x01\x65", b"\xff\xff\xff\xff"],
    derive: no_seeds,
    setup: no_setup,
    run: h264_payload,
};

fn aac_asc(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    let asc = AudioSpecificConfig::parse(input);
    sig.result(&asc);
    if let Ok(asc) = asc {
        sig.add(u64::from(asc.output_sample_rate()) ^ u64::from(asc.output_channels()) << 32);
        sig.add(u64::from(asc.object_type) << 8 | u64::from(asc.ps));
        let header = build_adts_header(&asc, 100);
        sig.result(&header);
        if let Ok(header) = header {
            let parsed = AdtsHeader::parse(&header).expect("an ADTS header we built parses");
            assert_eq!(parsed.frame_length, 107);
        }
    }
    sig.finish()
}

pub const AAC_ASC: Target = Target {
    name: "aac_asc",
    dirs: &["aac_asc"],
    max_len: 64,
    shape: Shape::Bytes,
    dict: &[b"\x12\x10", b"\x11\x90", b"\x2b\x92\x08\x00", b"\x13\x10\x56\xe5\x98", b"\xf8", b"\x02\xb7", b"\x05\x48"],
    derive: no_seeds,
    setup: no_setup,
    run: aac_asc,
};

fn aac_adts(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    let header = AdtsHeader::parse(input);
    sig.result(&header);
    if let Ok(h) = &header {
        // The config an ADTS header describes is one the ASC parser reads back alike.
        let asc = h.to_asc();
        sig.result(&asc);
        if let Ok(asc) = asc {
            let parsed = AudioSpecificConfig::parse(&asc).expect("an ASC we built parses");
            assert_eq!((parsed.sample_rate, parsed.channel_config), (h.sample_rate, h.channel_config));
        }
    }
    sig.result(&strip_adts(input));
    let mut frames = 0;
    for frame in adts_frames(input) {
        sig.result(&frame);
        frames += 1;
        if frame.is_err() || frames > 4096 {
            break;
        }
    }
    sig.count(frames);
    sig.finish()
}

pub const AAC_ADTS: Target = Target {
    name: "aac_adts",
    dirs: &["aac_adts"],
    max_len: 8 << 10,
    shape: Shape::Bytes,
    dict: &[b"\xff\xf1\x50\x80", b"\xff\xf1\x4c\x80", b"\xff\xf0", b"\xff\xf9"],
    derive: no_seeds,
    setup: no_setup,
    run: aac_adts,
};
