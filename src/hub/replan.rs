//! Re-planning attached consumers when another publisher continues their stream (the
//! reconnect grace): the new one may come by another protocol or with other codecs (a teacher
//! on RTMP with H.264 + AAC comes back over WHIP with H.264 + Opus), so a consumer's plan, made
//! at attach from the old publisher, is decided again: kept, changed (a copied track now needs
//! a conversion, a conversion is no longer needed) or, when the matrix cannot serve the new
//! pair or the consumer would need another output codec than it was told at start, ended.
//!
//! The decision is pure ([`decide`]); the subscription applies it (see
//! `Subscription::replan`) once the new publisher's tracks are known (see
//! `Stream::sources_changed`).

use std::sync::Arc;

use tokio::sync::watch;

use super::stream::Stream;
use super::track::TrackOutput;
use super::Hub;
use crate::matrix::{Leg, Plan};
use crate::media::{Codec, Protocol, TrackKind};

/// What a consumer's plan is made from: the publisher's protocol and its tracks' codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanInputs {
    pub protocol: Protocol,
    pub video: Option<Codec>,
    pub audio: Option<Codec>,
}

impl PlanInputs {
    /// The stream's inputs now (its current publisher, its newest track infos).
    pub fn of(stream: &Stream) -> PlanInputs {
        PlanInputs {
            protocol: stream.publisher().protocol,
            video: stream.video_info().map(|i| i.codec()),
            audio: stream.audio_info().map(|i| i.codec()),
        }
    }
}

/// What becomes of an attached consumer when its stream's inputs change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replan {
    /// Its plan still holds.
    Keep,
    /// It goes on with this plan (same tracks, same output codecs, other legs).
    Change(Plan),
    /// It cannot go on: why.
    End(String),
}

/// Decides from the plan a consumer has (made from `old`) and the matrix's plan for the new
/// inputs. Tracks the consumer was not given at start stay absent; a track the new publisher
/// lacks keeps its leg (nothing comes on it); a track whose output codec would change ends the
/// consumer (what it was told at start, SDP or sequence headers, names that codec).
pub fn decide(current: &Plan, old: &PlanInputs, new: &PlanInputs, planned: Result<Plan, String>) -> Replan {
    if old == new {
        return Replan::Keep;
    }
    let planned = match planned {
        Ok(plan) => plan,
        Err(reason) => return Replan::End(reason),
    };
    let mut next = Plan { from: new.protocol, ..*current };
    for kind in [TrackKind::Video, TrackKind::Audio] {
        let (Some(have), Some(want)) = (current.leg(kind), planned.leg(kind)) else { continue };
        if have.output_codec() != want.output_codec() {
            return Replan::End(format!(
                "the new publisher's {kind} needs {} for this viewer, which was started with {}",
                want.output_codec(),
                have.output_codec()
            ));
        }
        match kind {
            TrackKind::Video => next.video = Some(*want),
            TrackKind::Audio => next.audio = Some(*want),
        }
    }
    let same = |a: Option<&Leg>, b: Option<&Leg>| match (a, b) {
        (Some(Leg::Copy { codec: x }), Some(Leg::Copy { codec: y })) => x == y,
        (Some(Leg::Convert { from: f1, to: t1, .. }), Some(Leg::Convert { from: f2, to: t2, .. })) => {
            f1 == f2 && t1 == t2
        }
        (None, None) => true,
        _ => false,
    };
    let legs_same = [TrackKind::Video, TrackKind::Audio].iter().all(|k| same(current.leg(*k), next.leg(*k)));
    // Another protocol with the same legs can still mean other conversion parameters: the
    // subscription keeps any output that turns out to be the same.
    if legs_same && old.protocol == new.protocol {
        Replan::Keep
    } else {
        Replan::Change(next)
    }
}

/// What a subscription needs to re-plan itself: the hub, what it was planned from, the outputs
/// it reads, and the stream's signal that its publisher's tracks changed.
pub(super) struct Replanner {
    pub(super) hub: Hub,
    pub(super) inputs: PlanInputs,
    pub(super) video: Option<Arc<TrackOutput>>,
    pub(super) audio: Option<Arc<TrackOutput>>,
    pub(super) sources: watch::Receiver<u64>,
}

impl Replanner {
    pub(super) fn output_mut(&mut self, kind: TrackKind) -> &mut Option<Arc<TrackOutput>> {
        match kind {
            TrackKind::Video => &mut self.video,
            TrackKind::Audio => &mut self.audio,
        }
    }
}

