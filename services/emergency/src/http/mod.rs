//! The emergency HTTP API under `/v1`.

pub mod dto;

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use renkei_bus::contracts::emergency::{
    AdvisoryIssued, IncidentStatusChanged, MessagePosted, ReportFiled,
};
use renkei_bus::registry_copy::{self, LookupError};
use renkei_bus::subjects;
use renkei_store::json::{from_column, to_column};
use renkei_web::error::{db, invalid, path_id, query_id};
use renkei_web::pagination::paginate;
use renkei_web::platforms::Platforms;
use renkei_web::{ApiError, Identity, PageParams, Role, ValidJson};
use sea_orm::sea_query::{Expr, ExprTrait as _, LockType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use serde_json::json;
use utoipa::OpenApi;
use uuid::Uuid;

use crate::access;
use crate::assessment;
use crate::domain::coordination::addressees;
use crate::domain::report::{AffectedLine, Facts, ReportContent, ReportKind, TimelineLine};
use crate::domain::{
    Category, Disclosure, MessageKind, Relation, Review, Severity, Status, StatusRefused,
    TaskRefused, TaskState, Tlp, Urgency, valid_advisory, valid_name, valid_steps, valid_text,
};
use crate::service::EmergencyState;
use crate::store::{
    self, Entry, advisory, advisory_recipient, affected, incident, message, message_recipient,
    organization, playbook, report, system, task, timeline,
};
use dto::*;

type State = web::Data<EmergencyState>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/incidents", web::post().to(declare))
        .route("/v1/incidents", web::get().to(list_incidents))
        .route("/v1/incidents/{id}", web::get().to(get_incident))
        .route("/v1/incidents/{id}/status", web::post().to(change_status))
        .route("/v1/incidents/{id}/timeline", web::get().to(get_timeline))
        .route("/v1/incidents/{id}/tasks", web::get().to(list_tasks))
        .route("/v1/tasks/{id}", web::patch().to(change_task))
        .route(
            "/v1/platforms/{platform_id}/playbooks",
            web::post().to(create_playbook),
        )
        .route(
            "/v1/platforms/{platform_id}/playbooks",
            web::get().to(list_playbooks),
        )
        .route("/v1/playbooks/{id}", web::get().to(get_playbook))
        .route("/v1/playbooks/{id}", web::put().to(update_playbook))
        .route("/v1/incidents/{id}/reports", web::post().to(create_report))
        .route(
            "/v1/incidents/{id}/reports",
            web::get().to(list_incident_reports),
        )
        .route("/v1/reports", web::get().to(list_reports))
        .route("/v1/reports/{id}", web::get().to(get_report))
        .route("/v1/reports/{id}", web::patch().to(edit_report))
        .route("/v1/reports/{id}/file", web::post().to(file_report))
        .route("/v1/incidents/{id}/review", web::put().to(put_review))
        .route("/v1/incidents/{id}/messages", web::post().to(post_message))
        .route("/v1/incidents/{id}/messages", web::get().to(list_messages))
        .route("/v1/advisories", web::post().to(issue_advisory))
        .route("/v1/advisories", web::get().to(list_advisories))
        .route("/v1/advisories/{id}", web::get().to(get_advisory));
}

#[derive(OpenApi)]
#[openapi(
    paths(
        declare, list_incidents, get_incident, change_status, get_timeline, list_tasks,
        change_task, create_playbook, list_playbooks, get_playbook, update_playbook,
        create_report, list_incident_reports, list_reports, get_report, edit_report,
        file_report, put_review, post_message, list_messages, issue_advisory,
        list_advisories, get_advisory
    ),
    components(schemas(DeclareIncident, AffectedView, IncidentView, StatusChange, TimelineEntry,
                       TaskView, TaskChange, CreatePlaybook, UpdatePlaybook, PlaybookView,
                       crate::domain::PlaybookStep, CreateReport, EditReport, ReportView,
                       ReportContent, AffectedLine, TimelineLine, Review,
                       crate::domain::ReviewAction, PostMessage, RecipientView, MessageView,
                       IssueAdvisory, ConfirmationView, AdvisoryView,
                       renkei_web::error::Problem)),
    tags((name = "emergency", description = "Incidents, spread alerts, playbooks, coordination, advisories and reports"))
)]
pub struct ApiDoc;

// ---- shared helpers ------------------------------------------------------

fn platforms(state: &EmergencyState) -> Platforms<'_> {
    Platforms {
        db: &state.db,
        nats: &state.nats,
        timeout: state.query_timeout,
    }
}

/// The incident and what `who` may see of it; 404 for strangers.
async fn readable(
    state: &EmergencyState,
    who: &Identity,
    id: Uuid,
) -> Result<(incident::Model, Relation, Disclosure), ApiError> {
    let inc = incident::Entity::find_by_id(id)
        .one(&state.db.read)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("incident"))?;
    let relation = access::relation(&state.db.read, who, &inc)
        .await
        .map_err(db)?;
    let tlp = Tlp::parse("tlp", &inc.tlp).unwrap_or(Tlp::Red);
    let disclosure = Disclosure::of(relation, tlp).ok_or(ApiError::NotFound("incident"))?;
    Ok((inc, relation, disclosure))
}

/// The incident, locked for a change `who` must be allowed to make.
async fn actionable(
    txn: &DatabaseTransaction,
    who: &Identity,
    id: Uuid,
    action: &str,
) -> Result<incident::Model, ApiError> {
    let inc = incident::Entity::find_by_id(id)
        .lock(LockType::Update)
        .one(txn)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("incident"))?;
    let relation = access::relation(txn, who, &inc).await.map_err(db)?;
    let tlp = Tlp::parse("tlp", &inc.tlp).unwrap_or(Tlp::Red);
    if Disclosure::of(relation, tlp).is_none() {
        return Err(ApiError::NotFound("incident"));
    }
    if !access::may_act(txn, who, &inc).await.map_err(db)? {
        return Err(ApiError::Forbidden(format!(
            "only the declaring organisation's manager, CSIRT or CISO, or the platform operator, {action}"
        )));
    }
    Ok(inc)
}

fn actor(who: &Identity) -> String {
    who.sub.clone()
}

fn status_of(inc: &incident::Model) -> Result<Status, ApiError> {
    Status::parse("status", &inc.status)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored incident status: {e}")))
}

fn lookup(e: LookupError) -> ApiError {
    match e {
        LookupError::Db(e) => db(e),
        LookupError::Unavailable(why) => ApiError::Unavailable(why),
    }
}

/// The participants of an incident: declaring org, affected orgs, the
/// platform operator, the central bodies.
async fn participants<C: ConnectionTrait>(
    conn: &C,
    inc: &incident::Model,
) -> Result<(Vec<Uuid>, Vec<Uuid>), DbErr> {
    let central = store::central_bodies(conn).await?;
    let mut all = vec![inc.org_id];
    all.extend(
        store::affected_of(conn, inc.id)
            .await?
            .iter()
            .map(|a| a.org_id),
    );
    if let Some(p) = system::Entity::find_by_id(inc.platform_id)
        .one(conn)
        .await?
    {
        all.push(p.owner_org_id);
    }
    all.extend(central.iter().copied());
    all.sort();
    all.dedup();
    Ok((all, central))
}

