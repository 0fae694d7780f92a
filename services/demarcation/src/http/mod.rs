//! The demarcation HTTP API under `/v1`.

pub mod dto;

use std::collections::{BTreeSet, HashMap};

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use renkei_bus::contracts::demarcation as contract;
use renkei_bus::contracts::registry::PlatformSystemsQuery;
use renkei_web::error::{db, invalid, path_id};
use renkei_web::openapi::Conventions;
use renkei_web::{ApiError, Identity, OptionalJson, Role, ValidJson};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, SqlErr,
    TransactionTrait,
};
use utoipa::OpenApi;
use uuid::Uuid;

use renkei_audit::Action;

use crate::access;
use crate::consensus::{self, DecisionInput, FlowError};
use crate::domain::document::{self, AcceptanceLine, DocumentInput, Lang};
use crate::domain::rules::{DEFAULT_RESPONSE_WINDOW, check_deadline};
use crate::domain::{
    Assignment, ClassEntry, Cooperation, Decision, DecisionRefused, Matrix, RaciRole,
    ResponsibilityClass, Rule, RulesContent, VersionState, valid_control_id, valid_name,
};
use crate::events;
use crate::service::DemarcationState;
use crate::store::{self, control, rule_decision, rule_version, system};
use dto::*;

type State = web::Data<DemarcationState>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/controls", web::get().to(list_controls))
        .route("/v1/controls", web::post().to(create_control))
        .route(
            "/v1/platforms/{platform_id}/matrix",
            web::get().to(get_matrix),
        )
        .route(
            "/v1/platforms/{platform_id}/matrix",
            web::put().to(put_matrix),
        )
        .route(
            "/v1/platforms/{platform_id}/matrix/gaps",
            web::get().to(get_gaps),
        )
        .route(
            "/v1/platforms/{platform_id}/rules",
            web::post().to(create_rules),
        )
        .route(
            "/v1/platforms/{platform_id}/rules",
            web::get().to(list_rules),
        )
        .route("/v1/rules/{version_id}", web::get().to(get_rules))
        .route("/v1/rules/{version_id}", web::patch().to(update_rules))
        .route("/v1/rules/{version_id}/propose", web::post().to(propose))
        .route("/v1/rules/{version_id}/withdraw", web::post().to(withdraw))
        .route("/v1/rules/{version_id}/decisions", web::post().to(decide))
        .route(
            "/v1/rules/{version_id}/decisions",
            web::get().to(list_decisions),
        )
        .route(
            "/v1/rules/{version_id}/consensus",
            web::get().to(get_consensus),
        )
        .route(
            "/v1/rules/{version_id}/document",
            web::get().to(get_document),
        )
        .configure(renkei_audit::http::routes::<DemarcationState>);
}

#[derive(OpenApi)]
#[openapi(
    paths(
        list_controls, create_control, get_matrix, put_matrix, get_gaps,
        create_rules, list_rules, get_rules, update_rules, propose, withdraw,
        decide, list_decisions, get_consensus, get_document
    ),
    components(schemas(CreateControl, Control, AssignmentBody, ClassBody, PutMatrix, MatrixView,
                       GapView, GapReport, RuleBody, CooperationBody, CreateRules, UpdateRules,
                       RulesVersionView, ProposeBody, RuleObjection, DecisionBody, DecisionView,
                       PartyView, ConsensusView, renkei_web::error::Problem)),
    tags((name = "demarcation", description = "Control catalogue, responsibility matrix, common rules and consensus")),
    modifiers(&Conventions)
)]
pub struct ApiDoc;

impl From<FlowError> for ApiError {
    fn from(e: FlowError) -> Self {
        match e {
            FlowError::Invalid(e) => invalid(e),
            FlowError::NotFound(what) => ApiError::NotFound(what),
            FlowError::Forbidden(why) => ApiError::Forbidden(why),
            FlowError::Illegal(m) | FlowError::Refused(DecisionRefused::State(m)) => {
                ApiError::conflict("illegal_state", m.to_string())
            }
            FlowError::Refused(r @ DecisionRefused::AlreadyAccepted) => {
                ApiError::conflict("already_accepted", r.to_string())
            }
            FlowError::Refused(r @ DecisionRefused::NothingToWithdraw) => {
                ApiError::conflict("nothing_to_withdraw", r.to_string())
            }
            FlowError::Changed => ApiError::conflict("changed_concurrently", e.to_string()),
            FlowError::Db(e) => db(e),
        }
    }
}

