//! Escalation policies: ordered steps of targets, each with a wait before the
//! next, repeated a number of times; and who a step reaches.

use chrono::{DateTime, Utc};
use renkei_domain::Invalid;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::contact::{Availability, Condition, ContactRole, reachable};

/// Who a step tells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// Every contact of the organisation with this role.
    Role { role: ContactRole },
    /// One named contact.
    Contact { contact_id: Uuid },
    /// Every contact who can be reached under the notification's condition
    /// (its emergency contacts in an emergency).
    Available,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub targets: Vec<Target>,
    /// How long to wait for an acknowledgement before the next step.
    pub wait_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub steps: Vec<Step>,
    /// How many times the whole policy runs again after its last step.
    pub repeat: u32,
}

pub const MAX_STEPS: usize = 10;
pub const MAX_TARGETS: usize = 20;
pub const MAX_WAIT_SECONDS: u32 = 7 * 24 * 3600;
pub const MAX_REPEAT: u32 = 10;
/// The default wait of a step: fifteen minutes.
pub const DEFAULT_WAIT_SECONDS: u32 = 15 * 60;

impl Policy {
    /// What an organisation that defined none gets: its emergency contacts,
    /// then its CISO.
    pub fn default_policy() -> Policy {
        Policy {
            steps: vec![
                Step {
                    targets: vec![Target::Available],
                    wait_seconds: DEFAULT_WAIT_SECONDS,
                },
                Step {
                    targets: vec![Target::Role {
                        role: ContactRole::Ciso,
                    }],
                    wait_seconds: DEFAULT_WAIT_SECONDS,
                },
            ],
            repeat: 0,
        }
    }

    /// This policy with a first step to every contact with `role` (a
    /// deadline escalated to the CISO, say), waiting as long as this
    /// policy's first step; an organisation without such a contact skips
    /// it and goes on with its own steps.
    pub fn led_by(&self, role: ContactRole) -> Policy {
        let wait_seconds = self
            .steps
            .first()
            .map_or(DEFAULT_WAIT_SECONDS, |s| s.wait_seconds);
        let mut steps = Vec::with_capacity(self.steps.len() + 1);
        steps.push(Step {
            targets: vec![Target::Role { role }],
            wait_seconds,
        });
        steps.extend(self.steps.iter().cloned());
        Policy {
            steps,
            repeat: self.repeat,
        }
    }

