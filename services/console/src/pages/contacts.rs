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

/// How many steps the policy form offers.
pub const STEPS: usize = 4;

/// A step of the policy form, filled with the saved policy.
pub struct StepRow {
    pub number: usize,
    /// The form value of its first target (`role:csirt`, `contact:<id>`,
    /// `available`), empty for an unused step.
    pub target: String,
    pub wait_minutes: u32,
}

/// A target the policy form offers: its form value and its words.
pub struct TargetChoice {
    pub value: String,
    pub label: String,
}

impl ContactsPage<'_> {
    fn contact_name(&self, id: &Option<Uuid>) -> String {
        id.and_then(|id| self.contacts.iter().find(|c| c.id == id))
            .map_or_else(|| "—".to_owned(), |c| c.name.clone())
    }

    /// Every target a step may have: each contact role, each contact,
    /// everyone reachable.
    fn targets(&self) -> Vec<TargetChoice> {
        let mut out: Vec<TargetChoice> = CONTACT_ROLES
            .iter()
            .map(|r| TargetChoice {
                value: format!("role:{r}"),
                label: self.ctx.tk("contact_role", r).into_owned(),
            })
            .collect();
        out.extend(self.contacts.iter().map(|c| TargetChoice {
            value: format!("contact:{}", c.id),
            label: c.name.clone(),
        }));
        out.push(TargetChoice {
            value: "available".into(),
            label: self.ctx.t("contacts.target_available").into_owned(),
        });
        out
    }

    /// The form shows a step as one target: a policy with more steps, or
    /// steps with several targets, is kept as it is (changed through the
    /// API), never cut down by a save.
    fn policy_fits_the_form(&self) -> bool {
        self.policy.steps.len() <= STEPS && self.policy.steps.iter().all(|s| s.targets.len() == 1)
    }

    fn steps(&self) -> Vec<StepRow> {
        (0..STEPS)
            .map(|i| {
                let saved = self.policy.steps.get(i);
                StepRow {
                    number: i + 1,
                    target: saved
                        .and_then(|s| s.targets.first())
                        .map(target_value)
                        .unwrap_or_default(),
                    wait_minutes: saved.map_or(15, |s| s.wait_seconds.div_ceil(60)),
                }
            })
            .collect()
    }
}

