//! `igaacenc`, our AAC-LC encoder element: registration and properties, real files checked
//! with ffprobe and decoded back with ffmpeg, timestamps and encoder-delay alignment checked
//! with libav's decoder, and the gateway's own transcoder turning Opus frames into AAC frames.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use interop_gateway::media::aac::AudioSpecificConfig;
use interop_gateway::media::{AudioInfo, Codec, Frame, TrackInfo, Ts};
use interop_gateway::pipeline::{self, TranscodeSink, Transcoder};

const TIMEOUT: Duration = Duration::from_secs(60);

/// A scratch file path, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> TempFile {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        TempFile(std::env::temp_dir().join(format!("igaacenc-{}-{nanos}-{name}", std::process::id())))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs a gst-launch style pipeline to EOS (bounded); an error message fails the test.
fn run_to_eos(description: &str) {
    pipeline::init();
    let pipeline = gst::parse::launch(description).unwrap_or_else(|e| panic!("`{description}`: {e}"));
    let bus = pipeline.bus().expect("pipeline bus");
    pipeline.set_state(gst::State::Playing).expect("to PLAYING");
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(TIMEOUT.as_secs()),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let _ = pipeline.set_state(gst::State::Null);
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        Some(gst::MessageView::Error(e)) => panic!("`{description}`: {} ({:?})", e.error(), e.debug()),
        _ => panic!("`{description}`: no EOS within {TIMEOUT:?}"),
    }
}

/// What ffprobe says about a file's first audio stream (frames counted).
struct Probed {
    codec: String,
    profile: String,
    sample_rate: u32,
    channels: u32,
    frames: u64,
    duration: f64,
}