async fn incident_view<C: ConnectionTrait>(
    conn: &C,
    who: &Identity,
    inc: incident::Model,
    disclosure: Disclosure,
) -> Result<IncidentView, ApiError> {
    let rows = store::affected_of(conn, inc.id).await.map_err(db)?;
    let rows: Vec<affected::Model> = rows
        .into_iter()
        .filter(|a| disclosure.others || Some(a.org_id) == who.org)
        .collect();
    let ids: Vec<Uuid> = rows.iter().map(|a| a.org_id).collect();
    let names = store::org_names(conn, &ids).await.map_err(db)?;
    let system_name = store::system_names(conn, &[inc.system_id])
        .await
        .map_err(db)?
        .remove(&inc.system_id)
        .unwrap_or_else(|| inc.system_id.to_string());
    let affected = rows
        .into_iter()
        .map(|a| {
            Ok(AffectedView {
                org_name: names
                    .get(&a.org_id)
                    .cloned()
                    .unwrap_or_else(|| a.org_id.to_string()),
                org_id: a.org_id,
                system_ids: from_column("affected systems", &a.system_ids)?,
                paths: if disclosure.paths {
                    Some(from_column("affected paths", &a.paths)?)
                } else {
                    None
                },
                hops: a.hops,
                at_risk: a.at_risk,
                alerted_at: a.alerted_at,
                delivered: a.delivered_at.is_some(),
                delivered_at: a.delivered_at,
                acknowledged: a.acknowledged_at.is_some(),
                acknowledged_by: a.acknowledged_by,
                acknowledged_at: a.acknowledged_at,
                escalation_step: a.step,
                unacknowledged: a.exhausted_at.is_some() && a.acknowledged_at.is_none(),
            })
        })
        .collect::<Result<Vec<_>, DbErr>>()
        .map_err(db)?;
    let review = match &inc.review {
        Some(r) if disclosure.is_full() || disclosure.summary => {
            Some(from_column::<Review>("review", r).map_err(db)?)
        }
        _ => None,
    };
    let mut withheld = Vec::new();
    for (shown, what) in [
        (disclosure.summary, "summary"),
        (disclosure.paths, "paths"),
        (disclosure.others, "others"),
    ] {
        if !shown {
            withheld.push(what.to_owned());
        }
    }
    let now = Utc::now();
    Ok(IncidentView {
        id: inc.id,
        platform_id: inc.platform_id,
        system_id: inc.system_id,
        system_name,
        org_id: inc.org_id,
        category: inc.category,
        severity: inc.severity,
        tlp: inc.tlp,
        summary: disclosure.summary.then_some(inc.summary),
        detected_at: inc.detected_at,
        declared_at: inc.declared_at,
        declared_by: if disclosure.is_full() {
            inc.declared_by
        } else {
            String::new()
        },
        status: inc.status,
        status_changed_at: inc.status_changed_at,
        report_due_at: inc.report_due_at,
        report_due_in_secs: inc.report_due_at.map(|d| (d - now).num_seconds()),
        report_escalated: inc.report_escalated_at.is_some(),
        assessments: inc.assessments,
        assessment_pending: inc.assessment_due_at.is_some(),
        affected,
        review,
        withheld,
    })
}

// ---- incidents -----------------------------------------------------------

#[utoipa::path(post, path = "/v1/incidents", tag = "emergency", request_body = DeclareIncident,
    responses((status = 201, body = IncidentView), (status = 400), (status = 403), (status = 404),
              (status = 422), (status = 503)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(incident_id, system_id = %body.0.system_id))]
async fn declare(
    state: State,
    who: Identity,
    body: ValidJson<DeclareIncident>,
) -> Result<HttpResponse, ApiError> {
    let ValidJson(body) = body;
    let category = Category::parse("category", &body.category).map_err(invalid)?;
    let severity = Severity::new("severity", body.severity).map_err(invalid)?;
    let tlp = Tlp::parse("tlp", &body.tlp).map_err(invalid)?;
    let summary = valid_text("summary", &body.summary, 5_000, true).map_err(invalid)?;
    let now = Utc::now();
    if body.detected_at > now + chrono::Duration::minutes(5) {
        return Err(ApiError::invalid(
            "detected_at",
            "must not be in the future",
        ));
    }
    let system =
        registry_copy::find_system(&state.db, &state.nats, body.system_id, state.query_timeout)
            .await
            .map_err(lookup)?
            .ok_or(ApiError::NotFound("system"))?;
    let platform = platforms(&state)
        .find(system.platform_id)
        .await?
        .ok_or(ApiError::NotFound("system"))?;
    if !access::may_declare(&who, &system, &platform) {
        if platforms(&state).readable_by(&who, &platform).await? {
            return Err(ApiError::Forbidden(
                "only a manager, CSIRT member or CISO of the system's owner, or the platform operator, declares an incident on it".into(),
            ));
        }
        return Err(ApiError::NotFound("system"));
    }
    let id = Uuid::now_v7();
    tracing::Span::current().record("incident_id", tracing::field::display(id));
    let due = if severity.is_severe() {
        state.settings.initial_report_due_secs_severe
    } else {
        state.settings.initial_report_due_secs_other
    };
    let txn = state.db.write.begin().await.map_err(db)?;
    incident::Entity::insert(incident::ActiveModel {
        id: Set(id),
        platform_id: Set(platform.id),
        system_id: Set(system.id),
        org_id: Set(system.owner_org_id),
        declared_by: Set(actor(&who)),
        category: Set(category.as_str().to_owned()),
        severity: Set(i32::from(severity.get())),
        tlp: Set(tlp.as_str().to_owned()),
        summary: Set(summary),
        detected_at: Set(body.detected_at),
        declared_at: Set(now),
        status: Set(Status::Declared.as_str().to_owned()),
        status_changed_at: Set(now),
        report_due_at: Set(Some(now + chrono::Duration::seconds(due as i64))),
        report_escalated_at: Set(None),
        assessment_due_at: Set(Some(now)),
        assessments: Set(0),
        tasks_due_at: Set(Some(now)),
        review: Set(None),
        closed_at: Set(None),
        updated_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await
    .map_err(db)?;
    store::append(
        &txn,
        id,
        now,
        vec![Entry {
            kind: "declared",
            actor: &actor(&who),
            org_id: Some(system.owner_org_id),
            text: format!(
                "Incident declared on {}: {} , severity {}, TLP:{}",
                system.name,
                category.as_str(),
                severity.get(),
                tlp.as_str().to_uppercase()
            ),
            detail: json!({"system_id": system.id, "category": category.as_str(), "severity": severity.get(), "tlp": tlp.as_str()}),
        }],
    )
    .await
    .map_err(db)?;
    txn.commit().await.map_err(db)?;

    // Alert now; when the registry cannot answer, the worker retries.
    if let Err(error) = state.assessor.assess(id).await {
        tracing::warn!(%error, "spread not assessed yet; the worker will retry");
        state.worker.notify_one();
    }
    let assessor = state.assessor.clone();
    let worker = state.worker.clone();
    tokio::spawn(async move {
        if let Err(error) = assessor.make_tasks(id).await {
            tracing::warn!(%error, "playbook tasks not made yet; the worker will retry");
            worker.notify_one();
        }
    });
    let inc = incident::Entity::find_by_id(id)
        .one(&state.db.write)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("incident"))?;
    let view = incident_view(&state.db.write, &who, inc, Disclosure::ALL).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/incidents/{id}")))
        .json(view))
}

#[utoipa::path(get, path = "/v1/incidents", tag = "emergency", params(IncidentFilter),
    responses((status = 200, description = "`{items, next}`, newest first"), (status = 400)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn list_incidents(
    state: State,
    who: Identity,
    q: web::Query<IncidentFilter>,
) -> Result<HttpResponse, ApiError> {
    let page = PageParams {
        limit: q.limit.clone(),
        cursor: q.cursor.clone(),
    }
    .page()?;
    let mut find = incident::Entity::find();
    if let Some(s) = q.status.as_deref() {
        find = find.filter(
            incident::Column::Status.eq(Status::parse("status", s).map_err(invalid)?.as_str()),
        );
    }
    if let Some(p) = query_id("platform_id", &q.platform_id)? {
        find = find.filter(incident::Column::PlatformId.eq(p));
    }
    if !who.reads_everything() {
        let Some(org) = who.org else {
            return Ok(HttpResponse::Ok().json(json!({"items": [], "next": null})));
        };
        let mut visible = Condition::any().add(incident::Column::OrgId.eq(org)).add(
            incident::Column::Id.in_subquery(
                sea_orm::sea_query::Query::select()
                    .column(affected::Column::IncidentId)
                    .from(affected::Entity)
                    .and_where(affected::Column::OrgId.eq(org))
                    .to_owned(),
            ),
        );
        visible = visible.add(
            incident::Column::Id.in_subquery(
                sea_orm::sea_query::Query::select()
                    .column(task::Column::IncidentId)
                    .from(task::Entity)
                    .and_where(task::Column::OwnerOrgId.eq(org))
                    .to_owned(),
            ),
        );
        if who.has(Role::Operator) {
            visible = visible.add(
                incident::Column::PlatformId.in_subquery(
                    sea_orm::sea_query::Query::select()
                        .column(system::Column::Id)
                        .from(system::Entity)
                        .and_where(system::Column::Kind.eq("platform"))
                        .and_where(system::Column::OwnerOrgId.eq(org))
                        .to_owned(),
                ),
            );
        }
        find = find.filter(visible);
    }
    if let Some(after) = page.after {
        find = find.filter(incident::Column::Id.lt(after));
    }
    let rows = find
        .order_by_desc(incident::Column::Id)
        .limit(page.limit + 1)
        .all(&state.db.read)
        .await
        .map_err(db)?;
    let page_rows = renkei_web::Paginated::from_rows(rows, page, |i| i.id);
    let mut items = Vec::with_capacity(page_rows.items.len());
    for inc in page_rows.items {
        let relation = access::relation(&state.db.read, &who, &inc)
            .await
            .map_err(db)?;
        let tlp = Tlp::parse("tlp", &inc.tlp).unwrap_or(Tlp::Red);
        if let Some(d) = Disclosure::of(relation, tlp) {
            items.push(incident_view(&state.db.read, &who, inc, d).await?);
        }
    }
    Ok(HttpResponse::Ok().json(json!({"items": items, "next": page_rows.next})))
}

#[utoipa::path(get, path = "/v1/incidents/{id}", tag = "emergency",
    responses((status = 200, body = IncidentView), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(incident_id = %id))]
