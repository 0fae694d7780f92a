//! Who may read and change what in the contacts service.
//!
//! - Contact details and escalation policies are personal information:
//!   visible to the organisation itself and to the operators of platforms it
//!   is on; to anyone else they do not exist (404). An organisation manages
//!   only its own.
//! - Notifications: an organisation sees those addressed to it (its own row
//!   of the matrix); the platform operator sees its platform's whole matrix;
//!   `central`, `auditor` and `admin` read everything.
//! - The cooperation map is read by everyone on the platform and changed by
//!   its operator; drills are started by the operator.

use std::time::Duration;

use renkei_bus::contracts::registry::PlatformSystemsQuery;
use renkei_bus::query;
use renkei_bus::registry_copy::{self, LookupError};
use renkei_web::error::db;
use renkei_web::{ApiError, Identity, Role};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use uuid::Uuid;

use crate::events::upsert_systems;
use crate::service::ContactsState;
use crate::store::{self, system};

/// Roles that keep an organisation's contacts and policies.
pub const MANAGING_ROLES: [Role; 4] = [Role::Manager, Role::Ciso, Role::Csirt, Role::Operator];

/// Whether `who` operates a platform `org` is on (or is `org`'s own operator).
pub async fn operates_for(
    state: &ContactsState,
    who: &Identity,
    org: Uuid,
) -> Result<bool, ApiError> {
    let Some(mine) = who.org else {
        return Ok(false);
    };
    if !who.has(Role::Operator) {
        return Ok(false);
    }
    let platforms = store::platforms_operated_by(&state.db.read, mine)
        .await
        .map_err(db)?;
    if platforms.is_empty() {
        return Ok(false);
    }
    let on = system::Entity::find()
        .filter(system::Column::PlatformId.is_in(platforms))
        .filter(system::Column::OwnerOrgId.eq(org))
        .filter(system::Column::Lifecycle.ne("retired"))
        .count(&state.db.read)
        .await
        .map_err(db)?;
    Ok(on > 0)
}

/// Whether `who` may see `org`'s contacts and policies.
pub async fn sees_contacts_of(
    state: &ContactsState,
    who: &Identity,
    org: Uuid,
) -> Result<bool, ApiError> {
    Ok(who.org == Some(org) || operates_for(state, who, org).await?)
}

/// Systems on the platforms `who` operates (none for anyone else).
pub async fn operated_systems(
    state: &ContactsState,
    who: &Identity,
) -> Result<Vec<Uuid>, ApiError> {
    let (Some(mine), true) = (who.org, who.has(Role::Operator)) else {
        return Ok(Vec::new());
    };
    let platforms = store::platforms_operated_by(&state.db.read, mine)
        .await
        .map_err(db)?;
    if platforms.is_empty() {
        return Ok(Vec::new());
    }
    system::Entity::find()
        .filter(system::Column::PlatformId.is_in(platforms))
        .filter(system::Column::Lifecycle.ne("retired"))
        .all(&state.db.read)
        .await
        .map(|systems| systems.into_iter().map(|s| s.id).collect())
        .map_err(db)
}

/// Whether `who` may see one contact: its organisation's own, or the
/// operator of a platform the organisation is on, for contacts of the whole
/// organisation or of a system on that platform (not of its systems on
/// other operators' platforms).
pub async fn sees_contact(
    state: &ContactsState,
    who: &Identity,
    org: Uuid,
    system_id: Option<Uuid>,
) -> Result<bool, ApiError> {
    if who.org == Some(org) {
        return Ok(true);
    }
    if !operates_for(state, who, org).await? {
        return Ok(false);
    }
    Ok(match system_id {
        None => true,
        Some(s) => operated_systems(state, who).await?.contains(&s),
    })
}

/// `org` if `who` manages its contacts: 404 when it may not even see
/// them, 403 when it only reads them.
pub async fn managed_org(
    state: &ContactsState,
    who: &Identity,
    org: Uuid,
) -> Result<Uuid, ApiError> {
    if who.org == Some(org) {
        if MANAGING_ROLES.iter().any(|r| who.has(*r)) {
            return Ok(org);
        }
        return Err(ApiError::Forbidden(
            "only a manager, CISO, CSIRT or operator keeps an organisation's contacts".into(),
        ));
    }
    if sees_contacts_of(state, who, org).await? {
        return Err(ApiError::Forbidden(
            "organisations manage only their own contacts".into(),
        ));
    }
    Err(ApiError::NotFound("organization"))
}

/// The platform, as known here or read through from the registry when its
/// event has not arrived yet.
pub async fn find_platform(
    state: &ContactsState,
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

/// Brings the copy of a platform's systems up to date from the registry
/// (before a drill, so that a system registered a moment ago is included).
/// When the registry does not answer, the copy kept from events serves.
pub async fn refresh_platform(state: &ContactsState, platform_id: Uuid) -> Result<(), ApiError> {
    match query::request(
        &state.nats,
        &PlatformSystemsQuery { platform_id },
        Duration::from_millis(state.query_timeout_ms),
    )
    .await
    {
        Ok(answer) => upsert_systems(&state.db.write, &answer.systems)
            .await
            .map_err(db),
        Err(error) => {
            tracing::warn!(%error, %platform_id, "registry did not answer; using the copy kept from events");
            Ok(())
        }
    }
}

pub fn operates(who: &Identity, platform: &system::Model) -> bool {
    who.is_admin() || who.acts_for(platform.owner_org_id, Some(Role::Operator))
}

/// Whether `who` may read the platform's cooperation map.
pub async fn member_of(
    state: &ContactsState,
    who: &Identity,
    platform: &system::Model,
) -> Result<bool, ApiError> {
    if who.reads_everything() || operates(who, platform) {
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
    state: &ContactsState,
    who: &Identity,
    platform_id: Uuid,
) -> Result<system::Model, ApiError> {
    match find_platform(state, platform_id).await? {
        Some(p) if member_of(state, who, &p).await? => Ok(p),
        _ => Err(ApiError::NotFound("platform")),
    }
}

/// The platform if `who` operates it: 404 when unreadable, 403 when only read.
pub async fn operated_platform(
    state: &ContactsState,
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