fn version_no(v: i32) -> u32 {
    u32::try_from(v).unwrap_or_default()
}

// ---- controls ------------------------------------------------------------

#[utoipa::path(get, path = "/v1/controls", tag = "demarcation",
    responses((status = 200, description = "`{items}` in catalogue order", body = renkei_web::openapi::PageOf<Control>)), security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn list_controls(state: State, who: Identity) -> Result<HttpResponse, ApiError> {
    let items: Vec<Control> = store::catalogue(&state.db.read)
        .await
        .map_err(db)?
        .into_iter()
        .map(Control::from)
        .map(|mut c| {
            // The catalogue is shared by every platform, but which
            // organisation added a control is its own and the readers of
            // everything's to know: to an organisation on another platform
            // it does not exist.
            if !(who.reads_everything() || c.created_by_org == who.org) {
                c.created_by_org = None;
            }
            c
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items, "next": null })))
}

#[utoipa::path(post, path = "/v1/controls", tag = "demarcation", request_body = CreateControl,
    responses((status = 201, body = Control), (status = 400), (status = 403), (status = 409)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
async fn create_control(
    state: State,
    who: Identity,
    ValidJson(body): ValidJson<CreateControl>,
) -> Result<HttpResponse, ApiError> {
    if !(who.is_admin() || who.has(Role::Operator)) {
        return Err(ApiError::Forbidden(
            "only platform operators add controls".into(),
        ));
    }
    let id = valid_control_id("id", &body.id).map_err(invalid)?;
    let title = |field: &str, v: &Option<String>| {
        v.as_deref()
            .map(|t| valid_name(field, t, 300))
            .transpose()
            .map_err(invalid)
    };
    let ja = title("title_ja", &body.title_ja)?;
    let en = title("title_en", &body.title_en)?;
    if ja.is_none() && en.is_none() {
        return Err(ApiError::invalid("title_ja", "give title_ja or title_en"));
    }
    let area = match body.area.as_deref() {
        Some(a) => valid_control_id("area", a).map_err(invalid)?,
        None => "custom".to_owned(),
    };
    let description = body.description.unwrap_or_default();
    if description.chars().count() > 5_000 {
        return Err(ApiError::invalid(
            "description",
            "must be at most 5000 characters",
        ));
    }
    let model = control::ActiveModel {
        id: Set(id),
        area: Set(area),
        title_ja: Set(ja.clone().or(en.clone()).unwrap_or_default()),
        title_en: Set(en.or(ja).unwrap_or_default()),
        description: Set(description),
        builtin: Set(false),
        created_by_org: Set(who.org),
        created_at: Set(Utc::now()),
    };
    let txn = state.db.write.begin().await.map_err(db)?;
    let saved = model.insert(&txn).await.map_err(|e| match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => {
            ApiError::conflict("duplicate_control", "a control with this id exists")
        }
        _ => db(e),
    })?;
    let done = Action::new("control.created", &saved.id)
        .of(who.org)
        .detail(serde_json::json!({"area": saved.area, "title_en": saved.title_en}));
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    txn.commit().await.map_err(db)?;
    Ok(HttpResponse::Created().json(Control::from(saved)))
}

// ---- matrix --------------------------------------------------------------

