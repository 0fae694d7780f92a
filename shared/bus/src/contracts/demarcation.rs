//! Events of the demarcation service that other services consume.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::Event;
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
}

impl Event for RulesAccepted {
    const SUBJECT: &'static str = subjects::DEMARCATION_RULES_ACCEPTED;
}
