//! Signing in and out: through the identity provider (OpenID Connect,
//! authorization code with PKCE), or, in development, by picking an
//! organisation and a role on a page that signs a development token.

pub mod oidc;

use actix_web::{HttpResponse, web};
use askama::Template;
use renkei_web::Role;
use serde::Deserialize;
use uuid::Uuid;

use crate::model::Organization;
use crate::pages::{Failure, ok, respond, safe_next, see_other};
use crate::session::{Ctx, SignedIn};
use crate::state::ConsoleState;

/// How long a development sign-in lasts.
const DEV_SESSION_SECS: u64 = 8 * 3600;

/// The longest access token the session cookie can carry: encrypted and
/// encoded, a longer one would pass the 4 KB browsers keep per cookie.
const LONGEST_TOKEN: usize = 2_600;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/sign-in", web::get().to(page))
        .route("/sign-in", web::post().to(dev_sign_in))
        .route("/sign-in/oidc", web::get().to(oidc::begin))
        .route("/sign-in/callback", web::get().to(oidc::finish))
        .route("/sign-out", web::post().to(sign_out));
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    ctx: &'a Ctx,
    next: String,
    organizations: Vec<Organization>,
    roles: Vec<&'static str>,
}

#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
}

async fn page(ctx: Ctx, state: web::Data<ConsoleState>, query: web::Query<Next>) -> HttpResponse {
    let next = safe_next(query.next.as_deref());
    // Only single sign-on, and sent here from a page (an expired session):
    // straight on to the provider, which signs a known browser in at once.
    if state.dev_issuer.is_none() && state.oidc.is_some() && query.next.is_some() {
        return see_other(&format!(
            "/console/sign-in/oidc?next={}",
            crate::pages::encode(&next)
        ));
    }
    let organizations = match &state.dev_issuer {
        Some(issuer) => dev_organizations(&state, &ctx, issuer).await,
        None => Vec::new(),
    };
    let page = SignInPage {
        ctx: &ctx,
        next,
        organizations,
        roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
    };
    respond(&ctx, ok(page))
}

/// The organisations to pick from on the development sign-in page, read
/// with a one-minute auditor token (development only).
async fn dev_organizations(
    state: &ConsoleState,
    ctx: &Ctx,
    issuer: &renkei_web::TokenIssuer,
) -> Vec<Organization> {
    let Ok(token) = issuer.issue("console-sign-in", None, &[Role::Auditor], 60) else {
        return Vec::new();
    };
    let viewer = ctx.as_user(SignedIn {
        token,
        sub: "console-sign-in".into(),
        org: None,
        org_name: None,
        roles: vec!["auditor".into()],
        expires_at: u64::MAX,
    });
    match state
        .api
        .get_all::<Organization>(&viewer, "/v1/organizations")
        .await
    {
        Ok(items) => items,
        Err(e) => {
            tracing::warn!(target: "renkei::console", error = ?e, "organisations for the sign-in page could not be read");
            Vec::new()
        }
    }
}

#[derive(Deserialize)]
struct DevSignIn {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    org: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    name: String,
    next: Option<String>,
}

async fn dev_sign_in(
    ctx: Ctx,
    state: web::Data<ConsoleState>,
    form: web::Form<DevSignIn>,
) -> HttpResponse {
    let result = async {
        ctx.check_csrf(&form.csrf)?;
        let Some(issuer) = &state.dev_issuer else {
            return Err(Failure::invalid(
                "role",
                ctx.t("sign_in.dev_disabled").into_owned(),
            ));
        };
        let role = Role::parse(form.role.trim())
            .ok_or_else(|| Failure::invalid("role", ctx.t("sign_in.bad_role").into_owned()))?;
        let org = match form.org.trim() {
            "" => None,
            raw => Some(
                raw.parse::<Uuid>()
                    .map_err(|_| Failure::invalid("org", ctx.t("sign_in.bad_org").into_owned()))?,
            ),
        };
        if org.is_none() && !role.needs_no_organisation() {
            return Err(Failure::invalid(
                "org",
                ctx.t("sign_in.org_required").into_owned(),
            ));
        }
        let name = form.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(Failure::invalid(
                "name",
                ctx.t("sign_in.bad_name").into_owned(),
            ));
        }
        let token = issuer
            .issue(name, org, &[role], DEV_SESSION_SECS)
            .map_err(Failure::session)?;
        let user = signed_in(&ctx, &state, token, DEV_SESSION_SECS).await?;
        ctx.sign_in(user)?;
        Ok(see_other(&safe_next(form.next.as_deref())))
    }
    .await;
    respond(&ctx, result)
}

/// The signed-in user a token makes, as the services read the token, with
/// the organisation's name when it can be read.
pub async fn signed_in(
    ctx: &Ctx,
    state: &ConsoleState,
    token: String,
    lifetime_secs: u64,
) -> Result<SignedIn, Failure> {
    if token.len() > LONGEST_TOKEN {
        tracing::error!(
            target: "renkei::console",
            length = token.len(),
            "the identity provider's access token is too long for the session cookie"
        );
        return Err(Failure::Refused {
            status: 400,
            problem: crate::api::Problem {
                title: String::new(),
                detail: ctx.t("sign_in.token_too_long").into_owned(),
                field: None,
            },
        });
    }
    let identity = state
        .verifier
        .verify(&token)
        .await
        .map_err(|refusal| Failure::Refused {
            status: 401,
            problem: crate::api::Problem {
                title: refusal.reason.clone(),
                detail: refusal.detail.clone(),
                field: None,
            },
        })?;
    if identity.roles.is_empty() {
        return Err(Failure::Refused {
            status: 403,
            problem: crate::api::Problem {
                title: String::new(),
                detail: ctx.t("sign_in.no_role").into_owned(),
                field: None,
            },
        });
    }
    let now = crate::session::now_secs();
    let mut user = SignedIn {
        token,
        sub: identity.sub,
        org: identity.org,
        org_name: None,
        roles: identity
            .roles
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect(),
        expires_at: now + lifetime_secs,
    };
    if let Some(org) = user.org {
        let viewer = ctx.as_user(user.clone());
        user.org_name = state
            .api
            .get::<Organization>(&viewer, &format!("/v1/organizations/{org}"))
            .await
            .ok()
            .map(|o| o.name);
    }
    Ok(user)
}

#[derive(Deserialize)]
struct SignOut {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(ctx: Ctx, form: web::Form<SignOut>) -> HttpResponse {
    let result = ctx.check_csrf(&form.csrf).map(|()| {
        ctx.sign_out();
        see_other("/console/sign-in")
    });
    respond(&ctx, result)
}