fn matrix_from_body(body: &PutMatrix) -> Result<Matrix, ApiError> {
    let assignments = body
        .assignments
        .iter()
        .enumerate()
        .map(|(i, a)| {
            Ok(Assignment {
                control: a.control.clone(),
                system_id: a.system_id,
                organization_id: a.organization_id,
                role: RaciRole::parse(&format!("assignments[{i}].role"), &a.role)
                    .map_err(invalid)?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let classes = body
        .classes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Ok(ClassEntry {
                control: c.control.clone(),
                system_id: c.system_id,
                class: ResponsibilityClass::parse(&format!("classes[{i}].class"), &c.class)
                    .map_err(invalid)?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Matrix {
        controls: body.controls.clone(),
        assignments,
        classes,
    })
}

fn matrix_view(
    platform_id: Uuid,
    row: Option<&store::matrix_version::Model>,
) -> Result<MatrixView, ApiError> {
    let Some(row) = row else {
        return Ok(MatrixView {
            platform_id,
            version: None,
            controls: None,
            assignments: vec![],
            classes: vec![],
            created_by: None,
            created_at: None,
        });
    };
    let m = store::matrix_of(row).map_err(db)?;
    Ok(MatrixView {
        platform_id,
        version: Some(version_no(row.version)),
        controls: m.controls,
        assignments: m
            .assignments
            .into_iter()
            .map(|a| AssignmentBody {
                control: a.control,
                system_id: a.system_id,
                organization_id: a.organization_id,
                role: a.role.as_str().to_owned(),
            })
            .collect(),
        classes: m
            .classes
            .into_iter()
            .map(|c| ClassBody {
                control: c.control,
                system_id: c.system_id,
                class: c.class.as_str().to_owned(),
            })
            .collect(),
        created_by: Some(row.created_by.clone()),
        created_at: Some(row.created_at),
    })
}

fn version_param(raw: &Option<String>) -> Result<Option<i32>, ApiError> {
    match raw.as_deref() {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<i32>()
            .ok()
            .filter(|v| *v >= 1)
            .map(Some)
            .ok_or_else(|| ApiError::invalid("version", "must be a positive whole number")),
    }
}

#[utoipa::path(get, path = "/v1/platforms/{platform_id}/matrix", tag = "demarcation", params(VersionParam),
    responses((status = 200, body = MatrixView), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(platform.id = %id))]
async fn get_matrix(
    state: State,
    who: Identity,
    id: web::Path<String>,
    q: web::Query<VersionParam>,
) -> Result<HttpResponse, ApiError> {
    let platform = access::platforms(&state)
        .readable(&who, path_id(&id, "platform")?)
        .await?;
    let version = version_param(&q.version)?;
    let row = store::matrix(&state.db.read, platform.id, version)
        .await
        .map_err(db)?;
    if version.is_some() && row.is_none() {
        return Err(ApiError::NotFound("matrix version"));
    }
    Ok(HttpResponse::Ok().json(matrix_view(platform.id, row.as_ref())?))
}

#[utoipa::path(put, path = "/v1/platforms/{platform_id}/matrix", tag = "demarcation", request_body = PutMatrix,
    responses((status = 200, body = MatrixView), (status = 400), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(platform.id = %id))]
async fn put_matrix(
    state: State,
    who: Identity,
    id: web::Path<String>,
    ValidJson(body): ValidJson<PutMatrix>,
) -> Result<HttpResponse, ApiError> {
    let platform = access::platforms(&state)
        .operated(&who, path_id(&id, "platform")?, "edits the matrix")
        .await?;
    let matrix = matrix_from_body(&body)?;
    let txn = state.db.write.begin().await.map_err(db)?;
    store::lock_platform(&txn, platform.id).await.map_err(db)?;
    let catalogue = store::catalogue_ids(&txn).await.map_err(db)?;
    let view = store::platform_view(&txn, &platform).await.map_err(db)?;
    matrix
        .validate(&store::id_set(&catalogue), &view)
        .map_err(invalid)?;
    let latest = store::matrix(&txn, platform.id, None).await.map_err(db)?;
    let latest_no = latest.as_ref().map(|m| version_no(m.version));
    if let Some(base) = body.base_version
        && Some(base) != latest_no
    {
        return Err(ApiError::conflict(
            "stale_matrix",
            format!(
                "the matrix is at version {} now, not {base}; reload and apply your change again",
                latest_no.unwrap_or(0)
            ),
        ));
    }
    let before: BTreeSet<_> = match &latest {
        Some(row) => store::matrix_of(row)
            .map_err(db)?
            .gaps(&catalogue, &view)
            .into_iter()
            .collect(),
        None => Matrix::default()
            .gaps(&catalogue, &view)
            .into_iter()
            .collect(),
    };
    let opened: Vec<_> = matrix
        .gaps(&catalogue, &view)
        .into_iter()
        .filter(|g| !before.contains(g))
        .collect();
    let next = latest_no.unwrap_or(0) + 1;
    let saved = store::matrix_version::ActiveModel {
        id: Set(Uuid::now_v7()),
        platform_id: Set(platform.id),
        version: Set(i32::try_from(next).map_err(|e| ApiError::Internal(e.into()))?),
        document: Set(store::json(&matrix).map_err(db)?),
        created_by: Set(who.sub.clone()),
        created_at: Set(Utc::now()),
    }
    .insert(&txn)
    .await
    .map_err(db)?;
    let org = Some(platform.owner_org_id);
    state
        .outbox
        .stage(
            &txn,
            org,
            &contract::MatrixUpdated {
                platform_id: platform.id,
                version: next,
            },
        )
        .await
        .map_err(db)?;
    if !opened.is_empty() {
        tracing::info!(gaps = opened.len(), "matrix change opened gaps");
        state
            .outbox
            .stage(
                &txn,
                org,
                &events::gap_found(platform.id, Some(next), &opened),
            )
            .await
            .map_err(db)?;
    }
    let done = Action::new("matrix.updated", platform.id)
        .of(platform.owner_org_id)
        .detail(serde_json::json!({"version": next, "gaps_opened": opened.len()}));
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    state.outbox.commit(txn).await.map_err(db)?;
    Ok(HttpResponse::Ok().json(matrix_view(platform.id, Some(&saved))?))
}

#[utoipa::path(get, path = "/v1/platforms/{platform_id}/matrix/gaps", tag = "demarcation", params(VersionParam),
    responses((status = 200, body = GapReport), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(platform.id = %id))]
async fn get_gaps(
    state: State,
    who: Identity,
    id: web::Path<String>,
    q: web::Query<VersionParam>,
) -> Result<HttpResponse, ApiError> {
    let platform = access::platforms(&state)
        .readable(&who, path_id(&id, "platform")?)
        .await?;
    let version = version_param(&q.version)?;
    let conn = &state.db.read;
    let row = store::matrix(conn, platform.id, version)
        .await
        .map_err(db)?;
    if version.is_some() && row.is_none() {
        return Err(ApiError::NotFound("matrix version"));
    }
    let matrix = row
        .as_ref()
        .map(store::matrix_of)
        .transpose()
        .map_err(db)?
        .unwrap_or_default();
    let catalogue = store::catalogue_ids(conn).await.map_err(db)?;
    let view = store::platform_view(conn, &platform).await.map_err(db)?;
    let gaps = matrix.gaps(&catalogue, &view);
    Ok(HttpResponse::Ok().json(GapReport {
        platform_id: platform.id,
        matrix_version: row.map(|r| version_no(r.version)),
        controls_in_scope: matrix.scope(&catalogue).len(),
        systems: view.systems.len(),
        complete: gaps.is_empty(),
        gaps: gaps
            .into_iter()
            .map(|g| GapView {
                control: g.control,
                system_id: g.system_id,
                kind: g.kind.as_str().to_owned(),
                organizations: g.organizations,
            })
            .collect(),
    }))
}

// ---- rules versions ------------------------------------------------------

fn rules_from(body: Vec<RuleBody>) -> Vec<Rule> {
    body.into_iter()
        .map(|r| Rule {
            id: r.id.trim().to_owned(),
            title: r.title.trim().to_owned(),
            text: r.text.trim().to_owned(),
            controls: r.controls,
        })
        .collect()
}

fn cooperation_from(body: CooperationBody) -> Cooperation {
    Cooperation {
        ordinary: body.ordinary.trim().to_owned(),
        emergency: body.emergency.trim().to_owned(),
    }
}

fn rules_view(m: &rule_version::Model) -> Result<RulesVersionView, ApiError> {
    let content = store::content_of(m).map_err(db)?;
    Ok(RulesVersionView {
        id: m.id,
        platform_id: m.platform_id,
        version: version_no(m.version),
        state: m.state.clone(),
        title: content.title,
        rules: content
            .rules
            .into_iter()
            .map(|r| RuleBody {
                id: r.id,
                title: r.title,
                text: r.text,
                controls: r.controls,
            })
            .collect(),
        cooperation: CooperationBody {
            ordinary: content.cooperation.ordinary,
            emergency: content.cooperation.emergency,
        },
        emergency_measures: content.emergency_measures,
        matrix_version: m.matrix_version.map(version_no),
        created_by: m.created_by.clone(),
        created_at: m.created_at,
        updated_at: m.updated_at,
        proposed_at: m.proposed_at,
        respond_by: m.respond_by,
        in_force_at: m.in_force_at,
        closed_at: m.closed_at,
    })
}

/// Checks the referred matrix version exists (default: the latest).
async fn referred_matrix<C: sea_orm::ConnectionTrait>(
    conn: &C,
    platform_id: Uuid,
    requested: Option<u32>,
) -> Result<Option<i32>, ApiError> {
    match requested {
        Some(v) => {
            let v = i32::try_from(v)
                .map_err(|_| ApiError::invalid("matrix_version", "is too large"))?;
            store::matrix(conn, platform_id, Some(v))
                .await
                .map_err(db)?
                .map(|m| Some(m.version))
                .ok_or_else(|| ApiError::invalid("matrix_version", "names no saved matrix version"))
        }
        None => Ok(store::matrix(conn, platform_id, None)
            .await
            .map_err(db)?
            .map(|m| m.version)),
    }
}

#[utoipa::path(post, path = "/v1/platforms/{platform_id}/rules", tag = "demarcation", request_body = CreateRules,
    responses((status = 201, body = RulesVersionView), (status = 400), (status = 403), (status = 404)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(platform.id = %id))]
async fn create_rules(
    state: State,
    who: Identity,
    id: web::Path<String>,
    ValidJson(body): ValidJson<CreateRules>,
) -> Result<HttpResponse, ApiError> {
    let platform = access::platforms(&state)
        .operated(&who, path_id(&id, "platform")?, "drafts rules")
        .await?;
    let content = RulesContent {
        title: body
            .title
            .unwrap_or_else(|| format!("{} common rules", platform.name)),
        rules: rules_from(body.rules),
        cooperation: cooperation_from(body.cooperation.unwrap_or_default()),
        emergency_measures: body.emergency_measures.unwrap_or_default(),
    };
    let txn = state.db.write.begin().await.map_err(db)?;
    let catalogue = store::catalogue_ids(&txn).await.map_err(db)?;
    content
        .validate(&store::id_set(&catalogue))
        .map_err(invalid)?;
    let matrix_version = referred_matrix(&txn, platform.id, body.matrix_version).await?;
    store::lock_platform(&txn, platform.id).await.map_err(db)?;
    let last = rule_version::Entity::find()
        .filter(rule_version::Column::PlatformId.eq(platform.id))
        .order_by_desc(rule_version::Column::Version)
        .one(&txn)
        .await
        .map_err(db)?
        .map_or(0, |v| v.version);
    let now = Utc::now();
    let saved = rule_version::ActiveModel {
        id: Set(Uuid::now_v7()),
        platform_id: Set(platform.id),
        version: Set(last + 1),
        state: Set(VersionState::Draft.as_str().to_owned()),
        content: Set(store::json(&content).map_err(db)?),
        matrix_version: Set(matrix_version),
        created_by: Set(who.sub.clone()),
        created_at: Set(now),
        updated_at: Set(now),
        proposed_at: Set(None),
        respond_by: Set(None),
        in_force_at: Set(None),
        closed_at: Set(None),
    }
    .insert(&txn)
    .await
    .map_err(db)?;
    let done = Action::new("rules.drafted", saved.id)
        .of(platform.owner_org_id)
        .detail(serde_json::json!({"platform_id": platform.id, "version": saved.version}));
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    txn.commit().await.map_err(db)?;
    Ok(HttpResponse::Created().json(rules_view(&saved)?))
}

#[utoipa::path(get, path = "/v1/platforms/{platform_id}/rules", tag = "demarcation", params(StateFilter),
    responses((status = 200, description = "`{items}`, newest first", body = renkei_web::openapi::PageOf<RulesVersionView>), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(platform.id = %id))]
