//! Incidents: the list, the declare form, and the incident page (status,
//! TLP banner, affected organisations and their acknowledgement, tasks,
//! the report deadline, the timeline) with the acknowledge button.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{DateTime, TimeZone as _, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::{Failure, name_of, names_of, ok, respond, see_other};
use crate::model::{Incident, Notification, Page, System, Task, TimelineEntry};
use crate::pages::platform::CATEGORIES;
use crate::session::Ctx;
use crate::state::ConsoleState;

pub const TLPS: [&str; 5] = ["clear", "green", "amber", "amber+strict", "red"];

#[derive(Template)]
#[template(path = "incidents.html")]
struct ListPage<'a> {
    ctx: &'a Ctx,
    incidents: Vec<Incident>,
    /// The cursor of the next (older) page, when there is one.
    next: Option<String>,
    systems: Vec<System>,
    categories: [&'static str; 6],
    tlps: [&'static str; 5],
    /// The declare form's values: empty, or what was sent when it was
    /// refused (nothing typed at 3 a.m. is lost).
    draft: Declare,
    /// Why the declare form was refused: the field and the reason.
    problem: Option<(String, String)>,
}

impl ListPage<'_> {
    /// Whether the refusal named `field` (for `aria-invalid`).
    fn invalid(&self, field: &str) -> bool {
        self.problem.as_ref().is_some_and(|(f, _)| f == field)
    }
}

async fn list_page<'a>(
    ctx: &'a Ctx,
    state: &ConsoleState,
    cursor: Option<&str>,
    draft: Declare,
    problem: Option<(String, String)>,
) -> Result<ListPage<'a>, Failure> {
    let path = match cursor.filter(|c| !c.is_empty()) {
        Some(c) => format!("/v1/incidents?limit=50&cursor={}", super::encode(c)),
        None => "/v1/incidents?limit=50".to_owned(),
    };
    let (incidents, systems) = futures::try_join!(
        state.api.get::<Page<Incident>>(ctx, &path),
        state.api.get_all::<System>(ctx, "/v1/systems"),
    )?;
    Ok(ListPage {
        ctx,
        incidents: incidents.items,
        next: incidents.next,
        systems,
        categories: CATEGORIES,
        tlps: TLPS,
        draft,
        problem,
    })
}

#[derive(Deserialize)]
pub struct ListQuery {
    cursor: Option<String>,
}

/// Incidents, newest first, 50 a page.
pub async fn list(
    ctx: Ctx,
    state: web::Data<ConsoleState>,
    query: web::Query<ListQuery>,
) -> HttpResponse {
    let result = async {
        ctx.user()?;
        ok(list_page(
            &ctx,
            &state,
            query.cursor.as_deref(),
            Declare::default(),
            None,
        )
        .await?)
    }
    .await;
    respond(&ctx, result)
}

#[derive(Deserialize)]
pub struct Declare {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    system_id: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    tlp: String,
    #[serde(default)]
    summary: String,
    /// `YYYY-MM-DDTHH:MM` in the viewer's time zone; empty: now.
    #[serde(default)]
    detected_at: String,
}

impl Default for Declare {
    /// The form as it first shows: malware, severity 2, TLP:AMBER.
    fn default() -> Declare {
        Declare {
            csrf: String::new(),
            system_id: String::new(),
            category: "malware".into(),
            severity: "2".into(),
            tlp: "amber".into(),
            summary: String::new(),
            detected_at: String::new(),
        }
    }
}

