//! Reports to the central body: initial, follow-up and final, generated
//! from the incident, edited, then filed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Invalid, Status, parse_word};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    Initial,
    FollowUp,
    Final,
}

impl ReportKind {
    pub const ALL: [ReportKind; 3] = [ReportKind::Initial, ReportKind::FollowUp, ReportKind::Final];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Initial => "initial",
            ReportKind::FollowUp => "follow_up",
            ReportKind::Final => "final",
        }
    }

    pub fn parse(field: &str, value: &str) -> Result<ReportKind, Invalid> {
        parse_word(field, value, &ReportKind::ALL, ReportKind::as_str)
    }

    /// Whether a report of this kind may be started now: one initial
    /// report; follow-ups and the final one after the initial was filed;
    /// the final one once the incident is recovered.
    pub fn may_start(
        self,
        status: Status,
        initial_filed: bool,
        initial_exists: bool,
    ) -> Result<(), Invalid> {
        match self {
            ReportKind::Initial if initial_exists => Err(Invalid::new(
                "kind",
                "this incident already has an initial report; write a follow_up",
            )),
            ReportKind::FollowUp | ReportKind::Final if !initial_filed => {
                Err(Invalid::new("kind", "file the initial report first"))
            }
            ReportKind::Final if !matches!(status, Status::Recovered | Status::Closed) => {
                Err(Invalid::new(
                    "kind",
                    "a final report is written once the incident is recovered",
                ))
            }
            _ => Ok(()),
        }
    }
}

/// One affected organisation, as a report lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AffectedLine {
    pub organization: String,
    pub systems: Vec<String>,
    pub acknowledged: bool,
}

/// One line of the timeline, as a report lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimelineLine {
    pub at: DateTime<Utc>,
    pub what: String,
}

/// What a report says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportContent {
    /// What happened (editable).
    pub what_happened: String,
    pub system: String,
    pub category: String,
    pub severity: u8,
    pub tlp: String,
    pub status: String,
    pub detected_at: DateTime<Utc>,
    pub declared_at: DateTime<Utc>,
    pub affected: Vec<AffectedLine>,
    pub timeline: Vec<TimelineLine>,
    /// Measures taken: one line per playbook task, then free text (editable).
    pub measures_taken: String,
    /// Anything else the reporting organisation adds (editable).
    #[serde(default)]
    pub notes: String,
}

/// The facts a report is generated from.
#[derive(Debug, Clone)]
pub struct Facts {
    pub summary: String,
    pub system: String,
    pub category: String,
    pub severity: u8,
    pub tlp: String,
    pub status: String,
    pub detected_at: DateTime<Utc>,
    pub declared_at: DateTime<Utc>,
    pub affected: Vec<AffectedLine>,
    pub timeline: Vec<TimelineLine>,
    /// (task title, owner organisation, state)
    pub tasks: Vec<(String, String, String)>,
}

impl ReportContent {
    /// The draft generated from the incident as it stands.
    pub fn draft(f: Facts) -> ReportContent {
        let measures_taken = f
            .tasks
            .iter()
            .map(|(title, owner, state)| format!("- {title} ({owner}): {state}"))
            .collect::<Vec<_>>()
            .join("\n");
        ReportContent {
            what_happened: format!(
                "{} — {} incident of severity {} on {}, detected {}.",
                f.summary,
                f.category,
                f.severity,
                f.system,
                f.detected_at.format("%Y-%m-%d %H:%M UTC")
            ),
            system: f.system,
            category: f.category,
            severity: f.severity,
            tlp: f.tlp,
            status: f.status,
            detected_at: f.detected_at,
            declared_at: f.declared_at,
            affected: f.affected,
            timeline: f.timeline,
            measures_taken,
            notes: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_come_in_order() {
        use ReportKind::*;
        assert!(Initial.may_start(Status::Declared, false, false).is_ok());
        assert!(Initial.may_start(Status::Declared, false, true).is_err());
        assert!(FollowUp.may_start(Status::Triaged, false, true).is_err());
        assert!(FollowUp.may_start(Status::Triaged, true, true).is_ok());
        assert!(Final.may_start(Status::Contained, true, true).is_err());
        assert!(Final.may_start(Status::Recovered, true, true).is_ok());
    }

    #[test]
    fn a_draft_says_what_happened_and_lists_the_measures() {
        let now = Utc::now();
        let draft = ReportContent::draft(Facts {
            summary: "Ransomware on the records server".into(),
            system: "Records".into(),
            category: "malware".into(),
            severity: 1,
            tlp: "amber".into(),
            status: "triaged".into(),
            detected_at: now,
            declared_at: now,
            affected: vec![],
            timeline: vec![],
            tasks: vec![("Isolate the link".into(), "Agency A".into(), "done".into())],
        });
        assert!(
            draft
                .what_happened
                .starts_with("Ransomware on the records server")
        );
        assert_eq!(draft.measures_taken, "- Isolate the link (Agency A): done");
    }
}
