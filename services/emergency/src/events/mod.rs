//! What the emergency service consumes:
//!
//! - the registry's events: its copy of organisations and systems, and a
//!   re-assessment of every open incident on a platform whose links or
//!   systems changed;
//! - the contacts service's events: deliveries, acknowledgements,
//!   escalations of the alerts, messages and advisories it sent, which keep
//!   the acknowledgement and confirmation matrices and the timeline current.

use chrono::{DateTime, Utc};
use renkei_bus::contracts::contacts::{
    NotificationAcknowledged, NotificationDelivered, NotificationEscalated, NotificationExhausted,
    NotificationRef,
};
use renkei_bus::contracts::registry as registry_events;
use renkei_bus::envelope::PayloadMismatch;
use renkei_bus::registry_copy::{self, Applied};
use renkei_bus::{ConsumerSpec, Envelope, EventHandler, HandlerError};
use renkei_telemetry::metrics;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QuerySelect,
};
use serde_json::json;
use uuid::Uuid;

use crate::assessment;
use crate::store::{self, Entry, advisory_recipient, affected, incident, message_recipient};

/// The durable consumers of the service, one per stream it reads.
pub fn consumers() -> Vec<ConsumerSpec> {
    use renkei_bus::subjects::{CONTACTS_STREAM, REGISTRY_STREAM};
    [
        (REGISTRY_STREAM, "emergency-registry"),
        (CONTACTS_STREAM, "emergency-contacts"),
    ]
    .into_iter()
    .map(|(stream, durable)| ConsumerSpec {
        stream,
        durable: durable.into(),
        filter_subjects: vec![],
    })
    .collect()
}

/// Keeps the registry copy, owes re-assessments, follows notifications.
pub struct EmergencyEventsHandler;

fn bad(e: PayloadMismatch) -> HandlerError {
    HandlerError::Permanent(e.to_string())
}

/// What a notification's topic says it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum About {
    SpreadAlert(Uuid),
    Message { incident_id: Uuid, message_id: Uuid },
    Advisory(Uuid),
}

impl About {
    /// Reads a contacts topic (`incident/<id>/spread_risk`,
    /// `incident/<id>/message/<id>`, `advisory/<id>`).
    pub fn of(topic: &str) -> Option<About> {
        let parts: Vec<&str> = topic.split('/').collect();
        let id = |s: &str| Uuid::parse_str(s).ok();
        match parts.as_slice() {
            ["incident", i, "spread_risk"] => Some(About::SpreadAlert(id(i)?)),
            ["incident", i, "message", m] => Some(About::Message {
                incident_id: id(i)?,
                message_id: id(m)?,
            }),
            ["advisory", a] => Some(About::Advisory(id(a)?)),
            _ => None,
        }
    }
}

/// What happened to one organisation's notification.
enum Happened {
    Delivered {
        at: DateTime<Utc>,
        step: u32,
    },
    Acknowledged {
        at: DateTime<Utc>,
        by: String,
        step: u32,
        via: String,
    },
    Escalated {
        step: u32,
        reason: String,
    },
    Exhausted {
        delivered: bool,
    },
}

#[async_trait::async_trait]
impl EventHandler for EmergencyEventsHandler {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let now = Utc::now();
        let platform = match registry_copy::apply(txn, event).await? {
            Applied::SystemRegistered(s) | Applied::SystemUpdated(s) => Some(s.platform_id),
            Applied::LifecycleChanged { change, .. } => Some(change.platform_id),
            Applied::Organization(_) => None,
            Applied::Other => {
                if event.is::<registry_events::LinkAdded>() {
                    let e: registry_events::LinkAdded = event.decode().map_err(bad)?;
                    Some(e.link.platform_id)
                } else if event.is::<registry_events::LinkRemoved>() {
                    let e: registry_events::LinkRemoved = event.decode().map_err(bad)?;
                    Some(e.link.platform_id)
                } else {
                    None
                }
            }
        };
        if let Some(platform_id) = platform {
            let owed = assessment::reassess_platform(txn, platform_id, now).await?;
            if owed > 0 {
                tracing::info!(%platform_id, incidents = owed, "platform changed: open incidents re-assessed");
            }
            return Ok(());
        }

