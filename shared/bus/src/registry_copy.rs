//! A service's own copy of the registry's organisations and systems, kept
//! from the registry's events (and read through from the registry when an
//! event has not arrived yet). Services that decide by who owns what on
//! which platform keep one; none reads the registry's tables.
//!
//! Each service creates the two tables (`organizations`, `systems`) in its
//! own migrator; the entities and the upkeep are here.

use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::contracts::registry::{self as events, SystemQuery, SystemSnapshot};
use crate::envelope::{Envelope, PayloadMismatch};
use crate::query::{self, QueryError};

/// Organisations, as the registry announced them.
pub mod organization {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "organizations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub name: String,
        pub kind: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Platforms and linked systems, as the registry announced them.
pub mod system {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "systems")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub platform_id: Uuid,
        pub owner_org_id: Uuid,
        pub kind: String,
        pub name: String,
        pub lifecycle: String,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The migrations that create the copy's two tables, under the names a
/// service's migrator gives them.
pub fn tables(
    organizations: &'static str,
    systems: &'static str,
) -> [renkei_store::schema::CreateTable; 2] {
    use renkei_store::schema::{CreateTable, at, index, string, uuid};
    use sea_orm_migration::prelude::Table;
    [
        CreateTable {
            name: organizations,
            table: Table::create()
                .table("organizations")
                .if_not_exists()
                .col(uuid("id").primary_key())
                .col(string("name"))
                .col(string("kind"))
                .to_owned(),
            indexes: vec![],
        },
        CreateTable {
            name: systems,
            table: Table::create()
                .table("systems")
                .if_not_exists()
                .col(uuid("id").primary_key())
                .col(uuid("platform_id"))
                .col(uuid("owner_org_id"))
                .col(string("kind"))
                .col(string("name"))
                .col(string("lifecycle"))
                .col(at("updated_at"))
                .to_owned(),
            indexes: vec![
                index(
                    "systems_platform_owner",
                    "systems",
                    &["platform_id", "owner_org_id"],
                    false,
                ),
                index("systems_owner", "systems", &["owner_org_id"], false),
            ],
        },
    ]
}

/// Names of organisations in the copy, by id, in one query per 500 (an
/// organisation not yet known is absent).
pub async fn org_names<C: ConnectionTrait>(
    conn: &C,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, String>, DbErr> {
    let mut names = std::collections::HashMap::new();
    for chunk in ids.chunks(500) {
        for o in organization::Entity::find()
            .filter(organization::Column::Id.is_in(chunk.iter().copied()))
            .all(conn)
            .await?
        {
            names.insert(o.id, o.name);
        }
    }
    Ok(names)
}

/// Names of systems in the copy, by id, in one query per 500 (a system not
/// yet known is absent).
pub async fn system_names<C: ConnectionTrait>(
    conn: &C,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, String>, DbErr> {
    let mut names = std::collections::HashMap::new();
    for chunk in ids.chunks(500) {
        for s in system::Entity::find()
            .filter(system::Column::Id.is_in(chunk.iter().copied()))
            .all(conn)
            .await?
        {
            names.insert(s.id, s.name);
        }
    }
    Ok(names)
}

/// Stores system snapshots, replacing what was known of them.
pub async fn upsert_systems<C: ConnectionTrait>(
    conn: &C,
    snapshots: &[SystemSnapshot],
) -> Result<(), DbErr> {
    let now = Utc::now();
    for chunk in snapshots.chunks(500) {
        system::Entity::insert_many(chunk.iter().map(|s| system::ActiveModel {
            id: Set(s.system_id),
            platform_id: Set(s.platform_id),
            owner_org_id: Set(s.owner_org_id),
            kind: Set(s.kind.clone()),
            name: Set(s.name.clone()),
            lifecycle: Set(s.lifecycle.clone()),
            updated_at: Set(now),
        }))
        .on_conflict(
            OnConflict::column(system::Column::Id)
                .update_columns([
                    system::Column::Name,
                    system::Column::Lifecycle,
                    system::Column::OwnerOrgId,
                    system::Column::PlatformId,
                    system::Column::Kind,
                    system::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    }
    Ok(())
}

/// What [`apply`] did with an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// An organisation registered or renamed: what it is now.
    Organization(events::OrganizationRegistered),
    SystemRegistered(SystemSnapshot),
    SystemUpdated(SystemSnapshot),
    /// The lifecycle moved; `known` is false for a system this copy never
    /// saw (registered before the service first ran: read through later).
    LifecycleChanged {
        change: events::SystemLifecycleChanged,
        known: bool,
    },
    /// Not an organisation or system event (links, activations…).
    Other,
}

/// Applies a registry event to the copy.
pub async fn apply<C: ConnectionTrait>(conn: &C, event: &Envelope) -> Result<Applied, ApplyError> {
    let organization = if event.is::<events::OrganizationRegistered>() {
        Some(event.decode::<events::OrganizationRegistered>()?)
    } else if event.is::<events::OrganizationUpdated>() {
        let e: events::OrganizationUpdated = event.decode()?;
        Some(events::OrganizationRegistered {
            organization_id: e.organization_id,
            name: e.name,
            kind: e.kind,
            competent_org_id: e.competent_org_id,
        })
    } else {
        None
    };
    if let Some(org) = organization {
        organization::Entity::insert(organization::ActiveModel {
            id: Set(org.organization_id),
            name: Set(org.name.clone()),
            kind: Set(org.kind.clone()),
        })
        .on_conflict(
            OnConflict::column(organization::Column::Id)
                .update_columns([organization::Column::Name, organization::Column::Kind])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
        Ok(Applied::Organization(org))
    } else if event.is::<events::SystemRegistered>() {
        let e: events::SystemRegistered = event.decode()?;
        upsert_systems(conn, std::slice::from_ref(&e.system)).await?;
        Ok(Applied::SystemRegistered(e.system))
    } else if event.is::<events::SystemUpdated>() {
        let e: events::SystemUpdated = event.decode()?;
        upsert_systems(conn, std::slice::from_ref(&e.system)).await?;
        Ok(Applied::SystemUpdated(e.system))
    } else if event.is::<events::SystemLifecycleChanged>() {
        let change: events::SystemLifecycleChanged = event.decode()?;
        let changed = system::Entity::update_many()
            .col_expr(system::Column::Lifecycle, Expr::value(change.to.clone()))
            .col_expr(system::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(system::Column::Id.eq(change.system_id))
            .exec(conn)
            .await?
            .rows_affected;
        Ok(Applied::LifecycleChanged {
            change,
            known: changed > 0,
        })
    } else {
        Ok(Applied::Other)
    }
}

/// Why an event could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Payload(#[from] PayloadMismatch),
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl From<ApplyError> for crate::HandlerError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Payload(e) => crate::HandlerError::Permanent(e.to_string()),
            ApplyError::Db(e) => e.into(),
        }
    }
}

/// A platform in the copy.
pub async fn platform<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
) -> Result<Option<system::Model>, DbErr> {
    Ok(system::Entity::find_by_id(id)
        .one(conn)
        .await?
        .filter(|s| s.kind == "platform"))
}

/// Why a platform could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error(transparent)]
    Db(#[from] DbErr),
    /// Not in the copy, and the registry did not answer.
    #[error("the registry did not answer: {0}")]
    Unavailable(String),
}

/// The platform, from the copy or, when its event has not arrived yet,
/// read through from the registry (and kept).
pub async fn find_platform(
    db: &renkei_store::Db,
    nats: &async_nats::Client,
    platform_id: Uuid,
    timeout: Duration,
) -> Result<Option<system::Model>, LookupError> {
    Ok(find_system(db, nats, platform_id, timeout)
        .await?
        .filter(|s| s.kind == "platform"))
}

/// A system (or platform), from the copy or, when its event has not
/// arrived yet, read through from the registry (and kept).
pub async fn find_system(
    db: &renkei_store::Db,
    nats: &async_nats::Client,
    system_id: Uuid,
    timeout: Duration,
) -> Result<Option<system::Model>, LookupError> {
    if let Some(s) = system::Entity::find_by_id(system_id).one(&db.read).await? {
        return Ok(Some(s));
    }
    match query::request(nats, &SystemQuery { system_id }, timeout).await {
        Ok(snapshot) => {
            upsert_systems(&db.write, &[snapshot]).await?;
            Ok(system::Entity::find_by_id(system_id).one(&db.read).await?)
        }
        Err(QueryError::Refused(f)) if f.code == "not_found" => Ok(None),
        Err(e) => Err(LookupError::Unavailable(e.to_string())),
    }
}
