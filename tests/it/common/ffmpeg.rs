//! ffmpeg as a synthetic RTMP publisher, and ffprobe to read streams back.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

use super::{stop_child, wait_child, LineBuffer};

/// What the synthetic stream looks like.
#[derive(Clone, Debug)]
pub struct PublishOptions {
    /// Stop after this long (`-t`); `None` runs until dropped.
    pub duration: Option<Duration>,
    /// Encode with B-frames (`-bf 2`, no zerolatency tune); otherwise `-tune zerolatency`.
    pub bframes: bool,
    /// Frame size.
    pub width: u32,
    /// Frame size.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Keyframe interval in frames (`-g`).
    pub gop: u32,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions { duration: None, bframes: false, width: 640, height: 360, fps: 30, gop: 30 }
    }
}

/// A long-running ffmpeg publishing H.264 (testsrc2) + AAC (440 Hz sine, 44.1 kHz mono) as FLV
/// to an RTMP URL. Killed on drop.
pub struct Ffmpeg {
    child: Option<Child>,
    url: String,
    stderr: LineBuffer,
}

impl Ffmpeg {
    /// Starts publishing to `url` (`rtmp://...`).
    pub fn publish(url: &str, opts: PublishOptions) -> Ffmpeg {
        Ffmpeg::run(publish_args(url, &opts), url)
    }

    /// Runs ffmpeg with these arguments (killed on drop); `label` names it in failures.
    pub fn run(args: Vec<String>, label: &str) -> Ffmpeg {
        let url = label;
        let mut child = Command::new("ffmpeg")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ffmpeg (is ffmpeg installed? scripts/install-deps.sh)");
        let pipe = child.stderr.take().expect("ffmpeg stderr");
        let stderr = LineBuffer::drain(pipe, |_| {});
        Ffmpeg { child: Some(child), url: url.to_string(), stderr }
    }

    /// Whether ffmpeg is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Waits up to `timeout` for ffmpeg to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_child(self.child.as_mut()?, timeout)
    }

    /// The last lines ffmpeg logged (warnings and errors only).
    pub fn stderr_tail(&self) -> String {
        self.stderr.tail(40)
    }
}

impl Drop for Ffmpeg {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            stop_child(child, Duration::from_secs(2));
        }
        if std::thread::panicking() {
            eprintln!("--- ffmpeg -> {} stderr ---\n{}\n--- end ffmpeg ---", self.url, self.stderr_tail());
        }
    }
}

/// The ffmpeg command line for [`Ffmpeg::publish`].
pub fn publish_args(url: &str, opts: &PublishOptions) -> Vec<String> {
    let mut args: Vec<String> =
        ["-hide_banner", "-nostdin", "-loglevel", "warning"].iter().map(|s| s.to_string()).collect();
    let video = format!("testsrc2=size={}x{}:rate={}", opts.width, opts.height, opts.fps);
    for input in [video.as_str(), "sine=frequency=440:sample_rate=44100"] {
        args.extend(["-re", "-f", "lavfi", "-i", input].map(String::from));
    }
    if let Some(duration) = opts.duration {
        args.extend(["-t".to_string(), format!("{:.3}", duration.as_secs_f64())]);
    }
    args.extend(["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"].map(String::from));
    if opts.bframes {
        args.extend(["-bf", "2"].map(String::from));
    } else {
        args.extend(["-tune", "zerolatency"].map(String::from));
    }
    // A fixed GOP: keyframes exactly every `gop` frames, none at detected scene cuts.
    let gop = opts.gop.to_string();
    args.extend(["-g", &gop, "-keyint_min", &gop, "-sc_threshold", "0"].map(String::from));
    args.extend(["-c:a", "aac", "-b:a", "64k", "-f", "flv", "-flvflags", "no_duration_filesize"].map(String::from));
    args.push(url.to_string());
    args
}

/// One stream as ffprobe reports it.
#[derive(Clone, Debug, Deserialize)]
pub struct ProbeStream {
    /// `h264`, `aac`, ...
    pub codec_name: Option<String>,
    /// `video` or `audio`.
    pub codec_type: Option<String>,
    /// Video only.
    pub width: Option<u32>,
    /// Video only.
    pub height: Option<u32>,
    /// Audio only; ffprobe prints it as a string.
    pub sample_rate: Option<String>,
    /// Audio only.
    pub channels: Option<u32>,
}

/// `ffprobe -show_streams` output.
#[derive(Clone, Debug, Deserialize)]
pub struct Probe {
    /// The streams found.
    #[serde(default)]
    pub streams: Vec<ProbeStream>,
}

impl Probe {
    /// The first video stream.
    pub fn video(&self) -> Option<&ProbeStream> {
        self.streams.iter().find(|s| s.codec_type.as_deref() == Some("video"))
    }

    /// The first audio stream.
    pub fn audio(&self) -> Option<&ProbeStream> {
        self.streams.iter().find(|s| s.codec_type.as_deref() == Some("audio"))
    }

    /// Checks for H.264 `width`x`height` video and AAC audio at `sample_rate`.
    pub fn expect_h264_aac(&self, width: u32, height: u32, sample_rate: u32) -> anyhow::Result<()> {
        let video = self.video().with_context(|| format!("no video stream in {self:?}"))?;
        let audio = self.audio().with_context(|| format!("no audio stream in {self:?}"))?;
        if video.codec_name.as_deref() != Some("h264") || video.width != Some(width) || video.height != Some(height) {
            bail!("expected h264 {width}x{height}, got {video:?}");
        }
        let rate = sample_rate.to_string();
        if audio.codec_name.as_deref() != Some("aac") || audio.sample_rate.as_deref() != Some(rate.as_str()) {
            bail!("expected aac at {sample_rate} Hz, got {audio:?}");
        }
        Ok(())
    }
}

/// Runs `ffprobe -show_streams` on `url` (rtmp:// or http://...flv), killed after `timeout`.
pub async fn ffprobe(url: &str, timeout: Duration) -> anyhow::Result<Probe> {
    let child = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-rw_timeout", "5000000", "-show_streams", "-of", "json", url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("spawn ffprobe")?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .with_context(|| format!("ffprobe {url} did not finish within {timeout:?}"))?
        .context("wait for ffprobe")?;
    if !output.status.success() {
        bail!("ffprobe {url} failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    let probe: Probe = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("ffprobe {url} printed no JSON: {}", String::from_utf8_lossy(&output.stdout)))?;
    if probe.streams.is_empty() {
        bail!("ffprobe {url} found no streams");
    }
    Ok(probe)
}

/// Retries [`ffprobe`] until it finds H.264 + AAC as expected, for up to `timeout`.
pub async fn probe_until_h264_aac(
    url: &str,
    width: u32,
    height: u32,
    sample_rate: u32,
    timeout: Duration,
) -> anyhow::Result<Probe> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let attempt = ffprobe(url, left.max(Duration::from_secs(1)).min(Duration::from_secs(15))).await;
        let error = match attempt {
            Ok(probe) => match probe.expect_h264_aac(width, height, sample_rate) {
                Ok(()) => return Ok(probe),
                Err(e) => e,
            },
            Err(e) => e,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(error.context(format!("no h264+aac at {url} within {timeout:?}")));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