        let (about, happened) = if event.is::<NotificationDelivered>() {
            let e: NotificationDelivered = event.decode().map_err(bad)?;
            (
                e.about,
                Happened::Delivered {
                    at: e.delivered_at,
                    step: e.step,
                },
            )
        } else if event.is::<NotificationAcknowledged>() {
            let e: NotificationAcknowledged = event.decode().map_err(bad)?;
            (
                e.about,
                Happened::Acknowledged {
                    at: e.acknowledged_at,
                    by: e.acknowledged_by,
                    step: e.step,
                    via: e.via,
                },
            )
        } else if event.is::<NotificationEscalated>() {
            let e: NotificationEscalated = event.decode().map_err(bad)?;
            (
                e.about,
                Happened::Escalated {
                    step: e.step,
                    reason: e.reason,
                },
            )
        } else if event.is::<NotificationExhausted>() {
            let e: NotificationExhausted = event.decode().map_err(bad)?;
            (
                e.about,
                Happened::Exhausted {
                    delivered: e.delivered,
                },
            )
        } else {
            return Ok(());
        };
        match About::of(&about.topic) {
            Some(About::SpreadAlert(incident_id)) => {
                spread_alert(txn, incident_id, &about, happened, now).await?
            }
            Some(About::Message {
                incident_id,
                message_id,
            }) => message(txn, incident_id, message_id, &about, happened, now).await?,
            Some(About::Advisory(advisory_id)) => {
                advisory(txn, advisory_id, about.organization_id, happened).await?
            }
            None => {}
        }
        Ok(())
    }
}

/// Records in `histogram` the time from `incident_id`'s declaration to
/// `at`, once the event's transaction has committed.
async fn since_declared(
    txn: &DatabaseTransaction,
    incident_id: Uuid,
    at: DateTime<Utc>,
    histogram: &'static str,
) -> Result<(), DbErr> {
    let declared = incident::Entity::find_by_id(incident_id)
        .select_only()
        .column(incident::Column::DeclaredAt)
        .into_tuple::<DateTime<Utc>>()
        .one(txn)
        .await?;
    if let Some(declared) = declared {
        let took = metrics::seconds(at - declared);
        renkei_bus::consumer::after_commit(move || metrics::histogram!(histogram).record(took));
    }
    Ok(())
}

async fn spread_alert(
    txn: &DatabaseTransaction,
    incident_id: Uuid,
    about: &NotificationRef,
    happened: Happened,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let org = about.organization_id;
    let row = |q: sea_orm::UpdateMany<affected::Entity>| {
        q.filter(affected::Column::IncidentId.eq(incident_id))
            .filter(affected::Column::OrgId.eq(org))
    };
    let entry = match happened {
        Happened::Delivered { at, step } => {
            // The matrix keeps deliveries (when, which step); the timeline
            // keeps what people did. One statement for a first delivery.
            let first = row(affected::Entity::update_many())
                .col_expr(affected::Column::DeliveredAt, Expr::value(at))
                .col_expr(
                    affected::Column::NotificationId,
                    Expr::value(about.notification_id),
                )
                .col_expr(affected::Column::Step, Expr::value(step as i32))
                .filter(affected::Column::DeliveredAt.is_null())
                .exec(txn)
                .await?
                .rows_affected;
            if first > 0 {
                since_declared(txn, incident_id, at, metrics::INCIDENT_FIRST_DELIVERY).await?;
            }
            if first == 0 {
                row(affected::Entity::update_many())
                    .col_expr(affected::Column::Step, Expr::value(step as i32))
                    .filter(affected::Column::Step.lt(step as i32))
                    .exec(txn)
                    .await?;
            }
            None
        }
        Happened::Acknowledged { at, by, step, via } => {
            let first = row(affected::Entity::update_many())
                .col_expr(affected::Column::AcknowledgedAt, Expr::value(at))
                .col_expr(affected::Column::AcknowledgedBy, Expr::value(by.clone()))
                .filter(affected::Column::AcknowledgedAt.is_null())
                .exec(txn)
                .await?
                .rows_affected;
            if first > 0 {
                since_declared(txn, incident_id, at, metrics::INCIDENT_ACKNOWLEDGEMENT).await?;
            }
            Some(Entry {
                kind: "acknowledged",
                actor: "renkei",
                org_id: Some(org),
                text: format!("Alert acknowledged by {by} (step {step}, via {via})"),
                detail: json!({"by": by, "step": step, "via": via, "acknowledged_at": at}),
            })
        }
        Happened::Escalated { step, reason } => {
            row(affected::Entity::update_many())
                .col_expr(affected::Column::Step, Expr::value(step as i32))
                .filter(affected::Column::Step.lt(step as i32))
                .exec(txn)
                .await?;
            Some(Entry {
                kind: "escalated",
                actor: "renkei",
                org_id: Some(org),
                text: format!("No acknowledgement yet: escalated to step {step} ({reason})"),
                detail: json!({"step": step, "reason": reason}),
            })
        }
        Happened::Exhausted { delivered } => {
            row(affected::Entity::update_many())
                .col_expr(affected::Column::ExhaustedAt, Expr::value(now))
                .filter(affected::Column::ExhaustedAt.is_null())
                .exec(txn)
                .await?;
            Some(Entry {
                kind: "unacknowledged",
                actor: "renkei",
                org_id: Some(org),
                text: "Every escalation step went by without an acknowledgement".into(),
                detail: json!({"delivered": delivered}),
            })
        }
    };
    if let Some(entry) = entry
        && exists(txn, incident_id).await?
    {
        store::append(txn, incident_id, now, vec![entry]).await?;
    }
    Ok(())
}

