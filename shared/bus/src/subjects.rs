//! Every subject, stream and query name on the bus. Code never spells a
//! subject inline; it names a constant here.
//!
//! Events: `<service>.<entity>.<past_tense_verb>`, captured by the producing
//! service's stream (`<service>.>`). Queries: `query.<service>.<question>`,
//! outside every stream so request/reply is never captured by JetStream.

/// A JetStream stream and the subjects it captures.
#[derive(Debug, Clone, Copy)]
pub struct StreamSpec {
    pub name: &'static str,
    pub subjects: &'static [&'static str],
    /// How long a message is kept.
    pub max_age_days: u64,
}

/// How long events are kept: consumers that were down catch up within it.
const EVENT_DAYS: u64 = 30;

pub const REGISTRY_STREAM: StreamSpec = StreamSpec {
    name: "REGISTRY",
    subjects: &["registry.>"],
    max_age_days: EVENT_DAYS,
};
pub const DEMARCATION_STREAM: StreamSpec = StreamSpec {
    name: "DEMARCATION",
    subjects: &["demarcation.>"],
    max_age_days: EVENT_DAYS,
};

pub const CONTACTS_STREAM: StreamSpec = StreamSpec {
    name: "CONTACTS",
    subjects: &["contacts.>"],
    max_age_days: EVENT_DAYS,
};
pub const EMERGENCY_STREAM: StreamSpec = StreamSpec {
    name: "EMERGENCY",
    subjects: &["emergency.>"],
    max_age_days: EVENT_DAYS,
};

/// The signed heads of every service's audit chain
/// (`audit.head.<service>`), kept for more than a year so that every
/// organisation can check the record long after the fact.
pub const AUDIT_STREAM: StreamSpec = StreamSpec {
    name: "AUDIT",
    subjects: &["audit.head.>"],
    max_age_days: 400,
};

/// Every stream of the product.
pub const STREAMS: &[StreamSpec] = &[
    REGISTRY_STREAM,
    DEMARCATION_STREAM,
    CONTACTS_STREAM,
    EMERGENCY_STREAM,
    AUDIT_STREAM,
];

// registry
pub const REGISTRY_ORGANIZATION_REGISTERED: &str = "registry.organization.registered";
pub const REGISTRY_ORGANIZATION_UPDATED: &str = "registry.organization.updated";
pub const REGISTRY_SYSTEM_REGISTERED: &str = "registry.system.registered";
pub const REGISTRY_SYSTEM_UPDATED: &str = "registry.system.updated";
pub const REGISTRY_SYSTEM_LIFECYCLE_CHANGED: &str = "registry.system.lifecycle_changed";
pub const REGISTRY_SYSTEM_ACTIVATED: &str = "registry.system.activated";
pub const REGISTRY_LINK_ADDED: &str = "registry.link.added";
pub const REGISTRY_LINK_REMOVED: &str = "registry.link.removed";

// demarcation
pub const DEMARCATION_RULES_PROPOSED: &str = "demarcation.rules.proposed";
pub const DEMARCATION_DECISION_RECORDED: &str = "demarcation.decision.recorded";
pub const DEMARCATION_RULES_IN_FORCE: &str = "demarcation.rules.in_force";
pub const DEMARCATION_RULES_SUPERSEDED: &str = "demarcation.rules.superseded";
pub const DEMARCATION_RULES_WITHDRAWN: &str = "demarcation.rules.withdrawn";
pub const DEMARCATION_RULES_ACCEPTED: &str = "demarcation.rules.accepted";
pub const DEMARCATION_RULES_ACCEPTANCE_REQUESTED: &str = "demarcation.rules.acceptance_requested";
pub const DEMARCATION_RULES_REMINDED: &str = "demarcation.rules.reminded";
pub const DEMARCATION_MATRIX_UPDATED: &str = "demarcation.matrix.updated";
pub const DEMARCATION_MATRIX_GAP_FOUND: &str = "demarcation.matrix.gap_found";

// contacts
pub const CONTACTS_NOTIFICATION_DELIVERED: &str = "contacts.notification.delivered";
pub const CONTACTS_NOTIFICATION_ACKNOWLEDGED: &str = "contacts.notification.acknowledged";
pub const CONTACTS_NOTIFICATION_ESCALATED: &str = "contacts.notification.escalated";
pub const CONTACTS_NOTIFICATION_EXHAUSTED: &str = "contacts.notification.exhausted";
pub const CONTACTS_DRILL_STARTED: &str = "contacts.drill.started";

// emergency
pub const EMERGENCY_INCIDENT_SPREAD_RISK: &str = "emergency.incident.spread_risk";
pub const EMERGENCY_INCIDENT_STATUS_CHANGED: &str = "emergency.incident.status_changed";
/// The type of coordination messages; each is published on its incident's
/// own subject, [`incident_messages`].
pub const EMERGENCY_MESSAGE_POSTED: &str = "emergency.message.posted";
pub const EMERGENCY_ADVISORY_ISSUED: &str = "emergency.advisory.issued";
pub const EMERGENCY_DEADLINE_MISSED: &str = "emergency.deadline.missed";
pub const EMERGENCY_REPORT_FILED: &str = "emergency.report.filed";

/// The subject of one incident's coordination messages
/// (`emergency.messages.<incident id>`), in the EMERGENCY stream, so that an
/// organisation's tooling can subscribe to one incident.
pub fn incident_messages(incident_id: uuid::Uuid) -> String {
    format!("emergency.messages.{incident_id}")
}

