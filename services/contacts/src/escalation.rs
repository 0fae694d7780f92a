//! The steps that change notifications, each inside the caller's
//! transaction together with the events it causes: opening a notification
//! for organisations, entering escalation steps (which creates the
//! deliveries), acknowledging, and exhausting. The dispatcher and the timer
//! in [`crate::delivery`] drive them.
//!
//! Who a step reaches is narrowed by the notice's TLP marking (`red`: the
//! CISO and CSIRT only; `amber+strict`: no liaisons). A notification that
//! needs no acknowledgement tells each organisation through the first step
//! that reaches someone and runs no timer: the step is left only when all
//! its deliveries failed.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use renkei_bus::Outbox;
use renkei_bus::contracts::contacts::{
    NotificationAcknowledged, NotificationEscalated, NotificationExhausted, NotificationRef,
};
use renkei_store::json::{from_column, to_column};
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use tracing::Instrument as _;
use uuid::Uuid;

use crate::domain::policy::recipients;
use crate::domain::{
    Condition, ContactRole, DeliveryState, Detail, Notice, NotificationState, OrgState, Policy,
    Position, Tlp,
};
use crate::store::{self, StoredContact, delivery, notification, recipient};

/// A notification to open.
#[derive(Debug, Clone)]
pub struct Opening {
    /// The event subject that causes it.
    pub subject: String,
    /// What it is about; organisations already told of this topic are skipped.
    pub topic: String,
    pub notice: Notice,
    pub platform_id: Option<Uuid>,
    pub incident_id: Option<Uuid>,
    pub drill_id: Option<Uuid>,
    pub source_event_id: Option<Uuid>,
    /// Organisations to tell; one already told of the topic, or named
    /// twice, is told once (the first time it is named).
    pub orgs: Vec<Addressee>,
    /// Whether each organisation must acknowledge. If not, it is told
    /// through the first step of its escalation that reaches someone, and
    /// not escalated further (no timer).
    pub ack_required: bool,
    /// A contact role told first, before each organisation's own policy
    /// (an organisation without such a contact goes straight on to it).
    pub first_to: Option<ContactRole>,
}

impl Opening {
    /// An opening with the usual defaults: each organisation acknowledges,
    /// its own policy from the start, about no platform, incident or drill.
    pub fn new(
        subject: impl Into<String>,
        topic: impl Into<String>,
        notice: Notice,
        orgs: Vec<Addressee>,
    ) -> Opening {
        Opening {
            subject: subject.into(),
            topic: topic.into(),
            notice,
            platform_id: None,
            incident_id: None,
            drill_id: None,
            source_event_id: None,
            orgs,
            ack_required: true,
            first_to: None,
        }
    }
}

/// An organisation to tell.
#[derive(Debug, Clone, PartialEq)]
pub struct Addressee {
    pub org_id: Uuid,
    /// Its systems concerned (empty: all): contacts tied to other systems
    /// are not told, and a policy of one of these systems is used.
    pub systems: Vec<Uuid>,
    /// What its messages add to the notice, for it alone.
    pub detail: Option<Detail>,
}

impl Addressee {
    /// The whole organisation, nothing of its own added.
    pub fn org(org_id: Uuid) -> Addressee {
        Addressee {
            org_id,
            systems: Vec::new(),
            detail: None,
        }
    }

    pub fn with_systems(org_id: Uuid, systems: Vec<Uuid>) -> Addressee {
        Addressee {
            org_id,
            systems,
            detail: None,
        }
    }
}

/// What opening did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub notification_id: Uuid,
    pub organizations: Vec<Uuid>,
    pub deliveries: usize,
}

