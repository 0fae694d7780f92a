//! Durable, idempotent consumers.
//!
//! Each delivered event is applied inside a database transaction that also
//! records `(consumer, event id)` in `handled_events`; the message is acked
//! only after that transaction commits. A redelivery (after a crash, a lost
//! ack, a replay) finds the id already recorded and changes nothing.
//! Deliveries that have already arrived together share one transaction,
//! each in a savepoint of its own, so a burst costs a few commits and one
//! failing event never takes the others down with it.
//!
//! Writes that lock a row every transaction of the service shares (the
//! audit record's head) are left by handlers for the end of the batch
//! ([`defer`]): taken partway through, such a lock would be held while a
//! later event of the batch waits for a row an HTTP transaction holds, and
//! that transaction waits for the shared row at its end — a deadlock.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use chrono::Utc;
use futures::{FutureExt as _, StreamExt as _};
use renkei_store::Db;
use sea_orm::{
    ActiveValue::Set, DatabaseTransaction, EntityTrait, TransactionTrait, TryInsertResult,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use renkei_telemetry::metrics;

use crate::envelope::Envelope;
use crate::headers;
use crate::outbox::Outbox;
use crate::subjects::StreamSpec;

/// The `handled_events` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "handled_events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub consumer: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub event_id: Uuid,
        pub handled_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Why an event could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The event can never be applied (unknown payload, a contract broken):
    /// it is logged and terminated, not redelivered forever.
    #[error("event rejected: {0}")]
    Permanent(String),
    /// Try again later (database busy, a dependency down).
    #[error("event not applied yet: {0:#}")]
    Transient(#[from] anyhow::Error),
}

impl From<sea_orm::DbErr> for HandlerError {
    fn from(e: sea_orm::DbErr) -> Self {
        HandlerError::Transient(e.into())
    }
}

/// A write a handler leaves for the end of its batch's transaction, just
/// before the commit ([`defer`]).
#[async_trait::async_trait]
pub trait AtCommit: Send {
    async fn write(self: Box<Self>, txn: &DatabaseTransaction) -> Result<(), sea_orm::DbErr>;
}

/// What applied events left for their batch's commit.
#[derive(Default)]
struct Deferred {
    /// Written just before the commit, in order.
    writes: Vec<Box<dyn AtCommit>>,
    /// Run once the commit succeeded.
    then: Vec<Box<dyn FnOnce() + Send>>,
}

impl Deferred {
    fn extend(&mut self, other: Deferred) {
        self.writes.extend(other.writes);
        self.then.extend(other.then);
    }
}

tokio::task_local! {
    /// What the event being handled has deferred.
    static DEFERRED: RefCell<Deferred>;
}

/// Inside an event handler: leaves `write` for the end of the batch's
/// transaction (kept only if the event is applied, written in the order
/// deferred). Elsewhere nothing is deferred and `write` is given back.
pub fn defer<W: AtCommit + 'static>(write: W) -> Result<(), W> {
    let mut write = Some(write);
    let _outside_a_handler = DEFERRED.try_with(|d| {
        let taken = write.take().map(|w| Box::new(w) as Box<dyn AtCommit>);
        d.borrow_mut().writes.extend(taken);
    });
    write.map_or(Ok(()), Err)
}

/// Inside an event handler: runs `f` once the batch's transaction has
/// committed, if the event is applied: what an event did is counted in the
/// metrics once, never for a batch rolled back and redelivered. Elsewhere
/// `f` runs at once.
pub fn after_commit(f: impl FnOnce() + Send + 'static) {
    let mut f = Some(f);
    let _outside_a_handler = DEFERRED.try_with(|d| {
        let taken = f.take().map(|f| Box::new(f) as Box<dyn FnOnce() + Send>);
        d.borrow_mut().then.extend(taken);
    });
    if let Some(f) = f {
        f();
    }
}

/// Writes what the applied events deferred, in order, commits, then runs
/// what waited for the commit.
async fn commit(txn: DatabaseTransaction, deferred: Deferred) -> Result<(), sea_orm::DbErr> {
    for write in deferred.writes {
        write.write(&txn).await?;
    }
    txn.commit().await?;
    for then in deferred.then {
        then();
    }
    Ok(())
}

/// What a service does with one event.
#[async_trait::async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// Applies `event` using `txn`; everything written there commits together
    /// with the record that the event was handled.
    async fn handle(&self, txn: &DatabaseTransaction, event: &Envelope)
    -> Result<(), HandlerError>;
}

/// The most deliveries applied in one transaction.
const BATCH: usize = 256;

/// Which events a durable consumer receives.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    pub stream: StreamSpec,
    /// Durable name, unique per consuming service and purpose:
    /// `<service>-<what>` (the first part labels its metrics).
    pub durable: String,
    /// Subjects to receive; empty means the whole stream. More than one
    /// needs a JetStream server of 2.10 or newer.
    pub filter_subjects: Vec<String>,
}

