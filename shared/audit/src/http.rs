//! `GET /v1/audit` and `GET /v1/audit/heads`, served by every service for
//! the whole product: the entries come from every service over NATS
//! (`query.<service>.audit`), merged in time order, the heads from the
//! AUDIT stream. A service that does not answer is named in `unavailable`
//! and the others' entries are still returned.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use renkei_bus::subjects::AUDITED_SERVICES;
use renkei_web::error::query_id;
use renkei_web::openapi::Conventions;
use renkei_web::{ApiError, Identity, PageParams};
use serde::{Deserialize, Serialize};
use utoipa::OpenApi;

use crate::head::SignedHead;
use crate::query::{self, AuditEntry, AuditRequest, Caller, MAX_LIMIT};

/// What the audit routes need from a service's state.
#[derive(Clone, Debug)]
pub struct AuditReader {
    pub nats: async_nats::Client,
    /// How long each service is waited for.
    pub timeout: Duration,
}

/// A service state that serves the audit routes.
pub trait AuditState: Send + Sync + 'static {
    fn audit(&self) -> &AuditReader;
}

/// Filters and paging of `GET /v1/audit`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// registry, demarcation, contacts or emergency (default: all four).
    pub service: Option<String>,
    /// An action, such as `system.updated`.
    pub action: Option<String>,
    /// The id of the object acted on.
    pub object_id: Option<String>,
    /// The organisation the object belongs to (readers of everything only).
    pub organization_id: Option<String>,
    /// Page size, 1 to 500 (default 100; larger values get 500).
    pub limit: Option<String>,
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
}

/// A page of the audit record.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditList {
    /// Oldest first (by id, UUIDv7).
    pub items: Vec<AuditEntry>,
    /// The cursor of the next page; null on the last.
    pub next: Option<String>,
    /// Services that did not answer in time: their entries are missing
    /// from this page (the others' are there).
    pub unavailable: Vec<String>,
}

/// `GET /v1/audit/heads`'s filter.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HeadParams {
    /// registry, demarcation, contacts or emergency (default: all four).
    pub service: Option<String>,
}

/// The newest signed head of each service.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HeadList {
    pub items: Vec<SignedHead>,
}

fn services(raw: &Option<String>) -> Result<Vec<&'static str>, ApiError> {
    match raw.as_deref() {
        None | Some("") => Ok(AUDITED_SERVICES.to_vec()),
        Some(s) => AUDITED_SERVICES
            .iter()
            .find(|known| **known == s)
            .map(|known| vec![*known])
            .ok_or_else(|| {
                ApiError::invalid(
                    "service",
                    format!("must be one of {}", AUDITED_SERVICES.join(", ")),
                )
            }),
    }
}

fn bounded(
    field: &'static str,
    raw: &Option<String>,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match raw.as_deref() {
        None | Some("") => Ok(None),
        Some(v) if v.chars().count() > max => Err(ApiError::invalid(
            field,
            format!("must be at most {max} characters"),
        )),
        Some(v) => Ok(Some(v.to_owned())),
    }
}

/// The audit record the caller may read, from every service.
pub async fn list<S: AuditState>(
    state: web::Data<S>,
    who: Identity,
    params: web::Query<AuditParams>,
) -> Result<HttpResponse, ApiError> {
    let caller = Caller::from(&who);
    let visible = caller
        .visibility()
        .map_err(|why| ApiError::Forbidden(why.into()))?;
    let services = services(&params.service)?;
    let action = bounded("action", &params.action, 100)?;
    let object_id = bounded("object_id", &params.object_id, 200)?;
    let organization_id = query_id("organization_id", &params.organization_id)?;
    if organization_id.is_some() && visible.is_some() {
        return Err(ApiError::Forbidden(
            "only auditors, the central body and admins filter by organization_id".into(),
        ));
    }
    let page = PageParams {
        limit: params.limit.clone(),
        cursor: params.cursor.clone(),
    }
    .page()?;
    let limit = page.limit.min(MAX_LIMIT);
    let request = AuditRequest {
        caller,
        action,
        object_id,
        organization_id,
        after: page.after,
        limit,
    };
    let reader = state.audit();
    let merged = query::ask_all(&reader.nats, &services, &request, limit, reader.timeout).await;
    if merged.unavailable.len() == services.len() {
        return Err(ApiError::Unavailable(format!(
            "no audit log answered ({})",
            merged.unavailable.join(", ")
        )));
    }
    let next = if merged.more {
        merged.items.last().map(|e| e.id.to_string())
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(AuditList {
        items: merged.items,
        next,
        unavailable: merged.unavailable,
    }))
}

/// The newest signed head of each service, from the AUDIT stream.
pub async fn heads<S: AuditState>(
    state: web::Data<S>,
    _who: Identity,
    params: web::Query<HeadParams>,
) -> Result<HttpResponse, ApiError> {
    let services = services(&params.service)?;
    let items = crate::heads::latest(&state.audit().nats, &services)
        .await
        .map_err(|e| ApiError::Unavailable(format!("{e:#}")))?;
    Ok(HttpResponse::Ok().json(HeadList { items }))
}

/// The audit routes, for a service whose state is `S`.
pub fn routes<S: AuditState>(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/audit", web::get().to(list::<S>))
        .route("/v1/audit/heads", web::get().to(heads::<S>));
}

/// The audit record of every service, oldest first. Auditors, the central
/// body and admins read everything; anyone else reads the entries of their
/// organisation: its own actions and the actions on its objects. A service
/// that does not answer is named in `unavailable` and the others' entries
/// are returned (503 only when none answers).
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = AuditList), (status = 400, body = renkei_web::error::Problem),
              (status = 403, body = renkei_web::error::Problem), (status = 503, body = renkei_web::error::Problem)),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn list_doc() {}

/// The newest signed chain head of each service (Ed25519, hex), as
/// published on `audit.head.<service>`; heads are not secret, so every
/// identity may read them. Keep them, and give them to
/// `renkei audit verify --heads FILE`.
#[utoipa::path(get, path = "/v1/audit/heads", tag = "audit", params(HeadParams),
    responses((status = 200, body = HeadList), (status = 400, body = renkei_web::error::Problem),
              (status = 503, body = renkei_web::error::Problem)),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn heads_doc() {}

/// The audit routes' part of a service's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(list_doc, heads_doc),
    components(schemas(AuditList, AuditEntry, HeadList, SignedHead)),
    tags((name = "audit", description = "The tamper-evident audit record of every service")),
    modifiers(&Conventions)
)]
pub struct AuditApi;

/// `doc` with the audit routes added.
pub fn with_audit(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    doc.merge(AuditApi::openapi());
    doc
}
