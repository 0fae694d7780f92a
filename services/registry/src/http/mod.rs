//! The registry's HTTP API under `/v1`.

pub mod dto;

use std::collections::HashSet;

use actix_web::{HttpResponse, web};
use chrono::Utc;
use renkei_web::error::query_id;
use renkei_web::error::{db, invalid, path_id};
use renkei_web::openapi::Conventions;
use renkei_web::pagination::paginate;
use renkei_web::{ApiError, Identity, PageParams, Role, ValidJson};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, SqlErr, TransactionTrait,
};
use utoipa::OpenApi;
use uuid::Uuid;

use renkei_audit::Action;

use crate::access;
use crate::domain::{
    self, Category, CategorySet, Lifecycle, LinkKind, OrgKind, Ratings, SystemKind,
};
use crate::events;
use crate::service::RegistryState;
use crate::store::{self, link, organization, system};
use dto::*;

type State = web::Data<RegistryState>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/organizations", web::post().to(create_organization))
        .route("/v1/organizations", web::get().to(list_organizations))
        .route("/v1/organizations/{id}", web::get().to(get_organization))
        .route(
            "/v1/organizations/{id}",
            web::patch().to(update_organization),
        )
        .route("/v1/systems", web::post().to(create_system))
        .route("/v1/systems", web::get().to(list_systems))
        .route("/v1/systems/{id}", web::get().to(get_system))
        .route("/v1/systems/{id}", web::patch().to(update_system))
        .route(
            "/v1/systems/{id}/lifecycle",
            web::post().to(change_lifecycle),
        )
        .route("/v1/systems/{id}/blast-radius", web::get().to(blast_radius))
        .route("/v1/links", web::post().to(create_link))
        .route("/v1/links", web::get().to(list_links))
        .route("/v1/links/{id}", web::delete().to(delete_link))
        .configure(renkei_audit::http::routes::<RegistryState>);
}

#[derive(OpenApi)]
#[openapi(
    paths(
        create_organization, list_organizations, get_organization, update_organization,
        create_system, list_systems, get_system, update_system, change_lifecycle, blast_radius,
        create_link, list_links, delete_link
    ),
    components(schemas(CreateOrganization, UpdateOrganization, Organization, CreateSystem, UpdateSystem, System, ChangeLifecycle,
                       CreateLink, Link, Affected, BlastRadius, renkei_web::error::Problem)),
    tags((name = "registry", description = "Organisations, systems, links and blast radius")),
    modifiers(&Conventions)
)]
pub struct ApiDoc;

// ---- organisations -------------------------------------------------------

#[utoipa::path(post, path = "/v1/organizations", tag = "registry", request_body = CreateOrganization,
    responses((status = 201, body = Organization), (status = 400, body = renkei_web::error::Problem), (status = 403)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(organization.kind))]
async fn create_organization(
    state: State,
    who: Identity,
    ValidJson(body): ValidJson<CreateOrganization>,
) -> Result<HttpResponse, ApiError> {
    if !who.is_admin() {
        return Err(ApiError::Forbidden(
            "only an installation admin registers organisations".into(),
        ));
    }
    let name = domain::valid_name("name", &body.name, 200).map_err(invalid)?;
    let kind = OrgKind::parse("kind", &body.kind).map_err(invalid)?;
    let competent_kind = match body.competent_org_id {
        Some(id) => organization::Entity::find_by_id(id)
            .one(&state.db.read)
            .await
            .map_err(db)?
            .and_then(|o| OrgKind::parse("kind", &o.kind).ok()),
        None => None,
    };
    domain::organization::check_competent_agency(
        kind,
        competent_kind,
        body.competent_org_id.is_some(),
    )
    .map_err(invalid)?;
    let model = organization::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(name),
        kind: Set(kind.as_str().to_owned()),
        competent_org_id: Set(body.competent_org_id),
        created_at: Set(Utc::now()),
    };
    let txn = state.db.write.begin().await.map_err(db)?;
    let saved = model.insert(&txn).await.map_err(name_taken)?;
    state
        .outbox
        .stage(
            &txn,
            Some(saved.id),
            &events::organization_registered(&saved),
        )
        .await
        .map_err(db)?;
    let done = Action::new("organization.registered", saved.id)
        .of(saved.id)
        .detail(serde_json::json!({"name": saved.name, "kind": saved.kind}));
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    state.outbox.commit(txn).await.map_err(db)?;
    Ok(HttpResponse::Created().json(Organization::from(saved)))
}