/// Opens a notification for the organisations of `opening` not yet told of
/// its topic, and enters the first step of each one's escalation. Returns
/// `None` when every organisation already was.
#[tracing::instrument(skip_all, fields(topic = %opening.topic, orgs = opening.orgs.len()))]
pub async fn open<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    opening: Opening,
    now: DateTime<Utc>,
) -> Result<Option<Opened>, DbErr> {
    let mut queue = vec![opening];
    let mut first = None;
    let mut audited = Vec::new();
    // Exhausting an organisation at once (nobody to tell) tells the
    // platform operator, which opens another notification: a queue, not
    // recursion.
    while let Some(opening) = queue.pop() {
        let about = serde_json::json!({"topic": opening.topic, "subject": opening.subject});
        let (opened, follow_ups) = open_one(conn, outbox, opening, now).await?;
        if let Some(o) = &opened {
            let mut detail = about;
            detail["organizations"] = o.organizations.len().into();
            detail["deliveries"] = o.deliveries.into();
            audited.push(
                renkei_audit::Action::new("notification.opened", o.notification_id).detail(detail),
            );
        }
        if first.is_none() {
            first = Some(opened);
        }
        queue.extend(follow_ups);
    }
    let by = renkei_audit::Actor::service(crate::SERVICE);
    renkei_audit::record_all(conn, by, audited).await?;
    Ok(first.flatten())
}

async fn open_one<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    opening: Opening,
    now: DateTime<Utc>,
) -> Result<(Option<Opened>, Vec<Opening>), DbErr> {
    let mut seen = HashSet::new();
    let mut orgs: Vec<Addressee> = opening
        .orgs
        .into_iter()
        .filter(|a| seen.insert(a.org_id))
        .collect();
    let mut told = HashSet::new();
    for chunk in orgs.chunks(500) {
        let rows = recipient::Entity::find()
            .select_only()
            .column(recipient::Column::OrgId)
            .filter(recipient::Column::Topic.eq(&opening.topic))
            .filter(recipient::Column::OrgId.is_in(chunk.iter().map(|a| a.org_id)))
            .into_tuple::<Uuid>()
            .all(conn)
            .await?;
        told.extend(rows);
    }
    orgs.retain(|a| !told.contains(&a.org_id));
    if orgs.is_empty() {
        return Ok((None, Vec::new()));
    }

    let notification_id = Uuid::now_v7();
    let condition = opening.notice.condition();
    let tlp = opening.notice.tlp();
    notification::Entity::insert(notification::ActiveModel {
        id: Set(notification_id),
        subject: Set(opening.subject.clone()),
        topic: Set(opening.topic.clone()),
        condition: Set(condition.as_str().to_owned()),
        platform_id: Set(opening.platform_id),
        incident_id: Set(opening.incident_id),
        drill_id: Set(opening.drill_id),
        source_event_id: Set(opening.source_event_id),
        notice: Set(to_column(&opening.notice)?),
        state: Set(NotificationState::Open.as_str().to_owned()),
        ack_required: Set(opening.ack_required),
        created_at: Set(now),
        updated_at: Set(now),
        trace_headers: Set(serde_json::to_string(&renkei_telemetry::inject(
            &tracing::Span::current(),
        ))
        .ok()),
    })
    .exec_without_returning(conn)
    .await?;

    let org_ids: Vec<Uuid> = orgs.iter().map(|a| a.org_id).collect();
    let scopes: Vec<(Uuid, Vec<Uuid>)> =
        orgs.iter().map(|a| (a.org_id, a.systems.clone())).collect();
    let policies = store::policies_for(conn, &scopes).await?;
    let contacts = store::contacts_of(conn, &org_ids).await?;
    let about = |org: Uuid| NotificationRef {
        notification_id,
        subject: opening.subject.clone(),
        topic: opening.topic.clone(),
        platform_id: opening.platform_id,
        incident_id: opening.incident_id,
        organization_id: org,
    };

    let mut rows = Vec::with_capacity(orgs.len());
    let mut deliveries = Vec::new();
    let mut escalated = Vec::new();
    let mut exhausted = Vec::new();
    let mut states = Vec::with_capacity(orgs.len());
    for Addressee {
        org_id: org,
        systems,
        detail,
    } in &orgs
    {
        let own = policies
            .get(org)
            .cloned()
            .unwrap_or_else(Policy::default_policy);
        let policy = match opening.first_to {
            Some(role) => own.led_by(role),
            None => own,
        };
        let recipient_id = Uuid::now_v7();
        let plan = plan(
            &policy,
            Position::default(),
            admitted(contacts.get(org), tlp),
            systems,
            condition,
            opening.ack_required,
            now,
        );
        let target = Target {
            notification_id,
            recipient_id,
            org_id: *org,
        };
        deliveries.extend(plan.deliveries(&target, now));
        for (at, reason) in &plan.skipped {
            escalated.push((Some(*org), escalated_event(about(*org), *at, reason)));
        }
        let state = if plan.exhausted {
            exhausted.push((
                Some(*org),
                NotificationExhausted {
                    about: about(*org),
                    delivered: false,
                },
            ));
            OrgState::Unacknowledged
        } else {
            OrgState::Notifying
        };
        states.push(state);
        rows.push(recipient::ActiveModel {
            id: Set(recipient_id),
            notification_id: Set(notification_id),
            topic: Set(opening.topic.clone()),
            org_id: Set(*org),
            systems: Set(to_column(systems)?),
            detail: Set(detail.as_ref().map(to_column).transpose()?),
            policy: Set(to_column(&policy)?),
            state: Set(state.as_str().to_owned()),
            step: Set(plan.position.step as i32),
            round: Set(plan.position.round as i32),
            step_started_at: Set(now),
            next_at: Set(plan.next_at),
            delivered_at: Set(None),
            last_delivered_at: Set(None),
            acknowledged_at: Set(None),
            acknowledged_by: Set(None),
            acknowledged_via: Set(None),
            exhausted_at: Set(plan.exhausted.then_some(now)),
            created_at: Set(now),
        });
    }
    for chunk in rows.chunks(300) {
        recipient::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(conn)
            .await?;
    }
    let delivery_count = deliveries.len();
    for chunk in deliveries.chunks(300) {
        delivery::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(conn)
            .await?;
    }
    outbox.stage_many(conn, &escalated).await?;
    outbox.stage_many(conn, &exhausted).await?;
    let state = NotificationState::of(states);
    if state != NotificationState::Open {
        set_state(conn, notification_id, state, now).await?;
    }
    let silent: Vec<Uuid> = exhausted.iter().filter_map(|(org, _)| *org).collect();
    let follow_ups = tell_operator(
        conn,
        &opening.notice,
        opening.platform_id,
        opening.drill_id.is_some() || !opening.ack_required,
        &silent,
        &opening.topic,
    )
    .await?
    .into_iter()
    .collect();
    tracing::debug!(%notification_id, orgs = org_ids.len(), deliveries = delivery_count, "notification opened");
    Ok((
        Some(Opened {
            notification_id,
            organizations: org_ids,
            deliveries: delivery_count,
        }),
        follow_ups,
    ))
}