// audit
/// The services that keep an audit chain, each answering its own
/// [`audit_query`] and publishing its own [`audit_head`].
pub const AUDITED_SERVICES: &[&str] = &["registry", "demarcation", "contacts", "emergency"];

/// The subject a service publishes its signed audit chain head on
/// (`audit.head.<service>`), captured by [`AUDIT_STREAM`].
pub fn audit_head(service: &str) -> String {
    format!("audit.head.{service}")
}

pub const QUERY_REGISTRY_AUDIT: &str = "query.registry.audit";
pub const QUERY_DEMARCATION_AUDIT: &str = "query.demarcation.audit";
pub const QUERY_CONTACTS_AUDIT: &str = "query.contacts.audit";
pub const QUERY_EMERGENCY_AUDIT: &str = "query.emergency.audit";

/// The query that reads `service`'s audit log (`query.<service>.audit`).
pub fn audit_query(service: &str) -> Option<&'static str> {
    match service {
        "registry" => Some(QUERY_REGISTRY_AUDIT),
        "demarcation" => Some(QUERY_DEMARCATION_AUDIT),
        "contacts" => Some(QUERY_CONTACTS_AUDIT),
        "emergency" => Some(QUERY_EMERGENCY_AUDIT),
        _ => None,
    }
}

// queries
pub const QUERY_REGISTRY_BLAST_RADIUS: &str = "query.registry.blast_radius";
pub const QUERY_REGISTRY_SYSTEM: &str = "query.registry.system";
pub const QUERY_REGISTRY_PLATFORM_SYSTEMS: &str = "query.registry.platform_systems";
pub const QUERY_DEMARCATION_RESPONSIBILITY: &str = "query.demarcation.responsibility";

/// Every query subject.
pub const QUERY_SUBJECTS: &[&str] = &[
    QUERY_REGISTRY_BLAST_RADIUS,
    QUERY_REGISTRY_SYSTEM,
    QUERY_REGISTRY_PLATFORM_SYSTEMS,
    QUERY_DEMARCATION_RESPONSIBILITY,
    QUERY_REGISTRY_AUDIT,
    QUERY_DEMARCATION_AUDIT,
    QUERY_CONTACTS_AUDIT,
    QUERY_EMERGENCY_AUDIT,
];

/// Every event subject, for documentation and tests.
pub const EVENT_SUBJECTS: &[&str] = &[
    REGISTRY_ORGANIZATION_REGISTERED,
    REGISTRY_ORGANIZATION_UPDATED,
    REGISTRY_SYSTEM_REGISTERED,
    REGISTRY_SYSTEM_UPDATED,
    REGISTRY_SYSTEM_LIFECYCLE_CHANGED,
    REGISTRY_SYSTEM_ACTIVATED,
    REGISTRY_LINK_ADDED,
    REGISTRY_LINK_REMOVED,
    DEMARCATION_RULES_PROPOSED,
    DEMARCATION_DECISION_RECORDED,
    DEMARCATION_RULES_IN_FORCE,
    DEMARCATION_RULES_SUPERSEDED,
    DEMARCATION_RULES_WITHDRAWN,
    DEMARCATION_RULES_ACCEPTED,
    DEMARCATION_RULES_ACCEPTANCE_REQUESTED,
    DEMARCATION_RULES_REMINDED,
    DEMARCATION_MATRIX_UPDATED,
    DEMARCATION_MATRIX_GAP_FOUND,
    CONTACTS_NOTIFICATION_DELIVERED,
    CONTACTS_NOTIFICATION_ACKNOWLEDGED,
    CONTACTS_NOTIFICATION_ESCALATED,
    CONTACTS_NOTIFICATION_EXHAUSTED,
    CONTACTS_DRILL_STARTED,
    EMERGENCY_INCIDENT_SPREAD_RISK,
    EMERGENCY_INCIDENT_STATUS_CHANGED,
    EMERGENCY_MESSAGE_POSTED,
    EMERGENCY_ADVISORY_ISSUED,
    EMERGENCY_DEADLINE_MISSED,
    EMERGENCY_REPORT_FILED,
];

/// The stream that captures `subject`, if any.
pub fn stream_for(subject: &str) -> Option<&'static StreamSpec> {
    STREAMS.iter().find(|s| {
        s.subjects
            .iter()
            .any(|p| subject.starts_with(p.trim_end_matches('>')))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_subject_has_three_tokens_and_a_stream() {
        for subject in EVENT_SUBJECTS {
            assert_eq!(subject.split('.').count(), 3, "{subject}");
            assert!(
                stream_for(subject).is_some(),
                "{subject} is captured by no stream"
            );
        }
    }

    #[test]
    fn every_audited_service_has_its_head_subject_in_the_audit_stream_and_its_query() {
        for service in AUDITED_SERVICES {
            let head = audit_head(service);
            assert_eq!(stream_for(&head).map(|s| s.name), Some("AUDIT"), "{head}");
            let query = audit_query(service).expect("a query per audited service");
            assert_eq!(query, format!("query.{service}.audit"));
            assert!(QUERY_SUBJECTS.contains(&query), "{query}");
        }
        assert_eq!(audit_query("nobody"), None);
        const { assert!(AUDIT_STREAM.max_age_days > 365) };
    }

    #[test]
    fn queries_are_never_captured_by_a_stream() {
        for subject in QUERY_SUBJECTS {
            assert!(stream_for(subject).is_none(), "{subject}");
            assert!(subject.starts_with("query."), "{subject}");
        }
    }
}
