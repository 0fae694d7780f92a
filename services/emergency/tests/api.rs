//! The emergency service through its HTTP API, beside a real registry
//! (which answers the blast radius) and a real demarcation service (which
//! answers who is responsible for a playbook step), against a real
//! nats-server of the test's own and a real database (SQLite, or
//! PostgreSQL with RENKEI_TEST_DATABASE_URL). The three services learn of
//! each other only over NATS.
//!
//! Every test builds the same world: a platform run by an operator, three
//! agencies with a linked system each on it — A's system links to B's for
//! malware, C is linked to nobody — a central body, and an agency on
//! another platform run by another operator.

use std::time::Duration;

use chrono::Utc;
use renkei_testkit::{NatsServer, TestDb, token};
use renkei_web::Role;
use serde_json::{Value, json};
use uuid::Uuid;

/// How long anything that travels over NATS may take to show.
const PATIENCE: Duration = Duration::from_secs(20);

// ---- the harness -----------------------------------------------------------

/// The three services, each on its own port, sharing one nats-server and
/// one database server.
struct TestApp {
    registry: String,
    demarcation: String,
    emergency: String,
    http: reqwest::Client,
    running: Vec<renkei_web::Running>,
    _nats: NatsServer,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

/// An answer: the status and the JSON body.
type Answer = (u16, Value);

async fn spawn_app() -> TestApp {
    renkei_testkit::init_tracing();
    let nats = NatsServer::start().await.expect("nats-server");
    let db = TestDb::fresh().await.expect("database");
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = renkei_testkit::settings(&nats.url(), &db.url, dir.path().to_path_buf());
    let registry = renkei_registry::Registry::spawn(&settings, "emergency-api-registry")
        .await
        .expect("registry");
    let demarcation =
        renkei_demarcation::Demarcation::spawn(&settings, "emergency-api-demarcation")
            .await
            .expect("demarcation");
    let emergency = renkei_emergency::Emergency::spawn(&settings, "emergency-api-emergency")
        .await
        .expect("emergency");
    TestApp {
        registry: format!("http://{}", registry.addr),
        demarcation: format!("http://{}", demarcation.addr),
        emergency: format!("http://{}", emergency.addr),
        http: reqwest::Client::new(),
        running: vec![registry, demarcation, emergency],
        _nats: nats,
        _db: db,
        _dir: dir,
    }
}

impl TestApp {
    /// Registry paths go to the registry, the matrix to demarcation, the
    /// rest to the emergency service.
    fn url(&self, path: &str) -> String {
        let base = if ["/v1/organizations", "/v1/systems", "/v1/links"]
            .iter()
            .any(|p| path.starts_with(p))
        {
            &self.registry
        } else if path.starts_with("/v1/platforms/") && path.contains("/matrix") {
            &self.demarcation
        } else {
            &self.emergency
        };
        format!("{base}{path}")
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Answer {
        renkei_testkit::call(&self.http, method, &self.url(path), Some(token), body).await
    }

    async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    async fn put(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(reqwest::Method::PUT, path, token, Some(body))
            .await
    }

    async fn patch(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(reqwest::Method::PATCH, path, token, Some(body))
            .await
    }

    /// POSTs, expects a 201 and returns the new object's id.
    async fn create(&self, path: &str, token: &str, body: Value) -> Uuid {
        let (status, json) = self.post(path, token, body).await;
        assert_eq!(status, 201, "POST {path}: {json}");
        id_at(&json["id"])
    }

    /// Polls `GET path` until `check` holds; the last body.
    async fn until(&self, path: &str, token: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let (status, body) = self.get(path, token).await;
            if status == 200 && check(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "GET {path} never satisfied the check; last: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(mut self) {
        while let Some(r) = self.running.pop() {
            r.stop().await.expect("clean stop");
        }
    }
}

/// An organisation with one linked system.
struct Org {
    id: Uuid,
    system: Uuid,
}

impl Org {
    fn as_role(&self, role: Role) -> String {
        token(role, Some(self.id))
    }

    fn manager(&self) -> String {
        self.as_role(Role::Manager)
    }
}

struct World {
    operator: String,
    op_org: Uuid,
    platform: Uuid,
    /// Declares the incidents; its system links to B's for malware.
    a: Org,
    /// In the blast radius of A's malware incidents.
    b: Org,
    /// On the platform, linked to nobody.
    c: Org,
    /// The central body (`Role::Central`).
    central: String,
    /// An agency on another platform.
    elsewhere: Org,
    elsewhere_operator: String,
}

impl World {
    fn auditor(&self) -> String {
        token(Role::Auditor, None)
    }
}

async fn world(app: &TestApp) -> World {
    let admin = token(Role::Admin, None);
    let org = |name: &'static str, kind: &'static str| {
        let admin = admin.clone();
        async move {
            app.create(
                "/v1/organizations",
                &admin,
                json!({"name": name, "kind": kind}),
            )
            .await
        }
    };
    let op_org = org("Platform Office", "platform_operator").await;
    let operator = token(Role::Operator, Some(op_org));
    let platform = platform_of(app, &operator, op_org, "Common Platform").await;
    let other_op = org("Other Platform Office", "platform_operator").await;
    let elsewhere_operator = token(Role::Operator, Some(other_op));
    let elsewhere_platform =
        platform_of(app, &elsewhere_operator, other_op, "Other Platform").await;
    let central = org("Central Body", "central_body").await;

    let mut agencies = Vec::new();
    for (name, on, by) in [
        ("Agency A", platform, &operator),
        ("Agency B", platform, &operator),
        ("Agency C", platform, &operator),
        ("Agency X", elsewhere_platform, &elsewhere_operator),
    ] {
        let id = org(name, "government_agency").await;
        let system = app
            .create(
                "/v1/systems",
                by,
                json!({"name": format!("{name} records"), "kind": "linked", "owner_org_id": id,
                       "platform_id": on, "confidentiality": 2, "integrity": 1,
                       "availability": 1}),
            )
            .await;
        agencies.push(Org { id, system });
    }
    let elsewhere = agencies.pop().expect("X");
    let c = agencies.pop().expect("C");
    let b = agencies.pop().expect("B");
    let a = agencies.pop().expect("A");
    let (status, body) = app
        .post(
            "/v1/links",
            &operator,
            json!({"from_system_id": a.system, "to_system_id": b.system, "kind": "network",
                   "propagates": ["malware"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // The emergency service's copy of the registry knows every member (a
    // member reads its platform's playbooks), demarcation every system.
    for (member, on) in [
        (&a, platform),
        (&b, platform),
        (&c, platform),
        (&elsewhere, elsewhere_platform),
    ] {
        app.until(
            &format!("/v1/platforms/{on}/playbooks"),
            &member.manager(),
            |_| true,
        )
        .await;
    }
    app.until(
        &format!("/v1/platforms/{platform}/matrix/gaps"),
        &operator,
        |gaps| gaps["systems"].as_u64() == Some(3),
    )
    .await;
    World {
        operator,
        op_org,
        platform,
        a,
        b,
        c,
        central: token(Role::Central, Some(central)),
        elsewhere,
        elsewhere_operator,
    }
}

async fn platform_of(app: &TestApp, operator: &str, owner: Uuid, name: &str) -> Uuid {
    app.create(
        "/v1/systems",
        operator,
        json!({"name": name, "kind": "platform", "owner_org_id": owner,
               "confidentiality": 3, "integrity": 2, "availability": 2}),
    )
    .await
}

/// A valid declaration on `system`: malware, severity 2, TLP:AMBER.
fn declaration(system: Uuid) -> Value {
    json!({"system_id": system, "category": "malware", "severity": 2, "tlp": "amber",
           "summary": "Ransomware on the records server",
           "detected_at": (Utc::now() - chrono::Duration::minutes(10)).to_rfc3339()})
}

/// `body` with `field` set to `value`.
fn with(mut body: Value, field: &str, value: Value) -> Value {
    body[field] = value;
    body
}

/// A's CSIRT declares a malware incident on A's system; B is at risk.
async fn declare(app: &TestApp, w: &World) -> Uuid {
    let (status, incident) = app
        .post(
            "/v1/incidents",
            &w.a.as_role(Role::Csirt),
            declaration(w.a.system),
        )
        .await;
    assert_eq!(status, 201, "{incident}");
    let id = id_at(&incident["id"]);
    app.until(&format!("/v1/incidents/{id}"), &w.a.manager(), |i| {
        org_ids(&i["affected"]).contains(&w.b.id)
    })
    .await;
    id
}

fn id_at(v: &Value) -> Uuid {
    v.as_str().and_then(|s| s.parse().ok()).expect("an id")
}

fn items(list: &Value) -> &Vec<Value> {
    list["items"].as_array().expect("items")
}

fn ids_of(list: &Value) -> Vec<Uuid> {
    items(list).iter().map(|i| id_at(&i["id"])).collect()
}

fn org_ids(rows: &Value) -> Vec<Uuid> {
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|r| id_at(&r["org_id"]))
        .collect()
}

/// A 400 (or other `status`) problem naming `field`.
#[track_caller]
fn assert_field(answer: &Answer, status: u16, field: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["field"], field, "{}", answer.1);
}

/// A problem with the stable error code `code`.
#[track_caller]
fn assert_code(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"], code, "{}", answer.1);
}

// ---- declaring -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_declarations_get_a_400_naming_the_field_and_create_nothing() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let good = declaration(w.a.system);
    let in_an_hour = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let cases = [
        (
            with(good.clone(), "category", json!("earthquake")),
            "category",
        ),
        (with(good.clone(), "severity", json!(0)), "severity"),
        (with(good.clone(), "severity", json!(5)), "severity"),
        (with(good.clone(), "severity", json!("high")), "severity"),
        (with(good.clone(), "tlp", json!("white")), "tlp"),
        (with(good.clone(), "summary", json!("")), "summary"),
        (with(good.clone(), "summary", json!("   ")), "summary"),
        (
            with(good.clone(), "detected_at", json!(in_an_hour)),
            "detected_at",
        ),
        (
            with(good.clone(), "detected_at", json!("yesterday")),
            "detected_at",
        ),
        // Mass assignment: fields the server sets are refused by name.
        (with(good.clone(), "status", json!("closed")), "status"),
        (with(good.clone(), "id", json!(Uuid::now_v7())), "id"),
        (with(good.clone(), "org_id", json!(w.b.id)), "org_id"),
    ];
    let csirt = w.a.as_role(Role::Csirt);
    for (body, field) in cases {
        let answer = app.post("/v1/incidents", &csirt, body).await;
        assert_field(&answer, 400, field);
        assert_eq!(answer.1["error"], "invalid_field", "{}", answer.1);
    }
    let mut missing = good.clone();
    missing.as_object_mut().expect("object").remove("system_id");
    assert_field(
        &app.post("/v1/incidents", &csirt, missing).await,
        400,
        "system_id",
    );

    for reader in [w.a.manager(), w.operator.clone(), w.auditor()] {
        let (status, list) = app.get("/v1/incidents", &reader).await;
        assert_eq!(status, 200, "{list}");
        assert!(items(&list).is_empty(), "nothing was created: {list}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owners_responders_and_the_platform_operator_declare_and_no_one_else() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let body = declaration(w.a.system);
    for who in [
        w.a.as_role(Role::Manager),
        w.a.as_role(Role::Csirt),
        w.a.as_role(Role::Ciso),
        w.operator.clone(),
    ] {
        let (status, incident) = app.post("/v1/incidents", &who, body.clone()).await;
        assert_eq!(status, 201, "{incident}");
        assert_eq!(incident["org_id"], json!(w.a.id), "the owner declares");
        assert_eq!(incident["platform_id"], json!(w.platform));
        assert_eq!(incident["status"], "declared");
    }
    // Readers of the platform who do not answer for the system: 403.
    for who in [
        w.auditor(),
        w.b.manager(),
        w.b.as_role(Role::Csirt),
        w.a.as_role(Role::Auditor),
        w.a.as_role(Role::Operator),
    ] {
        let (status, body) = app.post("/v1/incidents", &who, body.clone()).await;
        assert_eq!(status, 403, "{body}");
    }
    // To an organisation on another platform the system does not exist.
    for who in [w.elsewhere.manager(), w.elsewhere_operator.clone()] {
        let answer = app.post("/v1/incidents", &who, body.clone()).await;
        assert_code(&answer, 404, "not_found");
    }
    let unknown = with(body.clone(), "system_id", json!(Uuid::now_v7()));
    assert_code(
        &app.post("/v1/incidents", &w.operator, unknown).await,
        404,
        "not_found",
    );

    let (_, list) = app.get("/v1/incidents", &w.operator).await;
    assert_eq!(
        items(&list).len(),
        4,
        "only the allowed declarations: {list}"
    );
    app.stop().await;
}

// ---- reading ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_read_an_incident_and_to_anyone_else_it_does_not_exist() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let id = declare(&app, &w).await;
    let paths = [
        format!("/v1/incidents/{id}"),
        format!("/v1/incidents/{id}/timeline"),
        format!("/v1/incidents/{id}/tasks"),
        format!("/v1/incidents/{id}/messages"),
    ];
    for reader in [
        w.a.manager(),
        w.operator.clone(),
        w.central.clone(),
        w.auditor(),
    ] {
        for path in &paths {
            let (status, body) = app.get(path, &reader).await;
            assert_eq!(status, 200, "GET {path}: {body}");
        }
        let (_, list) = app.get("/v1/incidents", &reader).await;
        assert!(ids_of(&list).contains(&id), "{list}");
        let (_, seen) = app.get(&paths[0], &reader).await;
        assert_eq!(
            seen["summary"], "Ransomware on the records server",
            "they see it all"
        );
    }
    // B may be hit: it reads, within the marking (its own row only).
    let (status, as_b) = app.get(&paths[0], &w.b.manager()).await;
    assert_eq!(status, 200, "{as_b}");
    assert_eq!(org_ids(&as_b["affected"]), vec![w.b.id]);

    // C is not at risk, X is on another platform: it does not exist.
    for outsider in [
        w.c.manager(),
        w.c.as_role(Role::Csirt),
        w.elsewhere.manager(),
        w.elsewhere_operator.clone(),
    ] {
        for path in &paths {
            let answer = app.get(path, &outsider).await;
            assert_code(&answer, 404, "not_found");
        }
        let (status, list) = app.get("/v1/incidents", &outsider).await;
        assert_eq!(status, 200, "{list}");
        assert!(!ids_of(&list).contains(&id), "{list}");
        assert_eq!(
            app.get(&format!("/v1/incidents/{id}/reports"), &outsider)
                .await
                .0,
            404
        );
    }
    // A malformed id names nothing either.
    assert_eq!(
        app.get("/v1/incidents/not-an-id", &w.a.manager()).await.0,
        404
    );
    app.stop().await;
}

// ---- the status machine ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_moves_one_stage_at_a_time_and_closing_needs_a_review() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let id = declare(&app, &w).await;
    let path = format!("/v1/incidents/{id}");
    let status_path = format!("{path}/status");
    let manager = w.a.manager();
    let change = |to: &str, reason: &str| json!({"to": to, "reason": reason});

    let answer = app
        .post(&status_path, &manager, change("contained", "skip"))
        .await;
    assert_code(&answer, 409, "illegal_status_change");
    assert_field(
        &app.post(&status_path, &manager, change("archived", "x"))
            .await,
        400,
        "to",
    );
    assert_field(
        &app.post(&status_path, &manager, change("triaged", "  "))
            .await,
        400,
        "reason",
    );
    // Only the declaring organisation's responders and the operator act.
    assert_eq!(
        app.post(&status_path, &w.b.manager(), change("triaged", "b"))
            .await
            .0,
        403
    );
    assert_eq!(
        app.post(&status_path, &w.auditor(), change("triaged", "audit"))
            .await
            .0,
        403
    );
    assert_eq!(
        app.post(&status_path, &w.c.manager(), change("triaged", "c"))
            .await
            .0,
        404
    );
    let (_, seen) = app.get(&path, &manager).await;
    assert_eq!(seen["status"], "declared", "nothing changed");

    // Every legal step, flare-ups included.
    let steps = [
        ("triaged", "Scope confirmed", &manager),
        ("contained", "Link isolated", &manager),
        ("triaged", "Second host found", &w.operator),
        ("contained", "Second host isolated", &manager),
        ("recovered", "Restored from backup", &manager),
        ("contained", "Reinfection seen", &w.operator),
        ("recovered", "Clean again", &manager),
    ];
    for (to, reason, who) in steps {
        let (status, body) = app.post(&status_path, who, change(to, reason)).await;
        assert_eq!(status, 200, "{to}: {body}");
        assert_eq!(body["status"], to);
    }
    let answer = app
        .post(&status_path, &manager, change("closed", "done"))
        .await;
    assert_code(&answer, 409, "review_missing");

    // A review action must belong to a participant (C is none).
    let review = |owner: Uuid| {
        json!({"causes": "A phishing mail opened on a shared terminal",
               "actions": [{"text": "Filter attachments at the gateway", "owner_org_id": owner,
                            "due_on": "2027-01-31"}],
               "lessons": "Rules should require attachment filtering"})
    };
    let answer = app
        .put(&format!("{path}/review"), &manager, review(w.c.id))
        .await;
    assert_field(&answer, 400, "actions[0].owner_org_id");
    let (_, seen) = app.get(&path, &manager).await;
    assert!(seen["review"].is_null(), "no review was stored: {seen}");
    assert_eq!(
        app.put(&format!("{path}/review"), &w.b.manager(), review(w.b.id))
            .await
            .0,
        403,
        "an affected organisation does not write the review"
    );
    let (status, body) = app
        .put(&format!("{path}/review"), &manager, review(w.b.id))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["review"]["actions"][0]["owner_org_id"], json!(w.b.id));
    assert_eq!(body["review"]["actions"][0]["state"], "open");

    let (status, body) = app
        .post(&status_path, &manager, change("closed", "Reviewed"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "closed");

    // The timeline tells each step with its reason.
    let (_, timeline) = app.get(&format!("{path}/timeline"), &manager).await;
    let changes: Vec<(String, String, String)> = items(&timeline)
        .iter()
        .filter(|e| e["kind"] == "status_changed")
        .map(|e| {
            let d = &e["detail"];
            let s = |v: &Value| v.as_str().expect("string").to_owned();
            (s(&d["from"]), s(&d["to"]), s(&d["reason"]))
        })
        .collect();
    let mut expected = Vec::new();
    let mut from = "declared";
    for (to, reason, _) in steps.iter().chain([&("closed", "Reviewed", &manager)]) {
        expected.push((from.to_owned(), (*to).to_owned(), (*reason).to_owned()));
        from = *to;
    }
    assert_eq!(changes, expected);
    let texts: Vec<&str> = items(&timeline)
        .iter()
        .filter(|e| e["kind"] == "status_changed")
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert!(
        texts[0].contains("Scope confirmed"),
        "the text carries the reason: {texts:?}"
    );
    assert!(
        items(&timeline).iter().any(|e| e["kind"] == "reviewed"),
        "{timeline}"
    );

    // Closed is final, and closed incidents take no more messages.
    assert_code(
        &app.post(&status_path, &manager, change("recovered", "again"))
            .await,
        409,
        "illegal_status_change",
    );
    let answer = app
        .post(
            &format!("{path}/messages"),
            &manager,
            json!({"kind": "update", "text": "One more thing"}),
        )
        .await;
    assert_code(&answer, 409, "incident_closed");
    let (_, messages) = app.get(&format!("{path}/messages"), &manager).await;
    assert!(items(&messages).is_empty(), "{messages}");
    app.stop().await;
}

// ---- playbooks -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_platform_operator_writes_playbooks() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let path = format!("/v1/platforms/{}/playbooks", w.platform);
    let book = |category: &str, control: &str| {
        json!({"category": category, "title": format!("{category} on a linked system"),
               "steps": [{"title": "Isolate the link", "control": control, "due_after_minutes": 30}]})
    };
    assert_code(
        &app.post(&path, &w.a.manager(), book("malware", "incident-response"))
            .await,
        403,
        "forbidden",
    );
    assert_code(
        &app.post(&path, &w.auditor(), book("malware", "incident-response"))
            .await,
        403,
        "forbidden",
    );
    for outsider in [w.elsewhere.manager(), w.elsewhere_operator.clone()] {
        assert_code(
            &app.post(&path, &outsider, book("malware", "incident-response"))
                .await,
            404,
            "not_found",
        );
    }
    assert_field(
        &app.post(&path, &w.operator, book("malware", "Bad Id"))
            .await,
        400,
        "steps[0].control",
    );
    assert_field(
        &app.post(&path, &w.operator, book("earthquake", "incident-response"))
            .await,
        400,
        "category",
    );
    assert_field(
        &app.post(
            &path,
            &w.operator,
            with(book("malware", "incident-response"), "version", json!(7)),
        )
        .await,
        400,
        "version",
    );
    let (_, list) = app.get(&path, &w.operator).await;
    assert!(
        items(&list).is_empty(),
        "nothing refused was stored: {list}"
    );

    let (status, created) = app
        .post(&path, &w.operator, book("malware", "incident-response"))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["version"], 1);
    let id = id_at(&created["id"]);
    assert_code(
        &app.post(&path, &w.operator, book("malware", "access-control"))
            .await,
        409,
        "playbook_exists",
    );
    let (status, outage) = app
        .post(&path, &w.operator, book("outage", "backup.restore"))
        .await;
    assert_eq!(status, 201, "{outage}");

    let change = json!({"title": "Malware, revised", "steps": [
        {"title": "Isolate the link", "control": "incident-response", "due_after_minutes": 15},
        {"title": "Revoke shared credentials", "control": "access-control", "due_after_minutes": 60,
         "description": "Every credential the link used"}]});
    assert_eq!(
        app.put(
            &format!("/v1/playbooks/{id}"),
            &w.a.manager(),
            change.clone()
        )
        .await
        .0,
        403
    );
    assert_eq!(
        app.put(
            &format!("/v1/playbooks/{id}"),
            &w.elsewhere_operator,
            change.clone()
        )
        .await
        .0,
        404
    );
    let (status, updated) = app
        .put(&format!("/v1/playbooks/{id}"), &w.operator, change.clone())
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["title"], "Malware, revised");
    assert_eq!(updated["steps"].as_array().expect("steps").len(), 2);
    let (_, again) = app
        .put(&format!("/v1/playbooks/{id}"), &w.operator, change)
        .await;
    assert_eq!(again["version"], 3);

