//! The decoders every message off the bus goes through — the envelope
//! (`serde_json::from_slice::<Envelope>`, what consumers run on each
//! JetStream message), `Envelope::decode::<E>()` for every event of the
//! catalogue, and every query a responder reads — against arbitrary bytes,
//! arbitrary JSON and mangled envelopes: an answer (Ok or an error), never a
//! panic. A valid envelope round-trips exactly, and `decode` refuses another
//! event type or a newer schema version.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use renkei_bus::contracts::{contacts, demarcation, emergency, registry};
use renkei_bus::{Envelope, Event};
use renkei_testkit::bodies::{any_json, hostile_fragment, odd_string};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Decodes `envelope` as every event of the catalogue. Only a panic fails.
fn decode_as_every_event(envelope: &Envelope) {
    macro_rules! each {
        ($($event:ty),* $(,)?) => {
            $( let _ = envelope.decode::<$event>(); )*
        };
    }
    each!(
        registry::OrganizationRegistered,
        registry::SystemRegistered,
        registry::SystemUpdated,
        registry::SystemLifecycleChanged,
        registry::SystemActivated,
        registry::LinkAdded,
        registry::LinkRemoved,
        demarcation::RulesAccepted,
        demarcation::RulesProposed,
        demarcation::DecisionRecorded,
        demarcation::RulesInForce,
        demarcation::RulesSuperseded,
        demarcation::RulesWithdrawn,
        demarcation::AcceptanceRequested,
        demarcation::RulesReminded,
        demarcation::MatrixUpdated,
        demarcation::MatrixGapFound,
        contacts::NotificationDelivered,
        contacts::NotificationAcknowledged,
        contacts::NotificationEscalated,
        contacts::NotificationExhausted,
        contacts::DrillStarted,
        emergency::IncidentSpreadRisk,
        emergency::IncidentStatusChanged,
        emergency::MessagePosted,
        emergency::AdvisoryIssued,
        emergency::DeadlineMissed,
        emergency::ReportFiled,
    );
}

/// Reads `bytes` the way a query responder does, as every query.
fn decode_as_every_query(bytes: &[u8]) {
    macro_rules! each {
        ($($query:ty),* $(,)?) => {
            $( let _ = serde_json::from_slice::<$query>(bytes); )*
        };
    }
    each!(
        registry::BlastRadiusQuery,
        registry::SystemQuery,
        registry::PlatformSystemsQuery,
        demarcation::ResponsibilityQuery,
    );
}

/// Reads `bytes` as a consumer does, then as every event and query.
fn consume(bytes: &[u8]) {
    if let Ok(envelope) = serde_json::from_slice::<Envelope>(bytes) {
        decode_as_every_event(&envelope);
        // A decoded envelope writes out and reads back the same.
        let again = serde_json::to_vec(&envelope).expect("an envelope serialises");
        let back: Envelope = serde_json::from_slice(&again).expect("and reads back");
        assert_eq!(back.id, envelope.id);
        assert_eq!(back.event_type, envelope.event_type);
    }
    decode_as_every_query(bytes);
}

/// A typed event as a producer would send it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Probed {
    name: String,
    count: i64,
    ids: Vec<Uuid>,
    note: Option<String>,
}

impl Event for Probed {
    const SUBJECT: &'static str = "test.probe.probed";
    const SCHEMA_VERSION: u32 = 3;
}

/// The member names of an envelope, as it writes them.
fn fields() -> Vec<String> {
    let probed = Probed {
        name: String::new(),
        count: 0,
        ids: Vec::new(),
        note: None,
    };
    let envelope = Envelope::new("t", None, &probed).expect("serialises");
    match serde_json::to_value(envelope).expect("an envelope is JSON") {
        serde_json::Value::Object(members) => members.keys().cloned().collect(),
        other => panic!("an envelope is a JSON object, not {other}"),
    }
}

fn probed() -> impl Strategy<Value = Probed> {
    (
        odd_string(),
        any::<i64>(),
        proptest::collection::vec(any::<u128>().prop_map(Uuid::from_u128), 0..4),
        proptest::option::of(odd_string()),
    )
        .prop_map(|(name, count, ids, note)| Probed {
            name,
            count,
            ids,
            note,
        })
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..253_402_300_799, 0u32..1_000_000_000)
        .prop_map(|(secs, nanos)| DateTime::from_timestamp(secs, nanos).unwrap_or_default())
}

