//! FLV: the file framing (HTTP-FLV, recordings) and the tag bodies RTMP carries, through the
//! ingest (sequence headers, avcC, AudioSpecificConfig, onMetaData) and back out through a
//! viewer's egress, which rebuilds sequence headers from what the ingest accepted.

use interop_gateway::protocols::flv::{FlvEgress, FlvIngest, FlvReader};

use crate::engine::{no_seeds, no_setup, reads, Sig, Target};
use crate::mutate::Shape;

fn flv_file(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    let mut reader = FlvReader::new();
    let mut ingest = FlvIngest::new();
    let mut egress = FlvEgress::new();
    let mut tags = Vec::new();
    let mut started = false;
    'reads: for read in reads(input) {
        reader.push(read);
        loop {
            match reader.next_tag() {
                Ok(Some(tag)) => {
                    sig.variant(&tag.kind);
                    let frames = ingest.push(tag.kind, tag.timestamp, tag.body);
                    sig.result(&frames);
                    for frame in frames.unwrap_or_default() {
                        if !started {
                            started = true;
                            egress.start(ingest.video_info(), ingest.audio_info(), &mut tags);
                        }
                        let r = egress.frame(&frame, &mut tags);
                        sig.result(&r);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    sig.variant(&e);
                    break 'reads;
                }
            }
        }
    }
    sig.count(tags.len());
    sig.add(ingest.dropped().min(4) << 8 | ingest.bad_scripts().min(4));
    assert!(reader.buffered() <= input.len());
    sig.finish()
}

pub const FLV_FILE: Target = Target {
    name: "flv_file",
    dirs: &["flv_file"],
    max_len: 64 << 10,
    shape: Shape::Bytes,
    dict: &[
        b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00",
        b"\x09\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x17\x00\x00\x00\x00",
        b"\x08\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\xaf\x00\x12\x10",
        b"\x12\x00\x00\x10",
        b"\x17\x01",
        b"\x17\x00",
        b"\x27\x01",
        b"\xaf\x01",
        b"\xaf\x00",
        b"\x01\x64\x00\x1f\xff\xe1",
        b"\x02\x00\x0aonMetaData\x08",
        b"\x00\x05width\x00",
        b"\x00\x09framerate\x00",
    ],
    derive: no_seeds,
    setup: no_setup,
    run: flv_file,
};
