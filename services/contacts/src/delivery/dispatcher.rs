//! The dispatcher: claims deliveries that are due, sends them through their
//! channels, many at once, and records every attempt.
//!
//! A claim marks deliveries `sending` with a lease, in its own transaction
//! (`SKIP LOCKED` on PostgreSQL, so replicas split the work). A sender that
//! dies leaves its claims to run out; they are sent again, with the same
//! delivery id for receivers that de-duplicate. Deliveries of organisations
//! that have acknowledged are never claimed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike as _, Utc};
use futures::StreamExt as _;
use renkei_bus::Outbox;
use renkei_bus::contracts::contacts::NotificationDelivered;
use renkei_bus::worker::Idle;
use renkei_settings::DeliverySettings;
use renkei_store::Db;
use renkei_store::json::from_column;
use sea_orm::sea_query::{Expr, ExprTrait as _, LockBehavior, LockType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition as Where, ConnectionTrait, DbErr, EntityTrait,
    PaginatorTrait as _, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::channels::{Channels, Outgoing, SendError};
use crate::domain::message::message_text;
use crate::domain::notification::backoff;
use renkei_telemetry::metrics;

use crate::domain::{Channel, DeliveryState, Detail, Language, Notice, OrgState};
use crate::links::AckLinks;
use crate::store::{self, attempt, delivery, notification, recipient};

/// Deliveries claimed per round, in waves of `concurrency` sends.
const CLAIM_WAVES: u64 = 8;
/// Outcomes recorded per transaction.
const RECORD: usize = 250;
/// Something due but not claimable (a replica holds it) is looked at again
/// after `min`; nothing is left longer than `sweep` (a safety net: the
/// dispatcher is woken whenever deliveries are created).
const IDLE: Idle = Idle {
    min: Duration::from_millis(20),
    sweep: Duration::from_secs(30),
};
/// Tries of recording a batch of outcomes before the round gives up (its
/// claims then run out and the deliveries are sent again).
const RECORD_TRIES: u32 = 5;

#[derive(Clone)]
pub struct Dispatcher {
    pub db: Db,
    pub outbox: Outbox,
    pub channels: Channels,
    pub links: AckLinks,
    pub settings: DeliverySettings,
    /// Woken when deliveries are created.
    pub wake: Arc<Notify>,
    /// The escalation timer, woken when a step's every delivery failed.
    pub timer: Arc<Notify>,
}

/// One attempt's outcome.
struct Outcome {
    delivery: delivery::Model,
    result: Result<String, SendError>,
    at: DateTime<Utc>,
    took: Duration,
}

impl Dispatcher {
    pub async fn run(self, cancel: CancellationToken) {
        loop {
            let next = match self.round().await {
                Ok(Round::Full) => {
                    // More may be waiting: straight on.
                    if cancel.is_cancelled() {
                        return;
                    }
                    continue;
                }
                Ok(Round::Idle(next)) => next,
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "deliveries not sent yet");
                    Some(Utc::now() + chrono::Duration::seconds(1))
                }
            };
            if !IDLE.wait(next, &self.wake, &cancel).await {
                return;
            }
        }
    }

    /// Claims what is due, sends it and records the outcomes. Sending and
    /// recording overlap: outcomes go to the recorder as they come, and new
    /// sends start while a batch is being written.
    #[tracing::instrument(skip_all, fields(claimed = tracing::field::Empty))]
    pub async fn round(&self) -> anyhow::Result<Round> {
        let claim = CLAIM_WAVES * self.settings.concurrency as u64;
        let (claimed, lease) = self.claim(Utc::now(), claim).await?;
        tracing::Span::current().record("claimed", claimed.len());
        if claimed.is_empty() {
            return Ok(Round::Idle(self.next_due().await?));
        }
        let full = claimed.len() as u64 == claim;
        let prepared = self.prepare(claimed).await?;
        let gate = Gate::new(prepared.iter().map(|(d, _)| d.id).collect(), lease);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Outcome>(RECORD * 2);
        let send = async move {
            futures::stream::iter(prepared)
                .map(|(delivery, message)| self.attempt(delivery, message, &gate))
                .buffer_unordered(self.settings.concurrency)
                .for_each(|outcome| {
                    let tx = tx.clone();
                    async move {
                        if let Some(o) = outcome {
                            let _ = tx.send(o).await;
                        }
                    }
                })
                .await;
        };
        let record = async {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < RECORD {
                    match rx.try_recv() {
                        Ok(o) => batch.push(o),
                        Err(_) => break,
                    }
                }
                self.record_with_retries(batch, lease).await?;
            }
            anyhow::Ok(())
        };
        let ((), recorded) = tokio::join!(send, record);
        recorded?;
        Ok(if full {
            Round::Full
        } else {
            // Retries scheduled by this round fall due soon.
            Round::Idle(self.next_due().await?)
        })
    }

    async fn record_with_retries(
        &self,
        batch: Vec<Outcome>,
        lease: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let mut tries = 0;
        loop {
            match self.record(&batch, lease).await {
                Ok(()) => return Ok(()),
                Err(error) if tries + 1 < RECORD_TRIES => {
                    tries += 1;
                    tracing::warn!(%error, tries, "outcomes not recorded yet; trying again");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(tries))).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Claims up to `limit` due deliveries (new, retries, and claims whose
    /// sender died) until the returned lease runs out; the lease also tells
    /// this claim's outcomes from a later claim's.
    async fn claim(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<(Vec<delivery::Model>, DateTime<Utc>), DbErr> {
        // Long enough for every wave of the round to run into its timeout
        // (an SMTP exchange gets the timeout per command: margin).
        let waves = limit.div_ceil(self.settings.concurrency.max(1) as u64);
        let per_wave = self.settings.timeout_ms.saturating_mul(2);
        let lease =
            now + chrono::Duration::milliseconds(
                i64::try_from(waves.saturating_mul(per_wave)).unwrap_or(i64::MAX / 4),
            ) + chrono::Duration::seconds(30);
        // Stored and compared exactly: whole milliseconds on every database.
        let lease = lease
            .with_nanosecond(lease.timestamp_subsec_millis() * 1_000_000)
            .unwrap_or(lease);
        let txn = self.db.write.begin().await?;
        let due = delivery::Entity::find()
            .filter(
                Where::any()
                    .add(
                        Where::all()
                            .add(delivery::Column::State.eq(DeliveryState::Pending.as_str()))
                            .add(delivery::Column::NextAttemptAt.lte(now)),
                    )
                    .add(
                        Where::all()
                            .add(delivery::Column::State.eq(DeliveryState::Sending.as_str()))
                            .add(delivery::Column::LeaseUntil.lt(now)),
                    ),
            )
            .order_by_asc(delivery::Column::NextAttemptAt)
            .limit(limit)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .all(&txn)
            .await?;
        for chunk in due.chunks(500) {
            delivery::Entity::update_many()
                .col_expr(
                    delivery::Column::State,
                    Expr::value(DeliveryState::Sending.as_str()),
                )
                .col_expr(delivery::Column::LeaseUntil, Expr::value(lease))
                .filter(delivery::Column::Id.is_in(chunk.iter().map(|d| d.id)))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok((due, lease))
    }

    /// The message of each claimed delivery, or why there is none.
    async fn prepare(
        &self,
        claimed: Vec<delivery::Model>,
    ) -> Result<Vec<(delivery::Model, Result<(Channel, Outgoing), SendError>)>, DbErr> {
        let conn = &self.db.read;
        let mut notifications = HashMap::new();
        let mut ids: Vec<Uuid> = claimed.iter().map(|d| d.notification_id).collect();
        ids.sort();
        ids.dedup();
        for chunk in ids.chunks(500) {
            for n in notification::Entity::find()
                .filter(notification::Column::Id.is_in(chunk.iter().copied()))
                .all(conn)
                .await?
            {
                let notice: Notice = from_column("notice", &n.notice)?;
                notifications.insert(n.id, (n, notice));
            }
        }
        // What each organisation's messages add (its own systems at risk).
        let mut recipient_ids: Vec<Uuid> = claimed.iter().map(|d| d.recipient_id).collect();
        recipient_ids.sort();
        recipient_ids.dedup();
        let mut details: HashMap<Uuid, Detail> = HashMap::new();
        for chunk in recipient_ids.chunks(500) {
            let rows: Vec<(Uuid, Option<String>)> = recipient::Entity::find()
                .select_only()
                .column(recipient::Column::Id)
                .column(recipient::Column::Detail)
                .filter(recipient::Column::Id.is_in(chunk.iter().copied()))
                .filter(recipient::Column::Detail.is_not_null())
                .into_tuple()
                .all(conn)
                .await?;
            for (id, detail) in rows {
                if let Some(detail) = detail {
                    details.insert(id, from_column("recipient detail", &detail)?);
                }
            }
        }
        let mut contact_ids: Vec<Uuid> = claimed.iter().map(|d| d.contact_id).collect();
        contact_ids.sort();
        contact_ids.dedup();
        let mut channels: HashMap<Uuid, Vec<Channel>> = HashMap::new();
        for chunk in contact_ids.chunks(500) {
            for c in store::contact::Entity::find()
                .filter(store::contact::Column::Id.is_in(chunk.iter().copied()))
                .all(conn)
                .await?
            {
                channels.insert(c.id, from_column("contact channels", &c.channels)?);
            }
        }
        let now = Utc::now();
        Ok(claimed
            .into_iter()
            .map(|d| {
                let channel = channels.get(&d.contact_id).and_then(|list| {
                    list.iter()
                        .find(|c| c.kind() == d.channel && c.address() == d.address)
                        .cloned()
                });
                let prepared = match (channel, notifications.get(&d.notification_id)) {
                    (Some(channel), Some((n, notice))) => {
                        let language =
                            Language::parse("language", &d.language).unwrap_or(Language::Ja);
                        let ack_url = self.links.url(d.id);
                        Ok((
                            channel,
                            Outgoing {
                                delivery_id: d.id,
                                notification_id: n.id,
                                subject: n.subject.clone(),
                                topic: n.topic.clone(),
                                condition: n.condition.clone(),
                                organization_id: d.org_id,
                                contact_id: d.contact_id,
                                step: d.step as u32 + 1,
                                language,
                                title: notice.title(language),
                                text: message_text(
                                    notice,
                                    details.get(&d.recipient_id),
                                    language,
                                    &ack_url,
                                    n.ack_required,
                                ),
                                ack_url,
                                ack_required: n.ack_required,
                                tlp: notice.tlp().map(|t| t.label()),
                                sent_at: now,
                                incident_id: n.incident_id,
                                platform_id: n.platform_id,
                                trace: crate::escalation::trace_of(n),
                            },
                        ))
                    }
                    (None, _) => Err(SendError::Permanent(
                        "the contact or this channel of it was removed".into(),
                    )),
                    (_, None) => Err(SendError::Permanent("the notification is gone".into())),
                };
                (d, prepared)
            })
            .collect())
    }

    /// One attempt, unless the delivery was cancelled (its organisation
    /// acknowledged) or claimed by someone else since this round claimed it:
    /// checked through the [`Gate`] right before sending, so nothing goes
    /// out more than [`GATE_FRESHNESS`] after an acknowledgement.
    async fn attempt(
        &self,
        delivery: delivery::Model,
        prepared: Result<(Channel, Outgoing), SendError>,
        gate: &Gate,
    ) -> Option<Outcome> {
        match gate.open(&self.db.read, delivery.id).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(delivery_id = %delivery.id, "delivery cancelled or taken over before sending");
                return None;
            }
            Err(error) => {
                // Not sent; the claim runs out and it is tried again.
                tracing::warn!(%error, delivery_id = %delivery.id, "delivery not checked; left for later");
                return None;
            }
        }
        let started = Instant::now();
        let at = Utc::now();
        let result = match prepared {
            Ok((channel, message)) => {
                let span = tracing::info_span!(
                    "deliver",
                    delivery_id = %delivery.id,
                    notification_id = %message.notification_id,
                    incident_id = message.incident_id.map(tracing::field::display),
                    platform_id = message.platform_id.map(tracing::field::display),
                    organization_id = %delivery.org_id,
                    channel = %delivery.channel,
                    attempt = delivery.attempts + 1,
                    outcome = tracing::field::Empty,
                );
                renkei_telemetry::adopt(&span, &message.trace);
                let sent = tracing::Instrument::instrument(
                    self.channels.send(&channel, &message),
                    span.clone(),
                )
                .await;
                span.record("outcome", if sent.is_ok() { "delivered" } else { "failed" });
                sent
            }
            Err(e) => Err(e),
        };
        Some(Outcome {
            delivery,
            result,
            at,
            took: started.elapsed(),
        })
    }

    /// Records a batch of outcomes in one transaction: the attempts, the
    /// deliveries' new states, the organisations reached, and the
    /// escalations a dead step calls for.
    async fn record(&self, outcomes: &[Outcome], lease: DateTime<Utc>) -> Result<(), DbErr> {
        let now = Utc::now();
        let txn = self.db.write.begin().await?;
        let rows: Vec<attempt::ActiveModel> = outcomes
            .iter()
            .map(|o| attempt::ActiveModel {
                id: Set(Uuid::now_v7()),
                delivery_id: Set(o.delivery.id),
                attempted_at: Set(o.at),
                ok: Set(o.result.is_ok()),
                detail: Set(match &o.result {
                    Ok(detail) => detail.clone(),
                    Err(e) => e.to_string(),
                }),
                duration_ms: Set(i64::try_from(o.took.as_millis()).unwrap_or(i64::MAX)),
            })
            .collect();
        attempt::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await?;

        let delivered: Vec<&delivery::Model> = outcomes
            .iter()
            .filter(|o| o.result.is_ok())
            .map(|o| &o.delivery)
            .collect();
        if !delivered.is_empty() {
            self.delivered(&txn, &delivered, lease, now).await?;
        }
        let mut dead_steps = false;
        let mut counted: Vec<(&Outcome, &'static str)> = outcomes
            .iter()
            .filter(|o| o.result.is_ok())
            .map(|o| (o, "delivered"))
            .collect();
        for o in outcomes.iter().filter(|o| o.result.is_err()) {
            let attempts = o.delivery.attempts + 1;
            let error = o.result.as_ref().err().map(ToString::to_string);
            let permanent = matches!(o.result, Err(SendError::Permanent(_)));
            let gave_up = permanent || attempts as u32 >= self.settings.max_attempts;
            counted.push((o, if gave_up { "failed" } else { "retry" }));
            let mut update = delivery::Entity::update_many()
                .col_expr(delivery::Column::Attempts, Expr::value(attempts))
                .col_expr(delivery::Column::LastError, Expr::value(error))
                .col_expr(
                    delivery::Column::LeaseUntil,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .filter(delivery::Column::Id.eq(o.delivery.id))
                // Only this claim's, and not one cancelled meanwhile.
                .filter(delivery::Column::LeaseUntil.eq(lease))
                .filter(delivery::Column::State.eq(DeliveryState::Sending.as_str()));
            if gave_up {
                update = update.col_expr(
                    delivery::Column::State,
                    Expr::value(DeliveryState::Failed.as_str()),
                );
            } else if !still_open(&txn, o.delivery.recipient_id).await? {
                // Acknowledged while this attempt was under way: no retry.
                update = update.col_expr(
                    delivery::Column::State,
                    Expr::value(DeliveryState::Cancelled.as_str()),
                );
            } else {
                let wait = backoff(
                    attempts as u32,
                    Duration::from_millis(self.settings.retry_base_ms),
                    Duration::from_millis(self.settings.retry_max_ms),
                );
                update = update
                    .col_expr(
                        delivery::Column::State,
                        Expr::value(DeliveryState::Pending.as_str()),
                    )
                    .col_expr(
                        delivery::Column::NextAttemptAt,
                        Expr::value(now + chrono::Duration::from_std(wait).unwrap_or_default()),
                    );
            }
            let changed = update.exec(&txn).await?.rows_affected;
            if gave_up && changed > 0 {
                tracing::warn!(delivery_id = %o.delivery.id, channel = %o.delivery.channel, address = %o.delivery.address, error = ?o.result.as_ref().err(), "channel failing; delivery given up");
                dead_steps |= escalate_if_dead(&txn, &o.delivery, now).await?;
            }
        }
        self.outbox.commit(txn).await?;
        for (o, outcome) in counted {
            metrics::counter!(
                metrics::NOTIFICATIONS_DELIVERED,
                "organization_id" => o.delivery.org_id.to_string(),
                "channel" => o.delivery.channel.clone(),
                "outcome" => outcome,
            )
            .increment(1);
        }
        if dead_steps {
            self.timer.notify_one();
        }
        Ok(())
    }

    /// Marks deliveries delivered and their organisations reached; the first
    /// delivery of a step is announced.
    async fn delivered<C: ConnectionTrait>(
        &self,
        conn: &C,
        delivered: &[&delivery::Model],
        lease: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        let ids: Vec<Uuid> = delivered.iter().map(|d| d.id).collect();
        delivery::Entity::update_many()
            .col_expr(
                delivery::Column::State,
                Expr::value(DeliveryState::Delivered.as_str()),
            )
            .col_expr(delivery::Column::DeliveredAt, Expr::value(now))
            .col_expr(
                delivery::Column::Attempts,
                Expr::col(delivery::Column::Attempts).add(1),
            )
            .col_expr(
                delivery::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                delivery::Column::LastError,
                Expr::value(Option::<String>::None),
            )
            .filter(delivery::Column::Id.is_in(ids))
            // Sent, so delivered, even if cancelled while on its way; but
            // not a delivery another claim has taken over.
            .filter(delivery::Column::LeaseUntil.eq(lease))
            .exec(conn)
            .await?;
        let mut recipient_ids: Vec<Uuid> = delivered.iter().map(|d| d.recipient_id).collect();
        recipient_ids.sort();
        recipient_ids.dedup();
        let recipients: HashMap<Uuid, recipient::Model> = recipient::Entity::find()
            .filter(recipient::Column::Id.is_in(recipient_ids.iter().copied()))
            .all(conn)
            .await?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        let notifications: HashMap<Uuid, notification::Model> = notification::Entity::find()
            .filter(
                notification::Column::Id.is_in(
                    recipients
                        .values()
                        .map(|r| r.notification_id)
                        .collect::<Vec<_>>(),
                ),
            )
            .all(conn)
            .await?
            .into_iter()
            .map(|n| (n.id, n))
            .collect();
        let mut events = Vec::new();
        let mut announced = std::collections::HashSet::new();
        for d in delivered {
            let Some(r) = recipients.get(&d.recipient_id) else {
                continue;
            };
            let first_of_step = (d.step, d.round) == (r.step, r.round)
                && r.last_delivered_at.is_none_or(|at| at < r.step_started_at);
            if first_of_step
                && announced.insert(r.id)
                && let Some(n) = notifications.get(&r.notification_id)
            {
                events.push((
                    n,
                    Some(r.org_id),
                    NotificationDelivered {
                        about: crate::escalation::reference(n, r.org_id),
                        delivery_id: d.id,
                        contact_id: d.contact_id,
                        channel: d.channel.clone(),
                        step: d.step as u32 + 1,
                        delivered_at: now,
                    },
                ));
            }
        }
        // Organisations reached of notifications that ask no
        // acknowledgement are done: informed, not escalated further.
        let asks = |r: &Uuid| {
            recipients
                .get(r)
                .and_then(|r| notifications.get(&r.notification_id))
                .is_none_or(|n| n.ack_required)
        };
        let (awaiting, informed): (Vec<Uuid>, Vec<Uuid>) =
            recipient_ids.iter().copied().partition(asks);
        for chunk in recipient_ids.chunks(500) {
            recipient::Entity::update_many()
                .col_expr(recipient::Column::LastDeliveredAt, Expr::value(now))
                .filter(recipient::Column::Id.is_in(chunk.iter().copied()))
                .exec(conn)
                .await?;
            recipient::Entity::update_many()
                .col_expr(recipient::Column::DeliveredAt, Expr::value(now))
                .filter(recipient::Column::Id.is_in(chunk.iter().copied()))
                .filter(recipient::Column::DeliveredAt.is_null())
                .exec(conn)
                .await?;
        }
        for chunk in awaiting.chunks(500) {
            recipient::Entity::update_many()
                .col_expr(
                    recipient::Column::State,
                    Expr::value(OrgState::Delivered.as_str()),
                )
                .filter(recipient::Column::Id.is_in(chunk.iter().copied()))
                .filter(recipient::Column::State.eq(OrgState::Notifying.as_str()))
                .exec(conn)
                .await?;
        }
        let mut settled = Vec::new();
        for chunk in informed.chunks(500) {
            let changed = recipient::Entity::update_many()
                .col_expr(
                    recipient::Column::State,
                    Expr::value(OrgState::Informed.as_str()),
                )
                .col_expr(
                    recipient::Column::NextAt,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .filter(recipient::Column::Id.is_in(chunk.iter().copied()))
                .filter(
                    recipient::Column::State
                        .is_in([OrgState::Notifying.as_str(), OrgState::Delivered.as_str()]),
                )
                .exec(conn)
                .await?
                .rows_affected;
            if changed > 0 {
                settled.extend(
                    chunk
                        .iter()
                        .filter_map(|r| recipients.get(r))
                        .map(|r| r.notification_id),
                );
            }
        }
        settled.sort();
        settled.dedup();
        for notification_id in settled {
            crate::escalation::refresh_state(conn, notification_id, now).await?;
        }
        // Each announcement continues its notification's trace.
        for (n, org, event) in events {
            let span = crate::escalation::in_trace_of(
                n,
                tracing::info_span!(
                    "notification.delivered",
                    notification_id = %n.id,
                    incident_id = n.incident_id.map(tracing::field::display),
                    organization_id = org.map(tracing::field::display),
                    channel = %event.channel,
                ),
            );
            tracing::Instrument::instrument(self.outbox.stage(conn, org, &event), span).await?;
        }
        Ok(())
    }

    /// When the next pending attempt or lapsed claim falls due.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, DbErr> {
        let conn = &self.db.read;
        let pending = delivery::Entity::find()
            .filter(delivery::Column::State.eq(DeliveryState::Pending.as_str()))
            .order_by_asc(delivery::Column::NextAttemptAt)
            .one(conn)
            .await?
            .map(|d| d.next_attempt_at);
        let lapsing = delivery::Entity::find()
            .filter(delivery::Column::State.eq(DeliveryState::Sending.as_str()))
            .order_by_asc(delivery::Column::LeaseUntil)
            .one(conn)
            .await?
            .and_then(|d| d.lease_until);
        Ok(match (pending, lapsing) {
            (Some(a), Some(b)) => Some(Ord::min(a, b)),
            (a, b) => a.or(b),
        })
    }
}

/// How stale the gate's knowledge of cancellations may be when a message
/// goes out.
pub const GATE_FRESHNESS: Duration = Duration::from_millis(10);

/// Which of a round's deliveries may still go out: those still `sending`
/// under this round's lease. Refreshed with one query for the whole round
/// whenever its knowledge is older than [`GATE_FRESHNESS`] (one query per
/// few milliseconds rather than one per message).
struct Gate {
    ids: Vec<Uuid>,
    lease: DateTime<Utc>,
    /// When last refreshed, and the deliveries that may no longer go out.
    known: tokio::sync::Mutex<(Option<Instant>, std::collections::HashSet<Uuid>)>,
}

impl Gate {
    fn new(ids: Vec<Uuid>, lease: DateTime<Utc>) -> Gate {
        Gate {
            ids,
            lease,
            known: tokio::sync::Mutex::new((None, Default::default())),
        }
    }

    async fn open<C: ConnectionTrait>(&self, conn: &C, id: Uuid) -> Result<bool, DbErr> {
        let mut known = self.known.lock().await;
        if known.0.is_none_or(|at| at.elapsed() > GATE_FRESHNESS) {
            let mut closed = std::collections::HashSet::new();
            for chunk in self.ids.chunks(500) {
                let rows: Vec<(Uuid, String, Option<DateTime<Utc>>)> = delivery::Entity::find()
                    .select_only()
                    .column(delivery::Column::Id)
                    .column(delivery::Column::State)
                    .column(delivery::Column::LeaseUntil)
                    .filter(delivery::Column::Id.is_in(chunk.iter().copied()))
                    .into_tuple()
                    .all(conn)
                    .await?;
                for (id, state, lease) in rows {
                    if state != DeliveryState::Sending.as_str() || lease != Some(self.lease) {
                        closed.insert(id);
                    }
                }
            }
            *known = (Some(Instant::now()), closed);
        }
        Ok(!known.1.contains(&id))
    }
}

/// What a round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// As many as one claim takes: more may be waiting.
    Full,
    /// Nothing more now; the next is due then (if known).
    Idle(Option<DateTime<Utc>>),
}

/// Whether messages may still go out to the organisation a delivery is for
/// (not acknowledged, not exhausted).
async fn still_open<C: ConnectionTrait>(conn: &C, recipient_id: Uuid) -> Result<bool, DbErr> {
    Ok(recipient::Entity::find_by_id(recipient_id)
        .one(conn)
        .await?
        .and_then(|r| OrgState::parse(&r.state))
        .is_some_and(OrgState::sending))
}

/// A delivery gave up: when it was the last hope of its organisation's
/// current step, the step's wait is cut short so the timer escalates now.
async fn escalate_if_dead<C: ConnectionTrait>(
    conn: &C,
    d: &delivery::Model,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let Some(r) = recipient::Entity::find_by_id(d.recipient_id)
        .one(conn)
        .await?
    else {
        return Ok(false);
    };
    let open = OrgState::parse(&r.state).is_some_and(OrgState::open);
    if !open || (r.step, r.round) != (d.step, d.round) {
        return Ok(false);
    }
    let alive = delivery::Entity::find()
        .filter(delivery::Column::RecipientId.eq(r.id))
        .filter(delivery::Column::Step.eq(r.step))
        .filter(delivery::Column::Round.eq(r.round))
        .filter(delivery::Column::State.ne(DeliveryState::Failed.as_str()))
        .filter(delivery::Column::Id.ne(d.id))
        .count(conn)
        .await?;
    if alive > 0 {
        return Ok(false);
    }
    // Only if it still stands where it was read: the timer may have moved
    // it on, or someone acknowledged, since.
    let changed = recipient::Entity::update_many()
        .col_expr(recipient::Column::NextAt, Expr::value(now))
        .filter(recipient::Column::Id.eq(r.id))
        .filter(recipient::Column::Step.eq(r.step))
        .filter(recipient::Column::Round.eq(r.round))
        .filter(recipient::Column::State.eq(r.state.clone()))
        .exec(conn)
        .await?
        .rows_affected;
    Ok(changed > 0)
}
