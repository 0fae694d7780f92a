//! Advisories: a platform operator's or the central body's warning to
//! organisations, and their confirmations.

use actix_web::{HttpResponse, web};
use chrono::Utc;
use renkei_bus::contracts::emergency::AdvisoryIssued;
use renkei_web::error::{db, invalid, path_id};
use renkei_web::{ApiError, Identity, PageParams, Role, ValidJson};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use super::PageParamsDoc;
use super::common::{State, actor, ids_where, platforms};
use super::dto::*;
use crate::domain::{Severity, Tlp, valid_advisory, valid_name, valid_text};
use crate::store::{self, advisory, advisory_recipient, organization, system};

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
pub(super) async fn issue_advisory(
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
    let done = renkei_audit::Action::new("advisory.issued", id)
        .of(issuer)
        .detail(serde_json::json!({"platform_id": body.platform_id, "severity": severity.get()}));
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    // The answer is read before the commit: nothing may fail after it, or
    // a created advisory is answered 5xx and a retry with the same
    // Idempotency-Key issues it twice.
    let a = advisory::Entity::find_by_id(id)
        .one(&txn)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("advisory"))?;
    let view = advisory_view(&txn, a, None).await.map_err(db)?;
    state.outbox.commit(txn).await.map_err(db)?;
    state.worker.notify_one();
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/advisories/{id}")))
        .json(view))
}

/// Whether `who` sees every organisation's confirmation of `a`.
fn sees_all(who: &Identity, a: &advisory::Model) -> bool {
    who.reads_everything() || who.org == Some(a.issued_by_org)
}

#[utoipa::path(get, path = "/v1/advisories", tag = "emergency", params(PageParamsDoc),
    responses((status = 200, description = "`{items, next}`, newest first", body = renkei_web::openapi::PageOf<AdvisoryView>)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub(super) async fn list_advisories(
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
                .add(advisory::Column::Id.in_subquery(ids_where(
                    advisory_recipient::Column::AdvisoryId,
                    advisory_recipient::Entity,
                    advisory_recipient::Column::OrgId.eq(org),
                ))),
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
pub(super) async fn get_advisory(
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