async fn get_incident(
    state: State,
    who: Identity,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "incident")?;
    let (inc, _, disclosure) = readable(&state, &who, id).await?;
    Ok(HttpResponse::Ok().json(incident_view(&state.db.read, &who, inc, disclosure).await?))
}

#[utoipa::path(post, path = "/v1/incidents/{id}/status", tag = "emergency", request_body = StatusChange,
    responses((status = 200, body = IncidentView), (status = 400), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(incident_id = %id))]
async fn change_status(
    state: State,
    who: Identity,
    id: web::Path<String>,
    ValidJson(body): ValidJson<StatusChange>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "incident")?;
    let to = Status::parse("to", &body.to).map_err(invalid)?;
    let reason = valid_text("reason", &body.reason, 2_000, true).map_err(invalid)?;
    let txn = state.db.write.begin().await.map_err(db)?;
    let inc = actionable(&txn, &who, id, "changes an incident's status").await?;
    let from = status_of(&inc)?;
    from.move_to(to, inc.review.is_some())
        .map_err(|e| match e {
            StatusRefused::Illegal { .. } => {
                ApiError::conflict("illegal_status_change", e.to_string())
            }
            StatusRefused::ReviewMissing => ApiError::conflict("review_missing", e.to_string()),
        })?;
    let now = Utc::now();
    incident::Entity::update_many()
        .col_expr(incident::Column::Status, Expr::value(to.as_str()))
        .col_expr(incident::Column::StatusChangedAt, Expr::value(now))
        .col_expr(
            incident::Column::ClosedAt,
            Expr::value((to == Status::Closed).then_some(now)),
        )
        .col_expr(incident::Column::UpdatedAt, Expr::value(now))
        .filter(incident::Column::Id.eq(id))
        .exec(&txn)
        .await
        .map_err(db)?;
    let mut notify = vec![inc.org_id];
    notify.extend(
        store::affected_of(&txn, id)
            .await
            .map_err(db)?
            .iter()
            .map(|a| a.org_id),
    );
    if let Some(p) = system::Entity::find_by_id(inc.platform_id)
        .one(&txn)
        .await
        .map_err(db)?
    {
        notify.push(p.owner_org_id);
    }
    notify.sort();
    notify.dedup();
    state
        .outbox
        .stage(
            &txn,
            Some(inc.org_id),
            &IncidentStatusChanged {
                incident_id: id,
                platform_id: inc.platform_id,
                title: assessment::title(&inc),
                severity: Severity::new("severity", i64::from(inc.severity))
                    .map(Severity::word)
                    .unwrap_or("high")
                    .to_owned(),
                from: from.as_str().to_owned(),
                to: to.as_str().to_owned(),
                notify,
                tlp: inc.tlp.clone(),
            },
        )
        .await
        .map_err(db)?;
    store::append(
        &txn,
        id,
        now,
        vec![Entry {
            kind: "status_changed",
            actor: &actor(&who),
            org_id: None,
            text: format!("Status {} → {}: {reason}", from.as_str(), to.as_str()),
            detail: json!({"from": from.as_str(), "to": to.as_str(), "reason": reason}),
        }],
    )
    .await
    .map_err(db)?;
    state.outbox.commit(txn).await.map_err(db)?;
    let (inc, _, disclosure) = readable(&state, &who, id).await?;
    Ok(HttpResponse::Ok().json(incident_view(&state.db.write, &who, inc, disclosure).await?))
}

#[utoipa::path(get, path = "/v1/incidents/{id}/timeline", tag = "emergency", params(PageParamsDoc),
    responses((status = 200, description = "`{items, next}`, oldest first"), (status = 404)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(incident_id = %id))]
async fn get_timeline(
    state: State,
    who: Identity,
    id: web::Path<String>,
    q: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "incident")?;
    let page = q.page()?;
    let (_, _, disclosure) = readable(&state, &who, id).await?;
    let mut find = timeline::Entity::find().filter(timeline::Column::IncidentId.eq(id));
    if !disclosure.whole_timeline {
        let mut own = Condition::any().add(timeline::Column::OrgId.is_null());
        if let Some(org) = who.org {
            own = own.add(timeline::Column::OrgId.eq(org));
        }
        find = find.filter(own);
        if !disclosure.summary {
            // Under TLP:RED an affected organisation sees the course of the
            // incident and its own alert, nothing else.
            find = find.filter(timeline::Column::Kind.is_in([
                "declared",
                "status_changed",
                "alerted",
                "delivered",
                "acknowledged",
                "escalated",
            ]));
        }
    }
    if let Some(after) = page.after {
        find = find.filter(timeline::Column::Id.gt(after));
    }
    let rows = find
        .order_by_asc(timeline::Column::Id)
        .limit(page.limit + 1)
        .all(&state.db.read)
        .await
        .map_err(db)?;
    let redact = !disclosure.summary;
    Ok(HttpResponse::Ok().json(paginate(
        rows,
        page,
        |t| t.id,
        |t| TimelineEntry {
            id: t.id,
            at: t.at,
            kind: t.kind,
            actor: t.actor,
            org_id: t.org_id,
            text: if redact { String::new() } else { t.text },
            detail: if redact {
                json!({})
            } else {
                serde_json::from_str(&t.detail).unwrap_or(json!({}))
            },
            trace_id: t.trace_id,
        },
    )))
}

/// Paging parameters, for the documentation.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct PageParamsDoc {
    limit: Option<String>,
    cursor: Option<String>,
}

// ---- tasks ---------------------------------------------------------------

fn task_view(t: task::Model, now: DateTime<Utc>) -> TaskView {
    let finished = TaskState::parse("state", &t.state).is_ok_and(TaskState::is_finished);
    TaskView {
        id: t.id,
        incident_id: t.incident_id,
        position: t.position,
        title: t.title,
        control: t.control,
        description: t.description,
        owner_org_id: t.owner_org_id,
        owner_source: t.owner_source,
        overdue: !finished && t.due_at <= now,
        due_at: t.due_at,
        state: t.state,
        reason: t.reason,
        updated_by: t.updated_by,
        updated_at: t.updated_at,
        escalated_at: t.escalated_at,
    }
}

#[utoipa::path(get, path = "/v1/incidents/{id}/tasks", tag = "emergency",
    responses((status = 200, description = "`{items}` in playbook order"), (status = 404)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(incident_id = %id))]
async fn list_tasks(
    state: State,
    who: Identity,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "incident")?;
    let (_, _, disclosure) = readable(&state, &who, id).await?;
    let mut find = task::Entity::find().filter(task::Column::IncidentId.eq(id));
    if !disclosure.others {
        find = find.filter(task::Column::OwnerOrgId.eq(who.org));
    }
    let now = Utc::now();
    let items: Vec<TaskView> = find
        .order_by_asc(task::Column::Position)
        .all(&state.db.read)
        .await
        .map_err(db)?
        .into_iter()
        .map(|t| task_view(t, now))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next": null})))
}

