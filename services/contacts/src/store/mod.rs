//! Tables, migrations and the queries more than one part of the service
//! needs.

pub mod entities;
pub mod migrations;

use std::collections::HashMap;

use renkei_store::json::{corrupt, from_column};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

pub use entities::*;

use crate::domain::{Availability, Candidate, Channel, ContactRole, Language, Members, Policy};

/// The scope of an organisation-wide escalation policy.
pub const WHOLE_ORG: &str = "*";

/// A stored contact, read back into domain terms.
#[derive(Debug, Clone)]
pub struct StoredContact {
    pub candidate: Candidate,
    pub name: String,
    pub language: Language,
    pub channels: Vec<Channel>,
}

pub fn contact_of(m: &contact::Model) -> Result<StoredContact, DbErr> {
    let role = ContactRole::parse("role", &m.role).map_err(|e| corrupt("contact role", e))?;
    let availability = Availability::parse("availability", &m.availability)
        .map_err(|e| corrupt("contact availability", e))?;
    let time_zone = m
        .time_zone
        .parse::<chrono_tz::Tz>()
        .map_err(|e| corrupt("contact time zone", e))?;
    let language =
        Language::parse("language", &m.language).map_err(|e| corrupt("contact language", e))?;
    Ok(StoredContact {
        candidate: Candidate {
            id: m.id,
            role,
            availability,
            time_zone,
            system_id: m.system_id,
        },
        name: m.name.clone(),
        language,
        channels: from_column("contact channels", &m.channels)?,
    })
}

/// Every contact of `orgs`, by organisation, oldest first.
pub async fn contacts_of<C: ConnectionTrait>(
    conn: &C,
    orgs: &[Uuid],
) -> Result<HashMap<Uuid, Vec<StoredContact>>, DbErr> {
    let mut by_org: HashMap<Uuid, Vec<StoredContact>> = HashMap::new();
    for chunk in orgs.chunks(500) {
        let rows = contact::Entity::find()
            .filter(contact::Column::OrgId.is_in(chunk.iter().copied()))
            .all(conn)
            .await?;
        for row in rows {
            by_org
                .entry(row.org_id)
                .or_default()
                .push(contact_of(&row)?);
        }
    }
    for contacts in by_org.values_mut() {
        contacts.sort_by_key(|c| c.candidate.id);
    }
    Ok(by_org)
}

/// The policy each of `orgs` escalates by for a notification concerning
/// `systems` of it: a policy of one of those systems, else the
/// organisation's own, else the default.
pub async fn policies_for<C: ConnectionTrait>(
    conn: &C,
    orgs: &[(Uuid, Vec<Uuid>)],
) -> Result<HashMap<Uuid, Policy>, DbErr> {
    let mut stored: HashMap<(Uuid, String), Policy> = HashMap::new();
    for chunk in orgs.chunks(500) {
        let rows = policy::Entity::find()
            .filter(policy::Column::OrgId.is_in(chunk.iter().map(|(o, _)| *o)))
            .all(conn)
            .await?;
        for row in rows {
            stored.insert(
                (row.org_id, row.scope.clone()),
                from_column("escalation policy", &row.policy)?,
            );
        }
    }
    Ok(orgs
        .iter()
        .map(|(org, systems)| {
            let policy = systems
                .iter()
                .find_map(|s| stored.get(&(*org, s.to_string())))
                .or_else(|| stored.get(&(*org, WHOLE_ORG.to_owned())))
                .cloned()
                .unwrap_or_else(Policy::default_policy);
            (*org, policy)
        })
        .collect())
}

pub use renkei_bus::registry_copy::{org_names, platform};

/// Linked systems that count as on the platform (not retired).
pub async fn linked_systems<C: ConnectionTrait>(
    conn: &C,
    platform_id: Uuid,
) -> Result<Vec<system::Model>, DbErr> {
    system::Entity::find()
        .filter(system::Column::PlatformId.eq(platform_id))
        .filter(system::Column::Kind.eq("linked"))
        .filter(system::Column::Lifecycle.ne("retired"))
        .all(conn)
        .await
}

/// The organisations of a platform: its operator, the owners of its linked
/// systems, and the central bodies.
pub async fn members<C: ConnectionTrait>(
    conn: &C,
    platform: &system::Model,
) -> Result<Members, DbErr> {
    let mut linked: Vec<Uuid> = linked_systems(conn, platform.id)
        .await?
        .into_iter()
        .map(|s| s.owner_org_id)
        .filter(|o| *o != platform.owner_org_id)
        .collect();
    linked.sort();
    linked.dedup();
    let central = organization::Entity::find()
        .filter(organization::Column::Kind.eq("central_body"))
        .all(conn)
        .await?
        .into_iter()
        .map(|o| o.id)
        .collect();
    Ok(Members {
        operator: platform.owner_org_id,
        linked,
        central,
    })
}

/// Platforms operated by `org`.
pub async fn platforms_operated_by<C: ConnectionTrait>(
    conn: &C,
    org: Uuid,
) -> Result<Vec<Uuid>, DbErr> {
    Ok(system::Entity::find()
        .filter(system::Column::Kind.eq("platform"))
        .filter(system::Column::OwnerOrgId.eq(org))
        .all(conn)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect())
}

/// How many notifications stand in each state (for `/metrics`).
pub async fn notifications_by_state<C: ConnectionTrait>(
    conn: &C,
) -> Result<HashMap<String, i64>, DbErr> {
    use sea_orm::QuerySelect;
    let rows: Vec<(String, i64)> = notification::Entity::find()
        .select_only()
        .column(notification::Column::State)
        .column_as(notification::Column::Id.count(), "n")
        .group_by(notification::Column::State)
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows.into_iter().collect())
}
