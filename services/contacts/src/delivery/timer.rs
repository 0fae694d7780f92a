//! The escalation timer: sleeps until the next step's wait runs out (or the
//! next scheduled drill), moves what is due, and is woken whenever a timer
//! changes. Timers live in the database, so a restart only delays them.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use renkei_bus::Outbox;
use renkei_bus::worker::Idle;
use renkei_store::Db;
use sea_orm::{DbErr, TransactionTrait};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{drills, escalation};

/// Organisations moved per transaction.
const BATCH: u64 = 200;
/// A due organisation another replica holds is looked at again after
/// `min`; nothing is left longer than `sweep`.
const IDLE: Idle = Idle {
    min: Duration::from_millis(20),
    sweep: Duration::from_secs(30),
};

#[derive(Clone)]
pub struct Timer {
    pub db: Db,
    pub outbox: Outbox,
    /// Woken when a timer is set or cut short.
    pub wake: Arc<Notify>,
    /// The dispatcher, woken when steps create deliveries.
    pub dispatch: Arc<Notify>,
}

impl Timer {
    pub async fn run(self, cancel: CancellationToken) {
        loop {
            let next = match self.tick().await {
                Ok(next) => next,
                Err(error) => {
                    tracing::warn!(%error, "escalations not moved yet");
                    Some(Utc::now() + chrono::Duration::seconds(1))
                }
            };
            if !IDLE.wait(next, &self.wake, &cancel).await {
                return;
            }
        }
    }

    /// Moves everything due now; returns when the next timer runs out.
    #[tracing::instrument(skip_all)]
    pub async fn tick(&self) -> Result<Option<DateTime<Utc>>, DbErr> {
        loop {
            let now = Utc::now();
            let txn = self.db.write.begin().await?;
            let moved = escalation::advance_due(&txn, &self.outbox, now, BATCH).await?;
            let drilled = drills::run_due(&txn, &self.outbox, now).await?;
            self.outbox.commit(txn).await?;
            renkei_telemetry::metrics::counter!(renkei_telemetry::metrics::ESCALATIONS)
                .increment(moved as u64);
            if moved + drilled > 0 {
                tracing::info!(moved, drilled, "escalation steps entered");
                self.dispatch.notify_one();
            }
            if (moved as u64) < BATCH {
                break;
            }
        }
        let next = escalation::next_due(&self.db.read).await?;
        let drill = drills::next_due(&self.db.read).await?;
        Ok(match (next, drill) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }
}
