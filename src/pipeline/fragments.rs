//! GStreamer fragments from `pipelines/`: one file per part of a conversion, in gst-launch
//! syntax with named parameters, so an integrator tunes an encoder without recompiling.
//!
//! Layout: `decode/<codec>.gst` (encoded frames in, raw out), `encode/<codec>.gst` (raw in,
//! the internal frame format out: H.264 AVC/au, raw AAC, ...) for every codec, and
//! `filter/scale.gst`, put between the two halves of a video conversion when the matrix cell
//! sets `width` (unless the encode fragment declares `width` itself: then its encoder scales,
//! e.g. igmpeg1enc with libswscale, far cheaper than `videoscale`). File format: `#` comment lines; `# @param NAME DEFAULT description`
//! declarations; the other lines are the description (joined with spaces), where `{NAME}` is
//! replaced by the matrix cell's value or the default. Names are `[a-z][a-z0-9_]*`, so caps
//! lists like `{ I420, NV12 }` are left alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::matrix::is_param_name;
use crate::media::{Codec, TrackKind};

/// The matrix parameter that inserts `filter/scale.gst` into video conversions.
pub const SCALE_PARAM: &str = "width";

/// A problem with the fragments; every variant names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum FragmentError {
    #[error("{}: cannot read: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: missing; needed to {purpose}", path.display())]
    Missing { path: PathBuf, purpose: String },
    #[error("{}:{line}: {message}", path.display())]
    Syntax { path: PathBuf, line: usize, message: String },
    #[error("{}: {message}", path.display())]
    Unexpected { path: PathBuf, message: String },
    #[error("{}: GStreamer cannot build `{description}`: {message}", path.display())]
    Gstreamer { path: PathBuf, description: String, message: String },
    #[error("cannot convert {from} to {to}: {why}")]
    Unconvertible { from: Codec, to: Codec, why: String },
    #[error("GStreamer cannot start: {0}")]
    Init(String),
}

/// One declared parameter of a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamDecl {
    pub name: String,
    pub default: String,
    pub description: String,
}

/// One fragment file: its parameters and its description with `{NAME}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    pub path: PathBuf,
    pub params: Vec<ParamDecl>,
    pub description: String,
}

