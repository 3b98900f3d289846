//! `onMetaData`: the hints a publisher sends (read) and the ones the gateway sends (written).
use bytes::{Bytes, BytesMut};

use crate::media::{AudioInfo, Codec, VideoInfo};
use crate::protocols::rtmp::amf::{read_values, write_values, Amf0Value};

/// What a publisher's `onMetaData` said. Hints only: the codec configurations are the truth.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetaHints {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub framerate: Option<f64>,
    pub audio_sample_rate: Option<u32>,
    pub stereo: Option<bool>,
    pub encoder: Option<String>,
}

/// FLV's video codec id for AVC and sound format for AAC, as `onMetaData` numbers.
const VIDEO_CODEC_ID_AVC: f64 = 7.0;
const AUDIO_CODEC_ID_AAC: f64 = 10.0;

/// A positive number that fits `u32`, from a metadata field.
fn positive_u32(v: Option<&Amf0Value>) -> Option<u32> {
    let n = v?.as_f64()?;
    (n.is_finite() && n >= 1.0 && n <= f64::from(u32::MAX)).then_some(n.round() as u32)
}

impl MetaHints {
    /// Reads a script tag body. `Ok(None)` when it is not `onMetaData` (or
    /// `@setDataFrame onMetaData`, as RTMP publishers send it); errors only on bad AMF0.
    pub fn from_script(body: &[u8]) -> Result<Option<MetaHints>, crate::protocols::rtmp::amf::AmfError> {
        let values = read_values(body)?;
        let mut rest = values.iter();
        let mut name = rest.next().and_then(Amf0Value::as_str);
        if name == Some("@setDataFrame") {
            name = rest.next().and_then(Amf0Value::as_str);
        }
        if name != Some("onMetaData") {
            return Ok(None);
        }
        let Some(props) = rest.next().filter(|v| v.properties().is_some()) else {
            return Ok(Some(MetaHints::default()));
        };
        let framerate = props
            .get("framerate")
            .or_else(|| props.get("videoframerate"))
            .and_then(Amf0Value::as_f64)
            .filter(|f| f.is_finite() && *f > 0.0 && *f <= 1000.0);
        Ok(Some(MetaHints {
            width: positive_u32(props.get("width")),
            height: positive_u32(props.get("height")),
            framerate,
            audio_sample_rate: positive_u32(props.get("audiosamplerate")),
            stereo: props.get("stereo").and_then(Amf0Value::as_bool),
            encoder: props.get("encoder").and_then(Amf0Value::as_str).map(str::to_owned),
        }))
    }
}

