//! A contact of an organisation: who they are, how to reach them, and when.

use std::str::FromStr as _;

use chrono::{DateTime, Datelike as _, Timelike as _, Utc, Weekday};
use renkei_domain::{Invalid, parse_word, valid_name};
use serde::{Deserialize, Serialize};

/// What a contact does for their organisation; escalation steps target roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactRole {
    Ciso,
    Csirt,
    SystemManager,
    OperatorOnDuty,
    Liaison,
}

impl ContactRole {
    pub const ALL: [ContactRole; 5] = [
        ContactRole::Ciso,
        ContactRole::Csirt,
        ContactRole::SystemManager,
        ContactRole::OperatorOnDuty,
        ContactRole::Liaison,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ContactRole::Ciso => "ciso",
            ContactRole::Csirt => "csirt",
            ContactRole::SystemManager => "system_manager",
            ContactRole::OperatorOnDuty => "operator_on_duty",
            ContactRole::Liaison => "liaison",
        }
    }

    pub fn parse(field: &str, value: &str) -> Result<ContactRole, Invalid> {
        parse_word(field, value, &ContactRole::ALL, ContactRole::as_str)
    }
}

/// When a contact can be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    /// Business hours in the contact's time zone.
    Ordinary,
    /// Any time.
    Emergency,
    Both,
}

impl Availability {
    pub const ALL: [Availability; 3] = [
        Availability::Ordinary,
        Availability::Emergency,
        Availability::Both,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Ordinary => "ordinary",
            Availability::Emergency => "emergency",
            Availability::Both => "both",
        }
    }

    pub fn parse(field: &str, value: &str) -> Result<Availability, Invalid> {
        parse_word(field, value, &Availability::ALL, Availability::as_str)
    }
}

/// Ordinary or emergency conditions: which contacts a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    Ordinary,
    Emergency,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Ordinary => "ordinary",
            Condition::Emergency => "emergency",
        }
    }

    pub fn parse(value: &str) -> Option<Condition> {
        match value {
            "ordinary" => Some(Condition::Ordinary),
            "emergency" => Some(Condition::Emergency),
            _ => None,
        }
    }
}

/// The language a contact reads messages in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    Ja,
    En,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Ja => "ja",
            Language::En => "en",
        }
    }

    pub fn parse(field: &str, value: &str) -> Result<Language, Invalid> {
        parse_word(
            field,
            value,
            &[Language::Ja, Language::En],
            Language::as_str,
        )
    }
}

/// One way of reaching a contact. A new kind of channel is one variant here
/// and one adapter in `crate::channels`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Channel {
    /// A JSON POST signed with HMAC-SHA256 over the timestamp and body.
    Webhook {
        url: String,
        secret: String,
    },
    Email {
        address: String,
    },
}

/// The shortest webhook secret accepted: receivers verify signatures with it.
pub const MIN_SECRET: usize = 8;

impl Channel {
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Webhook { .. } => "webhook",
            Channel::Email { .. } => "email",
        }
    }

    /// Where messages go (the URL or the address); never the secret.
    pub fn address(&self) -> &str {
        match self {
            Channel::Webhook { url, .. } => url,
            Channel::Email { address } => address,
        }
    }

    /// Checks a channel as a client sent it (`field` is its position, such
    /// as `channels[1]`).
    pub fn new(
        field: &str,
        kind: &str,
        url: Option<&str>,
        secret: Option<&str>,
        address: Option<&str>,
    ) -> Result<Channel, Invalid> {
        match kind {
            "webhook" => {
                let url = url
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .ok_or_else(|| Invalid::new(format!("{field}.url"), "is required"))?;
                let parsed = url::Url::parse(url).map_err(|e| {
                    Invalid::new(format!("{field}.url"), format!("is not a URL: {e}"))
                })?;
                if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                    return Err(Invalid::new(
                        format!("{field}.url"),
                        "must be an http:// or https:// URL with a host",
                    ));
                }
                let secret = secret.unwrap_or_default();
                if secret.chars().count() < MIN_SECRET {
                    return Err(Invalid::new(
                        format!("{field}.secret"),
                        format!(
                            "is required, at least {MIN_SECRET} characters: receivers verify the signature with it"
                        ),
                    ));
                }
                Ok(Channel::Webhook {
                    url: parsed.to_string(),
                    secret: secret.to_owned(),
                })
            }
            "email" => {
                let address = address
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| Invalid::new(format!("{field}.address"), "is required"))?;
                lettre::Address::from_str(address).map_err(|e| {
                    Invalid::new(
                        format!("{field}.address"),
                        format!("is not an email address: {e}"),
                    )
                })?;
                Ok(Channel::Email {
                    address: address.to_owned(),
                })
            }
            other => Err(Invalid::new(
                format!("{field}.kind"),
                format!("`{other}` is not one of webhook, email"),
            )),
        }
    }
}

