//! The spread assessment: ask the registry for the blast radius of the
//! incident's category from its system, record who is at risk (and by
//! which paths), and alert those newly at risk, once each.
//!
//! Also the playbook's tasks, made once per incident with owners from the
//! responsibility matrix in force.
//!
//! Both run right after the declaration and again from the worker
//! ([`crate::deadlines`]) whenever they are owed (`assessment_due_at`,
//! `tasks_due_at`): a registry or demarcation that does not answer delays
//! them, never loses them. The incident row is locked while the outcome is
//! written, so that two replicas assessing at once alert nobody twice.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use renkei_bus::Outbox;
use renkei_bus::contracts::demarcation::ResponsibilityQuery;
use renkei_bus::contracts::emergency::{AtRisk, IncidentSpreadRisk};
use renkei_bus::contracts::registry::BlastRadiusQuery;
use renkei_bus::query::{self, QueryError};
use renkei_store::Db;
use renkei_store::json::{from_column, to_column};
use sea_orm::sea_query::{Expr, LockType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QuerySelect, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use crate::domain::{PlaybookStep, Severity, Status, TaskState, Tlp};
use crate::store::{self, Entry, affected, incident, playbook, task};

/// Why an assessment could not be made now (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum AssessError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error("the {0} did not answer: {1}")]
    Unavailable(&'static str, QueryError),
}

/// What is needed to assess.
#[derive(Clone)]
pub struct Assessor {
    pub db: Db,
    pub nats: async_nats::Client,
    pub outbox: Outbox,
    pub timeout: Duration,
}

/// What an assessment found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Assessed {
    /// Organisations at risk now.
    pub at_risk: usize,
    /// Organisations alerted by this assessment.
    pub newly: Vec<Uuid>,
}

/// One organisation's exposure, from the blast radius.
#[derive(Debug, Default)]
struct Exposure {
    systems: Vec<Uuid>,
    paths: Vec<Vec<Uuid>>,
    hops: u32,
}