#[utoipa::path(patch, path = "/v1/tasks/{id}", tag = "emergency", request_body = TaskChange,
    responses((status = 200, body = TaskView), (status = 400), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(task_id = %id))]
async fn change_task(
    state: State,
    who: Identity,
    id: web::Path<String>,
    ValidJson(body): ValidJson<TaskChange>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "task")?;
    let to = TaskState::parse("state", &body.state).map_err(invalid)?;
    let reason = body
        .reason
        .as_deref()
        .map(|r| valid_text("reason", r, 2_000, false))
        .transpose()
        .map_err(invalid)?
        .filter(|r| !r.is_empty());
    let txn = state.db.write.begin().await.map_err(db)?;
    let t = task::Entity::find_by_id(id)
        .lock(LockType::Update)
        .one(&txn)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("task"))?;
    let inc = incident::Entity::find_by_id(t.incident_id)
        .one(&txn)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("task"))?;
    let relation = access::relation(&txn, &who, &inc).await.map_err(db)?;
    let tlp = Tlp::parse("tlp", &inc.tlp).unwrap_or(Tlp::Red);
    let Some(disclosure) = Disclosure::of(relation, tlp) else {
        return Err(ApiError::NotFound("task"));
    };
    let owner = t.owner_org_id.is_some_and(|o| who.org == Some(o));
    if !disclosure.others && !owner {
        return Err(ApiError::NotFound("task"));
    }
    let owner_may = t
        .owner_org_id
        .is_some_and(|o| access::responder_of(&who, o))
        || (owner && who.has(Role::Operator));
    if !(owner_may || access::may_act(&txn, &who, &inc).await.map_err(db)?) {
        return Err(ApiError::Forbidden(
            "only the task's owner organisation, the declaring organisation or the platform operator moves a task".into(),
        ));
    }
    if !status_of(&inc)?.is_open() {
        return Err(ApiError::conflict(
            "incident_closed",
            "the incident is closed",
        ));
    }
    let from = TaskState::parse("state", &t.state)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored task state: {e}")))?;
    from.move_to(to, reason.as_deref()).map_err(|e| match e {
        TaskRefused::Illegal { .. } => ApiError::conflict("illegal_task_change", e.to_string()),
        TaskRefused::ReasonMissing => ApiError::invalid("reason", e.to_string()),
    })?;
    let now = Utc::now();
    task::Entity::update_many()
        .col_expr(task::Column::State, Expr::value(to.as_str()))
        .col_expr(task::Column::Reason, Expr::value(reason.clone()))
        .col_expr(task::Column::UpdatedBy, Expr::value(actor(&who)))
        .col_expr(task::Column::UpdatedAt, Expr::value(now))
        .filter(task::Column::Id.eq(id))
        .exec(&txn)
        .await
        .map_err(db)?;
    store::append(
        &txn,
        inc.id,
        now,
        vec![Entry {
            kind: "task_changed",
            actor: &actor(&who),
            org_id: t.owner_org_id,
            text: format!("Task \"{}\": {} → {}", t.title, from.as_str(), to.as_str()),
            detail: json!({"task_id": id, "from": from.as_str(), "to": to.as_str(), "reason": reason}),
        }],
    )
    .await
    .map_err(db)?;
    txn.commit().await.map_err(db)?;
    let t = task::Entity::find_by_id(id)
        .one(&state.db.write)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("task"))?;
    Ok(HttpResponse::Ok().json(task_view(t, now)))
}

// ---- playbooks -----------------------------------------------------------

fn playbook_view(p: playbook::Model) -> Result<PlaybookView, ApiError> {
    Ok(PlaybookView {
        steps: from_column("playbook steps", &p.steps).map_err(db)?,
        id: p.id,
        platform_id: p.platform_id,
        category: p.category,
        title: p.title,
        version: p.version,
        updated_by: p.updated_by,
        updated_at: p.updated_at,
    })
}

#[utoipa::path(post, path = "/v1/platforms/{platform_id}/playbooks", tag = "emergency",
    request_body = CreatePlaybook,
    responses((status = 201, body = PlaybookView), (status = 400), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(platform_id = %platform_id))]
async fn create_playbook(
    state: State,
    who: Identity,
    platform_id: web::Path<String>,
    ValidJson(body): ValidJson<CreatePlaybook>,
) -> Result<HttpResponse, ApiError> {
    let platform_id = path_id(&platform_id, "platform")?;
    let category = Category::parse("category", &body.category).map_err(invalid)?;
    let title = valid_name("title", &body.title, 300).map_err(invalid)?;
    let steps = valid_steps(body.steps).map_err(invalid)?;
    platforms(&state)
        .operated(&who, platform_id, "writes playbooks")
        .await?;
    let now = Utc::now();
    let model = playbook::ActiveModel {
        id: Set(Uuid::now_v7()),
        platform_id: Set(platform_id),
        category: Set(category.as_str().to_owned()),
        title: Set(title),
        steps: Set(to_column(&steps).map_err(db)?),
        version: Set(1),
        updated_by: Set(actor(&who)),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let exists = playbook::Entity::find()
        .filter(playbook::Column::PlatformId.eq(platform_id))
        .filter(playbook::Column::Category.eq(category.as_str()))
        .one(&state.db.write)
        .await
        .map_err(db)?;
    if let Some(p) = exists {
        return Err(ApiError::conflict(
            "playbook_exists",
            format!(
                "the platform has a {} playbook already ({}); change it with PUT /v1/playbooks/{}",
                category.as_str(),
                p.id,
                p.id
            ),
        ));
    }
    let saved = playbook::Entity::insert(model)
        .exec_with_returning(&state.db.write)
        .await
        .map_err(|e| match e.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => ApiError::conflict(
                "playbook_exists",
                "the platform has a playbook for this category already",
            ),
            _ => db(e),
        })?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/playbooks/{}", saved.id)))
        .json(playbook_view(saved)?))
}

#[utoipa::path(get, path = "/v1/platforms/{platform_id}/playbooks", tag = "emergency",
    responses((status = 200, description = "`{items}` by category"), (status = 404)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(platform_id = %platform_id))]
async fn list_playbooks(
    state: State,
    who: Identity,
    platform_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let platform_id = path_id(&platform_id, "platform")?;
    platforms(&state).readable(&who, platform_id).await?;
    let items = playbook::Entity::find()
        .filter(playbook::Column::PlatformId.eq(platform_id))
        .order_by_asc(playbook::Column::Category)
        .all(&state.db.read)
        .await
        .map_err(db)?
        .into_iter()
        .map(playbook_view)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(json!({"items": items, "next": null})))
}

async fn find_playbook(
    state: &EmergencyState,
    who: &Identity,
    id: Uuid,
) -> Result<playbook::Model, ApiError> {
    let p = playbook::Entity::find_by_id(id)
        .one(&state.db.read)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("playbook"))?;
    platforms(state)
        .readable(who, p.platform_id)
        .await
        .map_err(|_| ApiError::NotFound("playbook"))?;
    Ok(p)
}

#[utoipa::path(get, path = "/v1/playbooks/{id}", tag = "emergency",
    responses((status = 200, body = PlaybookView), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(playbook_id = %id))]
async fn get_playbook(
    state: State,
    who: Identity,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "playbook")?;
    Ok(HttpResponse::Ok().json(playbook_view(find_playbook(&state, &who, id).await?)?))
}

#[utoipa::path(put, path = "/v1/playbooks/{id}", tag = "emergency", request_body = UpdatePlaybook,
    responses((status = 200, body = PlaybookView), (status = 400), (status = 403), (status = 404)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(playbook_id = %id))]
async fn update_playbook(
    state: State,
    who: Identity,
    id: web::Path<String>,
    ValidJson(body): ValidJson<UpdatePlaybook>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "playbook")?;
    let title = valid_name("title", &body.title, 300).map_err(invalid)?;
    let steps = valid_steps(body.steps).map_err(invalid)?;
    let p = find_playbook(&state, &who, id).await?;
    platforms(&state)
        .operated(&who, p.platform_id, "writes playbooks")
        .await?;
    playbook::Entity::update_many()
        .col_expr(playbook::Column::Title, Expr::value(title))
        .col_expr(
            playbook::Column::Steps,
            Expr::value(to_column(&steps).map_err(db)?),
        )
        .col_expr(
            playbook::Column::Version,
            Expr::col(playbook::Column::Version).add(Expr::value(1)),
        )
        .col_expr(playbook::Column::UpdatedBy, Expr::value(actor(&who)))
        .col_expr(playbook::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(playbook::Column::Id.eq(id))
        .exec(&state.db.write)
        .await
        .map_err(db)?;
    let p = playbook::Entity::find_by_id(id)
        .one(&state.db.write)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("playbook"))?;
    Ok(HttpResponse::Ok().json(playbook_view(p)?))
}

