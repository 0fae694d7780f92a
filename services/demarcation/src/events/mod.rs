//! What the demarcation service consumes, answers and schedules over NATS.
//!
//! - Consumes the registry's organisation and system events into its own
//!   copy (who owns what on which platform) and runs the joining flow.
//! - Answers "who is responsible / accountable for control X on system Y".
//! - Sends the reminders of proposals' deadlines when they fall due.
//!
//! What it publishes is staged by [`crate::consensus`] and the HTTP layer.

pub mod reminders;

use chrono::Utc;
use renkei_bus::contracts::demarcation::{
    self as demarcation_events, Responsibility, ResponsibilityQuery,
};
use renkei_bus::contracts::registry as registry_events;
use renkei_bus::{Envelope, EventHandler, HandlerError, Outbox, QueryFailure};
use renkei_store::Db;
use sea_orm::{ActiveValue::Set, DatabaseTransaction, EntityTrait, sea_query::OnConflict};

use uuid::Uuid;

use crate::consensus::{self, FlowError};
use crate::domain::{Gap, VersionState};
use crate::store::{self, organization, system};

/// Keeps the copy of the registry and runs the joining flow.
pub struct RegistryEventsHandler {
    pub outbox: Outbox,
}

fn transient(e: FlowError) -> HandlerError {
    match e {
        FlowError::Db(e) => HandlerError::Transient(e.into()),
        other => HandlerError::Permanent(other.to_string()),
    }
}

fn system_row(s: &registry_events::SystemSnapshot) -> system::ActiveModel {
    system::ActiveModel {
        id: Set(s.system_id),
        platform_id: Set(s.platform_id),
        owner_org_id: Set(s.owner_org_id),
        kind: Set(s.kind.clone()),
        name: Set(s.name.clone()),
        lifecycle: Set(s.lifecycle.clone()),
        updated_at: Set(Utc::now()),
    }
}

/// Stores a system snapshot, replacing what was known of it.
pub async fn upsert_system<C: sea_orm::ConnectionTrait>(
    conn: &C,
    s: &registry_events::SystemSnapshot,
) -> Result<(), sea_orm::DbErr> {
    upsert_systems(conn, std::slice::from_ref(s)).await
}