/// Organisation names are unique: a taken one is a 409.
fn name_taken(e: sea_orm::DbErr) -> ApiError {
    match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => {
            ApiError::conflict("duplicate_name", "an organisation with this name exists")
        }
        _ => db(e),
    }
}

#[utoipa::path(patch, path = "/v1/organizations/{id}", tag = "registry", request_body = UpdateOrganization,
    responses((status = 200, body = Organization), (status = 400, body = renkei_web::error::Problem),
              (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(organization.id = %id))]
async fn update_organization(
    state: State,
    who: Identity,
    id: web::Path<String>,
    ValidJson(body): ValidJson<UpdateOrganization>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "organization")?;
    if visible_orgs(&state, &who).is_some_and(|orgs| !orgs.contains(&id)) {
        return Err(ApiError::NotFound("organization"));
    }
    if !who.is_admin() {
        return Err(ApiError::Forbidden(
            "only an installation admin changes an organisation".into(),
        ));
    }
    if let Some(field) = body.server_controlled_field() {
        return Err(ApiError::invalid(
            field,
            "is set by the server and cannot be changed here",
        ));
    }
    let name = body
        .name
        .as_deref()
        .map(|n| domain::valid_name("name", n, 200))
        .transpose()
        .map_err(invalid)?;
    let txn = state.db.write.begin().await.map_err(db)?;
    let current = organization::Entity::find_by_id(id)
        .one(&txn)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("organization"))?;
    let Some(name) = name.filter(|n| *n != current.name) else {
        txn.rollback().await.map_err(db)?;
        return Ok(HttpResponse::Ok().json(Organization::from(current)));
    };
    let before = current.name.clone();
    let mut model: organization::ActiveModel = current.into();
    model.name = Set(name);
    let saved = model.update(&txn).await.map_err(name_taken)?;
    state
        .outbox
        .stage(
            &txn,
            Some(saved.id),
            &events::organization_updated(&saved, vec!["name".to_owned()]),
        )
        .await
        .map_err(db)?;
    let done = Action::new("organization.updated", saved.id)
        .of(saved.id)
        .detail(serde_json::json!({"name": saved.name, "was": before}));
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    state.outbox.commit(txn).await.map_err(db)?;
    Ok(HttpResponse::Ok().json(Organization::from(saved)))
}

/// Systems named by a request that this replica's index does not hold
/// yet (made through another replica a moment ago) are read from the
/// database first.
async fn caught_up(
    state: &RegistryState,
    ids: impl IntoIterator<Item = Uuid>,
) -> Result<(), ApiError> {
    crate::replica::catch_up(&state.db, &state.index, ids)
        .await
        .map_err(db)
}

/// Organisations `who` may see: everything for readers of everything, else
/// its own and those sharing a platform with it.
fn visible_orgs(state: &RegistryState, who: &Identity) -> Option<HashSet<Uuid>> {
    if who.reads_everything() {
        return None;
    }
    let index = state.index.read();
    let mut orgs: HashSet<Uuid> = who
        .org
        .map(|org| index.members_of(&index.platforms_of(org)))
        .unwrap_or_default()
        .into_iter()
        .collect();
    orgs.extend(who.org);
    Some(orgs)
}

