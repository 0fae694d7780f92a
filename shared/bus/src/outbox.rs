//! The transactional outbox: an event is a row written in the same database
//! transaction as the change it describes, and a relay publishes it to
//! JetStream afterwards. A crash between the two only delays the event; a
//! publish repeated after a crash is dropped by JetStream's de-duplication on
//! `Nats-Msg-Id` (the event id) and by idempotent consumers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::message::PublishMessage;
use chrono::Utc;
use renkei_store::Db;
use sea_orm::sea_query::{Expr, ExprTrait as _, LockBehavior, LockType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::envelope::{Envelope, Event};
use crate::headers::{self, MSG_ID};

/// The `outbox` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub subject: String,
        /// The whole envelope as JSON: exactly the bytes that are published.
        #[sea_orm(column_type = "Text")]
        pub envelope: String,
        /// Trace context of the request that caused the event, so the relay's
        /// publish continues that trace.
        #[sea_orm(column_type = "Text")]
        pub trace_headers: String,
        pub created_at: DateTimeUtc,
        pub published_at: Option<DateTimeUtc>,
        /// Failed publish rounds, for the backlog dashboards.
        pub attempts: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Stages events and wakes the relay. Cheap to clone; one per service.
#[derive(Clone, Debug)]
pub struct Outbox {
    source: &'static str,
    wake: Arc<Notify>,
}

impl Outbox {
    pub fn new(source: &'static str) -> Outbox {
        Outbox {
            source,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Writes `event` into `txn`. It is published once `txn` commits (call
    /// [`Outbox::commit`] or [`Outbox::wake`] after committing).
    #[tracing::instrument(skip_all, fields(subject = E::SUBJECT))]
    pub async fn stage<E: Event, C: ConnectionTrait>(
        &self,
        txn: &C,
        organization_id: Option<Uuid>,
        event: &E,
    ) -> Result<Envelope, DbErr> {
        let (envelope, row) = self.row(organization_id, event)?;
        entity::Entity::insert(row)
            .exec_without_returning(txn)
            .await?;
        fail::fail_point!(crate::faults::STAGED, |arg| Err(
            crate::faults::staged_failure(arg)
        ));
        Ok(envelope)
    }

    /// Writes `event` into `txn`, to be published on `subject` instead of
    /// its type's own (one subject per incident, say). `subject` must be
    /// captured by the same stream as the type's.
    #[tracing::instrument(skip_all, fields(subject = %subject))]
    pub async fn stage_on<E: Event, C: ConnectionTrait>(
        &self,
        txn: &C,
        organization_id: Option<Uuid>,
        subject: String,
        event: &E,
    ) -> Result<Envelope, DbErr> {
        let same_stream = crate::subjects::stream_for(&subject).map(|s| s.name)
            == crate::subjects::stream_for(E::SUBJECT).map(|s| s.name);
        if !same_stream {
            return Err(DbErr::Custom(format!(
                "{subject} is not captured by the stream of {}",
                E::SUBJECT
            )));
        }
        let (mut envelope, mut row) = self.row(organization_id, event)?;
        envelope.subject = subject;
        row.subject = Set(envelope.subject.clone());
        row.envelope =
            Set(serde_json::to_string(&envelope).map_err(|e| DbErr::Custom(e.to_string()))?);
        entity::Entity::insert(row)
            .exec_without_returning(txn)
            .await?;
        fail::fail_point!(crate::faults::STAGED, |arg| Err(
            crate::faults::staged_failure(arg)
        ));
        Ok(envelope)
    }

    /// Writes many events into `txn` in few statements (one event per
    /// organisation when a rules version comes into force, say), in order.
    #[tracing::instrument(skip_all, fields(subject = E::SUBJECT, count = events.len()))]
    pub async fn stage_many<E: Event, C: ConnectionTrait>(
        &self,
        txn: &C,
        events: &[(Option<Uuid>, E)],
    ) -> Result<usize, DbErr> {
        // Bound the statement size (bind parameters are limited per statement).
        for chunk in events.chunks(500) {
            let rows = chunk
                .iter()
                .map(|(org, event)| self.row(*org, event).map(|(_, row)| row))
                .collect::<Result<Vec<_>, _>>()?;
            entity::Entity::insert_many(rows)
                .exec_without_returning(txn)
                .await?;
        }
        fail::fail_point!(crate::faults::STAGED, |arg| Err(
            crate::faults::staged_failure(arg)
        ));
        Ok(events.len())
    }

    fn row<E: Event>(
        &self,
        organization_id: Option<Uuid>,
        event: &E,
    ) -> Result<(Envelope, entity::ActiveModel), DbErr> {
        let envelope = Envelope::new(self.source, organization_id, event)
            .map_err(|e| DbErr::Custom(e.to_string()))?;
        let carrier = renkei_telemetry::inject(&tracing::Span::current());
        let row = entity::ActiveModel {
            id: Set(envelope.id),
            subject: Set(envelope.subject.clone()),
            envelope: Set(
                serde_json::to_string(&envelope).map_err(|e| DbErr::Custom(e.to_string()))?
            ),
            trace_headers: Set(
                serde_json::to_string(&carrier).map_err(|e| DbErr::Custom(e.to_string()))?
            ),
            created_at: Set(envelope.occurred_at),
            published_at: Set(None),
            attempts: Set(0),
        };
        Ok((envelope, row))
    }

    /// Commits `txn` and wakes the relay at once (no polling on the path).
    pub async fn commit(&self, txn: DatabaseTransaction) -> Result<(), DbErr> {
        txn.commit().await?;
        self.wake();
        Ok(())
    }

    /// Tells the relay there is something to publish.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The relay that publishes what this outbox stages.
    pub fn relay(
        &self,
        db: Db,
        client: async_nats::Client,
        settings: &renkei_settings::OutboxSettings,
    ) -> Relay {
        Relay {
            source: self.source,
            db,
            js: async_nats::jetstream::new(client.clone()),
            client,
            wake: self.wake.clone(),
            sweep: Duration::from_millis(settings.sweep_interval_ms),
            batch: settings.batch_size,
            unmarked: std::sync::Mutex::new(Unmarked::default()),
            replicas: 1,
            streams_seen: std::sync::Mutex::default(),
            next_stream_check: std::sync::Mutex::new(std::time::Instant::now()),
        }
    }
}

/// On SQLite, events published but not yet marked so in the table: marks are
/// written together, at most [`MARK_DELAY`] later, so that a busy service does
/// not spend a second write through its single writer on every event. A crash
/// in between republishes them with the same `Nats-Msg-Id`, which JetStream
/// drops (its duplicate window is far longer than the delay).
#[derive(Default)]
struct Unmarked {
    ids: Vec<Uuid>,
    since: Option<std::time::Instant>,
}

/// How long a published event may wait for its mark (SQLite).
const MARK_DELAY: Duration = Duration::from_millis(100);

/// Publishes staged events in order. Several replicas may run one each on
/// PostgreSQL: rows are claimed with `FOR UPDATE SKIP LOCKED`.
pub struct Relay {
    /// The service whose events these are (metrics).
    source: &'static str,
    db: Db,
    js: async_nats::jetstream::Context,
    client: async_nats::Client,
    wake: Arc<Notify>,
    sweep: Duration,
    batch: u64,
    unmarked: std::sync::Mutex<Unmarked>,
    /// Its own streams' replicas, to declare them again ([`Relay::reconcile`]).
    replicas: usize,
    /// When each own stream was created, as last seen; a stream created
    /// since (its store lost, say) gets every retained event again.
    streams_seen: std::sync::Mutex<std::collections::HashMap<&'static str, i128>>,
    next_stream_check: std::sync::Mutex<std::time::Instant>,
}

/// Published rows are kept this long for inspection, then deleted.
const RETENTION: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// How often a relay checks that its own streams still hold what it
/// published (and after every failed publish).
const STREAM_CHECK: Duration = Duration::from_secs(3);
/// Clock difference tolerated between the services and the NATS server
/// when telling events published before a stream's creation.
const CLOCK_SLACK: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

impl Relay {
    /// Its own streams are declared with `replicas` replicas.
    pub fn with_stream_replicas(mut self, replicas: usize) -> Relay {
        self.replicas = replicas;
        self
    }

    /// Runs until `cancel`, publishing after every wake-up and every sweep.
    pub async fn run(self, cancel: CancellationToken) {
        let mut backoff = Duration::from_millis(50);
        let mut last_cleanup = std::time::Instant::now();
        loop {
            if let Err(error) = self.reconcile_when_due().await {
                tracing::warn!(error = %format!("{error:#}"), "own streams not checked; will retry");
            }
            match self.drain().await {
                Ok(_) => backoff = Duration::from_millis(50),
                Err(error) => {
                    // A stream that is gone is declared again at the next check.
                    *self
                        .next_stream_check
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = std::time::Instant::now();
                    tracing::warn!(error = %format!("{error:#}"), retry_in_ms = backoff.as_millis() as u64, "outbox relay could not publish; will retry");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            }
            if last_cleanup.elapsed() > Duration::from_secs(600) {
                last_cleanup = std::time::Instant::now();
                if let Err(error) = self.delete_published_before(Utc::now() - RETENTION).await {
                    tracing::warn!(%error, "outbox clean-up failed");
                }
            }
            let idle = match self.mark_due_in() {
                Some(due) => due.min(self.sweep),
                None => self.sweep,
            };
            tokio::select! {
                _ = cancel.cancelled() => {
                    if let Err(error) = self.flush_marks().await {
                        tracing::warn!(%error, "outbox marks not written at shutdown; the events will be republished and de-duplicated");
                    }
                    return;
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(idle) => {}
            }
            if self.mark_due_in() == Some(Duration::ZERO)
                && let Err(error) = self.flush_marks().await
            {
                tracing::warn!(%error, "outbox marks not written yet");
            }
        }
    }

    /// Runs [`Relay::reconcile`] when its time has come.
    async fn reconcile_when_due(&self) -> anyhow::Result<()> {
        {
            let mut next = self
                .next_stream_check
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if std::time::Instant::now() < *next {
                return Ok(());
            }
            *next = std::time::Instant::now() + STREAM_CHECK;
        }
        if !crate::nats::is_connected(&self.client) {
            return Ok(());
        }
        self.reconcile().await.map(drop)
    }

    /// Makes sure the service's own streams exist (declaring any that is
    /// missing: a JetStream store lost or wiped) and, for each stream
    /// created since it was last seen — or, at the first check, created
    /// after events were published into it — publishes again every
    /// retained event of it that was published before the stream's
    /// creation: those went with the old store. Consumers drop what they
    /// had already handled (by event id). Returns how many events were put
    /// back to publish.
    pub async fn reconcile(&self) -> anyhow::Result<u64> {
        let mut again = 0;
        for spec in crate::subjects::STREAMS
            .iter()
            .filter(|s| crate::nats::owns(self.source, s))
        {
            let stream = self
                .js
                .create_stream(crate::nats::stream_config(spec, self.replicas))
                .await
                .map_err(|e| anyhow::anyhow!(e))
                .with_context(|| format!("stream {} could not be declared", spec.name))?;
            let created = stream.cached_info().created;
            let stamp = created.unix_timestamp_nanos();
            let before = self
                .streams_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(spec.name, stamp);
            if before == Some(stamp) {
                continue;
            }
            // Seen re-created while running: what went out shortly before,
            // by a clock that may run a little behind the server's, too
            // (what reaches the new stream twice is dropped by its
            // duplicate window). At a service's start: strictly before.
            let slack = if before.is_some() {
                CLOCK_SLACK
            } else {
                chrono::TimeDelta::zero()
            };
            let Some(created) = chrono::DateTime::<Utc>::from_timestamp_nanos(
                i64::try_from(stamp).unwrap_or(i64::MAX),
            )
            .checked_add_signed(slack) else {
                continue;
            };
            let mut lost = sea_orm::Condition::any();
            for subject in spec.subjects {
                let prefix = subject.trim_end_matches('>');
                lost = lost.add(entity::Column::Subject.starts_with(prefix));
            }
            let put_back = entity::Entity::update_many()
                .col_expr(
                    entity::Column::PublishedAt,
                    Expr::value(Option::<chrono::DateTime<Utc>>::None),
                )
                .filter(entity::Column::PublishedAt.lt(created))
                .filter(lost)
                .exec(&self.db.write)
                .await?
                .rows_affected;
            if put_back > 0 {
                // Marks still waiting were for the old store too.
                *self.unmarked.lock().unwrap_or_else(|e| e.into_inner()) = Unmarked::default();
                tracing::warn!(
                    stream = spec.name,
                    events = put_back,
                    "stream created after events were published into it (store lost?); publishing them again"
                );
                self.wake();
            }
            again += put_back;
        }
        Ok(again)
    }

    fn wake(&self) {
        self.wake.notify_one();
    }

    /// How long until the waiting marks must be written (`None`: none wait).
    fn mark_due_in(&self) -> Option<Duration> {
        let unmarked = self.unmarked.lock().unwrap_or_else(|e| e.into_inner());
        unmarked
            .since
            .map(|since| MARK_DELAY.saturating_sub(since.elapsed()))
    }

    /// Writes every waiting mark in one statement.
    async fn flush_marks(&self) -> Result<(), DbErr> {
        let ids = {
            let mut unmarked = self.unmarked.lock().unwrap_or_else(|e| e.into_inner());
            unmarked.since = None;
            std::mem::take(&mut unmarked.ids)
        };
        if ids.is_empty() {
            return Ok(());
        }
        let result = entity::Entity::update_many()
            .col_expr(entity::Column::PublishedAt, Expr::value(Utc::now()))
            .filter(entity::Column::Id.is_in(ids.iter().copied()))
            .exec(&self.db.write)
            .await;
        if result.is_err() {
            // Keep them for the next try; until then they are not claimed again.
            let mut unmarked = self.unmarked.lock().unwrap_or_else(|e| e.into_inner());
            unmarked.ids.extend(ids);
            unmarked.since.get_or_insert_with(std::time::Instant::now);
        }
        result.map(|_| ())
    }

    /// Publishes rounds until nothing is left; returns how many were published.
    pub async fn drain(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let n = self.round().await?;
            total += n;
            if n < self.batch as usize {
                return Ok(total);
            }
        }
    }

    /// One batch: claim, publish, await every ack, mark published.
    async fn round(&self) -> anyhow::Result<usize> {
        if !crate::nats::is_connected(&self.client) {
            anyhow::bail!("NATS is not connected");
        }
        if self.db.is_postgres() {
            let txn = self.db.write.begin().await?;
            let rows = entity::Entity::find()
                .filter(entity::Column::PublishedAt.is_null())
                .order_by_asc(entity::Column::Id)
                .limit(self.batch)
                .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
                .all(&txn)
                .await?;
            let outcome = self.publish(&rows).await;
            self.record(&txn, &rows, &outcome).await?;
            txn.commit().await?;
            settle(outcome, rows.len())
        } else {
            // SQLite has a single writer: never hold it while waiting on NATS,
            // and write the marks of several rounds together.
            let waiting: Vec<Uuid> = self
                .unmarked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .ids
                .clone();
            let rows = entity::Entity::find()
                .filter(entity::Column::PublishedAt.is_null())
                .filter(entity::Column::Id.is_not_in(waiting))
                .order_by_asc(entity::Column::Id)
                .limit(self.batch)
                .all(&self.db.read)
                .await?;
            let outcome = self.publish(&rows).await;
            let done = match &outcome {
                Ok(n) => *n,
                Err((n, _)) => *n,
            };
            let full = {
                let mut unmarked = self.unmarked.lock().unwrap_or_else(|e| e.into_inner());
                unmarked.ids.extend(rows[..done].iter().map(|r| r.id));
                if done > 0 {
                    unmarked.since.get_or_insert_with(std::time::Instant::now);
                }
                unmarked.ids.len() as u64 >= self.batch
            };
            if full {
                self.flush_marks().await?;
            }
            if done < rows.len() {
                self.record(&self.db.write, &rows[done..], &Ok(0)).await?;
            }
            settle(outcome, rows.len())
        }
    }

    /// Sends every row, then awaits the acks; `Ok(n)` when all `n` were
    /// stored by JetStream, else the first failure and how many came before.
    async fn publish(&self, rows: &[entity::Model]) -> Result<usize, (usize, anyhow::Error)> {
        if !rows.is_empty() {
            fail::fail_point!(crate::faults::BEFORE_PUBLISH, |_| crate::faults::die(
                crate::faults::BEFORE_PUBLISH
            ));
        }
        let mut pending = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let carrier: renkei_telemetry::Carrier =
                serde_json::from_str(&row.trace_headers).unwrap_or_default();
            let span =
                tracing::info_span!("outbox.publish", subject = %row.subject, event_id = %row.id);
            renkei_telemetry::adopt(&span, &carrier);
            let mut headers = headers::to_headers(&renkei_telemetry::inject(&span));
            headers.insert(MSG_ID, row.id.to_string().as_str());
            let message = PublishMessage::build()
                .payload(row.envelope.clone().into_bytes().into())
                .headers(headers);
            match self
                .js
                .send_publish(row.subject.clone(), message)
                .instrument(span)
                .await
            {
                Ok(ack) => pending.push(ack),
                Err(e) => return Err((i, e.into())),
            }
        }
        let lag = renkei_telemetry::metrics::histogram!(
            renkei_telemetry::metrics::OUTBOX_RELAY_LAG,
            "service" => self.source
        );
        for (i, ack) in pending.into_iter().enumerate() {
            if let Err(e) = ack.await {
                return Err((i, e.into()));
            }
            lag.record(renkei_telemetry::metrics::seconds(
                Utc::now() - rows[i].created_at,
            ));
        }
        Ok(rows.len())
    }

    /// Marks what was acknowledged as published and counts an attempt on the rest.
    async fn record<C: ConnectionTrait>(
        &self,
        conn: &C,
        rows: &[entity::Model],
        outcome: &Result<usize, (usize, anyhow::Error)>,
    ) -> anyhow::Result<()> {
        let done = match outcome {
            Ok(n) => *n,
            Err((n, _)) => *n,
        };
        let (published, failed) = rows.split_at(done);
        if !published.is_empty() {
            entity::Entity::update_many()
                .col_expr(entity::Column::PublishedAt, Expr::value(Utc::now()))
                .filter(entity::Column::Id.is_in(published.iter().map(|r| r.id)))
                .exec(conn)
                .await?;
        }
        if !failed.is_empty() {
            entity::Entity::update_many()
                .col_expr(
                    entity::Column::Attempts,
                    Expr::col(entity::Column::Attempts).add(1),
                )
                .filter(entity::Column::Id.is_in(failed.iter().map(|r| r.id)))
                .exec(conn)
                .await?;
        }
        Ok(())
    }

    async fn delete_published_before(&self, cutoff: chrono::DateTime<Utc>) -> Result<u64, DbErr> {
        let res = entity::Entity::delete_many()
            .filter(entity::Column::PublishedAt.lt(cutoff))
            .exec(&self.db.write)
            .await?;
        Ok(res.rows_affected)
    }
}

fn settle(outcome: Result<usize, (usize, anyhow::Error)>, of: usize) -> anyhow::Result<usize> {
    outcome.map_err(|(done, e)| e.context(format!("publish failed after {done} of {of} events")))
}

/// How many staged events wait for the relay (readiness and metrics).
pub async fn backlog<C: ConnectionTrait>(conn: &C) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    entity::Entity::find()
        .filter(entity::Column::PublishedAt.is_null())
        .count(conn)
        .await
}
