use super::*;
use fdk_aac::dec::{Decoder, Transport};

/// Interleaved 16-bit sines: channel `c` at `freqs[c]` Hz, half scale.
fn sines(rate: u32, freqs: &[f64], frames: usize) -> Vec<i16> {
    let mut pcm = Vec::with_capacity(frames * freqs.len());
    for n in 0..frames {
        for f in freqs {
            let t = n as f64 / f64::from(rate);
            pcm.push((16384.0 * (2.0 * std::f64::consts::PI * f * t).sin()) as i16);
        }
    }
    pcm
}

/// Encodes `pcm` frame by frame as the element does, then flushes; returns the access units.
fn encode_all(enc: &mut FdkEncoder, pcm: &[i16]) -> Vec<Vec<u8>> {
    let info = enc.info().unwrap();
    let step = info.frame_length as usize * usize::from(enc.config().channels);
    let mut out = vec![0u8; info.max_out_bytes];
    let mut units = Vec::new();
    for chunk in pcm.chunks(step) {
        let mut rest = chunk;
        while !rest.is_empty() {
            let s = enc.encode(rest, &mut out).unwrap();
            if s.written > 0 {
                units.push(out[..s.written].to_vec());
            }
            assert!(s.consumed > 0 || s.written > 0, "encoder made no progress");
            rest = &rest[s.consumed..];
        }
    }
    for _ in 0..16 {
        match enc.flush(&mut out).unwrap() {
            Some(n) => units.push(out[..n].to_vec()),
            None => return units,
        }
    }
    panic!("flush did not end");
}

/// What the decoder made of the access units.
struct Decoded {
    pcm: Vec<i16>,
    rate: u32,
    channels: usize,
    /// The delay the decoder itself adds (concealment, limiter), in samples.
    own_delay: usize,
}

/// Decodes access units with libfdk-aac's decoder into interleaved samples.
fn decode_all(asc: &[u8], units: &[Vec<u8>]) -> Decoded {
    let mut dec = Decoder::new(Transport::Raw);
    dec.config_raw(asc).unwrap();
    let mut pcm = Vec::new();
    let mut frame = vec![0i16; 2048 * 8];
    for au in units {
        dec.fill(au).unwrap();
        dec.decode_frame(&mut frame).unwrap();
        pcm.extend_from_slice(&frame[..dec.decoded_frame_size()]);
    }
    let info = dec.stream_info();
    Decoded {
        pcm,
        rate: info.sampleRate as u32,
        channels: info.numChannels as usize,
        own_delay: info.outputDelay as usize,
    }
}

/// Interleaved stereo: a chirp (200 Hz rising 1 kHz per second, never repeating) on the left,
/// a steady `tone` on the right.
fn chirp_and_tone(rate: u32, tone: f64, frames: usize) -> Vec<i16> {
    let mut pcm = Vec::with_capacity(frames * 2);
    for n in 0..frames {
        let t = n as f64 / f64::from(rate);
        let chirp = (2.0 * std::f64::consts::PI * (200.0 * t + 500.0 * t * t)).sin();
        let sine = (2.0 * std::f64::consts::PI * tone * t).sin();
        pcm.push((16384.0 * chirp) as i16);
        pcm.push((16384.0 * sine) as i16);
    }
    pcm
}

fn channel(pcm: &[i16], channels: usize, c: usize) -> Vec<f64> {
    pcm.iter().skip(c).step_by(channels).map(|&s| f64::from(s)).collect()
}

/// The lag (in samples) at which `out` best matches `input` (out[n + lag] ≈ input[n]).
fn best_lag(input: &[f64], out: &[f64], max_lag: usize) -> usize {
    let window = &input[4096..4096 + 4800];
    (0..max_lag)
        .min_by(|&a, &b| {
            let err =
                |lag: usize| -> f64 { window.iter().enumerate().map(|(i, x)| (out[4096 + i + lag] - x).powi(2)).sum() };
            err(a).total_cmp(&err(b))
        })
        .unwrap()
}

fn zero_crossings(x: &[f64]) -> usize {
    x.windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count()
}

fn asc_fields(asc: &[u8]) -> (u8, u8, u8) {
    (asc[0] >> 3, ((asc[0] & 0x07) << 1) | (asc[1] >> 7), (asc[1] >> 3) & 0x0f)
}

#[test]
fn reports_lc_config_with_true_rate_and_channels() {
    for (rate, channels, index) in [(48000, 2, 3), (44100, 1, 4), (8000, 1, 11), (96000, 2, 0)] {
        let enc =
            FdkEncoder::new(FdkConfig { sample_rate: rate, channels, bitrate: 64000, afterburner: true }).unwrap();
        let info = enc.info().unwrap();
        assert_eq!(info.frame_length, 1024);
        assert!(info.asc.len() >= 2, "{rate}: ASC {:?}", info.asc);
        assert_eq!(asc_fields(&info.asc), (2, index, channels), "{rate} Hz x{channels}");
        assert!(info.delay >= 1024 && info.delay < 4096, "delay {}", info.delay);
        assert!(info.max_out_bytes >= 768 * usize::from(channels));
    }
}