async fn list_rules(
    state: State,
    who: Identity,
    id: web::Path<String>,
    filter: web::Query<StateFilter>,
) -> Result<HttpResponse, ApiError> {
    let platform = access::platforms(&state)
        .readable(&who, path_id(&id, "platform")?)
        .await?;
    let mut query = rule_version::Entity::find()
        .filter(rule_version::Column::PlatformId.eq(platform.id))
        .order_by_desc(rule_version::Column::Version);
    if let Some(s) = filter.state.as_deref().filter(|s| !s.is_empty()) {
        let s = VersionState::parse("state", s).map_err(invalid)?;
        query = query.filter(rule_version::Column::State.eq(s.as_str()));
    }
    let items = query
        .all(&state.db.read)
        .await
        .map_err(db)?
        .iter()
        .map(rules_view)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items, "next": null })))
}

/// The version and its platform, if `who` may read them.
async fn readable_version(
    state: &DemarcationState,
    who: &Identity,
    raw: &str,
) -> Result<(rule_version::Model, system::Model), ApiError> {
    let id = path_id(raw, "rules version")?;
    let version = rule_version::Entity::find_by_id(id)
        .one(&state.db.read)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("rules version"))?;
    let platform = access::platforms(state)
        .readable(who, version.platform_id)
        .await
        .map_err(|e| e.not_found_as("rules version"))?;
    Ok((version, platform))
}