fn ffprobe(path: &Path) -> Probed {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-count_frames", "-show_streams", "-show_format"])
        .args(["-of", "json"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(out.status.success(), "ffprobe: {}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let s = &json["streams"][0];
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let number = |v: &serde_json::Value| text(v).parse::<f64>().ok();
    Probed {
        codec: text(&s["codec_name"]),
        profile: text(&s["profile"]),
        sample_rate: text(&s["sample_rate"]).parse().unwrap_or(0),
        channels: s["channels"].as_u64().unwrap_or(0) as u32,
        frames: text(&s["nb_read_frames"]).parse().unwrap_or(0),
        duration: number(&s["duration"]).or_else(|| number(&json["format"]["duration"])).unwrap_or(0.0),
    }
}

/// Decodes a file's audio with ffmpeg to mono 16-bit samples at its own rate.
fn ffmpeg_decode_mono(path: &Path) -> Vec<f64> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-ac", "1", "-f", "s16le", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout.chunks_exact(2).map(|b| f64::from(i16::from_le_bytes([b[0], b[1]]))).collect()
}

/// The frequency of a steady tone from its zero crossings (two per period).
fn tone_frequency(samples: &[f64], rate: u32) -> f64 {
    let crossings = samples.windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count();
    crossings as f64 / 2.0 / (samples.len() as f64 / f64::from(rate))
}

fn rms(samples: &[f64]) -> f64 {
    (samples.iter().map(|x| x * x).sum::<f64>() / samples.len().max(1) as f64).sqrt()
}

/// Encodes `buffers` x 1024 samples of a `freq` sine into `mux` and checks the file.
fn encode_file_and_check(rate: u32, channels: u32, freq: f64, bitrate: u32, mux: &str, ext: &str) {
    let file = TempFile::new(&format!("{rate}-{channels}.{ext}"));
    let buffers = 200u32;
    run_to_eos(&format!(
        "audiotestsrc num-buffers={buffers} samplesperbuffer=1024 freq={freq} \
         ! audio/x-raw,rate={rate},channels={channels} ! audioconvert \
         ! igaacenc bitrate={bitrate} ! aacparse ! {mux} ! filesink location={}",
        file.0.display()
    ));
    let input_seconds = f64::from(buffers * 1024) / f64::from(rate);

    let p = ffprobe(&file.0);
    assert_eq!(p.codec, "aac", "{ext}");
    assert_eq!(p.profile, "LC", "{ext}");
    assert_eq!(p.sample_rate, rate, "{ext}");
    assert_eq!(p.channels, channels, "{ext}");
    // One access unit per 1024 input samples: priming and end padding are not sent.
    assert!(p.frames.abs_diff(u64::from(buffers)) <= 1, "{ext}: {} frames for {buffers} frames of input", p.frames);
    assert!((p.duration - input_seconds).abs() < 0.05, "{ext}: {} s for {input_seconds} s of input", p.duration);

    // The bitrate holds: payload bits over the duration (containers add little).
    let bytes = std::fs::metadata(&file.0).expect("file size").len();
    let kbps = bytes as f64 * 8.0 / input_seconds / 1000.0;
    let target = f64::from(bitrate) / 1000.0;
    assert!(kbps > target * 0.85 && kbps < target * 1.2, "{ext}: {kbps:.1} kbit/s for {target}");

    // Decoded back, it is the tone again, not silence or noise.
    let decoded = ffmpeg_decode_mono(&file.0);
    let expected = (input_seconds * f64::from(rate)) as usize;
    assert!(decoded.len().abs_diff(expected) < rate as usize / 20, "{ext}: {} samples decoded", decoded.len());
    let middle = &decoded[decoded.len() / 4..decoded.len() * 3 / 4];
    let measured = tone_frequency(middle, rate);
    assert!((measured - freq).abs() < freq * 0.02, "{ext}: {measured:.1} Hz, wanted {freq}");
    // audiotestsrc's default volume 0.8: a sine RMS of about 0.8 / sqrt(2) of full scale.
    let level = rms(middle) / 32768.0;
    assert!(level > 0.45 && level < 0.7, "{ext}: RMS {level:.3}");
}

#[test]
fn element_is_registered_with_its_properties_and_caps() {
    pipeline::init();
    let factory = gst::ElementFactory::find("igaacenc").expect("igaacenc registered by pipeline::init");
    assert_eq!(factory.rank(), gst::Rank::NONE);
    assert_eq!(factory.metadata(gst::ELEMENT_METADATA_KLASS), Some("Codec/Encoder/Audio"));
    // Registering again is harmless.
    interop_gateway::pipeline::elements::aacenc::register().expect("second registration");

    let enc = gst::ElementFactory::make("igaacenc").build().expect("make igaacenc");
    assert_eq!(enc.property::<u32>("bitrate"), 128_000);
    assert!(enc.property::<bool>("afterburner"));
    let spec = enc.find_property("bitrate").expect("bitrate property");
    let spec = spec.downcast_ref::<gst::glib::ParamSpecUInt>().expect("uint bitrate");
    assert!(spec.minimum() <= 8_000 && spec.maximum() >= 320_000);
    enc.set_property("bitrate", 64_000u32);
    enc.set_property("afterburner", false);
    assert_eq!(enc.property::<u32>("bitrate"), 64_000);
    assert!(!enc.property::<bool>("afterburner"));

    let template =
        |name: &str| factory.static_pad_templates().into_iter().find(|t| t.name_template() == name).expect(name).caps();
    let sink = template("sink");
    let fits = |caps: &str| caps.parse::<gst::Caps>().expect("caps").can_intersect(&sink);
    assert!(fits("audio/x-raw,format=S16LE,layout=interleaved,rate=48000,channels=2"));
    assert!(fits("audio/x-raw,format=S16LE,layout=interleaved,rate=44100,channels=1"));
    assert!(fits("audio/x-raw,format=S16LE,layout=interleaved,rate=8000,channels=1"));
    assert!(!fits("audio/x-raw,format=S16LE,layout=interleaved,rate=7350,channels=1"));
    assert!(!fits("audio/x-raw,format=S16LE,layout=interleaved,rate=48000,channels=6"));
    assert!(!fits("audio/x-raw,format=F32LE,layout=interleaved,rate=48000,channels=2"));
    let src = template("src");
    let s = src.structure(0).expect("src structure");
    assert_eq!(s.name(), "audio/mpeg");
    assert_eq!(s.get::<i32>("mpegversion").ok(), Some(4));
    assert_eq!(s.get::<&str>("stream-format").ok(), Some("raw"));
    assert_eq!(s.get::<&str>("base-profile").ok(), Some("lc"));
}

#[test]
fn encodes_48k_stereo_into_mp4() {
    encode_file_and_check(48000, 2, 1000.0, 96000, "mp4mux", "mp4");
}

#[test]
fn encodes_44k_mono_into_flv() {
    encode_file_and_check(44100, 1, 440.0, 64000, "flvmux", "flv");
}

#[test]
fn encodes_48k_stereo_into_flv_as_rtmp_carries_it() {
    // FLV's own rate field cannot say 48 kHz; the AudioSpecificConfig does.
    encode_file_and_check(48000, 2, 2000.0, 128000, "flvmux", "flv");
}

/// Runs `description` (which ends in `appsink name=out`) to EOS and returns its buffers
/// with the caps of the first.
fn collect(description: &str) -> (Vec<gst::Buffer>, gst::Caps) {
    collect_fed(description, |_| {})
}

/// Like [`collect`]; `feed` gets the pipeline once it plays (to push into an appsrc).
fn collect_fed(description: &str, feed: impl FnOnce(&gst::Bin)) -> (Vec<gst::Buffer>, gst::Caps) {
    pipeline::init();
    let pipeline = gst::parse::launch(description).unwrap_or_else(|e| panic!("`{description}`: {e}"));
    let bin = pipeline.clone().downcast::<gst::Bin>().expect("bin");
    let sink = bin.by_name("out").expect("appsink out").downcast::<gst_app::AppSink>().expect("appsink");
    pipeline.set_state(gst::State::Playing).expect("to PLAYING");
    feed(&bin);
    let mut buffers = Vec::new();
    let mut caps = None;
    let deadline = Instant::now() + TIMEOUT;
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(5)) {
        caps.get_or_insert_with(|| sample.caps().expect("sample caps").to_owned());
        buffers.push(sample.buffer_owned().expect("sample buffer"));
        assert!(Instant::now() < deadline, "`{description}` did not end");
    }
    let errors = pipeline.bus().and_then(|b| b.pop_filtered(&[gst::MessageType::Error]));
    let _ = pipeline.set_state(gst::State::Null);
    assert!(errors.is_none(), "`{description}`: {errors:?}");
    assert!(sink.is_eos(), "`{description}` stalled");
    (buffers, caps.expect("no output"))
}

#[test]
fn output_carries_the_config_and_perfect_timestamps() {
    let (units, caps) = collect(
        "audiotestsrc num-buffers=50 samplesperbuffer=1024 ! audio/x-raw,rate=48000,channels=2 \
         ! audioconvert ! igaacenc ! appsink name=out sync=false",
    );
    let s = caps.structure(0).expect("caps structure");
    assert_eq!(s.get::<i32>("rate").ok(), Some(48000));
    assert_eq!(s.get::<i32>("channels").ok(), Some(2));
    let codec_data = s.get::<gst::Buffer>("codec_data").expect("codec_data");
    let asc = AudioSpecificConfig::parse(codec_data.map_readable().expect("map").as_slice()).expect("ASC");
    assert_eq!((asc.object_type, asc.sample_rate, asc.output_channels()), (2, 48000, 2));

    // 50 frames of input, 50 units out, each 1024 samples long, back to back from 0.
    assert_eq!(units.len(), 50);
    // The stream start stays marked although the priming units before it were dropped.
    assert!(units[0].flags().contains(gst::BufferFlags::DISCONT));
    assert!(!units[1].flags().contains(gst::BufferFlags::DISCONT));
    let frame_ns = 1024.0 * 1e9 / 48000.0;
    for (k, unit) in units.iter().enumerate() {
        let pts = unit.pts().expect("pts").nseconds() as f64;
        assert!((pts - k as f64 * frame_ns).abs() < 1000.0, "unit {k} at {pts} ns");
        let duration = unit.duration().expect("duration").nseconds() as f64;
        assert!((duration - frame_ns).abs() < 1000.0, "unit {k} lasts {duration} ns");
        assert!(unit.size() > 0);
    }
}

#[test]
fn reports_its_delay_as_latency() {
    pipeline::init();
    let pipeline = gst::parse::launch(
        "audiotestsrc is-live=true samplesperbuffer=480 ! audio/x-raw,rate=48000,channels=1 \
         ! igaacenc name=enc ! fakesink",
    )
    .expect("pipeline");
    let bin = pipeline.clone().downcast::<gst::Bin>().expect("bin");
    pipeline.set_state(gst::State::Playing).expect("to PLAYING");
    let (result, _, _) = pipeline.state(gst::ClockTime::from_seconds(10));
    assert!(result.is_ok(), "did not reach PLAYING: {result:?}");
    let src = bin.by_name("enc").and_then(|e| e.static_pad("src")).expect("encoder src pad");
    let mut query = gst::query::Latency::new();
    let answered = src.query(&mut query);
    let _ = pipeline.set_state(gst::State::Null);
    assert!(answered, "latency query unanswered");
    let (live, min, _max) = query.result();
    assert!(live);
    // The source's 10 ms buffers, plus one 1024-sample frame and the encoder delay, which
    // `pre_push` takes off the timestamps (libfdk-aac reports at least a frame of it).
    let own = min.nseconds() as f64 / 1e6 - 10.0;
    assert!((2.0 * 1024.0 / 48.0 - 0.1..=4.0 * 1024.0 / 48.0).contains(&own), "encoder latency {own:.2} ms");
}

#[test]
fn decoded_audio_lines_up_with_the_input() {
    // Half a second of silence, then a tone: after encoding and decoding (libav's decoder,
    // which keeps the timestamps it is given) the tone must start at 0.5 s, not an encoder
    // delay later.
    let rate = 48000usize;
    let pcm: Vec<u8> = (0..rate)
        .map(|n| {
            if n < rate / 2 {
                0.0
            } else {
                20000.0 * (2.0 * std::f64::consts::PI * 1000.0 * (n - rate / 2) as f64 / rate as f64).sin()
            }
        })
        .flat_map(|x| (x as i16).to_le_bytes())
        .collect();
    let (decoded, _) = collect_fed(
        "appsrc name=src format=time caps=audio/x-raw,format=S16LE,layout=interleaved,rate=48000,channels=1 \
         ! igaacenc ! avdec_aac ! audioconvert ! audio/x-raw,format=S16LE,layout=interleaved,channels=1 \
         ! appsink name=out sync=false",
        |bin| {
            let src = bin.by_name("src").expect("appsrc").downcast::<gst_app::AppSrc>().expect("appsrc");
            let mut buffer = gst::Buffer::from_mut_slice(pcm);
            buffer.get_mut().expect("new buffer").set_pts(gst::ClockTime::ZERO);
            src.push_buffer(buffer).expect("push pcm");
            src.end_of_stream().expect("eos");
        },
    );
    let mut onset = None;
    for buffer in &decoded {
        let map = buffer.map_readable().expect("map");
        let mut samples = map.as_slice().chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]]));
        if let Some(i) = samples.position(|x| x.unsigned_abs() > 3000) {
            let pts = buffer.pts().expect("decoded pts").nseconds();
            onset = Some(pts + i as u64 * 1_000_000_000 / rate as u64);
            break;
        }
    }
    let ms = onset.expect("the tone came through") as f64 / 1e6;
    assert!((ms - 500.0).abs() < 3.0, "tone starts at {ms:.2} ms, wanted 500");
}

