//! Prometheus metrics of every Renkei process.
//!
//! Code records through the [`metrics`] facade (`metrics::counter!`…) under
//! the names below; one process-wide recorder keeps them and [`render`]
//! writes the Prometheus text format that `/metrics` serves. Durations are
//! true Prometheus histograms (`_bucket`, `_sum`, `_count`), so p50 and p99
//! can be aggregated across replicas.
//!
//! The names are the contract with `deploy/observability` (dashboards and
//! alert rules): a test scrapes a running product and checks that every
//! metric they query is served.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub use metrics::{counter, gauge, histogram};

/// HTTP request latency by `service`, `method`, `route` (the pattern, never
/// the path) and `status`.
pub const HTTP_REQUEST_DURATION: &str = "renkei_http_request_duration_seconds";
/// Events staged and not yet published, by `service`.
pub const OUTBOX_BACKLOG: &str = "renkei_outbox_backlog";
/// Age of the oldest unpublished event, by `service` (0 when none).
pub const OUTBOX_OLDEST_AGE: &str = "renkei_outbox_oldest_age_seconds";
/// Time from an event's commit to its publish acknowledged by JetStream.
pub const OUTBOX_RELAY_LAG: &str = "renkei_outbox_relay_lag_seconds";
/// Messages a durable consumer has yet to receive, by `service`, `consumer`.
pub const CONSUMER_PENDING: &str = "renkei_consumer_pending";
/// Deliveries received more than once, by `service`, `consumer`.
pub const CONSUMER_REDELIVERIES: &str = "renkei_consumer_redeliveries_total";
/// Deliveries by `service`, `consumer` and `outcome` (`handled`,
/// `duplicate`, `rejected`, `retry`).
pub const EVENTS_HANDLED: &str = "renkei_events_handled_total";
/// Notifications by `state` (contacts).
pub const NOTIFICATIONS: &str = "renkei_notifications";
/// Delivery attempts by `organization_id`, `channel` and `outcome`
/// (`delivered`, `retry`, `failed`).
pub const NOTIFICATIONS_DELIVERED: &str = "renkei_notifications_delivered_total";
/// Organisations' acknowledgements, by `organization_id`.
pub const NOTIFICATIONS_ACKNOWLEDGED: &str = "renkei_notifications_acknowledged_total";
/// Escalation steps entered because nobody acknowledged in time.
pub const ESCALATIONS: &str = "renkei_escalations_total";
/// From an incident's declaration to an affected organisation's first
/// delivery of its spread alert.
pub const INCIDENT_FIRST_DELIVERY: &str = "renkei_incident_first_delivery_seconds";
/// From an incident's declaration to an affected organisation's
/// acknowledgement of its spread alert.
pub const INCIDENT_ACKNOWLEDGEMENT: &str = "renkei_incident_acknowledgement_seconds";
/// Incidents not closed, by `severity`.
pub const OPEN_INCIDENTS: &str = "renkei_open_incidents";
/// Seconds left until the nearest unfiled initial report is due (negative
/// when overdue); +Inf when none is owed.
pub const REPORT_DEADLINE_NEAREST: &str = "renkei_report_deadline_nearest_seconds";
/// Rules proposals awaiting consensus, by `platform_id`.
pub const RULES_PROPOSALS_OPEN: &str = "renkei_rules_proposals_open";
/// Responses to the open proposal, by `platform_id` and `response`
/// (`accepted`, `objected`, `silent`).
pub const RULES_RESPONSES: &str = "renkei_rules_responses";

/// Request latencies: 1 ms to 10 s.
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Flow latencies, from relay lag to a person's acknowledgement: 10 ms to
/// a day.
const FLOW_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0,
    86400.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls return the same
/// handle). Before it is installed, recording does nothing.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_REQUEST_DURATION.into()), HTTP_BUCKETS)
            .and_then(|b| b.set_buckets(FLOW_BUCKETS))
            .expect("bucket lists are not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder installed first (a test harness, an embedding
        // program) keeps the measurements; this handle then renders none.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        handle
    })
}

/// Everything recorded so far, in the Prometheus text format.
pub fn render() -> String {
    install().render()
}

/// A duration in seconds for a histogram; 0 when negative (the clocks of
/// two machines).
pub fn seconds(elapsed: chrono::TimeDelta) -> f64 {
    (elapsed.num_milliseconds() as f64 / 1000.0).max(0.0)
}
