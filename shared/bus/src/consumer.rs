//! Durable, idempotent consumers.
//!
//! Each delivered event is applied inside one database transaction that also
//! records `(consumer, event id)` in `handled_events`; the message is acked
//! only after that transaction commits. A redelivery (after a crash, a lost
//! ack, a replay) finds the id already recorded and changes nothing.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use chrono::Utc;
use futures::StreamExt as _;
use renkei_store::Db;
use sea_orm::{
    ActiveValue::Set, DatabaseTransaction, EntityTrait, TransactionTrait, TryInsertResult,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

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

/// What a service does with one event.
#[async_trait::async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// Applies `event` using `txn`; everything written there commits together
    /// with the record that the event was handled.
    async fn handle(&self, txn: &DatabaseTransaction, event: &Envelope)
    -> Result<(), HandlerError>;
}

/// Which events a durable consumer receives.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    pub stream: StreamSpec,
    /// Durable name, unique per consuming service and purpose.
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
}

impl<H: EventHandler> Consumer<H> {
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
            spec,
            handler,
            outbox,
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
            match next {
                None => anyhow::bail!("message stream ended"),
                Some(Err(e)) => anyhow::bail!(e),
                Some(Ok(message)) => self.process(message).await,
            }
        }
    }

    async fn process(&self, message: jetstream::Message) {
        let envelope: Envelope = match serde_json::from_slice(&message.payload) {
            Ok(envelope) => envelope,
            Err(error) => {
                tracing::error!(subject = %message.subject, %error, "undecodable event terminated");
                let _ = message.ack_with(AckKind::Term).await;
                return;
            }
        };
        let span = tracing::info_span!(
            "consume",
            durable = %self.spec.durable,
            subject = %envelope.subject,
            event_id = %envelope.id,
            outcome = tracing::field::Empty,
        );
        renkei_telemetry::adopt(&span, &headers::from_headers(message.headers.as_ref()));
        let result = self.apply(&envelope).instrument(span.clone()).await;
        let ack = match &result {
            Ok(applied) => {
                span.record("outcome", tracing::field::debug(applied));
                message.ack().await
            }
            Err(HandlerError::Permanent(reason)) => {
                span.record("outcome", "rejected");
                tracing::error!(parent: &span, %reason, "event rejected permanently");
                message.ack_with(AckKind::Term).await
            }
            Err(error @ HandlerError::Transient(_)) => {
                span.record("outcome", "retry");
                tracing::warn!(parent: &span, %error, "event will be redelivered");
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

    /// Applies one event exactly once, whatever the number of deliveries.
    pub async fn apply(&self, envelope: &Envelope) -> Result<Applied, HandlerError> {
        let txn = self.db.write.begin().await?;
        let marker = entity::ActiveModel {
            consumer: Set(self.spec.durable.clone()),
            event_id: Set(envelope.id),
            handled_at: Set(Utc::now()),
        };
        let inserted = entity::Entity::insert(marker)
            .on_conflict_do_nothing_on([entity::Column::Consumer, entity::Column::EventId])
            .exec_without_returning(&txn)
            .await?;
        if !matches!(inserted, TryInsertResult::Inserted(n) if n > 0) {
            txn.rollback().await?;
            return Ok(Applied::Duplicate);
        }
        self.handler.handle(&txn, envelope).await?;
        txn.commit().await?;
        if let Some(outbox) = &self.outbox {
            outbox.wake();
        }
        Ok(Applied::Handled)
    }
}
