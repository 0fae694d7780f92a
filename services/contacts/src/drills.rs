//! Contact drills: every organisation of a platform gets a test notice
//! through its real escalation path; the report says, per organisation, who
//! acknowledged and how fast, and which contacts never answered or bounced.
//! A drill can repeat on a schedule.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use renkei_bus::Outbox;
use renkei_bus::contracts::contacts::DrillStarted;
use renkei_bus::subjects::CONTACTS_DRILL_STARTED;
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{DeliveryState, Notice};
use crate::escalation::{self, Addressee, Opening};
use crate::store::{self, delivery, drill, notification, recipient};

/// Starts the next run of `drill`: one notification to every organisation
/// of its platform, then the next run scheduled when it repeats.
pub async fn start_run<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    d: &drill::Model,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, DbErr> {
    let run = d.runs + 1;
    let next_run_at = d
        .repeat_every_hours
        .map(|h| now + chrono::Duration::hours(i64::from(h)));
    let mut opened = None;
    if let Some(platform) = store::platform(conn, d.platform_id).await? {
        let members = store::members(conn, &platform).await?;
        let orgs: Vec<Addressee> = std::iter::once(members.operator)
            .chain(members.linked)
            .map(Addressee::org)
            .collect();
        opened = escalation::open(
            conn,
            outbox,
            Opening {
                platform_id: Some(platform.id),
                drill_id: Some(d.id),
                ..Opening::new(
                    CONTACTS_DRILL_STARTED,
                    format!("drill/{}/{run}", d.id),
                    Notice::Drill {
                        platform: platform.name.clone(),
                        run: run as u32,
                    },
                    orgs,
                )
            },
            now,
        )
        .await?;
        if let Some(o) = &opened {
            outbox
                .stage(
                    conn,
                    Some(platform.owner_org_id),
                    &DrillStarted {
                        drill_id: d.id,
                        platform_id: platform.id,
                        run: run as u32,
                        notification_id: o.notification_id,
                        organizations: o.organizations.clone(),
                    },
                )
                .await?;
        }
    } else {
        tracing::warn!(drill_id = %d.id, platform_id = %d.platform_id, "drill of an unknown platform skipped");
    }
    drill::Entity::update_many()
        .col_expr(drill::Column::Runs, Expr::value(run))
        .col_expr(drill::Column::NextRunAt, Expr::value(next_run_at))
        .col_expr(
            drill::Column::LastNotificationId,
            Expr::value(
                opened
                    .as_ref()
                    .map(|o| o.notification_id)
                    .or(d.last_notification_id),
            ),
        )
        .filter(drill::Column::Id.eq(d.id))
        .exec(conn)
        .await?;
    Ok(opened.map(|o| o.notification_id))
}

/// Starts every scheduled run that is due; returns how many.
pub async fn run_due<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    let due = drill::Entity::find()
        .filter(drill::Column::NextRunAt.lte(now))
        .order_by_asc(drill::Column::NextRunAt)
        .limit(20)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .all(conn)
        .await?;
    for d in &due {
        start_run(conn, outbox, d, now).await?;
    }
    let runs = due
        .iter()
        .map(|d| {
            renkei_audit::Action::new("drill.ran", d.id)
                .detail(serde_json::json!({"platform_id": d.platform_id, "run": d.runs + 1}))
        })
        .collect();
    renkei_audit::record_all(conn, renkei_audit::Actor::service(crate::SERVICE), runs).await?;
    Ok(due.len())
}

/// Stops a drill's schedule; its runs and their reports stay.
pub async fn stop<C: ConnectionTrait>(conn: &C, drill_id: Uuid) -> Result<(), DbErr> {
    drill::Entity::update_many()
        .col_expr(
            drill::Column::NextRunAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            drill::Column::RepeatEveryHours,
            Expr::value(Option::<i32>::None),
        )
        .filter(drill::Column::Id.eq(drill_id))
        .exec(conn)
        .await?;
    Ok(())
}

pub async fn next_due<C: ConnectionTrait>(conn: &C) -> Result<Option<DateTime<Utc>>, DbErr> {
    Ok(drill::Entity::find()
        .filter(drill::Column::NextRunAt.is_not_null())
        .order_by_asc(drill::Column::NextRunAt)
        .one(conn)
        .await?
        .and_then(|d| d.next_run_at))
}

/// How one contact did in a drill run.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ContactOutcome {
    pub contact_id: Uuid,
    pub name: String,
    /// A message reached them through at least one channel.
    pub delivered: bool,
    /// Every channel failed.
    pub bounced: bool,
    /// They acknowledged (through their link).
    pub answered: bool,
    /// Channels that failed, with the last error.
    pub failures: Vec<String>,
}

