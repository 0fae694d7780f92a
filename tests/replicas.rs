//! Replicas share work: two instances of each of the four services against
//! one PostgreSQL database and one NATS server, requests spread over both.
//! Every event is applied once (each durable consumer is shared by its two
//! replicas), every organisation at risk is alerted once per incident, and
//! every escalation timer fires once: both replicas' timers see the step's
//! wait run out, one enters the next step.

use std::collections::HashMap;
use std::time::Duration;

use renkei_testkit::{NatsServer, Received, TestDb, WebhookSink, call, token};
use renkei_web::Role;
use serde_json::{Value, json};
use uuid::Uuid;

const STEP: Duration = Duration::from_secs(30);
/// Agencies at risk of each incident.
const AT_RISK: usize = 5;
/// Incidents declared at once.
const INCIDENTS: usize = 3;
/// The first escalation step's wait.
const WAIT_SECONDS: u64 = 2;

struct Replicas {
    /// Two base URLs per service.
    urls: HashMap<&'static str, [String; 2]>,
    running: Vec<renkei_web::Running>,
    http: reqwest::Client,
    turn: std::sync::atomic::AtomicUsize,
}

impl Replicas {
    async fn start(settings: &renkei_settings::Settings) -> Replicas {
        let mut running = Vec::new();
        let mut urls = HashMap::new();
        for service in ["registry", "demarcation", "contacts", "emergency"] {
            let mut pair = Vec::new();
            for replica in 1..=2 {
                let name = format!("{service}-{replica}");
                let r = match service {
                    "registry" => renkei_registry::Registry::spawn(settings, &name).await,
                    "demarcation" => renkei_demarcation::Demarcation::spawn(settings, &name).await,
                    "contacts" => renkei_contacts::Contacts::spawn(settings, &name).await,
                    _ => renkei_emergency::Emergency::spawn(settings, &name).await,
                }
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
                pair.push(format!("http://{}", r.addr));
                running.push(r);
            }
            urls.insert(service, [pair[0].clone(), pair[1].clone()]);
        }
        Replicas {
            urls,
            running,
            http: reqwest::Client::new(),
            turn: Default::default(),
        }
    }

    /// The next replica of `service`, in turn.
    fn url(&self, service: &str) -> &str {
        let turn = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        &self.urls[service][turn % 2]
    }

    async fn send(
        &self,
        service: &str,
        method: reqwest::Method,
        path: &str,
        who: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.url(service));
        call(&self.http, method, &url, Some(who), body).await
    }

    async fn create(&self, service: &str, path: &str, who: &str, body: Value) -> Uuid {
        let (status, json) = self
            .send(service, reqwest::Method::POST, path, who, Some(body))
            .await;
        assert_eq!(status, 201, "POST {path}: {json}");
        id_of(&json["id"])
    }

    async fn stop(mut self) {
        while let Some(r) = self.running.pop() {
            r.stop().await.expect("clean stop");
        }
    }
}

fn id_of(v: &Value) -> Uuid {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an id: {v}"))
}