/// A local `datetime-local` value in `tz`, as UTC.
pub fn local_time(raw: &str, tz: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    let naive = chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

pub async fn declare(
    ctx: Ctx,
    state: web::Data<ConsoleState>,
    form: web::Form<Declare>,
) -> HttpResponse {
    let form = form.into_inner();
    let refused = match send_declaration(&ctx, &state, &form).await {
        Ok(created) => return created,
        // The form again, with what was typed and the reason by its field.
        Err(Failure::Invalid { field, detail }) => Some((400, field.to_owned(), detail)),
        Err(Failure::Refused { status, problem }) if matches!(status, 400 | 422) => {
            Some((status, problem.field.unwrap_or_default(), problem.detail))
        }
        Err(other) => return respond(&ctx, Err(other)),
    };
    let Some((status, field, detail)) = refused else {
        return respond(&ctx, Err(Failure::Unavailable));
    };
    let page = list_page(&ctx, &state, None, form, Some((field, detail))).await;
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    match page {
        Ok(page) => super::html(status, page.render()),
        Err(failure) => respond(&ctx, Err(failure)),
    }
}

async fn send_declaration(
    ctx: &Ctx,
    state: &ConsoleState,
    form: &Declare,
) -> Result<HttpResponse, Failure> {
    ctx.check_form(&form.csrf)?;
    let system: Uuid = form
        .system_id
        .parse()
        .map_err(|_| Failure::invalid("system_id", ctx.t("incidents.pick_system").into_owned()))?;
    let severity: i64 = form
        .severity
        .parse()
        .map_err(|_| Failure::invalid("severity", ctx.t("incidents.bad_severity").into_owned()))?;
    let detected_at = match form.detected_at.trim() {
        "" => Utc::now(),
        raw => local_time(raw, ctx.tz).ok_or_else(|| {
            Failure::invalid("detected_at", ctx.t("incidents.bad_time").into_owned())
        })?,
    };
    let body = serde_json::json!({
        "system_id": system,
        "category": form.category,
        "severity": severity,
        "tlp": form.tlp,
        "summary": form.summary.trim(),
        "detected_at": detected_at,
    });
    let created: serde_json::Value = state
        .api
        .send(ctx, reqwest::Method::POST, "/v1/incidents", &body)
        .await?;
    match created["id"].as_str() {
        Some(id) => Ok(see_other(&format!("/console/incidents/{id}"))),
        None => Ok(see_other("/console/incidents")),
    }
}

pub struct TaskRow {
    pub task: Task,
    pub owner: String,
}

#[derive(Template)]
#[template(path = "incident.html")]
struct IncidentPage<'a> {
    ctx: &'a Ctx,
    incident: Incident,
    declared_on_org: String,
    tasks: Vec<TaskRow>,
    timeline: Vec<TimelineEntry>,
    /// The viewer's organisation is affected and has not acknowledged.
    may_acknowledge: bool,
    /// The viewer's organisation's row, when it is affected.
    mine: Option<Uuid>,
    /// Seconds until the initial report is due (negative: overdue).
    report_due_in: Option<i64>,
}

impl IncidentPage<'_> {
    fn is_mine(&self, org: &Uuid) -> bool {
        self.mine.as_ref() == Some(org)
    }

    fn remaining(&self) -> String {
        match self.report_due_in {
            None => "—".into(),
            Some(s) if s < 0 => format!("{} ({})", self.ctx.t("incidents.overdue"), duration(-s)),
            Some(s) => duration(s),
        }
    }
}

/// `1 h 05 min`, `12 min`, `40 s`.
pub fn duration(secs: i64) -> String {
    let (h, m) = (secs / 3600, (secs % 3600) / 60);
    match (h, m) {
        (0, 0) => format!("{secs} s"),
        (0, m) => format!("{m} min"),
        (h, m) => format!("{h} h {m:02} min"),
    }
}

fn incident_id(ctx: &Ctx, raw: &str) -> Result<Uuid, Failure> {
    raw.parse()
        .map_err(|_| Failure::invalid("id", ctx.t("error.bad_id").into_owned()))
}