/// Where a step's deliveries belong.
struct Target {
    notification_id: Uuid,
    recipient_id: Uuid,
    org_id: Uuid,
}

/// The outcome of entering escalation at some position: the step that has
/// someone to tell (and whom), the steps skipped for having nobody, or the
/// end of the policy.
#[derive(Debug)]
struct Plan<'a> {
    position: Position,
    told: Vec<&'a StoredContact>,
    skipped: Vec<(Position, &'static str)>,
    exhausted: bool,
    next_at: Option<DateTime<Utc>>,
}

impl Plan<'_> {
    fn deliveries(&self, t: &Target, now: DateTime<Utc>) -> Vec<delivery::ActiveModel> {
        let mut rows = Vec::new();
        for contact in &self.told {
            for channel in &contact.channels {
                rows.push(delivery::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    notification_id: Set(t.notification_id),
                    recipient_id: Set(t.recipient_id),
                    org_id: Set(t.org_id),
                    step: Set(self.position.step as i32),
                    round: Set(self.position.round as i32),
                    contact_id: Set(contact.candidate.id),
                    contact_name: Set(contact.name.clone()),
                    channel: Set(channel.kind().to_owned()),
                    address: Set(channel.address().to_owned()),
                    language: Set(contact.language.as_str().to_owned()),
                    state: Set(DeliveryState::Pending.as_str().to_owned()),
                    attempts: Set(0),
                    next_attempt_at: Set(now),
                    lease_until: Set(None),
                    last_error: Set(None),
                    delivered_at: Set(None),
                    created_at: Set(now),
                });
            }
        }
        rows
    }
}

