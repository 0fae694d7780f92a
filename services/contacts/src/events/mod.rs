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
use renkei_bus::envelope::PayloadMismatch;
use renkei_bus::registry_copy;
use renkei_bus::{ConsumerSpec, Envelope, EventHandler, HandlerError, Outbox};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait};
use uuid::Uuid;

use crate::domain::Notice;
use crate::escalation::{self, Opening};
use crate::store::{self, system};

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
        let opening = if !matches!(
            registry_copy::apply(txn, event).await?,
            registry_copy::Applied::Other
        ) {
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
