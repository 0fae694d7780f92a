//! Events of the emergency service that other services act on.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::Event;
use crate::subjects;

/// An organisation an incident may spread to, and through which of its systems.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtRisk {
    pub organization_id: Uuid,
    /// Its systems the incident can reach.
    pub system_ids: Vec<Uuid>,
    /// The fewest links between the incident's system and one of them.
    pub hops: u32,
}

/// The spread assessment of an incident: who must be alerted now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentSpreadRisk {
    pub incident_id: Uuid,
    pub platform_id: Uuid,
    /// The system the incident was declared on, and its owner.
    pub system_id: Uuid,
    pub organization_id: Uuid,
    pub title: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    pub category: String,
    /// Traffic Light Protocol marking of what may be shared.
    pub tlp: String,
    pub at_risk: Vec<AtRisk>,
}
impl Event for IncidentSpreadRisk {
    const SUBJECT: &'static str = subjects::EMERGENCY_INCIDENT_SPREAD_RISK;
}

/// An incident moved on (contained, recovered, closed…); the organisations
/// involved are told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentStatusChanged {
    pub incident_id: Uuid,
    pub platform_id: Uuid,
    pub title: String,
    pub severity: String,
    pub from: String,
    pub to: String,
    /// Organisations to tell (the incident's owner and those at risk).
    pub notify: Vec<Uuid>,
}
impl Event for IncidentStatusChanged {
    const SUBJECT: &'static str = subjects::EMERGENCY_INCIDENT_STATUS_CHANGED;
}
