//! Files the operator writes: `matrix.yaml` (through the validator `check` runs) and the
//! configuration file (through `Config::load` and every accessor the server calls on it).

use std::path::PathBuf;

use interop_gateway::config::Config;
use interop_gateway::hub::StreamKey;
use interop_gateway::matrix::Matrix;
use interop_gateway::media::Protocol;
use interop_gateway::protocols::rtmp::RtmpUrl;
use interop_gateway::protocols::udp::hosts;

use crate::engine::{no_seeds, no_setup, Sig, Target};
use crate::mutate::Shape;

const YAML_DICT: &[&[u8]] = &[
    b"version: 1\n",
    b"protocols:\n",
    b"rules:\n",
    b"  webrtc:\n",
    b"    rtmp: { video: copy, audio: opus->aac }\n",
    b"video: ",
    b"audio: ",
    b"auto",
    b"copy",
    b"h264->mpeg1",
    b"&a ",
    b"*a",
    b"<<: *a\n",
    b"!!str ",
    b"!!binary ",
    b"!<tag:yaml.org,2002:int> ",
    b"? ",
    b"--- ",
    b"...\n",
    b"%YAML 1.2\n",
    b"\"\\u0000\"",
    b"'",
    b"|\n",
    b">-\n",
    b"[",
    b"{",
    b"\t",
    b"\xef\xbb\xbf",
];

const FILE: &str = "fuzz.yaml";

/// `check`'s contract: one `FILE:LINE:COL: message` line per problem.
fn check_lines(text: &str, diagnostics: usize) {
    let lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(lines.len(), diagnostics, "{diagnostics} problem(s) printed over {} lines:\n{text}", lines.len());
    for line in lines {
        let rest = line.strip_prefix("fuzz.yaml:").unwrap_or_else(|| panic!("no file in {line:?}"));
        let mut parts = rest.splitn(3, ':');
        let (l, c, m) = (parts.next(), parts.next(), parts.next());
        assert!(
            l.is_some_and(|l| l.parse::<u64>().is_ok())
                && c.is_some_and(|c| c.parse::<u64>().is_ok())
                && m.is_some_and(|m| m.starts_with(' ') && !m.contains('\r')),
            "not FILE:LINE:COL: message: {line:?}"
        );
    }
}

fn matrix_yaml(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    let text = String::from_utf8_lossy(input);
    match Matrix::parse(&text, FILE) {
        Ok(m) => {
            sig.add(1);
            for from in Protocol::ALL {
                for to in Protocol::ALL {
                    sig.variant(m.cell(from, to));
                }
            }
        }
        Err(e) => {
            sig.count(e.diagnostics.len());
            for d in &e.diagnostics {
                let words: String = d.message.split(' ').take(3).collect();
                sig.tag(&words);
            }
            check_lines(&e.to_string(), e.diagnostics.len());
        }
    }
    sig.finish()
}

pub const MATRIX_YAML: Target = Target {
    name: "matrix_yaml",
    dirs: &["matrix_yaml"],
    max_len: 16 << 10,
    shape: Shape::Text,
    dict: YAML_DICT,
    derive: no_seeds,
    setup: no_setup,
    run: matrix_yaml,
};

fn config_path() -> PathBuf {
    let thread = format!("{:?}", std::thread::current().id());
    let thread: String = thread.chars().filter(char::is_ascii_digit).collect();
    std::env::temp_dir().join(format!("interop-gw-fuzz-config-{}-{thread}.yaml", std::process::id()))
}

/// `Config::load` on the input, then what `serve` derives from a loaded configuration.
fn config(input: &[u8]) -> u64 {
    let mut sig = Sig::default();
    let path = config_path();
    std::fs::write(&path, input).expect("write the config file");
    let loaded = Config::load(&path);
    sig.result(&loaded);
    if let Ok(c) = loaded {
        let hub = c.hub_config();
        sig.add(hub.grace.as_nanos() as u64);
        let w = &c.webrtc;
        let _ = (w.keyframe_interval(), w.ice_timeout(), w.publisher_timeout(), w.announced());
        let _ = (c.relay.retry_min(), c.relay.retry_max(), c.relay.connect_timeout());
        let _ = c.udp.ingest_timeout();
        sig.result(&hosts::parse_all(&c.udp.allowed_output_hosts));
        for relay in c.pushes.iter().chain(&c.pulls) {
            sig.result(&relay.url.parse::<RtmpUrl>());
            sig.result(&relay.stream.parse::<StreamKey>());
        }
    }
    let _ = std::fs::remove_file(&path);
    sig.finish()
}

pub const CONFIG: Target = Target {
    name: "config",
    dirs: &["config"],
    max_len: 8 << 10,
    shape: Shape::Text,
    dict: &[
        b"hub:\n  grace_seconds: ",
        b"relay:\n  retry_max_seconds: ",
        b"webrtc:\n  ice_timeout_seconds: ",
        b"udp:\n  allowed_output_hosts: [",
        b"pushes:\n  - { stream: a, url: ",
        b"rtmp://",
        b"1e308",
        b"-1",
        b".inf",
        b".nan",
        b"0x",
        b"::1",
        b"/33",
        b"/129",
        b"*",
        b"&a ",
        b"*a",
        b"<<: *a\n",
    ],
    derive: no_seeds,
    setup: no_setup,
    run: config,
};