async fn operated_version(
    state: &DemarcationState,
    who: &Identity,
    raw: &str,
    action: &str,
) -> Result<(rule_version::Model, system::Model), ApiError> {
    let (version, platform) = readable_version(state, who, raw).await?;
    if !access::operates(who, &platform) {
        return Err(ApiError::Forbidden(format!(
            "only the platform operator {action}"
        )));
    }
    Ok((version, platform))
}

#[utoipa::path(get, path = "/v1/rules/{version_id}", tag = "demarcation",
    responses((status = 200, body = RulesVersionView), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(rules.id = %id))]
async fn get_rules(
    state: State,
    who: Identity,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (version, _) = readable_version(&state, &who, &id).await?;
    Ok(HttpResponse::Ok().json(rules_view(&version)?))
}

#[utoipa::path(patch, path = "/v1/rules/{version_id}", tag = "demarcation", request_body = UpdateRules,
    responses((status = 200, body = RulesVersionView), (status = 400), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(rules.id = %id))]
async fn update_rules(
    state: State,
    who: Identity,
    id: web::Path<String>,
    ValidJson(body): ValidJson<UpdateRules>,
) -> Result<HttpResponse, ApiError> {
    let (current, platform) = operated_version(&state, &who, &id, "edits a draft").await?;
    let txn = state.db.write.begin().await.map_err(db)?;
    store::lock_platform(&txn, current.platform_id)
        .await
        .map_err(db)?;
    let current = rule_version::Entity::find_by_id(current.id)
        .one(&txn)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("rules version"))?;
    store::state_of(&current)
        .map_err(db)?
        .edit()
        .map_err(|e| ApiError::conflict("illegal_state", e.to_string()))?;
    let mut content = store::content_of(&current).map_err(db)?;
    if let Some(title) = body.title {
        content.title = title;
    }
    if let Some(rules) = body.rules {
        content.rules = rules_from(rules);
    }
    if let Some(c) = body.cooperation {
        content.cooperation = cooperation_from(c);
    }
    if let Some(m) = body.emergency_measures {
        content.emergency_measures = m;
    }
    let catalogue = store::catalogue_ids(&txn).await.map_err(db)?;
    content
        .validate(&store::id_set(&catalogue))
        .map_err(invalid)?;
    let mut model: rule_version::ActiveModel = current.clone().into();
    if body.matrix_version.is_some() {
        model.matrix_version =
            Set(referred_matrix(&txn, current.platform_id, body.matrix_version).await?);
    }
    model.content = Set(store::json(&content).map_err(db)?);
    model.updated_at = Set(Utc::now());
    let saved = model.update(&txn).await.map_err(db)?;
    let done = rules_action("rules.edited", &platform, &saved);
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    txn.commit().await.map_err(db)?;
    Ok(HttpResponse::Ok().json(rules_view(&saved)?))
}