#[utoipa::path(get, path = "/v1/organizations", tag = "registry", params(PageParams),
    responses((status = 200, description = "`{items, next}`", body = renkei_web::openapi::PageOf<Organization>)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn list_organizations(
    state: State,
    who: Identity,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let page = page.page()?;
    let mut query = organization::Entity::find()
        .order_by_asc(organization::Column::Id)
        .limit(page.limit + 1);
    if let Some(after) = page.after {
        query = query.filter(organization::Column::Id.gt(after));
    }
    if let Some(orgs) = visible_orgs(&state, &who) {
        query = query.filter(organization::Column::Id.is_in(orgs));
    }
    let rows = query.all(&state.db.read).await.map_err(db)?;
    Ok(HttpResponse::Ok().json(paginate(rows, page, |m| m.id, Organization::from)))
}

#[utoipa::path(get, path = "/v1/organizations/{id}", tag = "registry",
    responses((status = 200, body = Organization), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(organization.id = %id))]
async fn get_organization(
    state: State,
    who: Identity,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "organization")?;
    if visible_orgs(&state, &who).is_some_and(|orgs| !orgs.contains(&id)) {
        return Err(ApiError::NotFound("organization"));
    }
    let org = organization::Entity::find_by_id(id)
        .one(&state.db.read)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("organization"))?;
    Ok(HttpResponse::Ok().json(Organization::from(org)))
}

// ---- systems -------------------------------------------------------------

#[utoipa::path(post, path = "/v1/systems", tag = "registry", request_body = CreateSystem,
    responses((status = 201, body = System), (status = 400, body = renkei_web::error::Problem), (status = 403),
              (status = 409, description = "The platform is retired")),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(system.kind = %body.0.kind))]
