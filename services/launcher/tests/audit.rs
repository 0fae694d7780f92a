//! The audit record end to end, as `renkei up` runs it: the four services in
//! one process under one address (each registering `GET /v1/audit`), an
//! admin and an operator making changes, `GET /v1/audit` read by an auditor
//! and by organisations, the signed heads fetched, and the `renkei audit
//! verify` binary run on the stopped installation, before and after an
//! entry is edited in SQL.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use renkei_testkit::{NatsServer, TestDb, call, token};
use renkei_web::Role;
use serde_json::{Value, json};
use uuid::Uuid;

struct Installation {
    url: String,
    http: reqwest::Client,
    running: Option<renkei_web::Running>,
    settings: renkei_settings::Settings,
    db: TestDb,
    dir: tempfile::TempDir,
    _nats: NatsServer,
}

impl Installation {
    async fn start() -> Installation {
        // SQLite: the embedded default, every service's file in the data
        // dir, as `renkei up` keeps them. PostgreSQL: a schema each.
        let p = common::Product::start("audit-test", |s| s.audit.head_interval_secs = 1).await;
        Installation {
            url: p.url,
            http: p.http,
            running: p.running,
            settings: p.settings,
            db: p.db,
            dir: p.dir,
            _nats: p.nats,
        }
    }

    async fn post(&self, path: &str, who: &str, body: Value) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        call(
            &self.http,
            reqwest::Method::POST,
            &url,
            Some(who),
            Some(body),
        )
        .await
    }

    async fn get(&self, path: &str, who: &str) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        call(&self.http, reqwest::Method::GET, &url, Some(who), None).await
    }

    async fn create(&self, path: &str, who: &str, body: Value) -> Uuid {
        let (status, json) = self.post(path, who, body).await;
        assert_eq!(status, 201, "POST {path}: {json}");
        id_of(&json["id"])
    }

    /// Every entry `who` may read, page by page (`limit` each).
    async fn audit(&self, who: &str, query: &str, limit: usize) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor = String::new();
        loop {
            let (status, page) = self
                .get(&format!("/v1/audit?limit={limit}{query}{cursor}"), who)
                .await;
            assert_eq!(status, 200, "{page}");
            assert_eq!(page["unavailable"], json!([]), "{page}");
            let got = page["items"].as_array().expect("items").clone();
            assert!(got.len() <= limit);
            items.extend(got);
            match page["next"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return items,
            }
        }
    }

    async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("stops cleanly");
        }
    }

    /// `renkei audit verify` on this installation's databases.
    fn verify(&self, heads: Option<&Path>) -> (i32, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_renkei"));
        command
            .args(["audit", "verify", "--data-dir"])
            .arg(self.dir.path());
        if self.db.is_postgres() {
            command.args(["--database-url", &self.db.url]);
        }
        if let Some(heads) = heads {
            command.arg("--heads").arg(heads);
        }
        let out = command
            .env_remove("RENKEI_DATABASE__URL")
            .env_remove("RENKEI_DATA_DIR")
            .env_remove("RENKEI_AUDIT__SIGNING_KEY")
            .output()
            .expect("renkei audit verify runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
    }

    async fn sql(&self, service: &str, statement: &str) {
        use sea_orm::ConnectionTrait as _;
        let db = renkei_store::Db::connect(&self.settings.database_url_for(service), service, 1)
            .await
            .expect("the service's database");
        db.write
            .execute_unprepared(statement)
            .await
            .expect("tampered");
    }
}

fn id_of(v: &Value) -> Uuid {
    v.as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .unwrap_or_else(|| panic!("not an id: {v}"))
}

fn org_of(entry: &Value, field: &str) -> Option<Uuid> {
    entry[field].as_str().and_then(|s| Uuid::parse_str(s).ok())
}

/// An admin registers organisations; an operator its platform, two linked
/// systems and a link; a manager a contact (in another service).
struct Made {
    operator_org: Uuid,
    a: Uuid,
    b: Uuid,
    system_a: Uuid,
    link: Uuid,
    contact_a: Uuid,
}

