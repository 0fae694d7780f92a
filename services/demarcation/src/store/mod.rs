//! The demarcation service's tables, migrations and the queries over them.
//! JSON columns are (de)serialised here, so the rest sees domain types.

pub mod entities;
pub mod migrations;

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use renkei_store::Db;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::OnConflict,
};
use uuid::Uuid;

use crate::domain::{
    DEFAULT_CATALOGUE, Matrix, PlatformView, Position, RulesContent, VersionState,
};
pub use entities::{
    control, matrix_version, organization, reminder, rule_decision, rule_party, rule_version,
    system,
};

/// Lifecycles whose owners are parties to the platform's rules.
pub const MEMBER_LIFECYCLES: [&str; 2] = ["pending_rules", "active"];

use renkei_store::json::corrupt;
pub use renkei_store::json::to_column as json;

/// Loads the default catalogue; controls that exist are left as they are.
#[tracing::instrument(skip_all)]
pub async fn seed_catalogue(db: &Db) -> Result<(), DbErr> {
    let now = Utc::now();
    let rows = DEFAULT_CATALOGUE.iter().map(|c| control::ActiveModel {
        id: Set(c.id.to_owned()),
        area: Set(c.area.to_owned()),
        title_ja: Set(c.title_ja.to_owned()),
        title_en: Set(c.title_en.to_owned()),
        description: Set(String::new()),
        builtin: Set(true),
        created_by_org: Set(None),
        created_at: Set(now),
    });
    control::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::column(control::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&db.write)
        .await?;
    Ok(())
}

/// The catalogue in its reading order: the shipped controls in the
/// standard's order, then operators' own by creation.
pub async fn catalogue<C: ConnectionTrait>(conn: &C) -> Result<Vec<control::Model>, DbErr> {
    let mut all = control::Entity::find()
        .order_by_asc(control::Column::CreatedAt)
        .order_by_asc(control::Column::Id)
        .all(conn)
        .await?;
    let rank = |id: &str| {
        DEFAULT_CATALOGUE
            .iter()
            .position(|c| c.id == id)
            .unwrap_or(usize::MAX)
    };
    all.sort_by_key(|c| rank(&c.id));
    Ok(all)
}

pub async fn catalogue_ids<C: ConnectionTrait>(conn: &C) -> Result<Vec<String>, DbErr> {
    Ok(catalogue(conn).await?.into_iter().map(|c| c.id).collect())
}

pub fn id_set(ids: &[String]) -> HashSet<String> {
    ids.iter().cloned().collect()
}

pub use renkei_bus::registry_copy::platform;

/// Serialises every consensus-changing transaction of one platform
/// (`SELECT … FOR UPDATE` on PostgreSQL; SQLite has one writer anyway).
pub async fn lock_platform<C: ConnectionTrait>(conn: &C, id: Uuid) -> Result<(), DbErr> {
    system::Entity::find_by_id(id)
        .lock_exclusive()
        .one(conn)
        .await?;
    Ok(())
}

/// The pending or active linked systems of a platform.
pub async fn member_systems<C: ConnectionTrait>(
    conn: &C,
    platform_id: Uuid,
) -> Result<Vec<system::Model>, DbErr> {
    system::Entity::find()
        .filter(system::Column::PlatformId.eq(platform_id))
        .filter(system::Column::Kind.eq("linked"))
        .filter(system::Column::Lifecycle.is_in(MEMBER_LIFECYCLES))
        .order_by_asc(system::Column::Id)
        .all(conn)
        .await
}

pub async fn platform_view<C: ConnectionTrait>(
    conn: &C,
    platform: &system::Model,
) -> Result<PlatformView, DbErr> {
    Ok(PlatformView {
        platform_id: platform.id,
        operator_org_id: platform.owner_org_id,
        systems: member_systems(conn, platform.id)
            .await?
            .into_iter()
            .map(|s| (s.id, s.owner_org_id))
            .collect(),
    })
}

pub fn matrix_of(model: &matrix_version::Model) -> Result<Matrix, DbErr> {
    serde_json::from_str(&model.document).map_err(|e| corrupt("matrix", e))
}

/// One version of a platform's matrix, or the latest when `version` is `None`.
pub async fn matrix<C: ConnectionTrait>(
    conn: &C,
    platform_id: Uuid,
    version: Option<i32>,
) -> Result<Option<matrix_version::Model>, DbErr> {
    let mut query =
        matrix_version::Entity::find().filter(matrix_version::Column::PlatformId.eq(platform_id));
    if let Some(v) = version {
        query = query.filter(matrix_version::Column::Version.eq(v));
    }
    query
        .order_by_desc(matrix_version::Column::Version)
        .one(conn)
        .await
}

pub fn content_of(model: &rule_version::Model) -> Result<RulesContent, DbErr> {
    serde_json::from_str(&model.content).map_err(|e| corrupt("rules", e))
}

pub fn state_of(model: &rule_version::Model) -> Result<VersionState, DbErr> {
    VersionState::parse("state", &model.state).map_err(|e| corrupt("state", e))
}

pub fn position_of(model: &rule_party::Model) -> Result<Position, DbErr> {
    Position::parse("position", &model.position).map_err(|e| corrupt("position", e))
}

/// The platform's version in a given state (at most one is `proposed`, at
/// most one `in_force`).
pub async fn version_in_state<C: ConnectionTrait>(
    conn: &C,
    platform_id: Uuid,
    state: VersionState,
) -> Result<Option<rule_version::Model>, DbErr> {
    rule_version::Entity::find()
        .filter(rule_version::Column::PlatformId.eq(platform_id))
        .filter(rule_version::Column::State.eq(state.as_str()))
        .order_by_desc(rule_version::Column::Version)
        .one(conn)
        .await
}