async fn create_system(
    state: State,
    who: Identity,
    body: ValidJson<CreateSystem>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let name = domain::valid_name("name", &body.name, 200).map_err(invalid)?;
    let kind = SystemKind::parse("kind", &body.kind).map_err(invalid)?;
    let ratings =
        Ratings::new(body.confidentiality, body.integrity, body.availability).map_err(invalid)?;
    let description = domain::system::valid_description(body.description.as_deref().unwrap_or(""))
        .map_err(invalid)?;
    let owner = organization::Entity::find_by_id(body.owner_org_id)
        .one(&state.db.read)
        .await
        .map_err(db)?
        .ok_or_else(|| ApiError::invalid("owner_org_id", "names no known organisation"))?;
    let id = Uuid::now_v7();
    let platform_id = match kind {
        SystemKind::Platform => {
            if body.platform_id.is_some() {
                return Err(ApiError::invalid(
                    "platform_id",
                    "a platform is not linked to another platform",
                ));
            }
            if owner.kind != OrgKind::PlatformOperator.as_str() {
                return Err(ApiError::invalid(
                    "owner_org_id",
                    "a platform is owned by a platform_operator organisation",
                ));
            }
            if !(who.is_admin() || who.acts_for(owner.id, Some(Role::Operator))) {
                return Err(ApiError::Forbidden(
                    "only the owning platform operator or an admin registers a platform".into(),
                ));
            }
            id
        }
        SystemKind::Linked => {
            let platform_id = body.platform_id.ok_or_else(|| {
                ApiError::invalid("platform_id", "is required for a linked system")
            })?;
            caught_up(&state, [platform_id]).await?;
            let index = state.index.read();
            let platform = index
                .system(platform_id)
                .filter(|p| p.id == p.platform_id && access::can_read_platform(&who, &index, p.id))
                .ok_or_else(|| ApiError::invalid("platform_id", "names no platform you can see"))?;
            if !platform.lifecycle.carries_incidents() {
                return Err(ApiError::conflict(
                    "platform_retired",
                    "the platform is retired",
                ));
            }
            if !access::operates_platform(&who, &index, platform_id) {
                return Err(ApiError::Forbidden(
                    "only the platform operator registers linked systems".into(),
                ));
            }
            platform_id
        }
    };
    let now = Utc::now();
    let model = system::ActiveModel {
        id: Set(id),
        name: Set(name),
        kind: Set(kind.as_str().to_owned()),
        owner_org_id: Set(owner.id),
        platform_id: Set(platform_id),
        confidentiality: Set(ratings.confidentiality),
        integrity: Set(ratings.integrity),
        availability: Set(ratings.availability),
        description: Set(description),
        lifecycle: Set(kind.initial_lifecycle().as_str().to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let txn = state.db.write.begin().await.map_err(db)?;
    let saved = model.insert(&txn).await.map_err(db)?;
    state
        .outbox
        .stage(
            &txn,
            Some(saved.owner_org_id),
            &events::system_registered(&saved),
        )
        .await
        .map_err(db)?;
    let done = Action::new("system.registered", saved.id)
        .of(saved.owner_org_id)
        .detail(serde_json::json!({"name": saved.name, "kind": saved.kind, "platform_id": saved.platform_id}));
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    state.outbox.commit(txn).await.map_err(db)?;
    state.index.write().upsert_system(store::node_of(&saved));
    Ok(HttpResponse::Created().json(System::from(saved)))
}

#[utoipa::path(get, path = "/v1/systems", tag = "registry", params(SystemFilter, PageParams),
    responses((status = 200, description = "`{items, next}`", body = renkei_web::openapi::PageOf<System>)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn list_systems(
    state: State,
    who: Identity,
    filter: web::Query<SystemFilter>,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let page = page.page()?;
    let platform = query_id("platform_id", &filter.platform_id)?;
    let owner = query_id("owner_org_id", &filter.owner_org_id)?;
    let lifecycle = match filter.lifecycle.as_deref() {
        None | Some("") => None,
        Some(v) => Some(Lifecycle::parse("lifecycle", v).map_err(invalid)?),
    };
    let mut query = system::Entity::find()
        .order_by_asc(system::Column::Id)
        .limit(page.limit + 1);
    if let Some(after) = page.after {
        query = query.filter(system::Column::Id.gt(after));
    }
    if let Some(p) = platform {
        query = query.filter(system::Column::PlatformId.eq(p));
    }
    if let Some(o) = owner {
        query = query.filter(system::Column::OwnerOrgId.eq(o));
    }
    if let Some(l) = lifecycle {
        query = query.filter(system::Column::Lifecycle.eq(l.as_str()));
    }
    if !who.reads_everything() {
        let platforms = who
            .org
            .map(|org| state.index.read().platforms_of(org))
            .unwrap_or_default();
        query = query.filter(system::Column::PlatformId.is_in(platforms));
    }
    let rows = query.all(&state.db.read).await.map_err(db)?;
    Ok(HttpResponse::Ok().json(paginate(rows, page, |m| m.id, System::from)))
}

#[utoipa::path(get, path = "/v1/systems/{id}", tag = "registry",
    responses((status = 200, body = System), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(system.id = %id))]
async fn get_system(
    state: State,
    who: Identity,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "system")?;
    caught_up(&state, [id]).await?;
    access::readable(&who, &state.index.read(), id)?;
    let model = system::Entity::find_by_id(id)
        .one(&state.db.read)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("system"))?;
    Ok(HttpResponse::Ok().json(System::from(model)))
}

#[utoipa::path(patch, path = "/v1/systems/{id}", tag = "registry", request_body = UpdateSystem,
    responses((status = 200, body = System), (status = 400), (status = 403), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(system.id = %id))]
