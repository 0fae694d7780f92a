//! What the contacts service consumes: the registry's organisations and
//! systems (its own copy: who is on which platform), and every event that
//! must reach people, each turned into a notification in the same
//! transaction that records the event as handled.
//!
//! - `demarcation.rules.proposed`, `.reminded`, `.acceptance_requested`
//!   (ordinary conditions);
//! - `emergency.incident.spread_risk` (each organisation at risk reads its
//!   own systems and the paths to them; the operator and central bodies
//!   are told for coordination), `.status_changed`, `emergency.report.filed`
//!   (emergency);
//! - `emergency.message.posted` (published on `emergency.messages.<id>`;
//!   the urgency chooses the condition, and a message asking no
//!   acknowledgement is not escalated);
//! - `emergency.advisory.issued` (ordinary; confirmed, not acknowledged);
//! - `emergency.deadline.missed` (first to the role named, then the
//!   organisation's own policy).
//!
//! The TLP marking of incidents and advisories is remembered, so that
//! notices referring to one without carrying it (a task overdue) are
//! marked with it too.

use std::collections::HashMap;

use chrono::Utc;
use renkei_bus::contracts::demarcation as rules;
use renkei_bus::contracts::emergency as incidents;
use renkei_bus::envelope::PayloadMismatch;
use renkei_bus::registry_copy;
use renkei_bus::{ConsumerSpec, Envelope, EventHandler, HandlerError, Outbox};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait};
use uuid::Uuid;

use crate::domain::{ContactRole, Detail, Notice, ReachedSystem, Tlp};
use crate::escalation::{self, Addressee, Opening};
use crate::store::{self, marking};

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

async fn platform_name_of<C: ConnectionTrait>(
    conn: &C,
    platform_id: Option<Uuid>,
) -> Result<Option<String>, DbErr> {
    Ok(match platform_id {
        Some(id) => Some(platform_name(conn, id).await?),
        None => None,
    })
}

