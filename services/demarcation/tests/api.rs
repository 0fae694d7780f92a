//! The demarcation service through its HTTP API and the bus, beside a real
//! registry, against a real nats-server and a real database (SQLite, or
//! PostgreSQL with RENKEI_TEST_DATABASE_URL). The two services are started
//! separately and learn of each other only over NATS.

use std::time::Duration;

use futures::StreamExt as _;
use renkei_bus::contracts::demarcation::{Responsibility, ResponsibilityQuery};
use renkei_bus::{Envelope, subjects};
use renkei_testkit::{NatsServer, TestDb, token};
use renkei_web::Role;
use serde_json::{Value, json};
use uuid::Uuid;

struct TestApp {
    registry: String,
    demarcation: String,
    http: reqwest::Client,
    nats: NatsServer,
    /// The demarcation service's own database, for tests that tamper with it.
    demarcation_db: String,
    running: Vec<renkei_web::Running>,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

async fn spawn_app() -> TestApp {
    renkei_testkit::init_tracing();
    let nats = NatsServer::start().await.expect("nats-server");
    let db = TestDb::fresh().await.expect("database");
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = renkei_testkit::settings(&nats.url(), &db.url, dir.path().to_path_buf());
    let registry = renkei_registry::Registry::spawn(&settings, "registry-test")
        .await
        .expect("registry");
    let demarcation = renkei_demarcation::Demarcation::spawn(&settings, "demarcation-test")
        .await
        .expect("demarcation");
    TestApp {
        registry: format!("http://{}", registry.addr),
        demarcation: format!("http://{}", demarcation.addr),
        http: reqwest::Client::new(),
        nats,
        demarcation_db: settings.database_url_for("demarcation"),
        running: vec![registry, demarcation],
        _db: db,
        _dir: dir,
    }
}

impl TestApp {
    /// Registry paths go to the registry, the rest to demarcation.
    fn url(&self, path: &str) -> String {
        let registry = ["/v1/organizations", "/v1/systems", "/v1/links"]
            .iter()
            .any(|p| path.starts_with(p));
        let base = if registry {
            &self.registry
        } else {
            &self.demarcation
        };
        format!("{base}{path}")
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        renkei_testkit::call(&self.http, method, &self.url(path), Some(token), body).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    async fn post_empty(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, None).await
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
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
        for r in self.running.drain(..) {
            r.stop().await.expect("clean stop");
        }
    }
}

/// An operator with a platform, agencies with one linked system each.
struct World {
    admin: String,
    operator: String,
    op_org: Uuid,
    platform: Uuid,
    orgs: Vec<Uuid>,
    managers: Vec<String>,
    systems: Vec<Uuid>,
}

async fn world(app: &TestApp, agencies: usize) -> World {
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
    let mut w = World {
        admin,
        operator,
        op_org,
        platform,
        orgs: vec![],
        managers: vec![],
        systems: vec![],
    };
    for i in 0..agencies {
        join(app, &mut w, &format!("Agency {i}")).await;
    }
    wait_until_known(app, &w, agencies).await;
    w
}

/// Registers one more agency with a linked system.
async fn join(app: &TestApp, w: &mut World, name: &str) -> usize {
    let org = app
        .create(
            "/v1/organizations",
            &w.admin,
            json!({"name": name, "kind": "government_agency"}),
        )
        .await;
    let system = app
        .create(
            "/v1/systems",
            &w.operator,
            json!({"name": format!("{name} records"), "kind": "linked", "owner_org_id": org,
            "platform_id": w.platform, "confidentiality": 2, "integrity": 1, "availability": 1}),
        )
        .await;
    w.orgs.push(org);
    w.managers.push(token(Role::Manager, Some(org)));
    w.systems.push(system);
    w.orgs.len() - 1
}

/// Waits until the demarcation service has heard of `n` member systems.
async fn wait_until_known(app: &TestApp, w: &World, n: usize) {
    let path = format!("/v1/platforms/{}/matrix/gaps", w.platform);
    for _ in 0..200 {
        let (status, report) = app.get(&path, &w.operator).await;
        if status == 200 && report["systems"].as_u64() == Some(n as u64) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("demarcation never learnt of {n} systems");
}

fn rules_body(text: &str) -> Value {
    json!({"title": "Common rules", "rules": [
        {"id": "R1", "title": "Patching", "text": text, "controls": ["vulnerability-patch"]},
        {"id": "R2", "title": "Reporting", "text": "Report incidents within one hour.", "controls": ["incident-response"]}
    ]})
}

async fn draft(app: &TestApp, w: &World, text: &str) -> Uuid {
    app.create(
        &format!("/v1/platforms/{}/rules", w.platform),
        &w.operator,
        rules_body(text),
    )
    .await
}

async fn propose(app: &TestApp, w: &World, version: Uuid) {
    let (status, body) = app
        .post_empty(&format!("/v1/rules/{version}/propose"), &w.operator)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "proposed");
}

async fn decide(app: &TestApp, manager: &str, version: Uuid, body: Value) -> (u16, Value) {
    app.post(&format!("/v1/rules/{version}/decisions"), manager, body)
        .await
}

async fn accept(app: &TestApp, manager: &str, version: Uuid) {
    let (status, body) = decide(app, manager, version, json!({"decision": "accept"})).await;
    assert_eq!(status, 201, "{body}");
}

async fn consensus(app: &TestApp, w: &World, version: Uuid) -> Value {
    let (status, body) = app
        .get(&format!("/v1/rules/{version}/consensus"), &w.operator)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_str().expect("id").to_owned())
        .collect()
}

