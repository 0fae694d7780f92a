//! Common-rules documents: their content, the version state machine and the
//! full-consensus rule.
//!
//! `draft → proposed → in_force → superseded`; a draft or a proposal may be
//! `withdrawn`. A proposal comes into force only when every required
//! organisation has accepted it; one objection blocks it until withdrawn.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Invalid, parse_word, valid_name};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    Draft,
    Proposed,
    InForce,
    Superseded,
    Withdrawn,
}

/// A move the version state machine refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {} rules version cannot be {action}", from.as_str())]
pub struct IllegalMove {
    pub from: VersionState,
    pub action: &'static str,
}

impl VersionState {
    pub const ALL: [VersionState; 5] = [
        VersionState::Draft,
        VersionState::Proposed,
        VersionState::InForce,
        VersionState::Superseded,
        VersionState::Withdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VersionState::Draft => "draft",
            VersionState::Proposed => "proposed",
            VersionState::InForce => "in_force",
            VersionState::Superseded => "superseded",
            VersionState::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(field: &str, value: &str) -> Result<VersionState, Invalid> {
        parse_word(field, value, &VersionState::ALL, VersionState::as_str)
    }

    fn only_from(self, from: VersionState, action: &'static str) -> Result<(), IllegalMove> {
        if self == from {
            Ok(())
        } else {
            Err(IllegalMove { from: self, action })
        }
    }

    /// Only a draft is edited.
    pub fn edit(self) -> Result<(), IllegalMove> {
        self.only_from(VersionState::Draft, "edited")
    }

    pub fn propose(self) -> Result<VersionState, IllegalMove> {
        self.only_from(VersionState::Draft, "proposed")?;
        Ok(VersionState::Proposed)
    }

    pub fn withdraw(self) -> Result<VersionState, IllegalMove> {
        match self {
            VersionState::Draft | VersionState::Proposed => Ok(VersionState::Withdrawn),
            from => Err(IllegalMove {
                from,
                action: "withdrawn",
            }),
        }
    }

    pub fn come_into_force(self) -> Result<VersionState, IllegalMove> {
        self.only_from(VersionState::Proposed, "put in force")?;
        Ok(VersionState::InForce)
    }

    pub fn supersede(self) -> Result<VersionState, IllegalMove> {
        self.only_from(VersionState::InForce, "superseded")?;
        Ok(VersionState::Superseded)
    }

    /// Decisions are taken on a proposal, and on the version in force by
    /// organisations that joined after it came into force.
    pub fn accepts_decisions(self) -> Result<(), IllegalMove> {
        match self {
            VersionState::Proposed | VersionState::InForce => Ok(()),
            from => Err(IllegalMove {
                from,
                action: "decided on",
            }),
        }
    }
}

/// One rule of the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub text: String,
    /// Control ids from the catalogue.
    #[serde(default)]
    pub controls: Vec<String>,
}

/// The cooperation system for ordinary and emergency conditions, in summary
/// (the contacts service keeps the details).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cooperation {
    #[serde(default)]
    pub ordinary: String,
    #[serde(default)]
    pub emergency: String,
}

/// The body of a rules version: the one document that stipulates the
/// platform's measures comprehensively.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesContent {
    pub title: String,
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub cooperation: Cooperation,
    /// The emergency measures (playbooks) the rules refer to.
    #[serde(default)]
    pub emergency_measures: Vec<String>,
}

pub const MAX_RULES: usize = 500;
const MAX_TEXT: usize = 20_000;

