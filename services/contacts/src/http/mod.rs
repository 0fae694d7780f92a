//! The contacts HTTP API under `/v1`, and the acknowledgement pages under
//! `/ack` (opened from messages, without a token).

pub mod ack_page;
pub mod dto;

use std::collections::{BTreeMap, HashMap};

use actix_web::{HttpResponse, web};
use chrono::Utc;
use renkei_domain::Invalid;
use renkei_store::json::{from_column, to_column};
use renkei_web::error::{db, invalid, path_id, query_id};
use renkei_web::openapi::Conventions;
use renkei_web::pagination::paginate;
use renkei_web::{ApiError, Identity, OptionalJson, PageParams, Role, ValidJson};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait as _, TransactionTrait,
};
use serde::Deserialize;
use utoipa::OpenApi;
use uuid::Uuid;

use crate::access;
use crate::domain::contact::{parse_time_zone, valid_channels, valid_contact_name};
use crate::domain::cooperation::Line;
use crate::domain::policy::Target;
use crate::domain::{
    Availability, Channel, ContactRole, CooperationMap, Language, Notice, NotificationState,
    Policy, Step,
};
use crate::drills;
use crate::escalation::{self, Acknowledgement};
use crate::service::ContactsState;
use crate::store::{
    self, WHOLE_ORG, attempt, contact, cooperation_map, delivery, drill, notification, recipient,
};
use dto::*;

type State = web::Data<ContactsState>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/contacts", web::post().to(create_contact))
        .route("/v1/contacts", web::get().to(list_contacts))
        .route("/v1/contacts/{id}", web::get().to(get_contact))
        .route("/v1/contacts/{id}", web::patch().to(update_contact))
        .route("/v1/contacts/{id}", web::delete().to(delete_contact))
        .route(
            "/v1/organizations/{org_id}/escalation-policy",
            web::put().to(put_policy),
        )
        .route(
            "/v1/organizations/{org_id}/escalation-policy",
            web::get().to(get_policy),
        )
        .route(
            "/v1/organizations/{org_id}/escalation-policy",
            web::delete().to(delete_policy),
        )
        .route(
            "/v1/platforms/{platform_id}/cooperation-map",
            web::get().to(get_cooperation_map),
        )
        .route(
            "/v1/platforms/{platform_id}/cooperation-map",
            web::put().to(put_cooperation_map),
        )
        .route("/v1/notifications", web::get().to(list_notifications))
        .route("/v1/notifications/{id}", web::get().to(get_notification))
        .route(
            "/v1/notifications/{id}/deliveries",
            web::get().to(list_deliveries),
        )
        .route("/v1/notifications/{id}/ack", web::post().to(acknowledge))
        .route("/v1/drills", web::post().to(create_drill))
        .route("/v1/drills", web::get().to(list_drills))
        .route("/v1/drills/{id}", web::get().to(get_drill))
        .route("/v1/drills/{id}", web::delete().to(stop_drill))
        .route("/ack/{token}", web::get().to(ack_page::show))
        .route("/ack/{token}", web::post().to(ack_page::confirm))
        .configure(renkei_audit::http::routes::<ContactsState>);
}

#[derive(OpenApi)]
#[openapi(
    paths(
        create_contact, list_contacts, get_contact, update_contact, delete_contact,
        put_policy, get_policy, delete_policy, get_cooperation_map, put_cooperation_map,
        list_notifications, get_notification, list_deliveries, acknowledge,
        create_drill, list_drills, get_drill, stop_drill, ack_page::show, ack_page::confirm
    ),
    components(schemas(ChannelBody, CreateContact, UpdateContact, ChannelView, ContactView,
                       TargetBody, StepBody, PutPolicy, PolicyView, LineBody, PutCooperationMap,
                       CooperationMapView, OrganizationStatus, NotificationView, AttemptView,
                       DeliveryView, AckBody, CreateDrill, DrillView, renkei_web::error::Problem)),
    tags((name = "contacts", description = "Contacts, escalation, cooperation map, notifications and drills")),
    modifiers(&Conventions)
)]
pub struct ApiDoc;

// ---- contacts ------------------------------------------------------------