    /// Checks the shape; `contact_exists` says whether a named contact
    /// belongs to the organisation.
    pub fn validate(&self, contact_exists: impl Fn(Uuid) -> bool) -> Result<(), Invalid> {
        if self.steps.is_empty() {
            return Err(Invalid::new("steps", "at least one step is required"));
        }
        if self.steps.len() > MAX_STEPS {
            return Err(Invalid::new("steps", format!("at most {MAX_STEPS} steps")));
        }
        if self.repeat > MAX_REPEAT {
            return Err(Invalid::new("repeat", format!("at most {MAX_REPEAT}")));
        }
        for (i, step) in self.steps.iter().enumerate() {
            if step.targets.is_empty() || step.targets.len() > MAX_TARGETS {
                return Err(Invalid::new(
                    format!("steps[{i}].targets"),
                    format!("between 1 and {MAX_TARGETS} targets"),
                ));
            }
            if !(1..=MAX_WAIT_SECONDS).contains(&step.wait_seconds) {
                return Err(Invalid::new(
                    format!("steps[{i}].wait_seconds"),
                    format!("must be from 1 to {MAX_WAIT_SECONDS}"),
                ));
            }
            for (j, target) in step.targets.iter().enumerate() {
                if let Target::Contact { contact_id } = target
                    && !contact_exists(*contact_id)
                {
                    return Err(Invalid::new(
                        format!("steps[{i}].targets[{j}].contact_id"),
                        "is not a contact of this organisation",
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn step(&self, at: Position) -> Option<&Step> {
        self.steps.get(at.step as usize)
    }

    /// Where escalation goes after `at`: the next step, the first step of
    /// the next round, or nowhere.
    pub fn after(&self, at: Position) -> Option<Position> {
        if (at.step as usize) + 1 < self.steps.len() {
            Some(Position {
                step: at.step + 1,
                round: at.round,
            })
        } else if at.round < self.repeat {
            Some(Position {
                step: 0,
                round: at.round + 1,
            })
        } else {
            None
        }
    }
}

/// Where an organisation's escalation stands (0-based step, 0-based round).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub step: u32,
    pub round: u32,
}

/// A contact as escalation sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: Uuid,
    pub role: ContactRole,
    pub availability: Availability,
    pub time_zone: chrono_tz::Tz,
    /// The system the contact is tied to, when not the whole organisation.
    pub system_id: Option<Uuid>,
}

/// The contacts `step` reaches now: its targets, narrowed to contacts of the
/// whole organisation or of the systems concerned (`systems` empty: all),
/// and to those reachable under `condition`. Each contact once, in the
/// order of `candidates`.
pub fn recipients(
    step: &Step,
    candidates: &[Candidate],
    systems: &[Uuid],
    condition: Condition,
    now: DateTime<Utc>,
) -> Vec<Uuid> {
    candidates
        .iter()
        .filter(|c| {
            step.targets.iter().any(|t| match t {
                Target::Contact { contact_id } => *contact_id == c.id,
                Target::Role { role } => *role == c.role && concerned(c, systems),
                Target::Available => concerned(c, systems),
            })
        })
        .filter(|c| reachable(c.availability, c.time_zone, condition, now))
        .map(|c| c.id)
        .collect()
}

fn concerned(c: &Candidate, systems: &[Uuid]) -> bool {
    match c.system_id {
        None => true,
        Some(s) => systems.is_empty() || systems.contains(&s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(role: ContactRole, availability: Availability, system: Option<Uuid>) -> Candidate {
        Candidate {
            id: Uuid::now_v7(),
            role,
            availability,
            time_zone: chrono_tz::Asia::Tokyo,
            system_id: system,
        }
    }

    #[test]
    fn escalation_walks_the_steps_then_repeats_then_stops() {
        let mut policy = Policy::default_policy();
        policy.repeat = 1;
        let p = |step, round| Position { step, round };
        assert_eq!(policy.after(p(0, 0)), Some(p(1, 0)));
        assert_eq!(policy.after(p(1, 0)), Some(p(0, 1)));
        assert_eq!(policy.after(p(1, 1)), None);
    }

    #[test]
    fn the_default_policy_reaches_emergency_contacts_then_the_ciso() {
        let policy = Policy::default_policy();
        let csirt = candidate(ContactRole::Csirt, Availability::Emergency, None);
        let ciso = candidate(ContactRole::Ciso, Availability::Ordinary, None);
        let night = chrono::DateTime::parse_from_rfc3339("2026-11-25T03:00:00+09:00")
            .expect("time")
            .with_timezone(&Utc);
        let all = [csirt.clone(), ciso.clone()];
        let first = recipients(&policy.steps[0], &all, &[], Condition::Emergency, night);
        assert_eq!(first, vec![csirt.id]);
        let noon = night + chrono::Duration::hours(9);
        let second = recipients(&policy.steps[1], &all, &[], Condition::Emergency, noon);
        assert_eq!(second, vec![ciso.id]);
    }

    #[test]
    fn a_policy_led_by_the_ciso_tells_the_ciso_first_then_goes_on_as_before() {
        let own = Policy::default_policy();
        let led = own.led_by(ContactRole::Ciso);
        assert_eq!(led.steps.len(), 3);
        assert_eq!(&led.steps[1..], &own.steps[..]);
        assert_eq!(led.steps[0].wait_seconds, own.steps[0].wait_seconds);
        let csirt = candidate(ContactRole::Csirt, Availability::Both, None);
        let ciso = candidate(ContactRole::Ciso, Availability::Both, None);
        let all = [csirt.clone(), ciso.clone()];
        let now = Utc::now();
        assert_eq!(
            recipients(&led.steps[0], &all, &[], Condition::Emergency, now),
            vec![ciso.id]
        );
        // Nobody with the role: the step has nobody, the next one does.
        assert!(
            recipients(
                &led.steps[0],
                std::slice::from_ref(&csirt),
                &[],
                Condition::Emergency,
                now
            )
            .is_empty()
        );
        assert_eq!(
            recipients(
                &led.steps[1],
                std::slice::from_ref(&csirt),
                &[],
                Condition::Emergency,
                now
            ),
            vec![csirt.id]
        );
    }

    #[test]
    fn contacts_of_other_systems_are_not_told() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let of_a = candidate(ContactRole::SystemManager, Availability::Both, Some(a));
        let of_b = candidate(ContactRole::SystemManager, Availability::Both, Some(b));
        let step = Step {
            targets: vec![Target::Role {
                role: ContactRole::SystemManager,
            }],
            wait_seconds: 60,
        };
        let got = recipients(
            &step,
            &[of_a.clone(), of_b],
            &[a],
            Condition::Ordinary,
            Utc::now(),
        );
        assert_eq!(got, vec![of_a.id]);
    }

    #[test]
    fn a_policy_naming_a_stranger_is_refused_with_its_place() {
        let policy = Policy {
            steps: vec![Step {
                targets: vec![Target::Contact {
                    contact_id: Uuid::now_v7(),
                }],
                wait_seconds: 60,
            }],
            repeat: 0,
        };
        let err = policy.validate(|_| false).expect_err("refused");
        assert_eq!(err.field, "steps[0].targets[0].contact_id");
        let mut zero = Policy::default_policy();
        zero.steps[1].wait_seconds = 0;
        assert_eq!(
            zero.validate(|_| true).expect_err("refused").field,
            "steps[1].wait_seconds"
        );
    }
}