// ---- reports -------------------------------------------------------------

fn report_view(r: report::Model) -> Result<ReportView, ApiError> {
    Ok(ReportView {
        content: from_column("report", &r.content).map_err(db)?,
        id: r.id,
        incident_id: r.incident_id,
        kind: r.kind,
        state: r.state,
        org_id: r.org_id,
        created_by: r.created_by,
        created_at: r.created_at,
        updated_at: r.updated_at,
        filed_at: r.filed_at,
        filed_by: r.filed_by,
    })
}

/// Generates a report's content from the incident as it stands.
async fn facts<C: ConnectionTrait>(conn: &C, inc: &incident::Model) -> Result<Facts, DbErr> {
    let rows = store::affected_of(conn, inc.id).await?;
    let tasks = task::Entity::find()
        .filter(task::Column::IncidentId.eq(inc.id))
        .order_by_asc(task::Column::Position)
        .all(conn)
        .await?;
    let mut org_ids: Vec<Uuid> = rows.iter().map(|a| a.org_id).collect();
    org_ids.extend(tasks.iter().filter_map(|t| t.owner_org_id));
    let orgs = store::org_names(conn, &org_ids).await?;
    let mut system_ids = vec![inc.system_id];
    let mut per_org = Vec::new();
    for a in &rows {
        let ids: Vec<Uuid> = from_column("affected systems", &a.system_ids)?;
        system_ids.extend(ids.iter().copied());
        per_org.push((a, ids));
    }
    let systems = store::system_names(conn, &system_ids).await?;
    let name =
        |m: &HashMap<Uuid, String>, id: &Uuid| m.get(id).cloned().unwrap_or_else(|| id.to_string());
    let timeline = timeline::Entity::find()
        .filter(timeline::Column::IncidentId.eq(inc.id))
        .filter(timeline::Column::Kind.is_in([
            "declared",
            "assessed",
            "status_changed",
            "task_changed",
            "acknowledged",
            "report_filed",
        ]))
        .order_by_asc(timeline::Column::Id)
        .limit(500)
        .all(conn)
        .await?;
    Ok(Facts {
        summary: inc.summary.clone(),
        system: name(&systems, &inc.system_id),
        category: inc.category.clone(),
        severity: inc.severity as u8,
        tlp: inc.tlp.clone(),
        status: inc.status.clone(),
        detected_at: inc.detected_at,
        declared_at: inc.declared_at,
        affected: per_org
            .into_iter()
            .map(|(a, ids)| AffectedLine {
                organization: name(&orgs, &a.org_id),
                systems: ids.iter().map(|s| name(&systems, s)).collect(),
                acknowledged: a.acknowledged_at.is_some(),
            })
            .collect(),
        timeline: timeline
            .into_iter()
            .map(|t| TimelineLine {
                at: t.at,
                what: t.text,
            })
            .collect(),
        tasks: tasks
            .into_iter()
            .map(|t| {
                (
                    t.title,
                    t.owner_org_id
                        .map_or_else(|| "-".to_owned(), |o| name(&orgs, &o)),
                    t.state,
                )
            })
            .collect(),
    })
}

#[utoipa::path(post, path = "/v1/incidents/{id}/reports", tag = "emergency", request_body = CreateReport,
    responses((status = 201, body = ReportView), (status = 400), (status = 403), (status = 404)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(incident_id = %id))]
async fn create_report(
    state: State,
    who: Identity,
    id: web::Path<String>,
    ValidJson(body): ValidJson<CreateReport>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "incident")?;
    let kind = ReportKind::parse("kind", &body.kind).map_err(invalid)?;
    let txn = state.db.write.begin().await.map_err(db)?;
    let inc = actionable(&txn, &who, id, "writes reports").await?;
    let existing = report::Entity::find()
        .filter(report::Column::IncidentId.eq(id))
        .filter(report::Column::Kind.eq(ReportKind::Initial.as_str()))
        .all(&txn)
        .await
        .map_err(db)?;
    kind.may_start(
        status_of(&inc)?,
        existing.iter().any(|r| r.state == "filed"),
        !existing.is_empty(),
    )
    .map_err(invalid)?;
    let content = ReportContent::draft(facts(&txn, &inc).await.map_err(db)?);
    let now = Utc::now();
    let saved = report::Entity::insert(report::ActiveModel {
        id: Set(Uuid::now_v7()),
        incident_id: Set(id),
        kind: Set(kind.as_str().to_owned()),
        state: Set("draft".into()),
        content: Set(to_column(&content).map_err(db)?),
        org_id: Set(inc.org_id),
        created_by: Set(actor(&who)),
        created_at: Set(now),
        updated_at: Set(now),
        filed_at: Set(None),
        filed_by: Set(None),
    })
    .exec_with_returning(&txn)
    .await
    .map_err(db)?;
    txn.commit().await.map_err(db)?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/reports/{}", saved.id)))
        .json(report_view(saved)?))
}

#[utoipa::path(get, path = "/v1/incidents/{id}/reports", tag = "emergency",
    responses((status = 200, description = "`{items}`"), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(incident_id = %id))]
async fn list_incident_reports(
    state: State,
    who: Identity,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "incident")?;
    let (inc, relation, _) = readable(&state, &who, id).await?;
    let mut find = report::Entity::find().filter(report::Column::IncidentId.eq(id));
    if relation == Relation::Affected {
        // Reports are the declaring organisation's account to the central body.
        return Ok(HttpResponse::Ok().json(json!({"items": [], "next": null})));
    }
    if !access::may_act(&state.db.read, &who, &inc)
        .await
        .map_err(db)?
    {
        find = find.filter(report::Column::State.eq("filed"));
    }
    let items = find
        .order_by_asc(report::Column::Id)
        .all(&state.db.read)
        .await
        .map_err(db)?
        .into_iter()
        .map(report_view)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(json!({"items": items, "next": null})))
}

#[utoipa::path(get, path = "/v1/reports", tag = "emergency", params(ReportFilter),
    responses((status = 200, description = "`{items, next}`: every filed report for the central body; otherwise the reports of incidents the caller acts on")),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn list_reports(
    state: State,
    who: Identity,
    q: web::Query<ReportFilter>,
) -> Result<HttpResponse, ApiError> {
    let page = PageParams {
        limit: q.limit.clone(),
        cursor: q.cursor.clone(),
    }
    .page()?;
    let mut find = report::Entity::find();
    if let Some(s) = q.state.as_deref() {
        if !matches!(s, "draft" | "filed") {
            return Err(ApiError::invalid("state", "must be draft or filed"));
        }
        find = find.filter(report::Column::State.eq(s));
    }
    if who.reads_everything() {
        find = find.filter(report::Column::State.eq("filed"));
    } else {
        let Some(org) = who.org else {
            return Ok(HttpResponse::Ok().json(json!({"items": [], "next": null})));
        };
        let mut acts = Condition::any().add(report::Column::OrgId.eq(org));
        if who.has(Role::Operator) {
            // The operator acts on every incident of the platforms it operates.
            acts = acts.add(
                report::Column::IncidentId.in_subquery(
                    sea_orm::sea_query::Query::select()
                        .column(incident::Column::Id)
                        .from(incident::Entity)
                        .and_where(
                            incident::Column::PlatformId.in_subquery(
                                sea_orm::sea_query::Query::select()
                                    .column(system::Column::Id)
                                    .from(system::Entity)
                                    .and_where(system::Column::Kind.eq("platform"))
                                    .and_where(system::Column::OwnerOrgId.eq(org))
                                    .to_owned(),
                            ),
                        )
                        .to_owned(),
                ),
            );
        }
        find = find.filter(acts);
    }
    if let Some(after) = page.after {
        find = find.filter(report::Column::Id.gt(after));
    }
    let rows = find
        .order_by_asc(report::Column::Id)
        .limit(page.limit + 1)
        .all(&state.db.read)
        .await
        .map_err(db)?;
    let page = renkei_web::Paginated::from_rows(rows, page, |r| r.id);
    let items = page
        .items
        .into_iter()
        .map(report_view)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(json!({"items": items, "next": page.next})))
}

