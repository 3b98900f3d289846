//! An HLS playlist over a recording's files, with no copy: each file is one segment, its init
//! segment (`EXT-X-MAP`) and its fragments byte ranges of the same file.

use std::fmt::Write;
use std::time::{Duration, UNIX_EPOCH};

use super::index::{RecordingIndex, RecordingState};
use crate::protocols::hls::playlist::rfc3339;

/// The playlist of `index`; `url_of(name)` gives the URL of a file (relative or absolute; it
/// goes in quotes, so no `"`). `VOD` with `EXT-X-ENDLIST` once the recording is over,
/// `EVENT` (segments only added) while it records. A new init version is a discontinuity.
pub fn vod_playlist(index: &RecordingIndex, url_of: impl Fn(&str) -> String) -> String {
    let files: Vec<_> = index.files.iter().filter(|f| f.size > f.init_size).collect();
    let longest = files.iter().map(|f| f.duration_s).fold(0.0, f64::max);
    let recording = index.state == RecordingState::Recording;
    let mut out = String::new();
    let _ = writeln!(out, "#EXTM3U");
    let _ = writeln!(out, "#EXT-X-VERSION:7");
    let _ = writeln!(out, "#EXT-X-PLAYLIST-TYPE:{}", if recording { "EVENT" } else { "VOD" });
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", (longest.ceil() as u64).max(1));
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:0");
    let _ = writeln!(out, "#EXT-X-INDEPENDENT-SEGMENTS");
    let mut version = None;
    for f in files {
        let url = url_of(&f.name);
        if version.is_some_and(|v| v != f.init_version) {
            let _ = writeln!(out, "#EXT-X-DISCONTINUITY");
        }
        version = Some(f.init_version);
        let _ = writeln!(out, "#EXT-X-MAP:URI=\"{url}\",BYTERANGE=\"{}@0\"", f.init_size);
        let start = UNIX_EPOCH + Duration::from_millis(f.start_ms);
        let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", rfc3339(start));
        let _ = writeln!(out, "#EXTINF:{:.3},", f.duration_s);
        let _ = writeln!(out, "#EXT-X-BYTERANGE:{}@{}", f.size - f.init_size, f.init_size);
        let _ = writeln!(out, "{url}");
    }
    if !recording {
        let _ = writeln!(out, "#EXT-X-ENDLIST");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Codec;
    use crate::record::index::RecordedFile;

    fn file(name: &str, start_ms: u64, duration_s: f64, init_version: u32) -> RecordedFile {
        RecordedFile {
            name: name.into(),
            start_ms,
            duration_s,
            size: 10_000,
            init_size: 700,
            codecs: vec![Codec::H264, Codec::Aac],
            init_version,
        }
    }

    fn index(state: RecordingState) -> RecordingIndex {
        RecordingIndex {
            id: "r1".parse().expect("id"),
            stream: "cam".into(),
            started_ms: 1_764_763_200_000,
            ended_ms: None,
            state,
            files: vec![
                file("a.mp4", 1_764_763_200_000, 2.0, 1),
                file("b.mp4", 1_764_763_202_000, 2.04, 1),
                file("c.mp4", 1_764_763_204_040, 1.5, 2),
            ],
        }
    }

    #[test]
    fn a_stopped_recording_is_a_vod_playlist_of_byte_ranges() {
        let text = vod_playlist(&index(RecordingState::Stopped), |n| format!("/rec/cam/{n}"));
        let expected = "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-TARGETDURATION:3
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI=\"/rec/cam/a.mp4\",BYTERANGE=\"700@0\"
#EXT-X-PROGRAM-DATE-TIME:2025-12-03T12:00:00.000Z
#EXTINF:2.000,
#EXT-X-BYTERANGE:9300@700
/rec/cam/a.mp4
#EXT-X-MAP:URI=\"/rec/cam/b.mp4\",BYTERANGE=\"700@0\"
#EXT-X-PROGRAM-DATE-TIME:2025-12-03T12:00:02.000Z
#EXTINF:2.040,
#EXT-X-BYTERANGE:9300@700
/rec/cam/b.mp4
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI=\"/rec/cam/c.mp4\",BYTERANGE=\"700@0\"
#EXT-X-PROGRAM-DATE-TIME:2025-12-03T12:00:04.040Z
#EXTINF:1.500,
#EXT-X-BYTERANGE:9300@700
/rec/cam/c.mp4
#EXT-X-ENDLIST
";
        assert_eq!(text, expected);
    }

    #[test]
    fn a_recording_in_progress_is_an_event_playlist_without_end() {
        for state in [RecordingState::Interrupted, RecordingState::Failed { error: "disk full".into() }] {
            assert!(vod_playlist(&index(state), |n| n.to_string()).ends_with("#EXT-X-ENDLIST\n"));
        }
        let text = vod_playlist(&index(RecordingState::Recording), |n| n.to_string());
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n") && !text.contains("ENDLIST"), "{text}");
        let mut empty = index(RecordingState::Recording);
        empty.files.clear();
        assert!(vod_playlist(&empty, |n| n.to_string()).contains("#EXT-X-TARGETDURATION:1\n"));
    }
}