/// A contact, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactDetails {
    pub name: String,
    pub role: ContactRole,
    pub availability: Availability,
    pub channels: Vec<Channel>,
    pub time_zone: chrono_tz::Tz,
    pub language: Language,
}

/// The most channels one contact may have.
pub const MAX_CHANNELS: usize = 8;

pub fn valid_contact_name(value: &str) -> Result<String, Invalid> {
    valid_name("name", value, 200)
}

pub fn valid_channels(channels: Vec<Channel>) -> Result<Vec<Channel>, Invalid> {
    if channels.is_empty() {
        return Err(Invalid::new("channels", "at least one channel is required"));
    }
    if channels.len() > MAX_CHANNELS {
        return Err(Invalid::new(
            "channels",
            format!("at most {MAX_CHANNELS} channels"),
        ));
    }
    Ok(channels)
}

pub fn parse_time_zone(value: &str) -> Result<chrono_tz::Tz, Invalid> {
    value.parse::<chrono_tz::Tz>().map_err(|_| {
        Invalid::new(
            "time_zone",
            format!("`{value}` is not an IANA time zone such as Asia/Tokyo"),
        )
    })
}

/// Business hours: Monday to Friday, 09:00 to 18:00 in the contact's zone.
pub fn in_business_hours(at: DateTime<Utc>, zone: chrono_tz::Tz) -> bool {
    let local = at.with_timezone(&zone);
    !matches!(local.weekday(), Weekday::Sat | Weekday::Sun) && (9..18).contains(&local.hour())
}

/// Whether a contact with `availability` in `zone` is to be told now of a
/// notification under `condition`. Emergencies reach emergency contacts at
/// any time and ordinary ones in their business hours; ordinary notices go
/// to ordinary contacts only (they read them in business hours).
pub fn reachable(
    availability: Availability,
    zone: chrono_tz::Tz,
    condition: Condition,
    now: DateTime<Utc>,
) -> bool {
    match (condition, availability) {
        (_, Availability::Both) => true,
        (Condition::Ordinary, Availability::Ordinary) => true,
        (Condition::Ordinary, Availability::Emergency) => false,
        (Condition::Emergency, Availability::Emergency) => true,
        (Condition::Emergency, Availability::Ordinary) => in_business_hours(now, zone),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    #[test]
    fn a_webhook_needs_an_http_url_and_a_secret() {
        let err = Channel::new(
            "channels[0]",
            "webhook",
            Some("not a url"),
            Some("s3cret-xyz"),
            None,
        )
        .expect_err("refused");
        assert_eq!(err.field, "channels[0].url");
        let err = Channel::new(
            "channels[0]",
            "webhook",
            Some("ftp://x/y"),
            Some("s3cret-xyz"),
            None,
        )
        .expect_err("refused");
        assert_eq!(err.field, "channels[0].url");
        let err = Channel::new("channels[1]", "webhook", Some("http://x/y"), None, None)
            .expect_err("refused");
        assert_eq!(err.field, "channels[1].secret");
        assert!(
            Channel::new(
                "c",
                "webhook",
                Some("https://x.example/hook"),
                Some("s3cret-xyz"),
                None
            )
            .is_ok()
        );
    }

    #[test]
    fn an_email_channel_needs_an_address() {
        let err =
            Channel::new("channels[0]", "email", None, None, Some("nobody")).expect_err("refused");
        assert_eq!(err.field, "channels[0].address");
        assert!(Channel::new("c", "email", None, None, Some("csirt@agency.go.jp")).is_ok());
        let err = Channel::new("channels[2]", "sms", None, None, None).expect_err("refused");
        assert_eq!(err.field, "channels[2].kind");
    }

    #[test]
    fn ordinary_contacts_hear_of_emergencies_only_in_business_hours() {
        let tokyo = chrono_tz::Asia::Tokyo;
        // Wednesday 2026-11-25 10:00 in Tokyo is 01:00 UTC.
        let office = Utc
            .with_ymd_and_hms(2026, 11, 25, 1, 0, 0)
            .single()
            .expect("time");
        // 03:00 in Tokyo.
        let night = Utc
            .with_ymd_and_hms(2026, 11, 24, 18, 0, 0)
            .single()
            .expect("time");
        let e = Condition::Emergency;
        assert!(reachable(Availability::Ordinary, tokyo, e, office));
        assert!(!reachable(Availability::Ordinary, tokyo, e, night));
        assert!(reachable(Availability::Emergency, tokyo, e, night));
        assert!(reachable(Availability::Both, tokyo, e, night));
        assert!(!reachable(
            Availability::Emergency,
            tokyo,
            Condition::Ordinary,
            office
        ));
        // Saturday.
        let saturday = Utc
            .with_ymd_and_hms(2026, 11, 28, 1, 0, 0)
            .single()
            .expect("time");
        assert!(!in_business_hours(saturday, tokyo));
    }
}