/// How many messages of `got` are about each incident.
fn per_incident(got: &[Received], incidents: &[Uuid]) -> Vec<usize> {
    incidents
        .iter()
        .map(|id| {
            got.iter()
                .filter(|r| {
                    r.json()["topic"]
                        .as_str()
                        .is_some_and(|t| t.contains(&id.to_string()))
                })
                .count()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_of_each_service_handle_every_event_and_fire_every_timer_once() {
    renkei_testkit::init_tracing();
    let nats = NatsServer::start().await.expect("nats-server");
    let db = TestDb::postgres().await.expect("PostgreSQL");
    let dir = tempfile::tempdir().expect("data dir");
    let settings = renkei_testkit::settings(&nats.url(), &db.url, dir.path().to_path_buf());
    let app = Replicas::start(&settings).await;
    let sink = WebhookSink::start().await.expect("webhook receiver");

    let admin = token(Role::Admin, None);
    let op = app
        .create(
            "registry",
            "/v1/organizations",
            &admin,
            json!({"name": "Platform Office", "kind": "platform_operator"}),
        )
        .await;
    let operator = token(Role::Operator, Some(op));
    let platform = app
        .create(
            "registry",
            "/v1/systems",
            &operator,
            json!({"name": "Common Platform", "kind": "platform", "owner_org_id": op,
                   "confidentiality": 3, "integrity": 2, "availability": 2}),
        )
        .await;
    let mut agencies = Vec::new();
    for i in 0..=AT_RISK {
        let org = app
            .create(
                "registry",
                "/v1/organizations",
                &admin,
                json!({"name": format!("Agency {i}"), "kind": "government_agency"}),
            )
            .await;
        let system = app
            .create(
                "registry",
                "/v1/systems",
                &operator,
                json!({"name": format!("Agency {i} records"), "kind": "linked", "owner_org_id": org,
                       "platform_id": platform, "confidentiality": 2, "integrity": 1,
                       "availability": 1}),
            )
            .await;
        let manager = token(Role::Manager, Some(org));
        for role in ["csirt", "ciso"] {
            app.create(
                "contacts",
                "/v1/contacts",
                &manager,
                json!({"org_id": org, "name": format!("{role} of agency {i}"), "role": role,
                       "availability": "both",
                       "channels": [{"kind": "webhook", "url": format!("{}/{org}/{role}", sink.url),
                                     "secret": "replica-secret-0123"}]}),
            )
            .await;
        }
        // The CSIRT first; nobody acknowledges, so the CISO after the wait.
        let (status, body) = app
            .send(
                "contacts",
                reqwest::Method::PUT,
                &format!("/v1/organizations/{org}/escalation-policy"),
                &manager,
                Some(json!({"steps": [
                    {"targets": [{"kind": "role", "role": "csirt"}], "wait_seconds": WAIT_SECONDS},
                    {"targets": [{"kind": "role", "role": "ciso"}], "wait_seconds": 3600}],
                    "repeat": 0})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        agencies.push((org, system));
    }
    // Agency 0's system reaches every other agency's through the platform.
    let (source_org, source_system) = agencies[0];
    app.create(
        "registry",
        "/v1/links",
        &operator,
        json!({"from_system_id": source_system, "to_system_id": platform, "kind": "network",
               "propagates": ["malware"]}),
    )
    .await;
    for (_, system) in &agencies[1..] {
        app.create(
            "registry",
            "/v1/links",
            &operator,
            json!({"from_system_id": platform, "to_system_id": system, "kind": "network",
                   "propagates": ["malware"]}),
        )
        .await;
    }

    // Once both emergency replicas' copy of the registry holds every link
    // (each replica's declaration must see all agencies at risk)…
    let csirt = token(Role::Csirt, Some(source_org));
    let declare = |n: usize| {
        json!({"system_id": source_system, "category": "malware", "severity": 2, "tlp": "green",
               "summary": format!("Worm {n} on agency 0's records"),
               "detected_at": chrono::Utc::now().to_rfc3339()})
    };
    let deadline = tokio::time::Instant::now() + STEP;
    let mut incidents = Vec::new();
    while incidents.len() < INCIDENTS {
        let (status, body) = app
            .send(
                "emergency",
                reqwest::Method::POST,
                "/v1/incidents",
                &csirt,
                Some(declare(incidents.len())),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let at_risk = body["affected"].as_array().map_or(0, |rows| {
            rows.iter().filter(|r| r["at_risk"] == json!(true)).count()
        });
        // The operator's platform is at risk too; the agencies are what counts here.
        if agencies[1..]
            .iter()
            .all(|(org, _)| body["affected"].to_string().contains(&org.to_string()))
        {
            incidents.push(id_of(&body["id"]));
        } else {
            assert!(
                tokio::time::Instant::now() < deadline,
                "emergency never knew every link ({at_risk} at risk): {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // Every agency at risk: its CSIRT alerted once per incident, then —
    // nobody acknowledging — its CISO once per incident, the timer of one
    // replica having moved it.
    let counted = |role: &str| {
        agencies[1..]
            .iter()
            .map(|(org, _)| per_incident(&sink.on(&format!("/{org}/{role}")), &incidents))
            .collect::<Vec<_>>()
    };
    let once = vec![vec![1; INCIDENTS]; AT_RISK];
    let deadline = tokio::time::Instant::now() + STEP + Duration::from_secs(WAIT_SECONDS);
    while counted("ciso") != once || counted("csirt") != once {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every step reached once: CSIRTs {:?}, CISOs {:?}",
            counted("csirt"),
            counted("ciso")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both replicas' timers and dispatchers keep running: nothing more comes.
    tokio::time::sleep(Duration::from_secs(WAIT_SECONDS + 2)).await;
    assert_eq!(counted("csirt"), once, "no CSIRT alerted twice");
    assert_eq!(counted("ciso"), once, "no escalation fired twice");
    for (org, _) in &agencies[1..] {
        for message in sink.on(&format!("/{org}/ciso")) {
            assert_eq!(message.json()["step"], json!(2), "the CISO is step 2");
        }
    }

    // The emergency replicas applied each delivery event once: every
    // agency's row of every incident shows its alert delivered at step 1
    // and escalated to step 2, unacknowledged.
    for incident in &incidents {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let (status, body) = app
                .send(
                    "emergency",
                    reqwest::Method::GET,
                    &format!("/v1/incidents/{incident}"),
                    &operator,
                    None,
                )
                .await;
            assert_eq!(status, 200, "{body}");
            let rows = body["affected"].as_array().cloned().unwrap_or_default();
            let settled = agencies[1..].iter().all(|(org, _)| {
                rows.iter().any(|r| {
                    r["org_id"] == json!(org)
                        && r["delivered"] == json!(true)
                        && r["escalation_step"] == json!(2)
                        && r["acknowledged"] == json!(false)
                })
            });
            if settled {
                let timeline = app
                    .send(
                        "emergency",
                        reqwest::Method::GET,
                        &format!("/v1/incidents/{incident}/timeline?limit=1000"),
                        &operator,
                        None,
                    )
                    .await
                    .1;
                for (org, _) in &agencies[1..] {
                    let escalations = timeline["items"].as_array().map_or(0, |items| {
                        items
                            .iter()
                            .filter(|e| e["kind"] == "escalated" && e["org_id"] == json!(org))
                            .count()
                    });
                    assert_eq!(escalations, 1, "one escalation entry for {org}: {timeline}");
                }
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "incident never settled: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // A declaration retried with its Idempotency-Key through the other
    // emergency replica is answered from the first: one incident.
    let once = declare(99);
    let retried = |n: usize| {
        let http = app.http.clone();
        let url = format!("{}/v1/incidents", app.urls["emergency"][n]);
        let csirt = csirt.clone();
        let body = once.clone();
        async move {
            let answer = http
                .post(url)
                .bearer_auth(csirt)
                .header("Idempotency-Key", "declare-worm-99")
                .json(&body)
                .send()
                .await
                .expect("POST /v1/incidents");
            let replayed = answer.headers().contains_key("idempotency-replayed");
            let status = answer.status().as_u16();
            let body: Value = answer.json().await.expect("json");
            (status, replayed, body["id"].clone())
        }
    };
    let (status, replayed, first) = retried(0).await;
    assert_eq!((status, replayed), (201, false));
    let (status, replayed, again) = retried(1).await;
    assert_eq!(
        (status, replayed),
        (201, true),
        "replica 2 replays replica 1's answer"
    );
    assert_eq!(again, first, "one incident");

    // A rename through either registry replica reaches every service's
    // copy: the incident's matrix names the agency anew.
    let (renamed, _) = agencies[1];
    let (status, body) = app
        .send(
            "registry",
            reqwest::Method::PATCH,
            &format!("/v1/organizations/{renamed}"),
            &admin,
            Some(json!({"name": "Agency 1 (reorganised)"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let (_, body) = app
            .send(
                "emergency",
                reqwest::Method::GET,
                &format!("/v1/incidents/{}", incidents[0]),
                &operator,
                None,
            )
            .await;
        let named = body["affected"].as_array().is_some_and(|rows| {
            rows.iter()
                .any(|r| r["org_id"] == json!(renamed) && r["org_name"] == "Agency 1 (reorganised)")
        });
        if named {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rename never reached emergency: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    sink.stop().await;
    app.stop().await;
}
