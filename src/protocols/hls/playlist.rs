//! The media playlist (RFC 8216bis) of a stream's segments: for fMP4, LL-HLS parts for the
//! newest segments and a preload hint for the next part, or plain HLS (complete segments
//! only); for MPEG-TS, complete segments only (version 3, no init segment).

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use super::segmenter::Segment;

/// The segments' container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// fMP4 (CMAF) segments of [`super::segmenter`], with an init segment and LL-HLS parts.
    #[default]
    Fmp4,
    /// MPEG-TS segments of [`super::ts`]: self-contained, listed whole (parts are not).
    Ts,
}

#[derive(Debug, Clone, Copy)]
pub struct PlaylistOptions {
    pub format: Format,
    /// List parts (LL-HLS) or only complete segments (always for [`Format::Ts`]).
    pub low_latency: bool,
    /// The configured segment and part targets, in seconds.
    pub target: f64,
    pub part_target: f64,
    /// Segments (from the newest) whose parts are listed.
    pub parts_for: usize,
}

pub fn init_uri(version: u32) -> String {
    format!("init-{version}.mp4")
}

pub fn segment_uri(msn: u64) -> String {
    format!("seg-{msn}.m4s")
}

pub fn part_uri(msn: u64, index: usize) -> String {
    format!("part-{msn}-{index}.m4s")
}

pub fn ts_segment_uri(msn: u64) -> String {
    format!("seg-{msn}.ts")
}

/// The playlist of `segments` (oldest first; the last may be open). Empty segments list: None.
pub fn media_playlist<'a>(segments: impl IntoIterator<Item = &'a Segment>, opts: &PlaylistOptions) -> Option<String> {
    if opts.format == Format::Ts {
        return ts_playlist(segments, opts);
    }
    let segments: Vec<&Segment> = segments.into_iter().filter(|s| opts.low_latency || s.complete).collect();
    let first = segments.first()?;
    // Durations to the millisecond first: 15 parts of 0.2 s make 3 s, not 3.0000000000000004.
    let longest = segments
        .iter()
        .filter(|s| s.complete)
        .map(|s| (s.duration() * 1000.0).round() / 1000.0)
        .fold(opts.target, f64::max);
    let listed_from = segments.len().saturating_sub(opts.parts_for);
    let part_target = segments[listed_from..]
        .iter()
        .flat_map(|s| s.parts.iter().map(|p| p.duration))
        .fold(opts.part_target, f64::max);
    let mut out = String::from("#EXTM3U\n");
    let _ = writeln!(out, "#EXT-X-VERSION:{}", if opts.low_latency { 9 } else { 7 });
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", longest.ceil() as u64);
    if opts.low_latency {
        let _ = writeln!(out, "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3}", part_target * 3.0);
        let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={part_target:.3}");
    }
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", first.msn);
    let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", init_uri(first.init));
    let mut init = first.init;
    for (i, s) in segments.iter().enumerate() {
        if s.init != init {
            init = s.init;
            let _ = writeln!(out, "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"{}\"", init_uri(init));
        }
        let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", rfc3339(s.started));
        if opts.low_latency && i >= listed_from {
            for (k, p) in s.parts.iter().enumerate() {
                let independent = if p.independent { ",INDEPENDENT=YES" } else { "" };
                let _ =
                    writeln!(out, "#EXT-X-PART:DURATION={:.3},URI=\"{}\"{independent}", p.duration, part_uri(s.msn, k));
            }
        }
        if s.complete {
            let _ = writeln!(out, "#EXTINF:{:.3},\n{}", s.duration(), segment_uri(s.msn));
        }
    }
    if opts.low_latency {
        let last = segments.last()?;
        let (msn, index) = if last.complete { (last.msn + 1, 0) } else { (last.msn, last.parts.len()) };
        let _ = writeln!(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"", part_uri(msn, index));
    }
    Some(out)
}

