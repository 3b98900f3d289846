//! An HTTP-FLV reader with its own small FLV parser (independent of the crate's FLV code, so
//! the tests check it rather than agree with it).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// FLV tag types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagKind {
    /// Type 8.
    Audio,
    /// Type 9.
    Video,
    /// Type 18 (onMetaData).
    Script,
}

/// One FLV tag, as much of it as the tests look at.
#[derive(Clone, Debug)]
pub struct FlvTag {
    /// Audio, video or script data.
    pub kind: TagKind,
    /// The tag timestamp in milliseconds (with the extended byte).
    pub timestamp_ms: u32,
    /// Payload size in bytes.
    pub size: usize,
    /// Video: codec id (7 = AVC); audio: sound format (10 = AAC); script: 0.
    pub codec: u8,
    /// AVC or AAC sequence header (packet type 0).
    pub sequence_header: bool,
    /// Video frame type 1 with AVC packet type 1 (a coded keyframe).
    pub keyframe: bool,
    /// Video with AVC packet type 1 (a coded frame: NAL units).
    pub coded_frame: bool,
    /// When the reader parsed it.
    pub arrival: Instant,
}

impl FlvTag {
    /// A video tag carrying a coded frame (not a sequence header or end of sequence).
    pub fn is_video_frame(&self) -> bool {
        self.kind == TagKind::Video && self.coded_frame
    }
}

/// Incremental FLV parser: push bytes in, take tags out. Checks every PreviousTagSize.
#[derive(Default)]
pub struct FlvParser {
    buf: Vec<u8>,
    header_done: bool,
    /// The FLV header's audio/video flags byte.
    pub flags: u8,
}

impl FlvParser {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete tag, `Ok(None)` when more bytes are needed, `Err` on malformed FLV.
    pub fn next_tag(&mut self) -> anyhow::Result<Option<FlvTag>> {
        if !self.header_done {
            if self.buf.len() < 13 {
                return Ok(None);
            }
            if &self.buf[0..3] != b"FLV" || self.buf[3] != 1 {
                bail!("not an FLV v1 header: {:02x?}", &self.buf[0..9]);
            }
            self.flags = self.buf[4];
            let offset = u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]]) as usize;
            if offset < 9 {
                bail!("FLV header data offset {offset} < 9");
            }
            if self.buf.len() < offset + 4 {
                return Ok(None);
            }
            let prev0 = u32::from_be_bytes([
                self.buf[offset],
                self.buf[offset + 1],
                self.buf[offset + 2],
                self.buf[offset + 3],
            ]);
            if prev0 != 0 {
                bail!("PreviousTagSize0 is {prev0}, not 0");
            }
            self.buf.drain(..offset + 4);
            self.header_done = true;
        }
        if self.buf.len() < 11 {
            return Ok(None);
        }
        let b = &self.buf;
        let tag_type = b[0] & 0x1f;
        if b[0] & 0x20 != 0 {
            bail!("encrypted/filtered FLV tag (flags {:#04x})", b[0]);
        }
        let size = u32::from_be_bytes([0, b[1], b[2], b[3]]) as usize;
        let timestamp_ms = u32::from_be_bytes([b[7], b[4], b[5], b[6]]);
        let stream_id = u32::from_be_bytes([0, b[8], b[9], b[10]]);
        if b.len() < 11 + size + 4 {
            return Ok(None);
        }
        let kind = match tag_type {
            8 => TagKind::Audio,
            9 => TagKind::Video,
            18 => TagKind::Script,
            other => bail!("unknown FLV tag type {other}"),
        };
        if stream_id != 0 {
            bail!("FLV StreamID is {stream_id}, must be 0");
        }
        let end = 11 + size;
        let prev = u32::from_be_bytes([b[end], b[end + 1], b[end + 2], b[end + 3]]) as usize;
        if prev != 11 + size {
            bail!("PreviousTagSize {prev} after a {kind:?} tag of {size} bytes (expected {})", 11 + size);
        }
        let data = &b[11..end];
        let (codec, sequence_header, keyframe, coded_frame) = match kind {
            TagKind::Video if !data.is_empty() => {
                let frame_type = data[0] >> 4;
                let codec = data[0] & 0x0f;
                let packet_type = if codec == 7 { data.get(1).copied() } else { None };
                (codec, packet_type == Some(0), frame_type == 1 && packet_type == Some(1), packet_type == Some(1))
            }
            TagKind::Audio if !data.is_empty() => {
                let format = data[0] >> 4;
                let seq = format == 10 && data.get(1) == Some(&0);
                (format, seq, false, false)
            }
            _ => (0, false, false, false),
        };
        let tag =
            FlvTag { kind, timestamp_ms, size, codec, sequence_header, keyframe, coded_frame, arrival: Instant::now() };
        self.buf.drain(..end + 4);
        Ok(Some(tag))
    }
}

/// A streaming `GET .../{stream}.flv`.
pub struct HttpFlvReader {
    response: reqwest::Response,
    parser: FlvParser,
    /// When the response headers arrived.
    pub connected_at: Instant,
    /// The `Content-Type` the gateway sent.
    pub content_type: Option<String>,
}