impl Fragment {
    /// Reads fragment text; every placeholder must be declared with `# @param`.
    pub fn parse(path: &Path, text: &str) -> Result<Fragment, FragmentError> {
        let syntax = |line: usize, message: String| FragmentError::Syntax { path: path.to_path_buf(), line, message };
        let mut params: Vec<ParamDecl> = Vec::new();
        let mut body: Vec<(usize, &str)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let Some(comment) = line.strip_prefix('#') else {
                body.push((i + 1, line));
                continue;
            };
            let comment = comment.trim_start();
            let Some(decl) = comment.strip_prefix('@') else { continue };
            let words: Vec<&str> = decl.split_whitespace().collect();
            if words.first() != Some(&"param") {
                return Err(syntax(
                    i + 1,
                    format!("unknown directive `#{comment}` (only `# @param NAME DEFAULT description`)"),
                ));
            }
            let (Some(name), Some(default)) = (words.get(1), words.get(2)) else {
                return Err(syntax(i + 1, "expected `# @param NAME DEFAULT description`".to_string()));
            };
            if !is_param_name(name) {
                return Err(syntax(
                    i + 1,
                    format!("parameter name `{name}` must be lowercase letters, digits and `_`"),
                ));
            }
            if params.iter().any(|p| p.name == *name) {
                return Err(syntax(i + 1, format!("parameter `{name}` is declared twice")));
            }
            params.push(ParamDecl {
                name: name.to_string(),
                default: default.to_string(),
                description: words[3..].join(" "),
            });
        }
        if body.is_empty() {
            return Err(FragmentError::Unexpected {
                path: path.to_path_buf(),
                message: "no pipeline description".into(),
            });
        }
        for &(line, text) in &body {
            for name in placeholders(text) {
                if !params.iter().any(|p| p.name == name) {
                    return Err(syntax(
                        line,
                        format!("unknown placeholder `{{{name}}}` (declare it: `# @param {name} DEFAULT description`)"),
                    ));
                }
            }
        }
        let description = body.iter().map(|(_, t)| *t).collect::<Vec<_>>().join(" ");
        Ok(Fragment { path: path.to_path_buf(), params, description })
    }

    fn load(path: &Path, purpose: impl FnOnce() -> String) -> Result<Fragment, FragmentError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Fragment::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(FragmentError::Missing { path: path.to_path_buf(), purpose: purpose() })
            }
            Err(source) => Err(FragmentError::Io { path: path.to_path_buf(), source }),
        }
    }

    /// The description with every placeholder replaced: the value in `values` when present,
    /// else the declared default. Values for names this fragment does not declare are ignored.
    pub fn render(&self, values: &BTreeMap<String, String>) -> String {
        let mut out = String::with_capacity(self.description.len());
        let mut rest = self.description.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let name = after.split('}').next().filter(|n| after.len() > n.len() && is_param_name(n));
            match name.and_then(|n| self.params.iter().find(|p| p.name == n)) {
                Some(decl) => {
                    out.push_str(values.get(&decl.name).unwrap_or(&decl.default));
                    rest = &after[decl.name.len() + 1..];
                }
                None => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// The `{name}` placeholders in a line of description.
fn placeholders(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        if let Some(close) = after.find('}') {
            let name = &after[..close];
            if is_param_name(name) {
                found.push(name);
            }
        }
        rest = after;
    }
    found
}

/// Every fragment of a `pipelines/` directory, checked for completeness on load.
#[derive(Debug, Clone)]
pub struct Pipelines {
    dir: PathBuf,
    decode: BTreeMap<Codec, Fragment>,
    encode: BTreeMap<Codec, Fragment>,
    scale: Fragment,
}

impl Pipelines {
    /// Loads `dir`: a decode and an encode fragment for every codec (any cell may convert
    /// any codec of a track to any other via `auto`), and `filter/scale.gst`.
    pub fn load(dir: &Path) -> Result<Pipelines, FragmentError> {
        let mut decode = BTreeMap::new();
        let mut encode = BTreeMap::new();
        for codec in Codec::ALL {
            let path = dir.join("decode").join(format!("{codec}.gst"));
            decode.insert(codec, Fragment::load(&path, || format!("decode {codec}"))?);
            let path = dir.join("encode").join(format!("{codec}.gst"));
            encode.insert(codec, Fragment::load(&path, || format!("encode {codec}"))?);
        }
        let scale_path = dir.join("filter").join("scale.gst");
        let scale = Fragment::load(&scale_path, || format!("scale video when a matrix cell sets `{SCALE_PARAM}`"))?;
        for part in ["decode", "encode"] {
            reject_strays(&dir.join(part))?;
        }
        Ok(Pipelines { dir: dir.to_path_buf(), decode, encode, scale })
    }

    /// The directory the fragments came from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The fragment decoding `codec` (always present after [`Self::load`]).
    pub fn decoder(&self, codec: Codec) -> Option<&Fragment> {
        self.decode.get(&codec)
    }

    /// The fragment encoding `codec` (always present after [`Self::load`]).
    pub fn encoder(&self, codec: Codec) -> Option<&Fragment> {
        self.encode.get(&codec)
    }

    /// The middle of a conversion pipeline, `<decode from> ! [scale !] <encode to>`, with
    /// `params` (the matrix cell's) overriding the fragments' defaults.
    pub fn conversion(
        &self,
        from: Codec,
        to: Codec,
        params: &BTreeMap<String, String>,
    ) -> Result<String, FragmentError> {
        if from.kind() != to.kind() {
            return Err(FragmentError::Unconvertible {
                from,
                to,
                why: format!("{from} is {}, {to} is {}", from.kind(), to.kind()),
            });
        }
        let missing = |what: &str| FragmentError::Unconvertible { from, to, why: format!("no {what} fragment") };
        let decode = self.decode.get(&from).ok_or_else(|| missing("decode"))?;
        let encode = self.encode.get(&to).ok_or_else(|| missing("encode"))?;
        let mut parts = vec![decode.render(params)];
        let encoder_scales = encode.params.iter().any(|p| p.name == SCALE_PARAM);
        if to.kind() == TrackKind::Video && params.contains_key(SCALE_PARAM) && !encoder_scales {
            parts.push(self.scale.render(params));
        }
        parts.push(encode.render(params));
        Ok(parts.join(" ! "))
    }

    /// The names in `params` that no fragment declares (likely typos in the matrix; they
    /// are ignored by [`Self::conversion`]).
    pub fn unknown_params<'a>(&self, params: &'a BTreeMap<String, String>) -> Vec<&'a str> {
        params
            .keys()
            .filter(|name| !self.fragments().any(|f| f.params.iter().any(|p| &p.name == *name)))
            .map(String::as_str)
            .collect()
    }

    fn fragments(&self) -> impl Iterator<Item = &Fragment> {
        self.decode.values().chain(self.encode.values()).chain(std::iter::once(&self.scale))
    }

    /// Parses every fragment, and every conversion between codecs of one track, with GStreamer
    /// (default parameters; video with and without scaling), so a typo in an element or
    /// property name, or two halves that cannot link, fail at start naming the file.
    pub fn check_with_gstreamer(&self) -> Result<(), FragmentError> {
        gstreamer::init().map_err(|e| FragmentError::Init(e.to_string()))?;
        // Our own elements (igaacenc, igmpeg1enc) must exist before fragments name them.
        super::init();
        let none = BTreeMap::new();
        for fragment in self.fragments() {
            gst_parse(&fragment.path, &fragment.render(&none))?;
        }
        let scaled = BTreeMap::from([(SCALE_PARAM.to_string(), default_of(&self.scale, SCALE_PARAM))]);
        for from in Codec::ALL {
            for to in Codec::ALL.into_iter().filter(|to| to.kind() == from.kind()) {
                let path = self.dir.join(format!("decode/{from}.gst + encode/{to}.gst"));
                gst_parse(&path, &self.conversion(from, to, &none)?)?;
                if to.kind() == TrackKind::Video {
                    gst_parse(&path, &self.conversion(from, to, &scaled)?)?;
                }
            }
        }
        Ok(())
    }
}

