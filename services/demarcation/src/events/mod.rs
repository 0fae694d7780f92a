//! What the demarcation service consumes, answers and schedules over NATS.
//!
//! - Consumes the registry's organisation and system events into its own
//!   copy (who owns what on which platform) and runs the joining flow.
//! - Answers "who is responsible / accountable for control X on system Y".
//! - Sends the reminders of proposals' deadlines when they fall due.
//!
//! What it publishes is staged by [`crate::consensus`] and the HTTP layer.

pub mod reminders;

use renkei_bus::contracts::demarcation::{
    self as demarcation_events, Responsibility, ResponsibilityQuery,
};
use renkei_bus::contracts::registry as registry_events;
use renkei_bus::registry_copy::{self, Applied};
use renkei_bus::{Envelope, EventHandler, HandlerError, Outbox, QueryFailure};
use renkei_store::Db;
use sea_orm::{DatabaseTransaction, EntityTrait};

use uuid::Uuid;

use crate::consensus::{self, FlowError};
use crate::domain::{Gap, VersionState};
use crate::store::{self, system};

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

#[async_trait::async_trait]
impl EventHandler for RegistryEventsHandler {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        match registry_copy::apply(txn, event).await? {
            Applied::SystemRegistered(s) => {
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
            }
            Applied::LifecycleChanged { change, known } => {
                // A system never seen here (registered before this service
                // first ran) is read through from the registry when needed.
                if known && change.to == "retired" {
                    consensus::system_left(
                        txn,
                        &self.outbox,
                        change.platform_id,
                        change.owner_org_id,
                    )
                    .await
                    .map_err(transient)?;
                }
            }
            Applied::Organization(_) | Applied::SystemUpdated(_) => {}
            Applied::Other => {
                tracing::debug!(subject = %event.subject, "event not for this service");
            }
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
