//! Common rules: the version in force and any proposal as a document, a
//! manager's accept / object form, and the consensus board.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::{
    Failure, PlatformChoice, name_of, ok, organization_names, platforms, respond, see_other,
};
use crate::model::{Consensus, Page, Party, RulesVersion};
use crate::session::Ctx;
use crate::state::ConsoleState;

pub struct BoardRow {
    pub name: String,
    pub party: Party,
}

#[derive(Template)]
#[template(path = "rules.html")]
struct RulesPage<'a> {
    ctx: &'a Ctx,
    choices: Vec<PlatformChoice>,
    chosen: Option<Uuid>,
    in_force: Option<RulesVersion>,
    proposal: Option<RulesVersion>,
    consensus: Option<Consensus>,
    board: Vec<BoardRow>,
    /// The viewer's organisation must answer the proposal.
    may_decide: bool,
    /// The viewer's organisation's current position on it.
    position: Option<String>,
}

pub async fn page(
    ctx: Ctx,
    state: web::Data<ConsoleState>,
    query: web::Query<super::PlatformQuery>,
) -> HttpResponse {
    let result = async {
        let user = ctx.user()?;
        let (_, choices, chosen) = platforms(&ctx, &state, query.platform.as_deref()).await?;
        let mut page = RulesPage {
            ctx: &ctx,
            choices,
            chosen,
            in_force: None,
            proposal: None,
            consensus: None,
            board: Vec::new(),
            may_decide: false,
            position: None,
        };
        let Some(platform) = chosen else {
            return ok(page);
        };
        let versions: Page<RulesVersion> = state
            .api
            .get(&ctx, &format!("/v1/platforms/{platform}/rules"))
            .await?;
        page.in_force = versions
            .items
            .iter()
            .find(|v| v.state == "in_force")
            .cloned();
        page.proposal = versions.items.into_iter().find(|v| v.state == "proposed");
        if let Some(proposal) = &page.proposal {
            let consensus: Consensus = state
                .api
                .get(&ctx, &format!("/v1/rules/{}/consensus", proposal.id))
                .await?;
            let names: HashMap<Uuid, String> = organization_names(&ctx, &state).await?;
            page.board = consensus
                .parties
                .iter()
                .map(|p| BoardRow {
                    name: name_of(&names, &p.organization_id),
                    party: p.clone(),
                })
                .collect();
            if let Some(org) = user.org {
                page.position = consensus
                    .parties
                    .iter()
                    .find(|p| p.organization_id == org)
                    .map(|p| p.position.clone());
                page.may_decide =
                    (user.has("manager") || user.has("ciso")) && consensus.required.contains(&org);
            }
            page.consensus = Some(consensus);
        }
        ok(page)
    }
    .await;
    respond(&ctx, result)
}

#[derive(Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    platform: String,
}

/// A manager accepts or objects (with a reason) for their organisation.
pub async fn decide(
    ctx: Ctx,
    state: web::Data<ConsoleState>,
    version: web::Path<String>,
    form: web::Form<DecisionForm>,
) -> HttpResponse {
    let result = async {
        ctx.check_form(&form.csrf)?;
        let version: Uuid = version
            .parse()
            .map_err(|_| Failure::invalid("version_id", ctx.t("error.bad_id").into_owned()))?;
        if !matches!(form.decision.as_str(), "accept" | "object") {
            return Err(Failure::invalid(
                "decision",
                ctx.t("rules.bad_decision").into_owned(),
            ));
        }
        let reason = form.reason.trim();
        if form.decision == "object" && reason.is_empty() {
            return Err(Failure::invalid(
                "reason",
                ctx.t("rules.reason_required").into_owned(),
            ));
        }
        let body = serde_json::json!({
            "decision": form.decision,
            "reason": (!reason.is_empty()).then_some(reason),
        });
        let _: serde_json::Value = state
            .api
            .send(
                &ctx,
                reqwest::Method::POST,
                &format!("/v1/rules/{version}/decisions"),
                &body,
            )
            .await?;
        let back = match form.platform.parse::<Uuid>() {
            Ok(p) => format!("/console/rules?platform={p}"),
            Err(_) => "/console/rules".to_owned(),
        };
        Ok(see_other(&back))
    }
    .await;
    respond(&ctx, result)
}