/// The `onMetaData` script tag body the gateway sends to FLV/RTMP viewers: an ECMA array
/// with the H.264 picture size and rate and the AAC rate and channels. Tracks of other codecs
/// are left out (they cannot be sent as FLV).
pub fn metadata_body(video: Option<&VideoInfo>, audio: Option<&AudioInfo>) -> Bytes {
    let mut props: Vec<(String, Amf0Value)> = Vec::new();
    let mut put = |k: &str, v: Amf0Value| props.push((k.to_owned(), v));
    if let Some(v) = video.filter(|v| v.codec == Codec::H264) {
        put("width", Amf0Value::Number(f64::from(v.width)));
        put("height", Amf0Value::Number(f64::from(v.height)));
        if let Some(fps) = v.fps {
            put("framerate", Amf0Value::Number(fps));
        }
        put("videocodecid", Amf0Value::Number(VIDEO_CODEC_ID_AVC));
    }
    if let Some(a) = audio.filter(|a| a.codec == Codec::Aac) {
        put("audiocodecid", Amf0Value::Number(AUDIO_CODEC_ID_AAC));
        put("audiosamplerate", Amf0Value::Number(f64::from(a.sample_rate)));
        put("audiosamplesize", Amf0Value::Number(16.0));
        put("stereo", Amf0Value::Boolean(a.channels >= 2));
        put("audiochannels", Amf0Value::Number(f64::from(a.channels)));
    }
    put("encoder", Amf0Value::string("interop-gateway"));
    let mut out = BytesMut::new();
    write_values(&mut out, &[Amf0Value::string("onMetaData"), Amf0Value::EcmaArray(props)]);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::super::test_vectors::COLOR64_FLV;
    use super::*;

    /// The onMetaData tag body of the test file (after the 13-byte file header and the
    /// 11-byte tag header; 293 bytes).
    fn real_metadata() -> &'static [u8] {
        &COLOR64_FLV[24..24 + 293]
    }

    #[test]
    fn reads_ffmpeg_metadata() {
        let hints = MetaHints::from_script(real_metadata()).expect("amf").expect("onMetaData");
        assert_eq!((hints.width, hints.height), (Some(64), Some(64)));
        assert_eq!(hints.framerate, Some(25.0));
        assert_eq!(hints.audio_sample_rate, Some(48000));
        assert_eq!(hints.stereo, Some(true));
        assert_eq!(hints.encoder.as_deref(), Some("Lavf59.27.100"));
    }

    #[test]
    fn reads_set_data_frame_from_rtmp_publishers() {
        let mut body = BytesMut::new();
        let props = vec![
            ("width".to_owned(), Amf0Value::Number(1280.0)),
            ("height".to_owned(), Amf0Value::Number(720.0)),
            ("framerate".to_owned(), Amf0Value::Number(29.97)),
            ("audiosamplerate".to_owned(), Amf0Value::Number(44100.0)),
        ];
        write_values(
            &mut body,
            &[Amf0Value::string("@setDataFrame"), Amf0Value::string("onMetaData"), Amf0Value::EcmaArray(props)],
        );
        let hints = MetaHints::from_script(&body).expect("amf").expect("onMetaData");
        assert_eq!((hints.width, hints.height, hints.framerate), (Some(1280), Some(720), Some(29.97)));
        assert_eq!(hints.audio_sample_rate, Some(44100));
    }

    #[test]
    fn other_script_tags_and_bad_values() {
        let mut body = BytesMut::new();
        write_values(&mut body, &[Amf0Value::string("onCuePoint"), Amf0Value::Null]);
        assert_eq!(MetaHints::from_script(&body), Ok(None));
        let mut body = BytesMut::new();
        let props = vec![
            ("width".to_owned(), Amf0Value::Number(-5.0)),
            ("framerate".to_owned(), Amf0Value::Number(f64::NAN)),
            ("height".to_owned(), Amf0Value::string("720")),
        ];
        write_values(&mut body, &[Amf0Value::string("onMetaData"), Amf0Value::EcmaArray(props)]);
        assert_eq!(MetaHints::from_script(&body), Ok(Some(MetaHints::default())));
        assert!(MetaHints::from_script(&real_metadata()[..40]).is_err(), "truncated AMF");
    }

    #[test]
    fn writes_metadata_players_read() {
        let video =
            VideoInfo { codec: Codec::H264, width: 320, height: 240, fps: Some(25.0), config: None, bframes: true };
        let audio = AudioInfo { codec: Codec::Aac, sample_rate: 48000, channels: 2, config: None };
        let body = metadata_body(Some(&video), Some(&audio));
        let values = read_values(&body).expect("amf");
        assert_eq!(values[0].as_str(), Some("onMetaData"));
        assert!(matches!(values[1], Amf0Value::EcmaArray(_)));
        let num = |k: &str| values[1].get(k).and_then(Amf0Value::as_f64);
        assert_eq!((num("width"), num("height"), num("framerate")), (Some(320.0), Some(240.0), Some(25.0)));
        assert_eq!((num("videocodecid"), num("audiocodecid")), (Some(7.0), Some(10.0)));
        assert_eq!(num("audiosamplerate"), Some(48000.0));
        assert_eq!(values[1].get("stereo").and_then(Amf0Value::as_bool), Some(true));
        assert_eq!(values[1].get("encoder").and_then(Amf0Value::as_str), Some("interop-gateway"));
        // And our own reader takes it back.
        let hints = MetaHints::from_script(&body).expect("amf").expect("onMetaData");
        assert_eq!((hints.width, hints.framerate, hints.audio_sample_rate), (Some(320), Some(25.0), Some(48000)));

        let opus = AudioInfo { codec: Codec::Opus, sample_rate: 48000, channels: 2, config: None };
        let values = read_values(&metadata_body(None, Some(&opus))).expect("amf");
        assert_eq!(values[1].get("audiocodecid"), None);
        assert_eq!(values[1].get("width"), None);
    }
}
