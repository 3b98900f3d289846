//! Bench tool for `bench/latency.py`, `bench/avsync.py` and `bench/run.py`: a test source whose
//! pictures carry their send time (and flash, with a beep, at each whole second), a receiver
//! that plays a URL like a real client and reads it all back, load generators without
//! decoding, and the codec floor.
//!
//! ```text
//! avprobe source rtmp|whip|h5 URL [--serve PORT] [--audio-delay S] [--size WxH] [--fps N] [--seconds S]
//! avprobe receive URL [--seconds S] [--first] [--convert-video DESC] [--convert-audio DESC] [--jitter-ms MS] [--video-only]
//! avprobe load-whep N WARMUP SECONDS URL...
//! avprobe load-rtmp N WARMUP SECONDS URL...
//! avprobe floor PIPELINE-DESCRIPTION
//! ```
//! See `source.rs`, `receive.rs` and `load.rs` for what each prints.

mod code;
mod load;
mod receive;
mod source;
mod webrtc;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const USAGE: &str = "usage: avprobe source rtmp|whip|h5 URL [--serve PORT] [--audio-delay S] [--size WxH] [--fps N] [--seconds S]
       avprobe receive URL [--seconds S] [--first] [--convert-video DESC] [--convert-audio DESC] [--jitter-ms MS] [--video-only]
       avprobe load-whep|load-rtmp N WARMUP SECONDS URL...
       avprobe floor PIPELINE-DESCRIPTION";

/// `--name value` options after the positional arguments.
struct Options(Vec<String>);

impl Options {
    fn value(&self, name: &str) -> Option<&str> {
        self.0.iter().position(|a| a == name).and_then(|i| self.0.get(i + 1)).map(String::as_str)
    }

    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T> {
        match self.value(name) {
            Some(v) => v.parse().map_err(|_| format!("{name}: not a number: {v}").into()),
            None => Ok(default),
        }
    }

    fn flag(&self, name: &str) -> bool {
        self.0.iter().any(|a| a == name)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = dispatch(&args) {
        eprintln!("avprobe: {e}");
        std::process::exit(1);
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

fn dispatch(args: &[String]) -> Result<()> {
    let command = args.first().map(String::as_str).unwrap_or("");
    if command == "floor" && args.len() == 2 {
        return load::floor(&args[1]);
    }
    interop_gateway::pipeline::init();
    match command {
        "source" if args.len() >= 3 => {
            let o = Options(args[3..].to_vec());
            let (w, h) = o.value("--size").unwrap_or("640x360").split_once('x').ok_or("--size WxH")?;
            let a = source::SourceArgs {
                kind: args[1].clone(),
                url: args[2].clone(),
                serve: o.value("--serve").map(str::parse).transpose()?,
                audio_delay_s: o.number("--audio-delay", 0.0)?,
                width: w.parse()?,
                height: h.parse()?,
                fps: o.number("--fps", 30)?,
                seconds: o.number("--seconds", 3600.0)?,
            };
            runtime()?.block_on(source::run(a))
        }
        "receive" if args.len() >= 2 => {
            let o = Options(args[2..].to_vec());
            let a = receive::ReceiveArgs {
                url: args[1].clone(),
                seconds: o.number("--seconds", 10.0)?,
                first: o.flag("--first"),
                convert_video: o.value("--convert-video").map(str::to_string),
                convert_audio: o.value("--convert-audio").map(str::to_string),
                jitter_ms: o.number("--jitter-ms", 0)?,
                video_only: o.flag("--video-only"),
            };
            runtime()?.block_on(receive::run(a))
        }
        "load-whep" | "load-rtmp" if args.len() >= 5 => {
            let (n, warmup, seconds) = (args[1].parse()?, args[2].parse()?, args[3].parse()?);
            let urls = args[4..].to_vec();
            if command == "load-whep" {
                runtime()?.block_on(load::whep(n, warmup, seconds, &urls))
            } else {
                runtime()?.block_on(load::rtmp(n, warmup, seconds, &urls))
            }
        }
        _ => Err(USAGE.into()),
    }
}
