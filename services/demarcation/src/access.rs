//! Who may read and change what in the demarcation service.
//!
//! - the platform operator (`operator` of the platform's owner, or an
//!   admin) drafts, edits, proposes and withdraws rules and edits the matrix;
//! - a `manager` or `ciso` decides for its own organisation only;
//! - members of a platform (its operator, owners of systems on it) read its
//!   matrix and rules; `central`, `auditor` and `admin` read everything;
//! - to everyone else a platform and its rules do not exist (404).

use std::time::Duration;

use renkei_web::platforms::Platforms;
use renkei_web::{ApiError, Identity, Role};
use uuid::Uuid;

use crate::service::DemarcationState;

/// Roles that decide on rules for their organisation.
pub const DECIDING_ROLES: [Role; 2] = [Role::Manager, Role::Ciso];

/// The service's view of platforms: its registry copy, read through from
/// the registry when an event has not arrived yet.
pub fn platforms(state: &DemarcationState) -> Platforms<'_> {
    Platforms {
        db: &state.db,
        nats: &state.nats,
        timeout: Duration::from_millis(state.query_timeout_ms),
    }
}

pub use renkei_web::platforms::operates;

/// The organisation `who` decides for, or a 403.
pub fn deciding_org(who: &Identity, claimed: Option<Uuid>) -> Result<Uuid, ApiError> {
    let Some(org) = who.org else {
        return Err(ApiError::Forbidden(
            "decisions are taken by an organisation's manager or CISO".into(),
        ));
    };
    if claimed.is_some_and(|c| c != org) {
        return Err(ApiError::Forbidden(
            "organization_id names another organisation: you decide only for your own".into(),
        ));
    }
    if !DECIDING_ROLES.iter().any(|r| who.has(*r)) {
        return Err(ApiError::Forbidden(
            "only a manager or CISO decides for an organisation".into(),
        ));
    }
    Ok(org)
}