fn sorted(orgs: &[Uuid]) -> Vec<String> {
    let mut v: Vec<String> = orgs.iter().map(Uuid::to_string).collect();
    v.sort();
    v
}

async fn lifecycle(app: &TestApp, w: &World, system: Uuid) -> String {
    let (_, body) = app.get(&format!("/v1/systems/{system}"), &w.operator).await;
    body["lifecycle"].as_str().unwrap_or_default().to_owned()
}

async fn wait_lifecycle(app: &TestApp, w: &World, system: Uuid, want: &str) {
    for _ in 0..200 {
        if lifecycle(app, w, system).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "system {system} never became {want} (is {})",
        lifecycle(app, w, system).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_required_organisation_accepting_puts_the_version_in_force() {
    let app = spawn_app().await;
    let w = world(&app, 2).await;
    let v = draft(&app, &w, "Critical patches within 14 days.").await;
    let c = consensus(&app, &w, v).await;
    assert_eq!(c["state"], "draft");
    propose(&app, &w, v).await;
    let c = consensus(&app, &w, v).await;
    assert_eq!(ids(&c["required"]), sorted(&w.orgs));
    assert_eq!(ids(&c["pending"]), sorted(&w.orgs));

    accept(&app, &w.managers[0], v).await;
    let c = consensus(&app, &w, v).await;
    assert_eq!(c["state"], "proposed", "one acceptance is not consensus");
    assert_eq!(ids(&c["accepted"]), vec![w.orgs[0].to_string()]);
    assert_eq!(ids(&c["pending"]), vec![w.orgs[1].to_string()]);
    assert_eq!(lifecycle(&app, &w, w.systems[0]).await, "pending_rules");

    accept(&app, &w.managers[1], v).await;
    let c = consensus(&app, &w, v).await;
    assert_eq!(c["state"], "in_force");
    assert_eq!(ids(&c["accepted"]), sorted(&w.orgs));
    assert!(c["pending"].as_array().expect("pending").is_empty());
    for s in &w.systems {
        wait_lifecycle(&app, &w, *s, "active").await;
    }

    // Each decision records who, when, and on which version.
    let (_, log) = app
        .get(&format!("/v1/rules/{v}/decisions"), &w.operator)
        .await;
    let log = log["items"].as_array().expect("items");
    assert_eq!(log.len(), 2);
    assert!(
        log.iter()
            .all(|d| d["version_id"] == v.to_string() && d["decided_by"].is_string())
    );

    // The agreed document, with the rules and the record of acceptance.
    let resp = app
        .http
        .get(app.url(&format!("/v1/rules/{v}/document?format=markdown&lang=en")))
        .bearer_auth(&w.managers[0])
        .send()
        .await
        .expect("document");
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/markdown")
    );
    let md = resp.text().await.expect("text");
    assert!(md.contains("Critical patches within 14 days."), "{md}");
    assert!(md.contains("Record of acceptance"));
    assert!(md.contains("Agency 0") && md.contains("Agency 1"), "{md}");
    let (status, html) = app
        .get(
            &format!("/v1/rules/{v}/document?format=html&lang=ja"),
            &w.operator,
        )
        .await;
    assert_eq!(status, 200);
    let html = html.as_str().expect("html text");
    assert!(html.contains("<html lang=\"ja\">") && html.contains("合意の記録"));
    let (status, err) = app
        .get(&format!("/v1/rules/{v}/document?format=pdf"), &w.operator)
        .await;
    assert_eq!((status, err["field"].as_str()), (400, Some("format")));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_objection_blocks_until_it_is_withdrawn() {
    let app = spawn_app().await;
    let w = world(&app, 2).await;
    let v = draft(&app, &w, "Critical patches within 14 days.").await;
    propose(&app, &w, v).await;
    accept(&app, &w.managers[0], v).await;
    let (status, body) = decide(
        &app,
        &w.managers[1],
        v,
        json!({"decision": "object", "reason": "14 days is too short",
               "rules": [{"rule_id": "R1", "reason": "we patch monthly"}]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["position"], "objected");
    assert_eq!(body["rules"][0]["rule_id"], "R1");
    let c = consensus(&app, &w, v).await;
    assert_eq!(c["state"], "proposed");
    assert_eq!(ids(&c["objected"]), vec![w.orgs[1].to_string()]);

    let (status, body) = decide(
        &app,
        &w.managers[1],
        v,
        json!({"decision": "withdraw_objection"}),
    )
    .await;
    assert_eq!((status, body["position"].as_str()), (201, Some("pending")));
    let (status, body) = decide(
        &app,
        &w.managers[1],
        v,
        json!({"decision": "withdraw_objection"}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("nothing_to_withdraw"))
    );
    assert_eq!(consensus(&app, &w, v).await["state"], "proposed");
    accept(&app, &w.managers[1], v).await;
    assert_eq!(consensus(&app, &w, v).await["state"], "in_force");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revised_proposal_withdraws_the_earlier_one_and_acceptances_start_over() {
    let app = spawn_app().await;
    let w = world(&app, 2).await;
    let v1 = draft(&app, &w, "Critical patches within 14 days.").await;
    propose(&app, &w, v1).await;
    accept(&app, &w.managers[0], v1).await;
    decide(
        &app,
        &w.managers[1],
        v1,
        json!({"decision": "object", "reason": "too short"}),
    )
    .await;

    let v2 = draft(&app, &w, "Critical patches within 21 days.").await;
    propose(&app, &w, v2).await;
    assert_eq!(consensus(&app, &w, v1).await["state"], "withdrawn");
    let c = consensus(&app, &w, v2).await;
    assert_eq!(
        ids(&c["pending"]),
        sorted(&w.orgs),
        "acceptances start over"
    );
    let (status, body) = decide(&app, &w.managers[0], v1, json!({"decision": "accept"})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("illegal_state"))
    );

    accept(&app, &w.managers[0], v2).await;
    accept(&app, &w.managers[1], v2).await;
    assert_eq!(consensus(&app, &w, v2).await["state"], "in_force");

    // A third version in force supersedes the second; deciding on it is a 409.
    let v3 = draft(&app, &w, "Critical patches within 10 days.").await;
    propose(&app, &w, v3).await;
    assert_eq!(
        consensus(&app, &w, v2).await["state"],
        "in_force",
        "until v3 is agreed"
    );
    accept(&app, &w.managers[0], v3).await;
    accept(&app, &w.managers[1], v3).await;
    assert_eq!(consensus(&app, &w, v2).await["state"], "superseded");
    let (status, _) = decide(&app, &w.managers[0], v2, json!({"decision": "accept"})).await;
    assert_eq!(status, 409);
    let (_, list) = app
        .get(
            &format!("/v1/platforms/{}/rules?state=in_force", w.platform),
            &w.operator,
        )
        .await;
    let in_force = list["items"].as_array().expect("items");
    assert_eq!(in_force.len(), 1);
    assert_eq!(in_force[0]["id"], v3.to_string());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_proposal_takes_no_decisions_and_only_a_draft_is_edited() {
    let app = spawn_app().await;
    let w = world(&app, 1).await;
    let v = draft(&app, &w, "Patch fast.").await;
    let (status, body) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/rules/{v}"),
            &w.operator,
            Some(json!({"title": "Revised title"})),
        )
        .await;
    assert_eq!(
        (status, body["title"].as_str()),
        (200, Some("Revised title"))
    );
    propose(&app, &w, v).await;
    let (status, _) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/rules/{v}"),
            &w.operator,
            Some(json!({"title": "Too late"})),
        )
        .await;
    assert_eq!(status, 409, "a proposal is not edited");
    let (status, body) = app
        .post_empty(&format!("/v1/rules/{v}/withdraw"), &w.operator)
        .await;
    assert_eq!((status, body["state"].as_str()), (200, Some("withdrawn")));
    let (status, _) = decide(&app, &w.managers[0], v, json!({"decision": "accept"})).await;
    assert_eq!(status, 409);
    let (status, _) = app
        .post_empty(&format!("/v1/rules/{v}/propose"), &w.operator)
        .await;
    assert_eq!(status, 409, "a withdrawn version is not proposed again");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_operator_drafts_and_proposes_and_only_managers_decide_for_their_own_org() {
    let app = spawn_app().await;
    let w = world(&app, 2).await;
    let (status, _) = app
        .post(
            &format!("/v1/platforms/{}/rules", w.platform),
            &w.managers[0],
            rules_body("x"),
        )
        .await;
    assert_eq!(status, 403, "a manager cannot draft");
    let v = draft(&app, &w, "Patch fast.").await;
    let (status, _) = app
        .post_empty(&format!("/v1/rules/{v}/propose"), &w.managers[0])
        .await;
    assert_eq!(status, 403, "a manager cannot propose");
    propose(&app, &w, v).await;

    let (status, body) = decide(
        &app,
        &w.managers[0],
        v,
        json!({"decision": "accept", "organization_id": w.orgs[1]}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = decide(&app, &w.operator, v, json!({"decision": "accept"})).await;
    assert_eq!(status, 403, "an operator does not decide for an agency");
    let csirt = token(Role::Csirt, Some(w.orgs[0]));
    let (status, _) = decide(&app, &csirt, v, json!({"decision": "accept"})).await;
    assert_eq!(status, 403, "a CSIRT member does not decide");
    let ciso = token(Role::Ciso, Some(w.orgs[0]));
    let (status, _) = decide(&app, &ciso, v, json!({"decision": "accept"})).await;
    assert_eq!(status, 201, "a CISO decides for its organisation");

    let c = consensus(&app, &w, v).await;
    assert_eq!(ids(&c["accepted"]), vec![w.orgs[0].to_string()]);
    assert_eq!(ids(&c["pending"]), vec![w.orgs[1].to_string()]);

    // An organisation with nothing on the platform sees nothing of it.
    let stranger_org = app
        .create(
            "/v1/organizations",
            &w.admin,
            json!({"name": "Stranger", "kind": "government_agency"}),
        )
        .await;
    let stranger = token(Role::Manager, Some(stranger_org));
    let (status, _) = app.get(&format!("/v1/rules/{v}"), &stranger).await;
    assert_eq!(status, 404);
    let (status, _) = decide(&app, &stranger, v, json!({"decision": "accept"})).await;
    assert_eq!(status, 404);
    let (status, _) = app
        .get(&format!("/v1/platforms/{}/matrix", w.platform), &stranger)
        .await;
    assert_eq!(status, 404);
    let auditor = token(Role::Auditor, None);
    let (status, _) = app.get(&format!("/v1/rules/{v}/consensus"), &auditor).await;
    assert_eq!(status, 200, "an auditor reads everything");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_names_the_field_and_changes_nothing() {
    let app = spawn_app().await;
    let w = world(&app, 1).await;
    let path = format!("/v1/platforms/{}/rules", w.platform);
    let mut unknown_control = rules_body("x");
    unknown_control["rules"][1]["controls"] = json!(["incident-response", "made-up"]);
    let mut duplicate_id = rules_body("x");
    duplicate_id["rules"][1]["id"] = json!("R1");
    let mut blank_text = rules_body("x");
    blank_text["rules"][0]["text"] = json!("   ");
    for (body, field) in [
        (unknown_control, "rules[1].controls[1]"),
        (duplicate_id, "rules[1].id"),
        (blank_text, "rules[0].text"),
        (json!({"rules": []}), "rules"),
        (json!({"rules": "R1"}), "rules"),
        (json!({"rules": [], "colour": "red"}), "colour"),
        (
            json!({"rules": [{"id": "R1", "title": "t", "text": "x"}], "matrix_version": 7}),
            "matrix_version",
        ),
    ] {
        let (status, err) = app.post(&path, &w.operator, body.clone()).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["field"], field, "{body}: {err}");
    }
    let (_, list) = app.get(&path, &w.operator).await;
    assert!(
        list["items"].as_array().expect("items").is_empty(),
        "nothing stored"
    );

    let v = draft(&app, &w, "Patch fast.").await;
    let (status, err) = app
        .post(
            &format!("/v1/rules/{v}/propose"),
            &w.operator,
            json!({"respond_by": "2001-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!((status, err["field"].as_str()), (400, Some("respond_by")));
    assert_eq!(consensus(&app, &w, v).await["state"], "draft");
    propose(&app, &w, v).await;

    for (body, field) in [
        (json!({"decision": "object"}), "reason"),
        (json!({"decision": "object", "reason": "  "}), "reason"),
        (json!({"decision": "maybe"}), "decision"),
        (
            json!({"decision": "object", "reason": "no", "rules": [{"rule_id": "R9", "reason": "?"}]}),
            "rules[0].rule_id",
        ),
        (
            json!({"decision": "accept", "rules": [{"rule_id": "R1", "reason": "?"}]}),
            "rules",
        ),
    ] {
        let (status, err) = decide(&app, &w.managers[0], v, body.clone()).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["field"], field, "{body}: {err}");
    }
    let c = consensus(&app, &w, v).await;
    assert_eq!(
        ids(&c["pending"]),
        vec![w.orgs[0].to_string()],
        "nothing recorded"
    );
    let (_, log) = app
        .get(&format!("/v1/rules/{v}/decisions"), &w.operator)
        .await;
    assert!(log["items"].as_array().expect("items").is_empty());

    let (status, err) = app
        .call(
            reqwest::Method::PUT,
            &format!("/v1/platforms/{}/matrix", w.platform),
            &w.operator,
            Some(json!({"assignments": [{"control": "access-control", "organization_id": w.orgs[0], "role": "owner"}]})),
        )
        .await;
    assert_eq!(
        (status, err["field"].as_str()),
        (400, Some("assignments[0].role"))
    );
    let (_, m) = app
        .get(&format!("/v1/platforms/{}/matrix", w.platform), &w.operator)
        .await;
    assert!(m["version"].is_null(), "no matrix stored: {m}");
    app.stop().await;
}

/// Subscribes to one subject on a connection of the test's own (kept with
/// the subscription, which lives only as long as its client).
async fn watch(
    app: &TestApp,
    subject: &'static str,
) -> (async_nats::Client, async_nats::Subscriber) {
    let client = async_nats::connect(app.nats.url()).await.expect("nats");
    let sub = client.subscribe(subject).await.expect("subscribe");
    client.flush().await.expect("flush");
    (client, sub)
}

async fn next_event(sub: &mut async_nats::Subscriber, within: Duration) -> Option<Envelope> {
    let message = tokio::time::timeout(within, sub.next()).await.ok()??;
    serde_json::from_slice(&message.payload).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_matrix_is_versioned_and_a_change_that_opens_a_gap_is_published() {
    let app = spawn_app().await;
    let w = world(&app, 2).await;
    let (_client, mut gaps_found) = watch(&app, subjects::DEMARCATION_MATRIX_GAP_FOUND).await;
    let path = format!("/v1/platforms/{}/matrix", w.platform);
    let (status, report) = app.get(&format!("{path}/gaps"), &w.operator).await;
    assert_eq!(status, 200);
    assert_eq!(report["complete"], false, "an empty matrix has gaps");

    // Complete for access-control: operator accountable, each agency responsible.
    let complete = json!({
        "controls": ["access-control"],
        "assignments": [
            {"control": "access-control", "organization_id": w.op_org, "role": "accountable"},
            {"control": "access-control", "system_id": w.systems[0], "organization_id": w.orgs[0], "role": "responsible"},
            {"control": "access-control", "system_id": w.systems[1], "organization_id": w.orgs[1], "role": "responsible"}
        ],
        "classes": [{"control": "access-control", "system_id": w.systems[0], "class": "own"}]
    });
    let (status, m1) = app
        .call(
            reqwest::Method::PUT,
            &path,
            &w.operator,
            Some(complete.clone()),
        )
        .await;
    assert_eq!((status, m1["version"].as_u64()), (200, Some(1)), "{m1}");
    let (_, report) = app.get(&format!("{path}/gaps"), &w.operator).await;
    assert_eq!(report["complete"], true, "{report}");
    assert!(
        next_event(&mut gaps_found, Duration::from_millis(500))
            .await
            .is_none(),
        "closing gaps opens none"
    );

    // Version 2: a second accountable for system 1, and an outsider.
    let stranger = Uuid::now_v7();
    let mut broken = complete.clone();
    broken["base_version"] = json!(1);
    let list = broken["assignments"].as_array_mut().expect("assignments");
    list.push(json!({"control": "access-control", "system_id": w.systems[1], "organization_id": w.orgs[1], "role": "accountable"}));
    list.push(json!({"control": "access-control", "system_id": w.systems[1], "organization_id": w.op_org, "role": "accountable"}));
    list.push(
        json!({"control": "access-control", "organization_id": stranger, "role": "informed"}),
    );
    let (status, m2) = app
        .call(
            reqwest::Method::PUT,
            &path,
            &w.operator,
            Some(broken.clone()),
        )
        .await;
    assert_eq!((status, m2["version"].as_u64()), (200, Some(2)), "{m2}");
    let (_, report) = app.get(&format!("{path}/gaps"), &w.operator).await;
    let kinds: Vec<(String, String)> = report["gaps"]
        .as_array()
        .expect("gaps")
        .iter()
        .map(|g| {
            (
                g["system_id"].as_str().expect("system").to_owned(),
                g["kind"].as_str().expect("kind").to_owned(),
            )
        })
        .collect();
    assert!(kinds.contains(&(w.systems[1].to_string(), "conflicting_accountable".into())));
    assert!(kinds.contains(&(w.systems[0].to_string(), "outsider".into())));
    assert!(kinds.contains(&(w.systems[1].to_string(), "outsider".into())));
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    let event = next_event(&mut gaps_found, Duration::from_secs(5))
        .await
        .expect("gap_found published");
    assert_eq!(event.payload["matrix_version"], 2);
    assert_eq!(event.payload["gaps"].as_array().expect("gaps").len(), 3);

    // Any version can be read back; a stale base is refused.
    let (_, old) = app.get(&format!("{path}?version=1"), &w.managers[0]).await;
    assert_eq!(old["assignments"].as_array().expect("list").len(), 3);
    let (_, old_gaps) = app
        .get(&format!("{path}/gaps?version=1"), &w.operator)
        .await;
    assert_eq!(old_gaps["complete"], true);
    let (status, err) = app
        .call(reqwest::Method::PUT, &path, &w.operator, Some(broken))
        .await;
    assert_eq!((status, err["error"].as_str()), (409, Some("stale_matrix")));
    let (status, _) = app
        .call(reqwest::Method::PUT, &path, &w.managers[0], Some(complete))
        .await;
    assert_eq!(status, 403, "only the operator edits the matrix");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_responsibility_query_answers_from_the_matrix_the_rules_in_force_refer_to() {
    let app = spawn_app().await;
    let w = world(&app, 1).await;
    let path = format!("/v1/platforms/{}/matrix", w.platform);
    let matrix = |accountable: Uuid| {
        json!({"assignments": [
            {"control": "backup-recovery", "organization_id": accountable, "role": "accountable"},
            {"control": "backup-recovery", "system_id": w.systems[0], "organization_id": w.orgs[0], "role": "responsible"}
        ]})
    };
    let (status, _) = app
        .call(
            reqwest::Method::PUT,
            &path,
            &w.operator,
            Some(matrix(w.op_org)),
        )
        .await;
    assert_eq!(status, 200);
    let client = async_nats::connect(app.nats.url()).await.expect("nats");
    let ask = ResponsibilityQuery {
        control: "backup-recovery".into(),
        system_id: w.systems[0],
    };
    let answer: Responsibility = renkei_bus::query::request(&client, &ask, Duration::from_secs(5))
        .await
        .expect("answer");
    assert_eq!(answer.accountable, vec![w.op_org]);
    assert!(!answer.in_force, "no rules in force yet: the latest matrix");

    let v = draft(&app, &w, "Back up daily.").await; // refers to matrix 1
    propose(&app, &w, v).await;
    accept(&app, &w.managers[0], v).await;
    let (status, _) = app
        .call(
            reqwest::Method::PUT,
            &path,
            &w.operator,
            Some(matrix(w.orgs[0])),
        )
        .await;
    assert_eq!(status, 200);
    let answer: Responsibility = renkei_bus::query::request(&client, &ask, Duration::from_secs(5))
        .await
        .expect("answer");
    assert!(answer.in_force);
    assert_eq!(answer.matrix_version, Some(1));
    assert_eq!(
        answer.accountable,
        vec![w.op_org],
        "matrix 2 is not agreed yet"
    );
    assert_eq!(answer.responsible, vec![w.orgs[0]]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_organisations_are_reminded_before_the_deadline() {
    let app = spawn_app().await;
    let w = world(&app, 2).await;
    let (_client, mut reminded) = watch(&app, subjects::DEMARCATION_RULES_REMINDED).await;
    let v = draft(&app, &w, "Patch fast.").await;
    let respond_by = chrono::Utc::now() + chrono::Duration::seconds(3);
    let (status, body) = app
        .post(
            &format!("/v1/rules/{v}/propose"),
            &w.operator,
            json!({"respond_by": respond_by}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    accept(&app, &w.managers[0], v).await;
    let event = next_event(&mut reminded, Duration::from_secs(5))
        .await
        .expect("a reminder");
    assert_eq!(event.payload["organization_id"], w.orgs[1].to_string());
    assert_eq!(event.organization_id, Some(w.orgs[1]));
    assert!(
        next_event(&mut reminded, Duration::from_millis(500))
            .await
            .is_none(),
        "the organisation that answered is not reminded"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_extend_the_catalogue_and_the_default_one_is_complete() {
    let app = spawn_app().await;
    let w = world(&app, 1).await;
    let (_, list) = app.get("/v1/controls", &w.managers[0]).await;
    let ids: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["id"].as_str().expect("id"))
        .collect();
    assert!(ids.len() >= 15);
    for id in [
        "incident-response",
        "access-control",
        "backup-recovery",
        "education-training",
    ] {
        assert!(ids.contains(&id), "{id}");
    }
    let body =
        json!({"id": "ops.log-retention", "title_ja": "ログ保存", "title_en": "Log retention"});
    let (status, c) = app.post("/v1/controls", &w.operator, body.clone()).await;
    assert_eq!((status, c["builtin"].as_bool()), (201, Some(false)), "{c}");
    let (status, err) = app.post("/v1/controls", &w.operator, body).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (409, Some("duplicate_control"))
    );
    let (status, _) = app
        .post(
            "/v1/controls",
            &w.managers[0],
            json!({"id": "mine", "title_en": "Mine"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, err) = app
        .post(
            "/v1/controls",
            &w.operator,
            json!({"id": "Bad Id", "title_en": "x"}),
        )
        .await;
    assert_eq!((status, err["field"].as_str()), (400, Some("id")));
    // The new control can be cited by rules.
    let mut body = rules_body("Keep logs for a year.");
    body["rules"][0]["controls"] = json!(["ops.log-retention"]);
    let (status, _) = app
        .post(
            &format!("/v1/platforms/{}/rules", w.platform),
            &w.operator,
            body,
        )
        .await;
    assert_eq!(status, 201);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organisation_whose_last_system_retires_no_longer_blocks_consensus() {
    let app = spawn_app().await;
    let mut w = world(&app, 2).await;
    let v = draft(&app, &w, "Patch fast.").await;
    propose(&app, &w, v).await;
    accept(&app, &w.managers[0], v).await;
    // A newcomer during the proposal becomes a party to it.
    let c = join(&app, &mut w, "Agency late").await;
    wait_until_known(&app, &w, 3).await;
    for _ in 0..200 {
        if ids(&consensus(&app, &w, v).await["required"]).len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(ids(&consensus(&app, &w, v).await["pending"]).contains(&w.orgs[c].to_string()));
    accept(&app, &w.managers[c], v).await;

    let (status, body) = app
        .post(
            &format!("/v1/systems/{}/lifecycle", w.systems[1]),
            &w.operator,
            json!({"to": "retired"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..200 {
        if consensus(&app, &w, v).await["state"] == "in_force" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let c = consensus(&app, &w, v).await;
    assert_eq!(c["state"], "in_force", "{c}");
    assert!(!ids(&c["required"]).contains(&w.orgs[1].to_string()));
    wait_lifecycle(&app, &w, w.systems[0], "active").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route() {
    let app = spawn_app().await;
    let doc: Value = app
        .http
        .get(format!("{}/openapi.json", app.demarcation))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    for path in [
        "/v1/controls",
        "/v1/platforms/{platform_id}/matrix",
        "/v1/platforms/{platform_id}/matrix/gaps",
        "/v1/platforms/{platform_id}/rules",
        "/v1/rules/{version_id}",
        "/v1/rules/{version_id}/propose",
        "/v1/rules/{version_id}/withdraw",
        "/v1/rules/{version_id}/decisions",
        "/v1/rules/{version_id}/consensus",
        "/v1/rules/{version_id}/document",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_system_registered_event_delivered_twice_asks_for_acceptance_once() {
    use async_nats::jetstream;
    use renkei_bus::contracts::registry::{SystemRegistered, SystemSnapshot};

    let app = spawn_app().await;
    let w = world(&app, 1).await;
    let v = draft(&app, &w, "Patch fast.").await;
    propose(&app, &w, v).await;
    accept(&app, &w.managers[0], v).await;
    let (_client, mut requested) =
        watch(&app, subjects::DEMARCATION_RULES_ACCEPTANCE_REQUESTED).await;

    // A newcomer's system, announced twice (a replay: two deliveries of one
    // event id, with distinct message ids so JetStream keeps both).
    let newcomer = Uuid::now_v7();
    let registered = SystemRegistered {
        system: SystemSnapshot {
            system_id: Uuid::now_v7(),
            name: "Newcomer records".into(),
            kind: "linked".into(),
            owner_org_id: newcomer,
            platform_id: w.platform,
            lifecycle: "pending_rules".into(),
            confidentiality: 1,
            integrity: 1,
            availability: 1,
        },
    };
    let envelope = Envelope::new("registry", Some(newcomer), &registered).expect("envelope");
    let body = serde_json::to_vec(&envelope).expect("json");
    let js = jetstream::new(async_nats::connect(app.nats.url()).await.expect("nats"));
    for _ in 0..2 {
        js.publish(subjects::REGISTRY_SYSTEM_REGISTERED, body.clone().into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
    let first = next_event(&mut requested, Duration::from_secs(5))
        .await
        .expect("the newcomer is asked to accept");
    assert_eq!(first.payload["organization_id"], newcomer.to_string());
    assert!(
        next_event(&mut requested, Duration::from_secs(1))
            .await
            .is_none(),
        "the replay asked again"
    );
    let c = consensus(&app, &w, v).await;
    assert_eq!(
        c["parties"]
            .as_array()
            .expect("parties")
            .iter()
            .filter(|p| p["organization_id"] == newcomer.to_string())
            .count(),
        1
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_last_acceptances_put_the_version_in_force_exactly_once() {
    let app = spawn_app().await;
    let w = world(&app, 8).await;
    let (_client, mut in_force) = watch(&app, subjects::DEMARCATION_RULES_IN_FORCE).await;
    for round in 0..3 {
        let v = draft(&app, &w, &format!("Round {round}.")).await;
        propose(&app, &w, v).await;
        // Everyone at once, so the last acceptances race each other.
        let decisions = w.managers.iter().map(|m| accept(&app, m, v));
        futures::future::join_all(decisions).await;
        let c = consensus(&app, &w, v).await;
        assert_eq!(c["state"], "in_force", "{c}");
        assert_eq!(ids(&c["accepted"]), sorted(&w.orgs));
        let event = next_event(&mut in_force, Duration::from_secs(5))
            .await
            .expect("in_force published");
        assert_eq!(event.payload["version_id"], v.to_string());
        assert!(
            next_event(&mut in_force, Duration::from_millis(300))
                .await
                .is_none(),
            "in force twice"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposing_asks_every_owner_the_registry_knows_even_if_this_service_missed_one() {
    use sea_orm::EntityTrait as _;

    let app = spawn_app().await;
    let w = world(&app, 2).await;
    // This service loses its copy of B's system (a stream that no longer
    // holds the event, a restore from an old backup).
    let db = renkei_store::Db::connect(&app.demarcation_db, "demarcation", 1)
        .await
        .expect("demarcation database");
    let forgotten = renkei_demarcation::store::system::Entity::delete_by_id(w.systems[1])
        .exec(&db.write)
        .await
        .expect("delete");
    assert_eq!(forgotten.rows_affected, 1);
    let v = draft(&app, &w, "Patch fast.").await;
    propose(&app, &w, v).await;
    let c = consensus(&app, &w, v).await;
    assert_eq!(ids(&c["required"]), sorted(&w.orgs), "B is asked too");
    accept(&app, &w.managers[0], v).await;
    assert_eq!(
        consensus(&app, &w, v).await["state"],
        "proposed",
        "no consensus without B"
    );
    app.stop().await;
}