impl Assessor {
    /// Assesses the incident's spread now, if it is open and owed.
    #[tracing::instrument(skip(self), fields(incident_id = %incident_id))]
    pub async fn assess(&self, incident_id: Uuid) -> Result<Option<Assessed>, AssessError> {
        let started = Utc::now();
        let Some(inc) = incident::Entity::find_by_id(incident_id)
            .one(&self.db.read)
            .await?
        else {
            return Ok(None);
        };
        if inc.assessment_due_at.is_none() {
            return Ok(None);
        }
        if !Status::parse("status", &inc.status).is_ok_and(Status::is_open) {
            clear_due(&self.db.write, incident_id, started).await?;
            return Ok(None);
        }
        let radius = query::request(
            &self.nats,
            &BlastRadiusQuery {
                system_id: inc.system_id,
                category: inc.category.clone(),
            },
            self.timeout,
        )
        .await
        .map_err(|e| AssessError::Unavailable("registry", e))?;

        let mut exposure: BTreeMap<Uuid, Exposure> = BTreeMap::new();
        for s in radius.affected {
            if s.owner_org_id == inc.org_id || s.system_id == inc.system_id {
                continue;
            }
            let e = exposure.entry(s.owner_org_id).or_default();
            e.hops = if e.systems.is_empty() {
                s.hops
            } else {
                e.hops.min(s.hops)
            };
            e.systems.push(s.system_id);
            e.paths.push(s.path);
        }

        let txn = self.db.write.begin().await?;
        let Some(inc) = incident::Entity::find_by_id(incident_id)
            .lock(LockType::Update)
            .one(&txn)
            .await?
        else {
            return Ok(None);
        };
        if inc.assessment_due_at.is_none() {
            // Another replica assessed it meanwhile.
            return Ok(None);
        }
        let now = Utc::now();
        let number = inc.assessments + 1;
        let known = store::affected_of(&txn, incident_id).await?;
        let known_orgs: HashSet<Uuid> = known.iter().map(|a| a.org_id).collect();
        let mut newly = Vec::new();
        let mut rows = Vec::new();
        for (org, e) in &exposure {
            if known_orgs.contains(org) {
                affected::Entity::update_many()
                    .col_expr(
                        affected::Column::SystemIds,
                        Expr::value(to_column(&e.systems)?),
                    )
                    .col_expr(affected::Column::Paths, Expr::value(to_column(&e.paths)?))
                    .col_expr(affected::Column::Hops, Expr::value(e.hops as i32))
                    .col_expr(affected::Column::AtRisk, Expr::value(true))
                    .filter(affected::Column::IncidentId.eq(incident_id))
                    .filter(affected::Column::OrgId.eq(*org))
                    .exec(&txn)
                    .await?;
            } else {
                newly.push(*org);
                rows.push(affected::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    incident_id: Set(incident_id),
                    org_id: Set(*org),
                    system_ids: Set(to_column(&e.systems)?),
                    paths: Set(to_column(&e.paths)?),
                    hops: Set(e.hops as i32),
                    at_risk: Set(true),
                    assessment: Set(number),
                    alerted_at: Set(now),
                    notification_id: Set(None),
                    delivered_at: Set(None),
                    step: Set(0),
                    acknowledged_at: Set(None),
                    acknowledged_by: Set(None),
                    exhausted_at: Set(None),
                });
            }
        }
        let gone: Vec<Uuid> = known
            .iter()
            .filter(|a| a.at_risk && !exposure.contains_key(&a.org_id))
            .map(|a| a.org_id)
            .collect();
        if !gone.is_empty() {
            affected::Entity::update_many()
                .col_expr(affected::Column::AtRisk, Expr::value(false))
                .filter(affected::Column::IncidentId.eq(incident_id))
                .filter(affected::Column::OrgId.is_in(gone.iter().copied()))
                .exec(&txn)
                .await?;
        }
        for chunk in rows.chunks(300) {
            affected::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(&txn)
                .await?;
        }

        let tlp = Tlp::parse("tlp", &inc.tlp).unwrap_or(Tlp::Red);
        let informed = if number == 1 {
            let mut informed = store::central_bodies(&txn).await?;
            if let Some(platform) = store::system::Entity::find_by_id(inc.platform_id)
                .one(&txn)
                .await?
            {
                informed.push(platform.owner_org_id);
            }
            informed.retain(|o| *o != inc.org_id && !exposure.contains_key(o));
            informed.sort();
            informed.dedup();
            informed
        } else {
            Vec::new()
        };
        if !newly.is_empty() || number == 1 {
            let severity = Severity::new("severity", i64::from(inc.severity))
                .map(Severity::word)
                .unwrap_or("high");
            let event = IncidentSpreadRisk {
                incident_id,
                platform_id: inc.platform_id,
                system_id: inc.system_id,
                organization_id: inc.org_id,
                title: title(&inc),
                severity: severity.to_owned(),
                category: inc.category.clone(),
                tlp: inc.tlp.clone(),
                at_risk: newly
                    .iter()
                    .map(|org| {
                        let e = &exposure[org];
                        AtRisk {
                            organization_id: *org,
                            system_ids: e.systems.clone(),
                            hops: e.hops,
                            paths: if tlp == Tlp::Red {
                                Vec::new()
                            } else {
                                e.paths.clone()
                            },
                        }
                    })
                    .collect(),
                informed: informed.clone(),
                assessment: number as u32,
            };
            self.outbox.stage(&txn, Some(inc.org_id), &event).await?;
        }

