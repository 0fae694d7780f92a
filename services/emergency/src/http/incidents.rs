//! Incidents: declaring one, listing and reading them, moving their
//! status, their timeline and the post-incident review.

use actix_web::{HttpResponse, web};
use chrono::Utc;
use renkei_bus::contracts::emergency::IncidentStatusChanged;
use renkei_bus::registry_copy;
use renkei_store::json::{from_column, to_column};
use renkei_web::error::{db, invalid, path_id, query_id};
use renkei_web::pagination::paginate;
use renkei_web::{ApiError, Identity, PageParams, Role, ValidJson};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use serde_json::json;
use tracing::Instrument as _;
use uuid::Uuid;

use super::PageParamsDoc;
use super::common::{
    State, actionable, actor, ids_where, lookup, operated_platforms, participants, platforms,
    readable, status_of,
};
use super::dto::*;
use crate::access;
use crate::assessment;
use crate::domain::{
    Category, Disclosure, Review, Severity, Status, StatusRefused, Tlp, valid_text,
};
use crate::store::{self, Entry, affected, incident, system, task, timeline};

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

#[utoipa::path(post, path = "/v1/incidents", tag = "emergency", request_body = DeclareIncident,
    responses((status = 201, body = IncidentView), (status = 400), (status = 403), (status = 404),
              (status = 422), (status = 503)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(incident_id, system_id = %body.0.system_id))]
pub(super) async fn declare(
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
    let done = renkei_audit::Action::new("incident.declared", id)
        .of(system.owner_org_id)
        .detail(json!({"system_id": system.id, "category": category.as_str(), "severity": severity.get(), "tlp": tlp.as_str()}));
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    txn.commit().await.map_err(db)?;

    // Alert now; when the registry cannot answer, the worker retries.
    if let Err(error) = state.assessor.assess(id).await {
        tracing::warn!(%error, "spread not assessed yet; the worker will retry");
        state.worker.notify_one();
    }
    let assessor = state.assessor.clone();
    let worker = state.worker.clone();
    // In the declaration's trace: asking demarcation for the owners is part
    // of the flow this request started.
    tokio::spawn(
        async move {
            if let Err(error) = assessor.make_tasks(id).await {
                tracing::warn!(%error, "playbook tasks not made yet; the worker will retry");
                worker.notify_one();
            }
        }
        .in_current_span(),
    );
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
    responses((status = 200, description = "`{items, next}`, newest first", body = renkei_web::openapi::PageOf<IncidentView>), (status = 400)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub(super) async fn list_incidents(
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
            incident::Column::Id.in_subquery(ids_where(
                affected::Column::IncidentId,
                affected::Entity,
                affected::Column::OrgId.eq(org),
            )),
        );
        visible = visible.add(incident::Column::Id.in_subquery(ids_where(
            task::Column::IncidentId,
            task::Entity,
            task::Column::OwnerOrgId.eq(org),
        )));
        if who.has(Role::Operator) {
            visible =
                visible.add(incident::Column::PlatformId.in_subquery(operated_platforms(org)));
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
pub(super) async fn get_incident(
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
pub(super) async fn change_status(
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
    let done = renkei_audit::Action::new("incident.status_changed", id)
        .of(inc.org_id)
        .detail(json!({"from": from.as_str(), "to": to.as_str()}));
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    state.outbox.commit(txn).await.map_err(db)?;
    let (inc, _, disclosure) = readable(&state, &who, id).await?;
    Ok(HttpResponse::Ok().json(incident_view(&state.db.write, &who, inc, disclosure).await?))
}

#[utoipa::path(get, path = "/v1/incidents/{id}/timeline", tag = "emergency", params(PageParamsDoc),
    responses((status = 200, description = "`{items, next}`, oldest first", body = renkei_web::openapi::PageOf<TimelineEntry>), (status = 404)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(incident_id = %id))]
pub(super) async fn get_timeline(
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

// ---- post-incident review ---------------------------------------------

#[utoipa::path(put, path = "/v1/incidents/{id}/review", tag = "emergency", request_body = Review,
    responses((status = 200, body = IncidentView), (status = 400), (status = 403), (status = 404)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(incident_id = %id))]
pub(super) async fn put_review(
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
    let done = renkei_audit::Action::new("incident.reviewed", id)
        .of(inc.org_id)
        .detail(json!({"actions": review.actions.len(), "open": open}));
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    txn.commit().await.map_err(db)?;
    let (inc, _, disclosure) = readable(&state, &who, id).await?;
    Ok(HttpResponse::Ok().json(incident_view(&state.db.write, &who, inc, disclosure).await?))
}