#[utoipa::path(post, path = "/v1/rules/{version_id}/propose", tag = "demarcation", request_body(content = ProposeBody, description = "optional"),
    responses((status = 200, body = RulesVersionView), (status = 400), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(rules.id = %id))]
async fn propose(
    state: State,
    who: Identity,
    id: web::Path<String>,
    OptionalJson(body): OptionalJson<ProposeBody>,
) -> Result<HttpResponse, ApiError> {
    let (version, platform) = operated_version(&state, &who, &id, "proposes rules").await?;
    let now = Utc::now();
    let respond_by = match body.and_then(|b| b.respond_by) {
        Some(at) => check_deadline(now, at).map_err(invalid)?,
        None => now + DEFAULT_RESPONSE_WINDOW,
    };
    // Who must agree is decided by the registry as it is now, not by this
    // service's copy (which may lag, or miss what its stream no longer holds).
    let current = renkei_bus::query::request(
        &state.nats,
        &PlatformSystemsQuery {
            platform_id: version.platform_id,
        },
        std::time::Duration::from_millis(state.query_timeout_ms),
    )
    .await
    .map_err(|e| {
        ApiError::Unavailable(format!(
            "the registry did not answer, so who must agree cannot be known now: {e}"
        ))
    })?;
    let txn = state.db.write.begin().await.map_err(db)?;
    renkei_bus::registry_copy::upsert_systems(&txn, &current.systems)
        .await
        .map_err(db)?;
    let proposed = consensus::propose(&txn, &state.outbox, version, respond_by).await?;
    let done = rules_action("rules.proposed", &platform, &proposed);
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    state.outbox.commit(txn).await.map_err(db)?;
    state.reminders.wake();
    Ok(HttpResponse::Ok().json(rules_view(&proposed)?))
}

#[utoipa::path(post, path = "/v1/rules/{version_id}/withdraw", tag = "demarcation",
    responses((status = 200, body = RulesVersionView), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(rules.id = %id))]
