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
use renkei_web::error::db;
use renkei_web::platforms::Platforms;
use renkei_web::{ApiError, Identity, Role};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::service::ContactsState;
use crate::store::{self, system};
use renkei_bus::registry_copy::upsert_systems;

/// Roles that keep an organisation's contacts and policies.
pub const MANAGING_ROLES: [Role; 4] = [Role::Manager, Role::Ciso, Role::Csirt, Role::Operator];

/// The systems (not retired) on the platforms `who` operates; none for
/// anyone but an operator. Whose contacts an operator sees follows from it.
pub async fn operated_systems(
    state: &ContactsState,
    who: &Identity,
) -> Result<Vec<system::Model>, ApiError> {
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
        .map_err(db)
}

/// Whether `who` may see `org`'s contacts and policies: its own, or an
/// operator of a platform `org` is on.
pub async fn sees_contacts_of(
    state: &ContactsState,
    who: &Identity,
    org: Uuid,
) -> Result<bool, ApiError> {
    Ok(who.org == Some(org)
        || operated_systems(state, who)
            .await?
            .iter()
            .any(|s| s.owner_org_id == org))
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
    let operated = operated_systems(state, who).await?;
    Ok(operated.iter().any(|s| s.owner_org_id == org)
        && system_id.is_none_or(|id| operated.iter().any(|s| s.id == id)))
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

/// A refusal of [`managed_org`] for the organisation a body names in
/// `org_id`: the same status, the field named.
pub fn org_id_in_body(e: ApiError) -> ApiError {
    match e {
        ApiError::NotFound(_) => ApiError::NotFound("organization named by org_id"),
        ApiError::Forbidden(why) => ApiError::Forbidden(format!("org_id: {why}")),
        other => other,
    }
}

/// The service's view of platforms: its registry copy, read through from
/// the registry when an event has not arrived yet.
pub fn platforms(state: &ContactsState) -> Platforms<'_> {
    Platforms {
        db: &state.db,
        nats: &state.nats,
        timeout: Duration::from_millis(state.query_timeout_ms),
    }
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