/// `seconds` of a 1 kHz tone as interleaved S16LE.
fn tone_pcm(rate: u32, channels: usize, seconds: f64) -> Vec<u8> {
    let frames = (f64::from(rate) * seconds) as usize;
    (0..frames)
        .flat_map(|n| {
            let x = 16000.0 * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / f64::from(rate)).sin();
            std::iter::repeat_n(x as i16, channels)
        })
        .flat_map(|x| x.to_le_bytes())
        .collect()
}

/// Pushes `parts` (caps, segment base, pcm) through `appsrc ! igaacenc ! appsink`; returns
/// every output unit with the sample rate its caps' AudioSpecificConfig says.
fn encode_parts(parts: Vec<(&str, u64, Vec<u8>)>) -> Vec<(gst::Buffer, u32)> {
    pipeline::init();
    let pipeline = gst::parse::launch(
        "appsrc name=src format=time handle-segment-change=true ! igaacenc ! appsink name=out sync=false",
    )
    .expect("pipeline");
    let bin = pipeline.clone().downcast::<gst::Bin>().expect("bin");
    let src = bin.by_name("src").expect("appsrc").downcast::<gst_app::AppSrc>().expect("appsrc");
    let sink = bin.by_name("out").expect("appsink").downcast::<gst_app::AppSink>().expect("appsink");
    pipeline.set_state(gst::State::Playing).expect("to PLAYING");
    for (caps, base, pcm) in parts {
        let mut segment = gst::FormattedSegment::<gst::ClockTime>::new();
        segment.set_base(gst::ClockTime::from_nseconds(base));
        let mut buffer = gst::Buffer::from_mut_slice(pcm);
        buffer.get_mut().expect("new buffer").set_pts(gst::ClockTime::ZERO);
        let sample = gst::Sample::builder()
            .buffer(&buffer)
            .caps(&caps.parse::<gst::Caps>().expect("caps"))
            .segment(&segment)
            .build();
        src.push_sample(&sample).expect("push sample");
    }
    src.end_of_stream().expect("eos");
    let mut units = Vec::new();
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(5)) {
        let caps = sample.caps().expect("caps");
        let codec_data = caps.structure(0).and_then(|s| s.get::<gst::Buffer>("codec_data").ok()).expect("codec_data");
        let asc = AudioSpecificConfig::parse(codec_data.map_readable().expect("map").as_slice()).expect("ASC");
        units.push((sample.buffer_owned().expect("buffer"), asc.sample_rate));
    }
    let errors = pipeline.bus().and_then(|b| b.pop_filtered(&[gst::MessageType::Error]));
    let _ = pipeline.set_state(gst::State::Null);
    assert!(errors.is_none(), "{errors:?}");
    assert!(sink.is_eos(), "stalled");
    units
}