pub async fn page(ctx: Ctx, state: web::Data<ConsoleState>, id: web::Path<String>) -> HttpResponse {
    let result = async {
        let user = ctx.user()?;
        let id = incident_id(&ctx, &id)?;
        // The calls at once: in an incident, a slow service must not make
        // the page several times slower.
        let (one, tasks, timeline) = (
            format!("/v1/incidents/{id}"),
            format!("/v1/incidents/{id}/tasks"),
            format!("/v1/incidents/{id}/timeline"),
        );
        let (incident, tasks, timeline) = futures::try_join!(
            state.api.get::<Incident>(&ctx, &one),
            state.api.get::<Page<Task>>(&ctx, &tasks),
            state.api.get_all::<TimelineEntry>(&ctx, &timeline),
        )?;
        // Affected organisations come with their names; the declaring one
        // and the task owners are read alone.
        let wanted = std::iter::once(incident.org_id)
            .chain(tasks.items.iter().filter_map(|t| t.owner_org_id));
        let names: HashMap<Uuid, String> = names_of(&ctx, &state, wanted).await;
        let mine = user
            .org
            .filter(|org| incident.affected.iter().any(|a| a.org_id == *org));
        let may_acknowledge = mine.is_some_and(|org| {
            incident
                .affected
                .iter()
                .any(|a| a.org_id == org && !a.acknowledged)
        });
        let report_due_in = incident
            .report_due_at
            .filter(|_| incident.status != "closed")
            .map(|due| (due - Utc::now()).num_seconds());
        ok(IncidentPage {
            ctx: &ctx,
            declared_on_org: name_of(&names, &incident.org_id),
            tasks: tasks
                .items
                .into_iter()
                .map(|task| TaskRow {
                    owner: task
                        .owner_org_id
                        .map_or_else(|| "—".into(), |o| name_of(&names, &o)),
                    task,
                })
                .collect(),
            timeline,
            incident,
            may_acknowledge,
            mine,
            report_due_in,
        })
    }
    .await;
    respond(&ctx, result)
}

#[derive(Deserialize)]
pub struct Acknowledge {
    #[serde(default)]
    csrf: String,
}

/// Acknowledges the alert the viewer's organisation got for this incident:
/// the escalation along its contacts stops.
pub async fn acknowledge(
    ctx: Ctx,
    state: web::Data<ConsoleState>,
    id: web::Path<String>,
    form: web::Form<Acknowledge>,
) -> HttpResponse {
    let result = async {
        let user = ctx.check_form(&form.csrf)?;
        let id = incident_id(&ctx, &id)?;
        let org = user.org.ok_or_else(|| {
            Failure::invalid("org", ctx.t("contacts.no_organization").into_owned())
        })?;
        let notification = state
            .api
            .get_all::<Notification>(
                &ctx,
                &format!("/v1/notifications?org_id={org}&subject=emergency.incident.spread_risk"),
            )
            .await?
            .into_iter()
            .find(|n| n.incident_id == Some(id))
            .ok_or_else(|| Failure::Refused {
                status: 409,
                problem: crate::api::Problem {
                    title: String::new(),
                    detail: ctx.t("incidents.no_alert_yet").into_owned(),
                    field: None,
                },
            })?;
        if notification.state != "acknowledged" {
            let _: serde_json::Value = state
                .api
                .send(
                    &ctx,
                    reqwest::Method::POST,
                    &format!("/v1/notifications/{}/ack", notification.id),
                    &serde_json::json!({ "org_id": org }),
                )
                .await?;
        }
        Ok(see_other(&format!("/console/incidents/{id}")))
    }
    .await;
    respond(&ctx, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_time_is_read_in_the_viewers_zone() {
        let tokyo: chrono_tz::Tz = "Asia/Tokyo".parse().expect("zone");
        assert_eq!(
            local_time("2026-11-27T15:30", tokyo).map(|t| t.to_rfc3339()),
            Some("2026-11-27T06:30:00+00:00".into())
        );
        assert_eq!(local_time("27/11/2026", tokyo), None);
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(40), "40 s");
        assert_eq!(duration(12 * 60 + 5), "12 min");
        assert_eq!(duration(3600 + 5 * 60), "1 h 05 min");
    }
}