async fn make_changes(app: &Installation) -> Made {
    let admin = token(Role::Admin, None);
    let org = |name: &str, kind: &str| json!({"name": name, "kind": kind});
    let operator_org = app
        .create(
            "/v1/organizations",
            &admin,
            org("Platform operator", "platform_operator"),
        )
        .await;
    let a = app
        .create(
            "/v1/organizations",
            &admin,
            org("Agency A", "government_agency"),
        )
        .await;
    let b = app
        .create(
            "/v1/organizations",
            &admin,
            org("Agency B", "government_agency"),
        )
        .await;
    let operator = token(Role::Operator, Some(operator_org));
    let system = |name: &str, kind: &str, owner: Uuid, platform: Option<Uuid>| {
        json!({"name": name, "kind": kind, "owner_org_id": owner, "platform_id": platform,
               "confidentiality": 2, "integrity": 2, "availability": 2})
    };
    let platform = app
        .create(
            "/v1/systems",
            &operator,
            system("Common platform", "platform", operator_org, None),
        )
        .await;
    let system_a = app
        .create(
            "/v1/systems",
            &operator,
            system("A's system", "linked", a, Some(platform)),
        )
        .await;
    let system_b = app
        .create(
            "/v1/systems",
            &operator,
            system("B's system", "linked", b, Some(platform)),
        )
        .await;
    let _ = system_b;
    let link = app
        .create(
            "/v1/links",
            &operator,
            json!({"from_system_id": platform, "to_system_id": system_a, "kind": "network",
                   "propagates": ["malware"]}),
        )
        .await;
    // The contacts service learns of A from the registry's events.
    let manager_a = token(Role::Manager, Some(a));
    let body = json!({"org_id": a, "name": "Duty officer", "role": "csirt",
                      "availability": "emergency", "language": "en",
                      "channels": [{"kind": "email", "address": "csirt@a.example"}]});
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let contact_a = loop {
        let (status, json) = app.post("/v1/contacts", &manager_a, body.clone()).await;
        if status == 201 {
            break id_of(&json["id"]);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the contact was never accepted: {status} {json}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    Made {
        operator_org,
        a,
        b,
        system_a,
        link,
        contact_a,
    }
}

#[tokio::test]
async fn the_audit_record_is_read_by_role_and_verified_by_the_binary() {
    let mut app = Installation::start().await;
    let made = make_changes(&app).await;

    // The auditor (no organisation) reads everything, oldest first, from
    // every service, across pages.
    let auditor = token(Role::Auditor, None);
    let all = app.audit(&auditor, "", 3).await;
    assert!(all.len() >= 8, "{all:?}");
    let ids: Vec<Uuid> = all.iter().map(|e| id_of(&e["id"])).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "in id order, no duplicates across pages");
    let actions: Vec<&str> = all.iter().filter_map(|e| e["action"].as_str()).collect();
    for expected in [
        "organization.registered",
        "system.registered",
        "link.added",
        "contact.created",
    ] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    let registration = &all[0];
    assert_eq!(registration["service"], "registry");
    assert_eq!(registration["seq"], 1);
    assert_eq!(registration["action"], "organization.registered");
    assert_eq!(registration["actor_sub"], "test-admin");
    assert_eq!(registration["actor_roles"], json!(["admin"]));
    assert_eq!(registration["object_id"], made.operator_org.to_string());
    assert!(registration["trace_id"].is_string(), "{registration}");
    assert_eq!(registration["detail"]["kind"], "platform_operator");
    let contact = all
        .iter()
        .find(|e| e["action"] == "contact.created")
        .expect("contact entry");
    assert_eq!(contact["service"], "contacts");
    assert_eq!(contact["object_id"], made.contact_a.to_string());
    let whole = app.audit(&auditor, "", 500).await;
    assert_eq!(whole, all, "one page or many, the same record");

    // Filters.
    let links = app.audit(&auditor, "&action=link.added", 100).await;
    assert_eq!(links.len(), 1);
    assert_eq!(links[0]["object_id"], made.link.to_string());
    let of_system = app
        .audit(&auditor, &format!("&object_id={}", made.system_a), 100)
        .await;
    assert_eq!(of_system.len(), 1);
    let contacts_only = app.audit(&auditor, "&service=contacts", 100).await;
    assert!(!contacts_only.is_empty(), "the contact's creation");
    assert!(contacts_only.iter().all(|e| e["service"] == "contacts"));
    let about_a = app
        .audit(&auditor, &format!("&organization_id={}", made.a), 100)
        .await;
    assert!(!about_a.is_empty());
    assert!(
        about_a
            .iter()
            .all(|e| org_of(e, "organization_id") == Some(made.a))
    );

    // An organisation reads its own actions and those on its objects,
    // never another's.
    for (org, other) in [(made.a, made.b), (made.b, made.a)] {
        let mine = app.audit(&token(Role::Manager, Some(org)), "", 100).await;
        assert!(!mine.is_empty(), "{org} sees its registration");
        for e in &mine {
            assert!(
                org_of(e, "actor_org") == Some(org) || org_of(e, "organization_id") == Some(org),
                "{org} sees {e}"
            );
            assert_ne!(org_of(e, "organization_id"), Some(other), "{e}");
        }
        assert!(mine.iter().any(|e| e["action"] == "system.registered"));
    }
    let seen_by_a = app
        .audit(&token(Role::Manager, Some(made.a)), "", 100)
        .await;
    assert!(
        seen_by_a.iter().any(|e| e["action"] == "link.added"),
        "the link to A's system"
    );
    assert!(seen_by_a.iter().any(|e| e["action"] == "contact.created"));
    let operator = app
        .audit(&token(Role::Operator, Some(made.operator_org)), "", 100)
        .await;
    assert_eq!(
        operator
            .iter()
            .filter(|e| org_of(e, "actor_org") == Some(made.operator_org))
            .count(),
        4,
        "the operator's own four actions"
    );

    // Refusals name what is wrong.
    let (status, problem) = app.get("/v1/audit", &token(Role::Manager, None)).await;
    assert_eq!(status, 403, "{problem}");
    let manager_a = token(Role::Manager, Some(made.a));
    let (status, _) = app
        .get(&format!("/v1/audit?organization_id={}", made.b), &manager_a)
        .await;
    assert_eq!(status, 403);
    let (status, problem) = app.get("/v1/audit?service=payroll", &auditor).await;
    assert_eq!((status, problem["field"].as_str()), (400, Some("service")));
    let (status, problem) = app.get("/v1/audit?organization_id=x", &auditor).await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (400, Some("organization_id"))
    );
    let (status, _) = app.get("/v1/audit?organisation_id=x", &auditor).await;
    assert_eq!(status, 400, "an unknown filter is refused, not ignored");

    // The heads: signed and published by every service whose chain moved.
    let registry_entries = all.iter().filter(|e| e["service"] == "registry").count();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let heads = loop {
        let (status, heads) = app.get("/v1/audit/heads", &manager_a).await;
        assert_eq!(status, 200, "{heads}");
        let registry_head = heads["items"]
            .as_array()
            .and_then(|h| h.iter().find(|h| h["service"] == "registry").cloned());
        if registry_head.is_some_and(|h| h["seq"] == json!(registry_entries)) {
            break heads;
        }
        assert!(tokio::time::Instant::now() < deadline, "no head: {heads}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let heads_file = app.dir.path().join("heads.json");
    std::fs::write(&heads_file, heads.to_string()).expect("heads kept");

    // The installation is stopped; the binary needs neither NATS nor it.
    app.stop().await;
    let (code, out) = app.verify(Some(&heads_file));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "registry: {registry_entries} entries, chain intact, head {registry_entries} signed ✓"
        )),
        "{out}"
    );
    for service in ["demarcation", "contacts", "emergency"] {
        assert!(out.contains(&format!("{service}: ")), "{out}");
    }
    assert_eq!(out.lines().count(), 4, "{out}");

    // An entry edited in SQL: the binary names it and fails.
    let second = &all
        .iter()
        .filter(|e| e["service"] == "registry")
        .nth(1)
        .expect("a second registry entry")
        .clone();
    app.sql(
        "registry",
        "UPDATE audit_log SET actor_sub = 'someone-else' WHERE seq = 2",
    )
    .await;
    let (code, out) = app.verify(None);
    assert_eq!(code, 1, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("registry:"))
        .expect("registry line");
    assert!(line.contains("CHANGED: entry 2"), "{line}");
    assert!(line.contains(second["id"].as_str().expect("id")), "{line}");
    assert!(
        out.contains("contacts: ") && out.contains("chain intact"),
        "{out}"
    );
}

