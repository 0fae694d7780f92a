//! What every service's domain shares: the error for a broken input rule
//! (naming the field at fault) and the checks every service repeats. Free of
//! HTTP, database and NATS types, like the domains that use it.

/// A business rule broken by some input: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    /// The input field at fault, as the client spelled it (`rules[2].title`).
    pub field: String,
    pub reason: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Invalid {
        Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Free text of at most `max` characters (line breaks and tabs allowed, no
/// other control characters), trimmed; empty when `required` is false.
pub fn valid_text(field: &str, value: &str, max: usize, required: bool) -> Result<String, Invalid> {
    let trimmed = value.trim();
    if required && trimmed.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(Invalid::new(field, "must not contain control characters"));
    }
    if trimmed.chars().count() > max {
        return Err(Invalid::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Incident categories, shared with the emergency service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Malware,
    UnauthorizedAccess,
    DataLeak,
    DenialOfService,
    Outage,
    Other,
}

impl Category {
    pub const ALL: [Category; 6] = [
        Category::Malware,
        Category::UnauthorizedAccess,
        Category::DataLeak,
        Category::DenialOfService,
        Category::Outage,
        Category::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Malware => "malware",
            Category::UnauthorizedAccess => "unauthorized_access",
            Category::DataLeak => "data_leak",
            Category::DenialOfService => "denial_of_service",
            Category::Outage => "outage",
            Category::Other => "other",
        }
    }

    pub fn parse(field: &'static str, value: &str) -> Result<Category, Invalid> {
        parse_word(field, value, &Category::ALL, Category::as_str)
    }

    /// Its bit in a set of categories (a link's `propagates` mask).
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Checks a required human-readable text of at most `max` characters and
/// returns it trimmed.
pub fn valid_name(field: &str, value: &str, max: usize) -> Result<String, Invalid> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    // Control characters (NUL above all, which PostgreSQL refuses in text)
    // belong in no name; line breaks neither.
    if trimmed.chars().any(char::is_control) {
        return Err(Invalid::new(field, "must not contain control characters"));
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
pub fn parse_word<T: Copy>(
    field: &str,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blank_name_is_refused_and_a_long_one_too() {
        assert_eq!(valid_name("name", "  x ", 5), Ok("x".to_owned()));
        assert_eq!(
            valid_name("name", "   ", 5).expect_err("refused").field,
            "name"
        );
        assert!(valid_name("name", "日本語の名前です", 5).is_err());
        assert!(valid_name("name", "a\u{0}b", 5).is_err());
    }

    #[test]
    fn an_unknown_word_lists_the_allowed_ones() {
        let err = parse_word("kind", "x", &[1, 2], |v| if v == 1 { "one" } else { "two" })
            .expect_err("refused");
        assert_eq!(err.field, "kind");
        assert!(err.reason.contains("one, two"), "{}", err.reason);
    }
}
