//! The emergency worker: makes the assessments and tasks that are owed
//! (retrying when the registry or demarcation did not answer), and
//! escalates what passed its deadline — the initial report (to the
//! reporting organisation's CISO), playbook tasks (to their owner) and
//! advisories not confirmed in time. Deadlines live in the database, so a
//! restart only delays them; each escalation is claimed by a guarded
//! update in the transaction that stages its event, so it happens once
//! across replicas.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt as _, TryStreamExt as _};
use renkei_bus::contracts::emergency::{DeadlineMissed, Overdue};
use renkei_bus::worker::Idle;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::assessment::{self, Assessor};
use crate::domain::{Status, TaskState};
use crate::store::{self, Entry, advisory, advisory_recipient, incident, task};

/// Items handled per round.
const BATCH: u64 = 100;
/// How long an assessment or task-making that failed waits to be retried.
const RETRY: chrono::Duration = chrono::Duration::seconds(2);
/// Owed assessments and task-makings in flight at once.
const IN_FLIGHT: usize = 8;
/// How soon owed work is looked at again while NATS is disconnected.
const WHILE_DISCONNECTED: chrono::Duration = chrono::Duration::milliseconds(250);
const IDLE: Idle = Idle {
    min: Duration::from_millis(20),
    sweep: Duration::from_secs(30),
};

#[derive(Clone)]
pub struct Worker {
    pub assessor: Assessor,
    /// Woken when something becomes owed (a registry change, a declaration
    /// whose assessment failed).
    pub wake: Arc<Notify>,
}

impl Worker {
    pub async fn run(self, cancel: CancellationToken) {
        loop {
            let next = match self.tick().await {
                Ok(next) => next,
                Err(error) => {
                    tracing::warn!(%error, "emergency deadlines not handled yet");
                    Some(Utc::now() + chrono::Duration::seconds(1))
                }
            };
            if !IDLE.wait(next, &self.wake, &cancel).await {
                return;
            }
        }
    }

    /// Handles everything due now; returns when the next thing is due.
    ///
    /// Owed assessments and task-makings run [`IN_FLIGHT`] at a time (each
    /// waits mostly on the registry or demarcation, and on the database
    /// writer), and not at all while NATS is disconnected: they would all
    /// fail the same way, and their retry times pushed back would delay them
    /// after the broker returns. They are tried again [`WHILE_DISCONNECTED`]
    /// later instead, so a backlog left by an outage starts at once.
    #[tracing::instrument(skip_all)]
    pub async fn tick(&self) -> Result<Option<DateTime<Utc>>, DbErr> {
        let db = &self.assessor.db;
        let now = Utc::now();
        let connected = renkei_bus::nats::is_connected(&self.assessor.nats);
        if connected {
            let owed = owed(&db.read, now).await?;
            futures::stream::iter(owed)
                .map(|(id, which)| self.owe(id, which))
                .buffer_unordered(IN_FLIGHT)
                .try_collect::<()>()
                .await?;
        }
        let escalated = self.escalate_due(now).await?;
        if escalated > 0 {
            tracing::info!(escalated, "deadlines missed, escalated");
        }
        let next = next_due(&db.read).await?;
        Ok(if connected {
            next
        } else {
            let soon = Utc::now() + WHILE_DISCONNECTED;
            Some(next.map_or(soon, |n| n.min(soon)))
        })
    }

    /// Makes one owed assessment or task list; when it cannot be made now,
    /// it is owed again [`RETRY`] later.
    async fn owe(&self, id: Uuid, which: Owed) -> Result<(), DbErr> {
        let outcome = match which {
            Owed::Assessment => self.assessor.assess(id).await.map(|_| ()),
            Owed::Tasks => self.assessor.make_tasks(id).await.map(|_| ()),
        };
        if let Err(error) = outcome {
            tracing::warn!(incident_id = %id, %error, "will retry");
            let col = match which {
                Owed::Assessment => incident::Column::AssessmentDueAt,
                Owed::Tasks => incident::Column::TasksDueAt,
            };
            incident::Entity::update_many()
                .col_expr(col, Expr::value(Utc::now() + RETRY))
                .filter(incident::Column::Id.eq(id))
                .filter(col.is_not_null())
                .exec(&self.assessor.db.write)
                .await?;
        }
        Ok(())
    }

