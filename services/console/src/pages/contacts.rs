//! An organisation's contacts and escalation policy, editable by that
//! organisation, and its outcomes in contact drills. Another
//! organisation's contacts do not exist for a manager: the API answers 404
//! and so does the page.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::{Failure, ok, respond, see_other};
use crate::model::{Contact, Drill, DrillOutcome, Organization, Page, Policy};
use crate::session::Ctx;
use crate::state::ConsoleState;

pub const CONTACT_ROLES: [&str; 5] = [
    "ciso",
    "csirt",
    "system_manager",
    "operator_on_duty",
    "liaison",
];
pub const AVAILABILITIES: [&str; 3] = ["ordinary", "emergency", "both"];

/// `/console/contacts`: the viewer's own organisation's.
pub async fn mine(ctx: Ctx) -> HttpResponse {
    let result = ctx.user().and_then(|user| match user.org {
        Some(org) => Ok(see_other(&format!("/console/organizations/{org}/contacts"))),
        None => Err(Failure::invalid(
            "org",
            ctx.t("contacts.no_organization").into_owned(),
        )),
    });
    respond(&ctx, result)
}

pub struct DrillRow {
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub run: u32,
    pub outcome: DrillOutcome,
}

#[derive(Template)]
#[template(path = "contacts.html")]
struct ContactsPage<'a> {
    ctx: &'a Ctx,
    org: Uuid,
    org_name: String,
    contacts: Vec<Contact>,
    policy: Policy,
    drills: Vec<DrillRow>,
    may_edit: bool,
    roles: [&'static str; 5],
    availabilities: [&'static str; 3],
}

impl ContactsPage<'_> {
    fn contact_name(&self, id: &Option<Uuid>) -> String {
        id.and_then(|id| self.contacts.iter().find(|c| c.id == id))
            .map_or_else(|| "—".to_owned(), |c| c.name.clone())
    }
}

fn org_id(ctx: &Ctx, raw: &str) -> Result<Uuid, Failure> {
    raw.parse()
        .map_err(|_| Failure::invalid("org_id", ctx.t("error.bad_id").into_owned()))
}

pub async fn page(
    ctx: Ctx,
    state: web::Data<ConsoleState>,
    org: web::Path<String>,
) -> HttpResponse {
    let result = async {
        let user = ctx.user()?;
        let org = org_id(&ctx, &org)?;
        // First: the policy answers 404 for an organisation whose contacts
        // the viewer may not see.
        let policy: Policy = state
            .api
            .get(&ctx, &format!("/v1/organizations/{org}/escalation-policy"))
            .await?;
        let contacts: Page<Contact> = state
            .api
            .get(&ctx, &format!("/v1/contacts?org_id={org}&limit=1000"))
            .await?;
        let org_name = state
            .api
            .get::<Organization>(&ctx, &format!("/v1/organizations/{org}"))
            .await
            .map_or_else(|_| org.to_string(), |o| o.name);
        // Drills are the platform operator's: others see none.
        let drills: Page<Drill> = state.api.get(&ctx, "/v1/drills?limit=5").await?;
        let mut rows = Vec::new();
        for drill in drills.items.iter().take(5) {
            let detail: Drill = state
                .api
                .get(&ctx, &format!("/v1/drills/{}", drill.id))
                .await?;
            for run in detail.report.unwrap_or_default() {
                if let Some(outcome) = run.organizations.into_iter().find(|o| o.org_id == org) {
                    rows.push(DrillRow {
                        started_at: run.started_at,
                        run: run.run,
                        outcome,
                    });
                }
            }
        }
        rows.sort_by_key(|r| std::cmp::Reverse(r.started_at));
        let may_edit = user.org == Some(org)
            && ["manager", "ciso", "csirt", "operator"]
                .iter()
                .any(|r| user.has(r))
            || user.has("operator");
        ok(ContactsPage {
            ctx: &ctx,
            org,
            org_name,
            contacts: contacts.items,
            policy,
            drills: rows,
            may_edit,
            roles: CONTACT_ROLES,
            availabilities: AVAILABILITIES,
        })
    }
    .await;
    respond(&ctx, result)
}

#[derive(Deserialize)]
pub struct NewContact {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    availability: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    language: String,
}

/// Adds a contact to the organisation; the API checks every field and the
/// page shows its refusal naming the field.
pub async fn add(
    ctx: Ctx,
    state: web::Data<ConsoleState>,
    org: web::Path<String>,
    form: web::Form<NewContact>,
) -> HttpResponse {
    let result = async {
        ctx.check_csrf(&form.csrf)?;
        let org = org_id(&ctx, &org)?;
        let channel = match form.channel.as_str() {
            "webhook" => serde_json::json!({"kind": "webhook", "url": form.address.trim()}),
            "email" => serde_json::json!({"kind": "email", "address": form.address.trim()}),
            _ => {
                return Err(Failure::invalid(
                    "channel",
                    ctx.t("contacts.bad_channel").into_owned(),
                ));
            }
        };
        let body = serde_json::json!({
            "org_id": org,
            "name": form.name.trim(),
            "role": form.role,
            "availability": form.availability,
            "channels": [channel],
            "language": if form.language.is_empty() { None } else { Some(&form.language) },
        });
        let _: serde_json::Value = state
            .api
            .send(&ctx, reqwest::Method::POST, "/v1/contacts", &body)
            .await?;
        Ok(see_other(&format!("/console/organizations/{org}/contacts")))
    }
    .await;
    respond(&ctx, result)
}