/// Stores system snapshots, replacing what was known of them (few statements).
pub async fn upsert_systems<C: sea_orm::ConnectionTrait>(
    conn: &C,
    snapshots: &[registry_events::SystemSnapshot],
) -> Result<(), sea_orm::DbErr> {
    for chunk in snapshots.chunks(500) {
        system::Entity::insert_many(chunk.iter().map(system_row))
            .on_conflict(
                OnConflict::column(system::Column::Id)
                    .update_columns([
                        system::Column::Name,
                        system::Column::Lifecycle,
                        system::Column::OwnerOrgId,
                        system::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl EventHandler for RegistryEventsHandler {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let bad = |e: renkei_bus::envelope::PayloadMismatch| HandlerError::Permanent(e.to_string());
        if event.is::<registry_events::OrganizationRegistered>() {
            let org: registry_events::OrganizationRegistered = event.decode().map_err(bad)?;
            organization::Entity::insert(organization::ActiveModel {
                id: Set(org.organization_id),
                name: Set(org.name),
                kind: Set(org.kind),
            })
            .on_conflict(
                OnConflict::column(organization::Column::Id)
                    .update_columns([organization::Column::Name, organization::Column::Kind])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
        } else if event.is::<registry_events::SystemRegistered>() {
            let registered: registry_events::SystemRegistered = event.decode().map_err(bad)?;
            let s = registered.system;
            upsert_system(txn, &s).await?;
            if s.kind == "linked" && s.lifecycle == "pending_rules" {
                consensus::system_joined(
                    txn,
                    &self.outbox,
                    s.platform_id,
                    s.system_id,
                    s.owner_org_id,
                )
                .await
                .map_err(transient)?;
                report_gaps_of_new_system(txn, &self.outbox, &s).await?;
            }
        } else if event.is::<registry_events::SystemUpdated>() {
            let updated: registry_events::SystemUpdated = event.decode().map_err(bad)?;
            upsert_system(txn, &updated.system).await?;
        } else if event.is::<registry_events::SystemLifecycleChanged>() {
            let changed: registry_events::SystemLifecycleChanged = event.decode().map_err(bad)?;
            let Some(known) = system::Entity::find_by_id(changed.system_id)
                .one(txn)
                .await?
            else {
                // Registered before this service first ran and never seen: it
                // will be read through from the registry when needed.
                return Ok(());
            };
            let mut row: system::ActiveModel = known.into();
            row.lifecycle = Set(changed.to.clone());
            row.updated_at = Set(Utc::now());
            sea_orm::ActiveModelTrait::update(row, txn).await?;
            if changed.to == "retired" {
                consensus::system_left(
                    txn,
                    &self.outbox,
                    changed.platform_id,
                    changed.owner_org_id,
                )
                .await
                .map_err(transient)?;
            }
        } else {
            tracing::debug!(subject = %event.subject, "event not for this service");
        }
        Ok(())
    }
}

/// The event for gaps a change opened.
pub fn gap_found(
    platform_id: Uuid,
    matrix_version: Option<u32>,
    gaps: &[Gap],
) -> demarcation_events::MatrixGapFound {
    demarcation_events::MatrixGapFound {
        platform_id,
        matrix_version,
        gaps: gaps
            .iter()
            .map(|g| demarcation_events::MatrixGap {
                control: g.control.clone(),
                system_id: g.system_id,
                kind: g.kind.as_str().to_owned(),
                organizations: g.organizations.clone(),
            })
            .collect(),
    }
}

/// A system joined a platform that has a matrix: report the gaps it opens
/// (every control in scope needs someone accountable and responsible for it).
async fn report_gaps_of_new_system<C: sea_orm::ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    s: &registry_events::SystemSnapshot,
) -> Result<(), sea_orm::DbErr> {
    let Some(row) = store::matrix(conn, s.platform_id, None).await? else {
        return Ok(());
    };
    let Some(platform) = store::platform(conn, s.platform_id).await? else {
        return Ok(());
    };
    let matrix = store::matrix_of(&row)?;
    let catalogue = store::catalogue_ids(conn).await?;
    let mut view = store::platform_view(conn, &platform).await?;
    view.systems.retain(|(id, _)| *id == s.system_id);
    let gaps = matrix.gaps(&catalogue, &view);
    if !gaps.is_empty() {
        let version = u32::try_from(row.version).ok();
        outbox
            .stage(
                conn,
                Some(platform.owner_org_id),
                &gap_found(s.platform_id, version, &gaps),
            )
            .await?;
    }
    Ok(())
}

/// Answers the responsibility query from the matrix in force (the one the
/// rules in force refer to), else from the latest matrix.
pub async fn answer_responsibility(
    db: &Db,
    query: &ResponsibilityQuery,
) -> Result<Responsibility, QueryFailure> {
    let unavailable = |e: sea_orm::DbErr| QueryFailure::new("unavailable", e.to_string());
    let system = system::Entity::find_by_id(query.system_id)
        .one(&db.read)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| QueryFailure::new("not_found", "no such system"))?;
    let platform_id = system.platform_id;
    let in_force = store::version_in_state(&db.read, platform_id, VersionState::InForce)
        .await
        .map_err(unavailable)?;
    // The matrix the rules in force refer to, else the latest.
    let referred = in_force.as_ref().and_then(|v| v.matrix_version);
    let matrix_row = store::matrix(&db.read, platform_id, referred)
        .await
        .map_err(unavailable)?;
    let (matrix_version, matrix) = match &matrix_row {
        Some(row) => (
            u32::try_from(row.version).ok(),
            store::matrix_of(row).map_err(unavailable)?,
        ),
        None => (None, crate::domain::Matrix::default()),
    };
    let effective = matrix.effective(&query.control, query.system_id);
    Ok(Responsibility {
        control: query.control.clone(),
        system_id: query.system_id,
        platform_id,
        matrix_version,
        in_force: referred.is_some(),
        responsible: effective.responsible,
        accountable: effective.accountable,
        consulted: effective.consulted,
        informed: effective.informed,
        class: effective.class.map(|c| c.as_str().to_owned()),
    })
}
