//! An incident's severity, marking and status, and how its status moves.

use serde::{Deserialize, Serialize};

use super::{Invalid, parse_word};

/// 1 (highest) to 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Severity(u8);

impl Severity {
    pub fn new(field: &str, value: i64) -> Result<Severity, Invalid> {
        match u8::try_from(value) {
            Ok(v @ 1..=4) => Ok(Severity(v)),
            _ => Err(Invalid::new(field, "must be 1 (highest) to 4")),
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }

    /// Severities 1 and 2 call for an initial report within the hour.
    pub fn is_severe(self) -> bool {
        self.0 <= 2
    }

    /// The word events and messages carry.
    pub fn word(self) -> &'static str {
        match self.0 {
            1 => "critical",
            2 => "high",
            3 => "medium",
            _ => "low",
        }
    }
}

/// Traffic Light Protocol 2.0 markings, from the least to the most
/// restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tlp {
    Clear,
    Green,
    Amber,
    AmberStrict,
    Red,
}

impl Tlp {
    pub const ALL: [Tlp; 5] = [
        Tlp::Clear,
        Tlp::Green,
        Tlp::Amber,
        Tlp::AmberStrict,
        Tlp::Red,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Tlp::Clear => "clear",
            Tlp::Green => "green",
            Tlp::Amber => "amber",
            Tlp::AmberStrict => "amber+strict",
            Tlp::Red => "red",
        }
    }

    pub fn parse(field: &str, value: &str) -> Result<Tlp, Invalid> {
        parse_word(field, value, &Tlp::ALL, Tlp::as_str)
    }

    /// A marking for something derived from an item marked `of`: it may be
    /// as strict or stricter, never looser.
    pub fn no_looser_than(self, field: &str, of: Tlp) -> Result<Tlp, Invalid> {
        if self < of {
            Err(Invalid::new(
                field,
                format!(
                    "`{}` is looser than the incident's marking `{}`",
                    self.as_str(),
                    of.as_str()
                ),
            ))
        } else {
            Ok(self)
        }
    }
}

/// Where an incident stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Declared,
    Triaged,
    Contained,
    Recovered,
    Closed,
}

/// Why a status change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusRefused {
    #[error("an incident cannot move from {from} to {to}; from {from} it moves to {allowed}")]
    Illegal {
        from: &'static str,
        to: &'static str,
        allowed: String,
    },
    #[error("closing needs a post-incident review (PUT /v1/incidents/{{id}}/review) first")]
    ReviewMissing,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Declared,
        Status::Triaged,
        Status::Contained,
        Status::Recovered,
        Status::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Declared => "declared",
            Status::Triaged => "triaged",
            Status::Contained => "contained",
            Status::Recovered => "recovered",
            Status::Closed => "closed",
        }
    }

    pub fn parse(field: &str, value: &str) -> Result<Status, Invalid> {
        parse_word(field, value, &Status::ALL, Status::as_str)
    }

    pub fn is_open(self) -> bool {
        self != Status::Closed
    }

    /// Where it may go from here: the next stage, or back one stage when
    /// a contained or recovered incident flares up again. Closed is final.
    pub fn next(self) -> &'static [Status] {
        match self {
            Status::Declared => &[Status::Triaged],
            Status::Triaged => &[Status::Contained],
            Status::Contained => &[Status::Recovered, Status::Triaged],
            Status::Recovered => &[Status::Closed, Status::Contained],
            Status::Closed => &[],
        }
    }

    /// Checks a move to `to`; closing needs a review.
    pub fn move_to(self, to: Status, reviewed: bool) -> Result<Status, StatusRefused> {
        if !self.next().contains(&to) {
            let allowed: Vec<&str> = self.next().iter().map(|s| s.as_str()).collect();
            return Err(StatusRefused::Illegal {
                from: self.as_str(),
                to: to.as_str(),
                allowed: if allowed.is_empty() {
                    "nothing (it is closed)".to_owned()
                } else {
                    allowed.join(" or ")
                },
            });
        }
        if to == Status::Closed && !reviewed {
            return Err(StatusRefused::ReviewMissing);
        }
        Ok(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incident_moves_one_stage_at_a_time_and_closes_only_after_review() {
        assert_eq!(
            Status::Declared.move_to(Status::Triaged, false),
            Ok(Status::Triaged)
        );
        assert!(matches!(
            Status::Declared.move_to(Status::Closed, true),
            Err(StatusRefused::Illegal { .. })
        ));
        assert_eq!(
            Status::Recovered.move_to(Status::Closed, false),
            Err(StatusRefused::ReviewMissing)
        );
        assert_eq!(
            Status::Recovered.move_to(Status::Closed, true),
            Ok(Status::Closed)
        );
        assert_eq!(
            Status::Contained.move_to(Status::Triaged, false),
            Ok(Status::Triaged)
        );
        assert!(Status::Closed.move_to(Status::Recovered, true).is_err());
    }

    #[test]
    fn a_derived_marking_may_be_stricter_never_looser() {
        assert!(Tlp::Red.no_looser_than("tlp", Tlp::Amber).is_ok());
        assert!(Tlp::Amber.no_looser_than("tlp", Tlp::Amber).is_ok());
        let err = Tlp::Green
            .no_looser_than("tlp", Tlp::AmberStrict)
            .expect_err("looser");
        assert_eq!(err.field, "tlp");
        assert_eq!(Tlp::parse("tlp", "amber+strict"), Ok(Tlp::AmberStrict));
        assert!(Tlp::parse("tlp", "white").is_err());
    }

    #[test]
    fn severity_is_one_to_four() {
        assert!(Severity::new("severity", 0).is_err());
        assert!(Severity::new("severity", 5).is_err());
        assert_eq!(
            Severity::new("severity", 1).map(Severity::word),
            Ok("critical")
        );
        assert!(Severity::new("severity", 2).expect("2").is_severe());
        assert!(!Severity::new("severity", 3).expect("3").is_severe());
    }
}
