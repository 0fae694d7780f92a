//! Reports to the central body: drafting one from the incident's facts,
//! editing and filing it.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use renkei_bus::contracts::emergency::ReportFiled;
use renkei_store::json::{from_column, to_column};
use renkei_web::error::{db, invalid, path_id};
use renkei_web::{ApiError, Identity, PageParams, Role, ValidJson};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use super::common::{State, actionable, actor, ids_where, operated_platforms, readable, status_of};
use super::dto::*;
use crate::access;
use crate::assessment;
use crate::domain::report::{AffectedLine, Facts, ReportContent, ReportKind, TimelineLine};
use crate::domain::{Relation, valid_text};
use crate::service::EmergencyState;
use crate::store::{self, Entry, incident, report, task, timeline};

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
pub(super) async fn create_report(
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
    let done = renkei_audit::Action::new("report.created", saved.id)
        .of(inc.org_id)
        .detail(json!({"incident_id": id, "kind": kind.as_str()}));
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    txn.commit().await.map_err(db)?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/reports/{}", saved.id)))
        .json(report_view(saved)?))
}

#[utoipa::path(get, path = "/v1/incidents/{id}/reports", tag = "emergency",
    responses((status = 200, description = "`{items}`", body = renkei_web::openapi::PageOf<ReportView>), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(incident_id = %id))]
pub(super) async fn list_incident_reports(
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
    responses((status = 200, description = "`{items, next}`: every filed report for the central body; otherwise the reports of incidents the caller acts on", body = renkei_web::openapi::PageOf<ReportView>)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub(super) async fn list_reports(
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
        // Its own organisation's reports: drafts for those who act on them
        // (a manager, CSIRT or CISO), filed ones for all of its staff.
        let mut own = Condition::all().add(report::Column::OrgId.eq(org));
        if !access::responder_of(&who, org) {
            own = own.add(report::Column::State.eq("filed"));
        }
        let mut acts = Condition::any().add(own);
        if who.has(Role::Operator) {
            // The operator acts on every incident of the platforms it operates.
            acts = acts.add(report::Column::IncidentId.in_subquery(ids_where(
                incident::Column::Id,
                incident::Entity,
                incident::Column::PlatformId.in_subquery(operated_platforms(org)),
            )));
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

/// A report `who` may read: its incident's actors, and for a filed one
/// whoever reads the whole incident (never an affected organisation).
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
    // Filed reports: also everyone who reads the whole incident (its
    // declaring organisation, the operator, readers of everything), as
    // `GET /v1/incidents/{id}/reports` lists them; affected organisations
    // see none.
    let reads = acts
        || (r.state == "filed"
            && matches!(
                access::relation(&state.db.read, who, &inc)
                    .await
                    .map_err(db)?,
                Relation::Coordinator | Relation::Declarer
            ));
    if !reads {
        return Err(ApiError::NotFound("report"));
    }
    Ok((r, inc, acts))
}

#[utoipa::path(get, path = "/v1/reports/{id}", tag = "emergency",
    responses((status = 200, body = ReportView), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(report_id = %id))]
pub(super) async fn get_report(
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
pub(super) async fn edit_report(
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
    let txn = state.db.write.begin().await.map_err(db)?;
    let edited = report::Entity::update_many()
        .col_expr(
            report::Column::Content,
            Expr::value(to_column(&content).map_err(db)?),
        )
        .col_expr(report::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(report::Column::Id.eq(id))
        .filter(report::Column::State.eq("draft"))
        .exec(&txn)
        .await
        .map_err(db)?
        .rows_affected;
    if edited > 0 {
        let done = renkei_audit::Action::new("report.edited", id)
            .of(r.org_id)
            .detail(json!({"incident_id": r.incident_id}));
        renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    }
    txn.commit().await.map_err(db)?;
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
pub(super) async fn file_report(
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
    let done = renkei_audit::Action::new("report.filed", id)
        .of(inc.org_id)
        .detail(json!({"incident_id": inc.id, "kind": r.kind}));
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    state.outbox.commit(txn).await.map_err(db)?;
    let r = report::Entity::find_by_id(id)
        .one(&state.db.write)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("report"))?;
    Ok(HttpResponse::Ok().json(report_view(r)?))
}