    // Members read them; the rest of the world does not.
    for reader in [w.operator.clone(), w.a.manager(), w.auditor()] {
        let (status, list) = app.get(&path, &reader).await;
        assert_eq!(status, 200, "{list}");
        let categories: Vec<&str> = items(&list)
            .iter()
            .filter_map(|p| p["category"].as_str())
            .collect();
        assert_eq!(categories, vec!["malware", "outage"]);
        let (status, one) = app.get(&format!("/v1/playbooks/{id}"), &reader).await;
        assert_eq!(status, 200, "{one}");
        assert_eq!(one["version"], 3);
    }
    assert_eq!(app.get(&path, &w.elsewhere.manager()).await.0, 404);
    assert_eq!(
        app.get(&format!("/v1/playbooks/{id}"), &w.elsewhere.manager())
            .await
            .0,
        404
    );
    app.stop().await;
}

// ---- tasks -----------------------------------------------------------------

/// A malware playbook of three steps; the matrix holds `accountable`
/// accountable for incident response on A's connection (the other two
/// controls name nobody: the operator owns them).
async fn playbook_and_matrix(app: &TestApp, w: &World, accountable: Uuid) {
    let (status, body) = app
        .put(
            &format!("/v1/platforms/{}/matrix", w.platform),
            &w.operator,
            json!({"assignments": [{"control": "incident-response", "system_id": w.a.system,
                                    "organization_id": accountable, "role": "accountable"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.create(
        &format!("/v1/platforms/{}/playbooks", w.platform),
        &w.operator,
        json!({"category": "malware", "title": "Malware on a linked system", "steps": [
            {"title": "Isolate the link", "control": "incident-response", "due_after_minutes": 30},
            {"title": "Revoke shared credentials", "control": "access-control", "due_after_minutes": 60},
            {"title": "Restore from backup", "control": "access-control", "due_after_minutes": 120}]}),
    )
    .await;
}

/// The incident's three tasks, once they are made.
async fn tasks_of(app: &TestApp, w: &World, incident: Uuid) -> Vec<Value> {
    let tasks = app
        .until(
            &format!("/v1/incidents/{incident}/tasks"),
            &w.a.manager(),
            |t| items(t).len() == 3,
        )
        .await;
    items(&tasks).clone()
}

fn task_path(task: &Value) -> String {
    format!("/v1/tasks/{}", task["id"].as_str().expect("task id"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_move_forward_and_their_owner_or_the_declaring_org_moves_them() {
    let app = spawn_app().await;
    let w = world(&app).await;
    playbook_and_matrix(&app, &w, w.b.id).await;
    let id = declare(&app, &w).await;
    let tasks = tasks_of(&app, &w, id).await;
    assert_eq!(tasks[0]["owner_org_id"], json!(w.b.id));
    assert_eq!(tasks[0]["owner_source"], "matrix");
    for t in &tasks[1..] {
        assert_eq!(t["owner_org_id"], json!(w.op_org));
        assert_eq!(t["owner_source"], "platform_operator");
    }
    let (first, second, third) = (
        task_path(&tasks[0]),
        task_path(&tasks[1]),
        task_path(&tasks[2]),
    );
    let state = |s: &str| json!({"state": s});

    // B owns the first task (the matrix holds it accountable) and moves it.
    let (status, moved) = app
        .patch(&first, &w.b.manager(), state("in_progress"))
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["state"], "in_progress");
    assert_eq!(moved["updated_by"], "test-manager");
    let (status, moved) = app
        .patch(&first, &w.b.as_role(Role::Csirt), state("done"))
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["state"], "done");
    assert!(!moved["overdue"].as_bool().expect("overdue"));
    for back in ["open", "in_progress", "not_applicable"] {
        let answer = app
            .patch(
                &first,
                &w.b.manager(),
                json!({"state": back, "reason": "changed our mind"}),
            )
            .await;
        assert_code(&answer, 409, "illegal_task_change");
    }
    assert_field(
        &app.patch(&first, &w.b.manager(), state("finished")).await,
        400,
        "state",
    );

    // Skipping needs a reason.
    assert_field(
        &app.patch(&second, &w.a.manager(), state("not_applicable"))
            .await,
        400,
        "reason",
    );
    assert_field(
        &app.patch(
            &second,
            &w.a.manager(),
            json!({"state": "not_applicable", "reason": "   "}),
        )
        .await,
        400,
        "reason",
    );
    // The declaring organisation moves a task it does not own.
    let (status, moved) = app
        .patch(&second, &w.a.manager(), state("in_progress"))
        .await;
    assert_eq!(status, 200, "{moved}");
    // B neither sees nor moves the operator's tasks (TLP:AMBER), C nothing.
    assert_eq!(
        app.patch(&second, &w.b.manager(), state("done")).await.0,
        404
    );
    assert_eq!(
        app.patch(&third, &w.c.manager(), state("done")).await.0,
        404
    );
    assert_eq!(
        app.patch(&third, &w.auditor(), state("done")).await.0,
        403,
        "auditors read only"
    );
    let (_, as_b) = app
        .get(&format!("/v1/incidents/{id}/tasks"), &w.b.manager())
        .await;
    assert_eq!(ids_of(&as_b), vec![id_at(&tasks[0]["id"])]);
    // The operator owns the third and skips it, with a reason.
    let (status, moved) = app
        .patch(
            &third,
            &w.operator,
            json!({"state": "not_applicable", "reason": "No backup needed: nothing encrypted"}),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["reason"], "No backup needed: nothing encrypted");

    let (_, now) = app
        .get(&format!("/v1/incidents/{id}/tasks"), &w.a.manager())
        .await;
    let states: Vec<&str> = items(&now)
        .iter()
        .filter_map(|t| t["state"].as_str())
        .collect();
    assert_eq!(states, vec!["done", "in_progress", "not_applicable"]);
    let (_, timeline) = app
        .get(&format!("/v1/incidents/{id}/timeline"), &w.a.manager())
        .await;
    assert_eq!(
        items(&timeline)
            .iter()
            .filter(|e| e["kind"] == "task_changed")
            .count(),
        4,
        "every move and only the moves: {timeline}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_owner_outside_the_blast_radius_moves_its_task() {
    let app = spawn_app().await;
    let w = world(&app).await;
    // C answers for incident response on A's connection, though the
    // incident cannot reach C's system.
    playbook_and_matrix(&app, &w, w.c.id).await;
    let id = declare(&app, &w).await;
    let tasks = tasks_of(&app, &w, id).await;
    assert_eq!(tasks[0]["owner_org_id"], json!(w.c.id));
    let (status, moved) = app
        .patch(
            &task_path(&tasks[0]),
            &w.c.manager(),
            json!({"state": "in_progress"}),
        )
        .await;
    assert_eq!(status, 200, "the owner moves its task: {moved}");
    let (status, own) = app
        .get(&format!("/v1/incidents/{id}/tasks"), &w.c.manager())
        .await;
    assert_eq!(status, 200, "the owner sees its task: {own}");
    assert_eq!(ids_of(&own), vec![id_at(&tasks[0]["id"])]);
    app.stop().await;
}

// ---- reports ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_come_in_order_are_frozen_once_filed_and_reach_the_central_body_only_filed() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let id = declare(&app, &w).await;
    let reports = format!("/v1/incidents/{id}/reports");
    let manager = w.a.manager();
    let kind = |k: &str| json!({"kind": k});

    for early in ["follow_up", "final"] {
        assert_field(
            &app.post(&reports, &manager, kind(early)).await,
            400,
            "kind",
        );
    }
    assert_field(
        &app.post(&reports, &manager, kind("weekly")).await,
        400,
        "kind",
    );
    assert_eq!(
        app.post(&reports, &w.b.manager(), kind("initial")).await.0,
        403,
        "an affected organisation reports nothing"
    );
    assert_eq!(app.post(&reports, &w.central, kind("initial")).await.0, 403);
    let (status, draft) = app.post(&reports, &manager, kind("initial")).await;
    assert_eq!(status, 201, "{draft}");
    assert_eq!(draft["state"], "draft");
    assert!(
        draft["content"]["what_happened"]
            .as_str()
            .is_some_and(|s| s.contains("Ransomware on the records server")),
        "{draft}"
    );
    let report = format!("/v1/reports/{}", draft["id"].as_str().expect("id"));
    assert_field(
        &app.post(&reports, &manager, kind("initial")).await,
        400,
        "kind",
    );
    assert_field(
        &app.post(&reports, &manager, kind("follow_up")).await,
        400,
        "kind",
    );

    // A draft stays with the reporting organisation.
    for reader in [&w.central, &w.b.manager(), &w.c.manager()] {
        assert_code(&app.get(&report, reader).await, 404, "not_found");
    }
    let (_, list) = app.get("/v1/reports", &w.central).await;
    assert!(items(&list).is_empty(), "{list}");
    let (_, list) = app.get(&reports, &w.central).await;
    assert!(items(&list).is_empty(), "{list}");
    let (_, list) = app.get("/v1/reports", &manager).await;
    assert_eq!(ids_of(&list), vec![id_at(&draft["id"])]);

    assert_eq!(
        app.patch(&report, &w.b.manager(), json!({"notes": "B was here"}))
            .await
            .0,
        404
    );
    let (status, edited) = app
        .patch(
            &report,
            &manager,
            json!({"notes": "Power supply failure in the data centre"}),
        )
        .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(
        edited["content"]["notes"],
        "Power supply failure in the data centre"
    );
    let (status, filed) = app
        .post(&format!("{report}/file"), &manager, json!({}))
        .await;
    assert_eq!(status, 200, "{filed}");
    assert_eq!(filed["state"], "filed");
    assert!(filed["filed_at"].is_string(), "{filed}");
    let (_, incident) = app.get(&format!("/v1/incidents/{id}"), &manager).await;
    assert!(incident["report_due_at"].is_null(), "{incident}");

    // Filed is final.
    assert_code(
        &app.patch(&report, &manager, json!({"notes": "Changed later"}))
            .await,
        409,
        "report_filed",
    );
    assert_code(
        &app.post(&format!("{report}/file"), &manager, json!({}))
            .await,
        409,
        "report_filed",
    );
    assert_field(
        &app.post(&reports, &manager, kind("initial")).await,
        400,
        "kind",
    );

    // The central body reads what was filed.
    let (status, seen) = app.get(&report, &w.central).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["state"], "filed");
    assert_eq!(
        seen["content"]["notes"], "Power supply failure in the data centre",
        "the edit after filing changed nothing"
    );
    let (_, list) = app.get("/v1/reports", &w.central).await;
    assert_eq!(ids_of(&list), vec![id_at(&draft["id"])]);
    for outsider in [w.b.manager(), w.c.manager()] {
        assert_eq!(app.get(&report, &outsider).await.0, 404);
    }

    // Now a follow-up may be written; its draft stays home too.
    let (status, follow_up) = app.post(&reports, &manager, kind("follow_up")).await;
    assert_eq!(status, 201, "{follow_up}");
    let follow_up = format!("/v1/reports/{}", follow_up["id"].as_str().expect("id"));
    assert_eq!(app.get(&follow_up, &w.central).await.0, 404);
    let (_, list) = app.get(&reports, &w.central).await;
    assert_eq!(ids_of(&list), vec![id_at(&draft["id"])]);
    let (_, list) = app.get(&reports, &manager).await;
    assert_eq!(items(&list).len(), 2, "{list}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_operator_lists_the_reports_it_acts_on() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let id = declare(&app, &w).await;
    // The operator acts on the incident: it writes the report itself.
    let (status, draft) = app
        .post(
            &format!("/v1/incidents/{id}/reports"),
            &w.operator,
            json!({"kind": "initial"}),
        )
        .await;
    assert_eq!(status, 201, "{draft}");
    let report = id_at(&draft["id"]);
    assert_eq!(
        app.get(&format!("/v1/reports/{report}"), &w.operator)
            .await
            .0,
        200
    );
    let (status, list) = app.get("/v1/reports", &w.operator).await;
    assert_eq!(status, 200, "{list}");
    assert!(
        ids_of(&list).contains(&report),
        "GET /v1/reports lists the reports of incidents the caller acts on: {list}"
    );
    app.stop().await;
}

// ---- advisories ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advisories_come_from_the_operator_and_each_recipient_sees_its_own_row() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let act_by = (Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    let advisory = json!({"platform_id": w.platform, "title": "Patch CVE-2026-0001",
                          "text": "Apply the vendor fix", "tlp": "green", "severity": 2,
                          "act_by": act_by});
    assert_code(
        &app.post("/v1/advisories", &w.a.manager(), advisory.clone())
            .await,
        403,
        "forbidden",
    );
    assert_code(
        &app.post("/v1/advisories", &w.elsewhere_operator, advisory.clone())
            .await,
        404,
        "not_found",
    );
    let mut everywhere = advisory.clone();
    everywhere
        .as_object_mut()
        .expect("object")
        .remove("platform_id");
    assert_field(
        &app.post("/v1/advisories", &w.operator, everywhere.clone())
            .await,
        400,
        "platform_id",
    );
    let past = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    assert_field(
        &app.post(
            "/v1/advisories",
            &w.operator,
            with(advisory.clone(), "act_by", json!(past)),
        )
        .await,
        400,
        "act_by",
    );
    let far = (Utc::now() + chrono::Duration::days(400)).to_rfc3339();
    assert_field(
        &app.post(
            "/v1/advisories",
            &w.operator,
            with(advisory.clone(), "act_by", json!(far)),
        )
        .await,
        400,
        "act_by",
    );
    assert_field(
        &app.post(
            "/v1/advisories",
            &w.operator,
            with(advisory.clone(), "tlp", json!("white")),
        )
        .await,
        400,
        "tlp",
    );
    let (_, list) = app.get("/v1/advisories", &w.operator).await;
    assert!(
        items(&list).is_empty(),
        "nothing refused was issued: {list}"
    );

    let (status, issued) = app
        .post("/v1/advisories", &w.operator, advisory.clone())
        .await;
    assert_eq!(status, 201, "{issued}");
    let id = id_at(&issued["id"]);
    let path = format!("/v1/advisories/{id}");
    let mut to = org_ids(&issued["confirmations"]);
    to.sort();
    let mut members = vec![w.op_org, w.a.id, w.b.id, w.c.id];
    members.sort();
    assert_eq!(to, members, "every member of the platform: {issued}");
    assert_eq!(issued["organizations"], 4);
    assert_eq!(issued["confirmed"], 0);

    // Each recipient sees its own confirmation, the issuer all of them.
    for member in [&w.a, &w.b, &w.c] {
        let (status, seen) = app.get(&path, &member.manager()).await;
        assert_eq!(status, 200, "{seen}");
        assert_eq!(org_ids(&seen["confirmations"]), vec![member.id]);
        let (_, list) = app.get("/v1/advisories", &member.manager()).await;
        let listed = items(&list)
            .iter()
            .find(|a| a["id"] == json!(id))
            .expect("listed");
        assert_eq!(org_ids(&listed["confirmations"]), vec![member.id]);
    }
    for everyone in [&w.operator, &w.central, &w.auditor()] {
        let (status, seen) = app.get(&path, everyone).await;
        assert_eq!(status, 200, "{seen}");
        assert_eq!(seen["confirmations"].as_array().expect("rows").len(), 4);
    }
    // Another platform's organisations do not see it.
    for outsider in [w.elsewhere.manager(), w.elsewhere_operator.clone()] {
        assert_code(&app.get(&path, &outsider).await, 404, "not_found");
        let (_, list) = app.get("/v1/advisories", &outsider).await;
        assert!(!ids_of(&list).contains(&id), "{list}");
    }

    // The central body alone speaks to every platform.
    let (status, issued) = app.post("/v1/advisories", &w.central, everywhere).await;
    assert_eq!(status, 201, "{issued}");
    assert!(issued["platform_id"].is_null());
    let general = id_at(&issued["id"]);
    let to = org_ids(&issued["confirmations"]);
    for org in [w.a.id, w.elsewhere.id, w.op_org] {
        assert!(to.contains(&org), "{org} in {issued}");
    }
    let (status, seen) = app
        .get(&format!("/v1/advisories/{general}"), &w.elsewhere.manager())
        .await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(org_ids(&seen["confirmations"]), vec![w.elsewhere.id]);
    app.stop().await;
}

// ---- request bodies and paging -----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_limit_below_1_or_not_a_number_is_a_400_naming_limit_and_above_1000_is_capped() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let first = declare(&app, &w).await;
    let manager = w.a.manager();
    let lists = [
        "/v1/incidents".to_owned(),
        format!("/v1/incidents/{first}/timeline"),
        format!("/v1/incidents/{first}/messages"),
        "/v1/reports".to_owned(),
        "/v1/advisories".to_owned(),
    ];
    for list in &lists {
        for bad in ["0", "-1", "ten"] {
            let answer = app.get(&format!("{list}?limit={bad}"), &manager).await;
            assert_field(&answer, 400, "limit");
        }
        // Above the cap is served as the cap, not refused.
        let answer = app.get(&format!("{list}?limit=100000"), &manager).await;
        assert_eq!(answer.0, 200, "{}", answer.1);
        let answer = app.get(&format!("{list}?cursor=nope"), &manager).await;
        assert_field(&answer, 400, "cursor");
    }
    assert_field(
        &app.get("/v1/incidents?status=open", &manager).await,
        400,
        "status",
    );
    assert_field(
        &app.get("/v1/incidents?platform_id=nope", &manager).await,
        400,
        "platform_id",
    );

    // Pages: newest first, `next` until the last.
    let second = declare(&app, &w).await;
    let third = declare(&app, &w).await;
    let (status, page) = app.get("/v1/incidents?limit=2", &manager).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids_of(&page), vec![third, second]);
    let next = page["next"].as_str().expect("a next page").to_owned();
    let (_, page) = app
        .get(&format!("/v1/incidents?limit=2&cursor={next}"), &manager)
        .await;
    assert_eq!(ids_of(&page), vec![first]);
    assert!(page["next"].is_null(), "{page}");
    let (_, page) = app
        .get(
            &format!("/v1/incidents?status=declared&platform_id={}", w.platform),
            &manager,
        )
        .await;
    assert_eq!(items(&page).len(), 3);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_body_refuses_fields_the_server_sets() {
    let app = spawn_app().await;
    let w = world(&app).await;
    playbook_and_matrix(&app, &w, w.b.id).await;
    let id = declare(&app, &w).await;
    let tasks = tasks_of(&app, &w, id).await;
    let manager = w.a.manager();
    let (_, report) = app
        .post(
            &format!("/v1/incidents/{id}/reports"),
            &manager,
            json!({"kind": "initial"}),
        )
        .await;
    let report = report["id"].as_str().expect("report id").to_owned();
    let (_, books) = app
        .get(
            &format!("/v1/platforms/{}/playbooks", w.platform),
            &w.operator,
        )
        .await;
    let book = items(&books)[0]["id"]
        .as_str()
        .expect("playbook id")
        .to_owned();
    let step = json!({"title": "Isolate", "control": "incident-response", "due_after_minutes": 5});

    let cases = [
        (
            reqwest::Method::POST,
            format!("/v1/incidents/{id}/status"),
            manager.clone(),
            json!({"to": "triaged", "reason": "x", "status": "closed"}),
            "status",
        ),
        (
            reqwest::Method::PATCH,
            task_path(&tasks[0]),
            manager.clone(),
            json!({"state": "done", "owner_org_id": w.a.id}),
            "owner_org_id",
        ),
        (
            reqwest::Method::POST,
            format!("/v1/platforms/{}/playbooks", w.platform),
            w.operator.clone(),
            json!({"category": "outage", "title": "Outage", "steps": [step], "platform_id": w.platform}),
            "platform_id",
        ),
        (
            reqwest::Method::PUT,
            format!("/v1/playbooks/{book}"),
            w.operator.clone(),
            json!({"title": "Malware", "steps": [step], "version": 9}),
            "version",
        ),
        (
            reqwest::Method::PUT,
            format!("/v1/playbooks/{book}"),
            w.operator.clone(),
            json!({"title": "Malware", "steps": [with(step.clone(), "owner_org_id", json!(w.b.id))]}),
            "steps[0].owner_org_id",
        ),
        (
            reqwest::Method::POST,
            format!("/v1/incidents/{id}/reports"),
            manager.clone(),
            json!({"kind": "follow_up", "state": "filed"}),
            "state",
        ),
        (
            reqwest::Method::PATCH,
            format!("/v1/reports/{report}"),
            manager.clone(),
            json!({"notes": "n", "state": "filed"}),
            "state",
        ),
        (
            reqwest::Method::POST,
            format!("/v1/incidents/{id}/messages"),
            manager.clone(),
            json!({"kind": "update", "text": "t", "from_org_id": w.b.id}),
            "from_org_id",
        ),
        (
            reqwest::Method::POST,
            "/v1/advisories".to_owned(),
            w.operator.clone(),
            json!({"platform_id": w.platform, "title": "t", "text": "t", "tlp": "green",
                   "severity": 3, "issued_by_org": w.b.id}),
            "issued_by_org",
        ),
    ];
    for (method, path, who, body, field) in cases {
        let answer = app.call(method, &path, &who, Some(body)).await;
        assert_field(&answer, 400, field);
    }
    let (_, seen) = app.get(&format!("/v1/incidents/{id}"), &manager).await;
    assert_eq!(seen["status"], "declared", "nothing changed");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_review_body_refuses_fields_it_does_not_know() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let id = declare(&app, &w).await;
    let path = format!("/v1/incidents/{id}/review");
    let review = json!({"causes": "Phishing", "lessons": "", "actions": [
        {"text": "Filter attachments", "owner_org_id": w.a.id, "due_on": "2027-01-31"}]});
    let answer = app
        .put(
            &path,
            &w.a.manager(),
            with(review.clone(), "status", json!("closed")),
        )
        .await;
    assert_field(&answer, 400, "status");
    let mut action = review.clone();
    action["actions"][0]["id"] = json!(Uuid::now_v7());
    let answer = app.put(&path, &w.a.manager(), action).await;
    assert_field(&answer, 400, "actions[0].id");
    let (_, seen) = app
        .get(&format!("/v1/incidents/{id}"), &w.a.manager())
        .await;
    assert!(seen["review"].is_null(), "{seen}");
    app.stop().await;
}
