//! Tests of the plain libavcodec encoder: packets are checked by reading the MPEG-1 headers
//! in them and by decoding them again with libavcodec's decoder.

use ffmpeg_next as ffmpeg;

use super::*;

/// An I420 test picture: a luma gradient with a bright square that moves with `n`.
struct TestPicture {
    width: u32,
    height: u32,
    planes: [Vec<u8>; 3],
    strides: [usize; 3],
}

impl TestPicture {
    fn new(width: u32, height: u32, n: u32) -> TestPicture {
        let (w, h) = (width as usize, height as usize);
        // Strides wider than the rows, as GStreamer pads them.
        let strides =
            [w.next_multiple_of(4) + 8, w.div_ceil(2).next_multiple_of(4) + 4, w.div_ceil(2).next_multiple_of(4) + 4];
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut y = vec![0u8; strides[0] * h];
        for r in 0..h {
            for c in 0..w {
                let in_square = (r / 32 + n as usize) % 4 == 0 && (c + 8 * n as usize) % 96 < 32;
                y[r * strides[0] + c] = if in_square { 235 } else { (16 + (c + r) * 200 / (w + h)) as u8 };
            }
        }
        let u = (0..strides[1] * ch).map(|i| (64 + (i % strides[1]) * 128 / cw.max(1)) as u8).collect();
        let v = vec![150u8; strides[2] * ch];
        TestPicture { width, height, planes: [y, u, v], strides }
    }

    fn picture(&self) -> I420Picture<'_> {
        I420Picture {
            width: self.width,
            height: self.height,
            planes: [&self.planes[0], &self.planes[1], &self.planes[2]],
            strides: self.strides,
        }
    }
}

/// Encodes `count` pictures, then flushes; returns all packets.
fn encode_all(enc: &mut Mpeg1Encoder, w: u32, h: u32, count: u32, force_at: Option<u32>) -> Vec<EncodedPacket> {
    let mut packets = Vec::new();
    for n in 0..count {
        let pic = TestPicture::new(w, h, n);
        packets.extend(enc.encode(&pic.picture(), n as i64 * 2, force_at == Some(n)).expect("encode"));
    }
    packets.extend(enc.flush().expect("flush"));
    packets
}

/// Start codes found in a packet, in order.
fn start_codes(data: &[u8]) -> Vec<u8> {
    data.windows(4).filter(|w| w[..3] == [0, 0, 1]).map(|w| w[3]).collect()
}

/// The picture_coding_type of a packet's picture header (1 I, 2 P, 3 B).
fn picture_type(data: &[u8]) -> Option<u8> {
    let at = data.windows(4).position(|w| w == [0, 0, 1, 0])?;
    // 10 bits temporal_reference, then 3 bits picture_coding_type.
    let bits = u16::from_be_bytes([*data.get(at + 4)?, *data.get(at + 5)?]);
    Some(((bits >> 3) & 0b111) as u8)
}

/// (width, height, frame_rate_code) from the sequence header at the start of a packet.
fn sequence_header(data: &[u8]) -> Option<(u32, u32, u8)> {
    let at = data.windows(4).position(|w| w == [0, 0, 1, 0xB3])?;
    let b = data.get(at + 4..at + 8)?;
    let width = (b[0] as u32) << 4 | (b[1] as u32) >> 4;
    let height = ((b[1] & 0x0F) as u32) << 8 | b[2] as u32;
    Some((width, height, b[3] & 0x0F))
}

/// Decodes the packets with libavcodec; returns (width, height, mean luma) per frame.
fn decode(packets: &[EncodedPacket]) -> Vec<(u32, u32, f64)> {
    let codec = ffmpeg::codec::decoder::find(ffmpeg::codec::Id::MPEG1VIDEO).expect("mpeg1 decoder");
    let mut dec = ffmpeg::codec::Context::new_with_codec(codec).decoder().video().expect("decoder");
    let mut out = Vec::new();
    let mut frame = ffmpeg::util::frame::Video::empty();
    let mut take = |dec: &mut ffmpeg::decoder::Video, out: &mut Vec<(u32, u32, f64)>| {
        while dec.receive_frame(&mut frame).is_ok() {
            let (w, h, stride) = (frame.width() as usize, frame.height() as usize, frame.stride(0));
            let y = frame.data(0);
            let sum: u64 = (0..h).flat_map(|r| y[r * stride..r * stride + w].iter()).map(|&v| v as u64).sum();
            out.push((frame.width(), frame.height(), sum as f64 / (w * h) as f64));
        }
    };
    for p in packets {
        dec.send_packet(&ffmpeg::Packet::copy(&p.data)).expect("send packet");
        take(&mut dec, &mut out);
    }
    dec.send_eof().expect("eof");
    take(&mut dec, &mut out);
    out
}

fn settings(gop_size: u32) -> EncoderSettings {
    EncoderSettings { bitrate: 800_000, gop_size, ..EncoderSettings::default() }
}

