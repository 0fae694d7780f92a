//! The registry through its HTTP API and the bus, against a real nats-server
//! and a real database (SQLite, or PostgreSQL with RENKEI_TEST_DATABASE_URL).

use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt as _;
use renkei_bus::contracts::demarcation::RulesAccepted;
use renkei_bus::contracts::registry::{BlastRadius, BlastRadiusQuery};
use renkei_bus::{Envelope, subjects};
use renkei_testkit::{NatsServer, TestDb, token};
use renkei_web::Role;
use serde_json::{Value, json};
use uuid::Uuid;

struct TestApp {
    base: String,
    http: reqwest::Client,
    nats: NatsServer,
    running: Option<renkei_web::Running>,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

async fn spawn_app() -> TestApp {
    renkei_testkit::init_tracing();
    let nats = NatsServer::start().await.expect("nats-server");
    let db = TestDb::fresh().await.expect("database");
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = renkei_testkit::settings(&nats.url(), &db.url, dir.path().to_path_buf());
    let running = renkei_registry::Registry::spawn(&settings, "registry-test")
        .await
        .expect("registry");
    TestApp {
        base: format!("http://{}", running.addr),
        http: reqwest::Client::new(),
        nats,
        running: Some(running),
        _db: db,
        _dir: dir,
    }
}

impl TestApp {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        renkei_testkit::call(&self.http, method, &url, token, body).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    async fn create(&self, path: &str, token: &str, body: Value) -> Uuid {
        let (status, json) = self.post(path, token, body).await;
        assert_eq!(status, 201, "{path}: {json}");
        json["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("id")
    }

    async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("clean stop");
        }
    }
}

/// An operator with a platform, two agencies with one linked system each.
struct World {
    admin: String,
    operator: String,
    platform: Uuid,
    orgs: [Uuid; 2],
    managers: [String; 2],
    systems: [Uuid; 2],
}