async fn message(
    txn: &DatabaseTransaction,
    incident_id: Uuid,
    message_id: Uuid,
    about: &NotificationRef,
    happened: Happened,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let org = about.organization_id;
    let row = |q: sea_orm::UpdateMany<message_recipient::Entity>| {
        q.filter(message_recipient::Column::MessageId.eq(message_id))
            .filter(message_recipient::Column::OrgId.eq(org))
    };
    match happened {
        Happened::Delivered { at, .. } => {
            row(message_recipient::Entity::update_many())
                .col_expr(message_recipient::Column::DeliveredAt, Expr::value(at))
                .filter(message_recipient::Column::DeliveredAt.is_null())
                .exec(txn)
                .await?;
        }
        Happened::Acknowledged { at, by, .. } => {
            let first = row(message_recipient::Entity::update_many())
                .col_expr(message_recipient::Column::AcknowledgedAt, Expr::value(at))
                .col_expr(
                    message_recipient::Column::AcknowledgedBy,
                    Expr::value(by.clone()),
                )
                .filter(message_recipient::Column::AcknowledgedAt.is_null())
                .exec(txn)
                .await?
                .rows_affected;
            if first > 0 && exists(txn, incident_id).await? {
                store::append(
                    txn,
                    incident_id,
                    now,
                    vec![Entry {
                        kind: "message_acknowledged",
                        actor: "renkei",
                        org_id: Some(org),
                        text: format!("Coordination message acknowledged by {by}"),
                        detail: json!({"message_id": message_id, "by": by}),
                    }],
                )
                .await?;
            }
        }
        Happened::Escalated { .. } | Happened::Exhausted { .. } => {}
    }
    Ok(())
}

async fn advisory(
    txn: &DatabaseTransaction,
    advisory_id: Uuid,
    org: Uuid,
    happened: Happened,
) -> Result<(), DbErr> {
    let row = |q: sea_orm::UpdateMany<advisory_recipient::Entity>| {
        q.filter(advisory_recipient::Column::AdvisoryId.eq(advisory_id))
            .filter(advisory_recipient::Column::OrgId.eq(org))
    };
    match happened {
        Happened::Delivered { at, .. } => {
            row(advisory_recipient::Entity::update_many())
                .col_expr(advisory_recipient::Column::DeliveredAt, Expr::value(at))
                .filter(advisory_recipient::Column::DeliveredAt.is_null())
                .exec(txn)
                .await?;
        }
        Happened::Acknowledged { at, by, .. } => {
            row(advisory_recipient::Entity::update_many())
                .col_expr(advisory_recipient::Column::ConfirmedAt, Expr::value(at))
                .col_expr(advisory_recipient::Column::ConfirmedBy, Expr::value(by))
                .filter(advisory_recipient::Column::ConfirmedAt.is_null())
                .exec(txn)
                .await?;
        }
        Happened::Escalated { .. } | Happened::Exhausted { .. } => {}
    }
    Ok(())
}

async fn exists<C: ConnectionTrait>(conn: &C, incident_id: Uuid) -> Result<bool, DbErr> {
    Ok(store::incident::Entity::find_by_id(incident_id)
        .one(conn)
        .await?
        .is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_name_what_a_notification_was_about() {
        let i = Uuid::now_v7();
        let m = Uuid::now_v7();
        assert_eq!(
            About::of(&format!("incident/{i}/spread_risk")),
            Some(About::SpreadAlert(i))
        );
        assert_eq!(
            About::of(&format!("incident/{i}/message/{m}")),
            Some(About::Message {
                incident_id: i,
                message_id: m
            })
        );
        assert_eq!(
            About::of(&format!("advisory/{i}")),
            Some(About::Advisory(i))
        );
        assert_eq!(About::of(&format!("incident/{i}/status/{m}")), None);
        assert_eq!(About::of("rules/x/proposed"), None);
    }
}
