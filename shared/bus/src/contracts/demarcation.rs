//! Events and queries of the demarcation service.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::Event;
use crate::query::Query;
use crate::subjects;

/// The owner of a linked system accepted the common rules in force; the
/// registry activates the system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulesAccepted {
    pub platform_id: Uuid,
    pub organization_id: Uuid,
    /// The systems of that organisation on the platform the acceptance covers.
    pub system_ids: Vec<Uuid>,
    pub rules_version: u32,
    /// The accepted rules version's id (absent in events older than it).
    #[serde(default)]
    pub version_id: Option<Uuid>,
}

impl Event for RulesAccepted {
    const SUBJECT: &'static str = subjects::DEMARCATION_RULES_ACCEPTED;
}

/// A rules version was put to every required organisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulesProposed {
    pub version_id: Uuid,
    pub platform_id: Uuid,
    pub version: u32,
    pub title: String,
    pub respond_by: DateTime<Utc>,
    /// Organisations whose acceptance the version needs.
    pub required: Vec<Uuid>,
}
impl Event for RulesProposed {
    const SUBJECT: &'static str = subjects::DEMARCATION_RULES_PROPOSED;
}

/// An organisation decided on a rules version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecorded {
    pub version_id: Uuid,
    pub platform_id: Uuid,
    pub version: u32,
    pub organization_id: Uuid,
    /// `accept`, `object` or `withdraw_objection`.
    pub decision: String,
    pub reason: Option<String>,
    /// The token subject of the person who decided.
    pub decided_by: String,
}
impl Event for DecisionRecorded {
    const SUBJECT: &'static str = subjects::DEMARCATION_DECISION_RECORDED;
}

/// Full consensus: a rules version came into force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulesInForce {
    pub version_id: Uuid,
    pub platform_id: Uuid,
    pub version: u32,
    pub matrix_version: Option<u32>,
    pub accepted: Vec<Uuid>,
}
impl Event for RulesInForce {
    const SUBJECT: &'static str = subjects::DEMARCATION_RULES_IN_FORCE;
}

/// A version in force was replaced by a newer one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulesSuperseded {
    pub version_id: Uuid,
    pub platform_id: Uuid,
    pub version: u32,
    pub superseded_by: Uuid,
}
impl Event for RulesSuperseded {
    const SUBJECT: &'static str = subjects::DEMARCATION_RULES_SUPERSEDED;
}

/// A proposal (or draft) was withdrawn, by the operator or by a newer proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulesWithdrawn {
    pub version_id: Uuid,
    pub platform_id: Uuid,
    pub version: u32,
    /// The proposal that replaced it, when that is why.
    pub replaced_by: Option<Uuid>,
}
impl Event for RulesWithdrawn {
    const SUBJECT: &'static str = subjects::DEMARCATION_RULES_WITHDRAWN;
}

/// An organisation must accept the rules in force before its newly
/// registered systems are activated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcceptanceRequested {
    pub version_id: Uuid,
    pub platform_id: Uuid,
    pub version: u32,
    pub organization_id: Uuid,
    pub system_ids: Vec<Uuid>,
}
impl Event for AcceptanceRequested {
    const SUBJECT: &'static str = subjects::DEMARCATION_RULES_ACCEPTANCE_REQUESTED;
}

/// A silent organisation is reminded of a proposal's response deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulesReminded {
    pub version_id: Uuid,
    pub platform_id: Uuid,
    pub version: u32,
    pub organization_id: Uuid,
    pub respond_by: DateTime<Utc>,
}
impl Event for RulesReminded {
    const SUBJECT: &'static str = subjects::DEMARCATION_RULES_REMINDED;
}

/// A new version of a platform's responsibility matrix was saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixUpdated {
    pub platform_id: Uuid,
    pub version: u32,
}
impl Event for MatrixUpdated {
    const SUBJECT: &'static str = subjects::DEMARCATION_MATRIX_UPDATED;
}

/// One finding of the gap analysis.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MatrixGap {
    pub control: String,
    pub system_id: Uuid,
    /// `no_accountable`, `no_responsible`, `conflicting_accountable`,
    /// `outsider` or `class_mismatch`.
    pub kind: String,
    /// The organisations involved (the two accountable ones, the outsider).
    pub organizations: Vec<Uuid>,
}

/// A change opened gaps that were not there before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixGapFound {
    pub platform_id: Uuid,
    pub matrix_version: Option<u32>,
    pub gaps: Vec<MatrixGap>,
}
impl Event for MatrixGapFound {
    const SUBJECT: &'static str = subjects::DEMARCATION_MATRIX_GAP_FOUND;
}

/// Who holds which role for `control` on `system_id`, from the matrix in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponsibilityQuery {
    pub control: String,
    /// A linked system, or the platform itself for platform-wide duties.
    pub system_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Responsibility {
    pub control: String,
    pub system_id: Uuid,
    pub platform_id: Uuid,
    /// The matrix version answered from; `None` when the platform has none.
    pub matrix_version: Option<u32>,
    /// Whether that matrix is the one the rules in force refer to (else the
    /// latest saved, because no rules are in force yet).
    pub in_force: bool,
    pub responsible: Vec<Uuid>,
    pub accountable: Vec<Uuid>,
    pub consulted: Vec<Uuid>,
    pub informed: Vec<Uuid>,
    /// `provided`, `inherited`, `shared` or `own`, when recorded.
    pub class: Option<String>,
}

impl Query for ResponsibilityQuery {
    const SUBJECT: &'static str = subjects::QUERY_DEMARCATION_RESPONSIBILITY;
    type Response = Responsibility;
}