/// The MPEG-TS playlist: complete segments, a discontinuity where the configuration changed.
fn ts_playlist<'a>(segments: impl IntoIterator<Item = &'a Segment>, opts: &PlaylistOptions) -> Option<String> {
    let segments: Vec<&Segment> = segments.into_iter().filter(|s| s.complete).collect();
    let first = segments.first()?;
    // Durations as written (to the millisecond): a sum of parts a hair over 2 s is 2 s.
    let longest = segments.iter().map(|s| (s.duration() * 1000.0).round() / 1000.0).fold(opts.target, f64::max);
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:3\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", longest.ceil() as u64);
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", first.msn);
    let mut init = first.init;
    for s in segments {
        if s.init != init {
            init = s.init;
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", rfc3339(s.started));
        let _ = writeln!(out, "#EXTINF:{:.3},\n{}", s.duration(), ts_segment_uri(s.msn));
    }
    Some(out)
}

/// `2026-12-03T12:00:00.000Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::protocols::hls::segmenter::Part;

    fn segment(msn: u64, parts: usize, complete: bool, init: u32) -> Segment {
        let part = |k: usize| Part { duration: 0.2, independent: k == 0, data: Bytes::new() };
        Segment {
            msn,
            parts: (0..parts).map(part).collect(),
            started: UNIX_EPOCH + Duration::from_millis(1_764_763_200_000 + msn * 2000),
            init,
            complete,
        }
    }

    const LL: PlaylistOptions =
        PlaylistOptions { format: Format::Fmp4, low_latency: true, target: 2.0, part_target: 0.2, parts_for: 2 };

    #[test]
    fn low_latency_lists_the_newest_parts_and_hints_the_next() {
        let segs = [segment(4, 10, true, 1), segment(5, 10, true, 1), segment(6, 3, false, 1)];
        let text = media_playlist(&segs, &LL).unwrap();
        assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n"), "{text}");
        assert!(text.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600\n"));
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-MAP:URI=\"init-1.mp4\"\n"));
        assert!(!text.contains("part-4-"), "only the newest two segments' parts");
        assert!(text.contains("#EXT-X-PART:DURATION=0.200,URI=\"part-5-0.m4s\",INDEPENDENT=YES\n"));
        assert!(text.contains("#EXTINF:2.000,\nseg-5.m4s\n"));
        assert!(!text.contains("seg-6.m4s"), "the open segment is listed by its parts only");
        assert!(text.ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-6-3.m4s\"\n"), "{text}");
        assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:2025-12-03T12:00:08.000Z\n"), "{text}");
    }

    #[test]
    fn plain_hls_lists_complete_segments_and_a_new_init_is_a_discontinuity() {
        let segs = [segment(1, 10, true, 1), segment(2, 10, true, 2), segment(3, 2, false, 2)];
        let plain = PlaylistOptions { low_latency: false, ..LL };
        let text = media_playlist(&segs, &plain).unwrap();
        assert!(!text.contains("PART") && !text.contains("PRELOAD") && text.contains("#EXT-X-VERSION:7"));
        assert!(text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-2.mp4\"\n"));
        assert_eq!(text.matches("#EXTINF").count(), 2);
        assert_eq!(media_playlist(&[segment(0, 1, false, 1)], &plain), None);
    }

    #[test]
    fn ts_lists_complete_segments_without_init_or_parts_and_marks_discontinuities() {
        let mut segs =
            [segment(7, 10, true, 1), segment(8, 10, true, 1), segment(9, 10, true, 2), segment(10, 3, false, 2)];
        // A segment cut at a late keyframe: the target duration covers it.
        segs[1].parts.push(Part { duration: 0.6, independent: false, data: Bytes::new() });
        let ts = PlaylistOptions { format: Format::Ts, ..LL };
        let text = media_playlist(&segs, &ts).unwrap();
        let expected = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:7\n\
            #EXT-X-PROGRAM-DATE-TIME:2025-12-03T12:00:14.000Z\n#EXTINF:2.000,\nseg-7.ts\n\
            #EXT-X-PROGRAM-DATE-TIME:2025-12-03T12:00:16.000Z\n#EXTINF:2.600,\nseg-8.ts\n\
            #EXT-X-DISCONTINUITY\n\
            #EXT-X-PROGRAM-DATE-TIME:2025-12-03T12:00:18.000Z\n#EXTINF:2.000,\nseg-9.ts\n";
        assert_eq!(text, expected);
        assert_eq!(ts_segment_uri(12), "seg-12.ts");
        // Twenty parts of 0.1 s add up to a hair over 2 s (floating point): still a target of 2.
        let mut hair = segment(7, 20, true, 1);
        hair.parts.iter_mut().for_each(|p| p.duration = 0.1);
        assert!(hair.duration() > 2.0);
        let text = media_playlist([&hair], &ts).unwrap();
        assert!(text.contains("#EXT-X-TARGETDURATION:2\n"), "{text}");
        assert_eq!(media_playlist(&segs[3..], &ts), None, "the open segment is not listed");
    }

    #[test]
    fn dates_are_utc_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_millis(951_782_400_123)), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(4_102_444_799)), "2099-12-31T23:59:59.000Z");
    }
}
