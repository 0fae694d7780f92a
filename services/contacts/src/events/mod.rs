//! What the contacts service consumes: the registry's organisations and
//! systems (its own copy: who is on which platform), and every event that
//! must reach people, each turned into a notification in the same
//! transaction that records the event as handled.
//!
//! - `demarcation.rules.proposed`, `.reminded`, `.acceptance_requested`
//!   (ordinary conditions);
//! - `emergency.incident.spread_risk`, `.status_changed` (emergency).

use chrono::Utc;
use renkei_bus::contracts::demarcation as rules;
use renkei_bus::contracts::emergency as incidents;
use renkei_bus::contracts::registry;
use renkei_bus::envelope::PayloadMismatch;
use renkei_bus::{ConsumerSpec, Envelope, EventHandler, HandlerError, Outbox};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter,
};
use uuid::Uuid;

use crate::domain::Notice;
use crate::escalation::{self, Opening};
use crate::store::{self, organization, system};

/// The durable consumers of the service, one per stream it reads.
pub fn consumers() -> Vec<ConsumerSpec> {
    use renkei_bus::subjects::{DEMARCATION_STREAM, EMERGENCY_STREAM, REGISTRY_STREAM};
    // Whole streams: one filter per consumer works on every server, and
    // the handler skips what it does not need.
    [
        (REGISTRY_STREAM, "contacts-registry"),
        (DEMARCATION_STREAM, "contacts-demarcation"),
        (EMERGENCY_STREAM, "contacts-emergency"),
    ]
    .into_iter()
    .map(|(stream, durable)| ConsumerSpec {
        stream,
        durable: durable.into(),
        filter_subjects: vec![],
    })
    .collect()
}

/// Keeps the registry copy and opens notifications.
pub struct ContactsEventsHandler {
    pub outbox: Outbox,
}

fn bad(e: PayloadMismatch) -> HandlerError {
    HandlerError::Permanent(e.to_string())
}

/// Stores system snapshots, replacing what was known of them.
pub async fn upsert_systems<C: ConnectionTrait>(
    conn: &C,
    snapshots: &[registry::SystemSnapshot],
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

async fn platform_name<C: ConnectionTrait>(conn: &C, platform_id: Uuid) -> Result<String, DbErr> {
    Ok(store::platform(conn, platform_id)
        .await?
        .map_or_else(|| platform_id.to_string(), |p| p.name))
}

async fn system_name<C: ConnectionTrait>(conn: &C, system_id: Uuid) -> Result<String, DbErr> {
    Ok(system::Entity::find_by_id(system_id)
        .one(conn)
        .await?
        .map_or_else(|| system_id.to_string(), |s| s.name))
}

#[async_trait::async_trait]
impl EventHandler for ContactsEventsHandler {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let now = Utc::now();
        let opening = if event.is::<registry::OrganizationRegistered>() {
            let org: registry::OrganizationRegistered = event.decode().map_err(bad)?;
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
            None
        } else if event.is::<registry::SystemRegistered>() {
            let e: registry::SystemRegistered = event.decode().map_err(bad)?;
            upsert_systems(txn, &[e.system]).await?;
            None
        } else if event.is::<registry::SystemUpdated>() {
            let e: registry::SystemUpdated = event.decode().map_err(bad)?;
            upsert_systems(txn, &[e.system]).await?;
            None
        } else if event.is::<registry::SystemLifecycleChanged>() {
            let e: registry::SystemLifecycleChanged = event.decode().map_err(bad)?;
            system::Entity::update_many()
                .col_expr(
                    system::Column::Lifecycle,
                    sea_orm::sea_query::Expr::value(e.to),
                )
                .filter(system::Column::Id.eq(e.system_id))
                .exec(txn)
                .await?;
            None
        } else if event.is::<rules::RulesProposed>() {
            let e: rules::RulesProposed = event.decode().map_err(bad)?;
            Some(Opening {
                subject: event.event_type.clone(),
                topic: format!("rules/{}/proposed", e.version_id),
                notice: Notice::RulesProposed {
                    platform: platform_name(txn, e.platform_id).await?,
                    version: e.version,
                    title: e.title,
                    respond_by: e.respond_by,
                },
                platform_id: Some(e.platform_id),
                incident_id: None,
                drill_id: None,
                source_event_id: Some(event.id),
                orgs: e.required.into_iter().map(|o| (o, Vec::new())).collect(),
            })
        } else if event.is::<rules::RulesReminded>() {
            let e: rules::RulesReminded = event.decode().map_err(bad)?;
            Some(Opening {
                subject: event.event_type.clone(),
                topic: format!("rules/{}/reminded/{}", e.version_id, event.id),
                notice: Notice::RulesReminder {
                    platform: platform_name(txn, e.platform_id).await?,
                    version: e.version,
                    respond_by: e.respond_by,
                },
                platform_id: Some(e.platform_id),
                incident_id: None,
                drill_id: None,
                source_event_id: Some(event.id),
                orgs: vec![(e.organization_id, Vec::new())],
            })
        } else if event.is::<rules::AcceptanceRequested>() {
            let e: rules::AcceptanceRequested = event.decode().map_err(bad)?;
            Some(Opening {
                subject: event.event_type.clone(),
                topic: format!("rules/{}/acceptance/{}", e.version_id, event.id),
                notice: Notice::AcceptanceRequested {
                    platform: platform_name(txn, e.platform_id).await?,
                    version: e.version,
                },
                platform_id: Some(e.platform_id),
                incident_id: None,
                drill_id: None,
                source_event_id: Some(event.id),
                orgs: vec![(e.organization_id, e.system_ids)],
            })
        } else if event.is::<incidents::IncidentSpreadRisk>() {
            let e: incidents::IncidentSpreadRisk = event.decode().map_err(bad)?;
            Some(Opening {
                subject: event.event_type.clone(),
                topic: format!("incident/{}/spread_risk", e.incident_id),
                notice: Notice::SpreadRisk {
                    platform: platform_name(txn, e.platform_id).await?,
                    origin: system_name(txn, e.system_id).await?,
                    title: e.title,
                    severity: e.severity,
                    category: e.category,
                    tlp: e.tlp,
                },
                platform_id: Some(e.platform_id),
                incident_id: Some(e.incident_id),
                drill_id: None,
                source_event_id: Some(event.id),
                orgs: e
                    .at_risk
                    .into_iter()
                    .map(|a| (a.organization_id, a.system_ids))
                    .collect(),
            })
        } else if event.is::<incidents::IncidentStatusChanged>() {
            let e: incidents::IncidentStatusChanged = event.decode().map_err(bad)?;
            Some(Opening {
                subject: event.event_type.clone(),
                topic: format!("incident/{}/status/{}", e.incident_id, event.id),
                notice: Notice::IncidentStatus {
                    platform: platform_name(txn, e.platform_id).await?,
                    title: e.title,
                    from: e.from,
                    to: e.to,
                },
                platform_id: Some(e.platform_id),
                incident_id: Some(e.incident_id),
                drill_id: None,
                source_event_id: Some(event.id),
                orgs: e.notify.into_iter().map(|o| (o, Vec::new())).collect(),
            })
        } else {
            // Links, decisions, matrices…: nothing for people here.
            None
        };
        if let Some(opening) = opening {
            escalation::open(txn, &self.outbox, opening, now).await?;
        }
        Ok(())
    }
}
