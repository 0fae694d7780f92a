//! The states of a notification, of each organisation it concerns and of
//! each delivery, and the retry schedule.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where one organisation stands on a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgState {
    /// Messages are on their way; none has arrived yet.
    Notifying,
    /// At least one message arrived; waiting for an acknowledgement.
    Delivered,
    Acknowledged,
    /// Every step and repeat went by without an acknowledgement.
    Unacknowledged,
    /// Told, and nothing more was asked: a message reached someone of a
    /// notification that needs no acknowledgement. Not escalated further.
    Informed,
}

impl OrgState {
    pub const ALL: [OrgState; 5] = [
        OrgState::Notifying,
        OrgState::Delivered,
        OrgState::Acknowledged,
        OrgState::Unacknowledged,
        OrgState::Informed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrgState::Notifying => "notifying",
            OrgState::Delivered => "delivered",
            OrgState::Acknowledged => "acknowledged",
            OrgState::Unacknowledged => "unacknowledged",
            OrgState::Informed => "informed",
        }
    }

    pub fn parse(s: &str) -> Option<OrgState> {
        OrgState::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Still escalating: timers run, messages may go out.
    pub fn open(self) -> bool {
        matches!(self, OrgState::Notifying | OrgState::Delivered)
    }

    /// Messages of its current step may still go out (retries included):
    /// while escalating, and once informed (the step that reached someone
    /// still reaches the rest of its contacts).
    pub fn sending(self) -> bool {
        self.open() || self == OrgState::Informed
    }
}

/// A notification as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationState {
    /// Some organisation is still being escalated.
    Open,
    /// Every organisation acknowledged.
    Acknowledged,
    /// Escalation ended and some organisation never acknowledged.
    Unacknowledged,
    /// Every organisation was told, and none was asked to acknowledge.
    Informed,
}

impl NotificationState {
    pub const ALL: [NotificationState; 4] = [
        NotificationState::Open,
        NotificationState::Acknowledged,
        NotificationState::Unacknowledged,
        NotificationState::Informed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationState::Open => "open",
            NotificationState::Acknowledged => "acknowledged",
            NotificationState::Unacknowledged => "unacknowledged",
            NotificationState::Informed => "informed",
        }
    }

    /// The state of a notification whose organisations stand at `orgs`.
    /// Informed only when every organisation was merely told.
    pub fn of(orgs: impl IntoIterator<Item = OrgState>) -> NotificationState {
        let mut any_unacknowledged = false;
        let (mut seen, mut informed) = (0, 0);
        for s in orgs {
            seen += 1;
            if s.open() {
                return NotificationState::Open;
            }
            any_unacknowledged |= s == OrgState::Unacknowledged;
            informed += usize::from(s == OrgState::Informed);
        }
        if any_unacknowledged {
            NotificationState::Unacknowledged
        } else if seen > 0 && informed == seen {
            NotificationState::Informed
        } else {
            NotificationState::Acknowledged
        }
    }
}

/// One message to one contact through one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its (next) attempt.
    Pending,
    /// An attempt is under way (claimed until a lease runs out).
    Sending,
    Delivered,
    /// Every attempt failed; the channel is recorded as failing.
    Failed,
    /// Not sent: the organisation acknowledged first.
    Cancelled,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Sending => "sending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Cancelled => "cancelled",
        }
    }
}

/// The wait before retry number `attempt` (1-based count of failures so
/// far): `base`, doubled each time, never above `max`.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
    base.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_is_open_while_any_organisation_is_being_escalated() {
        use OrgState::*;
        assert_eq!(
            NotificationState::of([Acknowledged, Delivered]),
            NotificationState::Open
        );
        assert_eq!(
            NotificationState::of([Acknowledged, Unacknowledged]),
            NotificationState::Unacknowledged
        );
        assert_eq!(
            NotificationState::of([Acknowledged, Acknowledged]),
            NotificationState::Acknowledged
        );
    }

    #[test]
    fn a_notification_nobody_had_to_acknowledge_ends_informed() {
        use OrgState::*;
        assert_eq!(
            NotificationState::of([Informed, Informed]),
            NotificationState::Informed
        );
        assert_eq!(
            NotificationState::of([Informed, Notifying]),
            NotificationState::Open
        );
        assert_eq!(
            NotificationState::of([Informed, Unacknowledged]),
            NotificationState::Unacknowledged,
            "somebody could not be reached"
        );
        assert_eq!(
            NotificationState::of([Informed, Acknowledged]),
            NotificationState::Acknowledged,
            "somebody read it through the link"
        );
        assert!(Informed.sending() && !Informed.open());
        assert!(!Acknowledged.sending() && !Unacknowledged.sending());
    }

    #[test]
    fn retries_back_off_doubling_up_to_the_cap() {
        let (b, m) = (Duration::from_secs(2), Duration::from_secs(60));
        assert_eq!(backoff(1, b, m), Duration::from_secs(2));
        assert_eq!(backoff(3, b, m), Duration::from_secs(8));
        assert_eq!(backoff(30, b, m), Duration::from_secs(60));
    }
}