async fn update_system(
    state: State,
    who: Identity,
    id: web::Path<String>,
    ValidJson(body): ValidJson<UpdateSystem>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "system")?;
    caught_up(&state, [id]).await?;
    {
        let index = state.index.read();
        let node = access::readable(&who, &index, id)?;
        if !access::can_describe(&who, &index, &node) {
            return Err(ApiError::Forbidden(
                "only the system's owner or its platform operator edits it".into(),
            ));
        }
    }
    if let Some(field) = body.server_controlled_field() {
        let hint = if field == "lifecycle" {
            " (use POST /v1/systems/{id}/lifecycle)"
        } else {
            ""
        };
        return Err(ApiError::invalid(
            field,
            format!("is set by the server and cannot be changed here{hint}"),
        ));
    }
    let name = body
        .name
        .as_deref()
        .map(|n| domain::valid_name("name", n, 200))
        .transpose()
        .map_err(invalid)?;
    let description = body
        .description
        .as_deref()
        .map(domain::system::valid_description)
        .transpose()
        .map_err(invalid)?;
    let c = body
        .confidentiality
        .map(|v| domain::system::rating("confidentiality", v, 3))
        .transpose()
        .map_err(invalid)?;
    let i = body
        .integrity
        .map(|v| domain::system::rating("integrity", v, 2))
        .transpose()
        .map_err(invalid)?;
    let a = body
        .availability
        .map(|v| domain::system::rating("availability", v, 2))
        .transpose()
        .map_err(invalid)?;

    let txn = state.db.write.begin().await.map_err(db)?;
    let current = system::Entity::find_by_id(id)
        .one(&txn)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("system"))?;
    let mut changed = Vec::new();
    let mut model: system::ActiveModel = current.clone().into();
    if let Some(v) = name.filter(|v| *v != current.name) {
        model.name = Set(v);
        changed.push("name".to_owned());
    }
    if let Some(v) = description.filter(|v| *v != current.description) {
        model.description = Set(v);
        changed.push("description".to_owned());
    }
    for (field, value, old, slot) in [
        (
            "confidentiality",
            c,
            current.confidentiality,
            &mut model.confidentiality,
        ),
        ("integrity", i, current.integrity, &mut model.integrity),
        (
            "availability",
            a,
            current.availability,
            &mut model.availability,
        ),
    ] {
        if let Some(v) = value.filter(|v| *v != old) {
            *slot = Set(v);
            changed.push(field.to_owned());
        }
    }
    if changed.is_empty() {
        txn.rollback().await.map_err(db)?;
        return Ok(HttpResponse::Ok().json(System::from(current)));
    }
    model.updated_at = Set(Utc::now());
    let saved = model.update(&txn).await.map_err(db)?;
    state
        .outbox
        .stage(
            &txn,
            Some(saved.owner_org_id),
            &events::system_updated(&saved, changed.clone()),
        )
        .await
        .map_err(db)?;
    let done = Action::new("system.updated", saved.id)
        .of(saved.owner_org_id)
        .detail(serde_json::json!({ "changed": changed }));
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    state.outbox.commit(txn).await.map_err(db)?;
    Ok(HttpResponse::Ok().json(System::from(saved)))
}

#[utoipa::path(post, path = "/v1/systems/{id}/lifecycle", tag = "registry", request_body = ChangeLifecycle,
    responses((status = 200, body = System), (status = 400), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(system.id = %id))]
async fn change_lifecycle(
    state: State,
    who: Identity,
    id: web::Path<String>,
    ValidJson(body): ValidJson<ChangeLifecycle>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "system")?;
    caught_up(&state, [id]).await?;
    {
        let index = state.index.read();
        let node = access::readable(&who, &index, id)?;
        if !access::operates_platform(&who, &index, node.platform_id) {
            return Err(ApiError::Forbidden(
                "only the platform operator changes a system's lifecycle".into(),
            ));
        }
    }
    let to = Lifecycle::parse("to", &body.to).map_err(invalid)?;
    if body
        .reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > 2_000)
    {
        return Err(ApiError::invalid(
            "reason",
            "must be at most 2000 characters",
        ));
    }
    let saved = events::apply_lifecycle(&state.db, &state.outbox, id, to, None, &(&who).into())
        .await?
        .ok_or(ApiError::NotFound("system"))?;
    state.index.write().set_lifecycle(id, to);
    Ok(HttpResponse::Ok().json(System::from(saved)))
}