impl RulesContent {
    /// Checks every rule; errors name the field (`rules[1].title`).
    pub fn validate(&self, catalogue: &HashSet<String>) -> Result<(), Invalid> {
        valid_name("title", &self.title, 300)?;
        if self.rules.is_empty() {
            return Err(Invalid::new("rules", "must hold at least one rule"));
        }
        if self.rules.len() > MAX_RULES {
            return Err(Invalid::new("rules", format!("at most {MAX_RULES} rules")));
        }
        let mut ids = HashSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let id = valid_name(&format!("rules[{i}].id"), &rule.id, 40)?;
            if !ids.insert(id) {
                return Err(Invalid::new(
                    format!("rules[{i}].id"),
                    format!("`{}` is used by an earlier rule", rule.id),
                ));
            }
            valid_name(&format!("rules[{i}].title"), &rule.title, 300)?;
            valid_name(&format!("rules[{i}].text"), &rule.text, MAX_TEXT)?;
            for (j, control) in rule.controls.iter().enumerate() {
                if !catalogue.contains(control) {
                    return Err(Invalid::new(
                        format!("rules[{i}].controls[{j}]"),
                        format!("`{control}` is not in the control catalogue"),
                    ));
                }
            }
        }
        for (field, text) in [
            ("cooperation.ordinary", &self.cooperation.ordinary),
            ("cooperation.emergency", &self.cooperation.emergency),
        ] {
            if text.chars().count() > MAX_TEXT {
                return Err(Invalid::new(
                    field,
                    format!("must be at most {MAX_TEXT} characters"),
                ));
            }
        }
        for (i, measure) in self.emergency_measures.iter().enumerate() {
            valid_name(&format!("emergency_measures[{i}]"), measure, 2_000)?;
        }
        Ok(())
    }

    pub fn rule_ids(&self) -> HashSet<&str> {
        self.rules.iter().map(|r| r.id.as_str()).collect()
    }
}

/// What an organisation answers to a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Accept,
    Object,
    /// Takes an objection back: the organisation is pending again.
    WithdrawObjection,
}

impl Decision {
    pub const ALL: [Decision; 3] = [
        Decision::Accept,
        Decision::Object,
        Decision::WithdrawObjection,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Accept => "accept",
            Decision::Object => "object",
            Decision::WithdrawObjection => "withdraw_objection",
        }
    }

    pub fn parse(field: &str, value: &str) -> Result<Decision, Invalid> {
        parse_word(field, value, &Decision::ALL, Decision::as_str)
    }
}

/// Where an organisation stands on a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    Pending,
    Accepted,
    Objected,
}

/// A decision the rules refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionRefused {
    #[error(transparent)]
    State(#[from] IllegalMove),
    #[error("your organisation already accepted this version")]
    AlreadyAccepted,
    #[error("your organisation has no objection to withdraw")]
    NothingToWithdraw,
}

impl Position {
    pub const ALL: [Position; 3] = [Position::Pending, Position::Accepted, Position::Objected];

    pub fn as_str(self) -> &'static str {
        match self {
            Position::Pending => "pending",
            Position::Accepted => "accepted",
            Position::Objected => "objected",
        }
    }

    pub fn parse(field: &str, value: &str) -> Result<Position, Invalid> {
        parse_word(field, value, &Position::ALL, Position::as_str)
    }

    /// The position after `decision` on a version in `state`. While a
    /// proposal is open an organisation may change its mind; an acceptance
    /// of the version in force is final.
    pub fn decide(
        self,
        state: VersionState,
        decision: Decision,
    ) -> Result<Position, DecisionRefused> {
        state.accepts_decisions()?;
        match (self, decision) {
            (Position::Accepted, Decision::Accept) => Err(DecisionRefused::AlreadyAccepted),
            (Position::Accepted, _) if state == VersionState::InForce => {
                Err(DecisionRefused::AlreadyAccepted)
            }
            (_, Decision::Accept) => Ok(Position::Accepted),
            (_, Decision::Object) => Ok(Position::Objected),
            (Position::Objected, Decision::WithdrawObjection) => Ok(Position::Pending),
            (_, Decision::WithdrawObjection) => Err(DecisionRefused::NothingToWithdraw),
        }
    }
}

