//! `/metrics` of the whole product, as `renkei up` serves it (the four
//! services in one process under one address): after a spreading flow (an
//! incident alerts another organisation, which acknowledges) and a rules
//! proposal, one scrape shows every metric the shipped Grafana dashboards and
//! Prometheus alert rules query (`deploy/observability`), each request
//! labelled with the service that owns its route, and values that follow
//! what happened.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use renkei_testkit::{NatsServer, TestDb, WebhookSink, call, token};
use renkei_web::Role;
use serde_json::{Value, json};
use uuid::Uuid;

const STEP: Duration = Duration::from_secs(20);

struct Product {
    url: String,
    http: reqwest::Client,
    running: Option<renkei_web::Running>,
    _db: TestDb,
    _dir: tempfile::TempDir,
    _nats: NatsServer,
}

impl Product {
    async fn start() -> Product {
        let p = common::Product::start("metrics-test", |_| {}).await;
        Product {
            url: p.url,
            http: p.http,
            running: p.running,
            _db: p.db,
            _dir: p.dir,
            _nats: p.nats,
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        who: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        call(
            &self.http,
            method,
            &format!("{}{path}", self.url),
            Some(who),
            body,
        )
        .await
    }

    async fn create(&self, path: &str, who: &str, body: Value) -> Uuid {
        let (status, json) = self
            .send(reqwest::Method::POST, path, who, Some(body))
            .await;
        assert_eq!(status, 201, "POST {path}: {json}");
        id_of(&json["id"])
    }

    async fn scrape(&self) -> Scrape {
        let answer = self
            .http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(answer.status(), 200);
        let kind = answer
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(kind.starts_with("text/plain"), "{kind}");
        Scrape(answer.text().await.expect("metrics text"))
    }

    /// Scrapes until `check` holds.
    async fn until(&self, what: &str, check: impl Fn(&Scrape) -> bool) -> Scrape {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let scrape = self.scrape().await;
            if check(&scrape) {
                return scrape;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what} never showed on /metrics:\n{}",
                scrape.0
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One `/metrics` answer.
struct Scrape(String);

impl Scrape {
    /// The value of the sample `name` whose labels include every one of
    /// `labels` (summed over the samples that match).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = None;
        for line in self
            .0
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            if metric != name {
                continue;
            }
            if labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
            {
                let v: f64 = value.parse().expect("a number");
                found = Some(found.unwrap_or(0.0) + v);
            }
        }
        found
    }

    /// Every metric family served (histograms by their base name).
    fn families(&self) -> BTreeSet<String> {
        self.0
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    }
}

fn id_of(v: &Value) -> Uuid {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an id: {v}"))
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `renkei_…` metric the dashboards and alert rules query, histogram
/// series (`_bucket`, `_sum`, `_count`) by their family's name.
fn metrics_queried() -> BTreeSet<String> {
    let observability = repository().join("deploy/observability");
    let mut files = vec![observability.join("alerts.yml")];
    let dashboards = observability.join("grafana/dashboards");
    for entry in std::fs::read_dir(&dashboards).expect("deploy/observability/grafana/dashboards") {
        files.push(entry.expect("entry").path());
    }
    let mut names = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        let mut rest = text.as_str();
        while let Some(at) = rest.find("renkei_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            names.insert(family.to_owned());
        }
    }
    assert!(
        names.len() > 10,
        "the dashboards query renkei metrics: {names:?}"
    );
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_metric_the_dashboards_query_is_served_and_follows_a_spreading_flow() {
    let app = Product::start().await;
    let sink = WebhookSink::start().await.expect("webhook receiver");
    let admin = token(Role::Admin, None);
    let op = app
        .create(
            "/v1/organizations",
            &admin,
            json!({"name": "Platform Office", "kind": "platform_operator"}),
        )
        .await;
    let operator = token(Role::Operator, Some(op));
    let platform = app
        .create(
            "/v1/systems",
            &operator,
            json!({"name": "Common Platform", "kind": "platform", "owner_org_id": op,
                   "confidentiality": 3, "integrity": 2, "availability": 2}),
        )
        .await;
    let mut orgs = Vec::new();
    for name in ["Agency A", "Agency B"] {
        let org = app
            .create(
                "/v1/organizations",
                &admin,
                json!({"name": name, "kind": "government_agency"}),
            )
            .await;
        let system = app
            .create(
                "/v1/systems",
                &operator,
                json!({"name": format!("{name} records"), "kind": "linked", "owner_org_id": org,
                       "platform_id": platform, "confidentiality": 2, "integrity": 1,
                       "availability": 1}),
            )
            .await;
        app.create(
            "/v1/contacts",
            &token(Role::Manager, Some(org)),
            json!({"org_id": org, "name": format!("CSIRT of {name}"), "role": "csirt",
                   "availability": "both",
                   "channels": [{"kind": "webhook", "url": format!("{}/{org}", sink.url),
                                 "secret": "metrics-secret-0123"}]}),
        )
        .await;
        orgs.push((org, system));
    }
    let [(a, a_system), (b, b_system)] = orgs[..] else {
        unreachable!()
    };
    for (from, to) in [(a_system, platform), (platform, b_system)] {
        app.create(
            "/v1/links",
            &operator,
            json!({"from_system_id": from, "to_system_id": to, "kind": "network",
                   "propagates": ["malware"]}),
        )
        .await;
    }
    // A rules proposal awaiting both agencies.
    let draft = app
        .create(
            &format!("/v1/platforms/{platform}/rules"),
            &operator,
            json!({"title": "Common rules", "rules": [
                {"id": "R1", "title": "Reporting", "text": "Report incidents within one hour.",
                 "controls": ["incident-response"]}]}),
        )
        .await;
    // The emergency service must know both systems before the declaration.
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let (status, body) = app
            .send(
                reqwest::Method::POST,
                &format!("/v1/rules/{draft}/propose"),
                &operator,
                None,
            )
            .await;
        if status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never proposed: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let incident = loop {
        let (status, body) = app
            .send(
                reqwest::Method::POST,
                "/v1/incidents",
                &token(Role::Csirt, Some(a)),
                Some(
                    json!({"system_id": a_system, "category": "malware", "severity": 2,
                            "tlp": "amber", "summary": "Ransomware on the records server",
                            "detected_at": chrono::Utc::now().to_rfc3339()}),
                ),
            )
            .await;
        if status == 201 {
            break id_of(&body["id"]);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never declared: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let about_incident = |m: &Value| {
        m["topic"]
            .as_str()
            .is_some_and(|t| t.contains(&incident.to_string()))
    };
    let alert = loop {
        let got = sink.on(&format!("/{b}"));
        if let Some(alert) = got.iter().map(|r| r.json()).find(about_incident) {
            break alert;
        }
        assert!(
            tokio::time::Instant::now() < deadline + STEP,
            "B never alerted: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let link = alert["ack_url"].as_str().expect("an ack link");
    let token_part = link.rsplit('/').next().expect("token");
    let acked = app
        .http
        .post(format!("{}/ack/{token_part}", app.url))
        .send()
        .await
        .expect("POST ack");
    assert_eq!(acked.status(), 200);

    let b_label = b.to_string();
    let scrape = app
        .until("B's acknowledgement", |s| {
            s.value(
                "renkei_notifications_acknowledged_total",
                &[("organization_id", &b_label)],
            ) == Some(1.0)
                && s.value("renkei_incident_acknowledgement_seconds_count", &[]) == Some(1.0)
        })
        .await;

    // Every metric a dashboard or an alert rule asks for is served.
    let served = scrape.families();
    let missing: Vec<_> = metrics_queried().difference(&served).cloned().collect();
    assert!(
        missing.is_empty(),
        "queried but not served: {missing:?}\n{}",
        scrape.0
    );

    // Each request counted under the service owning its route, by pattern.
    for (service, method, route, status) in [
        ("registry", "POST", "/v1/organizations", "201"),
        ("registry", "POST", "/v1/links", "201"),
        ("contacts", "POST", "/v1/contacts", "201"),
        (
            "demarcation",
            "POST",
            "/v1/platforms/{platform_id}/rules",
            "201",
        ),
        ("emergency", "POST", "/v1/incidents", "201"),
    ] {
        let n = scrape.value(
            "renkei_http_request_duration_seconds_count",
            &[
                ("service", service),
                ("method", method),
                ("route", route),
                ("status", status),
            ],
        );
        assert!(
            n.is_some_and(|n| n >= 1.0),
            "{service} {method} {route} {status}: {n:?}"
        );
    }
    let organizations = scrape
        .value(
            "renkei_http_request_duration_seconds_count",
            &[("route", "/v1/organizations"), ("status", "201")],
        )
        .expect("organisations created");
    assert_eq!(organizations, 3.0, "three organisations, each counted once");
    assert!(
        !scrape.0.contains(&format!("{platform}/rules\"")),
        "paths never become labels; the route pattern does"
    );

    // What the flow did.
    assert_eq!(
        scrape.value("renkei_open_incidents", &[("severity", "2")]),
        Some(1.0)
    );
    assert_eq!(
        scrape.value("renkei_open_incidents", &[("severity", "1")]),
        Some(0.0)
    );
    assert!(
        scrape
            .value("renkei_incident_first_delivery_seconds_count", &[])
            .is_some_and(|n| n >= 1.0)
    );
    assert!(
        scrape
            .value(
                "renkei_notifications_delivered_total",
                &[
                    ("organization_id", &b_label),
                    ("channel", "webhook"),
                    ("outcome", "delivered")
                ]
            )
            .is_some_and(|n| n >= 1.0)
    );
    assert_eq!(
        scrape.value(
            "renkei_notifications_acknowledged_total",
            &[("organization_id", &a.to_string())]
        ),
        None,
        "A acknowledged nothing"
    );
    let deadline = scrape
        .value("renkei_report_deadline_nearest_seconds", &[])
        .expect("the initial report is owed");
    assert!(deadline > 0.0 && deadline.is_finite(), "{deadline}");
    let p = platform.to_string();
    assert_eq!(
        scrape.value("renkei_rules_proposals_open", &[("platform_id", &p)]),
        Some(1.0)
    );
    assert_eq!(
        scrape.value(
            "renkei_rules_responses",
            &[("platform_id", &p), ("response", "silent")]
        ),
        Some(2.0),
        "both agencies yet to answer"
    );
    for service in ["registry", "demarcation", "contacts", "emergency"] {
        assert!(
            scrape
                .value(
                    "renkei_outbox_relay_lag_seconds_count",
                    &[("service", service)]
                )
                .is_some_and(|n| n >= 1.0),
            "{service} published events"
        );
        assert!(
            scrape
                .value("renkei_outbox_backlog", &[("service", service)])
                .is_some()
        );
    }
    assert!(
        scrape
            .value(
                "renkei_events_handled_total",
                &[
                    ("service", "contacts"),
                    ("consumer", "contacts-emergency"),
                    ("outcome", "handled")
                ]
            )
            .is_some_and(|n| n >= 1.0)
    );
    assert!(
        scrape
            .value(
                "renkei_consumer_pending",
                &[("consumer", "emergency-contacts")]
            )
            .is_some()
    );
    // Once everything is relayed and consumed, nothing waits.
    app.until("an empty outbox and caught-up consumers", |s| {
        s.value("renkei_outbox_backlog", &[]) == Some(0.0)
            && s.value("renkei_consumer_pending", &[]) == Some(0.0)
    })
    .await;

    sink.stop().await;
    let mut app = app;
    if let Some(running) = app.running.take() {
        running.stop().await.expect("stops cleanly");
    }
}
