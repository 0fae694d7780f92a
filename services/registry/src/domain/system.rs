//! Systems: the common platform and the linked systems, their security
//! ratings and their lifecycle.

use super::{Invalid, parse_word};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SystemKind {
    /// The common platform system, owned by a platform operator.
    Platform,
    /// An organisation's own system linked to a platform.
    Linked,
}

impl SystemKind {
    pub const ALL: [SystemKind; 2] = [SystemKind::Platform, SystemKind::Linked];

    pub fn as_str(self) -> &'static str {
        match self {
            SystemKind::Platform => "platform",
            SystemKind::Linked => "linked",
        }
    }

    pub fn parse(field: &'static str, value: &str) -> Result<SystemKind, Invalid> {
        parse_word(field, value, &SystemKind::ALL, SystemKind::as_str)
    }

    /// A platform is in service from registration; a linked system waits for
    /// its owner to accept the common rules in force.
    pub fn initial_lifecycle(self) -> Lifecycle {
        match self {
            SystemKind::Platform => Lifecycle::Active,
            SystemKind::Linked => Lifecycle::PendingRules,
        }
    }
}

/// `pending_rules → active → suspended → retired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lifecycle {
    PendingRules,
    Active,
    Suspended,
    Retired,
}

/// A lifecycle change that the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a system cannot go from {} to {}", from.as_str(), to.as_str())]
pub struct IllegalTransition {
    pub from: Lifecycle,
    pub to: Lifecycle,
}

impl Lifecycle {
    pub const ALL: [Lifecycle; 4] = [
        Lifecycle::PendingRules,
        Lifecycle::Active,
        Lifecycle::Suspended,
        Lifecycle::Retired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::PendingRules => "pending_rules",
            Lifecycle::Active => "active",
            Lifecycle::Suspended => "suspended",
            Lifecycle::Retired => "retired",
        }
    }

    pub fn parse(field: &'static str, value: &str) -> Result<Lifecycle, Invalid> {
        parse_word(field, value, &Lifecycle::ALL, Lifecycle::as_str)
    }

    /// The one place the lifecycle rules live. Retirement is final; nothing
    /// returns to `pending_rules` (acceptance is recorded once).
    pub fn transition(self, to: Lifecycle) -> Result<Lifecycle, IllegalTransition> {
        use Lifecycle::*;
        let allowed = matches!(
            (self, to),
            (PendingRules, Active | Retired)
                | (Active, Suspended | Retired)
                | (Suspended, Active | Retired)
        );
        if allowed {
            Ok(to)
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }

    /// Retired systems are disconnected: incidents no longer travel through them.
    pub fn carries_incidents(self) -> bool {
        self != Lifecycle::Retired
    }
}

/// Confidentiality (1–3), integrity (1–2) and availability (1–2), as in the
/// government information classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratings {
    pub confidentiality: i16,
    pub integrity: i16,
    pub availability: i16,
}

impl Ratings {
    pub fn new(
        confidentiality: i64,
        integrity: i64,
        availability: i64,
    ) -> Result<Ratings, Invalid> {
        Ok(Ratings {
            confidentiality: rating("confidentiality", confidentiality, 3)?,
            integrity: rating("integrity", integrity, 2)?,
            availability: rating("availability", availability, 2)?,
        })
    }
}

pub fn rating(field: &'static str, value: i64, max: i16) -> Result<i16, Invalid> {
    match i16::try_from(value) {
        Ok(v) if (1..=max).contains(&v) => Ok(v),
        _ => Err(Invalid::new(
            field,
            format!("must be an integer from 1 to {max}, not {value}"),
        )),
    }
}

/// Descriptions are free text with a sane bound.
pub fn valid_description(value: &str) -> Result<String, Invalid> {
    if value.chars().count() > 4_000 {
        return Err(Invalid::new(
            "description",
            "must be at most 4000 characters",
        ));
    }
    Ok(value.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Lifecycle::*;

    #[test]
    fn only_the_documented_transitions_are_allowed() {
        let allowed = [
            (PendingRules, Active),
            (PendingRules, Retired),
            (Active, Suspended),
            (Active, Retired),
            (Suspended, Active),
            (Suspended, Retired),
        ];
        for from in Lifecycle::ALL {
            for to in Lifecycle::ALL {
                assert_eq!(
                    from.transition(to).is_ok(),
                    allowed.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    #[test]
    fn ratings_outside_the_classification_name_their_field() {
        assert_eq!(
            Ratings::new(7, 1, 1).expect_err("c").field,
            "confidentiality"
        );
        assert_eq!(Ratings::new(3, 3, 1).expect_err("i").field, "integrity");
        assert_eq!(Ratings::new(1, 1, 0).expect_err("a").field, "availability");
        assert!(Ratings::new(3, 2, 2).is_ok());
    }
}