pub async fn party<C: ConnectionTrait>(
    conn: &C,
    version_id: Uuid,
    org: Uuid,
) -> Result<Option<rule_party::Model>, DbErr> {
    rule_party::Entity::find_by_id((version_id, org))
        .one(conn)
        .await
}

/// The party row, locked until the transaction ends (one decision of an
/// organisation at a time).
pub async fn party_for_update<C: ConnectionTrait>(
    conn: &C,
    version_id: Uuid,
    org: Uuid,
) -> Result<Option<rule_party::Model>, DbErr> {
    rule_party::Entity::find_by_id((version_id, org))
        .lock_exclusive()
        .one(conn)
        .await
}

pub async fn parties<C: ConnectionTrait>(
    conn: &C,
    version_id: Uuid,
) -> Result<Vec<rule_party::Model>, DbErr> {
    rule_party::Entity::find()
        .filter(rule_party::Column::VersionId.eq(version_id))
        .order_by_asc(rule_party::Column::OrganizationId)
        .all(conn)
        .await
}

/// How many parties have not accepted (the consensus check, by index).
pub async fn not_accepted<C: ConnectionTrait>(conn: &C, version_id: Uuid) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait as _;
    rule_party::Entity::find()
        .filter(rule_party::Column::VersionId.eq(version_id))
        .filter(rule_party::Column::Position.ne(Position::Accepted.as_str()))
        .count(conn)
        .await
}

pub fn new_party(version_id: Uuid, org: Uuid, joined_late: bool) -> rule_party::ActiveModel {
    rule_party::ActiveModel {
        version_id: Set(version_id),
        organization_id: Set(org),
        position: Set(Position::Pending.as_str().to_owned()),
        reason: Set(None),
        rule_objections: Set("[]".to_owned()),
        decided_by: Set(None),
        decided_at: Set(None),
        joined_late: Set(joined_late),
    }
}

/// Adds parties that are not there yet; returns how many were new.
pub async fn add_parties<C: ConnectionTrait>(
    conn: &C,
    version_id: Uuid,
    orgs: &[Uuid],
    joined_late: bool,
) -> Result<(), DbErr> {
    for chunk in orgs.chunks(500) {
        rule_party::Entity::insert_many(
            chunk
                .iter()
                .map(|org| new_party(version_id, *org, joined_late)),
        )
        .on_conflict(
            OnConflict::columns([
                rule_party::Column::VersionId,
                rule_party::Column::OrganizationId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    }
    Ok(())
}

/// Organisation names by id, for documents.
pub async fn org_names<C: ConnectionTrait>(
    conn: &C,
    ids: impl IntoIterator<Item = Uuid>,
) -> Result<HashMap<Uuid, String>, DbErr> {
    let ids: Vec<Uuid> = ids.into_iter().collect();
    let mut names = HashMap::new();
    for chunk in ids.chunks(500) {
        for org in organization::Entity::find()
            .filter(organization::Column::Id.is_in(chunk.iter().copied()))
            .all(conn)
            .await?
        {
            names.insert(org.id, org.name);
        }
    }
    Ok(names)
}

/// Sets, for every platform that has rules, the gauges of its open
/// proposal (0 or 1) and of the positions taken on it (`accepted`,
/// `objected`, and `silent` for those yet to answer); all 0 without one.
pub async fn observe_consensus<C: ConnectionTrait>(conn: &C) -> Result<(), DbErr> {
    use renkei_telemetry::metrics;
    use sea_orm::QuerySelect;
    let versions: Vec<(Uuid, Uuid, String)> = rule_version::Entity::find()
        .select_only()
        .column(rule_version::Column::PlatformId)
        .column(rule_version::Column::Id)
        .column(rule_version::Column::State)
        .into_tuple()
        .all(conn)
        .await?;
    let proposed: HashMap<Uuid, Uuid> = versions
        .iter()
        .filter(|(_, _, state)| state == VersionState::Proposed.as_str())
        .map(|(platform, id, _)| (*id, *platform))
        .collect();
    let positions: Vec<(Uuid, String, i64)> = rule_party::Entity::find()
        .select_only()
        .column(rule_party::Column::VersionId)
        .column(rule_party::Column::Position)
        .column_as(rule_party::Column::VersionId.count(), "n")
        .filter(rule_party::Column::VersionId.is_in(proposed.keys().copied()))
        .group_by(rule_party::Column::VersionId)
        .group_by(rule_party::Column::Position)
        .into_tuple()
        .all(conn)
        .await?;
    let platforms: HashSet<Uuid> = versions.iter().map(|(p, _, _)| *p).collect();
    for platform in platforms {
        let open = proposed
            .iter()
            .find(|(_, p)| **p == platform)
            .map(|(v, _)| *v);
        let label = platform.to_string();
        metrics::gauge!(metrics::RULES_PROPOSALS_OPEN, "platform_id" => label.clone())
            .set(f64::from(u8::from(open.is_some())));
        for position in Position::ALL {
            let n = positions
                .iter()
                .find(|(v, p, _)| Some(*v) == open && p == position.as_str())
                .map_or(0, |(_, _, n)| *n);
            let response = match position {
                Position::Pending => "silent",
                other => other.as_str(),
            };
            metrics::gauge!(metrics::RULES_RESPONSES, "platform_id" => label.clone(), "response" => response)
                .set(n as f64);
        }
    }
    Ok(())
}
