//! Incident tasks: the playbook's steps as work for an organisation.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use renkei_web::error::{db, invalid, path_id};
use renkei_web::{ApiError, Identity, Role, ValidJson};
use sea_orm::sea_query::{Expr, LockType};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait};
use serde_json::json;

use super::common::{State, actor, readable, status_of};
use super::dto::*;
use crate::access;
use crate::domain::{Disclosure, TaskRefused, TaskState, Tlp, valid_text};
use crate::store::{self, Entry, incident, task};

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
    responses((status = 200, description = "`{items}` in playbook order", body = renkei_web::openapi::PageOf<TaskView>), (status = 404)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(incident_id = %id))]
pub(super) async fn list_tasks(
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
pub(super) async fn change_task(
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
    let done = renkei_audit::Action::new("task.changed", id)
        .of(t.owner_org_id.or(Some(inc.org_id)))
        .detail(json!({"incident_id": inc.id, "from": from.as_str(), "to": to.as_str()}));
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    txn.commit().await.map_err(db)?;
    let t = task::Entity::find_by_id(id)
        .one(&state.db.write)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("task"))?;
    Ok(HttpResponse::Ok().json(task_view(t, now)))
}