/// The outcome of applying one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Handled,
    /// Already handled before: nothing changed.
    Duplicate,
}

/// A durable consumer bound to a database and a handler.
pub struct Consumer<H> {
    db: Db,
    js: jetstream::Context,
    spec: ConsumerSpec,
    handler: Arc<H>,
    outbox: Option<Outbox>,
    /// Woken after each commit: workers that act on what handlers wrote
    /// (a dispatcher of deliveries), so nothing waits for a poll.
    after_commit: Vec<Arc<tokio::sync::Notify>>,
    /// Its fault point between commit and acks ([`crate::faults`]).
    before_ack: String,
}

impl<H: EventHandler> Consumer<H> {
    /// Also wakes `notify` after each commit that handled something.
    pub fn waking(mut self, notify: Arc<tokio::sync::Notify>) -> Self {
        self.after_commit.push(notify);
        self
    }

    fn woken_after_commit(&self) {
        if let Some(outbox) = &self.outbox {
            outbox.wake();
        }
        for notify in &self.after_commit {
            notify.notify_one();
        }
    }

    /// The service consuming: durable names are `<service>-<what>`.
    fn service(&self) -> String {
        let durable = &self.spec.durable;
        durable.split('-').next().unwrap_or(durable).to_owned()
    }

    /// `outbox` is woken after each commit, for handlers that stage events.
    pub fn new(
        db: Db,
        client: async_nats::Client,
        spec: ConsumerSpec,
        handler: Arc<H>,
        outbox: Option<Outbox>,
    ) -> Self {
        Consumer {
            db,
            js: jetstream::new(client),
            before_ack: crate::faults::before_ack(&spec.durable),
            spec,
            handler,
            outbox,
            after_commit: Vec::new(),
        }
    }

    /// Consumes until `cancel`, re-binding after broker restarts.
    pub async fn run(self, cancel: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !cancel.is_cancelled() {
            match self.consume(&cancel).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(durable = %self.spec.durable, error = %format!("{error:#}"), "consumer interrupted; re-binding");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    async fn consume(&self, cancel: &CancellationToken) -> anyhow::Result<()> {
        let stream = self.js.get_stream(self.spec.stream.name).await?;
        // One subject goes in `filter_subject`, which every JetStream
        // server knows; `filter_subjects` needs 2.10 or newer (older ones
        // ignore it and deliver the whole stream).
        let (filter_subject, filter_subjects) = match self.spec.filter_subjects.as_slice() {
            [one] => (one.clone(), Vec::new()),
            many => (String::new(), many.to_vec()),
        };
        let config = pull::Config {
            durable_name: Some(self.spec.durable.clone()),
            filter_subject,
            filter_subjects,
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            // A delivery lost with a broker connection comes again after
            // this; handlers take milliseconds, so keep it short.
            ack_wait: Duration::from_secs(10),
            max_ack_pending: 1_000,
            ..Default::default()
        };
        let consumer = stream
            .get_or_create_consumer(&self.spec.durable, config)
            .await?;
        // Shown from the start (at 0), so an alert on its rate has a series.
        metrics::counter!(metrics::CONSUMER_REDELIVERIES, "service" => self.service(), "consumer" => self.spec.durable.clone()).increment(0);
        let mut messages = consumer
            .stream()
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await?;
        loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                next = messages.next() => next,
            };
            let mut batch = match next {
                None => anyhow::bail!("message stream ended"),
                Some(Err(e)) => anyhow::bail!(e),
                Some(Ok(message)) => vec![message],
            };
            // Whatever else has already arrived goes into the same
            // transaction: a burst (a thousand acceptances at once) costs a
            // few commits, not one each. Nothing waits for more to come.
            let mut interrupted = None;
            while batch.len() < BATCH {
                match messages.next().now_or_never() {
                    Some(Some(Ok(message))) => batch.push(message),
                    Some(Some(Err(e))) => {
                        interrupted = Some(anyhow::anyhow!(e));
                        break;
                    }
                    Some(None) => {
                        interrupted = Some(anyhow::anyhow!("message stream ended"));
                        break;
                    }
                    None => break,
                }
            }
            self.process(batch).await;
            if let Some(e) = interrupted {
                return Err(e);
            }
        }
    }