#[test]
fn encodes_one_packet_per_picture_in_order_with_i_frames_every_gop() {
    let mut enc = Mpeg1Encoder::new(&settings(15), 640, 360, (30, 1), (1, 1)).expect("open");
    assert_eq!(enc.output_size(), (640, 360));
    assert_eq!(enc.frame_rate(), (30, 1));
    let packets = encode_all(&mut enc, 640, 360, 45, None);
    assert_eq!(packets.len(), 45);
    let pts: Vec<i64> = packets.iter().map(|p| p.pts).collect();
    assert_eq!(pts, (0..45).map(|n| n * 2).collect::<Vec<_>>());
    for (n, p) in packets.iter().enumerate() {
        let ptype = picture_type(&p.data).expect("picture header");
        assert_ne!(ptype, 3, "B-frame at {n}");
        assert_eq!(p.keyframe, ptype == 1, "keyframe flag vs picture type at {n}");
        let codes = start_codes(&p.data);
        if p.keyframe {
            // Sequence header, then GOP header, then the picture: a viewer can start here.
            assert_eq!(&codes[..3], &[0xB3, 0xB8, 0x00], "I-frame {n} starts with {codes:02x?}");
            assert_eq!(sequence_header(&p.data), Some((640, 360, 5)));
        } else {
            assert!(!codes.contains(&0xB3), "sequence header in P-frame {n}");
        }
    }
    let keys: Vec<usize> = packets.iter().enumerate().filter(|(_, p)| p.keyframe).map(|(n, _)| n).collect();
    assert!(keys.starts_with(&[0]) && keys.contains(&15) && keys.contains(&30), "I-frames at {keys:?}");
    assert!(keys.windows(2).all(|k| k[1] - k[0] <= 15), "I-frames at {keys:?}");

    let decoded = decode(&packets);
    assert_eq!(decoded.len(), 45);
    assert!(decoded.iter().all(|&(w, h, _)| (w, h) == (640, 360)));
}

#[test]
fn packets_come_one_picture_late_until_flushed() {
    let mut enc = Mpeg1Encoder::new(&settings(30), 160, 120, (30, 1), (1, 1)).expect("open");
    assert_eq!(enc.delay(), 1);
    let mut got = Vec::new();
    for n in 0..4 {
        let out = enc.encode(&TestPicture::new(160, 120, n).picture(), n as i64, false).expect("encode");
        got.push(out.iter().map(|p| p.pts).collect::<Vec<_>>());
    }
    assert_eq!(got, vec![vec![], vec![0], vec![1], vec![2]]);
    assert_eq!(enc.flush().expect("flush").iter().map(|p| p.pts).collect::<Vec<_>>(), vec![3]);
}

#[test]
fn decoded_pictures_look_like_the_input() {
    let mut enc = Mpeg1Encoder::new(&settings(30), 320, 240, (25, 1), (1, 1)).expect("open");
    let packets = encode_all(&mut enc, 320, 240, 10, None);
    let decoded = decode(&packets);
    assert_eq!(decoded.len(), 10);
    for (n, &(_, _, mean)) in decoded.iter().enumerate() {
        let pic = TestPicture::new(320, 240, n as u32);
        let s = pic.strides[0];
        let sum: u64 = (0..240).flat_map(|r| pic.planes[0][r * s..r * s + 320].iter()).map(|&v| v as u64).sum();
        let want = sum as f64 / (320.0 * 240.0);
        assert!((mean - want).abs() < 3.0, "frame {n}: mean luma {mean:.1}, input {want:.1}");
    }
}

#[test]
fn odd_sizes_are_cropped_to_even() {
    let mut enc = Mpeg1Encoder::new(&settings(30), 321, 241, (30, 1), (1, 1)).expect("open");
    assert_eq!(enc.output_size(), (320, 240));
    let packets = encode_all(&mut enc, 321, 241, 5, None);
    assert_eq!(sequence_header(&packets[0].data).map(|s| (s.0, s.1)), Some((320, 240)));
    let decoded = decode(&packets);
    assert_eq!(decoded.len(), 5);
    assert!(decoded.iter().all(|&(w, h, _)| (w, h) == (320, 240)));
}

#[test]
fn other_rates_are_declared_as_the_nearest_mpeg1_rate() {
    for (fps, code) in [((20, 1), 1u8), ((15, 1), 1), ((0, 1), 5), ((1_000_000_000, 1), 5), ((50, 1), 6)] {
        let mut enc = Mpeg1Encoder::new(&settings(30), 160, 120, fps, (1, 1)).expect("open");
        let packets = encode_all(&mut enc, 160, 120, 3, None);
        assert_eq!(packets.len(), 3);
        assert_eq!(sequence_header(&packets[0].data).map(|s| s.2), Some(code), "input {fps:?}");
    }
}