impl HttpFlvReader {
    /// Connects; fails unless the gateway answers 200 within 10 s.
    pub async fn connect(url: &str) -> anyhow::Result<HttpFlvReader> {
        let client =
            reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build().context("reqwest client")?;
        let response = tokio::time::timeout(Duration::from_secs(10), client.get(url).send())
            .await
            .with_context(|| format!("GET {url}: no response headers within 10 s"))?
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            let body = tokio::time::timeout(Duration::from_secs(2), response.text()).await;
            bail!("GET {url}: status {status}, body {body:?}");
        }
        let content_type =
            response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(String::from);
        Ok(HttpFlvReader { response, parser: FlvParser::default(), connected_at: Instant::now(), content_type })
    }

    /// The FLV header's flags byte (4 = audio, 1 = video), once the header was read.
    pub fn header_flags(&self) -> u8 {
        self.parser.flags
    }

    /// The next tag, failing on end of stream, malformed FLV, or no complete tag within `timeout`.
    pub async fn next_tag(&mut self, timeout: Duration) -> anyhow::Result<FlvTag> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(tag) = self.parser.next_tag()? {
                return Ok(tag);
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .with_context(|| format!("no FLV tag within {timeout:?}"))?
                .context("reading the FLV body")?;
            match chunk {
                Some(bytes) => self.parser.push(&bytes),
                None => bail!("the FLV stream ended"),
            }
        }
    }

    /// Reads in the background until dropped, keeping every tag.
    pub fn spawn(self) -> BackgroundReader {
        let log = Arc::new(Mutex::new(ReaderLog::default()));
        let connected_at = self.connected_at;
        let task_log = log.clone();
        let mut reader = self;
        let task = tokio::spawn(async move {
            loop {
                match reader.next_tag(Duration::from_secs(30)).await {
                    Ok(tag) => task_log.lock().expect("reader log").tags.push(tag),
                    Err(e) => {
                        task_log.lock().expect("reader log").ended = Some(format!("{e:#}"));
                        return;
                    }
                }
            }
        });
        BackgroundReader { log, task, connected_at }
    }
}

#[derive(Default)]
struct ReaderLog {
    tags: Vec<FlvTag>,
    ended: Option<String>,
}

/// An [`HttpFlvReader`] running on a task; stops (closes the connection) on drop.
pub struct BackgroundReader {
    log: Arc<Mutex<ReaderLog>>,
    task: tokio::task::JoinHandle<()>,
    /// When the response headers arrived.
    pub connected_at: Instant,
}

impl BackgroundReader {
    /// Connects to `url` and starts reading.
    pub async fn start(url: &str) -> anyhow::Result<BackgroundReader> {
        Ok(HttpFlvReader::connect(url).await?.spawn())
    }

    /// Tags received so far.
    pub fn tags(&self) -> Vec<FlvTag> {
        self.log.lock().expect("reader log").tags.clone()
    }

    /// How many tags have arrived.
    pub fn count(&self) -> usize {
        self.log.lock().expect("reader log").tags.len()
    }

    /// Why reading stopped, if it did.
    pub fn ended(&self) -> Option<String> {
        self.log.lock().expect("reader log").ended.clone()
    }

    /// Waits until at least `more` tags beyond the current count arrive, including at least one
    /// coded video frame and one audio tag, within `timeout`.
    pub async fn expect_flowing(&self, more: usize, timeout: Duration) -> anyhow::Result<()> {
        let start = self.count();
        let deadline = Instant::now() + timeout;
        loop {
            let (got, video, audio, ended) = {
                let log = self.log.lock().expect("reader log");
                let new = &log.tags[start..];
                (
                    new.len(),
                    new.iter().any(FlvTag::is_video_frame),
                    new.iter().any(|t| t.kind == TagKind::Audio && !t.sequence_header),
                    log.ended.clone(),
                )
            };
            if got >= more && video && audio {
                return Ok(());
            }
            if let Some(reason) = ended {
                bail!("the reader stopped after {got} new tags: {reason}");
            }
            if Instant::now() >= deadline {
                bail!("only {got} new tags (video frame: {video}, audio: {audio}) within {timeout:?}, wanted {more}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for BackgroundReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Checks how a joiner's stream starts: video begins with an AVC sequence header, and the
/// first coded video frame after it is a keyframe.
pub fn check_join_start(tags: &[FlvTag]) -> anyhow::Result<()> {
    let mut video = tags.iter().filter(|t| t.kind == TagKind::Video);
    let first = video.next().context("no video tag at all")?;
    if !first.sequence_header {
        bail!("first video tag is not an AVC sequence header: {first:?}");
    }
    let frame = video.find(|t| t.coded_frame).context("no coded video frame after the sequence header")?;
    if !frame.keyframe {
        bail!("first video frame after the sequence header is not a keyframe: {frame:?}");
    }
    Ok(())
}

/// The longest time between two consecutive tag arrivals.
pub fn max_arrival_gap(tags: &[FlvTag]) -> Duration {
    tags.windows(2).map(|w| w[1].arrival.saturating_duration_since(w[0].arrival)).max().unwrap_or_default()
}