/// A report `who` may read: its incident's actors, and for a filed one the
/// central body too.
async fn readable_report(
    state: &EmergencyState,
    who: &Identity,
    id: Uuid,
) -> Result<(report::Model, incident::Model, bool), ApiError> {
    let r = report::Entity::find_by_id(id)
        .one(&state.db.read)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("report"))?;
    let inc = incident::Entity::find_by_id(r.incident_id)
        .one(&state.db.read)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("report"))?;
    let acts = access::may_act(&state.db.read, who, &inc)
        .await
        .map_err(db)?;
    let reads = acts
        || (r.state == "filed" && who.reads_everything())
        || (r.state == "filed"
            && access::relation(&state.db.read, who, &inc)
                .await
                .map_err(db)?
                == Relation::Coordinator);
    if !reads {
        return Err(ApiError::NotFound("report"));
    }
    Ok((r, inc, acts))
}

#[utoipa::path(get, path = "/v1/reports/{id}", tag = "emergency",
    responses((status = 200, body = ReportView), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(report_id = %id))]
async fn get_report(
    state: State,
    who: Identity,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "report")?;
    let (r, _, _) = readable_report(&state, &who, id).await?;
    Ok(HttpResponse::Ok().json(report_view(r)?))
}

#[utoipa::path(patch, path = "/v1/reports/{id}", tag = "emergency", request_body = EditReport,
    responses((status = 200, body = ReportView), (status = 400), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(report_id = %id))]
async fn edit_report(
    state: State,
    who: Identity,
    id: web::Path<String>,
    ValidJson(body): ValidJson<EditReport>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "report")?;
    let text = |field: &str, v: &Option<String>| {
        v.as_deref()
            .map(|t| valid_text(field, t, 20_000, false))
            .transpose()
            .map_err(invalid)
    };
    let what = text("what_happened", &body.what_happened)?;
    let measures = text("measures_taken", &body.measures_taken)?;
    let notes = text("notes", &body.notes)?;
    let (r, _, acts) = readable_report(&state, &who, id).await?;
    if !acts {
        return Err(ApiError::Forbidden(
            "only the reporting organisation edits its report".into(),
        ));
    }
    if r.state != "draft" {
        return Err(ApiError::conflict(
            "report_filed",
            "a filed report cannot be changed; write a follow_up",
        ));
    }
    let mut content: ReportContent = from_column("report", &r.content).map_err(db)?;
    if let Some(w) = what {
        content.what_happened = w;
    }
    if let Some(m) = measures {
        content.measures_taken = m;
    }
    if let Some(n) = notes {
        content.notes = n;
    }
    report::Entity::update_many()
        .col_expr(
            report::Column::Content,
            Expr::value(to_column(&content).map_err(db)?),
        )
        .col_expr(report::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(report::Column::Id.eq(id))
        .filter(report::Column::State.eq("draft"))
        .exec(&state.db.write)
        .await
        .map_err(db)?;
    let r = report::Entity::find_by_id(id)
        .one(&state.db.write)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("report"))?;
    Ok(HttpResponse::Ok().json(report_view(r)?))
}

#[utoipa::path(post, path = "/v1/reports/{id}/file", tag = "emergency",
    responses((status = 200, body = ReportView), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(report_id = %id))]
async fn file_report(
    state: State,
    who: Identity,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "report")?;
    let (r, _, acts) = readable_report(&state, &who, id).await?;
    if !acts {
        return Err(ApiError::Forbidden(
            "only the reporting organisation files its report".into(),
        ));
    }
    let txn = state.db.write.begin().await.map_err(db)?;
    let inc = actionable(&txn, &who, r.incident_id, "files reports").await?;
    let now = Utc::now();
    let filed = report::Entity::update_many()
        .col_expr(report::Column::State, Expr::value("filed"))
        .col_expr(report::Column::FiledAt, Expr::value(now))
        .col_expr(report::Column::FiledBy, Expr::value(actor(&who)))
        .col_expr(report::Column::UpdatedAt, Expr::value(now))
        .filter(report::Column::Id.eq(id))
        .filter(report::Column::State.eq("draft"))
        .exec(&txn)
        .await
        .map_err(db)?
        .rows_affected;
    if filed == 0 {
        return Err(ApiError::conflict(
            "report_filed",
            "the report is filed already",
        ));
    }
    if r.kind == ReportKind::Initial.as_str() {
        incident::Entity::update_many()
            .col_expr(
                incident::Column::ReportDueAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(incident::Column::Id.eq(inc.id))
            .exec(&txn)
            .await
            .map_err(db)?;
    }
    let central = store::central_bodies(&txn).await.map_err(db)?;
    state
        .outbox
        .stage(
            &txn,
            Some(inc.org_id),
            &ReportFiled {
                report_id: id,
                incident_id: inc.id,
                platform_id: inc.platform_id,
                incident_title: assessment::title(&inc),
                kind: r.kind.clone(),
                tlp: inc.tlp.clone(),
                filed_by: inc.org_id,
                notify: central,
            },
        )
        .await
        .map_err(db)?;
    store::append(
        &txn,
        inc.id,
        now,
        vec![Entry {
            kind: "report_filed",
            actor: &actor(&who),
            org_id: None,
            text: format!("{} report filed with the central body", r.kind),
            detail: json!({"report_id": id, "kind": r.kind}),
        }],
    )
    .await
    .map_err(db)?;
    state.outbox.commit(txn).await.map_err(db)?;
    let r = report::Entity::find_by_id(id)
        .one(&state.db.write)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("report"))?;
    Ok(HttpResponse::Ok().json(report_view(r)?))
}

// ---- review --------------------------------------------------------------

#[utoipa::path(put, path = "/v1/incidents/{id}/review", tag = "emergency", request_body = Review,
    responses((status = 200, body = IncidentView), (status = 400), (status = 403), (status = 404)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(incident_id = %id))]
async fn put_review(
    state: State,
    who: Identity,
    id: web::Path<String>,
    ValidJson(body): ValidJson<Review>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "incident")?;
    let txn = state.db.write.begin().await.map_err(db)?;
    let inc = actionable(&txn, &who, id, "writes the post-incident review").await?;
    let (participants, _) = participants(&txn, &inc).await.map_err(db)?;
    let review = body.valid(&participants).map_err(invalid)?;
    let now = Utc::now();
    incident::Entity::update_many()
        .col_expr(
            incident::Column::Review,
            Expr::value(to_column(&review).map_err(db)?),
        )
        .col_expr(incident::Column::UpdatedAt, Expr::value(now))
        .filter(incident::Column::Id.eq(id))
        .exec(&txn)
        .await
        .map_err(db)?;
    let open = review.actions.iter().filter(|a| a.state == "open").count();
    store::append(
        &txn,
        id,
        now,
        vec![Entry {
            kind: "reviewed",
            actor: &actor(&who),
            org_id: None,
            text: format!(
                "Post-incident review recorded: {} action(s), {open} open",
                review.actions.len()
            ),
            detail: json!({"actions": review.actions.len(), "open": open}),
        }],
    )
    .await
    .map_err(db)?;
    txn.commit().await.map_err(db)?;
    let (inc, _, disclosure) = readable(&state, &who, id).await?;
    Ok(HttpResponse::Ok().json(incident_view(&state.db.write, &who, inc, disclosure).await?))
}

// ---- coordination messages ----------------------------------------------