async fn world(app: &TestApp) -> World {
    let admin = token(Role::Admin, None);
    let op_org = app
        .create(
            "/v1/organizations",
            &admin,
            json!({"name": "Platform Office", "kind": "platform_operator"}),
        )
        .await;
    let operator = token(Role::Operator, Some(op_org));
    let platform = app
        .create(
            "/v1/systems",
            &operator,
            json!({"name": "Common Platform", "kind": "platform", "owner_org_id": op_org,
            "confidentiality": 3, "integrity": 2, "availability": 2}),
        )
        .await;
    let mut orgs = [Uuid::nil(); 2];
    let mut systems = [Uuid::nil(); 2];
    for (i, name) in ["Agency A", "Agency B"].iter().enumerate() {
        orgs[i] = app
            .create(
                "/v1/organizations",
                &admin,
                json!({"name": name, "kind": "government_agency"}),
            )
            .await;
        systems[i] = app
            .create(
                "/v1/systems",
                &operator,
                json!({"name": format!("{name} records"), "kind": "linked", "owner_org_id": orgs[i],
                "platform_id": platform, "confidentiality": 2, "integrity": 1, "availability": 1}),
            )
            .await;
    }
    let managers = [
        token(Role::Manager, Some(orgs[0])),
        token(Role::Manager, Some(orgs[1])),
    ];
    World {
        admin,
        operator,
        platform,
        orgs,
        managers,
        systems,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_round_trip_creates_reads_filters_and_paginates() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let (status, sys) = app
        .get(&format!("/v1/systems/{}", w.systems[0]), &w.managers[0])
        .await;
    assert_eq!(status, 200);
    assert_eq!(sys["lifecycle"], "pending_rules");
    assert_eq!(sys["owner_org_id"], w.orgs[0].to_string());
    assert_eq!(sys["platform_id"], w.platform.to_string());

    let (status, page) = app
        .get(
            &format!("/v1/systems?platform_id={}&limit=2", w.platform),
            &w.operator,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().expect("items").len(), 2);
    let next = page["next"].as_str().expect("a second page");
    let (_, page2) = app
        .get(
            &format!(
                "/v1/systems?platform_id={}&limit=2&cursor={next}",
                w.platform
            ),
            &w.operator,
        )
        .await;
    assert_eq!(page2["items"].as_array().expect("items").len(), 1);
    assert!(page2["next"].is_null());

    let (_, pending) = app
        .get("/v1/systems?lifecycle=pending_rules", &w.operator)
        .await;
    assert_eq!(pending["items"].as_array().expect("items").len(), 2);

    let (status, org) = app
        .get(&format!("/v1/organizations/{}", w.orgs[1]), &w.managers[0])
        .await;
    assert_eq!(status, 200, "members of one platform see each other");
    assert_eq!(org["name"], "Agency B");

    let link = app
        .create(
            "/v1/links",
            &w.operator,
            json!({"from_system_id": w.systems[0], "to_system_id": w.platform,
            "kind": "network", "propagates": ["malware"]}),
        )
        .await;
    let (_, links) = app
        .get(
            &format!("/v1/links?system_id={}", w.systems[0]),
            &w.managers[0],
        )
        .await;
    assert_eq!(links["items"][0]["id"], link.to_string());
    assert_eq!(links["items"][0]["propagates"], json!(["malware"]));
    let (status, _) = app
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/links/{link}"),
            Some(&w.operator),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (_, links) = app
        .get(
            &format!("/v1/links?system_id={}", w.systems[0]),
            &w.operator,
        )
        .await;
    assert!(links["items"].as_array().expect("items").is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_validation_failure_is_a_4xx_naming_the_field_and_changes_nothing() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let valid = json!({"name": "X", "kind": "linked", "owner_org_id": w.orgs[0], "platform_id": w.platform,
        "confidentiality": 1, "integrity": 1, "availability": 1});
    let with = |key: &str, value: Value| {
        let mut v = valid.clone();
        v[key] = value;
        v
    };
    let without = |key: &str| {
        let mut v = valid.clone();
        v.as_object_mut().expect("object").remove(key);
        v
    };
    let cases = [
        ("confidentiality", with("confidentiality", json!(7))),
        ("integrity", with("integrity", json!(3))),
        ("availability", with("availability", json!(0))),
        ("confidentiality", with("confidentiality", json!("high"))),
        ("kind", with("kind", json!("mainframe"))),
        ("name", with("name", json!("   "))),
        ("name", without("name")),
        ("owner_org_id", with("owner_org_id", json!(Uuid::now_v7()))),
        ("owner_org_id", with("owner_org_id", json!("not-a-uuid"))),
        ("platform_id", without("platform_id")),
        ("platform_id", with("platform_id", json!(w.systems[0]))),
        ("lifecycle", with("lifecycle", json!("active"))),
        ("id", with("id", json!(Uuid::now_v7()))),
    ];
    for (field, body) in cases {
        let (status, problem) = app.post("/v1/systems", &w.operator, body.clone()).await;
        assert_eq!(status, 400, "{field}: {problem}");
        assert_eq!(problem["field"], field, "{body} -> {problem}");
        assert_eq!(problem["status"], 400);
        assert!(
            problem["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("urn:renkei:problem:"))
        );
    }
    let link_cases = [
        (
            "propagates",
            json!({"from_system_id": w.systems[0], "to_system_id": w.platform, "kind": "network", "propagates": ["worm"]}),
        ),
        (
            "kind",
            json!({"from_system_id": w.systems[0], "to_system_id": w.platform, "kind": "wifi", "propagates": []}),
        ),
        (
            "to_system_id",
            json!({"from_system_id": w.systems[0], "to_system_id": w.systems[0], "kind": "network", "propagates": []}),
        ),
        (
            "from_system_id",
            json!({"from_system_id": Uuid::now_v7(), "to_system_id": w.platform, "kind": "network", "propagates": []}),
        ),
    ];
    for (field, body) in link_cases {
        let (status, problem) = app.post("/v1/links", &w.operator, body).await;
        assert_eq!(
            (status, problem["field"].as_str()),
            (400, Some(field)),
            "{problem}"
        );
    }
    let (status, problem) = app
        .post(
            "/v1/organizations",
            &w.admin,
            json!({"name": "Corp", "kind": "designated_corporation"}),
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (400, Some("competent_org_id"))
    );
    let (status, problem) = app.get("/v1/systems?limit=0", &w.operator).await;
    assert_eq!((status, problem["field"].as_str()), (400, Some("limit")));
    // Above the cap is served as the cap (1000), not refused.
    let (status, page) = app.get("/v1/systems?limit=5000", &w.operator).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page["items"]
            .as_array()
            .is_some_and(|items| !items.is_empty())
    );
    let (status, problem) = app
        .get(
            &format!("/v1/systems/{}/blast-radius?category=worm", w.systems[0]),
            &w.operator,
        )
        .await;
    assert_eq!((status, problem["field"].as_str()), (400, Some("category")));
    // A 3 MiB body is over the 1 MiB limit: 413; a 70 KiB name is over the
    // parser's string cap: 400 naming it.
    let (status, problem) = app
        .post(
            "/v1/organizations",
            &w.admin,
            json!({"name": "x".repeat(3 * 1024 * 1024), "kind": "government_agency"}),
        )
        .await;
    assert_eq!(
        (status, problem["error"].as_str()),
        (413, Some("payload_too_large"))
    );
    let (status, problem) = app
        .post(
            "/v1/organizations",
            &w.admin,
            json!({"name": "x".repeat(70 * 1024), "kind": "government_agency"}),
        )
        .await;
    assert_eq!((status, problem["field"].as_str()), (400, Some("name")));

    // Nothing changed: still one platform and two linked systems, no links, 3 orgs.
    let (_, systems) = app.get("/v1/systems", &w.admin).await;
    assert_eq!(systems["items"].as_array().expect("items").len(), 3);
    let (_, links) = app.get("/v1/links", &w.admin).await;
    assert!(links["items"].as_array().expect("items").is_empty());
    let (_, orgs) = app.get("/v1/organizations", &w.admin).await;
    assert_eq!(orgs["items"].as_array().expect("items").len(), 3);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn illegal_lifecycle_transitions_are_409_and_legal_ones_apply() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let path = format!("/v1/systems/{}/lifecycle", w.systems[0]);
    let (status, body) = app
        .post(&path, &w.operator, json!({"to": "suspended"}))
        .await;
    assert_eq!(status, 409, "pending_rules -> suspended: {body}");
    assert_eq!(body["error"], "illegal_transition");
    for (to, expected) in [
        ("active", 200),
        ("active", 409),
        ("suspended", 200),
        ("active", 200),
        ("retired", 200),
        ("active", 409),
        ("pending_rules", 409),
    ] {
        let (status, body) = app.post(&path, &w.operator, json!({"to": to})).await;
        assert_eq!(status, expected, "-> {to}: {body}");
    }
    let (status, body) = app
        .post(&path, &w.operator, json!({"to": "sleeping"}))
        .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("to")));
    let (status, _) = app
        .post(
            &format!("/v1/systems/{}/lifecycle", w.systems[1]),
            &w.managers[1],
            json!({"to": "active"}),
        )
        .await;
    assert_eq!(
        status, 403,
        "an owner does not activate its own system; acceptance of the rules does"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organisations_see_only_their_platforms_and_change_only_their_own_systems() {
    let app = spawn_app().await;
    let w = world(&app).await;
    // a second platform with its own operator and agency
    let op2 = app
        .create(
            "/v1/organizations",
            &w.admin,
            json!({"name": "Other Office", "kind": "platform_operator"}),
        )
        .await;
    let operator2 = token(Role::Operator, Some(op2));
    let p2 = app
        .create(
            "/v1/systems",
            &operator2,
            json!({"name": "Other Platform", "kind": "platform", "owner_org_id": op2,
            "confidentiality": 1, "integrity": 1, "availability": 1}),
        )
        .await;
    let a_sys = format!("/v1/systems/{}", w.systems[0]);

    // another platform's operator: the system does not exist for it
    assert_eq!(app.get(&a_sys, &operator2).await.0, 404);
    assert_eq!(
        app.call(
            reqwest::Method::PATCH,
            &a_sys,
            Some(&operator2),
            Some(json!({"description": "x"}))
        )
        .await
        .0,
        404
    );
    assert_eq!(
        app.get(
            &format!("/v1/systems/{}/blast-radius?category=malware", w.systems[0]),
            &operator2
        )
        .await
        .0,
        404
    );
    let (_, listed) = app.get("/v1/systems", &operator2).await;
    assert_eq!(
        listed["items"].as_array().expect("items").len(),
        1,
        "only its own platform"
    );
    // registering on a platform you do not operate
    let (status, _) = app
        .post("/v1/systems", &operator2, json!({"name": "Sneaky", "kind": "linked", "owner_org_id": op2, "platform_id": w.platform,
            "confidentiality": 1, "integrity": 1, "availability": 1}))
        .await;
    assert_eq!(status, 400, "a platform you cannot see is not named");
    let (status, _) = app
        .post("/v1/links", &operator2, json!({"from_system_id": p2, "to_system_id": w.platform, "kind": "network", "propagates": []}))
        .await;
    assert_eq!(status, 400);

    // same platform: B reads A's system but cannot change it
    assert_eq!(app.get(&a_sys, &w.managers[1]).await.0, 200);
    let (status, _) = app
        .call(
            reqwest::Method::PATCH,
            &a_sys,
            Some(&w.managers[1]),
            Some(json!({"description": "hijacked"})),
        )
        .await;
    assert_eq!(status, 403);
    // the owner edits descriptive fields, never server-controlled ones
    let (status, body) = app
        .call(
            reqwest::Method::PATCH,
            &a_sys,
            Some(&w.managers[0]),
            Some(json!({"description": "records of A"})),
        )
        .await;
    assert_eq!(
        (status, body["description"].as_str()),
        (200, Some("records of A"))
    );
    for field in [
        "lifecycle",
        "owner_org_id",
        "platform_id",
        "id",
        "kind",
        "created_at",
    ] {
        let (status, body) = app
            .call(
                reqwest::Method::PATCH,
                &a_sys,
                Some(&w.managers[0]),
                Some(json!({field: "x", "description": "changed"})),
            )
            .await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some(field)),
            "{body}"
        );
    }
    let (_, after) = app.get(&a_sys, &w.managers[0]).await;
    assert_eq!(after["lifecycle"], "pending_rules");
    assert_eq!(after["description"], "records of A");
    // only admins register organisations; no token is 401
    assert_eq!(
        app.post(
            "/v1/organizations",
            &w.operator,
            json!({"name": "N", "kind": "government_agency"})
        )
        .await
        .0,
        403
    );
    assert_eq!(
        app.call(reqwest::Method::GET, &a_sys, None, None).await.0,
        401
    );
    assert_eq!(
        app.call(reqwest::Method::GET, &a_sys, Some("not.a.token"), None)
            .await
            .0,
        401
    );
    // central and auditors read everything
    let central_org = app
        .create(
            "/v1/organizations",
            &w.admin,
            json!({"name": "Central", "kind": "central_body"}),
        )
        .await;
    assert_eq!(
        app.get(&a_sys, &token(Role::Central, Some(central_org)))
            .await
            .0,
        200
    );
    assert_eq!(
        app.get(
            &format!("/v1/systems/{p2}"),
            &token(Role::Auditor, Some(central_org))
        )
        .await
        .0,
        200
    );
    app.stop().await;
}