    /// Escalates overdue reports, tasks and advisories.
    async fn escalate_due(&self, now: DateTime<Utc>) -> Result<usize, DbErr> {
        let outbox = &self.assessor.outbox;
        let txn = self.assessor.db.write.begin().await?;
        let mut count = 0;
        let mut audited = Vec::new();

        let reports = incident::Entity::find()
            .filter(incident::Column::ReportDueAt.lte(now))
            .filter(incident::Column::ReportEscalatedAt.is_null())
            .filter(incident::Column::Status.ne(Status::Closed.as_str()))
            .limit(BATCH)
            .all(&txn)
            .await?;
        for inc in reports {
            let claimed = incident::Entity::update_many()
                .col_expr(incident::Column::ReportEscalatedAt, Expr::value(now))
                .filter(incident::Column::Id.eq(inc.id))
                .filter(incident::Column::ReportEscalatedAt.is_null())
                .exec(&txn)
                .await?
                .rows_affected;
            let Some(due_at) = inc.report_due_at else {
                continue;
            };
            if claimed == 0 {
                continue;
            }
            outbox
                .stage(
                    &txn,
                    Some(inc.org_id),
                    &DeadlineMissed {
                        topic: format!("report/{}/initial", inc.id),
                        platform_id: Some(inc.platform_id),
                        organization_id: inc.org_id,
                        to_role: Some("ciso".into()),
                        overdue: Overdue::Report {
                            incident_id: inc.id,
                            incident_title: assessment::title(&inc),
                            kind: "initial".into(),
                            due_at,
                        },
                    },
                )
                .await?;
            store::append(
                &txn,
                inc.id,
                now,
                vec![Entry {
                    kind: "report_overdue",
                    actor: "renkei",
                    org_id: Some(inc.org_id),
                    text: "The initial report is overdue; escalated to the organisation's CISO"
                        .into(),
                    detail: json!({"due_at": due_at}),
                }],
            )
            .await?;
            audited.push(
                renkei_audit::Action::new("incident.report_escalated", inc.id)
                    .of(inc.org_id)
                    .detail(json!({"due_at": due_at, "to_role": "ciso"})),
            );
            count += 1;
        }

        let tasks = task::Entity::find()
            .filter(task::Column::DueAt.lte(now))
            .filter(task::Column::EscalatedAt.is_null())
            .filter(
                task::Column::State
                    .is_in([TaskState::Open.as_str(), TaskState::InProgress.as_str()]),
            )
            .limit(BATCH)
            .all(&txn)
            .await?;
        for t in tasks {
            let claimed = task::Entity::update_many()
                .col_expr(task::Column::EscalatedAt, Expr::value(now))
                .filter(task::Column::Id.eq(t.id))
                .filter(task::Column::EscalatedAt.is_null())
                .exec(&txn)
                .await?
                .rows_affected;
            let Some(inc) = incident::Entity::find_by_id(t.incident_id)
                .one(&txn)
                .await?
            else {
                continue;
            };
            if claimed == 0 || !Status::parse("status", &inc.status).is_ok_and(Status::is_open) {
                continue;
            }
            let owner = t.owner_org_id.unwrap_or(inc.org_id);
            outbox
                .stage(
                    &txn,
                    Some(owner),
                    &DeadlineMissed {
                        topic: format!("task/{}", t.id),
                        platform_id: Some(inc.platform_id),
                        organization_id: owner,
                        to_role: None,
                        overdue: Overdue::Task {
                            task_id: t.id,
                            incident_id: inc.id,
                            incident_title: assessment::title(&inc),
                            task_title: t.title.clone(),
                            control: t.control.clone(),
                            due_at: t.due_at,
                        },
                    },
                )
                .await?;
            store::append(
                &txn,
                inc.id,
                now,
                vec![Entry {
                    kind: "task_overdue",
                    actor: "renkei",
                    org_id: Some(owner),
                    text: format!("Task \"{}\" is overdue; escalated to its owner", t.title),
                    detail: json!({"task_id": t.id, "due_at": t.due_at}),
                }],
            )
            .await?;
            audited.push(
                renkei_audit::Action::new("task.escalated", t.id)
                    .of(owner)
                    .detail(json!({"incident_id": inc.id, "due_at": t.due_at})),
            );
            count += 1;
        }

        let advisories = advisory::Entity::find()
            .filter(advisory::Column::ActBy.lte(now))
            .filter(advisory::Column::EscalatedAt.is_null())
            .limit(BATCH)
            .all(&txn)
            .await?;
        for a in advisories {
            let claimed = advisory::Entity::update_many()
                .col_expr(advisory::Column::EscalatedAt, Expr::value(now))
                .filter(advisory::Column::Id.eq(a.id))
                .filter(advisory::Column::EscalatedAt.is_null())
                .exec(&txn)
                .await?
                .rows_affected;
            let Some(act_by) = a.act_by else { continue };
            if claimed == 0 {
                continue;
            }
            let late: Vec<Uuid> = advisory_recipient::Entity::find()
                .select_only()
                .column(advisory_recipient::Column::OrgId)
                .filter(advisory_recipient::Column::AdvisoryId.eq(a.id))
                .filter(advisory_recipient::Column::ConfirmedAt.is_null())
                .into_tuple()
                .all(&txn)
                .await?;
            if late.is_empty() {
                continue;
            }
            advisory_recipient::Entity::update_many()
                .col_expr(advisory_recipient::Column::EscalatedAt, Expr::value(now))
                .filter(advisory_recipient::Column::AdvisoryId.eq(a.id))
                .filter(advisory_recipient::Column::ConfirmedAt.is_null())
                .exec(&txn)
                .await?;
            let events: Vec<(Option<Uuid>, DeadlineMissed)> = late
                .iter()
                .map(|org| {
                    (
                        Some(*org),
                        DeadlineMissed {
                            topic: format!("advisory/{}/{org}", a.id),
                            platform_id: a.platform_id,
                            organization_id: *org,
                            to_role: Some("ciso".into()),
                            overdue: Overdue::Advisory {
                                advisory_id: a.id,
                                title: a.title.clone(),
                                act_by,
                            },
                        },
                    )
                })
                .collect();
            outbox.stage_many(&txn, &events).await?;
            audited.push(
                renkei_audit::Action::new("advisory.escalated", a.id)
                    .of(a.issued_by_org)
                    .detail(json!({"organizations": events.len(), "act_by": act_by})),
            );
            count += events.len();
        }
        let by = renkei_audit::Actor::service(crate::SERVICE);
        renkei_audit::record_all(&txn, by, audited).await?;
        outbox.commit(txn).await?;
        Ok(count)
    }
}

