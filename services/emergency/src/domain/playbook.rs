//! Playbooks: the concrete measures for emergency conditions, per platform
//! and incident category, and the tasks they become on an incident.

use serde::{Deserialize, Serialize};

use super::{Invalid, valid_name, valid_text};

/// The longest a step may be due after declaration: thirty days.
pub const MAX_DUE_MINUTES: u32 = 30 * 24 * 60;
/// Steps per playbook.
pub const MAX_STEPS: usize = 50;

/// One ordered step of a playbook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaybookStep {
    pub title: String,
    /// The control of the catalogue it belongs to (`incident.isolate`…):
    /// its accountable organisation owns the task.
    pub control: String,
    /// Minutes after the declaration it is due (0: at once).
    pub due_after_minutes: u32,
    #[serde(default)]
    pub description: String,
}

/// Checks a playbook's steps.
pub fn valid_steps(steps: Vec<PlaybookStep>) -> Result<Vec<PlaybookStep>, Invalid> {
    if steps.is_empty() {
        return Err(Invalid::new("steps", "must name at least one step"));
    }
    if steps.len() > MAX_STEPS {
        return Err(Invalid::new(
            "steps",
            format!("must have at most {MAX_STEPS} steps"),
        ));
    }
    steps
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let field = |f: &str| format!("steps[{i}].{f}");
            let control = s.control.trim();
            let control_ok = control.len() <= 100
                && control
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_lowercase())
                && control.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.' || c == '_'
                });
            if !control_ok {
                return Err(Invalid::new(
                    field("control"),
                    "must be a control id: a-z, 0-9, `-`, `_` and `.`, starting with a letter",
                ));
            }
            if s.due_after_minutes > MAX_DUE_MINUTES {
                return Err(Invalid::new(
                    field("due_after_minutes"),
                    format!("must be from 0 (at once) to {MAX_DUE_MINUTES}"),
                ));
            }
            Ok(PlaybookStep {
                title: valid_name(&field("title"), &s.title, 300)?,
                control: control.to_owned(),
                due_after_minutes: s.due_after_minutes,
                description: valid_text(&field("description"), &s.description, 5_000, false)?,
            })
        })
        .collect()
}

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskState {
    Open,
    InProgress,
    Done,
    NotApplicable,
}

/// Why a task change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskRefused {
    #[error("a task cannot move from {from} to {to}")]
    Illegal {
        from: &'static str,
        to: &'static str,
    },
    #[error("marking a task not_applicable needs a reason")]
    ReasonMissing,
}

impl TaskState {
    pub const ALL: [TaskState; 4] = [
        TaskState::Open,
        TaskState::InProgress,
        TaskState::Done,
        TaskState::NotApplicable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Open => "open",
            TaskState::InProgress => "in_progress",
            TaskState::Done => "done",
            TaskState::NotApplicable => "not_applicable",
        }
    }

    pub fn parse(field: &str, value: &str) -> Result<TaskState, Invalid> {
        super::parse_word(field, value, &TaskState::ALL, TaskState::as_str)
    }

    /// Done and not applicable are final.
    pub fn is_finished(self) -> bool {
        matches!(self, TaskState::Done | TaskState::NotApplicable)
    }

    /// `open → in_progress → done`, or `not_applicable` (with a reason)
    /// from either unfinished state; `open → done` is allowed for a step
    /// done at once.
    pub fn move_to(self, to: TaskState, reason: Option<&str>) -> Result<TaskState, TaskRefused> {
        let legal = matches!(
            (self, to),
            (
                TaskState::Open,
                TaskState::InProgress | TaskState::Done | TaskState::NotApplicable
            ) | (
                TaskState::InProgress,
                TaskState::Done | TaskState::NotApplicable
            )
        );
        if !legal {
            return Err(TaskRefused::Illegal {
                from: self.as_str(),
                to: to.as_str(),
            });
        }
        if to == TaskState::NotApplicable && reason.is_none_or(|r| r.trim().is_empty()) {
            return Err(TaskRefused::ReasonMissing);
        }
        Ok(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(control: &str, due: u32) -> PlaybookStep {
        PlaybookStep {
            title: "Isolate the link".into(),
            control: control.into(),
            due_after_minutes: due,
            description: String::new(),
        }
    }

    #[test]
    fn steps_name_a_control_and_a_due_time() {
        assert!(valid_steps(vec![step("incident.isolate", 30)]).is_ok());
        let err = valid_steps(vec![step("incident.isolate", 30), step("Bad Id", 30)])
            .expect_err("bad control");
        assert_eq!(err.field, "steps[1].control");
        assert!(valid_steps(vec![step("a", 0)]).is_ok(), "due at once");
        let err = valid_steps(vec![step("a", MAX_DUE_MINUTES + 1)]).expect_err("due");
        assert_eq!(err.field, "steps[0].due_after_minutes");
        assert_eq!(valid_steps(vec![]).expect_err("empty").field, "steps");
    }

    #[test]
    fn tasks_move_forward_and_need_a_reason_to_be_skipped() {
        use TaskState::*;
        assert_eq!(Open.move_to(InProgress, None), Ok(InProgress));
        assert_eq!(InProgress.move_to(Done, None), Ok(Done));
        assert_eq!(
            Open.move_to(NotApplicable, Some(" ")),
            Err(TaskRefused::ReasonMissing)
        );
        assert_eq!(
            Open.move_to(NotApplicable, Some("no shared credentials")),
            Ok(NotApplicable)
        );
        assert!(Done.move_to(Open, None).is_err());
        assert!(InProgress.move_to(Open, None).is_err());
    }
}
