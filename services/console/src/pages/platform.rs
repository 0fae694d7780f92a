//! The platform: organisations, linked systems with their lifecycle, and
//! the link graph with a chosen system's blast radius highlighted.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::{Failure, PlatformChoice, name_of, ok, organization_names, platforms, respond};
use crate::graph::{self, Edge, Node, NodeIn};
use crate::model::{BlastRadius, Link, System};
use crate::session::Ctx;
use crate::state::ConsoleState;

pub const CATEGORIES: [&str; 6] = [
    "malware",
    "unauthorized_access",
    "data_leak",
    "denial_of_service",
    "outage",
    "other",
];

#[derive(Deserialize)]
pub struct Query {
    platform: Option<String>,
    system: Option<String>,
    category: Option<String>,
}

pub struct Row {
    /// The chosen system of the blast radius.
    pub origin: bool,
    pub system: System,
    pub owner: String,
    pub hops: Option<u32>,
}

#[derive(Template)]
#[template(path = "platform.html")]
struct PlatformPage<'a> {
    ctx: &'a Ctx,
    choices: Vec<PlatformChoice>,
    chosen: Option<Uuid>,
    rows: Vec<Row>,
    organizations: Vec<(Uuid, String)>,
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    links: usize,
    origin: Option<Uuid>,
    category: String,
    categories: [&'static str; 6],
    reached: usize,
    width: f64,
    height: f64,
    radius: f64,
}

pub async fn page(
    ctx: Ctx,
    state: web::Data<ConsoleState>,
    query: web::Query<Query>,
) -> HttpResponse {
    let result = async {
        ctx.user()?;
        let (systems, choices, chosen) = platforms(&ctx, &state, query.platform.as_deref()).await?;
        let names = organization_names(&ctx, &state).await?;
        let category = query
            .category
            .clone()
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "malware".into());
        if !CATEGORIES.contains(&category.as_str()) {
            return Err(Failure::invalid(
                "category",
                ctx.t("platform.bad_category").into_owned(),
            ));
        }
        let origin = match query.system.as_deref().filter(|s| !s.is_empty()) {
            Some(raw) => Some(
                raw.parse::<Uuid>()
                    .map_err(|_| Failure::invalid("system", ctx.t("error.bad_id").into_owned()))?,
            ),
            None => None,
        };
        let on_platform: Vec<System> = systems
            .into_iter()
            .filter(|s| Some(s.platform_id) == chosen || Some(s.id) == chosen)
            .collect();
        let links: Vec<Link> = match chosen {
            Some(p) => {
                state
                    .api
                    .get_all::<Link>(&ctx, &format!("/v1/links?platform_id={p}"))
                    .await?
            }
            None => Vec::new(),
        };
        let reached: HashMap<Uuid, u32> = match origin {
            Some(o) => state
                .api
                .get::<BlastRadius>(
                    &ctx,
                    &format!("/v1/systems/{o}/blast-radius?category={category}"),
                )
                .await?
                .affected
                .into_iter()
                .map(|a| (a.system_id, a.hops))
                .collect(),
            None => HashMap::new(),
        };
        let node_ins: Vec<NodeIn<'_>> = on_platform
            .iter()
            .map(|s| NodeIn {
                id: s.id,
                label: &s.name,
                platform: s.kind == "platform",
            })
            .collect();
        let pairs: Vec<(Uuid, Uuid)> = links
            .iter()
            .map(|l| (l.from_system_id, l.to_system_id))
            .collect();
        let (nodes, edges) = graph::layout(&node_ins, &pairs, origin, &reached);
        let mut organizations: Vec<(Uuid, String)> = on_platform
            .iter()
            .map(|s| (s.owner_org_id, name_of(&names, &s.owner_org_id)))
            .collect();
        organizations.sort_by(|a, b| a.1.cmp(&b.1));
        organizations.dedup();
        let rows = on_platform
            .into_iter()
            .map(|s| Row {
                origin: Some(s.id) == origin,
                owner: name_of(&names, &s.owner_org_id),
                hops: reached.get(&s.id).copied(),
                system: s,
            })
            .collect();
        ok(PlatformPage {
            ctx: &ctx,
            choices,
            chosen,
            rows,
            organizations,
            nodes,
            links: links.len(),
            edges,
            origin,
            category,
            categories: CATEGORIES,
            reached: reached.len(),
            width: graph::WIDTH,
            height: graph::HEIGHT,
            radius: graph::RADIUS,
        })
    }
    .await;
    respond(&ctx, result)
}