fn channels_from(bodies: &[ChannelBody], keep: &[Channel]) -> Result<Vec<Channel>, Invalid> {
    let channels = bodies
        .iter()
        .enumerate()
        .map(|(i, c)| {
            // A webhook sent back without its secret keeps the one stored
            // for the same URL (the API never shows secrets).
            let kept = keep.iter().find_map(|k| match k {
                Channel::Webhook { url, secret } if Some(url.as_str()) == c.url.as_deref() => {
                    Some(secret.as_str())
                }
                _ => None,
            });
            Channel::new(
                &format!("channels[{i}]"),
                &c.kind,
                c.url.as_deref(),
                c.secret.as_deref().or(kept),
                c.address.as_deref(),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    valid_channels(channels)
}

fn contact_view(m: contact::Model) -> Result<ContactView, ApiError> {
    let channels: Vec<Channel> = from_column("contact channels", &m.channels).map_err(db)?;
    Ok(ContactView {
        id: m.id,
        org_id: m.org_id,
        system_id: m.system_id,
        name: m.name,
        role: m.role,
        availability: m.availability,
        time_zone: m.time_zone,
        language: m.language,
        channels: channels
            .into_iter()
            .map(|c| match c {
                Channel::Webhook { url, .. } => ChannelView {
                    kind: "webhook".into(),
                    url: Some(url),
                    address: None,
                    secret_set: true,
                },
                Channel::Email { address } => ChannelView {
                    kind: "email".into(),
                    url: None,
                    address: Some(address),
                    secret_set: false,
                },
            })
            .collect(),
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

/// A system named for a contact or policy must be the organisation's own.
async fn owned_system(
    state: &ContactsState,
    org: Uuid,
    system_id: Option<Uuid>,
) -> Result<(), ApiError> {
    let Some(id) = system_id else { return Ok(()) };
    let found = store::system::Entity::find_by_id(id)
        .one(&state.db.read)
        .await
        .map_err(db)?;
    match found {
        Some(s) if s.owner_org_id == org => Ok(()),
        _ => Err(ApiError::invalid(
            "system_id",
            "is not a system of this organisation",
        )),
    }
}

#[utoipa::path(post, path = "/v1/contacts", tag = "contacts", request_body = CreateContact,
    responses((status = 201, body = ContactView), (status = 400, body = renkei_web::error::Problem),
              (status = 403), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn create_contact(
    state: State,
    who: Identity,
    ValidJson(body): ValidJson<CreateContact>,
) -> Result<HttpResponse, ApiError> {
    // Who may write comes first: a stranger learns nothing from validation.
    let org = access::managed_org(&state, &who, body.org_id)
        .await
        .map_err(access::org_id_in_body)?;
    let name = valid_contact_name(&body.name).map_err(invalid)?;
    let role = ContactRole::parse("role", &body.role).map_err(invalid)?;
    let availability = Availability::parse("availability", &body.availability).map_err(invalid)?;
    let channels = channels_from(&body.channels, &[]).map_err(invalid)?;
    let zone =
        parse_time_zone(body.time_zone.as_deref().unwrap_or("Asia/Tokyo")).map_err(invalid)?;
    let language =
        Language::parse("language", body.language.as_deref().unwrap_or("ja")).map_err(invalid)?;
    owned_system(&state, org, body.system_id).await?;
    let now = Utc::now();
    let txn = state.db.write.begin().await.map_err(db)?;
    let saved = contact::ActiveModel {
        id: Set(Uuid::now_v7()),
        org_id: Set(org),
        system_id: Set(body.system_id),
        name: Set(name),
        role: Set(role.as_str().to_owned()),
        availability: Set(availability.as_str().to_owned()),
        time_zone: Set(zone.name().to_owned()),
        language: Set(language.as_str().to_owned()),
        channels: Set(to_column(&channels).map_err(db)?),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(db)?;
    let done = renkei_audit::Action::new("contact.created", saved.id)
        .of(saved.org_id)
        .detail(serde_json::json!({"role": saved.role, "system_id": saved.system_id}));
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    txn.commit().await.map_err(db)?;
    Ok(HttpResponse::Created().json(contact_view(saved)?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct ContactFilter {
    org_id: Option<String>,
    system_id: Option<String>,
    role: Option<String>,
}

#[utoipa::path(get, path = "/v1/contacts", tag = "contacts", params(ContactFilter, PageParams),
    responses((status = 200, description = "`{items, next}`: the caller's organisation's contacts, and for a platform operator those of its platforms' organisations", body = renkei_web::openapi::PageOf<ContactView>)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn list_contacts(
    state: State,
    who: Identity,
    filter: web::Query<ContactFilter>,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let page = page.page()?;
    let org = query_id("org_id", &filter.org_id)?;
    let system = query_id("system_id", &filter.system_id)?;
    let role = match filter.role.as_deref() {
        None | Some("") => None,
        Some(r) => Some(ContactRole::parse("role", r).map_err(invalid)?),
    };
    // Whose contacts the caller may see: its own, and an operator those of
    // its platforms' organisations, but another organisation's contacts
    // tied to one of its systems only when that system is on the
    // operator's platform.
    let operated = access::operated_systems(&state, &who).await?;
    let own = who.org.unwrap_or_default();
    let mut visible: Vec<Uuid> = who
        .org
        .into_iter()
        .chain(operated.iter().map(|s| s.owner_org_id))
        .filter(|v| org.is_none_or(|o| o == *v))
        .collect();
    visible.sort();
    visible.dedup();
    let operated: Vec<Uuid> = operated.into_iter().map(|s| s.id).collect();
    let mut query = contact::Entity::find()
        .filter(contact::Column::OrgId.is_in(visible))
        .filter(
            sea_orm::Condition::any()
                .add(contact::Column::OrgId.eq(own))
                .add(contact::Column::SystemId.is_null())
                .add(contact::Column::SystemId.is_in(operated)),
        )
        .order_by_asc(contact::Column::Id)
        .limit(page.limit + 1);
    if let Some(after) = page.after {
        query = query.filter(contact::Column::Id.gt(after));
    }
    if let Some(s) = system {
        query = query.filter(contact::Column::SystemId.eq(s));
    }
    if let Some(r) = role {
        query = query.filter(contact::Column::Role.eq(r.as_str()));
    }
    let rows = query.all(&state.db.read).await.map_err(db)?;
    let views = rows
        .into_iter()
        .map(contact_view)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(paginate(views, page, |v| v.id, |v| v)))
}

/// The contact if `who` may see it, else a 404.
async fn visible_contact(
    state: &ContactsState,
    who: &Identity,
    raw_id: &str,
) -> Result<contact::Model, ApiError> {
    let id = path_id(raw_id, "contact")?;
    match contact::Entity::find_by_id(id)
        .one(&state.db.read)
        .await
        .map_err(db)?
    {
        Some(c) if access::sees_contact(state, who, c.org_id, c.system_id).await? => Ok(c),
        _ => Err(ApiError::NotFound("contact")),
    }
}

#[utoipa::path(get, path = "/v1/contacts/{id}", tag = "contacts",
    params(("id" = Uuid, Path, description = "Contact id")),
    responses((status = 200, body = ContactView), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn get_contact(
    state: State,
    who: Identity,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let c = visible_contact(&state, &who, &id).await?;
    Ok(HttpResponse::Ok().json(contact_view(c)?))
}

#[utoipa::path(patch, path = "/v1/contacts/{id}", tag = "contacts", request_body = UpdateContact,
    params(("id" = Uuid, Path, description = "Contact id")),
    responses((status = 200, body = ContactView), (status = 400, body = renkei_web::error::Problem),
              (status = 403), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn update_contact(
    state: State,
    who: Identity,
    id: web::Path<String>,
    ValidJson(body): ValidJson<UpdateContact>,
) -> Result<HttpResponse, ApiError> {
    let c = visible_contact(&state, &who, &id).await?;
    access::managed_org(&state, &who, c.org_id).await?;
    let mut row: contact::ActiveModel = c.clone().into();
    if let Some(name) = &body.name {
        row.name = Set(valid_contact_name(name).map_err(invalid)?);
    }
    if let Some(role) = &body.role {
        row.role = Set(ContactRole::parse("role", role)
            .map_err(invalid)?
            .as_str()
            .to_owned());
    }
    if let Some(a) = &body.availability {
        row.availability = Set(Availability::parse("availability", a)
            .map_err(invalid)?
            .as_str()
            .to_owned());
    }
    if let Some(channels) = &body.channels {
        let kept: Vec<Channel> = from_column("contact channels", &c.channels).map_err(db)?;
        let channels = channels_from(channels, &kept).map_err(invalid)?;
        row.channels = Set(to_column(&channels).map_err(db)?);
    }
    if let Some(zone) = &body.time_zone {
        row.time_zone = Set(parse_time_zone(zone).map_err(invalid)?.name().to_owned());
    }
    if let Some(language) = &body.language {
        row.language = Set(Language::parse("language", language)
            .map_err(invalid)?
            .as_str()
            .to_owned());
    }
    if let Some(system) = body.system_id {
        owned_system(&state, c.org_id, system).await?;
        row.system_id = Set(system);
    }
    row.updated_at = Set(Utc::now());
    let changed: Vec<&str> = [
        ("name", body.name.is_some()),
        ("role", body.role.is_some()),
        ("availability", body.availability.is_some()),
        ("channels", body.channels.is_some()),
        ("time_zone", body.time_zone.is_some()),
        ("language", body.language.is_some()),
        ("system_id", body.system_id.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, given)| given.then_some(field))
    .collect();
    let txn = state.db.write.begin().await.map_err(db)?;
    let saved = row.update(&txn).await.map_err(|e| match e {
        // Removed meanwhile.
        sea_orm::DbErr::RecordNotUpdated => ApiError::NotFound("contact"),
        e => db(e),
    })?;
    let done = renkei_audit::Action::new("contact.updated", saved.id)
        .of(saved.org_id)
        .detail(serde_json::json!({ "changed": changed }));
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    txn.commit().await.map_err(db)?;
    Ok(HttpResponse::Ok().json(contact_view(saved)?))
}

#[utoipa::path(delete, path = "/v1/contacts/{id}", tag = "contacts",
    params(("id" = Uuid, Path, description = "Contact id")),
    responses((status = 204), (status = 403), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn delete_contact(
    state: State,
    who: Identity,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let c = visible_contact(&state, &who, &id).await?;
    access::managed_org(&state, &who, c.org_id).await?;
    // Messages already waiting for this contact fail with "removed" and
    // escalation moves on; the record of past deliveries stays.
    let txn = state.db.write.begin().await.map_err(db)?;
    contact::Entity::delete_by_id(c.id)
        .exec(&txn)
        .await
        .map_err(db)?;
    let done = renkei_audit::Action::new("contact.removed", c.id).of(c.org_id);
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    txn.commit().await.map_err(db)?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- escalation policies -------------------------------------------------

fn policy_from(body: &PutPolicy) -> Result<Policy, Invalid> {
    let steps = body
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let targets = s
                .targets
                .iter()
                .enumerate()
                .map(|(j, t)| {
                    let field = format!("steps[{i}].targets[{j}]");
                    match t.kind.as_str() {
                        "role" => Ok(Target::Role {
                            role: ContactRole::parse(
                                &format!("{field}.role"),
                                t.role.as_deref().unwrap_or_default(),
                            )?,
                        }),
                        "contact" => Ok(Target::Contact {
                            contact_id: t.contact_id.ok_or_else(|| {
                                Invalid::new(format!("{field}.contact_id"), "is required")
                            })?,
                        }),
                        "available" => Ok(Target::Available),
                        other => Err(Invalid::new(
                            format!("{field}.kind"),
                            format!("`{other}` is not one of role, contact, available"),
                        )),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Step {
                targets,
                wait_seconds: s.wait_seconds,
            })
        })
        .collect::<Result<Vec<_>, Invalid>>()?;
    Ok(Policy {
        steps,
        repeat: body.repeat,
    })
}

fn policy_view(
    org: Uuid,
    system_id: Option<Uuid>,
    policy: &Policy,
    stored: Option<&store::policy::Model>,
) -> PolicyView {
    PolicyView {
        org_id: org,
        system_id,
        steps: policy
            .steps
            .iter()
            .map(|s| StepBody {
                targets: s
                    .targets
                    .iter()
                    .map(|t| match t {
                        Target::Role { role } => TargetBody {
                            kind: "role".into(),
                            role: Some(role.as_str().to_owned()),
                            contact_id: None,
                        },
                        Target::Contact { contact_id } => TargetBody {
                            kind: "contact".into(),
                            role: None,
                            contact_id: Some(*contact_id),
                        },
                        Target::Available => TargetBody {
                            kind: "available".into(),
                            role: None,
                            contact_id: None,
                        },
                    })
                    .collect(),
                wait_seconds: s.wait_seconds,
            })
            .collect(),
        repeat: policy.repeat,
        default: stored.is_none(),
        updated_by: stored.map(|s| s.updated_by.clone()),
        updated_at: stored.map(|s| s.updated_at),
    }
}

fn scope_of(system_id: Option<Uuid>) -> String {
    system_id.map_or_else(|| WHOLE_ORG.to_owned(), |s| s.to_string())
}

#[utoipa::path(put, path = "/v1/organizations/{org_id}/escalation-policy", tag = "contacts",
    request_body = PutPolicy, params(("org_id" = Uuid, Path, description = "Organisation id")),
    responses((status = 200, body = PolicyView), (status = 400, body = renkei_web::error::Problem),
              (status = 403), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn put_policy(
    state: State,
    who: Identity,
    org_id: web::Path<String>,
    ValidJson(body): ValidJson<PutPolicy>,
) -> Result<HttpResponse, ApiError> {
    let org = path_id(&org_id, "organization")?;
    let org = access::managed_org(&state, &who, org).await?;
    let policy = policy_from(&body).map_err(invalid)?;
    let own: Vec<Uuid> = contact::Entity::find()
        .select_only()
        .column(contact::Column::Id)
        .filter(contact::Column::OrgId.eq(org))
        .into_tuple()
        .all(&state.db.read)
        .await
        .map_err(db)?;
    policy.validate(|id| own.contains(&id)).map_err(invalid)?;
    owned_system(&state, org, body.system_id).await?;
    let txn = state.db.write.begin().await.map_err(db)?;
    let row = store::policy::ActiveModel {
        org_id: Set(org),
        scope: Set(scope_of(body.system_id)),
        policy: Set(to_column(&policy).map_err(db)?),
        updated_by: Set(who.sub.clone()),
        updated_at: Set(Utc::now()),
    };
    store::policy::Entity::insert(row)
        .on_conflict(
            sea_orm::sea_query::OnConflict::columns([
                store::policy::Column::OrgId,
                store::policy::Column::Scope,
            ])
            .update_columns([
                store::policy::Column::Policy,
                store::policy::Column::UpdatedBy,
                store::policy::Column::UpdatedAt,
            ])
            .to_owned(),
        )
        .exec_without_returning(&txn)
        .await
        .map_err(db)?;
    let done = renkei_audit::Action::new("escalation_policy.set", org)
        .of(org)
        .detail(serde_json::json!({"system_id": body.system_id, "steps": body.steps.len()}));
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    txn.commit().await.map_err(db)?;
    let stored = store::policy::Entity::find_by_id((org, scope_of(body.system_id)))
        .one(&state.db.write)
        .await
        .map_err(db)?;
    Ok(HttpResponse::Ok().json(policy_view(org, body.system_id, &policy, stored.as_ref())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct PolicyFilter {
    /// The policy of one system (falls back to the organisation's).
    system_id: Option<String>,
}

#[utoipa::path(get, path = "/v1/organizations/{org_id}/escalation-policy", tag = "contacts",
    params(("org_id" = Uuid, Path, description = "Organisation id"), PolicyFilter),
    responses((status = 200, body = PolicyView), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn get_policy(
    state: State,
    who: Identity,
    org_id: web::Path<String>,
    filter: web::Query<PolicyFilter>,
) -> Result<HttpResponse, ApiError> {
    let org = path_id(&org_id, "organization")?;
    if !access::sees_contacts_of(&state, &who, org).await? {
        return Err(ApiError::NotFound("organization"));
    }
    let system = query_id("system_id", &filter.system_id)?;
    let mut scopes = vec![WHOLE_ORG.to_owned()];
    if let Some(s) = system {
        scopes.insert(0, s.to_string());
    }
    let mut found = None;
    for scope in scopes {
        if let Some(row) = store::policy::Entity::find_by_id((org, scope))
            .one(&state.db.read)
            .await
            .map_err(db)?
        {
            found = Some(row);
            break;
        }
    }
    let view = match &found {
        Some(row) => {
            let policy: Policy = from_column("escalation policy", &row.policy).map_err(db)?;
            let system_id = Uuid::parse_str(&row.scope).ok();
            policy_view(org, system_id, &policy, Some(row))
        }
        None => policy_view(org, None, &Policy::default_policy(), None),
    };
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(delete, path = "/v1/organizations/{org_id}/escalation-policy", tag = "contacts",
    params(("org_id" = Uuid, Path, description = "Organisation id"), PolicyFilter),
    responses((status = 204, description = "Removed: the organisation's (or, without system_id, the default) policy applies again"),
              (status = 403), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn delete_policy(
    state: State,
    who: Identity,
    org_id: web::Path<String>,
    filter: web::Query<PolicyFilter>,
) -> Result<HttpResponse, ApiError> {
    let org = path_id(&org_id, "organization")?;
    let org = access::managed_org(&state, &who, org).await?;
    let system = query_id("system_id", &filter.system_id)?;
    let txn = state.db.write.begin().await.map_err(db)?;
    let removed = store::policy::Entity::delete_by_id((org, scope_of(system)))
        .exec(&txn)
        .await
        .map_err(db)?
        .rows_affected;
    if removed > 0 {
        let done = renkei_audit::Action::new("escalation_policy.removed", org)
            .of(org)
            .detail(serde_json::json!({ "system_id": system }));
        renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    }
    txn.commit().await.map_err(db)?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- cooperation map ------------------------------------------------------

fn lines_view(lines: &[Line]) -> Vec<LineBody> {
    lines
        .iter()
        .map(|l| LineBody {
            from: l.from,
            to: l.to,
            what: l.what.clone(),
        })
        .collect()
}

async fn map_view(
    state: &ContactsState,
    platform: &store::system::Model,
) -> Result<CooperationMapView, ApiError> {
    let saved = cooperation_map::Entity::find_by_id(platform.id)
        .one(&state.db.read)
        .await
        .map_err(db)?;
    let (map, version, source) = match &saved {
        Some(row) => (
            from_column::<CooperationMap>("cooperation map", &row.map).map_err(db)?,
            row.version as u32,
            "saved",
        ),
        None => {
            let members = store::members(&state.db.read, platform).await.map_err(db)?;
            (CooperationMap::default_for(&members), 0, "default")
        }
    };
    let mut ids: Vec<Uuid> = map
        .ordinary
        .iter()
        .chain(map.emergency.iter())
        .flat_map(|l| [l.from, l.to])
        .collect();
    ids.sort();
    ids.dedup();
    let organizations: BTreeMap<Uuid, String> = store::organization::Entity::find()
        .filter(store::organization::Column::Id.is_in(ids))
        .all(&state.db.read)
        .await
        .map_err(db)?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect();
    Ok(CooperationMapView {
        platform_id: platform.id,
        version,
        source: source.into(),
        ordinary: lines_view(&map.ordinary),
        emergency: lines_view(&map.emergency),
        organizations,
        updated_by: saved.as_ref().map(|s| s.updated_by.clone()),
        updated_at: saved.as_ref().map(|s| s.updated_at),
    })
}

#[utoipa::path(get, path = "/v1/platforms/{platform_id}/cooperation-map", tag = "contacts",
    params(("platform_id" = Uuid, Path, description = "Platform id")),
    responses((status = 200, body = CooperationMapView), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn get_cooperation_map(
    state: State,
    who: Identity,
    platform_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&platform_id, "platform")?;
    let platform = access::platforms(&state).readable(&who, id).await?;
    Ok(HttpResponse::Ok().json(map_view(&state, &platform).await?))
}

#[utoipa::path(put, path = "/v1/platforms/{platform_id}/cooperation-map", tag = "contacts",
    request_body = PutCooperationMap, params(("platform_id" = Uuid, Path, description = "Platform id")),
    responses((status = 200, body = CooperationMapView), (status = 400, body = renkei_web::error::Problem),
              (status = 403), (status = 404), (status = 409)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn put_cooperation_map(
    state: State,
    who: Identity,
    platform_id: web::Path<String>,
    ValidJson(body): ValidJson<PutCooperationMap>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&platform_id, "platform")?;
    let platform = access::platforms(&state)
        .operated(&who, id, "changes the cooperation map")
        .await?;
    let to_lines = |lines: &[LineBody]| {
        lines
            .iter()
            .map(|l| Line {
                from: l.from,
                to: l.to,
                what: l.what.trim().to_owned(),
            })
            .collect::<Vec<_>>()
    };
    let map = CooperationMap {
        ordinary: to_lines(&body.ordinary),
        emergency: to_lines(&body.emergency),
    };
    let members = store::members(&state.db.read, &platform)
        .await
        .map_err(db)?;
    map.validate(&members).map_err(invalid)?;
    let txn = state.db.write.begin().await.map_err(db)?;
    let current = cooperation_map::Entity::find_by_id(platform.id)
        .lock(sea_orm::sea_query::LockType::Update)
        .one(&txn)
        .await
        .map_err(db)?;
    let version = current.as_ref().map_or(0, |c| c.version as u32);
    if let Some(base) = body.base_version
        && base != version
    {
        return Err(ApiError::conflict(
            "stale_version",
            format!("the map is at version {version}, not {base}: read it again"),
        ));
    }
    let row = cooperation_map::ActiveModel {
        platform_id: Set(platform.id),
        map: Set(to_column(&map).map_err(db)?),
        version: Set(version as i32 + 1),
        updated_by: Set(who.sub.clone()),
        updated_at: Set(Utc::now()),
    };
    let saved = if current.is_some() {
        row.update(&txn).await.map(|_| ())
    } else {
        row.insert(&txn).await.map(|_| ())
    };
    saved.map_err(|e| match e.sql_err() {
        // Two first saves at once: the later one is stale.
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => ApiError::conflict(
            "stale_version",
            "the map was saved by someone else meanwhile: read it again",
        ),
        _ => db(e),
    })?;
    let done = renkei_audit::Action::new("cooperation_map.updated", platform.id)
        .of(platform.owner_org_id)
        .detail(serde_json::json!({ "version": version + 1 }));
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    txn.commit().await.map_err(db)?;
    Ok(HttpResponse::Ok().json(map_view(&state, &platform).await?))
}

// ---- notifications -------------------------------------------------------

/// Which organisations' rows of a notification `who` sees: all of them
/// (its platform's operator), all without contact details (admin, central
/// body, auditor: contact details are the organisations' and the
/// operator's only), or its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sight {
    All,
    AllWithoutContacts,
    Own(Uuid),
}

async fn sight_of(
    state: &ContactsState,
    who: &Identity,
    n: &notification::Model,
) -> Result<Option<Sight>, ApiError> {
    let Some(org) = who.org else {
        return Ok(who.reads_everything().then_some(Sight::AllWithoutContacts));
    };
    if who.has(Role::Operator)
        && let Some(platform_id) = n.platform_id
        && store::platforms_operated_by(&state.db.read, org)
            .await
            .map_err(db)?
            .contains(&platform_id)
    {
        return Ok(Some(Sight::All));
    }
    if who.reads_everything() {
        return Ok(Some(Sight::AllWithoutContacts));
    }
    let mine = recipient::Entity::find()
        .filter(recipient::Column::NotificationId.eq(n.id))
        .filter(recipient::Column::OrgId.eq(org))
        .one(&state.db.read)
        .await
        .map_err(db)?;
    Ok(mine.map(|_| Sight::Own(org)))
}

fn org_status(r: &recipient::Model) -> OrganizationStatus {
    OrganizationStatus {
        org_id: r.org_id,
        state: r.state.clone(),
        delivered: r.delivered_at.is_some(),
        delivered_at: r.delivered_at,
        acknowledged_by: r.acknowledged_by.clone(),
        acknowledged_at: r.acknowledged_at,
        acknowledged_via: r.acknowledged_via.clone(),
        step: r.step as u32 + 1,
        round: r.round as u32,
        next_escalation_at: r.next_at,
    }
}

fn notification_view(
    n: notification::Model,
    orgs: Vec<OrganizationStatus>,
) -> Result<NotificationView, ApiError> {
    let notice: Notice = from_column("notice", &n.notice).map_err(db)?;
    Ok(NotificationView {
        id: n.id,
        subject: n.subject,
        topic: n.topic,
        condition: n.condition,
        state: n.state,
        title_ja: notice.title(Language::Ja),
        title_en: notice.title(Language::En),
        platform_id: n.platform_id,
        incident_id: n.incident_id,
        drill_id: n.drill_id,
        created_at: n.created_at,
        updated_at: n.updated_at,
        organizations: orgs,
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct NotificationFilter {
    /// The event subject that caused it (`emergency.incident.spread_risk`…).
    subject: Option<String>,
    /// Only notifications to this organisation.
    org_id: Option<String>,
    /// `open`, `acknowledged`, `unacknowledged` or `informed`.
    state: Option<String>,
}

#[utoipa::path(get, path = "/v1/notifications", tag = "contacts", params(NotificationFilter, PageParams),
    responses((status = 200, description = "`{items, next}`, newest first", body = renkei_web::openapi::PageOf<NotificationView>),
              (status = 403, description = "`org_id` names another organisation")), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn list_notifications(
    state: State,
    who: Identity,
    filter: web::Query<NotificationFilter>,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let page = page.page()?;
    let org = query_id("org_id", &filter.org_id)?;
    let operator = who.has(Role::Operator);
    if let Some(o) = org
        && !who.reads_everything()
        && !operator
        && who.org != Some(o)
    {
        // Which other organisations were told is not a member's business.
        return Err(ApiError::Forbidden(
            "you see the notifications of your own organisation".into(),
        ));
    }
    if let Some(subject) = &filter.subject
        && (subject.len() > 200 || subject.chars().any(char::is_control))
    {
        return Err(ApiError::invalid("subject", "is not an event subject"));
    }
    let wanted_state = match filter.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            renkei_domain::parse_word(
                "state",
                s,
                &NotificationState::ALL,
                NotificationState::as_str,
            )
            .map_err(invalid)?,
        ),
    };
    let mut query = notification::Entity::find()
        .order_by_desc(notification::Column::Id)
        .limit(page.limit + 1);
    if let Some(before) = page.after {
        query = query.filter(notification::Column::Id.lt(before));
    }
    if let Some(subject) = filter.subject.as_deref().filter(|s| !s.is_empty()) {
        query = query.filter(notification::Column::Subject.eq(subject));
    }
    if let Some(s) = wanted_state {
        query = query.filter(notification::Column::State.eq(s.as_str()));
    }
    if let Some(o) = org {
        query = query.filter(
            notification::Column::Id.in_subquery(
                recipient::Entity::find()
                    .select_only()
                    .column(recipient::Column::NotificationId)
                    .filter(recipient::Column::OrgId.eq(o))
                    .into_query(),
            ),
        );
    }
    // What the caller may see: everything, or its platforms' and its own.
    let (all, operated) = if who.reads_everything() {
        (true, Vec::new())
    } else {
        let operated = match (who.org, who.has(Role::Operator)) {
            (Some(mine), true) => store::platforms_operated_by(&state.db.read, mine)
                .await
                .map_err(db)?,
            _ => Vec::new(),
        };
        let mut visible = sea_orm::Condition::any();
        if let Some(mine) = who.org {
            visible = visible.add(
                notification::Column::Id.in_subquery(
                    recipient::Entity::find()
                        .select_only()
                        .column(recipient::Column::NotificationId)
                        .filter(recipient::Column::OrgId.eq(mine))
                        .into_query(),
                ),
            );
        }
        if !operated.is_empty() {
            visible = visible.add(notification::Column::PlatformId.is_in(operated.clone()));
        }
        if who.org.is_none() {
            return Ok(HttpResponse::Ok().json(serde_json::json!({"items": [], "next": null})));
        }
        query = query.filter(visible);
        (false, operated)
    };
    let rows = query.all(&state.db.read).await.map_err(db)?;
    let ids: Vec<Uuid> = rows.iter().map(|n| n.id).collect();
    let mut orgs: HashMap<Uuid, Vec<recipient::Model>> = HashMap::new();
    for chunk in ids.chunks(200) {
        for r in recipient::Entity::find()
            .filter(recipient::Column::NotificationId.is_in(chunk.iter().copied()))
            .order_by_asc(recipient::Column::Id)
            .all(&state.db.read)
            .await
            .map_err(db)?
        {
            orgs.entry(r.notification_id).or_default().push(r);
        }
    }
    let mut views = Vec::with_capacity(rows.len());
    for n in rows {
        let sees_all = all || n.platform_id.is_some_and(|p| operated.contains(&p));
        let rows = orgs.remove(&n.id).unwrap_or_default();
        let statuses = rows
            .iter()
            .filter(|r| sees_all || Some(r.org_id) == who.org)
            .map(org_status)
            .collect();
        views.push(notification_view(n, statuses)?);
    }
    Ok(HttpResponse::Ok().json(paginate(views, page, |v| v.id, |v| v)))
}

/// The notification if `who` may see it, with what of it.
async fn visible_notification(
    state: &ContactsState,
    who: &Identity,
    raw_id: &str,
) -> Result<(notification::Model, Sight), ApiError> {
    let id = path_id(raw_id, "notification")?;
    let Some(n) = notification::Entity::find_by_id(id)
        .one(&state.db.read)
        .await
        .map_err(db)?
    else {
        return Err(ApiError::NotFound("notification"));
    };
    match sight_of(state, who, &n).await? {
        Some(sight) => Ok((n, sight)),
        None => Err(ApiError::NotFound("notification")),
    }
}

async fn statuses(
    state: &ContactsState,
    n: &notification::Model,
    sight: &Sight,
) -> Result<Vec<OrganizationStatus>, ApiError> {
    let mut q = recipient::Entity::find()
        .filter(recipient::Column::NotificationId.eq(n.id))
        .order_by_asc(recipient::Column::Id);
    if let Sight::Own(org) = sight {
        q = q.filter(recipient::Column::OrgId.eq(*org));
    }
    Ok(q.all(&state.db.read)
        .await
        .map_err(db)?
        .iter()
        .map(org_status)
        .collect())
}

#[utoipa::path(get, path = "/v1/notifications/{id}", tag = "contacts",
    params(("id" = Uuid, Path, description = "Notification id")),
    responses((status = 200, body = NotificationView), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn get_notification(
    state: State,
    who: Identity,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (n, sight) = visible_notification(&state, &who, &id).await?;
    let orgs = statuses(&state, &n, &sight).await?;
    Ok(HttpResponse::Ok().json(notification_view(n, orgs)?))
}

#[utoipa::path(get, path = "/v1/notifications/{id}/deliveries", tag = "contacts",
    params(("id" = Uuid, Path, description = "Notification id"), PageParams),
    responses((status = 200, description = "`{items, next}`: every delivery with every attempt", body = renkei_web::openapi::PageOf<DeliveryView>), (status = 404)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn list_deliveries(
    state: State,
    who: Identity,
    id: web::Path<String>,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let page = page.page()?;
    let (n, sight) = visible_notification(&state, &who, &id).await?;
    let mut q = delivery::Entity::find()
        .filter(delivery::Column::NotificationId.eq(n.id))
        .order_by_asc(delivery::Column::Id)
        .limit(page.limit + 1);
    if let Some(after) = page.after {
        q = q.filter(delivery::Column::Id.gt(after));
    }
    if let Sight::Own(org) = sight {
        q = q.filter(delivery::Column::OrgId.eq(org));
    }
    let rows = q.all(&state.db.read).await.map_err(db)?;
    let redact = sight == Sight::AllWithoutContacts;
    let mut attempts: HashMap<Uuid, Vec<AttemptView>> = HashMap::new();
    for chunk in rows.chunks(300) {
        for a in attempt::Entity::find()
            .filter(attempt::Column::DeliveryId.is_in(chunk.iter().map(|d| d.id)))
            .order_by_asc(attempt::Column::Id)
            .all(&state.db.read)
            .await
            .map_err(db)?
        {
            attempts
                .entry(a.delivery_id)
                .or_default()
                .push(AttemptView {
                    attempted_at: a.attempted_at,
                    ok: a.ok,
                    detail: a.detail,
                    duration_ms: a.duration_ms,
                });
        }
    }
    let views: Vec<DeliveryView> = rows
        .into_iter()
        .map(|d| DeliveryView {
            attempts: attempts.remove(&d.id).unwrap_or_default(),
            id: d.id,
            org_id: d.org_id,
            contact_id: d.contact_id,
            contact_name: if redact {
                String::new()
            } else {
                d.contact_name
            },
            channel: d.channel,
            address: if redact { String::new() } else { d.address },
            step: d.step as u32 + 1,
            round: d.round as u32,
            state: d.state,
            last_error: d.last_error,
            delivered_at: d.delivered_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(paginate(views, page, |d| d.id, |d| d)))
}

#[utoipa::path(post, path = "/v1/notifications/{id}/ack", tag = "contacts", request_body = Option<AckBody>,
    params(("id" = Uuid, Path, description = "Notification id")),
    responses((status = 200, body = OrganizationStatus, description = "The organisation's state; repeating is harmless"),
              (status = 403), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn acknowledge(
    state: State,
    who: Identity,
    id: web::Path<String>,
    OptionalJson(body): OptionalJson<AckBody>,
) -> Result<HttpResponse, ApiError> {
    let (n, _) = visible_notification(&state, &who, &id).await?;
    if !crate::access::MANAGING_ROLES.iter().any(|r| who.has(*r)) {
        return Err(ApiError::Forbidden(
            "a manager, CISO, CSIRT or operator acknowledges for an organisation".into(),
        ));
    }
    let Some(mine) = who.org else {
        return Err(ApiError::Forbidden(
            "an acknowledgement is made for an organisation".into(),
        ));
    };
    let org = body.unwrap_or_default().org_id.unwrap_or(mine);
    if org != mine {
        return Err(ApiError::Forbidden(
            "org_id names another organisation: you acknowledge only for your own".into(),
        ));
    }
    let Some(r) = recipient::Entity::find()
        .filter(recipient::Column::NotificationId.eq(n.id))
        .filter(recipient::Column::OrgId.eq(org))
        .one(&state.db.read)
        .await
        .map_err(db)?
    else {
        return Err(ApiError::Forbidden(
            "this notification was not sent to your organisation".into(),
        ));
    };
    let outcome =
        escalation::acknowledge_now(&state.db, &state.outbox, r.id, &(&who).into(), "api")
            .await
            .map_err(db)?;
    match outcome {
        Some(Acknowledgement::Recorded(r) | Acknowledgement::Already(r)) => {
            Ok(HttpResponse::Ok().json(org_status(&r)))
        }
        None => Err(ApiError::NotFound("notification")),
    }
}

// ---- drills --------------------------------------------------------------

/// Runs shown in a drill's report, newest first.
const RUNS_REPORTED: u64 = 20;

fn drill_view(d: drill::Model, report: Option<Vec<drills::RunReport>>) -> DrillView {
    DrillView {
        id: d.id,
        platform_id: d.platform_id,
        started_by: d.started_by,
        repeat_every_hours: d.repeat_every_hours.map(|h| h as u32),
        next_run_at: d.next_run_at,
        runs: d.runs as u32,
        last_notification_id: d.last_notification_id,
        created_at: d.created_at,
        report,
    }
}

#[utoipa::path(post, path = "/v1/drills", tag = "contacts", request_body = CreateDrill,
    responses((status = 201, body = DrillView, description = "Started: the first run is on its way"),
              (status = 400, body = renkei_web::error::Problem), (status = 403), (status = 404)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn create_drill(
    state: State,
    who: Identity,
    ValidJson(body): ValidJson<CreateDrill>,
) -> Result<HttpResponse, ApiError> {
    let platform = access::platforms(&state)
        .operated(&who, body.platform_id, "starts contact drills")
        .await?;
    if let Some(h) = body.repeat_every_hours
        && !(1..=8_760).contains(&h)
    {
        return Err(ApiError::invalid(
            "repeat_every_hours",
            "must be from 1 to 8760 (a year)",
        ));
    }
    access::refresh_platform(&state, platform.id).await?;
    let now = Utc::now();
    let row = drill::Model {
        id: Uuid::now_v7(),
        platform_id: platform.id,
        started_by: who.sub.clone(),
        repeat_every_hours: body.repeat_every_hours.map(|h| h as i32),
        next_run_at: None,
        runs: 0,
        last_notification_id: None,
        created_at: now,
    };
    let txn = state.db.write.begin().await.map_err(db)?;
    drill::ActiveModel::from(row.clone())
        .insert(&txn)
        .await
        .map_err(db)?;
    drills::start_run(&txn, &state.outbox, &row, now)
        .await
        .map_err(db)?;
    let done = renkei_audit::Action::new("drill.started", row.id)
        .of(platform.owner_org_id)
        .detail(serde_json::json!({"platform_id": platform.id, "repeat_every_hours": row.repeat_every_hours}));
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    state.outbox.commit(txn).await.map_err(db)?;
    state.dispatch.notify_one();
    state.timer.notify_one();
    let saved = drill::Entity::find_by_id(row.id)
        .one(&state.db.write)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("drill"))?;
    Ok(HttpResponse::Created().json(drill_view(saved, None)))
}

#[utoipa::path(delete, path = "/v1/drills/{id}", tag = "contacts",
    params(("id" = Uuid, Path, description = "Drill id")),
    responses((status = 200, body = DrillView, description = "No more runs are scheduled; the reports stay"),
              (status = 403), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn stop_drill(
    state: State,
    who: Identity,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let d = visible_drill(&state, &who, &id).await?;
    access::platforms(&state)
        .operated(&who, d.platform_id, "stops its drills")
        .await?;
    let txn = state.db.write.begin().await.map_err(db)?;
    drills::stop(&txn, d.id).await.map_err(db)?;
    let done = renkei_audit::Action::new("drill.stopped", d.id)
        .detail(serde_json::json!({ "platform_id": d.platform_id }));
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    txn.commit().await.map_err(db)?;
    let d = drill::Entity::find_by_id(d.id)
        .one(&state.db.write)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("drill"))?;
    Ok(HttpResponse::Ok().json(drill_view(d, None)))
}

/// The drill if `who` sees it (its platform's operator, readers of
/// everything), else a 404.
async fn visible_drill(
    state: &ContactsState,
    who: &Identity,
    raw_id: &str,
) -> Result<drill::Model, ApiError> {
    let id = path_id(raw_id, "drill")?;
    let d = drill::Entity::find_by_id(id)
        .one(&state.db.read)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("drill"))?;
    match drill_platforms(state, who).await? {
        Some(platforms) if !platforms.contains(&d.platform_id) => Err(ApiError::NotFound("drill")),
        _ => Ok(d),
    }
}

/// Platforms whose drills `who` sees: `None` for every one.
async fn drill_platforms(
    state: &ContactsState,
    who: &Identity,
) -> Result<Option<Vec<Uuid>>, ApiError> {
    if who.reads_everything() {
        return Ok(None);
    }
    match (who.org, who.has(Role::Operator)) {
        (Some(org), true) => Ok(Some(
            store::platforms_operated_by(&state.db.read, org)
                .await
                .map_err(db)?,
        )),
        _ => Ok(Some(Vec::new())),
    }
}

#[utoipa::path(get, path = "/v1/drills", tag = "contacts", params(PageParams),
    responses((status = 200, description = "`{items, next}`: drills of the platforms the caller operates", body = renkei_web::openapi::PageOf<DrillView>)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn list_drills(
    state: State,
    who: Identity,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let page = page.page()?;
    let mut q = drill::Entity::find()
        .order_by_desc(drill::Column::Id)
        .limit(page.limit + 1);
    if let Some(before) = page.after {
        q = q.filter(drill::Column::Id.lt(before));
    }
    if let Some(platforms) = drill_platforms(&state, &who).await? {
        q = q.filter(drill::Column::PlatformId.is_in(platforms));
    }
    let rows = q.all(&state.db.read).await.map_err(db)?;
    Ok(HttpResponse::Ok().json(paginate(rows, page, |d| d.id, |d| drill_view(d, None))))
}

#[utoipa::path(get, path = "/v1/drills/{id}", tag = "contacts",
    params(("id" = Uuid, Path, description = "Drill id")),
    responses((status = 200, body = DrillView, description = "The drill with the report of every run"), (status = 404)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn get_drill(
    state: State,
    who: Identity,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let d = visible_drill(&state, &who, &id).await?;
    let operates = who.org.is_some()
        && store::platforms_operated_by(&state.db.read, who.org.unwrap_or_default())
            .await
            .map_err(db)?
            .contains(&d.platform_id)
        && who.has(Role::Operator);
    let mut report = drills::report(&state.db.read, d.id, RUNS_REPORTED)
        .await
        .map_err(db)?;
    if !operates {
        // Contact details are the operator's and the organisations' only.
        drills::redact(&mut report);
    }
    Ok(HttpResponse::Ok().json(drill_view(d, Some(report))))
}
