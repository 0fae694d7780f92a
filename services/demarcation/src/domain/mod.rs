//! The demarcation domain: the control catalogue, the responsibility matrix
//! and its gap analysis, common-rules versions and the full-consensus rule,
//! and the exported document. No HTTP, database or NATS types here.

pub mod control;
pub mod document;
pub mod matrix;
pub mod rules;

pub(crate) use renkei_domain::parse_word;
pub use renkei_domain::{Invalid, valid_name};

pub use control::{DEFAULT_CATALOGUE, valid_control_id};
pub use matrix::{
    Assignment, ClassEntry, Effective, Gap, GapKind, Matrix, PlatformView, RaciRole,
    ResponsibilityClass,
};
pub use rules::{
    Consensus, Cooperation, Decision, DecisionRefused, IllegalMove, Position, Rule, RulesContent,
    VersionState,
};
