//! The responsibility matrix: controls × organisations with their RACI
//! roles, and the gaps (no accountable or no responsible organisation, or
//! an outsider) marked.

use std::collections::{BTreeSet, HashMap};

use actix_web::{HttpResponse, web};
use askama::Template;
use uuid::Uuid;

use super::{PlatformChoice, name_of, ok, organization_names, platforms, respond};
use crate::model::{Control, Gaps, Matrix, Page};
use crate::session::Ctx;
use crate::state::ConsoleState;

pub struct Row {
    pub control: Control,
    /// One cell per column: the roles (`R`, `A`, `C`, `I`), and whether
    /// any of them is for one system only.
    pub cells: Vec<(String, bool)>,
    pub gaps: Vec<String>,
}

#[derive(Template)]
#[template(path = "matrix.html")]
struct MatrixPage<'a> {
    ctx: &'a Ctx,
    choices: Vec<PlatformChoice>,
    chosen: Option<Uuid>,
    version: Option<u32>,
    columns: Vec<String>,
    rows: Vec<Row>,
    complete: bool,
    gap_count: usize,
}

fn letter(role: &str) -> &'static str {
    match role {
        "responsible" => "R",
        "accountable" => "A",
        "consulted" => "C",
        "informed" => "I",
        _ => "?",
    }
}

pub async fn page(
    ctx: Ctx,
    state: web::Data<ConsoleState>,
    query: web::Query<super::PlatformQuery>,
) -> HttpResponse {
    let result = async {
        ctx.user()?;
        let (systems, choices, chosen) = platforms(&ctx, &state, query.platform.as_deref()).await?;
        let mut page = MatrixPage {
            ctx: &ctx,
            choices,
            chosen,
            version: None,
            columns: Vec::new(),
            rows: Vec::new(),
            complete: true,
            gap_count: 0,
        };
        let Some(platform) = chosen else {
            return ok(page);
        };
        let controls: Page<Control> = state.api.get(&ctx, "/v1/controls").await?;
        let matrix: Matrix = state
            .api
            .get(&ctx, &format!("/v1/platforms/{platform}/matrix"))
            .await?;
        let gaps: Gaps = state
            .api
            .get(&ctx, &format!("/v1/platforms/{platform}/matrix/gaps"))
            .await?;
        let names = organization_names(&ctx, &state).await?;
        let system_names: HashMap<Uuid, &str> =
            systems.iter().map(|s| (s.id, s.name.as_str())).collect();
        // Columns: every organisation with a system on the platform or an
        // assignment in the matrix.
        let orgs: BTreeSet<(String, Uuid)> = systems
            .iter()
            .filter(|s| s.platform_id == platform || s.id == platform)
            .map(|s| s.owner_org_id)
            .chain(matrix.assignments.iter().map(|a| a.organization_id))
            .map(|id| (name_of(&names, &id), id))
            .collect();
        let orgs: Vec<(String, Uuid)> = orgs.into_iter().collect();
        let in_scope: Option<BTreeSet<&str>> = matrix
            .controls
            .as_ref()
            .map(|c| c.iter().map(String::as_str).collect());
        page.rows = controls
            .items
            .into_iter()
            .filter(|c| in_scope.as_ref().is_none_or(|s| s.contains(c.id.as_str())))
            .map(|control| {
                let cells = orgs
                    .iter()
                    .map(|(_, org)| {
                        let mine: Vec<_> = matrix
                            .assignments
                            .iter()
                            .filter(|a| a.control == control.id && a.organization_id == *org)
                            .collect();
                        let letters: BTreeSet<&str> =
                            mine.iter().map(|a| letter(&a.role)).collect();
                        (
                            letters.into_iter().collect::<Vec<_>>().join(""),
                            mine.iter().any(|a| a.system_id.is_some()),
                        )
                    })
                    .collect();
                let gaps = gaps
                    .gaps
                    .iter()
                    .filter(|g| g.control == control.id)
                    .map(|g| {
                        format!(
                            "{} ({})",
                            ctx.t(&format!("gap.{}", g.kind)),
                            system_names
                                .get(&g.system_id)
                                .map_or_else(|| g.system_id.to_string(), |n| (*n).to_owned())
                        )
                    })
                    .collect();
                Row {
                    control,
                    cells,
                    gaps,
                }
            })
            .collect();
        page.columns = orgs.into_iter().map(|(name, _)| name).collect();
        page.version = matrix.version;
        page.complete = gaps.complete;
        page.gap_count = gaps.gaps.len();
        ok(page)
    }
    .await;
    respond(&ctx, result)
}
