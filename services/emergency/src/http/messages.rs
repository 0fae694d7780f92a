//! Coordination messages between an incident's participants.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use chrono::Utc;
use renkei_bus::contracts::emergency::MessagePosted;
use renkei_bus::subjects;
use renkei_web::error::{db, invalid, path_id};
use renkei_web::{ApiError, Identity, PageParams, Role, ValidJson};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use super::PageParamsDoc;
use super::common::{State, actor, ids_where, participants, readable, status_of};
use super::dto::*;
use crate::assessment;
use crate::domain::coordination::addressees;
use crate::domain::{MessageKind, Relation, Tlp, Urgency, valid_text};
use crate::store::{self, Entry, message, message_recipient};

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
pub(super) async fn post_message(
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
    let done = renkei_audit::Action::new("message.posted", message_id)
        .of(inc.org_id)
        .detail(json!({"incident_id": id, "from_org_id": sender, "to": to.len(), "kind": kind.as_str()}));
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
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
    responses((status = 200, description = "`{items, next}`, oldest first, each with its recipients' delivery and acknowledgement", body = renkei_web::openapi::PageOf<MessageView>), (status = 404)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(incident_id = %id))]
pub(super) async fn list_messages(
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
                .add(message::Column::Id.in_subquery(ids_where(
                    message_recipient::Column::MessageId,
                    message_recipient::Entity,
                    message_recipient::Column::OrgId.eq(org),
                ))),
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