fn default_of(fragment: &Fragment, name: &str) -> String {
    fragment.params.iter().find(|p| p.name == name).map(|p| p.default.clone()).unwrap_or_default()
}

/// Builds (and drops) a bin from `description` between two pass-through elements (as a
/// conversion sits between an appsrc and an appsink), failing on any parse error.
fn gst_parse(path: &Path, description: &str) -> Result<(), FragmentError> {
    let mut context = gstreamer::ParseContext::new();
    gstreamer::parse::bin_from_description_full(
        &format!("identity ! {description} ! identity"),
        false,
        Some(&mut context),
        gstreamer::ParseFlags::FATAL_ERRORS,
    )
    .map(drop)
    .map_err(|e| FragmentError::Gstreamer {
        path: path.to_path_buf(),
        description: description.to_string(),
        message: e.to_string(),
    })
}

/// Fails on a `.gst` file in `dir` that is not named after a known codec (a typo would
/// otherwise be silently unused).
fn reject_strays(dir: &Path) -> Result<(), FragmentError> {
    let entries = std::fs::read_dir(dir).map_err(|source| FragmentError::Io { path: dir.to_path_buf(), source })?;
    for entry in entries {
        let path = entry.map_err(|source| FragmentError::Io { path: dir.to_path_buf(), source })?.path();
        if path.extension().is_some_and(|e| e == "gst") {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
            if stem.parse::<Codec>().is_err() {
                return Err(FragmentError::Unexpected { path, message: format!("`{stem}` is not a known codec") });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines")
    }

    /// A fresh copy of the shipped fragments in a temporary directory (removed on drop).
    struct TempCopy(PathBuf);

    impl TempCopy {
        fn new(tag: &str) -> TempCopy {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let dir = std::env::temp_dir().join(format!("ig-fragments-{tag}-{}-{nanos}", std::process::id()));
            for part in ["decode", "encode", "filter"] {
                std::fs::create_dir_all(dir.join(part)).expect("temp dir");
                for entry in std::fs::read_dir(shipped().join(part)).expect("shipped pipelines") {
                    let from = entry.expect("dir entry").path();
                    let to = dir.join(part).join(from.file_name().expect("file name"));
                    std::fs::copy(&from, &to).expect("copy fragment");
                }
            }
            TempCopy(dir)
        }

        fn write(&self, file: &str, text: &str) -> PathBuf {
            let path = self.0.join(file);
            std::fs::write(&path, text).expect("write fragment");
            path
        }
    }

    impl Drop for TempCopy {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parses_declarations_comments_and_multiline_descriptions() {
        let text = "# a comment\n# @param rate 8000 sample rate in Hz\naudioconvert\n  ! audio/x-raw,rate={rate}\n";
        let f = Fragment::parse(Path::new("x.gst"), text).expect("valid fragment");
        assert_eq!(f.description, "audioconvert ! audio/x-raw,rate={rate}");
        assert_eq!(
            f.params,
            vec![ParamDecl { name: "rate".into(), default: "8000".into(), description: "sample rate in Hz".into() }]
        );
        assert_eq!(f.render(&BTreeMap::new()), "audioconvert ! audio/x-raw,rate=8000");
        assert_eq!(f.render(&params(&[("rate", "16000"), ("other", "1")])), "audioconvert ! audio/x-raw,rate=16000");
    }

    #[test]
    fn caps_lists_in_braces_are_not_placeholders() {
        let f = Fragment::parse(Path::new("x.gst"), "video/x-raw,format={ I420, NV12 }\n").expect("valid fragment");
        assert_eq!(f.render(&params(&[("i420", "x")])), "video/x-raw,format={ I420, NV12 }");
    }

    #[test]
    fn rejects_undeclared_placeholders_and_bad_declarations() {
        let err = Fragment::parse(Path::new("enc.gst"), "# hi\nx264enc\n ! bitrate={kbps}\n").expect_err("undeclared");
        assert_eq!(err.to_string().split(": ").next(), Some("enc.gst:3"));
        assert!(err.to_string().contains("unknown placeholder `{kbps}`"), "{err}");
        let err = Fragment::parse(Path::new("enc.gst"), "# @param kbps\nx264enc\n").expect_err("no default");
        assert!(err.to_string().starts_with("enc.gst:1: expected"), "{err}");
        let err = Fragment::parse(Path::new("enc.gst"), "# @parm a 1\nx264enc\n").expect_err("typo");
        assert!(err.to_string().starts_with("enc.gst:1: unknown directive"), "{err}");
        let err = Fragment::parse(Path::new("enc.gst"), "# only comments\n").expect_err("empty");
        assert_eq!(err.to_string(), "enc.gst: no pipeline description");
    }

    #[test]
    fn every_conversion_of_the_shipped_fragments_builds_a_description() {
        let p = Pipelines::load(&shipped()).expect("shipped pipelines load");
        for from in Codec::ALL {
            for to in Codec::ALL {
                let result = p.conversion(from, to, &BTreeMap::new());
                if from.kind() != to.kind() {
                    assert!(matches!(result, Err(FragmentError::Unconvertible { .. })), "{from}->{to}");
                    continue;
                }
                let description = result.expect("same-kind conversion");
                let decode = p.decoder(from).expect("decoder").render(&BTreeMap::new());
                let encode = p.encoder(to).expect("encoder").render(&BTreeMap::new());
                assert_eq!(description, format!("{decode} ! {encode}"));
                assert!(!description.contains('{'), "unsubstituted: {description}");
            }
        }
    }

    #[test]
    fn matrix_params_override_defaults_and_width_inserts_scaling() {
        let p = Pipelines::load(&shipped()).expect("shipped pipelines load");
        let d = p
            .conversion(Codec::H264, Codec::Mpeg1, &params(&[("width", "320"), ("video_bitrate", "800")]))
            .expect("video");
        assert!(d.starts_with("h264parse ! avdec_h264 max-threads=1 ! "), "{d}");
        assert!(!d.contains("videoscale"), "igmpeg1enc scales itself: {d}");
        assert!(d.contains("igmpeg1enc bitrate=800000 ") && d.contains(" max-width=320"), "{d}");
        let d = p.conversion(Codec::Mpeg1, Codec::H264, &params(&[("width", "320")])).expect("video");
        assert!(d.contains("videoscale ! video/x-raw,width=320,"), "{d}");
        let d = p.conversion(Codec::Opus, Codec::Aac, &params(&[("width", "320")])).expect("audio");
        assert!(!d.contains("videoscale"), "{d}");
        assert!(d.contains("igaacenc bitrate=128000"), "{d}");
        let set = params(&[("width", "320"), ("widht", "1"), ("audio_bitrate", "96")]);
        assert_eq!(p.unknown_params(&set), vec!["widht"]);
    }

    #[test]
    fn shipped_fragments_pass_the_gstreamer_parse_check() {
        let p = Pipelines::load(&shipped()).expect("shipped pipelines load");
        p.check_with_gstreamer().expect("every fragment parses");
    }

    #[test]
    fn a_typo_in_an_element_or_property_fails_the_check_naming_the_file() {
        let tmp = TempCopy::new("element");
        let path =
            tmp.write("encode/vp8.gst", "# @param keyint 60 x\nvideoconvert ! vp8encc keyframe-max-dist={keyint}\n");
        let err = Pipelines::load(&tmp.0).expect("loads").check_with_gstreamer().expect_err("bad element");
        assert!(err.to_string().starts_with(&format!("{}: GStreamer cannot build", path.display())), "{err}");
        assert!(err.to_string().contains("vp8encc"), "{err}");

        let tmp = TempCopy::new("property");
        let path = tmp.write("encode/opus.gst", "audioconvert ! opusenc bitrat=64000\n");
        let err = Pipelines::load(&tmp.0).expect("loads").check_with_gstreamer().expect_err("bad property");
        assert!(err.to_string().starts_with(&format!("{}: GStreamer cannot build", path.display())), "{err}");
        assert!(err.to_string().contains("bitrat"), "{err}");
    }

    #[test]
    fn load_fails_naming_a_missing_bad_or_stray_file() {
        let tmp = TempCopy::new("missing");
        let path = tmp.0.join("decode/mp2.gst");
        std::fs::remove_file(&path).expect("remove");
        let err = Pipelines::load(&tmp.0).expect_err("missing file");
        assert_eq!(err.to_string(), format!("{}: missing; needed to decode mp2", path.display()));

        let tmp = TempCopy::new("placeholder");
        let path = tmp.write("encode/aac.gst", "audioconvert ! avenc_aac bitrate={rate}\n");
        let err = Pipelines::load(&tmp.0).expect_err("unknown placeholder");
        assert!(err.to_string().starts_with(&format!("{}:1: unknown placeholder", path.display())), "{err}");

        let tmp = TempCopy::new("stray");
        let path = tmp.write("encode/h265.gst", "x265enc\n");
        let err = Pipelines::load(&tmp.0).expect_err("stray file");
        assert_eq!(err.to_string(), format!("{}: `h265` is not a known codec", path.display()));
    }
}