#[test]
fn wide_input_is_scaled_down_to_max_width() {
    let s = EncoderSettings { max_width: 640, ..settings(30) };
    let mut enc = Mpeg1Encoder::new(&s, 1280, 720, (30, 1), (1, 1)).expect("open");
    assert_eq!(enc.output_size(), (640, 360));
    let packets = encode_all(&mut enc, 1280, 720, 4, None);
    let decoded = decode(&packets);
    assert_eq!(decoded.len(), 4);
    let (w, h, mean) = decoded[0];
    assert_eq!((w, h), (640, 360));
    // Scaling keeps the picture: the mean luma stays near the input's.
    let pic = TestPicture::new(1280, 720, 0);
    let st = pic.strides[0];
    let sum: u64 = (0..720).flat_map(|r| pic.planes[0][r * st..r * st + 1280].iter()).map(|&v| v as u64).sum();
    let want = sum as f64 / (1280.0 * 720.0);
    assert!((mean - want).abs() < 4.0, "mean luma {mean:.1}, input {want:.1}");
}

#[test]
fn a_forced_keyframe_is_an_i_frame_with_a_sequence_header() {
    let mut enc = Mpeg1Encoder::new(&settings(100), 320, 240, (30, 1), (1, 1)).expect("open");
    let packets = encode_all(&mut enc, 320, 240, 12, Some(7));
    let keys: Vec<usize> = packets.iter().enumerate().filter(|(_, p)| p.keyframe).map(|(n, _)| n).collect();
    assert_eq!(keys, vec![0, 7]);
    assert_eq!(start_codes(&packets[7].data).first(), Some(&0xB3));
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let mut enc = Mpeg1Encoder::new(&settings(30), 320, 240, (30, 1), (1, 1)).expect("open");
    let pic = TestPicture::new(320, 240, 0);
    let mut short = pic.picture();
    short.planes[1] = &pic.planes[1][..100];
    assert!(matches!(enc.encode(&short, 0, false), Err(Mpeg1Error::ShortPlane { plane: 1, .. })));
    let mut narrow = pic.picture();
    narrow.strides[0] = 10;
    assert!(matches!(enc.encode(&narrow, 0, false), Err(Mpeg1Error::ShortPlane { plane: 0, .. })));
    let other = TestPicture::new(160, 120, 0);
    assert!(matches!(enc.encode(&other.picture(), 0, false), Err(Mpeg1Error::WrongSize { .. })));
    // Still usable after refusing bad input.
    let mut packets = enc.encode(&pic.picture(), 0, false).expect("encode");
    packets.extend(enc.flush().expect("flush"));
    assert_eq!(packets.len(), 1);

    assert!(matches!(
        Mpeg1Encoder::new(&settings(30), 1, 1, (30, 1), (1, 1)),
        Err(Mpeg1Error::Size(policy::SizeError::TooSmall { .. }))
    ));
    assert!(matches!(
        Mpeg1Encoder::new(&settings(30), 8192, 4320, (30, 1), (1, 1)),
        Err(Mpeg1Error::Size(policy::SizeError::TooLarge { .. }))
    ));
}

/// A test picture that counts how many of it are alive (libavcodec holds shared ones): the
/// `Arc` is only held, its strong count is the number alive.
struct Counted(TestPicture, #[allow(dead_code)] std::sync::Arc<()>);

impl SharedPicture for Counted {
    fn picture(&self) -> I420Picture<'_> {
        self.0.picture()
    }
}

#[test]
fn shared_pictures_encode_like_copied_ones_and_are_released() {
    for (w, h, max_width) in [(320, 240, 0), (321, 241, 0), (640, 360, 320)] {
        let s = EncoderSettings { max_width, ..settings(10) };
        let mut copied = Mpeg1Encoder::new(&s, w, h, (30, 1), (1, 1)).expect("open");
        let mut shared = Mpeg1Encoder::new(&s, w, h, (30, 1), (1, 1)).expect("open");
        let alive = std::sync::Arc::new(());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for n in 0..25 {
            a.extend(copied.encode(&TestPicture::new(w, h, n).picture(), n as i64, n == 7).expect("encode"));
            let owner = Counted(TestPicture::new(w, h, n), alive.clone());
            b.extend(shared.encode_shared(owner, n as i64, n == 7).expect("encode shared"));
            // libavcodec keeps at most the pictures it holds back (`delay`) and the one it is on.
            assert!(std::sync::Arc::strong_count(&alive) <= 1 + 2, "pictures piling up at {n}");
        }
        a.extend(copied.flush().expect("flush"));
        b.extend(shared.flush().expect("flush"));
        assert_eq!(a, b, "{w}x{h} max_width {max_width}: same packets either way");
        drop(shared);
        assert_eq!(std::sync::Arc::strong_count(&alive), 1, "every shared picture released");
    }
}

#[test]
fn shared_pictures_with_short_planes_are_refused_and_released() {
    let mut enc = Mpeg1Encoder::new(&settings(30), 320, 240, (30, 1), (1, 1)).expect("open");
    let alive = std::sync::Arc::new(());
    let mut pic = TestPicture::new(320, 240, 0);
    pic.planes[2].truncate(10);
    let err = enc.encode_shared(Counted(pic, alive.clone()), 0, false).expect_err("short plane");
    assert!(matches!(err, Mpeg1Error::ShortPlane { plane: 2, .. }), "{err}");
    assert_eq!(std::sync::Arc::strong_count(&alive), 1);
}
