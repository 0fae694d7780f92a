//! Who may read and change what in the demarcation service.
//!
//! - the platform operator (`operator` of the platform's owner, or an
//!   admin) drafts, edits, proposes and withdraws rules and edits the matrix;
//! - a `manager` or `ciso` decides for its own organisation only;
//! - members of a platform (its operator, owners of systems on it) read its
//!   matrix and rules; `central`, `auditor` and `admin` read everything;
//! - to everyone else a platform and its rules do not exist (404).

use std::time::Duration;

use renkei_bus::registry_copy::{self, LookupError};
use renkei_web::error::db;
use renkei_web::{ApiError, Identity, Role};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use uuid::Uuid;

use crate::service::DemarcationState;
use crate::store::system;

/// Roles that decide on rules for their organisation.
pub const DECIDING_ROLES: [Role; 2] = [Role::Manager, Role::Ciso];

/// The platform, as known here or (when the registry's event has not
/// arrived yet) read through from the registry.
pub async fn find_platform(
    state: &DemarcationState,
    platform_id: Uuid,
) -> Result<Option<system::Model>, ApiError> {
    registry_copy::find_platform(
        &state.db,
        &state.nats,
        platform_id,
        Duration::from_millis(state.query_timeout_ms),
    )
    .await
    .map_err(|e| match e {
        LookupError::Db(e) => db(e),
        LookupError::Unavailable(why) => ApiError::Unavailable(why),
    })
}

pub fn operates(who: &Identity, platform: &system::Model) -> bool {
    who.is_admin() || who.acts_for(platform.owner_org_id, Some(Role::Operator))
}

/// Whether `who` may read the platform's matrix and rules.
pub async fn can_read(
    state: &DemarcationState,
    who: &Identity,
    platform: &system::Model,
) -> Result<bool, ApiError> {
    if who.reads_everything() {
        return Ok(true);
    }
    let Some(org) = who.org else {
        return Ok(false);
    };
    if org == platform.owner_org_id {
        return Ok(true);
    }
    let owned = system::Entity::find()
        .filter(system::Column::PlatformId.eq(platform.id))
        .filter(system::Column::OwnerOrgId.eq(org))
        .count(&state.db.read)
        .await
        .map_err(db)?;
    Ok(owned > 0)
}

/// The platform if `who` may read it, else a 404 that says nothing more.
pub async fn readable_platform(
    state: &DemarcationState,
    who: &Identity,
    platform_id: Uuid,
) -> Result<system::Model, ApiError> {
    match find_platform(state, platform_id).await? {
        Some(p) if can_read(state, who, &p).await? => Ok(p),
        _ => Err(ApiError::NotFound("platform")),
    }
}

/// The platform if `who` operates it: 404 when unreadable, 403 when only read.
pub async fn operated_platform(
    state: &DemarcationState,
    who: &Identity,
    platform_id: Uuid,
    action: &str,
) -> Result<system::Model, ApiError> {
    let platform = readable_platform(state, who, platform_id).await?;
    if operates(who, &platform) {
        Ok(platform)
    } else {
        Err(ApiError::Forbidden(format!(
            "only the platform operator {action}"
        )))
    }
}

/// The organisation `who` decides for, or a 403.
pub fn deciding_org(who: &Identity, claimed: Option<Uuid>) -> Result<Uuid, ApiError> {
    let Some(org) = who.org else {
        return Err(ApiError::Forbidden(
            "decisions are taken by an organisation's manager or CISO".into(),
        ));
    };
    if claimed.is_some_and(|c| c != org) {
        return Err(ApiError::Forbidden(
            "you cannot decide for another organisation".into(),
        ));
    }
    if !DECIDING_ROLES.iter().any(|r| who.has(*r)) {
        return Err(ApiError::Forbidden(
            "only a manager or CISO decides for an organisation".into(),
        ));
    }
    Ok(org)
}