        let mut entries = vec![Entry {
            kind: "assessed",
            actor: "renkei",
            org_id: None,
            text: format!(
                "Spread assessment {number}: {} organisation(s) at risk, {} newly",
                exposure.len(),
                newly.len()
            ),
            detail: json!({
                "assessment": number,
                "at_risk": exposure.keys().collect::<Vec<_>>(),
                "newly": newly,
                "no_longer": gone,
            }),
        }];
        if !newly.is_empty() {
            // One entry for the alerts of an assessment: each organisation's
            // own alert (when, which systems, delivered, acknowledged) is its
            // row of the acknowledgement matrix.
            entries.push(Entry {
                kind: "alerted",
                actor: "renkei",
                org_id: None,
                text: format!(
                    "Spread alerts sent to {} organisation(s) along their emergency paths",
                    newly.len()
                ),
                detail: json!({"assessment": number, "organizations": newly.len()}),
            });
        }
        if !informed.is_empty() {
            entries.push(Entry {
                kind: "informed",
                actor: "renkei",
                org_id: None,
                text: "Platform operator and central body informed".to_owned(),
                detail: json!({ "organizations": informed }),
            });
        }
        store::append(&txn, incident_id, now, entries).await?;

        // A change that arrived while the registry was asked owes another pass.
        let still_due = inc.assessment_due_at.is_some_and(|due| due > started);
        incident::Entity::update_many()
            .col_expr(incident::Column::Assessments, Expr::value(number))
            .col_expr(
                incident::Column::AssessmentDueAt,
                Expr::value(if still_due {
                    inc.assessment_due_at
                } else {
                    None
                }),
            )
            .col_expr(incident::Column::UpdatedAt, Expr::value(now))
            .filter(incident::Column::Id.eq(incident_id))
            .exec(&txn)
            .await?;
        let done = renkei_audit::Action::new("incident.assessed", incident_id)
            .of(inc.org_id)
            .detail(json!({
                "assessment": number,
                "at_risk": exposure.len(),
                "newly_alerted": newly.len(),
                "no_longer": gone.len(),
            }));
        renkei_audit::record(&txn, renkei_audit::Actor::service(crate::SERVICE), done).await?;
        self.outbox.commit(txn).await?;
        tracing::info!(
            at_risk = exposure.len(),
            newly = newly.len(),
            assessment = number,
            "spread assessed"
        );
        Ok(Some(Assessed {
            at_risk: exposure.len(),
            newly,
        }))
    }

    /// Makes the playbook's tasks on the incident, once, with their owners
    /// from the responsibility matrix.
    #[tracing::instrument(skip(self), fields(incident_id = %incident_id))]
    pub async fn make_tasks(&self, incident_id: Uuid) -> Result<usize, AssessError> {
        let Some(inc) = incident::Entity::find_by_id(incident_id)
            .one(&self.db.read)
            .await?
        else {
            return Ok(0);
        };
        if inc.tasks_due_at.is_none() {
            return Ok(0);
        }
        let book = playbook::Entity::find()
            .filter(playbook::Column::PlatformId.eq(inc.platform_id))
            .filter(playbook::Column::Category.eq(&inc.category))
            .one(&self.db.read)
            .await?;
        let steps: Vec<PlaybookStep> = match &book {
            Some(b) => from_column("playbook steps", &b.steps)?,
            None => Vec::new(),
        };
        let operator = store::system::Entity::find_by_id(inc.platform_id)
            .one(&self.db.read)
            .await?
            .map(|p| p.owner_org_id);
        let mut owners = Vec::with_capacity(steps.len());
        for step in &steps {
            let answer = query::request(
                &self.nats,
                &ResponsibilityQuery {
                    control: step.control.clone(),
                    system_id: inc.system_id,
                },
                self.timeout,
            )
            .await;
            let owner = match answer {
                Ok(r) => match (r.accountable.first(), r.responsible.first()) {
                    (Some(o), _) => (Some(*o), "matrix"),
                    (None, Some(o)) => (Some(*o), "matrix_responsible"),
                    (None, None) => (operator, "platform_operator"),
                },
                Err(QueryError::Refused(f)) if f.code == "not_found" => {
                    (operator, "platform_operator")
                }
                Err(e) => return Err(AssessError::Unavailable("demarcation", e)),
            };
            owners.push(owner);
        }

        let txn = self.db.write.begin().await?;
        let Some(inc) = incident::Entity::find_by_id(incident_id)
            .lock(LockType::Update)
            .one(&txn)
            .await?
        else {
            return Ok(0);
        };
        let existing = task::Entity::find()
            .filter(task::Column::IncidentId.eq(incident_id))
            .count(&txn)
            .await?;
        if inc.tasks_due_at.is_none() || existing > 0 {
            return Ok(0);
        }
        let now = Utc::now();
        let rows: Vec<task::ActiveModel> = steps
            .iter()
            .zip(&owners)
            .enumerate()
            .map(|(i, (step, (owner, source)))| task::ActiveModel {
                id: Set(Uuid::now_v7()),
                incident_id: Set(incident_id),
                position: Set(i as i32 + 1),
                title: Set(step.title.clone()),
                control: Set(step.control.clone()),
                description: Set(step.description.clone()),
                owner_org_id: Set(*owner),
                owner_source: Set((*source).to_owned()),
                due_at: Set(
                    inc.declared_at + chrono::Duration::minutes(i64::from(step.due_after_minutes))
                ),
                state: Set(TaskState::Open.as_str().to_owned()),
                reason: Set(None),
                updated_by: Set(None),
                updated_at: Set(now),
                escalated_at: Set(None),
            })
            .collect();
        let made = rows.len();
        if !rows.is_empty() {
            task::Entity::insert_many(rows)
                .exec_without_returning(&txn)
                .await?;
            store::append(
                &txn,
                incident_id,
                now,
                vec![Entry {
                    kind: "tasks_assigned",
                    actor: "renkei",
                    org_id: None,
                    text: format!(
                        "{made} task(s) from the playbook \"{}\" assigned from the responsibility matrix",
                        book.as_ref().map_or("", |b| b.title.as_str())
                    ),
                    detail: json!({"playbook_id": book.as_ref().map(|b| b.id), "owners": owners.iter().map(|(o, s)| json!({"org_id": o, "source": s})).collect::<Vec<_>>()}),
                }],
            )
            .await?;
        }
        incident::Entity::update_many()
            .col_expr(
                incident::Column::TasksDueAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(incident::Column::Id.eq(incident_id))
            .exec(&txn)
            .await?;
        if made > 0 {
            let done = renkei_audit::Action::new("incident.tasks_assigned", incident_id)
                .of(inc.org_id)
                .detail(json!({"tasks": made, "playbook_id": book.as_ref().map(|b| b.id)}));
            renkei_audit::record(&txn, renkei_audit::Actor::service(crate::SERVICE), done).await?;
        }
        txn.commit().await?;
        Ok(made)
    }
}