#[utoipa::path(get, path = "/v1/systems/{id}/blast-radius", tag = "registry", params(CategoryParam),
    responses((status = 200, body = BlastRadius), (status = 400), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(system.id = %id, incident.category))]
async fn blast_radius(
    state: State,
    who: Identity,
    id: web::Path<String>,
    q: web::Query<CategoryParam>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "system")?;
    let category =
        Category::parse("category", q.category.as_deref().unwrap_or("")).map_err(|e| {
            if q.category.is_none() {
                ApiError::invalid("category", "is required")
            } else {
                invalid(e)
            }
        })?;
    caught_up(&state, [id]).await?;
    let index = state.index.read();
    access::readable(&who, &index, id)?;
    let reached = index
        .blast_radius(id, category)
        .ok_or(ApiError::NotFound("system"))?;
    drop(index);
    Ok(HttpResponse::Ok().json(BlastRadius {
        origin: id,
        category: category.as_str().to_owned(),
        affected: reached
            .into_iter()
            .map(|r| Affected {
                system_id: r.system_id,
                owner_org_id: r.owner_org_id,
                hops: r.hops,
                path: r.path,
            })
            .collect(),
    }))
}

// ---- links ---------------------------------------------------------------

#[utoipa::path(post, path = "/v1/links", tag = "registry", request_body = CreateLink,
    responses((status = 201, body = Link), (status = 400), (status = 403), (status = 409)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn create_link(
    state: State,
    who: Identity,
    ValidJson(body): ValidJson<CreateLink>,
) -> Result<HttpResponse, ApiError> {
    let kind = LinkKind::parse("kind", &body.kind).map_err(invalid)?;
    let propagates = CategorySet::parse("propagates", &body.propagates).map_err(invalid)?;
    if body.from_system_id == body.to_system_id {
        return Err(ApiError::invalid(
            "to_system_id",
            "a link joins two different systems",
        ));
    }
    caught_up(&state, [body.from_system_id, body.to_system_id]).await?;
    let platform_id = {
        let index = state.index.read();
        let from = access::readable(&who, &index, body.from_system_id)
            .map_err(|_| ApiError::invalid("from_system_id", "names no system you can see"))?;
        let to = access::readable(&who, &index, body.to_system_id)
            .map_err(|_| ApiError::invalid("to_system_id", "names no system you can see"))?;
        if from.platform_id != to.platform_id {
            return Err(ApiError::invalid(
                "to_system_id",
                "is on another platform; links stay within one platform",
            ));
        }
        if !access::operates_platform(&who, &index, from.platform_id) {
            return Err(ApiError::Forbidden(
                "only the platform operator adds links".into(),
            ));
        }
        for (field, node) in [("from_system_id", from), ("to_system_id", to)] {
            if !node.lifecycle.carries_incidents() {
                return Err(ApiError::conflict(
                    "system_retired",
                    format!("{field} names a retired system"),
                ));
            }
        }
        from.platform_id
    };
    let model = link::ActiveModel {
        id: Set(Uuid::now_v7()),
        platform_id: Set(platform_id),
        from_system_id: Set(body.from_system_id),
        to_system_id: Set(body.to_system_id),
        kind: Set(kind.as_str().to_owned()),
        propagates: Set(propagates.mask()),
        created_at: Set(Utc::now()),
    };
    let txn = state.db.write.begin().await.map_err(db)?;
    let saved = model.insert(&txn).await.map_err(|e| match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => ApiError::conflict(
            "duplicate_link",
            "a link of this kind already joins these systems in this direction",
        ),
        _ => db(e),
    })?;
    let platform_owner = state
        .index
        .read()
        .system(platform_id)
        .map(|p| p.owner_org_id);
    state
        .outbox
        .stage(&txn, platform_owner, &events::link_added(&saved))
        .await
        .map_err(db)?;
    renkei_audit::record(&txn, &who, link_action("link.added", &state, &saved))
        .await
        .map_err(db)?;
    state.outbox.commit(txn).await.map_err(db)?;
    state.index.write().add_link(
        saved.id,
        saved.from_system_id,
        saved.to_system_id,
        propagates,
    );
    Ok(HttpResponse::Created().json(Link::from(saved)))
}

