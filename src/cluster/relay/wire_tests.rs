use super::*;

fn encoded(m: &Message) -> Vec<u8> {
    let mut out = BytesMut::new();
    m.encode(&mut out);
    out.to_vec()
}

async fn decoded(bytes: &[u8]) -> Result<Message, WireError> {
    read(&mut &bytes[..]).await
}

fn h264_info() -> TrackInfo {
    // The avcC ffmpeg/libx264 wrote for a 176x144 baseline stream (see media/h264/tests.rs).
    let avcc = "0142c00affe100166742c00ad902c4ec0440000003004000000783c4899201000568cb83cb20";
    let config = Bytes::from(crate::auth::secret::unhex(avcc).expect("hex"));
    TrackInfo::Video(VideoInfo {
        codec: Codec::H264,
        width: 176,
        height: 144,
        fps: Some(15.0),
        config: Some(config),
        bframes: false,
    })
}

#[tokio::test]
async fn every_message_comes_back_as_it_was_sent() {
    let aac = TrackInfo::Audio(AudioInfo {
        codec: Codec::Aac,
        sample_rate: 48000,
        channels: 2,
        config: Some(Bytes::from_static(&[0x11, 0x90])),
    });
    let opus = TrackInfo::Audio(AudioInfo { codec: Codec::Opus, sample_rate: 48000, channels: 2, config: None });
    let messages = [
        Message::Info(h264_info()),
        Message::Info(aac),
        Message::Info(opus),
        Message::Frame {
            kind: TrackKind::Video,
            keyframe: true,
            dts: Ts(-5),
            pts: Ts(33_000_000),
            data: Bytes::from_static(b"\0\0\0\x01\x65"),
        },
        Message::Frame { kind: TrackKind::Audio, keyframe: true, dts: Ts(7), pts: Ts(7), data: Bytes::new() },
        Message::Keyframe,
        Message::End("publisher left".into()),
        Message::Ping,
    ];
    for m in messages {
        assert_eq!(decoded(&encoded(&m)).await.unwrap(), m);
    }
}

#[tokio::test]
async fn hostile_messages_are_refused_with_a_reason() {
    let too_long = ((MAX_MESSAGE + 1) as u32).to_be_bytes();
    assert_eq!(decoded(&too_long).await, Err(WireError::TooLong(MAX_MESSAGE + 1)));
    assert_eq!(decoded(&[0, 0, 0, 0]).await, Err(WireError::Empty));
    assert_eq!(decoded(&[0, 0, 0, 1, 9]).await, Err(WireError::UnknownType(9)));
    assert_eq!(decoded(&[0, 0, 0, 3, 2, 0, 1]).await, Err(WireError::Truncated("frame")));
    assert!(matches!(decoded(&[0, 0, 0, 10, 2]).await, Err(WireError::Io(_))), "a body cut short");
    let info = |track: u8, json: &str| {
        let mut v = ((json.len() + 2) as u32).to_be_bytes().to_vec();
        v.push(1);
        v.push(track);
        v.extend(json.as_bytes());
        v
    };
    for (track, json) in [
        (0, r#"{"codec":"aac"}"#),
        (1, r#"{"codec":"h264"}"#),
        (2, r#"{"codec":"h264"}"#),
        (0, r#"{"codec":"h264","width":99999}"#),
        (0, r#"{"codec":"h264","config":"zz"}"#),
        (0, r#"{"codec":"h264","config":"0142c01e"}"#),
        (1, r#"{"codec":"opus","channels":200}"#),
        (0, "not json"),
    ] {
        assert!(matches!(decoded(&info(track, json)).await, Err(WireError::BadInfo(_))), "{json}");
    }
}

#[test]
fn an_info_counts_as_sent_until_its_track_changes() {
    let mut sent = SentInfo::default();
    let video = Arc::new(h264_info());
    assert!(sent.changed(&video));
    assert!(!sent.changed(&video));
    assert!(!sent.changed(&Arc::new(h264_info())), "equal content is not a change");
    let opus =
        Arc::new(TrackInfo::Audio(AudioInfo { codec: Codec::Opus, sample_rate: 48000, channels: 2, config: None }));
    assert!(sent.changed(&opus));
    assert!(!sent.changed(&video));
}

#[tokio::test]
async fn random_bytes_never_panic() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 64) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|i| (seed >> (i % 56)) as u8).collect();
        if bytes.len() >= 4 {
            // Plausible lengths more often than not.
            bytes[..4].copy_from_slice(&((len.saturating_sub(4)) as u32).to_be_bytes());
        }
        let _ = decoded(&bytes).await;
    }
}