async fn message_views<C: ConnectionTrait>(
    conn: &C,
    messages: Vec<message::Model>,
    only_org: Option<Uuid>,
) -> Result<Vec<MessageView>, DbErr> {
    let ids: Vec<Uuid> = messages.iter().map(|m| m.id).collect();
    let mut recipients: HashMap<Uuid, Vec<message_recipient::Model>> = HashMap::new();
    for chunk in ids.chunks(500) {
        for r in message_recipient::Entity::find()
            .filter(message_recipient::Column::MessageId.is_in(chunk.iter().copied()))
            .order_by_asc(message_recipient::Column::Id)
            .all(conn)
            .await?
        {
            recipients.entry(r.message_id).or_default().push(r);
        }
    }
    let orgs: Vec<Uuid> = recipients.values().flatten().map(|r| r.org_id).collect();
    let names = store::org_names(conn, &orgs).await?;
    Ok(messages
        .into_iter()
        .map(|m| MessageView {
            subject: subjects::incident_messages(m.incident_id),
            recipients: recipients
                .remove(&m.id)
                .unwrap_or_default()
                .into_iter()
                .filter(|r| only_org.is_none_or(|o| o == r.org_id))
                .map(|r| RecipientView {
                    org_name: names
                        .get(&r.org_id)
                        .cloned()
                        .unwrap_or_else(|| r.org_id.to_string()),
                    org_id: r.org_id,
                    delivered: r.delivered_at.is_some(),
                    delivered_at: r.delivered_at,
                    acknowledged: r.acknowledged_at.is_some(),
                    acknowledged_by: r.acknowledged_by,
                    acknowledged_at: r.acknowledged_at,
                })
                .collect(),
            id: m.id,
            incident_id: m.incident_id,
            from_org_id: m.from_org_id,
            author: m.author,
            kind: m.kind,
            text: m.text,
            tlp: m.tlp,
            urgency: m.urgency,
            ack_required: m.ack_required,
            created_at: m.created_at,
        })
        .collect())
}

#[utoipa::path(post, path = "/v1/incidents/{id}/messages", tag = "emergency", request_body = PostMessage,
    responses((status = 201, body = MessageView), (status = 400), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(incident_id = %id))]
async fn post_message(
    state: State,
    who: Identity,
    id: web::Path<String>,
    ValidJson(body): ValidJson<PostMessage>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "incident")?;
    let kind = MessageKind::parse("kind", &body.kind).map_err(invalid)?;
    let text = valid_text("text", &body.text, 10_000, true).map_err(invalid)?;
    let urgency = body
        .urgency
        .as_deref()
        .map(|u| Urgency::parse("urgency", u))
        .transpose()
        .map_err(invalid)?
        .unwrap_or(Urgency::Emergency);
    let (inc, relation, _) = readable(&state, &who, id).await?;
    let incident_tlp = Tlp::parse("tlp", &inc.tlp).unwrap_or(Tlp::Red);
    let tlp = match body.tlp.as_deref() {
        Some(t) => Tlp::parse("tlp", t)
            .and_then(|t| t.no_looser_than("tlp", incident_tlp))
            .map_err(invalid)?,
        None => incident_tlp,
    };
    let Some(sender) = who.org else {
        return Err(ApiError::Forbidden(
            "coordination messages are sent on behalf of an organisation".into(),
        ));
    };
    if who.has(Role::Auditor) && !who.has(Role::Central) && relation == Relation::Coordinator {
        return Err(ApiError::Forbidden(
            "auditors read; they do not send messages".into(),
        ));
    }
    if !status_of(&inc)?.is_open() {
        return Err(ApiError::conflict(
            "incident_closed",
            "the incident is closed",
        ));
    }
    let (participants, central) = participants(&state.db.read, &inc).await.map_err(db)?;
    if !participants.contains(&sender) {
        return Err(ApiError::Forbidden(
            "only the incident's participants exchange messages on it".into(),
        ));
    }
    let to = addressees(
        kind,
        body.to_org_ids.as_deref(),
        &participants,
        &central,
        sender,
    )
    .map_err(invalid)?;
    if to.is_empty() {
        return Err(ApiError::invalid(
            "to_org_ids",
            "nobody to address: the incident has no other participant",
        ));
    }
    let ack_required = body.ack_required.unwrap_or(true);
    let now = Utc::now();
    let message_id = Uuid::now_v7();
    let txn = state.db.write.begin().await.map_err(db)?;
    message::Entity::insert(message::ActiveModel {
        id: Set(message_id),
        incident_id: Set(id),
        from_org_id: Set(sender),
        author: Set(actor(&who)),
        kind: Set(kind.as_str().to_owned()),
        text: Set(text.clone()),
        tlp: Set(tlp.as_str().to_owned()),
        urgency: Set(urgency.as_str().to_owned()),
        ack_required: Set(ack_required),
        created_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await
    .map_err(db)?;
    message_recipient::Entity::insert_many(to.iter().map(|org| message_recipient::ActiveModel {
        id: Set(Uuid::now_v7()),
        message_id: Set(message_id),
        incident_id: Set(id),
        org_id: Set(*org),
        delivered_at: Set(None),
        acknowledged_at: Set(None),
        acknowledged_by: Set(None),
    }))
    .exec_without_returning(&txn)
    .await
    .map_err(db)?;
    state
        .outbox
        .stage_on(
            &txn,
            Some(sender),
            subjects::incident_messages(id),
            &MessagePosted {
                message_id,
                incident_id: id,
                platform_id: inc.platform_id,
                incident_title: assessment::title(&inc),
                kind: kind.as_str().to_owned(),
                text,
                tlp: tlp.as_str().to_owned(),
                urgency: urgency.as_str().to_owned(),
                ack_required,
                from_organization_id: sender,
                to: to.clone(),
            },
        )
        .await
        .map_err(db)?;
    store::append(
        &txn,
        id,
        now,
        vec![Entry {
            kind: "message_posted",
            actor: &actor(&who),
            org_id: None,
            text: format!("{} message to {} organisation(s)", kind.as_str(), to.len()),
            detail: json!({"message_id": message_id, "kind": kind.as_str(), "to": to, "urgency": urgency.as_str()}),
        }],
    )
    .await
    .map_err(db)?;
    state.outbox.commit(txn).await.map_err(db)?;
    let m = message::Entity::find_by_id(message_id)
        .one(&state.db.write)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("message"))?;
    let view = message_views(&state.db.write, vec![m], None)
        .await
        .map_err(db)?
        .pop()
        .ok_or(ApiError::NotFound("message"))?;
    Ok(HttpResponse::Created().json(view))
}

#[utoipa::path(get, path = "/v1/incidents/{id}/messages", tag = "emergency", params(PageParamsDoc),
    responses((status = 200, description = "`{items, next}`, oldest first, each with its recipients' delivery and acknowledgement"), (status = 404)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(incident_id = %id))]
async fn list_messages(
    state: State,
    who: Identity,
    id: web::Path<String>,
    q: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "incident")?;
    let page = q.page()?;
    let (_, _, disclosure) = readable(&state, &who, id).await?;
    let mut find = message::Entity::find().filter(message::Column::IncidentId.eq(id));
    let only_org = if disclosure.others { None } else { who.org };
    if let Some(org) = only_org {
        find = find.filter(
            Condition::any()
                .add(message::Column::FromOrgId.eq(org))
                .add(
                    message::Column::Id.in_subquery(
                        sea_orm::sea_query::Query::select()
                            .column(message_recipient::Column::MessageId)
                            .from(message_recipient::Entity)
                            .and_where(message_recipient::Column::OrgId.eq(org))
                            .to_owned(),
                    ),
                ),
        );
    }
    if let Some(after) = page.after {
        find = find.filter(message::Column::Id.gt(after));
    }
    let rows = find
        .order_by_asc(message::Column::Id)
        .limit(page.limit + 1)
        .all(&state.db.read)
        .await
        .map_err(db)?;
    let page = renkei_web::Paginated::from_rows(rows, page, |m| m.id);
    let items = message_views(&state.db.read, page.items, only_org)
        .await
        .map_err(db)?;
    Ok(HttpResponse::Ok().json(json!({"items": items, "next": page.next})))
}

// ---- advisories ----------------------------------------------------------