/// Names of systems from the registry copy; an unknown one is named by its id.
async fn system_names<C: ConnectionTrait>(
    conn: &C,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, String>, DbErr> {
    let mut names = registry_copy::system_names(conn, ids).await?;
    for id in ids {
        names.entry(*id).or_insert_with(|| id.to_string());
    }
    Ok(names)
}

async fn org_name<C: ConnectionTrait>(conn: &C, org: Uuid) -> Result<String, DbErr> {
    Ok(store::org_names(conn, &[org])
        .await?
        .remove(&org)
        .unwrap_or_else(|| org.to_string()))
}

/// Remembers the marking of an incident or advisory (the latest wins).
async fn remember_marking<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
    kind: &str,
    tlp: &str,
) -> Result<(), DbErr> {
    if tlp.is_empty() {
        return Ok(());
    }
    marking::Entity::insert(marking::ActiveModel {
        id: Set(id),
        kind: Set(kind.to_owned()),
        tlp: Set(tlp.to_owned()),
        updated_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::column(marking::Column::Id)
            .update_columns([
                marking::Column::Kind,
                marking::Column::Tlp,
                marking::Column::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// The last marking known of an incident or advisory; empty when none is
/// (which reads as `amber`).
async fn marking_of<C: ConnectionTrait>(conn: &C, id: Uuid) -> Result<String, DbErr> {
    Ok(marking::Entity::find_by_id(id)
        .one(conn)
        .await?
        .map(|m| m.tlp)
        .unwrap_or_default())
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
                platform_id: Some(e.platform_id),
                source_event_id: Some(event.id),
                ..Opening::new(
                    event.event_type.clone(),
                    format!("rules/{}/proposed", e.version_id),
                    Notice::RulesProposed {
                        platform: platform_name(txn, e.platform_id).await?,
                        version: e.version,
                        title: e.title,
                        respond_by: e.respond_by,
                    },
                    e.required.into_iter().map(Addressee::org).collect(),
                )
            })
        } else if event.is::<rules::RulesReminded>() {
            let e: rules::RulesReminded = event.decode().map_err(bad)?;
            Some(Opening {
                platform_id: Some(e.platform_id),
                source_event_id: Some(event.id),
                ..Opening::new(
                    event.event_type.clone(),
                    format!("rules/{}/reminded/{}", e.version_id, event.id),
                    Notice::RulesReminder {
                        platform: platform_name(txn, e.platform_id).await?,
                        version: e.version,
                        respond_by: e.respond_by,
                    },
                    vec![Addressee::org(e.organization_id)],
                )
            })
        } else if event.is::<rules::AcceptanceRequested>() {
            let e: rules::AcceptanceRequested = event.decode().map_err(bad)?;
            Some(Opening {
                platform_id: Some(e.platform_id),
                source_event_id: Some(event.id),
                ..Opening::new(
                    event.event_type.clone(),
                    format!("rules/{}/acceptance/{}", e.version_id, event.id),
                    Notice::AcceptanceRequested {
                        platform: platform_name(txn, e.platform_id).await?,
                        version: e.version,
                    },
                    vec![Addressee::with_systems(e.organization_id, e.system_ids)],
                )
            })
        } else if event.is::<incidents::IncidentSpreadRisk>() {
            Some(spread_risk(txn, event).await?)
        } else if event.is::<incidents::IncidentStatusChanged>() {
            let e: incidents::IncidentStatusChanged = event.decode().map_err(bad)?;
            // An event without a marking keeps the incident's last known.
            let tlp = if e.tlp.is_empty() {
                marking_of(txn, e.incident_id).await?
            } else {
                remember_marking(txn, e.incident_id, "incident", &e.tlp).await?;
                e.tlp
            };
            Some(Opening {
                platform_id: Some(e.platform_id),
                incident_id: Some(e.incident_id),
                source_event_id: Some(event.id),
                ..Opening::new(
                    event.event_type.clone(),
                    format!("incident/{}/status/{}", e.incident_id, event.id),
                    Notice::IncidentStatus {
                        platform: platform_name(txn, e.platform_id).await?,
                        title: e.title,
                        from: e.from,
                        to: e.to,
                        severity: e.severity,
                        tlp,
                    },
                    e.notify.into_iter().map(Addressee::org).collect(),
                )
            })
        } else if event.is::<incidents::MessagePosted>() {
            let e: incidents::MessagePosted = event.decode().map_err(bad)?;
            Some(Opening {
                platform_id: Some(e.platform_id),
                incident_id: Some(e.incident_id),
                source_event_id: Some(event.id),
                ack_required: e.ack_required,
                ..Opening::new(
                    event.event_type.clone(),
                    format!("incident/{}/message/{}", e.incident_id, e.message_id),
                    Notice::CoordinationMessage {
                        platform: platform_name(txn, e.platform_id).await?,
                        incident_title: e.incident_title,
                        from: org_name(txn, e.from_organization_id).await?,
                        kind: e.kind,
                        text: e.text,
                        tlp: e.tlp,
                        urgency: e.urgency,
                    },
                    e.to.into_iter().map(Addressee::org).collect(),
                )
            })
        } else if event.is::<incidents::AdvisoryIssued>() {
            let e: incidents::AdvisoryIssued = event.decode().map_err(bad)?;
            remember_marking(txn, e.advisory_id, "advisory", &e.tlp).await?;
            Some(Opening {
                platform_id: e.platform_id,
                source_event_id: Some(event.id),
                ..Opening::new(
                    event.event_type.clone(),
                    format!("advisory/{}", e.advisory_id),
                    Notice::Advisory {
                        platform: platform_name_of(txn, e.platform_id).await?,
                        title: e.title,
                        text: e.text,
                        severity: e.severity,
                        tlp: e.tlp,
                        act_by: e.act_by,
                    },
                    e.organizations.into_iter().map(Addressee::org).collect(),
                )
            })
        } else if event.is::<incidents::DeadlineMissed>() {
            Some(deadline_missed(txn, event).await?)
        } else if event.is::<incidents::ReportFiled>() {
            let e: incidents::ReportFiled = event.decode().map_err(bad)?;
            Some(Opening {
                platform_id: Some(e.platform_id),
                incident_id: Some(e.incident_id),
                source_event_id: Some(event.id),
                ..Opening::new(
                    event.event_type.clone(),
                    format!("incident/{}/report/{}/filed", e.incident_id, e.report_id),
                    Notice::ReportFiled {
                        platform: platform_name(txn, e.platform_id).await?,
                        incident_title: e.incident_title,
                        kind: e.kind,
                        tlp: e.tlp,
                        filed_by: org_name(txn, e.filed_by).await?,
                    },
                    e.notify.into_iter().map(Addressee::org).collect(),
                )
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

/// The organisations at risk, each with its own systems and the path to
/// each (by name; none under TLP `red`), and those informed.
async fn spread_risk<C: ConnectionTrait>(
    conn: &C,
    event: &Envelope,
) -> Result<Opening, HandlerError> {
    let e: incidents::IncidentSpreadRisk = event.decode().map_err(bad)?;
    remember_marking(conn, e.incident_id, "incident", &e.tlp).await?;
    let withheld = Tlp::parse(&e.tlp).withholds_detail();
    let mut ids = vec![e.system_id];
    if !withheld {
        for a in &e.at_risk {
            ids.extend(&a.system_ids);
            ids.extend(a.paths.iter().flatten());
        }
    }
    let names = system_names(conn, &ids).await?;
    let name = |id: &Uuid| names.get(id).cloned().unwrap_or_else(|| id.to_string());
    let at_risk = e.at_risk.iter().map(|a| {
        let systems = if withheld {
            Vec::new()
        } else {
            a.system_ids
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    // Paths go with system_ids in order; one ending
                    // elsewhere is looked for by its last system.
                    let path = a
                        .paths
                        .get(i)
                        .filter(|p| p.last() == Some(s))
                        .or_else(|| a.paths.iter().find(|p| p.last() == Some(s)));
                    ReachedSystem {
                        name: name(s),
                        path: path
                            .map(|p| p.iter().map(name).collect())
                            .unwrap_or_default(),
                    }
                })
                .collect()
        };
        Addressee {
            org_id: a.organization_id,
            systems: a.system_ids.clone(),
            detail: Some(Detail::AtRisk { systems }),
        }
    });
    // At risk first: an organisation both at risk and informed reads what
    // is at risk.
    let informed = e.informed.iter().map(|o| Addressee {
        org_id: *o,
        systems: Vec::new(),
        detail: Some(Detail::Informed),
    });
    let orgs = at_risk.chain(informed).collect();
    Ok(Opening {
        platform_id: Some(e.platform_id),
        incident_id: Some(e.incident_id),
        source_event_id: Some(event.id),
        ..Opening::new(
            event.event_type.clone(),
            // Emergency reads `contacts.notification.*` back by this topic.
            format!("incident/{}/spread_risk", e.incident_id),
            Notice::SpreadRisk {
                platform: platform_name(conn, e.platform_id).await?,
                origin: name(&e.system_id),
                title: e.title,
                severity: e.severity,
                category: e.category,
                tlp: e.tlp,
            },
            orgs,
        )
    })
}

/// Something owed passed its deadline: the organisation is told, first
/// through the role named (its CISO, say), then through its own policy.
async fn deadline_missed<C: ConnectionTrait>(
    conn: &C,
    event: &Envelope,
) -> Result<Opening, HandlerError> {
    let e: incidents::DeadlineMissed = event.decode().map_err(bad)?;
    let platform = platform_name_of(conn, e.platform_id).await?;
    let (notice, incident_id) = match e.overdue {
        incidents::Overdue::Task {
            incident_id,
            incident_title,
            task_title,
            control,
            due_at,
            ..
        } => (
            Notice::TaskOverdue {
                platform,
                incident_title,
                task_title,
                control,
                due_at,
                tlp: marking_of(conn, incident_id).await?,
            },
            Some(incident_id),
        ),
        incidents::Overdue::Report {
            incident_id,
            incident_title,
            kind,
            due_at,
        } => (
            Notice::ReportOverdue {
                platform,
                incident_title,
                kind,
                due_at,
                tlp: marking_of(conn, incident_id).await?,
            },
            Some(incident_id),
        ),
        incidents::Overdue::Advisory {
            advisory_id,
            title,
            act_by,
        } => (
            Notice::AdvisoryUnconfirmed {
                platform,
                title,
                act_by,
                tlp: marking_of(conn, advisory_id).await?,
            },
            None,
        ),
    };
    let first_to = match e
        .to_role
        .as_deref()
        .map(|r| ContactRole::parse("to_role", r))
    {
        None => None,
        Some(Ok(role)) => Some(role),
        Some(Err(unknown)) => {
            tracing::warn!(event_id = %event.id, %unknown, "deadline escalated to an unknown role; the organisation's own policy is used");
            None
        }
    };
    Ok(Opening {
        platform_id: e.platform_id,
        incident_id,
        source_event_id: Some(event.id),
        first_to,
        ..Opening::new(
            event.event_type.clone(),
            e.topic,
            notice,
            vec![Addressee::org(e.organization_id)],
        )
    })
}
