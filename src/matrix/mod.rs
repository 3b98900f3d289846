//! The conversion matrix (pure, no GStreamer): `matrix.yaml` says, for every ordered pair of
//! protocols, what happens to each track (`copy`, `X->Y` or `auto`). This module reads and
//! strictly validates that file ([`Matrix`], [`Diagnostic`]), plans per stream which tracks
//! are copied or converted ([`plan()`]) and renders both for the CLI ([`report`]).

mod diagnostic;
mod load;
mod load_rules;
mod model;
mod node;
mod plan;
pub mod report;
mod rule;

pub use diagnostic::{Diagnostic, MatrixError};
pub use load::MATRIX_VERSION;
pub use load_rules::is_param_name;
pub use model::{Cell, Matrix, ProtocolCaps};
pub use plan::{plan, Leg, Plan, PlanError, Reason, Source, SourceTrack};
pub use report::{check_report, render_plan};
pub use rule::{Rule, RuleSyntaxError};
