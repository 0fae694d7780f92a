//! One trace per flow, across the four services as separate processes (the
//! service binaries, as deployed), exporting OTLP/HTTP to a receiver this
//! test runs and decodes (protobuf): an incident declared on one linked
//! system, its spread assessed by the registry, its playbook's owners asked
//! of demarcation, the alert delivered by contacts to the organisation at
//! risk and acknowledged there, and emergency recording the delivery and
//! the acknowledgement — all one trace, rooted at the declaration's HTTP
//! request, with every span's parent in it. The joining flow likewise: a
//! linked system registered at the registry and applied by the other three.
//!
//! Needs the service binaries built beside the test (`cargo test
//! --workspace --bins --tests` does, as `tests/run` does).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use prost::Message as _;
use renkei_testkit::processes::{Launch, SERVICES, Services};
use renkei_testkit::{NatsServer, TestDb, WebhookSink, call, token};
use renkei_web::Role;
use serde_json::{Value, json};
use uuid::Uuid;

const STEP: Duration = Duration::from_secs(30);
/// One exported span, as the receiver decoded it.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: HashMap<String, String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Any::StringValue(s)) => s.clone(),
        Some(Any::IntValue(i)) => i.to_string(),
        Some(Any::BoolValue(b)) => b.to_string(),
        Some(Any::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

/// Every span the receiver got, decoded from OTLP/HTTP protobuf.
fn spans(receiver: &WebhookSink) -> Vec<Span> {
    let mut out = Vec::new();
    for request in receiver.on("/v1/traces") {
        assert_eq!(
            request.header("content-type"),
            Some("application/x-protobuf"),
            "OTLP/HTTP protobuf"
        );
        let export = ExportTraceServiceRequest::decode(request.body.as_slice())
            .expect("an OTLP ExportTraceServiceRequest");
        for resource_spans in export.resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                .map(|a| text(a.value.as_ref()))
                .unwrap_or_default();
            // The binaries name themselves `renkei-<service>`.
            let service = service
                .strip_prefix("renkei-")
                .unwrap_or(&service)
                .to_owned();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    out.push(Span {
                        service: service.clone(),
                        name: span.name.clone(),
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent: hex(&span.parent_span_id),
                        attributes: span
                            .attributes
                            .iter()
                            .map(|a| (a.key.clone(), text(a.value.as_ref())))
                            .collect(),
                    });
                }
            }
        }
    }
    out
}