/// An envelope as the outbox writes it, with any id, time and organisation.
fn envelope() -> impl Strategy<Value = (Envelope, Probed)> {
    (
        probed(),
        any::<u128>(),
        instant(),
        odd_string(),
        proptest::option::of(any::<u128>()),
    )
        .prop_map(|(event, id, at, source, org)| {
            let mut envelope =
                Envelope::new(&source, org.map(Uuid::from_u128), &event).expect("serialises");
            envelope.id = Uuid::from_u128(id);
            envelope.occurred_at = at;
            (envelope, event)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_decoded_or_refused_without_a_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..1024),
    ) {
        consume(&bytes);
    }

    #[test]
    fn arbitrary_json_is_decoded_or_refused_without_a_panic(value in any_json()) {
        consume(value.to_string().as_bytes());
    }

    #[test]
    fn envelope_fields_with_anything_in_them_are_decoded_or_refused_without_a_panic(
        fields in proptest::collection::vec(
            (
                prop_oneof![4 => proptest::sample::select(fields()), 1 => odd_string()],
                hostile_fragment(),
            ),
            0..12,
        ),
    ) {
        let members: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).expect("a string is JSON")))
            .collect();
        consume(format!("{{{}}}", members.join(",")).as_bytes());
    }

    #[test]
    fn a_valid_envelope_with_any_payload_is_decoded_or_refused_without_a_panic(
        (envelope, _) in envelope(),
        event_type in prop_oneof![
            Just(None),
            proptest::sample::select(vec![
                registry::SystemRegistered::SUBJECT,
                demarcation::RulesAccepted::SUBJECT,
                contacts::NotificationAcknowledged::SUBJECT,
                emergency::IncidentSpreadRisk::SUBJECT,
            ]).prop_map(Some),
        ],
        payload in any_json(),
        schema_version in any::<u32>(),
    ) {
        let mut envelope = envelope;
        if let Some(t) = event_type {
            envelope.event_type = t.to_owned();
            envelope.subject = t.to_owned();
        }
        envelope.payload = payload;
        envelope.schema_version = schema_version;
        let bytes = serde_json::to_vec(&envelope).expect("serialises");
        consume(&bytes);
    }

    #[test]
    fn a_mangled_envelope_is_decoded_or_refused_without_a_panic(
        (envelope, _) in envelope(),
        cuts in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut bytes = serde_json::to_vec(&envelope).expect("serialises");
        for (at, byte, how) in cuts {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            match how {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                _ => bytes.insert(i, byte),
            }
        }
        consume(&bytes);
    }

    #[test]
    fn a_valid_envelope_round_trips_with_its_payload((envelope, event) in envelope()) {
        let bytes = serde_json::to_vec(&envelope).expect("serialises");
        let back: Envelope = serde_json::from_slice(&bytes).expect("decodes");
        prop_assert_eq!(&back, &envelope);
        prop_assert!(back.is::<Probed>());
        prop_assert_eq!(back.decode::<Probed>().expect("carries a Probed"), event);
    }

    #[test]
    fn decode_refuses_another_event_type(
        (envelope, _) in envelope(),
        other in odd_string().prop_filter("another type", |t| t != Probed::SUBJECT),
    ) {
        let mut envelope = envelope;
        envelope.event_type = other;
        let refused = envelope.decode::<Probed>().expect_err("another type is refused");
        prop_assert!(refused.reason.contains(Probed::SUBJECT), "{}", refused);
        prop_assert_eq!(refused.id, envelope.id);
    }

    #[test]
    fn decode_refuses_a_newer_schema_version_and_reads_older_ones(
        (envelope, event) in envelope(),
        version in any::<u32>(),
    ) {
        let mut envelope = envelope;
        envelope.schema_version = version;
        let decoded = envelope.decode::<Probed>();
        if version > Probed::SCHEMA_VERSION {
            let refused = decoded.expect_err("a newer version is refused");
            prop_assert!(refused.reason.contains("newer"), "{}", refused);
        } else {
            prop_assert_eq!(decoded.expect("an older or equal version is read"), event);
        }
    }

}

#[test]
fn nesting_far_deeper_than_the_parser_allows_is_refused_not_overflowed() {
    for depth in [129, 10_000, 200_000] {
        let payload = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let text = format!(
            r#"{{"id":"{}","type":"{}","subject":"{}","occurred_at":"2026-01-01T00:00:00Z","source":"t","organization_id":null,"schema_version":1,"payload":{payload}}}"#,
            Uuid::nil(),
            Probed::SUBJECT,
            Probed::SUBJECT
        );
        assert!(
            serde_json::from_slice::<Envelope>(text.as_bytes()).is_err(),
            "depth {depth}"
        );
        consume(text.as_bytes());
    }
}
