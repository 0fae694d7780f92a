//! Reminders of a proposal's response deadline, sent to the organisations
//! that have not answered. The scheduler sleeps until the next reminder is
//! due and is woken when a proposal schedules new ones; replicas on
//! PostgreSQL claim due reminders with `FOR UPDATE SKIP LOCKED`, so each is
//! sent once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use renkei_bus::Outbox;
use renkei_bus::contracts::demarcation::RulesReminded;
use renkei_bus::worker::Idle;
use renkei_store::Db;
use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::{Position, VersionState};
use crate::store::{self, reminder, rule_party, rule_version};

/// The longest the scheduler sleeps without looking is `sweep` (a safety
/// net; it is woken whenever reminders are scheduled).
const IDLE: Idle = Idle {
    min: Duration::from_millis(20),
    sweep: Duration::from_secs(60),
};

#[derive(Clone)]
pub struct Reminders {
    db: Db,
    outbox: Outbox,
    wake: Arc<Notify>,
}

impl Reminders {
    pub fn new(db: Db, outbox: Outbox) -> Reminders {
        Reminders {
            db,
            outbox,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Tells the scheduler reminders were scheduled.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub async fn run(self, cancel: CancellationToken) {
        loop {
            let next = match self.send_due().await {
                Ok(next) => next,
                Err(error) => {
                    tracing::warn!(%error, "reminders not sent yet");
                    Some(Utc::now() + chrono::Duration::seconds(1))
                }
            };
            if !IDLE.wait(next, &self.wake, &cancel).await {
                return;
            }
        }
    }

    /// Sends every reminder that is due; returns when the next one is.
    #[tracing::instrument(skip_all)]
    pub async fn send_due(&self) -> Result<Option<DateTime<Utc>>, DbErr> {
        let now = Utc::now();
        let txn = self.db.write.begin().await?;
        let due = reminder::Entity::find()
            .filter(reminder::Column::SentAt.is_null())
            .filter(reminder::Column::DueAt.lte(now))
            .order_by_asc(reminder::Column::DueAt)
            .limit(100)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .all(&txn)
            .await?;
        let mut sent = 0usize;
        let mut reminded = Vec::new();
        for r in due {
            if let Some(version) = rule_version::Entity::find_by_id(r.version_id)
                .one(&txn)
                .await?
                && store::state_of(&version)? == VersionState::Proposed
            {
                let silent = rule_party::Entity::find()
                    .filter(rule_party::Column::VersionId.eq(version.id))
                    .filter(rule_party::Column::Position.eq(Position::Pending.as_str()))
                    .all(&txn)
                    .await?;
                let respond_by = version.respond_by.unwrap_or(now);
                let events: Vec<_> = silent
                    .iter()
                    .map(|p| {
                        (
                            Some(p.organization_id),
                            RulesReminded {
                                version_id: version.id,
                                platform_id: version.platform_id,
                                version: u32::try_from(version.version).unwrap_or_default(),
                                organization_id: p.organization_id,
                                respond_by,
                            },
                        )
                    })
                    .collect();
                sent += self.outbox.stage_many(&txn, &events).await?;
                reminded.push(
                    renkei_audit::Action::new("rules.reminded", version.id)
                        .detail(serde_json::json!({ "organizations": events.len() })),
                );
            }
            let mut row: reminder::ActiveModel = r.into();
            row.sent_at = Set(Some(now));
            row.update(&txn).await?;
        }
        let by = renkei_audit::Actor::service(crate::SERVICE);
        renkei_audit::record_all(&txn, by, reminded).await?;
        self.outbox.commit(txn).await?;
        if sent > 0 {
            tracing::info!(sent, "deadline reminders sent");
        }
        reminder::Entity::find()
            .filter(reminder::Column::SentAt.is_null())
            .order_by_asc(reminder::Column::DueAt)
            .one(&self.db.read)
            .await
            .map(|r| r.map(|r| r.due_at))
    }
}