/// How one organisation did in a drill run.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrganizationOutcome {
    pub org_id: Uuid,
    pub name: String,
    pub state: String,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// From the start of the run to the acknowledgement.
    pub seconds_to_acknowledge: Option<f64>,
    /// 1-based escalation step reached.
    pub step: u32,
    pub contacts: Vec<ContactOutcome>,
    /// Told but never acknowledged.
    pub never_answered: Vec<Uuid>,
    /// Every channel failed.
    pub bounced: Vec<Uuid>,
}

/// One run of a drill.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunReport {
    pub run: u32,
    pub notification_id: Uuid,
    pub started_at: DateTime<Utc>,
    pub state: String,
    pub organizations: Vec<OrganizationOutcome>,
}

/// Removes contact details (names, addresses, errors naming them) from a
/// report, for readers who may see outcomes but not the people.
pub fn redact(runs: &mut [RunReport]) {
    for run in runs {
        for org in &mut run.organizations {
            for c in &mut org.contacts {
                c.name.clear();
                c.failures.clear();
            }
        }
    }
}

/// The report of the latest `limit` runs of `drill_id`, newest first.
pub async fn report<C: ConnectionTrait>(
    conn: &C,
    drill_id: Uuid,
    limit: u64,
) -> Result<Vec<RunReport>, DbErr> {
    let runs = notification::Entity::find()
        .filter(notification::Column::DrillId.eq(drill_id))
        .order_by_desc(notification::Column::Id)
        .limit(limit)
        .all(conn)
        .await?;
    let mut reports = Vec::with_capacity(runs.len());
    for n in runs {
        let run = n
            .topic
            .rsplit('/')
            .next()
            .and_then(|r| r.parse().ok())
            .unwrap_or_default();
        let orgs = recipient::Entity::find()
            .filter(recipient::Column::NotificationId.eq(n.id))
            .order_by_asc(recipient::Column::Id)
            .all(conn)
            .await?;
        let deliveries = delivery::Entity::find()
            .filter(delivery::Column::NotificationId.eq(n.id))
            .order_by_asc(delivery::Column::Id)
            .all(conn)
            .await?;
        let names =
            store::org_names(conn, &orgs.iter().map(|r| r.org_id).collect::<Vec<_>>()).await?;
        let mut by_org: HashMap<Uuid, Vec<&delivery::Model>> = HashMap::new();
        for d in &deliveries {
            by_org.entry(d.recipient_id).or_default().push(d);
        }
        let mut organizations = Vec::with_capacity(orgs.len());
        for r in orgs {
            let mut contacts: Vec<ContactOutcome> = Vec::new();
            for d in by_org.get(&r.id).map_or(&[][..], Vec::as_slice) {
                let i = match contacts.iter().position(|c| c.contact_id == d.contact_id) {
                    Some(i) => i,
                    None => {
                        contacts.push(ContactOutcome {
                            contact_id: d.contact_id,
                            name: d.contact_name.clone(),
                            delivered: false,
                            bounced: true,
                            answered: r.acknowledged_by.as_deref()
                                == Some(format!("contact:{}", d.contact_id).as_str()),
                            failures: Vec::new(),
                        });
                        contacts.len() - 1
                    }
                };
                let c = &mut contacts[i];
                c.delivered |= d.state == DeliveryState::Delivered.as_str();
                c.bounced &= d.state == DeliveryState::Failed.as_str();
                if d.state == DeliveryState::Failed.as_str() {
                    c.failures.push(format!(
                        "{} {}: {}",
                        d.channel,
                        d.address,
                        d.last_error.clone().unwrap_or_default()
                    ));
                }
            }
            // Acknowledged through the API: the organisation answered, but
            // not through any one contact's link; nobody "never answered".
            let via_api = r.acknowledged_via.as_deref() == Some("api");
            organizations.push(OrganizationOutcome {
                org_id: r.org_id,
                name: names.get(&r.org_id).cloned().unwrap_or_default(),
                state: r.state.clone(),
                acknowledged_by: r.acknowledged_by.clone(),
                acknowledged_at: r.acknowledged_at,
                seconds_to_acknowledge: r
                    .acknowledged_at
                    .map(|at| (at - n.created_at).num_milliseconds() as f64 / 1000.0),
                step: r.step as u32 + 1,
                never_answered: contacts
                    .iter()
                    .filter(|c| c.delivered && !c.answered && !via_api)
                    .map(|c| c.contact_id)
                    .collect(),
                bounced: contacts
                    .iter()
                    .filter(|c| c.bounced)
                    .map(|c| c.contact_id)
                    .collect(),
                contacts,
            });
        }
        reports.push(RunReport {
            run,
            notification_id: n.id,
            started_at: n.created_at,
            state: n.state,
            organizations,
        });
    }
    Ok(reports)
}