/// The title messages carry: the summary's first line, shortened.
pub fn title(inc: &incident::Model) -> String {
    let first = inc.summary.lines().next().unwrap_or_default();
    let mut t: String = first.chars().take(120).collect();
    if first.chars().count() > 120 {
        t.push('…');
    }
    t
}

async fn clear_due<C: ConnectionTrait>(
    conn: &C,
    incident_id: Uuid,
    started: DateTime<Utc>,
) -> Result<(), DbErr> {
    incident::Entity::update_many()
        .col_expr(
            incident::Column::AssessmentDueAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(incident::Column::Id.eq(incident_id))
        .filter(incident::Column::AssessmentDueAt.lte(started))
        .exec(conn)
        .await?;
    Ok(())
}

/// Marks the open incidents on `platform_id` for re-assessment (a link or
/// system there changed). Returns how many.
pub async fn reassess_platform<C: ConnectionTrait>(
    conn: &C,
    platform_id: Uuid,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    Ok(incident::Entity::update_many()
        .col_expr(incident::Column::AssessmentDueAt, Expr::value(now))
        .filter(incident::Column::PlatformId.eq(platform_id))
        .filter(incident::Column::Status.ne(Status::Closed.as_str()))
        .exec(conn)
        .await?
        .rows_affected)
}