#[utoipa::path(get, path = "/v1/links", tag = "registry", params(LinkFilter, PageParams),
    responses((status = 200, description = "`{items, next}`", body = renkei_web::openapi::PageOf<Link>)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn list_links(
    state: State,
    who: Identity,
    filter: web::Query<LinkFilter>,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let page = page.page()?;
    let platform = query_id("platform_id", &filter.platform_id)?;
    let system = query_id("system_id", &filter.system_id)?;
    let mut query = link::Entity::find()
        .order_by_asc(link::Column::Id)
        .limit(page.limit + 1);
    if let Some(after) = page.after {
        query = query.filter(link::Column::Id.gt(after));
    }
    if let Some(p) = platform {
        query = query.filter(link::Column::PlatformId.eq(p));
    }
    if let Some(s) = system {
        query = query.filter(
            Condition::any()
                .add(link::Column::FromSystemId.eq(s))
                .add(link::Column::ToSystemId.eq(s)),
        );
    }
    if !who.reads_everything() {
        let platforms = who
            .org
            .map(|org| state.index.read().platforms_of(org))
            .unwrap_or_default();
        query = query.filter(link::Column::PlatformId.is_in(platforms));
    }
    let rows = query.all(&state.db.read).await.map_err(db)?;
    Ok(HttpResponse::Ok().json(paginate(rows, page, |m| m.id, Link::from)))
}

#[utoipa::path(delete, path = "/v1/links/{id}", tag = "registry",
    responses((status = 204), (status = 403), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(link.id = %id))]
async fn delete_link(
    state: State,
    who: Identity,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "link")?;
    let txn = state.db.write.begin().await.map_err(db)?;
    let existing = link::Entity::find_by_id(id)
        .one(&txn)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("link"))?;
    caught_up(&state, [existing.platform_id]).await?;
    let platform_owner = {
        let index = state.index.read();
        if !access::can_read_platform(&who, &index, existing.platform_id) {
            return Err(ApiError::NotFound("link"));
        }
        if !access::operates_platform(&who, &index, existing.platform_id) {
            return Err(ApiError::Forbidden(
                "only the platform operator removes links".into(),
            ));
        }
        index.system(existing.platform_id).map(|p| p.owner_org_id)
    };
    link::Entity::delete_by_id(id)
        .exec(&txn)
        .await
        .map_err(db)?;
    state
        .outbox
        .stage(&txn, platform_owner, &events::link_removed(&existing))
        .await
        .map_err(db)?;
    renkei_audit::record(&txn, &who, link_action("link.removed", &state, &existing))
        .await
        .map_err(db)?;
    state.outbox.commit(txn).await.map_err(db)?;
    state.index.write().remove_link(id);
    Ok(HttpResponse::NoContent().finish())
}

/// A link's audit entry: it belongs to the organisation whose system it
/// leads to (the platform operator, who made it, reads its own actions).
fn link_action(action: &str, state: &RegistryState, link: &link::Model) -> Action {
    let to_owner = state
        .index
        .read()
        .system(link.to_system_id)
        .map(|s| s.owner_org_id);
    Action::new(action, link.id)
        .of(to_owner)
        .detail(serde_json::json!({
            "from_system_id": link.from_system_id,
            "to_system_id": link.to_system_id,
            "kind": link.kind,
        }))
}