/// An objection's reason, checked: required, and rule ids that exist.
pub fn check_objection(
    content: &RulesContent,
    reason: Option<&str>,
    per_rule: &[(String, String)],
) -> Result<String, Invalid> {
    let reason = reason
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| Invalid::new("reason", "an objection must give a reason"))?;
    if reason.chars().count() > 5_000 {
        return Err(Invalid::new("reason", "must be at most 5000 characters"));
    }
    let ids = content.rule_ids();
    for (i, (rule_id, text)) in per_rule.iter().enumerate() {
        if !ids.contains(rule_id.as_str()) {
            return Err(Invalid::new(
                format!("rules[{i}].rule_id"),
                format!("`{rule_id}` is not a rule of this version"),
            ));
        }
        valid_name(&format!("rules[{i}].reason"), text, 5_000)?;
    }
    Ok(reason.to_owned())
}

/// Who stands where on a version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Consensus {
    pub required: Vec<Uuid>,
    pub accepted: Vec<Uuid>,
    pub objected: Vec<Uuid>,
    pub pending: Vec<Uuid>,
}

impl Consensus {
    pub fn from_positions(positions: impl IntoIterator<Item = (Uuid, Position)>) -> Consensus {
        let positions: BTreeMap<Uuid, Position> = positions.into_iter().collect();
        let mut c = Consensus::default();
        for (org, position) in positions {
            c.required.push(org);
            match position {
                Position::Accepted => c.accepted.push(org),
                Position::Objected => c.objected.push(org),
                Position::Pending => c.pending.push(org),
            }
        }
        c
    }

    /// Full consensus: every required organisation accepted (vacuously true
    /// when no linked organisation exists yet).
    pub fn reached(&self) -> bool {
        self.objected.is_empty() && self.pending.is_empty()
    }
}

/// The default response window of a proposal.
pub const DEFAULT_RESPONSE_WINDOW: Duration = Duration::days(14);

/// Checks a requested deadline: in the future, within a year.
pub fn check_deadline(
    now: DateTime<Utc>,
    respond_by: DateTime<Utc>,
) -> Result<DateTime<Utc>, Invalid> {
    if respond_by <= now {
        return Err(Invalid::new("respond_by", "must be in the future"));
    }
    if respond_by > now + Duration::days(366) {
        return Err(Invalid::new("respond_by", "must be within a year"));
    }
    Ok(respond_by)
}