async fn advisory_view<C: ConnectionTrait>(
    conn: &C,
    a: advisory::Model,
    only_org: Option<Uuid>,
) -> Result<AdvisoryView, DbErr> {
    let rows = advisory_recipient::Entity::find()
        .filter(advisory_recipient::Column::AdvisoryId.eq(a.id))
        .order_by_asc(advisory_recipient::Column::Id)
        .all(conn)
        .await?;
    let organizations = rows.len();
    let confirmed = rows.iter().filter(|r| r.confirmed_at.is_some()).count();
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| only_org.is_none_or(|o| o == r.org_id))
        .collect();
    let ids: Vec<Uuid> = rows.iter().map(|r| r.org_id).collect();
    let names = store::org_names(conn, &ids).await?;
    Ok(AdvisoryView {
        id: a.id,
        platform_id: a.platform_id,
        title: a.title,
        text: a.text,
        tlp: a.tlp,
        severity: a.severity,
        act_by: a.act_by,
        issued_by_org: a.issued_by_org,
        issued_by: a.issued_by,
        created_at: a.created_at,
        confirmed,
        organizations,
        confirmations: rows
            .into_iter()
            .map(|r| ConfirmationView {
                org_name: names
                    .get(&r.org_id)
                    .cloned()
                    .unwrap_or_else(|| r.org_id.to_string()),
                org_id: r.org_id,
                delivered: r.delivered_at.is_some(),
                delivered_at: r.delivered_at,
                confirmed: r.confirmed_at.is_some(),
                confirmed_by: r.confirmed_by,
                confirmed_at: r.confirmed_at,
                escalated: r.escalated_at.is_some(),
            })
            .collect(),
    })
}

#[utoipa::path(post, path = "/v1/advisories", tag = "emergency", request_body = IssueAdvisory,
    responses((status = 201, body = AdvisoryView), (status = 400), (status = 403), (status = 404)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn issue_advisory(
    state: State,
    who: Identity,
    ValidJson(body): ValidJson<IssueAdvisory>,
) -> Result<HttpResponse, ApiError> {
    let title = valid_name("title", &body.title, 300).map_err(invalid)?;
    let text = valid_text("text", &body.text, 20_000, true).map_err(invalid)?;
    let tlp = Tlp::parse("tlp", &body.tlp).map_err(invalid)?;
    let severity = Severity::new("severity", body.severity).map_err(invalid)?;
    let now = Utc::now();
    valid_advisory(body.act_by, now).map_err(invalid)?;
    let Some(issuer) = who.org else {
        return Err(ApiError::Forbidden(
            "advisories are issued on behalf of an organisation".into(),
        ));
    };
    let central = who.has(Role::Central);
    let orgs: Vec<Uuid> = match body.platform_id {
        None if !central => {
            return Err(ApiError::invalid(
                "platform_id",
                "only the central body issues advisories to every platform; name the platform",
            ));
        }
        None => system::Entity::find()
            .select_only()
            .column(system::Column::OwnerOrgId)
            .distinct()
            .into_tuple()
            .all(&state.db.read)
            .await
            .map_err(db)?,
        Some(platform_id) => {
            if !central {
                platforms(&state)
                    .operated(&who, platform_id, "or the central body issues advisories")
                    .await?;
            } else {
                platforms(&state).readable(&who, platform_id).await?;
            }
            system::Entity::find()
                .select_only()
                .column(system::Column::OwnerOrgId)
                .distinct()
                .filter(
                    Condition::any()
                        .add(system::Column::PlatformId.eq(platform_id))
                        .add(system::Column::Id.eq(platform_id)),
                )
                .into_tuple()
                .all(&state.db.read)
                .await
                .map_err(db)?
        }
    };
    let mut orgs = orgs;
    orgs.sort();
    orgs.dedup();
    let known: std::collections::HashSet<Uuid> = organization::Entity::find()
        .filter(organization::Column::Kind.eq("central_body"))
        .all(&state.db.read)
        .await
        .map_err(db)?
        .into_iter()
        .map(|o| o.id)
        .collect();
    orgs.retain(|o| !known.contains(o));
    let id = Uuid::now_v7();
    let txn = state.db.write.begin().await.map_err(db)?;
    advisory::Entity::insert(advisory::ActiveModel {
        id: Set(id),
        platform_id: Set(body.platform_id),
        title: Set(title.clone()),
        text: Set(text.clone()),
        tlp: Set(tlp.as_str().to_owned()),
        severity: Set(i32::from(severity.get())),
        act_by: Set(body.act_by),
        issued_by_org: Set(issuer),
        issued_by: Set(actor(&who)),
        created_at: Set(now),
        escalated_at: Set(None),
    })
    .exec_without_returning(&txn)
    .await
    .map_err(db)?;
    for chunk in orgs.chunks(300) {
        advisory_recipient::Entity::insert_many(chunk.iter().map(|org| {
            advisory_recipient::ActiveModel {
                id: Set(Uuid::now_v7()),
                advisory_id: Set(id),
                org_id: Set(*org),
                delivered_at: Set(None),
                confirmed_at: Set(None),
                confirmed_by: Set(None),
                escalated_at: Set(None),
            }
        }))
        .exec_without_returning(&txn)
        .await
        .map_err(db)?;
    }
    state
        .outbox
        .stage(
            &txn,
            Some(issuer),
            &AdvisoryIssued {
                advisory_id: id,
                platform_id: body.platform_id,
                title,
                text,
                tlp: tlp.as_str().to_owned(),
                severity: severity.word().to_owned(),
                act_by: body.act_by,
                issued_by: issuer,
                organizations: orgs,
            },
        )
        .await
        .map_err(db)?;
    state.outbox.commit(txn).await.map_err(db)?;
    state.worker.notify_one();
    let a = advisory::Entity::find_by_id(id)
        .one(&state.db.write)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("advisory"))?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/advisories/{id}")))
        .json(advisory_view(&state.db.write, a, None).await.map_err(db)?))
}

/// Whether `who` sees every organisation's confirmation of `a`.
fn sees_all(who: &Identity, a: &advisory::Model) -> bool {
    who.reads_everything() || who.org == Some(a.issued_by_org)
}

#[utoipa::path(get, path = "/v1/advisories", tag = "emergency", params(PageParamsDoc),
    responses((status = 200, description = "`{items, next}`, newest first")), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn list_advisories(
    state: State,
    who: Identity,
    q: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let page = q.page()?;
    let mut find = advisory::Entity::find();
    if !who.reads_everything() {
        let Some(org) = who.org else {
            return Ok(HttpResponse::Ok().json(json!({"items": [], "next": null})));
        };
        find = find.filter(
            Condition::any()
                .add(advisory::Column::IssuedByOrg.eq(org))
                .add(
                    advisory::Column::Id.in_subquery(
                        sea_orm::sea_query::Query::select()
                            .column(advisory_recipient::Column::AdvisoryId)
                            .from(advisory_recipient::Entity)
                            .and_where(advisory_recipient::Column::OrgId.eq(org))
                            .to_owned(),
                    ),
                ),
        );
    }
    if let Some(after) = page.after {
        find = find.filter(advisory::Column::Id.lt(after));
    }
    let rows = find
        .order_by_desc(advisory::Column::Id)
        .limit(page.limit + 1)
        .all(&state.db.read)
        .await
        .map_err(db)?;
    let page = renkei_web::Paginated::from_rows(rows, page, |a| a.id);
    let mut items = Vec::with_capacity(page.items.len());
    for a in page.items {
        let only = if sees_all(&who, &a) { None } else { who.org };
        items.push(advisory_view(&state.db.read, a, only).await.map_err(db)?);
    }
    Ok(HttpResponse::Ok().json(json!({"items": items, "next": page.next})))
}

#[utoipa::path(get, path = "/v1/advisories/{id}", tag = "emergency",
    responses((status = 200, body = AdvisoryView), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(advisory_id = %id))]
async fn get_advisory(
    state: State,
    who: Identity,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "advisory")?;
    let a = advisory::Entity::find_by_id(id)
        .one(&state.db.read)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("advisory"))?;
    let only = if sees_all(&who, &a) {
        None
    } else {
        let Some(org) = who.org else {
            return Err(ApiError::NotFound("advisory"));
        };
        let mine = advisory_recipient::Entity::find()
            .filter(advisory_recipient::Column::AdvisoryId.eq(id))
            .filter(advisory_recipient::Column::OrgId.eq(org))
            .one(&state.db.read)
            .await
            .map_err(db)?;
        if mine.is_none() {
            return Err(ApiError::NotFound("advisory"));
        }
        Some(org)
    };
    Ok(HttpResponse::Ok().json(advisory_view(&state.db.read, a, only).await.map_err(db)?))
}