fn target_value(t: &crate::model::Target) -> String {
    match (t.kind.as_str(), &t.role, &t.contact_id) {
        ("role", Some(role), _) => format!("role:{role}"),
        ("contact", _, Some(id)) => format!("contact:{id}"),
        _ => "available".into(),
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
        let contacts = Page {
            items: state
                .api
                .get_all::<Contact>(&ctx, &format!("/v1/contacts?org_id={org}"))
                .await?,
            next: None,
        };
        let org_name = state
            .api
            .get::<Organization>(&ctx, &format!("/v1/organizations/{org}"))
            .await
            .map_or_else(|_| org.to_string(), |o| o.name);
        // Drills are the platform operator's: others see none.
        let drills: Page<Drill> = state.api.get(&ctx, "/v1/drills?limit=5").await?;
        let mut rows = Vec::new();
        let paths: Vec<String> = drills
            .items
            .iter()
            .take(5)
            .map(|d| format!("/v1/drills/{}", d.id))
            .collect();
        let details =
            futures::future::try_join_all(paths.iter().map(|p| state.api.get::<Drill>(&ctx, p)))
                .await?;
        for detail in details {
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
    /// The webhook's signing secret (webhooks only).
    #[serde(default)]
    secret: String,
    #[serde(default)]
    language: String,
}

#[derive(Deserialize)]
pub struct PolicyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    step1: String,
    #[serde(default)]
    wait1: String,
    #[serde(default)]
    step2: String,
    #[serde(default)]
    wait2: String,
    #[serde(default)]
    step3: String,
    #[serde(default)]
    wait3: String,
    #[serde(default)]
    step4: String,
    #[serde(default)]
    wait4: String,
    #[serde(default)]
    repeat: String,
}

/// One step of the policy form as the API takes it; `None` for an unused
/// step.
fn policy_step(
    ctx: &Ctx,
    field: &'static str,
    wait_field: &'static str,
    target: &str,
    wait: &str,
) -> Result<Option<serde_json::Value>, Failure> {
    let target = match target.split_once(':') {
        _ if target.is_empty() => return Ok(None),
        None if target == "available" => serde_json::json!({"kind": "available"}),
        Some(("role", role)) if CONTACT_ROLES.contains(&role) => {
            serde_json::json!({"kind": "role", "role": role})
        }
        Some(("contact", id)) => {
            let id: Uuid = id
                .parse()
                .map_err(|_| Failure::invalid(field, ctx.t("error.bad_id").into_owned()))?;
            serde_json::json!({"kind": "contact", "contact_id": id})
        }
        _ => {
            return Err(Failure::invalid(
                field,
                ctx.t("contacts.bad_target").into_owned(),
            ));
        }
    };
    let minutes: u32 = wait
        .trim()
        .parse()
        .ok()
        .filter(|m| (1..=10_080).contains(m))
        .ok_or_else(|| Failure::invalid(wait_field, ctx.t("contacts.bad_wait").into_owned()))?;
    Ok(Some(
        serde_json::json!({"targets": [target], "wait_seconds": minutes * 60}),
    ))
}

/// Saves the organisation's escalation policy: who is told at each step,
/// and how long to wait for an acknowledgement before the next.
pub async fn save_policy(
    ctx: Ctx,
    state: web::Data<ConsoleState>,
    org: web::Path<String>,
    form: web::Form<PolicyForm>,
) -> HttpResponse {
    let result = async {
        ctx.check_form(&form.csrf)?;
        let org = org_id(&ctx, &org)?;
        let rows = [
            ("step1", "wait1", &form.step1, &form.wait1),
            ("step2", "wait2", &form.step2, &form.wait2),
            ("step3", "wait3", &form.step3, &form.wait3),
            ("step4", "wait4", &form.step4, &form.wait4),
        ];
        let mut steps = Vec::new();
        for (field, wait_field, target, wait) in rows {
            if let Some(step) = policy_step(&ctx, field, wait_field, target, wait)? {
                steps.push(step);
            }
        }
        if steps.is_empty() {
            return Err(Failure::invalid(
                "step1",
                ctx.t("contacts.no_steps").into_owned(),
            ));
        }
        let repeat: u32 = match form.repeat.trim() {
            "" => 0,
            raw => raw.parse().ok().filter(|r| *r <= 10).ok_or_else(|| {
                Failure::invalid("repeat", ctx.t("contacts.bad_repeat").into_owned())
            })?,
        };
        let _: serde_json::Value = state
            .api
            .send(
                &ctx,
                reqwest::Method::PUT,
                &format!("/v1/organizations/{org}/escalation-policy"),
                &serde_json::json!({"steps": steps, "repeat": repeat}),
            )
            .await?;
        Ok(see_other(&format!("/console/organizations/{org}/contacts")))
    }
    .await;
    respond(&ctx, result)
}

#[derive(Deserialize)]
pub struct RemoveContact {
    #[serde(default)]
    csrf: String,
}

/// Removes a contact of the organisation.
pub async fn remove(
    ctx: Ctx,
    state: web::Data<ConsoleState>,
    path: web::Path<(String, String)>,
    form: web::Form<RemoveContact>,
) -> HttpResponse {
    let result = async {
        ctx.check_form(&form.csrf)?;
        let org = org_id(&ctx, &path.0)?;
        let contact: Uuid = path
            .1
            .parse()
            .map_err(|_| Failure::invalid("contact_id", ctx.t("error.bad_id").into_owned()))?;
        let _: serde_json::Value = state
            .api
            .send(
                &ctx,
                reqwest::Method::DELETE,
                &format!("/v1/contacts/{contact}"),
                &serde_json::json!({}),
            )
            .await?;
        Ok(see_other(&format!("/console/organizations/{org}/contacts")))
    }
    .await;
    respond(&ctx, result)
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
        ctx.check_form(&form.csrf)?;
        let org = org_id(&ctx, &org)?;
        let channel = match form.channel.as_str() {
            "webhook" => serde_json::json!({"kind": "webhook", "url": form.address.trim(),
                                            "secret": form.secret}),
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