/// When silent organisations are reminded: 7, 3 and 1 day before the
/// deadline, those still ahead; when the window is too short for any of
/// them, once halfway through it.
pub fn reminder_schedule(
    proposed_at: DateTime<Utc>,
    respond_by: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let mut at: Vec<DateTime<Utc>> = [7, 3, 1]
        .into_iter()
        .map(|days| respond_by - Duration::days(days))
        .filter(|t| *t > proposed_at)
        .collect();
    if at.is_empty() {
        at.push(proposed_at + (respond_by - proposed_at) / 2);
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content() -> RulesContent {
        RulesContent {
            title: "Common rules".into(),
            rules: vec![Rule {
                id: "R1".into(),
                title: "Patch".into(),
                text: "Within 14 days.".into(),
                controls: vec!["vulnerability-patch".into()],
            }],
            ..RulesContent::default()
        }
    }

    fn catalogue() -> HashSet<String> {
        ["vulnerability-patch".to_owned()].into_iter().collect()
    }

    #[test]
    fn only_a_draft_is_proposed_and_only_a_proposal_comes_into_force() {
        assert_eq!(VersionState::Draft.propose(), Ok(VersionState::Proposed));
        assert!(VersionState::Proposed.propose().is_err());
        assert_eq!(
            VersionState::Proposed.come_into_force(),
            Ok(VersionState::InForce)
        );
        assert!(VersionState::Draft.come_into_force().is_err());
        assert_eq!(
            VersionState::InForce.supersede(),
            Ok(VersionState::Superseded)
        );
        assert!(VersionState::InForce.withdraw().is_err());
        assert!(VersionState::Superseded.withdraw().is_err());
        assert!(VersionState::Proposed.edit().is_err());
    }

    #[test]
    fn a_decision_on_a_withdrawn_superseded_or_draft_version_is_refused() {
        for state in [
            VersionState::Withdrawn,
            VersionState::Superseded,
            VersionState::Draft,
        ] {
            assert!(matches!(
                Position::Pending.decide(state, Decision::Accept),
                Err(DecisionRefused::State(_))
            ));
        }
    }

    #[test]
    fn an_objection_can_be_withdrawn_or_turned_into_acceptance_while_proposed() {
        let p = VersionState::Proposed;
        let objected = Position::Pending
            .decide(p, Decision::Object)
            .expect("object");
        assert_eq!(objected, Position::Objected);
        assert_eq!(
            objected.decide(p, Decision::WithdrawObjection),
            Ok(Position::Pending)
        );
        assert_eq!(objected.decide(p, Decision::Accept), Ok(Position::Accepted));
        assert_eq!(
            Position::Pending.decide(p, Decision::WithdrawObjection),
            Err(DecisionRefused::NothingToWithdraw)
        );
        assert_eq!(
            Position::Accepted.decide(p, Decision::Accept),
            Err(DecisionRefused::AlreadyAccepted)
        );
        assert_eq!(
            Position::Accepted.decide(p, Decision::Object),
            Ok(Position::Objected)
        );
    }

    #[test]
    fn an_acceptance_of_the_version_in_force_is_final() {
        let f = VersionState::InForce;
        assert_eq!(
            Position::Pending.decide(f, Decision::Accept),
            Ok(Position::Accepted)
        );
        assert_eq!(
            Position::Accepted.decide(f, Decision::Object),
            Err(DecisionRefused::AlreadyAccepted)
        );
    }

    #[test]
    fn consensus_needs_every_required_organisation_to_accept() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let c = Consensus::from_positions([(a, Position::Accepted), (b, Position::Pending)]);
        assert!(!c.reached());
        let c = Consensus::from_positions([(a, Position::Accepted), (b, Position::Objected)]);
        assert!(!c.reached());
        assert_eq!(c.objected, vec![b]);
        let c = Consensus::from_positions([(a, Position::Accepted), (b, Position::Accepted)]);
        assert!(c.reached());
        assert!(Consensus::from_positions([]).reached());
    }

    #[test]
    fn content_errors_name_the_rule_and_field() {
        let cat = catalogue();
        assert_eq!(content().validate(&cat), Ok(()));
        let mut c = content();
        c.rules.push(c.rules[0].clone());
        assert_eq!(c.validate(&cat).expect_err("refused").field, "rules[1].id");
        let mut c = content();
        c.rules[0].title = " ".into();
        assert_eq!(
            c.validate(&cat).expect_err("refused").field,
            "rules[0].title"
        );
        let mut c = content();
        c.rules[0].controls.push("made-up".into());
        assert_eq!(
            c.validate(&cat).expect_err("refused").field,
            "rules[0].controls[1]"
        );
        let mut c = content();
        c.rules.clear();
        assert_eq!(c.validate(&cat).expect_err("refused").field, "rules");
    }

    #[test]
    fn an_objection_needs_a_reason_and_real_rule_ids() {
        let c = content();
        assert_eq!(
            check_objection(&c, None, &[]).expect_err("refused").field,
            "reason"
        );
        assert_eq!(
            check_objection(&c, Some("  "), &[])
                .expect_err("refused")
                .field,
            "reason"
        );
        assert_eq!(
            check_objection(&c, Some("no"), &[("R9".into(), "x".into())])
                .expect_err("refused")
                .field,
            "rules[0].rule_id"
        );
        assert_eq!(
            check_objection(&c, Some(" too short "), &[("R1".into(), "x".into())]),
            Ok("too short".into())
        );
    }

    #[test]
    fn reminders_fall_before_the_deadline_or_halfway_through_a_short_window() {
        let now = Utc::now();
        let long = reminder_schedule(now, now + Duration::days(14));
        assert_eq!(long.len(), 3);
        assert!(
            long.iter()
                .all(|t| *t > now && *t < now + Duration::days(14))
        );
        let short = reminder_schedule(now, now + Duration::seconds(4));
        assert_eq!(short, vec![now + Duration::seconds(2)]);
        assert!(check_deadline(now, now - Duration::seconds(1)).is_err());
        assert!(check_deadline(now, now + Duration::days(400)).is_err());
    }
}