async fn withdraw(
    state: State,
    who: Identity,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (version, platform) = operated_version(&state, &who, &id, "withdraws rules").await?;
    let txn = state.db.write.begin().await.map_err(db)?;
    store::lock_platform(&txn, version.platform_id)
        .await
        .map_err(db)?;
    let version = rule_version::Entity::find_by_id(version.id)
        .one(&txn)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("rules version"))?;
    let withdrawn = consensus::withdraw(&txn, &state.outbox, version, None).await?;
    let done = rules_action("rules.withdrawn", &platform, &withdrawn);
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    state.outbox.commit(txn).await.map_err(db)?;
    Ok(HttpResponse::Ok().json(rules_view(&withdrawn)?))
}

#[utoipa::path(post, path = "/v1/rules/{version_id}/decisions", tag = "demarcation", request_body = DecisionBody,
    responses((status = 201, body = PartyView), (status = 400), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(rules.id = %id, decision))]
async fn decide(
    state: State,
    who: Identity,
    id: web::Path<String>,
    ValidJson(body): ValidJson<DecisionBody>,
) -> Result<HttpResponse, ApiError> {
    let (version, _) = readable_version(&state, &who, &id).await?;
    let org = access::deciding_org(&who, body.organization_id)?;
    let decision = Decision::parse("decision", &body.decision).map_err(invalid)?;
    tracing::Span::current().record("decision", decision.as_str());
    if decision != Decision::Object && !body.rules.is_empty() {
        return Err(ApiError::invalid(
            "rules",
            "objections to single rules go with `object` only",
        ));
    }
    let input = DecisionInput {
        organization_id: org,
        decided_by: who.sub.clone(),
        decision,
        reason: body.reason,
        per_rule: body
            .rules
            .into_iter()
            .map(|r| (r.rule_id, r.reason))
            .collect(),
    };
    let txn = state.db.write.begin().await.map_err(db)?;
    let decided = consensus::decide(&txn, &state.outbox, &version, input).await?;
    let done = Action::new("rules.decision_recorded", version.id)
        .object_type("rules")
        .of(org)
        .detail(serde_json::json!({"decision": decision.as_str(), "organization_id": org}));
    renkei_audit::record(&txn, &who, done).await.map_err(db)?;
    state.outbox.commit(txn).await.map_err(db)?;
    if decided.may_complete
        && let Some(in_force) =
            consensus::settle(&state.db, &state.outbox, decided.version.id).await?
    {
        tracing::info!(
            rules.version = in_force.version,
            "full consensus: rules in force"
        );
    }
    let party = decided.party;
    Ok(HttpResponse::Created().json(party_view(&party)?))
}

fn objections(raw: &str) -> Vec<RuleObjection> {
    serde_json::from_str(raw).unwrap_or_default()
}

fn party_view(p: &store::rule_party::Model) -> Result<PartyView, ApiError> {
    Ok(PartyView {
        organization_id: p.organization_id,
        position: p.position.clone(),
        reason: p.reason.clone(),
        rules: objections(&p.rule_objections),
        decided_by: p.decided_by.clone(),
        decided_at: p.decided_at,
        joined_late: p.joined_late,
    })
}

#[utoipa::path(get, path = "/v1/rules/{version_id}/decisions", tag = "demarcation",
    responses((status = 200, description = "`{items}`: every decision, oldest first", body = renkei_web::openapi::PageOf<DecisionView>), (status = 404)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(rules.id = %id))]
async fn list_decisions(
    state: State,
    who: Identity,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (version, _) = readable_version(&state, &who, &id).await?;
    let items: Vec<DecisionView> = rule_decision::Entity::find()
        .filter(rule_decision::Column::VersionId.eq(version.id))
        .order_by_asc(rule_decision::Column::Id)
        .all(&state.db.read)
        .await
        .map_err(db)?
        .into_iter()
        .map(|d| DecisionView {
            id: d.id,
            version_id: d.version_id,
            organization_id: d.organization_id,
            rules: objections(&d.rule_objections),
            decision: d.decision,
            reason: d.reason,
            decided_by: d.decided_by,
            decided_at: d.decided_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items, "next": null })))
}

#[utoipa::path(get, path = "/v1/rules/{version_id}/consensus", tag = "demarcation",
    responses((status = 200, body = ConsensusView), (status = 404)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(rules.id = %id))]