async fn registry_events(app: &TestApp, wanted: usize) -> Vec<Envelope> {
    let client = async_nats::connect(app.nats.url()).await.expect("nats");
    let js = jetstream::new(client);
    let stream = js
        .get_stream(subjects::REGISTRY_STREAM.name)
        .await
        .expect("stream");
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut messages = consumer.messages().await.expect("messages");
    // Up to 10 s for the `wanted` events, then 1 s more so that any extra
    // (a doubled event) is seen too.
    let mut out = Vec::new();
    loop {
        let wait = if out.len() < wanted {
            Duration::from_secs(10)
        } else {
            Duration::from_secs(1)
        };
        match tokio::time::timeout(wait, messages.next()).await {
            Ok(Some(Ok(m))) => out.push(serde_json::from_slice(&m.payload).expect("envelope")),
            _ => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_published_once_through_the_outbox() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let link = app
        .create(
            "/v1/links",
            &w.operator,
            json!({"from_system_id": w.systems[0], "to_system_id": w.systems[1],
            "kind": "data_flow", "propagates": ["data_leak"]}),
        )
        .await;
    app.call(
        reqwest::Method::PATCH,
        &format!("/v1/systems/{}", w.systems[0]),
        Some(&w.managers[0]),
        Some(json!({"name": "Renamed"})),
    )
    .await;
    app.post(
        &format!("/v1/systems/{}/lifecycle", w.systems[1]),
        &w.operator,
        json!({"to": "retired"}),
    )
    .await;
    app.call(
        reqwest::Method::DELETE,
        &format!("/v1/links/{link}"),
        Some(&w.operator),
        None,
    )
    .await;
    let events = registry_events(&app, 10).await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            subjects::REGISTRY_ORGANIZATION_REGISTERED,
            subjects::REGISTRY_SYSTEM_REGISTERED,
            subjects::REGISTRY_ORGANIZATION_REGISTERED,
            subjects::REGISTRY_SYSTEM_REGISTERED,
            subjects::REGISTRY_ORGANIZATION_REGISTERED,
            subjects::REGISTRY_SYSTEM_REGISTERED,
            subjects::REGISTRY_LINK_ADDED,
            subjects::REGISTRY_SYSTEM_UPDATED,
            subjects::REGISTRY_SYSTEM_LIFECYCLE_CHANGED,
            subjects::REGISTRY_LINK_REMOVED,
        ]
    );
    let ids: std::collections::HashSet<Uuid> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), events.len(), "no event twice");
    assert!(
        events
            .iter()
            .all(|e| e.source == "registry" && e.schema_version == 1)
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_admin_renames_an_organisation_and_the_new_name_is_published_once() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let path = format!("/v1/organizations/{}", w.orgs[0]);
    let patch = |who: &String, body: Value| {
        let who = who.clone();
        let (app, path) = (&app, &path);
        async move {
            app.call(reqwest::Method::PATCH, path, Some(&who), Some(body))
                .await
        }
    };
    let (status, body) = patch(&w.managers[0], json!({"name": "Mine now"})).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = patch(&w.admin, json!({"kind": "central_body"})).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("kind")),
        "{body}"
    );
    let (status, body) = patch(&w.admin, json!({"name": "Agency B"})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("duplicate_name")),
        "{body}"
    );
    let (status, body) = patch(&w.admin, json!({"name": ""})).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("name")),
        "{body}"
    );
    let (_, unchanged) = app.get(&path, &w.admin).await;
    assert_eq!(unchanged["name"], "Agency A", "refusals change nothing");

    let (status, body) = patch(&w.admin, json!({"name": "Digital Agency A"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "Digital Agency A");
    assert_eq!(body["kind"], "government_agency");
    // The same name again changes nothing and publishes nothing.
    let (status, _) = patch(&w.admin, json!({"name": "Digital Agency A"})).await;
    assert_eq!(status, 200);
    let (_, read) = app.get(&path, &w.managers[0]).await;
    assert_eq!(read["name"], "Digital Agency A");

    let events = registry_events(&app, 7).await;
    let renamed: Vec<&Envelope> = events
        .iter()
        .filter(|e| e.event_type == subjects::REGISTRY_ORGANIZATION_UPDATED)
        .collect();
    assert_eq!(renamed.len(), 1, "one rename, one event: {events:?}");
    assert_eq!(renamed[0].organization_id, Some(w.orgs[0]));
    assert_eq!(renamed[0].payload["name"], "Digital Agency A");
    assert_eq!(renamed[0].payload["changed"], json!(["name"]));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_rules_accepted_event_delivered_twice_activates_once() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let client = async_nats::connect(app.nats.url()).await.expect("nats");
    let js = jetstream::new(client);
    let accepted = RulesAccepted {
        platform_id: w.platform,
        organization_id: w.orgs[0],
        system_ids: vec![w.systems[0]],
        rules_version: 1,
        version_id: None,
    };
    let envelope = Envelope::new("demarcation", Some(w.orgs[0]), &accepted).expect("envelope");
    let body = serde_json::to_vec(&envelope).expect("json");
    // Two deliveries of one event (distinct message ids, so JetStream keeps both).
    for _ in 0..2 {
        js.publish(subjects::DEMARCATION_RULES_ACCEPTED, body.clone().into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
    // Someone else's acceptance does not activate A's system.
    let foreign = RulesAccepted {
        organization_id: w.orgs[1],
        ..accepted.clone()
    };
    let foreign = Envelope::new("demarcation", Some(w.orgs[1]), &foreign).expect("envelope");
    js.publish(
        subjects::DEMARCATION_RULES_ACCEPTED,
        serde_json::to_vec(&foreign).expect("json").into(),
    )
    .await
    .expect("publish")
    .await
    .expect("ack");

    let path = format!("/v1/systems/{}", w.systems[0]);
    let mut lifecycle = String::new();
    for _ in 0..100 {
        lifecycle = app.get(&path, &w.managers[0]).await.1["lifecycle"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if lifecycle == "active" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lifecycle, "active");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = registry_events(&app, 7).await;
    let activations = events
        .iter()
        .filter(|e| e.event_type == subjects::REGISTRY_SYSTEM_LIFECYCLE_CHANGED)
        .count();
    assert_eq!(activations, 1, "handled once: {events:?}");
    let activated: Vec<&Envelope> = events
        .iter()
        .filter(|e| e.event_type == subjects::REGISTRY_SYSTEM_ACTIVATED)
        .collect();
    assert_eq!(activated.len(), 1, "one activated event: {events:?}");
    assert_eq!(activated[0].payload["system_id"], w.systems[0].to_string());
    assert_eq!(activated[0].payload["from"], "pending_rules");
    assert_eq!(
        app.get(&format!("/v1/systems/{}", w.systems[1]), &w.managers[1])
            .await
            .1["lifecycle"],
        "pending_rules"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blast_radius_answers_the_same_over_http_and_nats() {
    let app = spawn_app().await;
    let w = world(&app).await;
    for (f, t, cats) in [
        (w.systems[0], w.platform, json!(["malware"])),
        (w.platform, w.systems[1], json!(["malware", "outage"])),
    ] {
        app.create(
            "/v1/links",
            &w.operator,
            json!({"from_system_id": f, "to_system_id": t, "kind": "network", "propagates": cats}),
        )
        .await;
    }
    let (status, http) = app
        .get(
            &format!("/v1/systems/{}/blast-radius?category=malware", w.systems[0]),
            &w.managers[0],
        )
        .await;
    assert_eq!(status, 200);
    let affected = http["affected"].as_array().expect("affected");
    assert_eq!(affected.len(), 2);
    assert_eq!(
        affected[1]["path"],
        json!([w.systems[0], w.platform, w.systems[1]])
    );

    let client = async_nats::connect(app.nats.url()).await.expect("nats");
    let q = BlastRadiusQuery {
        system_id: w.systems[0],
        category: "malware".into(),
    };
    let answer: BlastRadius = renkei_bus::query::request(&client, &q, Duration::from_secs(2))
        .await
        .expect("answer");
    assert_eq!(answer.platform_id, w.platform);
    assert_eq!(
        answer
            .affected
            .iter()
            .map(|a| (a.system_id, a.hops))
            .collect::<Vec<_>>(),
        vec![(w.platform, 1), (w.systems[1], 2)]
    );
    let refused = renkei_bus::query::request(
        &client,
        &BlastRadiusQuery {
            system_id: Uuid::now_v7(),
            category: "malware".into(),
        },
        Duration::from_secs(2),
    )
    .await;
    assert!(
        matches!(refused, Err(renkei_bus::QueryError::Refused(ref f)) if f.code == "not_found"),
        "{refused:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_openapi_and_unknown_routes_answer_as_documented() {
    let app = spawn_app().await;
    assert_eq!(
        app.call(reqwest::Method::GET, "/healthz", None, None)
            .await
            .0,
        200
    );
    assert_eq!(
        app.call(reqwest::Method::GET, "/readyz", None, None)
            .await
            .0,
        200
    );
    let (status, doc) = app
        .call(reqwest::Method::GET, "/openapi.json", None, None)
        .await;
    assert_eq!(status, 200);
    assert!(doc["paths"]["/v1/systems/{id}/blast-radius"].is_object());
    let (status, problem) = app
        .call(reqwest::Method::GET, "/v1/nothing", None, None)
        .await;
    assert_eq!(
        (status, problem["error"].as_str()),
        (404, Some("not_found"))
    );
    let big = "x".repeat(2 * 1024 * 1024);
    let (status, _) = app
        .post(
            "/v1/organizations",
            &token(Role::Admin, None),
            json!({"name": big, "kind": "government_agency"}),
        )
        .await;
    assert_eq!(status, 413);
    app.stop().await;
}