#[test]
fn follows_a_format_change_with_a_new_config() {
    const STEREO_48K: &str = "audio/x-raw,format=S16LE,layout=interleaved,rate=48000,channels=2";
    const MONO_44K: &str = "audio/x-raw,format=S16LE,layout=interleaved,rate=44100,channels=1";
    let units = encode_parts(vec![(STEREO_48K, 0, tone_pcm(48000, 2, 0.5)), (MONO_44K, 0, tone_pcm(44100, 1, 0.5))]);
    let at_48k = units.iter().filter(|(_, rate)| *rate == 48000).count();
    let at_44k = units.iter().filter(|(_, rate)| *rate == 44100).count();
    // Half a second each: 24000 and 22050 samples, in 1024-sample units (the first part is
    // drained before the change, so its tail is not lost).
    assert!(at_48k.abs_diff(24) <= 1, "{at_48k} units at 48 kHz");
    assert!(at_44k.abs_diff(22) <= 1, "{at_44k} units at 44.1 kHz");
    assert_eq!(at_48k + at_44k, units.len());
    assert!(units[..at_48k].iter().all(|(_, rate)| *rate == 48000), "formats interleaved");
}

#[test]
fn starts_a_fresh_encoder_after_a_new_segment() {
    const MONO_48K: &str = "audio/x-raw,format=S16LE,layout=interleaved,rate=48000,channels=1";
    let units =
        encode_parts(vec![(MONO_48K, 0, tone_pcm(48000, 1, 0.5)), (MONO_48K, 2_000_000_000, tone_pcm(48000, 1, 0.5))]);
    // The new segment drains the first half second and restarts from its time 0.
    let restart = units.iter().skip(1).position(|(b, _)| b.pts() == Some(gst::ClockTime::ZERO)).map(|i| i + 1);
    let restart = restart.expect("a unit at time 0 of the second segment");
    assert!(restart.abs_diff(24) <= 1, "first segment gave {restart} units");
    assert!((units.len() - restart).abs_diff(24) <= 1, "second segment gave {} units", units.len() - restart);
    assert_eq!(units[0].0.pts(), Some(gst::ClockTime::ZERO));
}

