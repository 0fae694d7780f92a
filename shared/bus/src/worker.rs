//! How background workers (outbox-driven schedulers, dispatchers, timers)
//! wait between rounds: until the next item is due, woken early when work
//! arrives, never longer than a safety-net sweep, and never in a tight loop
//! when something due cannot be taken (another replica holds it).

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The bounds of a worker's idle wait.
#[derive(Debug, Clone, Copy)]
pub struct Idle {
    /// The shortest wait.
    pub min: Duration,
    /// The longest wait without looking (a safety net; workers are woken
    /// when work arrives).
    pub sweep: Duration,
}

impl Idle {
    /// How long to wait for an item due at `next` (none known: a sweep).
    pub fn until(&self, next: Option<DateTime<Utc>>) -> Duration {
        next.map_or(self.sweep, |at| {
            (at - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .clamp(self.min, self.sweep)
        })
    }

    /// Waits for an item due at `next`, a wake-up or the stop signal;
    /// `false` when stopped.
    pub async fn wait(
        &self,
        next: Option<DateTime<Utc>>,
        wake: &Notify,
        cancel: &CancellationToken,
    ) -> bool {
        tokio::select! {
            _ = cancel.cancelled() => false,
            _ = wake.notified() => true,
            _ = tokio::time::sleep(self.until(next)) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_never_shorter_than_the_floor_nor_longer_than_the_sweep() {
        let idle = Idle {
            min: Duration::from_millis(20),
            sweep: Duration::from_secs(30),
        };
        let past = Utc::now() - chrono::Duration::seconds(5);
        assert_eq!(idle.until(Some(past)), Duration::from_millis(20));
        let far = Utc::now() + chrono::Duration::hours(1);
        assert_eq!(idle.until(Some(far)), Duration::from_secs(30));
        assert_eq!(idle.until(None), Duration::from_secs(30));
        let soon = idle.until(Some(Utc::now() + chrono::Duration::seconds(2)));
        assert!(soon > Duration::from_secs(1) && soon <= Duration::from_secs(2));
    }
}
