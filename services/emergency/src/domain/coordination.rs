//! Coordination messages between an incident's participants, and
//! advisories to every organisation in ordinary times.

use chrono::{DateTime, Utc};

use super::{Invalid, parse_word};

/// What a coordination message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Update,
    Request,
    Instruction,
    Advisory,
    /// Addressed to the central body, which may send its support team.
    AssistanceRequest,
}

impl MessageKind {
    pub const ALL: [MessageKind; 5] = [
        MessageKind::Update,
        MessageKind::Request,
        MessageKind::Instruction,
        MessageKind::Advisory,
        MessageKind::AssistanceRequest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Update => "update",
            MessageKind::Request => "request",
            MessageKind::Instruction => "instruction",
            MessageKind::Advisory => "advisory",
            MessageKind::AssistanceRequest => "assistance_request",
        }
    }

    pub fn parse(field: &str, value: &str) -> Result<MessageKind, Invalid> {
        parse_word(field, value, &MessageKind::ALL, MessageKind::as_str)
    }
}

/// Which path of each organisation a message takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    Ordinary,
    Emergency,
}

impl Urgency {
    pub const ALL: [Urgency; 2] = [Urgency::Ordinary, Urgency::Emergency];

    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Ordinary => "ordinary",
            Urgency::Emergency => "emergency",
        }
    }

    pub fn parse(field: &str, value: &str) -> Result<Urgency, Invalid> {
        parse_word(field, value, &Urgency::ALL, Urgency::as_str)
    }
}

/// Who a message goes to: the addressed organisations, which must be
/// participants; an assistance request goes to the central bodies; by
/// default every participant but the sender.
pub fn addressees(
    kind: MessageKind,
    to: Option<&[uuid::Uuid]>,
    participants: &[uuid::Uuid],
    central: &[uuid::Uuid],
    sender: uuid::Uuid,
) -> Result<Vec<uuid::Uuid>, Invalid> {
    let mut out: Vec<uuid::Uuid> = match (kind, to) {
        (_, Some([])) => return Err(Invalid::new("to_org_ids", "must not be empty when given")),
        (_, Some(list)) => {
            if let Some(bad) = list.iter().find(|o| !participants.contains(o)) {
                return Err(Invalid::new(
                    "to_org_ids",
                    format!("{bad} is not a participant of this incident"),
                ));
            }
            list.to_vec()
        }
        (MessageKind::AssistanceRequest, None) => {
            if central.is_empty() {
                return Err(Invalid::new(
                    "kind",
                    "an assistance request goes to the central body, and none is registered",
                ));
            }
            central.to_vec()
        }
        (_, None) => participants
            .iter()
            .copied()
            .filter(|o| *o != sender)
            .collect(),
    };
    out.sort();
    out.dedup();
    Ok(out)
}

/// Checks an advisory's "act by" date: in the future, within a year.
pub fn valid_advisory(act_by: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Result<(), Invalid> {
    match act_by {
        Some(t) if t <= now => Err(Invalid::new("act_by", "must be in the future")),
        Some(t) if t > now + chrono::Duration::days(366) => {
            Err(Invalid::new("act_by", "must be within a year"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn messages_go_to_participants_and_assistance_to_the_central_body() {
        let (a, b, c, central) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        let participants = [a, b, c, central];
        let all = addressees(MessageKind::Update, None, &participants, &[central], a).expect("ok");
        assert_eq!(all.len(), 3);
        assert!(!all.contains(&a));
        let help = addressees(
            MessageKind::AssistanceRequest,
            None,
            &participants,
            &[central],
            a,
        )
        .expect("ok");
        assert_eq!(help, vec![central]);
        let stranger = Uuid::now_v7();
        let err = addressees(
            MessageKind::Request,
            Some(&[b, stranger]),
            &participants,
            &[],
            a,
        )
        .expect_err("not a participant");
        assert_eq!(err.field, "to_org_ids");
        assert!(addressees(MessageKind::Request, Some(&[]), &participants, &[], a).is_err());
    }

    #[test]
    fn an_act_by_date_lies_ahead() {
        let now = Utc::now();
        assert!(valid_advisory(None, now).is_ok());
        assert!(valid_advisory(Some(now + chrono::Duration::days(3)), now).is_ok());
        assert_eq!(
            valid_advisory(Some(now - chrono::Duration::minutes(1)), now)
                .expect_err("past")
                .field,
            "act_by"
        );
    }
}