/// Opus packets of a 440 Hz stereo tone, 20 ms each.
fn opus_packets(count: u32) -> Vec<Bytes> {
    let (buffers, _) = collect(&format!(
        "audiotestsrc num-buffers={count} samplesperbuffer=960 freq=440 ! audio/x-raw,rate=48000,channels=2 \
         ! opusenc bitrate=96000 frame-size=20 ! appsink name=out sync=false"
    ));
    buffers.iter().map(|b| Bytes::copy_from_slice(b.map_readable().expect("map").as_slice())).collect()
}

#[tokio::test]
async fn transcoder_turns_opus_frames_into_aac_frames() {
    let packets = opus_packets(150);
    assert!(packets.len() >= 140, "{} opus packets", packets.len());

    let input =
        Arc::new(TrackInfo::Audio(AudioInfo { codec: Codec::Opus, sample_rate: 48000, channels: 2, config: None }));
    let frames: Arc<Mutex<Vec<Frame>>> = Arc::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let (f, e) = (frames.clone(), errors.clone());
    let sink = TranscodeSink {
        on_frame: Box::new(move |frame| f.lock().expect("frames").push(frame)),
        on_error: Box::new(move |err| e.lock().expect("errors").push(err)),
    };
    let mut transcoder = Transcoder::start(
        "aacenc-test",
        "opusdec ! audioconvert ! audioresample ! igaacenc bitrate=64000",
        input.clone(),
        Codec::Aac,
        sink,
    )
    .expect("transcoder starts");

    // The stream starts 5 s in, as a live one would.
    let start = Ts::from_millis(5000);
    for (k, data) in packets.iter().enumerate() {
        let ts = Ts(start.0 + k as i64 * 20_000_000);
        transcoder.push(&Frame::new(input.clone(), ts, ts, true, data.clone())).expect("push");
    }
    // Without an EOS the encoder keeps its last frames; three seconds of input give ~138 units.
    let deadline = Instant::now() + Duration::from_secs(20);
    while frames.lock().expect("frames").len() < 130 && Instant::now() < deadline {
        assert!(errors.lock().expect("errors").is_empty(), "{:?}", errors.lock());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(transcoder);

    let frames = frames.lock().expect("frames");
    assert!(frames.len() >= 130, "{} AAC frames", frames.len());
    for frame in frames.iter() {
        let TrackInfo::Audio(info) = &*frame.info else { panic!("not audio: {:?}", frame.info) };
        assert_eq!((info.codec, info.sample_rate, info.channels), (Codec::Aac, 48000, 2));
        let asc = AudioSpecificConfig::parse(info.config.as_ref().expect("ASC in the frame info")).expect("ASC");
        assert_eq!((asc.object_type, asc.sample_rate, asc.output_channels()), (2, 48000, 2));
        assert!(!frame.data.is_empty());
        assert_eq!(frame.pts, frame.dts);
    }
    // Timestamps follow the input's: from its start (within a frame, as the encoder delay
    // need not be whole frames), 1024 samples apart.
    let first = frames[0].pts.0 - start.0;
    assert!((0..=21_334_000).contains(&first), "first AAC frame {first} ns after the input start");
    for pair in frames.windows(2) {
        let step = pair[1].pts.0 - pair[0].pts.0;
        assert!((step - 21_333_333).abs() < 2_000, "step {step} ns");
    }
}
