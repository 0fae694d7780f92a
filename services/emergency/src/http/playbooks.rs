//! Playbooks: a platform's steps per incident category.

use actix_web::{HttpResponse, web};
use chrono::Utc;
use renkei_store::json::{from_column, to_column};
use renkei_web::error::{db, invalid, path_id};
use renkei_web::{ApiError, Identity, ValidJson};
use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;
use uuid::Uuid;

use super::common::{State, actor, platforms};
use super::dto::*;
use crate::domain::{Category, valid_name, valid_steps};
use crate::service::EmergencyState;
use crate::store::playbook;

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
pub(super) async fn create_playbook(
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
    let txn = sea_orm::TransactionTrait::begin(&state.db.write)
        .await
        .map_err(db)?;
    let saved = playbook::Entity::insert(model)
        .exec_with_returning(&txn)
        .await
        .map_err(|e| match e.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => ApiError::conflict(
                "playbook_exists",
                "the platform has a playbook for this category already",
            ),
            _ => db(e),
        })?;
    let done = renkei_audit::Action::new("playbook.created", saved.id)
        .of(who.org)
        .detail(serde_json::json!({"platform_id": platform_id, "category": saved.category}));
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    txn.commit().await.map_err(db)?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/playbooks/{}", saved.id)))
        .json(playbook_view(saved)?))
}

#[utoipa::path(get, path = "/v1/platforms/{platform_id}/playbooks", tag = "emergency",
    responses((status = 200, description = "`{items}` by category", body = renkei_web::openapi::PageOf<PlaybookView>), (status = 404)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(platform_id = %platform_id))]
pub(super) async fn list_playbooks(
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
        // An unreadable platform hides its playbooks; a database or
        // registry outage stays a 503, not a 404.
        .map_err(|e| e.not_found_as("playbook"))?;
    Ok(p)
}

#[utoipa::path(get, path = "/v1/playbooks/{id}", tag = "emergency",
    responses((status = 200, body = PlaybookView), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(playbook_id = %id))]
pub(super) async fn get_playbook(
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
pub(super) async fn update_playbook(
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
    let txn = sea_orm::TransactionTrait::begin(&state.db.write)
        .await
        .map_err(db)?;
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
        .exec(&txn)
        .await
        .map_err(db)?;
    let done = renkei_audit::Action::new("playbook.updated", id)
        .of(who.org)
        .detail(serde_json::json!({"platform_id": p.platform_id, "steps": steps.len()}));
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    txn.commit().await.map_err(db)?;
    let p = playbook::Entity::find_by_id(id)
        .one(&state.db.write)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("playbook"))?;
    Ok(HttpResponse::Ok().json(playbook_view(p)?))
}