fn id_of(v: &Value) -> Uuid {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an id: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_spreading_flow_is_one_trace_across_all_four_services() {
    renkei_testkit::init_tracing();
    let nats = NatsServer::start().await.expect("nats-server");
    let db = TestDb::fresh().await.expect("database");
    let dir = tempfile::tempdir().expect("data dir");
    let receiver = WebhookSink::start().await.expect("OTLP receiver");
    let hooks = WebhookSink::start().await.expect("webhook receiver");
    // SQLite: each service's own file in the data dir; PostgreSQL: a schema each.
    let database = if db.is_postgres() {
        db.url.clone()
    } else {
        String::new()
    };
    let mut services = Services::start(
        Launch::new(&nats.url(), &database, dir.path())
            .env("RENKEI_TELEMETRY__OTLP_ENDPOINT", &receiver.url)
            .env("RENKEI_TELEMETRY__FILTER", "info")
            .env("OTEL_BSP_SCHEDULE_DELAY", "200"),
    );
    services.wait_ready(STEP).await;
    let http = reqwest::Client::new();

    let send = |service: &'static str,
                method: reqwest::Method,
                path: String,
                who: String,
                body: Option<Value>| {
        let url = format!("{}{path}", services.url(service));
        let http = http.clone();
        async move { call(&http, method, &url, Some(&who), body).await }
    };
    let create = |service: &'static str, path: &str, who: &str, body: Value| {
        let fut = send(
            service,
            reqwest::Method::POST,
            path.to_owned(),
            who.to_owned(),
            Some(body),
        );
        let path = path.to_owned();
        async move {
            let (status, json) = fut.await;
            assert_eq!(status, 201, "POST {path}: {json}");
            id_of(&json["id"])
        }
    };
    let admin = token(Role::Admin, None);
    let op = create(
        "registry",
        "/v1/organizations",
        &admin,
        json!({"name": "Platform Office", "kind": "platform_operator"}),
    )
    .await;
    let operator = token(Role::Operator, Some(op));
    let platform = create(
        "registry",
        "/v1/systems",
        &operator,
        json!({"name": "Common Platform", "kind": "platform", "owner_org_id": op,
               "confidentiality": 3, "integrity": 2, "availability": 2}),
    )
    .await;
    let mut orgs = Vec::new();
    for name in ["Agency A", "Agency B"] {
        let org = create(
            "registry",
            "/v1/organizations",
            &admin,
            json!({"name": name, "kind": "government_agency"}),
        )
        .await;
        let system = create(
            "registry",
            "/v1/systems",
            &operator,
            json!({"name": format!("{name} records"), "kind": "linked", "owner_org_id": org,
                   "platform_id": platform, "confidentiality": 2, "integrity": 1,
                   "availability": 1}),
        )
        .await;
        orgs.push((org, system));
    }
    let [(a, a_system), (b, b_system)] = orgs[..] else {
        unreachable!()
    };
    create(
        "contacts",
        "/v1/contacts",
        &token(Role::Manager, Some(b)),
        json!({"org_id": b, "name": "CSIRT of B", "role": "csirt", "availability": "both",
               "channels": [{"kind": "webhook", "url": format!("{}/b", hooks.url),
                             "secret": "trace-secret-0123"}]}),
    )
    .await;
    for (from, to) in [(a_system, platform), (platform, b_system)] {
        create(
            "registry",
            "/v1/links",
            &operator,
            json!({"from_system_id": from, "to_system_id": to, "kind": "network",
                   "propagates": ["malware"]}),
        )
        .await;
    }
    // Once emergency knows the platform (its registry copy), a playbook:
    // its tasks' owners are asked of demarcation at the declaration.
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let (status, body) = send(
            "emergency",
            reqwest::Method::POST,
            format!("/v1/platforms/{platform}/playbooks"),
            operator.clone(),
            Some(json!({"category": "malware", "title": "Malware on a linked system", "steps": [
                {"title": "Isolate the link", "control": "incident-response", "due_after_minutes": 30}]})),
        )
        .await;
        if status == 201 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no playbook: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let incident = loop {
        let (status, body) = send(
            "emergency",
            reqwest::Method::POST,
            "/v1/incidents".into(),
            token(Role::Csirt, Some(a)),
            Some(
                json!({"system_id": a_system, "category": "malware", "severity": 2,
                        "tlp": "amber", "summary": "Ransomware on the records server",
                        "detected_at": chrono::Utc::now().to_rfc3339()}),
            ),
        )
        .await;
        // B must be at risk: the registry's links reached emergency's copy.
        if status == 201 && body["affected"].to_string().contains(&b.to_string()) {
            break id_of(&body["id"]);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never declared: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // B's CSIRT is alerted and acknowledges through the link.
    let alert = loop {
        let got = hooks.on("/b");
        let found = got.iter().map(|r| r.json()).find(|m| {
            m["topic"]
                .as_str()
                .is_some_and(|t| t.contains(&incident.to_string()))
        });
        if let Some(alert) = found {
            break alert;
        }
        assert!(
            tokio::time::Instant::now() < deadline + STEP,
            "B never alerted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let link = alert["ack_url"].as_str().expect("an ack link");
    let token_part = link.rsplit('/').next().expect("token");
    let acked = http
        .post(format!("{}/ack/{token_part}", services.url("contacts")))
        .send()
        .await
        .expect("POST ack");
    assert_eq!(acked.status(), 200);
    // Emergency records the acknowledgement in the incident's matrix.
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let (_, body) = send(
            "emergency",
            reqwest::Method::GET,
            format!("/v1/incidents/{incident}"),
            operator.clone(),
            None,
        )
        .await;
        let acknowledged = body["affected"].as_array().is_some_and(|rows| {
            rows.iter()
                .any(|r| r["org_id"] == json!(b) && r["acknowledged"] == json!(true))
        });
        if acknowledged {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ack never reached emergency: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every process flushes its spans as it stops.
    services.stop();

    let all = spans(&receiver);
    let exporters: BTreeSet<&str> = all.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(
        exporters,
        SERVICES.iter().copied().collect(),
        "every service exports OTLP"
    );
    let declaration = all
        .iter()
        .find(|s| {
            s.service == "emergency"
                && s.name == "http.request"
                && s.attributes.get("http.method").map(String::as_str) == Some("POST")
                && s.attributes.get("http.route").map(String::as_str) == Some("/v1/incidents")
                && s.attributes.get("http.status_code").map(String::as_str) == Some("201")
        })
        .expect("the declaration's request span");
    let trace: Vec<&Span> = all
        .iter()
        .filter(|s| s.trace_id == declaration.trace_id)
        .collect();
    let by_service: BTreeSet<&str> = trace.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(
        by_service,
        SERVICES.iter().copied().collect(),
        "one trace holds spans of all four services: {:#?}",
        trace
            .iter()
            .map(|s| (&s.service, &s.name))
            .collect::<Vec<_>>()
    );

    // Parent and child: one root (the request, which had no caller), and
    // every other span's parent is a span of the same trace.
    let ids: BTreeSet<&str> = trace.iter().map(|s| s.span_id.as_str()).collect();
    let roots: Vec<&&Span> = trace.iter().filter(|s| s.parent.is_empty()).collect();
    assert_eq!(roots.len(), 1, "one root: {roots:#?}");
    assert_eq!(roots[0].span_id, declaration.span_id);
    for span in &trace {
        assert!(
            span.parent.is_empty() || ids.contains(span.parent.as_str()),
            "{} {} has a parent outside the trace",
            span.service,
            span.name
        );
    }
    let parent_of = |s: &Span| trace.iter().find(|p| p.span_id == s.parent).copied();
    let has = |service: &str, name: &str, check: &dyn Fn(&Span) -> bool| {
        trace
            .iter()
            .copied()
            .find(|s| s.service == service && s.name == name && check(s))
    };
    // The registry answered emergency's blast-radius question, as a child
    // of emergency's request for it.
    let radius = has("registry", "query.serve", &|s| {
        s.attributes
            .get("subject")
            .is_some_and(|v| v.contains("blast_radius"))
    })
    .expect("registry's answer in the trace");
    assert_eq!(
        parent_of(radius).map(|p| p.service.as_str()),
        Some("emergency")
    );
    // Demarcation answered who owns the playbook's step.
    let owners = has("demarcation", "query.serve", &|s| {
        s.attributes
            .get("subject")
            .is_some_and(|v| v.contains("responsibility"))
    })
    .expect("demarcation's answer in the trace");
    assert_eq!(
        parent_of(owners).map(|p| p.service.as_str()),
        Some("emergency")
    );
    // Contacts consumed the spread event emergency published…
    let consumed = has("contacts", "consume", &|s| {
        s.attributes
            .get("subject")
            .is_some_and(|v| v.starts_with("emergency."))
    })
    .expect("contacts consumed emergency's event in the trace");
    assert_eq!(
        parent_of(consumed).map(|p| p.service.as_str()),
        Some("emergency")
    );
    // …delivered B's alert by webhook…
    let b_label = b.to_string();
    let incident_label = incident.to_string();
    let delivered = has("contacts", "deliver", &|s| {
        s.attributes.get("organization_id") == Some(&b_label)
            && s.attributes.get("channel").map(String::as_str) == Some("webhook")
            && s.attributes.get("incident_id") == Some(&incident_label)
            && s.attributes.get("platform_id") == Some(&platform.to_string())
            && s.attributes.get("outcome").map(String::as_str) == Some("delivered")
    });
    assert!(delivered.is_some(), "B's delivery is a span of the trace");
    // …and B's acknowledgement, which emergency then consumed.
    assert!(
        has("contacts", "notification.acknowledged", &|s| {
            s.attributes.get("organization_id") == Some(&b_label)
        })
        .is_some(),
        "B's acknowledgement is a span of the trace"
    );
    for event in [
        "contacts.notification.delivered",
        "contacts.notification.acknowledged",
    ] {
        assert!(
            has("emergency", "consume", &|s| {
                s.attributes.get("event_type").map(String::as_str) == Some(event)
                    && s.attributes.get("organization_id") == Some(&b_label)
            })
            .is_some(),
            "emergency consumed {event} in the trace"
        );
    }

    // The joining flow too: B's system registered at the registry is one
    // trace with the other three services applying the registry's event.
    let b_system_label = b_system.to_string();
    let joined = all
        .iter()
        .find(|s| {
            s.service == "demarcation"
                && s.name == "consume"
                && s.attributes.get("event_type").map(String::as_str)
                    == Some("registry.system.registered")
                && s.attributes.get("organization_id") == Some(&b.to_string())
        })
        .expect("demarcation applied B's system registration");
    let joining: Vec<&Span> = all
        .iter()
        .filter(|s| s.trace_id == joined.trace_id)
        .collect();
    let root = joining
        .iter()
        .find(|s| s.parent.is_empty())
        .expect("the joining trace's root");
    assert_eq!(
        (root.service.as_str(), root.name.as_str()),
        ("registry", "http.request"),
        "rooted at the registration request"
    );
    assert_eq!(
        root.attributes.get("http.route").map(String::as_str),
        Some("/v1/systems")
    );
    let joining_services: BTreeSet<&str> = joining.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(
        joining_services,
        SERVICES.iter().copied().collect(),
        "registering {b_system_label} is one trace across the four services"
    );
    let joining_ids: BTreeSet<&str> = joining.iter().map(|s| s.span_id.as_str()).collect();
    assert!(
        joining
            .iter()
            .all(|s| s.parent.is_empty() || joining_ids.contains(s.parent.as_str())),
        "every span's parent is in the joining trace"
    );

    receiver.stop().await;
    hooks.stop().await;
}