/// Resolves when the stream's sources changed (never, once the stream is gone).
pub(super) async fn sources_changed(replanner: &mut Option<Replanner>) {
    let gone = match replanner {
        Some(r) => r.sources.changed().await.is_err(),
        None => true,
    };
    if gone {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::Reason;

    fn inputs(protocol: Protocol, video: Codec, audio: Codec) -> PlanInputs {
        PlanInputs { protocol, video: Some(video), audio: Some(audio) }
    }

    fn plan(from: Protocol, to: Protocol, video: Leg, audio: Option<Leg>) -> Plan {
        Plan { from, to, video: Some(video), audio }
    }

    fn convert(from: Codec, to: Codec) -> Leg {
        Leg::Convert { from, to, reason: Reason::Rule }
    }

    const H264: Leg = Leg::Copy { codec: Codec::H264 };

    #[test]
    fn same_inputs_keep_the_plan() {
        let p = plan(Protocol::Rtmp, Protocol::Rtmp, H264, Some(Leg::Copy { codec: Codec::Aac }));
        let i = inputs(Protocol::Rtmp, Codec::H264, Codec::Aac);
        assert_eq!(decide(&p, &i, &i, Err("not asked".into())), Replan::Keep);
    }

    #[test]
    fn an_rtmp_viewer_of_a_teacher_now_on_whip_gets_opus_converted_to_aac() {
        let have = plan(Protocol::Rtmp, Protocol::Rtmp, H264, Some(Leg::Copy { codec: Codec::Aac }));
        let new = plan(Protocol::Webrtc, Protocol::Rtmp, H264, Some(convert(Codec::Opus, Codec::Aac)));
        let got = decide(
            &have,
            &inputs(Protocol::Rtmp, Codec::H264, Codec::Aac),
            &inputs(Protocol::Webrtc, Codec::H264, Codec::Opus),
            Ok(new),
        );
        assert_eq!(got, Replan::Change(Plan { from: Protocol::Webrtc, ..new }));
    }

    #[test]
    fn a_conversion_no_longer_needed_becomes_a_copy() {
        // A WHEP viewer of an RTMP teacher (AAC->Opus) whose teacher comes back over WHIP.
        let have = plan(Protocol::Rtmp, Protocol::Webrtc, H264, Some(convert(Codec::Aac, Codec::Opus)));
        let new = plan(Protocol::Webrtc, Protocol::Webrtc, H264, Some(Leg::Copy { codec: Codec::Opus }));
        let got = decide(
            &have,
            &inputs(Protocol::Rtmp, Codec::H264, Codec::Aac),
            &inputs(Protocol::Webrtc, Codec::H264, Codec::Opus),
            Ok(new),
        );
        match got {
            Replan::Change(p) => assert_eq!(p.audio, Some(Leg::Copy { codec: Codec::Opus })),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unsupported_pair_or_another_output_codec_ends_the_viewer() {
        let have = plan(Protocol::Rtmp, Protocol::Webrtc, H264, Some(convert(Codec::Aac, Codec::Opus)));
        let old = inputs(Protocol::Rtmp, Codec::H264, Codec::Aac);
        let new = inputs(Protocol::Rtmp, Codec::Vp8, Codec::Aac);
        assert!(matches!(decide(&have, &old, &new, Err("no route".into())), Replan::End(r) if r == "no route"));
        let vp8 = plan(
            Protocol::Rtmp,
            Protocol::Webrtc,
            Leg::Copy { codec: Codec::Vp8 },
            Some(convert(Codec::Aac, Codec::Opus)),
        );
        assert!(matches!(decide(&have, &old, &new, Ok(vp8)), Replan::End(r) if r.contains("video")));
    }

    #[test]
    fn tracks_absent_at_start_stay_absent_and_missing_ones_keep_their_leg() {
        // Started without audio: the new publisher's audio is not added.
        let have = plan(Protocol::Rtmp, Protocol::Rtmp, H264, None);
        let new = plan(Protocol::Webrtc, Protocol::Rtmp, H264, Some(convert(Codec::Opus, Codec::Aac)));
        let old = PlanInputs { protocol: Protocol::Rtmp, video: Some(Codec::H264), audio: None };
        let got = decide(&have, &old, &inputs(Protocol::Webrtc, Codec::H264, Codec::Opus), Ok(new));
        assert_eq!(got, Replan::Change(Plan { from: Protocol::Webrtc, ..have }));
        // The new publisher has no audio: the viewer's audio leg stays as it was.
        let have = plan(Protocol::Rtmp, Protocol::Rtmp, H264, Some(Leg::Copy { codec: Codec::Aac }));
        let video_only = Plan { audio: None, ..have };
        let new_inputs = PlanInputs { protocol: Protocol::Rtmp, video: Some(Codec::H264), audio: None };
        let got = decide(&have, &inputs(Protocol::Rtmp, Codec::H264, Codec::Aac), &new_inputs, Ok(video_only));
        assert_eq!(got, Replan::Keep);
    }
}
