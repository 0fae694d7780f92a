//! The post-incident review that closing requires, and its
//! recurrence-prevention actions (tracked after closing too).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Invalid, valid_name, valid_text};

/// One recurrence-prevention action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewAction {
    pub text: String,
    pub owner_org_id: Uuid,
    pub due_on: NaiveDate,
    /// `open` or `done`.
    #[serde(default = "open")]
    pub state: String,
}

fn open() -> String {
    "open".to_owned()
}

/// The review: causes, actions, lessons for the common rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Review {
    pub causes: String,
    pub actions: Vec<ReviewAction>,
    /// What the common rules should learn from it (may be empty).
    #[serde(default)]
    pub lessons: String,
}

impl Review {
    /// Checks a review; `participants` are the organisations that may own
    /// an action.
    pub fn valid(self, participants: &[Uuid]) -> Result<Review, Invalid> {
        let causes = valid_text("causes", &self.causes, 20_000, true)?;
        let lessons = valid_text("lessons", &self.lessons, 20_000, false)?;
        if self.actions.len() > 100 {
            return Err(Invalid::new("actions", "must have at most 100 actions"));
        }
        let actions = self
            .actions
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                if !participants.contains(&a.owner_org_id) {
                    return Err(Invalid::new(
                        format!("actions[{i}].owner_org_id"),
                        "is not a participant of this incident",
                    ));
                }
                if !matches!(a.state.as_str(), "open" | "done") {
                    return Err(Invalid::new(
                        format!("actions[{i}].state"),
                        "must be open or done",
                    ));
                }
                Ok(ReviewAction {
                    text: valid_name(&format!("actions[{i}].text"), &a.text, 2_000)?,
                    ..a
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Review {
            causes,
            actions,
            lessons,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_review_names_causes_and_actions_owned_by_participants() {
        let org = Uuid::now_v7();
        let action = ReviewAction {
            text: "Rotate shared credentials quarterly".into(),
            owner_org_id: org,
            due_on: NaiveDate::from_ymd_opt(2027, 1, 31).expect("date"),
            state: "open".into(),
        };
        let review = Review {
            causes: "Phishing mail opened on a shared terminal".into(),
            actions: vec![action.clone()],
            lessons: String::new(),
        };
        assert!(review.clone().valid(&[org]).is_ok());
        let err = review.clone().valid(&[]).expect_err("owner");
        assert_eq!(err.field, "actions[0].owner_org_id");
        let err = Review {
            causes: " ".into(),
            ..review
        }
        .valid(&[org])
        .expect_err("causes");
        assert_eq!(err.field, "causes");
    }
}