/// The contacts of an organisation a notice marked `tlp` may reach.
fn admitted(contacts: Option<&Vec<StoredContact>>, tlp: Option<Tlp>) -> Vec<&StoredContact> {
    contacts
        .into_iter()
        .flatten()
        .filter(|c| tlp.is_none_or(|t| t.admits(c.candidate.role)))
        .collect()
}

/// Enters escalation at `start`: the first step from there that reaches
/// someone among `contacts`, skipping steps with nobody to tell; exhausted
/// when a whole round finds nobody or the policy ends. Without
/// `ack_required`, the step found runs no timer.
fn plan<'a>(
    policy: &Policy,
    start: Position,
    contacts: Vec<&'a StoredContact>,
    systems: &[Uuid],
    condition: Condition,
    ack_required: bool,
    now: DateTime<Utc>,
) -> Plan<'a> {
    let candidates: Vec<_> = contacts.iter().map(|c| c.candidate.clone()).collect();
    let mut at = start;
    let mut skipped = Vec::new();
    for tried in 1..=policy.steps.len() {
        let Some(step) = policy.step(at) else { break };
        let ids = recipients(step, &candidates, systems, condition, now);
        if !ids.is_empty() {
            let told = contacts
                .iter()
                .copied()
                .filter(|c| ids.contains(&c.candidate.id))
                .collect();
            return Plan {
                position: at,
                told,
                skipped,
                exhausted: false,
                next_at: ack_required
                    .then(|| now + chrono::Duration::seconds(i64::from(step.wait_seconds))),
            };
        }
        // A whole round with nobody to tell ends it: the next would find
        // nobody either.
        match policy.after(at) {
            Some(next) if tried < policy.steps.len() => {
                skipped.push((next, "no_recipients"));
                at = next;
            }
            _ => break,
        }
    }
    Plan::exhausted(at, skipped)
}

