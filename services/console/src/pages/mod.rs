//! The console's pages: each calls the API as the signed-in user and
//! renders what it answered. A page whose calls are refused shows the
//! refusal (with its status), never data fetched another way.

pub mod contacts;
pub mod home;
pub mod incidents;
pub mod matrix;
pub mod platform;
pub mod rules;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use crate::api::Problem;
use crate::session::Ctx;

/// Why a page could not be shown as asked.
#[derive(Debug)]
pub enum Failure {
    /// Nobody is signed in (or their token ran out): to the sign-in page.
    SignedOut { next: String },
    /// The API refused, with its problem.
    Refused { status: u16, problem: Problem },
    /// A form came without this session's token.
    Csrf,
    /// The console's own check of a form field.
    Invalid { field: &'static str, detail: String },
    /// The API did not answer.
    Unavailable,
    /// The API answered something the console does not understand (a
    /// version mismatch between the console and a service).
    NotUnderstood,
    /// The session cookie could not be written.
    Session(String),
}

impl Failure {
    pub fn session(e: impl std::fmt::Display) -> Failure {
        Failure::Session(e.to_string())
    }

    pub fn invalid(field: &'static str, detail: impl Into<String>) -> Failure {
        Failure::Invalid {
            field,
            detail: detail.into(),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    ctx: &'a Ctx,
    status: u16,
    heading: String,
    detail: String,
    field: Option<String>,
}

/// The answer to a page: the page, or its failure shown in the viewer's
/// language with the matching status.
pub fn respond(ctx: &Ctx, result: Result<HttpResponse, Failure>) -> HttpResponse {
    let failure = match result {
        Ok(response) => return response,
        Err(f) => f,
    };
    let (status, heading, detail, field) = match failure {
        Failure::SignedOut { next } => {
            return see_other(&format!("/console/sign-in?next={}", encode(&next)));
        }
        Failure::Refused { status, problem } => {
            let heading = match status {
                403 => ctx.t("error.forbidden").into_owned(),
                404 => ctx.t("error.not_found").into_owned(),
                409 => ctx.t("error.conflict").into_owned(),
                s if s >= 500 => ctx.t("error.server").into_owned(),
                _ => ctx.t("error.refused").into_owned(),
            };
            let status = if status >= 500 { 502 } else { status };
            (status, heading, problem.detail, problem.field)
        }
        Failure::Csrf => (
            403,
            ctx.t("error.csrf").into_owned(),
            ctx.t("error.csrf_detail").into_owned(),
            Some("csrf".to_owned()),
        ),
        Failure::Invalid { field, detail } => (
            400,
            ctx.t("error.refused").into_owned(),
            detail,
            Some(field.to_owned()),
        ),
        Failure::Unavailable => (
            503,
            ctx.t("error.unavailable").into_owned(),
            ctx.t("error.unavailable_detail").into_owned(),
            None,
        ),
        Failure::NotUnderstood => (
            502,
            ctx.t("error.server").into_owned(),
            ctx.t("error.not_understood").into_owned(),
            None,
        ),
        Failure::Session(e) => {
            tracing::error!(target: "renkei::console", error = %e, "session could not be kept");
            (
                500,
                ctx.t("error.server").into_owned(),
                ctx.t("error.session").into_owned(),
                None,
            )
        }
    };
    let page = ErrorPage {
        ctx,
        status,
        heading,
        detail,
        field,
    };
    html(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        page.render(),
    )
}

/// A rendered page, with the headers every console page carries.
pub fn html(status: StatusCode, rendered: askama::Result<String>) -> HttpResponse {
    match rendered {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header(("Cache-Control", "no-store"))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .insert_header(("Referrer-Policy", "same-origin"))
            .insert_header((
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ))
            .body(body),
        Err(e) => {
            tracing::error!(target: "renkei::console", error = %e, "page could not be rendered");
            HttpResponse::InternalServerError().body("page could not be rendered")
        }
    }
}

/// `200` with a rendered page.
pub fn ok(page: impl Template) -> Result<HttpResponse, Failure> {
    Ok(html(StatusCode::OK, page.render()))
}

/// After a form: `303 See Other` to the page that shows its result.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("Location", location))
        .finish()
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Where to go back to after a form: only somewhere in the console.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/console")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_owned()
        }
        _ => "/console".to_owned(),
    }
}

/// The static files the pages use (style sheet, the incident page's live
/// refresh), compiled in.
async fn style() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(include_str!("../../static/console.css"))
}

async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(include_str!("../../static/console.js"))
}