#[tokio::test]
async fn a_service_that_does_not_answer_is_named_and_the_others_are_returned() {
    renkei_testkit::init_tracing();
    let nats = NatsServer::start().await.expect("nats-server");
    let db = TestDb::fresh().await.expect("database");
    let dir = tempfile::tempdir().expect("data dir");
    let settings = renkei_testkit::settings(&nats.url(), &db.url, dir.path().to_path_buf());
    let registry = renkei_registry::Registry::spawn(&settings, "audit-alone")
        .await
        .expect("registry alone");
    let url = format!("http://{}", registry.addr);
    let http = reqwest::Client::new();
    let admin = token(Role::Admin, None);
    let (status, _) = call(
        &http,
        reqwest::Method::POST,
        &format!("{url}/v1/organizations"),
        Some(&admin),
        Some(json!({"name": "Lonely", "kind": "government_agency"})),
    )
    .await;
    assert_eq!(status, 201);
    let auditor = token(Role::Auditor, None);
    let (status, page) = call(
        &http,
        reqwest::Method::GET,
        &format!("{url}/v1/audit"),
        Some(&auditor),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(
        page["unavailable"],
        json!(["demarcation", "contacts", "emergency"])
    );
    // Asked for one absent service only: nothing answers, a 503.
    let (status, _) = call(
        &http,
        reqwest::Method::GET,
        &format!("{url}/v1/audit?service=emergency"),
        Some(&auditor),
        None,
    )
    .await;
    assert_eq!(status, 503);
    // The route is documented, with its `unavailable` field.
    let (_, doc) = call(
        &http,
        reqwest::Method::GET,
        &format!("{url}/openapi.json"),
        None,
        None,
    )
    .await;
    assert!(
        doc["paths"]["/v1/audit"]["get"].is_object(),
        "{}",
        doc["paths"]
    );
    assert!(
        doc["components"]["schemas"]["AuditList"]["properties"]["unavailable"].is_object(),
        "{}",
        doc["components"]["schemas"]["AuditList"]
    );
    registry.stop().await.expect("stops");
}