async fn get_consensus(
    state: State,
    who: Identity,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (version, _) = readable_version(&state, &who, &id).await?;
    let (c, parties) = consensus::consensus(&state.db.read, version.id).await?;
    Ok(HttpResponse::Ok().json(ConsensusView {
        version_id: version.id,
        version: version_no(version.version),
        state: version.state.clone(),
        respond_by: version.respond_by,
        required: c.required,
        accepted: c.accepted,
        objected: c.objected,
        pending: c.pending,
        parties: parties
            .iter()
            .map(party_view)
            .collect::<Result<Vec<_>, _>>()?,
    }))
}

#[utoipa::path(get, path = "/v1/rules/{version_id}/document", tag = "demarcation", params(DocumentParams),
    responses((status = 200, description = "Markdown (`format=markdown`) or HTML (`format=html`)",
               content((String = "text/markdown"), (String = "text/html"))), (status = 400), (status = 404)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(rules.id = %id))]
async fn get_document(
    state: State,
    who: Identity,
    req: HttpRequest,
    id: web::Path<String>,
    q: web::Query<DocumentParams>,
) -> Result<HttpResponse, ApiError> {
    let html = match q.format.as_deref() {
        None | Some("") | Some("markdown") | Some("md") => false,
        Some("html") => true,
        Some(_) => {
            return Err(ApiError::invalid("format", "must be `markdown` or `html`"));
        }
    };
    let lang = match q.lang.as_deref() {
        Some(l) if !l.is_empty() => {
            Lang::parse(l).ok_or_else(|| ApiError::invalid("lang", "must be `ja` or `en`"))?
        }
        _ => req
            .headers()
            .get(actix_web::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(Lang::from_accept_language)
            .unwrap_or(Lang::Ja),
    };
    let (version, platform) = readable_version(&state, &who, &id).await?;
    let conn = &state.db.read;
    let content = store::content_of(&version).map_err(db)?;
    let matrix_row = match version.matrix_version {
        Some(v) => store::matrix(conn, platform.id, Some(v))
            .await
            .map_err(db)?,
        None => None,
    };
    let matrix = matrix_row
        .as_ref()
        .map(store::matrix_of)
        .transpose()
        .map_err(db)?;
    let controls: Vec<(String, String)> = store::catalogue(conn)
        .await
        .map_err(db)?
        .into_iter()
        .map(|c| {
            let title = match lang {
                Lang::Ja => c.title_ja,
                Lang::En => c.title_en,
            };
            (c.id, title)
        })
        .collect();
    let systems: Vec<(Uuid, String)> = store::member_systems(conn, platform.id)
        .await
        .map_err(db)?
        .into_iter()
        .map(|s| (s.id, s.name))
        .collect();
    let parties = store::parties(conn, version.id).await.map_err(db)?;
    let acceptances: Vec<AcceptanceLine> = parties
        .iter()
        .filter(|p| p.position == "accepted")
        .filter_map(|p| {
            Some(AcceptanceLine {
                organization_id: p.organization_id,
                decided_by: p.decided_by.clone()?,
                decided_at: p.decided_at?,
            })
        })
        .collect();
    let mut orgs: Vec<Uuid> = parties.iter().map(|p| p.organization_id).collect();
    if let Some(m) = &matrix {
        orgs.extend(m.assignments.iter().map(|a| a.organization_id));
    }
    orgs.push(platform.owner_org_id);
    let org_names: HashMap<Uuid, String> = store::org_names(conn, orgs).await.map_err(db)?;
    let input = DocumentInput {
        platform_name: &platform.name,
        version: version_no(version.version),
        state: &version.state,
        in_force_at: version.in_force_at,
        content: &content,
        matrix: matrix_row
            .as_ref()
            .zip(matrix.as_ref())
            .map(|(row, m)| (version_no(row.version), m)),
        controls: &controls,
        systems: &systems,
        org_names: &org_names,
        acceptances: &acceptances,
    };
    let response = if html {
        HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(document::html(&input, lang))
    } else {
        HttpResponse::Ok()
            .content_type("text/markdown; charset=utf-8")
            .body(document::markdown(&input, lang))
    };
    Ok(response)
}

/// A rules version's audit entry: it belongs to the operator of `platform`
/// (read already by the access check).
fn rules_action(action: &str, platform: &system::Model, version: &rule_version::Model) -> Action {
    Action::new(action, version.id)
        .of(platform.owner_org_id)
        .detail(serde_json::json!({"platform_id": version.platform_id, "version": version.version, "state": version.state}))
}
