//! Who may read and change an incident.
//!
//! - **declare** on a system: a `manager`, `csirt` or `ciso` of its owner,
//!   or the platform operator (an `operator` of the platform's owner), or
//!   an admin;
//! - **read**: the declaring organisation, the platform operator, the
//!   central body (`central`), auditors and admins, and the organisations
//!   the incident may spread to or that own one of its tasks — each within
//!   the incident's TLP
//!   ([`crate::domain::Disclosure`]); to anyone else it does not exist (404);
//! - **act** (status, review, reports): the declaring organisation's
//!   `manager`, `csirt` or `ciso`, or the platform operator;
//! - **take part** (coordination messages): any reader's organisation
//!   except auditors and admins without one.

use renkei_bus::registry_copy::system;
use renkei_web::{Identity, Role};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter};
use uuid::Uuid;

use crate::domain::Relation;
use crate::store::{affected, incident, task};

/// Whether `who` is a manager, CSIRT member or CISO of `org`.
pub fn responder_of(who: &Identity, org: Uuid) -> bool {
    who.org == Some(org) && (who.has(Role::Manager) || who.has(Role::Csirt) || who.has(Role::Ciso))
}

/// Whether `who` operates `platform` (or is an admin).
pub fn operates(who: &Identity, platform: &system::Model) -> bool {
    renkei_web::platforms::operates(who, platform)
}

/// Whether `who` may declare an incident on `system` of `platform`.
pub fn may_declare(who: &Identity, system: &system::Model, platform: &system::Model) -> bool {
    responder_of(who, system.owner_org_id) || operates(who, platform)
}

/// How `who` stands to `inc`.
pub async fn relation<C: ConnectionTrait>(
    conn: &C,
    who: &Identity,
    inc: &incident::Model,
) -> Result<Relation, DbErr> {
    if who.reads_everything() {
        return Ok(Relation::Coordinator);
    }
    let Some(org) = who.org else {
        return Ok(Relation::Stranger);
    };
    if org == inc.org_id {
        return Ok(Relation::Declarer);
    }
    if let Some(platform) = system::Entity::find_by_id(inc.platform_id)
        .one(conn)
        .await?
        && operates(who, &platform)
    {
        return Ok(Relation::Coordinator);
    }
    let affected = affected::Entity::find()
        .filter(affected::Column::IncidentId.eq(inc.id))
        .filter(affected::Column::OrgId.eq(org))
        .count(conn)
        .await?;
    // The matrix may hold an organisation outside the blast radius
    // accountable for a measure: it takes part for its tasks.
    let owns_task = affected == 0
        && task::Entity::find()
            .filter(task::Column::IncidentId.eq(inc.id))
            .filter(task::Column::OwnerOrgId.eq(org))
            .count(conn)
            .await?
            > 0;
    Ok(if affected > 0 || owns_task {
        Relation::Affected
    } else {
        Relation::Stranger
    })
}

/// Whether `who` may change the incident's status, review and reports.
pub async fn may_act<C: ConnectionTrait>(
    conn: &C,
    who: &Identity,
    inc: &incident::Model,
) -> Result<bool, DbErr> {
    if who.is_admin() || responder_of(who, inc.org_id) {
        return Ok(true);
    }
    Ok(system::Entity::find_by_id(inc.platform_id)
        .one(conn)
        .await?
        .is_some_and(|p| operates(who, &p)))
}
