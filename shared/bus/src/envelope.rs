//! The event envelope: what every event on the bus looks like.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A typed event payload with its place in the catalogue.
pub trait Event: Serialize + DeserializeOwned {
    /// The subject (and type) from [`crate::subjects`].
    const SUBJECT: &'static str;
    /// Bumped when the payload changes incompatibly; consumers check it.
    const SCHEMA_VERSION: u32 = 1;
}

/// One event. Trace context travels beside it, in message headers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// UUIDv7; also the `Nats-Msg-Id`, so JetStream drops re-publications and
    /// consumers recognise redeliveries.
    pub id: Uuid,
    /// The event type, `<service>.<entity>.<past_tense_verb>`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The NATS subject it is published on.
    pub subject: String,
    pub occurred_at: DateTime<Utc>,
    /// The producing service.
    pub source: String,
    /// The organisation the event concerns, when there is one (for routing
    /// and authorisation downstream).
    pub organization_id: Option<Uuid>,
    pub schema_version: u32,
    pub payload: serde_json::Value,
}

/// An envelope whose payload does not match the expected event.
#[derive(Debug, thiserror::Error)]
#[error("event {id} ({event_type}) does not carry the expected payload: {reason}")]
pub struct PayloadMismatch {
    pub id: Uuid,
    pub event_type: String,
    pub reason: String,
}

impl Envelope {
    /// Wraps `event` from `source`, about `organization_id`.
    pub fn new<E: Event>(
        source: &str,
        organization_id: Option<Uuid>,
        event: &E,
    ) -> Result<Envelope, serde_json::Error> {
        Ok(Envelope {
            id: Uuid::now_v7(),
            event_type: E::SUBJECT.to_owned(),
            subject: E::SUBJECT.to_owned(),
            occurred_at: Utc::now(),
            source: source.to_owned(),
            organization_id,
            schema_version: E::SCHEMA_VERSION,
            payload: serde_json::to_value(event)?,
        })
    }

    /// Whether this envelope carries an `E`.
    pub fn is<E: Event>(&self) -> bool {
        self.event_type == E::SUBJECT
    }

    /// The typed payload, if this envelope carries an `E` of a known version.
    pub fn decode<E: Event>(&self) -> Result<E, PayloadMismatch> {
        let mismatch = |reason: String| PayloadMismatch {
            id: self.id,
            event_type: self.event_type.clone(),
            reason,
        };
        if self.event_type != E::SUBJECT {
            return Err(mismatch(format!("expected {}", E::SUBJECT)));
        }
        if self.schema_version > E::SCHEMA_VERSION {
            return Err(mismatch(format!(
                "schema version {} is newer than {}",
                self.schema_version,
                E::SCHEMA_VERSION
            )));
        }
        serde_json::from_value(self.payload.clone()).map_err(|e| mismatch(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Pinged {
        n: u32,
    }
    impl Event for Pinged {
        const SUBJECT: &'static str = "test.ping.pinged";
    }

    #[test]
    fn envelope_json_has_the_documented_fields() {
        let env = Envelope::new("test", None, &Pinged { n: 3 }).expect("serialise");
        let json = serde_json::to_value(&env).expect("json");
        for key in [
            "id",
            "type",
            "subject",
            "occurred_at",
            "source",
            "organization_id",
            "schema_version",
            "payload",
        ] {
            assert!(json.get(key).is_some(), "missing {key} in {json}");
        }
        assert_eq!(json["type"], "test.ping.pinged");
        assert_eq!(env.decode::<Pinged>().expect("decode"), Pinged { n: 3 });
    }

    #[test]
    fn a_newer_schema_version_is_refused() {
        let mut env = Envelope::new("test", None, &Pinged { n: 3 }).expect("serialise");
        env.schema_version = 2;
        assert!(env.decode::<Pinged>().is_err());
    }
}
