//! The registry's domain: organisations, systems and their lifecycle, links
//! and the incident categories they carry, and the graph that answers "where
//! can this incident spread?". No HTTP, database or NATS types here.

pub mod graph;
pub mod link;
pub mod organization;
pub mod system;

pub use graph::{GraphIndex, Reached, SystemNode};
pub use link::{Category, CategorySet, LinkKind};
pub use organization::OrgKind;
pub use system::{Lifecycle, Ratings, SystemKind};

/// A business rule broken by some input: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: &'static str,
    pub reason: String,
}

impl Invalid {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Invalid {
        Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// Checks a required human-readable name.
pub fn valid_name(field: &'static str, value: &str, max: usize) -> Result<String, Invalid> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    if trimmed.chars().count() > max {
        return Err(Invalid::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Parses one of a fixed set of snake_case words.
pub(crate) fn parse_word<T: Copy>(
    field: &'static str,
    value: &str,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Result<T, Invalid> {
    all.iter()
        .copied()
        .find(|v| name(*v) == value)
        .ok_or_else(|| {
            let allowed: Vec<&str> = all.iter().map(|v| name(*v)).collect();
            Invalid::new(
                field,
                format!("`{value}` is not one of {}", allowed.join(", ")),
            )
        })
}