    /// Applies a batch of deliveries in one transaction, each in a savepoint
    /// of its own (a failing event leaves no trace and does not hold back
    /// the others), then acks after the commit.
    async fn process(&self, batch: Vec<jetstream::Message>) {
        let mut decoded = Vec::with_capacity(batch.len());
        for message in batch {
            match serde_json::from_slice::<Envelope>(&message.payload) {
                Ok(envelope) => decoded.push((message, envelope)),
                Err(error) => {
                    tracing::error!(subject = %message.subject, %error, "undecodable event terminated");
                    let _ = message.ack_with(AckKind::Term).await;
                }
            }
        }
        if decoded.is_empty() {
            return;
        }
        let txn = match self.db.write.begin().await {
            Ok(txn) => txn,
            Err(error) => {
                tracing::warn!(%error, "no transaction for a batch; it will be redelivered");
                for (message, _) in decoded {
                    let _ = message
                        .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                        .await;
                }
                return;
            }
        };
        let mut outcomes = Vec::with_capacity(decoded.len());
        let mut deferred = Deferred::default();
        for (message, envelope) in decoded {
            let span = tracing::info_span!(
                "consume",
                durable = %self.spec.durable,
                subject = %envelope.subject,
                event_type = %envelope.event_type,
                event_id = %envelope.id,
                organization_id = envelope.organization_id.map(tracing::field::display),
                outcome = tracing::field::Empty,
            );
            renkei_telemetry::adopt(&span, &headers::from_headers(message.headers.as_ref()));
            let result = self
                .apply_in(&txn, &envelope, &mut deferred)
                .instrument(span.clone())
                .await;
            outcomes.push((message, span, result));
        }
        let committed = commit(txn, deferred).await;
        fail::fail_point!(&self.before_ack, |_| crate::faults::die(&self.before_ack));
        if let Err(error) = &committed {
            tracing::warn!(%error, "batch not committed; it will be redelivered");
        } else {
            self.woken_after_commit();
        }
        for (message, span, result) in outcomes {
            if message.info().is_ok_and(|info| info.delivered > 1) {
                metrics::counter!(metrics::CONSUMER_REDELIVERIES, "service" => self.service(), "consumer" => self.spec.durable.clone()).increment(1);
            }
            let outcome = match (&committed, &result) {
                (Ok(()), Ok(Applied::Handled)) => "handled",
                (Ok(()), Ok(Applied::Duplicate)) => "duplicate",
                (Ok(()), Err(HandlerError::Permanent(_))) => "rejected",
                _ => "retry",
            };
            metrics::counter!(metrics::EVENTS_HANDLED, "service" => self.service(), "consumer" => self.spec.durable.clone(), "outcome" => outcome).increment(1);
            let ack = match (&committed, &result) {
                (Ok(()), Ok(applied)) => {
                    span.record("outcome", tracing::field::debug(applied));
                    message.ack().await
                }
                (Ok(()), Err(HandlerError::Permanent(reason))) => {
                    span.record("outcome", "rejected");
                    tracing::error!(parent: &span, %reason, "event rejected permanently");
                    message.ack_with(AckKind::Term).await
                }
                (Err(_), _) | (_, Err(HandlerError::Transient(_))) => {
                    span.record("outcome", "retry");
                    if let Err(error) = &result {
                        tracing::warn!(parent: &span, %error, "event will be redelivered");
                    }
                    message
                        .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                        .await
                }
            };
            if let Err(error) = ack {
                // The effect is committed; a redelivery will be seen as a duplicate.
                tracing::warn!(%error, "ack failed");
            }
        }
    }

    /// Applies one event inside `txn`, in a savepoint: exactly once, whatever
    /// the number of deliveries; on failure nothing of it remains (what it
    /// deferred is added to `deferred` only when it is applied).
    async fn apply_in(
        &self,
        txn: &DatabaseTransaction,
        envelope: &Envelope,
        deferred: &mut Deferred,
    ) -> Result<Applied, HandlerError> {
        let savepoint = txn.begin().await?;
        let marker = entity::ActiveModel {
            consumer: Set(self.spec.durable.clone()),
            event_id: Set(envelope.id),
            handled_at: Set(Utc::now()),
        };
        let inserted = entity::Entity::insert(marker)
            .on_conflict_do_nothing_on([entity::Column::Consumer, entity::Column::EventId])
            .exec_without_returning(&savepoint)
            .await?;
        if !matches!(inserted, TryInsertResult::Inserted(n) if n > 0) {
            savepoint.rollback().await?;
            return Ok(Applied::Duplicate);
        }
        let (handled, its_deferred) = DEFERRED
            .scope(RefCell::default(), async {
                let handled = self.handler.handle(&savepoint, envelope).await;
                (handled, DEFERRED.with(RefCell::take))
            })
            .await;
        match handled {
            Ok(()) => {
                savepoint.commit().await?;
                deferred.extend(its_deferred);
                Ok(Applied::Handled)
            }
            Err(error) => {
                savepoint.rollback().await.ok();
                Err(error)
            }
        }
    }

    /// Applies one event exactly once, whatever the number of deliveries.
    pub async fn apply(&self, envelope: &Envelope) -> Result<Applied, HandlerError> {
        let txn = self.db.write.begin().await?;
        let mut deferred = Deferred::default();
        let applied = self.apply_in(&txn, envelope, &mut deferred).await?;
        commit(txn, deferred).await?;
        if applied == Applied::Handled {
            self.woken_after_commit();
        }
        Ok(applied)
    }
}