#[derive(Debug, Clone, Copy)]
enum Owed {
    Assessment,
    Tasks,
}

/// Incidents whose assessment or tasks are owed now.
async fn owed<C: ConnectionTrait>(
    conn: &C,
    now: DateTime<Utc>,
) -> Result<Vec<(Uuid, Owed)>, DbErr> {
    let mut out = Vec::new();
    for (col, which) in [
        (incident::Column::AssessmentDueAt, Owed::Assessment),
        (incident::Column::TasksDueAt, Owed::Tasks),
    ] {
        let ids: Vec<Uuid> = incident::Entity::find()
            .select_only()
            .column(incident::Column::Id)
            .filter(col.lte(now))
            .order_by_asc(col)
            .limit(BATCH)
            .into_tuple()
            .all(conn)
            .await?;
        out.extend(ids.into_iter().map(|id| (id, which)));
    }
    Ok(out)
}

/// The earliest thing due.
async fn next_due<C: ConnectionTrait>(conn: &C) -> Result<Option<DateTime<Utc>>, DbErr> {
    let mut next: Option<DateTime<Utc>> = None;
    let mut consider = |t: Option<DateTime<Utc>>| {
        if let Some(t) = t {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
    };
    for col in [
        incident::Column::AssessmentDueAt,
        incident::Column::TasksDueAt,
    ] {
        consider(
            incident::Entity::find()
                .select_only()
                .column(col)
                .filter(col.is_not_null())
                .order_by_asc(col)
                .into_tuple::<Option<DateTime<Utc>>>()
                .one(conn)
                .await?
                .flatten(),
        );
    }
    consider(
        incident::Entity::find()
            .select_only()
            .column(incident::Column::ReportDueAt)
            .filter(incident::Column::ReportDueAt.is_not_null())
            .filter(incident::Column::ReportEscalatedAt.is_null())
            .filter(incident::Column::Status.ne(Status::Closed.as_str()))
            .order_by_asc(incident::Column::ReportDueAt)
            .into_tuple::<Option<DateTime<Utc>>>()
            .one(conn)
            .await?
            .flatten(),
    );
    consider(
        task::Entity::find()
            .select_only()
            .column(task::Column::DueAt)
            .filter(task::Column::EscalatedAt.is_null())
            .filter(
                task::Column::State
                    .is_in([TaskState::Open.as_str(), TaskState::InProgress.as_str()]),
            )
            .order_by_asc(task::Column::DueAt)
            .into_tuple::<DateTime<Utc>>()
            .one(conn)
            .await?,
    );
    consider(
        advisory::Entity::find()
            .select_only()
            .column(advisory::Column::ActBy)
            .filter(advisory::Column::ActBy.is_not_null())
            .filter(advisory::Column::EscalatedAt.is_null())
            .order_by_asc(advisory::Column::ActBy)
            .into_tuple::<Option<DateTime<Utc>>>()
            .one(conn)
            .await?
            .flatten(),
    );
    Ok(next)
}