#[test]
fn encodes_audio_that_decodes_back_delayed_by_the_reported_delay() {
    let rate = 48000;
    let input = chirp_and_tone(rate, 1000.0, rate as usize); // one second
    let mut enc =
        FdkEncoder::new(FdkConfig { sample_rate: rate, channels: 2, bitrate: 128000, afterburner: true }).unwrap();
    let info = enc.info().unwrap();
    let units = encode_all(&mut enc, &input);

    // Every input frame plus the delay line comes out, one access unit per 1024 samples.
    let expected = (rate as usize + info.delay as usize).div_ceil(1024);
    assert!(units.len().abs_diff(expected) <= 1, "{} units, expected about {expected}", units.len());

    let decoded = decode_all(&info.asc, &units);
    assert_eq!((decoded.rate, decoded.channels), (rate, 2));
    // The decoded chirp is the input chirp, the encoder's reported delay later (plus what
    // the decoder adds and says so); a chirp has one best lag.
    let lag = info.delay as usize + decoded.own_delay;
    let (chirp_in, chirp_out) = (channel(&input, 2, 0), channel(&decoded.pcm, 2, 0));
    assert_eq!(best_lag(&chirp_in, &chirp_out, 6000), lag);
    // Half a second of steady tone keeps its frequency (2 zero crossings per period).
    let tone = channel(&decoded.pcm, 2, 1);
    let steady = &tone[lag + 6000..lag + 30000];
    let measured = zero_crossings(steady) as f64 / 2.0 / 0.5;
    assert!((measured - 1000.0).abs() < 20.0, "{measured} Hz, wanted 1000");
}

#[test]
fn holds_the_target_bitrate() {
    let rate = 44100;
    let input = sines(rate, &[600.0], rate as usize * 2);
    for bitrate in [48000u32, 96000] {
        let mut enc =
            FdkEncoder::new(FdkConfig { sample_rate: rate, channels: 1, bitrate, afterburner: false }).unwrap();
        assert_eq!(enc.info().unwrap().bitrate, bitrate);
        let units = encode_all(&mut enc, &input);
        let bits: usize = units.iter().map(|u| u.len() * 8).sum();
        let seconds = units.len() as f64 * 1024.0 / f64::from(rate);
        let actual = bits as f64 / seconds;
        assert!((actual - f64::from(bitrate)).abs() < f64::from(bitrate) * 0.1, "{bitrate}: got {actual}");
    }
}

#[test]
fn partial_last_frame_is_flushed() {
    let rate = 16000;
    let input = sines(rate, &[300.0], 1500); // one and a half frames
    let mut enc =
        FdkEncoder::new(FdkConfig { sample_rate: rate, channels: 1, bitrate: 32000, afterburner: true }).unwrap();
    let delay = enc.info().unwrap().delay as usize;
    let units = encode_all(&mut enc, &input);
    assert!(units.len() >= (1500 + delay).div_ceil(1024), "{} units", units.len());
    // After the flush the encoder is spent.
    let mut out = vec![0u8; 4096];
    assert_eq!(enc.flush(&mut out).unwrap(), None);
}

#[test]
fn rejects_what_aac_lc_cannot_carry() {
    let base = FdkConfig { sample_rate: 48000, channels: 2, bitrate: 128000, afterburner: true };
    assert!(FdkEncoder::new(FdkConfig { channels: 3, ..base }).is_err());
    assert!(FdkEncoder::new(FdkConfig { channels: 0, ..base }).is_err());
    let err = FdkEncoder::new(FdkConfig { sample_rate: 1234, ..base }).err().expect("1234 Hz is no AAC rate");
    assert!(err.to_string().contains("libfdk-aac"), "{err}");
}

#[test]
fn bitrates_the_format_cannot_carry_are_adjusted_not_refused() {
    let too_high = FdkEncoder::new(FdkConfig { sample_rate: 8000, channels: 1, bitrate: 512_000, afterburner: true });
    let too_low = FdkEncoder::new(FdkConfig { sample_rate: 96000, channels: 2, bitrate: 8_000, afterburner: true });
    for (mut enc, requested) in [(too_high.unwrap(), 512_000), (too_low.unwrap(), 8_000)] {
        let info = enc.info().unwrap();
        assert_ne!(info.bitrate, requested, "kept an impossible bitrate");
        let rate = enc.config().sample_rate;
        let channels = usize::from(enc.config().channels);
        let freqs = vec![500.0; channels];
        let units = encode_all(&mut enc, &sines(rate, &freqs, rate as usize / 2));
        assert!(!units.is_empty() && units.iter().all(|u| !u.is_empty()));
    }
}