impl<'a> Plan<'a> {
    fn exhausted(position: Position, skipped: Vec<(Position, &'static str)>) -> Plan<'a> {
        Plan {
            position,
            told: Vec::new(),
            skipped,
            exhausted: true,
            next_at: None,
        }
    }
}

fn escalated_event(about: NotificationRef, at: Position, reason: &str) -> NotificationEscalated {
    NotificationEscalated {
        about,
        step: at.step + 1,
        round: at.round,
        reason: reason.to_owned(),
    }
}

/// The notice to the platform operator that `silent` organisations never
/// acknowledged (one notice for all of them), unless that would be
/// pointless: the operator itself, a notice of that kind already, or
/// `unasked` (a drill, whose report says it, or a notification that needed
/// no acknowledgement).
async fn tell_operator<C: ConnectionTrait>(
    conn: &C,
    notice: &Notice,
    platform_id: Option<Uuid>,
    unasked: bool,
    silent: &[Uuid],
    topic: &str,
) -> Result<Option<Opening>, DbErr> {
    if silent.is_empty() || unasked || matches!(notice, Notice::Unacknowledged { .. }) {
        return Ok(None);
    }
    let Some(platform_id) = platform_id else {
        return Ok(None);
    };
    let Some(platform) = store::platform(conn, platform_id).await? else {
        tracing::error!(%platform_id, ?silent, "organisations never acknowledged, but the platform (and so its operator) is unknown here");
        return Ok(None);
    };
    let others: Vec<Uuid> = silent
        .iter()
        .copied()
        .filter(|o| *o != platform.owner_org_id)
        .collect();
    if others.is_empty() {
        return Ok(None);
    }
    let names = store::org_names(conn, &others).await?;
    Ok(Some(Opening {
        platform_id: Some(platform_id),
        ..Opening::new(
            renkei_bus::subjects::CONTACTS_NOTIFICATION_EXHAUSTED,
            format!("{topic}/unacknowledged/{}", Uuid::now_v7()),
            Notice::Unacknowledged {
                organizations: others
                    .iter()
                    .map(|o| names.get(o).cloned().unwrap_or_else(|| o.to_string()))
                    .collect(),
                title_ja: notice.title(crate::domain::Language::Ja),
                title_en: notice.title(crate::domain::Language::En),
                emergency: notice.condition() == Condition::Emergency,
            },
            vec![Addressee::org(platform.owner_org_id)],
        )
    }))
}

async fn set_state<C: ConnectionTrait>(
    conn: &C,
    notification_id: Uuid,
    state: NotificationState,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    notification::Entity::update_many()
        .col_expr(notification::Column::State, Expr::value(state.as_str()))
        .col_expr(notification::Column::UpdatedAt, Expr::value(now))
        .filter(notification::Column::Id.eq(notification_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Recomputes a notification's state from its organisations'. The
/// notification row is locked first, so that two organisations settling at
/// once (one acknowledging, one exhausted) are counted one after the other
/// and the second sees the first.
pub async fn refresh_state<C: ConnectionTrait>(
    conn: &C,
    notification_id: Uuid,
    now: DateTime<Utc>,
) -> Result<NotificationState, DbErr> {
    notification::Entity::find_by_id(notification_id)
        .lock(LockType::Update)
        .one(conn)
        .await?;
    let states: Vec<String> = recipient::Entity::find()
        .select_only()
        .column(recipient::Column::State)
        .filter(recipient::Column::NotificationId.eq(notification_id))
        .into_tuple()
        .all(conn)
        .await?;
    let state = NotificationState::of(states.iter().filter_map(|s| OrgState::parse(s)));
    set_state(conn, notification_id, state, now).await?;
    Ok(state)
}

/// What a contacts event says about the notification `n` for `org`.
/// The trace context `n` was opened in (empty for notifications older
/// than traces kept with them).
pub fn trace_of(n: &notification::Model) -> renkei_telemetry::Carrier {
    n.trace_headers
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}

/// `span`, made a span of `n`'s trace: what happens to a notification
/// (each delivery, each acknowledgement) continues the trace of the flow
/// that opened it, across services.
pub fn in_trace_of(n: &notification::Model, span: tracing::Span) -> tracing::Span {
    renkei_telemetry::adopt(&span, &trace_of(n));
    span
}

pub fn reference(n: &notification::Model, org: Uuid) -> NotificationRef {
    NotificationRef {
        notification_id: n.id,
        subject: n.subject.clone(),
        topic: n.topic.clone(),
        platform_id: n.platform_id,
        incident_id: n.incident_id,
        organization_id: org,
    }
}

/// The notification a recipient row belongs to.
async fn notification_of<C: ConnectionTrait>(
    conn: &C,
    r: &recipient::Model,
) -> Result<notification::Model, DbErr> {
    notification::Entity::find_by_id(r.notification_id)
        .one(conn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("notification {}", r.notification_id)))
}

/// What an acknowledgement found.
#[derive(Debug, Clone, PartialEq)]
pub enum Acknowledgement {
    /// This call acknowledged; escalation stopped.
    Recorded(recipient::Model),
    /// Someone had already; nothing changed.
    Already(recipient::Model),
}

/// [`acknowledge`] in a transaction of its own, committed, run again when
/// it lost a conflict with a concurrent one (the dispatcher recording the
/// same organisation's deliveries): an acknowledgement is never refused for
/// arriving at a busy moment.
pub async fn acknowledge_now(
    db: &renkei_store::Db,
    outbox: &Outbox,
    recipient_id: Uuid,
    by: &renkei_audit::Actor,
    via: &str,
) -> Result<Option<Acknowledgement>, DbErr> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = async {
            let txn = sea_orm::TransactionTrait::begin(&db.write).await?;
            let outcome = acknowledge(&txn, outbox, recipient_id, by, via, Utc::now()).await?;
            outbox.commit(txn).await?;
            Ok::<_, DbErr>(outcome)
        }
        .await;
        match result {
            Err(e) if attempt < 5 && renkei_store::is_transient(&e) => {
                tracing::debug!(error = %e, attempt, "acknowledgement lost a conflict; again");
                tokio::time::sleep(std::time::Duration::from_millis(5 * attempt)).await;
            }
            other => {
                if let Ok(Some(Acknowledgement::Recorded(r))) = &other {
                    renkei_telemetry::metrics::counter!(
                        renkei_telemetry::metrics::NOTIFICATIONS_ACKNOWLEDGED,
                        "organization_id" => r.org_id.to_string(),
                    )
                    .increment(1);
                }
                return other;
            }
        }
    }
}

/// Acknowledges `recipient_id` for its organisation: stops its escalation at
/// once and cancels every message not yet sent. Harmless when repeated.
/// Audited as done by `actor` (whose subject is recorded as the one who
/// acknowledged).
#[tracing::instrument(skip(conn, outbox, actor))]
pub async fn acknowledge<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    recipient_id: Uuid,
    actor: &renkei_audit::Actor,
    via: &str,
    now: DateTime<Utc>,
) -> Result<Option<Acknowledgement>, DbErr> {
    let by = actor.sub.as_str();
    let Some(r) = recipient::Entity::find_by_id(recipient_id)
        .lock(LockType::Update)
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    if r.state == OrgState::Acknowledged.as_str() {
        return Ok(Some(Acknowledgement::Already(r)));
    }
    recipient::Entity::update_many()
        .col_expr(
            recipient::Column::State,
            Expr::value(OrgState::Acknowledged.as_str()),
        )
        .col_expr(recipient::Column::AcknowledgedAt, Expr::value(now))
        .col_expr(recipient::Column::AcknowledgedBy, Expr::value(by))
        .col_expr(recipient::Column::AcknowledgedVia, Expr::value(via))
        .col_expr(
            recipient::Column::NextAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(recipient::Column::Id.eq(r.id))
        .exec(conn)
        .await?;
    // Nothing goes out after an acknowledgement: what waits, and what a
    // dispatcher has claimed but not yet sent (it checks right before
    // sending), is cancelled here.
    cancel_outstanding(
        conn,
        r.id,
        &[DeliveryState::Pending, DeliveryState::Sending],
    )
    .await?;
    let n = notification_of(conn, &r).await?;
    let span = in_trace_of(
        &n,
        tracing::info_span!(
            "notification.acknowledged",
            notification_id = %n.id,
            incident_id = n.incident_id.map(tracing::field::display),
            organization_id = %r.org_id,
            via,
        ),
    );
    outbox
        .stage(
            conn,
            Some(r.org_id),
            &NotificationAcknowledged {
                about: reference(&n, r.org_id),
                acknowledged_by: by.to_owned(),
                via: via.to_owned(),
                acknowledged_at: now,
                step: r.step as u32 + 1,
                latency_ms: (now - n.created_at).num_milliseconds(),
            },
        )
        .instrument(span)
        .await?;
    refresh_state(conn, n.id, now).await?;
    let updated = recipient::Entity::find_by_id(r.id)
        .one(conn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("recipient {}", r.id)))?;
    let done = renkei_audit::Action::new("notification.acknowledged", n.id)
        .of(r.org_id)
        .detail(serde_json::json!({"via": via, "step": r.step + 1}));
    renkei_audit::record(conn, actor, done).await?;
    Ok(Some(Acknowledgement::Recorded(updated)))
}

/// Moves every organisation whose step's wait has run out (or whose step's
/// every delivery failed) to its next step, or ends its escalation. Replicas
/// claim with `SKIP LOCKED`, so each step is entered once. Returns how many
/// moved.
#[tracing::instrument(skip_all)]
pub async fn advance_due<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<usize, DbErr> {
    let due = recipient::Entity::find()
        .filter(recipient::Column::NextAt.lte(now))
        .filter(
            recipient::Column::State
                .is_in([OrgState::Notifying.as_str(), OrgState::Delivered.as_str()]),
        )
        .order_by_asc(recipient::Column::NextAt)
        .limit(limit)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .all(conn)
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let orgs: Vec<Uuid> = due.iter().map(|r| r.org_id).collect();
    let contacts = store::contacts_of(conn, &orgs).await?;
    let failed = failed_steps(conn, &due).await?;
    let mut notices: HashMap<Uuid, notification::Model> = HashMap::new();
    // Organisations exhausted now, by notification: one notice each to
    // the operator, and one state refresh each.
    let mut silent: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    let mut audited = Vec::new();
    for r in &due {
        let n = match notices.get(&r.notification_id) {
            Some(found) => found.clone(),
            None => {
                let found = notification_of(conn, r).await?;
                notices.insert(r.notification_id, found.clone());
                found
            }
        };
        let about = reference(&n, r.org_id);
        let (policy, systems, condition, tlp) = match readable(r, &n) {
            Ok(read) => read,
            Err(error) => {
                // One unreadable row must not hold up every escalation:
                // it is parked (no timer) and reported.
                tracing::error!(recipient = %r.id, %error, "escalation row cannot be read; parked");
                recipient::Entity::update_many()
                    .col_expr(
                        recipient::Column::NextAt,
                        Expr::value(Option::<DateTime<Utc>>::None),
                    )
                    .filter(recipient::Column::Id.eq(r.id))
                    .exec(conn)
                    .await?;
                continue;
            }
        };
        let at = Position {
            step: r.step as u32,
            round: r.round as u32,
        };
        let reason = if failed.contains(&r.id) {
            "delivery_failed"
        } else {
            "timeout"
        };
        let plan = match policy.after(at) {
            Some(next) => {
                let mut p = plan(
                    &policy,
                    next,
                    admitted(contacts.get(&r.org_id), tlp),
                    &systems,
                    condition,
                    n.ack_required,
                    now,
                );
                p.skipped.insert(0, (next, reason));
                p
            }
            None => Plan::exhausted(at, Vec::new()),
        };
        let events: Vec<_> = plan
            .skipped
            .iter()
            .map(|(at, why)| (Some(r.org_id), escalated_event(about.clone(), *at, why)))
            .collect();
        // The escalation continues the trace of the flow that opened it.
        let span = in_trace_of(
            &n,
            tracing::info_span!(
                "notification.escalated",
                notification_id = %n.id,
                incident_id = n.incident_id.map(tracing::field::display),
                organization_id = %r.org_id,
                step = plan.position.step + 1,
            ),
        );
        outbox.stage_many(conn, &events).instrument(span).await?;
        let rows = plan.deliveries(
            &Target {
                notification_id: r.notification_id,
                recipient_id: r.id,
                org_id: r.org_id,
            },
            now,
        );
        if !rows.is_empty() {
            delivery::Entity::insert_many(rows)
                .exec_without_returning(conn)
                .await?;
        }
        let mut update = recipient::Entity::update_many()
            .col_expr(
                recipient::Column::Step,
                Expr::value(plan.position.step as i32),
            )
            .col_expr(
                recipient::Column::Round,
                Expr::value(plan.position.round as i32),
            )
            .col_expr(recipient::Column::StepStartedAt, Expr::value(now))
            .col_expr(recipient::Column::NextAt, Expr::value(plan.next_at))
            .filter(recipient::Column::Id.eq(r.id));
        if plan.exhausted {
            update = update
                .col_expr(
                    recipient::Column::State,
                    Expr::value(OrgState::Unacknowledged.as_str()),
                )
                .col_expr(recipient::Column::ExhaustedAt, Expr::value(now));
        }
        update.exec(conn).await?;
        let moved = if plan.exhausted {
            "notification.exhausted"
        } else {
            "notification.escalated"
        };
        audited.push(
            renkei_audit::Action::new(moved, r.notification_id)
                .of(r.org_id)
                .detail(serde_json::json!({
                    "step": plan.position.step + 1,
                    "round": plan.position.round,
                    "reason": reason,
                })),
        );
        if plan.exhausted {
            // Retries still waiting would reach nobody who is expected to
            // answer any more; they are closed, not left pending.
            cancel_outstanding(conn, r.id, &[DeliveryState::Pending]).await?;
            outbox
                .stage(
                    conn,
                    Some(r.org_id),
                    &NotificationExhausted {
                        about: about.clone(),
                        delivered: r.delivered_at.is_some(),
                    },
                )
                .await?;
            silent.entry(r.notification_id).or_default().push(r.org_id);
        }
    }
    for (notification_id, orgs) in silent {
        refresh_state(conn, notification_id, now).await?;
        let Some(n) = notices.get(&notification_id) else {
            continue;
        };
        let notice: Notice = from_column("notice", &n.notice)?;
        let unasked = n.drill_id.is_some() || !n.ack_required;
        if let Some(tell) =
            tell_operator(conn, &notice, n.platform_id, unasked, &orgs, &n.topic).await?
        {
            open(conn, outbox, tell, now).await?;
        }
    }
    let by = renkei_audit::Actor::service(crate::SERVICE);
    renkei_audit::record_all(conn, by, audited).await?;
    Ok(due.len())
}

/// A recipient row's policy, systems, condition and marking, read back.
fn readable(
    r: &recipient::Model,
    n: &notification::Model,
) -> Result<(Policy, Vec<Uuid>, Condition, Option<Tlp>), DbErr> {
    let policy: Policy = from_column("escalation policy", &r.policy)?;
    let systems: Vec<Uuid> = from_column("systems concerned", &r.systems)?;
    let condition = Condition::parse(&n.condition)
        .ok_or_else(|| renkei_store::json::corrupt("condition", &n.condition))?;
    let notice: Notice = from_column("notice", &n.notice)?;
    Ok((policy, systems, condition, notice.tlp()))
}

/// Closes an organisation's deliveries that are in `states`.
async fn cancel_outstanding<C: ConnectionTrait>(
    conn: &C,
    recipient_id: Uuid,
    states: &[DeliveryState],
) -> Result<(), DbErr> {
    delivery::Entity::update_many()
        .col_expr(
            delivery::Column::State,
            Expr::value(DeliveryState::Cancelled.as_str()),
        )
        .filter(delivery::Column::RecipientId.eq(recipient_id))
        .filter(delivery::Column::State.is_in(states.iter().map(|s| s.as_str())))
        .exec(conn)
        .await?;
    Ok(())
}

/// Which of `due` had every delivery of their current step fail (one query).
async fn failed_steps<C: ConnectionTrait>(
    conn: &C,
    due: &[recipient::Model],
) -> Result<std::collections::HashSet<Uuid>, DbErr> {
    let current: HashMap<Uuid, (i32, i32)> =
        due.iter().map(|r| (r.id, (r.step, r.round))).collect();
    let mut all_failed: HashMap<Uuid, bool> = HashMap::new();
    for chunk in due.chunks(300) {
        let rows: Vec<(Uuid, i32, i32, String)> = delivery::Entity::find()
            .select_only()
            .column(delivery::Column::RecipientId)
            .column(delivery::Column::Step)
            .column(delivery::Column::Round)
            .column(delivery::Column::State)
            .filter(delivery::Column::RecipientId.is_in(chunk.iter().map(|r| r.id)))
            .into_tuple()
            .all(conn)
            .await?;
        for (recipient, step, round, state) in rows {
            if current.get(&recipient) == Some(&(step, round)) {
                let failed = state == DeliveryState::Failed.as_str();
                *all_failed.entry(recipient).or_insert(true) &= failed;
            }
        }
    }
    Ok(all_failed
        .into_iter()
        .filter_map(|(id, failed)| failed.then_some(id))
        .collect())
}

/// When the next escalation timer runs out, if any runs.
pub async fn next_due<C: ConnectionTrait>(conn: &C) -> Result<Option<DateTime<Utc>>, DbErr> {
    Ok(recipient::Entity::find()
        .filter(recipient::Column::NextAt.is_not_null())
        .filter(
            recipient::Column::State
                .is_in([OrgState::Notifying.as_str(), OrgState::Delivered.as_str()]),
        )
        .order_by_asc(recipient::Column::NextAt)
        .one(conn)
        .await?
        .and_then(|r| r.next_at))
}