/// Every console route, under `/console`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("", web::get().to(home::home))
        .route("/", web::get().to(home::home))
        .route("/static/console.css", web::get().to(style))
        .route("/static/console.js", web::get().to(script))
        .route("/preferences", web::post().to(home::preferences))
        .configure(crate::sign_in::routes)
        .route("/platform", web::get().to(platform::page))
        .route("/rules", web::get().to(rules::page))
        .route(
            "/rules/{version_id}/decision",
            web::post().to(rules::decide),
        )
        .route("/matrix", web::get().to(matrix::page))
        .route("/contacts", web::get().to(contacts::mine))
        .route(
            "/organizations/{org_id}/contacts",
            web::get().to(contacts::page),
        )
        .route(
            "/organizations/{org_id}/contacts",
            web::post().to(contacts::add),
        )
        .route(
            "/organizations/{org_id}/contacts/{contact_id}/remove",
            web::post().to(contacts::remove),
        )
        .route(
            "/organizations/{org_id}/escalation-policy",
            web::post().to(contacts::save_policy),
        )
        .route("/incidents", web::get().to(incidents::list))
        .route("/incidents", web::post().to(incidents::declare))
        .route("/incidents/{id}", web::get().to(incidents::page))
        .route(
            "/incidents/{id}/acknowledge",
            web::post().to(incidents::acknowledge),
        );
}

/// `?platform=` of the pages that show one platform.
#[derive(serde::Deserialize)]
pub struct PlatformQuery {
    pub platform: Option<String>,
}

/// A platform the viewer can see (its own system, or one of its linked
/// systems sits on it).
pub struct PlatformChoice {
    pub id: uuid::Uuid,
    pub name: String,
    pub selected: bool,
}

/// Every system the viewer may read, the platforms among (or behind)
/// them, and the one `wanted` (else the first).
pub async fn platforms(
    ctx: &Ctx,
    state: &crate::state::ConsoleState,
    wanted: Option<&str>,
) -> Result<
    (
        Vec<crate::model::System>,
        Vec<PlatformChoice>,
        Option<uuid::Uuid>,
    ),
    Failure,
> {
    let systems = crate::model::Page {
        items: state
            .api
            .get_all::<crate::model::System>(ctx, "/v1/systems")
            .await?,
        next: None,
    };
    let mut choices: Vec<PlatformChoice> = Vec::new();
    for s in &systems.items {
        let id = if s.kind == "platform" {
            s.id
        } else {
            s.platform_id
        };
        if choices.iter().any(|c| c.id == id) {
            continue;
        }
        let name = systems
            .items
            .iter()
            .find(|p| p.id == id)
            .map_or_else(|| id.to_string(), |p| p.name.clone());
        choices.push(PlatformChoice {
            id,
            name,
            selected: false,
        });
    }
    let chosen = match wanted.filter(|w| !w.is_empty()) {
        Some(raw) => Some(
            raw.parse::<uuid::Uuid>()
                .map_err(|_| Failure::invalid("platform", ctx.t("error.bad_id").into_owned()))?,
        ),
        None => choices.first().map(|c| c.id),
    };
    for c in &mut choices {
        c.selected = Some(c.id) == chosen;
    }
    Ok((systems.items, choices, chosen))
}

/// Organisation names by id, as far as the viewer may read them.
pub async fn organization_names(
    ctx: &Ctx,
    state: &crate::state::ConsoleState,
) -> Result<std::collections::HashMap<uuid::Uuid, String>, Failure> {
    let orgs = state
        .api
        .get_all::<crate::model::Organization>(ctx, "/v1/organizations")
        .await?;
    Ok(orgs.into_iter().map(|o| (o.id, o.name)).collect())
}

/// The names of just `ids` (a page showing a few organisations, such as
/// the incident page its browsers refresh every 10 s, need not read them
/// all); an organisation the viewer may not read keeps its id.
pub async fn names_of(
    ctx: &Ctx,
    state: &crate::state::ConsoleState,
    ids: impl IntoIterator<Item = uuid::Uuid>,
) -> std::collections::HashMap<uuid::Uuid, String> {
    let ids: std::collections::BTreeSet<uuid::Uuid> = ids.into_iter().collect();
    let paths: Vec<String> = ids
        .iter()
        .map(|id| format!("/v1/organizations/{id}"))
        .collect();
    futures::future::join_all(
        paths
            .iter()
            .map(|p| state.api.get::<crate::model::Organization>(ctx, p)),
    )
    .await
    .into_iter()
    .flatten()
    .map(|o| (o.id, o.name))
    .collect()
}

/// A name from `names`, or the id when the viewer may not read it.
pub fn name_of(names: &std::collections::HashMap<uuid::Uuid, String>, id: &uuid::Uuid) -> String {
    names.get(id).cloned().unwrap_or_else(|| id.to_string())
}
