//! Authorisation, proven against the running product: the four services on
//! a real NATS server and a real database (SQLite; PostgreSQL when
//! `RENKEI_TEST_DATABASE_URL` is set), a world of two platforms, and every
//! row of `docs/authorization.csv` called as its role from its relation's
//! organisation. Every answer must be the table's; no answer to a caller
//! who may not see them may carry organisation A's data (names, texts,
//! contact addresses, object ids); server-controlled fields sent in a body
//! are refused by name and change nothing.

#[path = "authz/table.rs"]
mod table;

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use renkei_testkit::{NatsServer, TestDb, WebhookSink, token};
use renkei_web::Role;
use reqwest::Method;
use serde_json::{Value, json};
use table::Row;
use uuid::Uuid;

/// How long the product may take to let an event through.
const WAIT: Duration = Duration::from_secs(30);
/// Calls in flight at once during the walk.
const CONCURRENCY: usize = 12;

const SERVICES: [&str; 4] = ["registry", "demarcation", "contacts", "emergency"];

/// Unique strings planted in A's objects, by who may see them.
struct Markers {
    /// In what every member of P1 may see: A's name, its systems.
    platform: String,
    /// In what only A, its platform's operator and readers of everything
    /// see: incident summaries, reports, messages, reviews.
    private: String,
    /// In A's contact details: only A and the operator of its platform.
    contact: String,
}

/// The objects every route acts on, made before the walk.
struct Refs {
    link: Uuid,
    link_to_delete: Uuid,
    control: String,
    draft: Uuid,
    proposed: Uuid,
    contact: Uuid,
    contact_to_delete: Uuid,
    drill: Uuid,
    notification: Uuid,
    ack_token: String,
    incident: Uuid,
    task_incident: Uuid,
    task: Uuid,
    spare_tasks: Mutex<Vec<Uuid>>,
    playbook: Uuid,
    spare_categories: Mutex<Vec<&'static str>>,
    report_filed: Uuid,
    report_draft: Uuid,
    report_to_file: Uuid,
    advisory: Uuid,
    /// The audit entry of A creating its reference contact.
    audit_entry: Uuid,
}

struct World {
    _nats: NatsServer,
    http: reqwest::Client,
    base: HashMap<&'static str, String>,
    running: Vec<renkei_web::Running>,
    sink: WebhookSink,
    mark: Markers,
    seq: AtomicU64,
    o: Uuid,
    a: Uuid,
    b: Uuid,
    x: Uuid,
    c: Uuid,
    z: Uuid,
    p1: Uuid,
    p2: Uuid,
    sa1: Uuid,
    sa2: Uuid,
    sa3: Uuid,
    sb1: Uuid,
    sc1: Uuid,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

/// One request of the walk.
struct Call {
    method: Method,
    service: &'static str,
    path: String,
    body: Option<Value>,
    /// For a collection: the id of the reference object to look for.
    find: Option<Value>,
}

impl Call {
    fn new(method: Method, service: &'static str, path: String, body: Option<Value>) -> Call {
        Call {
            method,
            service,
            path,
            body,
            find: None,
        }
    }

    fn get(service: &'static str, path: String) -> Call {
        Call::new(Method::GET, service, path, None)
    }

    fn list(service: &'static str, path: String, find: Value) -> Call {
        Call {
            find: Some(find),
            ..Call::get(service, path)
        }
    }
}

/// Who called, and what came back.
struct Answered {
    role: Role,
    org: &'static str,
    what: String,
    status: u16,
    body: Value,
}

/// `answer` without what the caller's own organisation did (its audit
/// entries, the advisories it issued): an organisation sees its own doings,
/// even when a token of its organisation acted on another's object.
fn without_own_doings(answer: &mut Value, org: &str) {
    match answer {
        Value::Object(fields) => {
            let own = ["actor_org", "issued_by_org"]
                .iter()
                .any(|k| fields.get(*k).and_then(Value::as_str) == Some(org));
            if own {
                *answer = Value::Null;
            } else {
                fields.values_mut().for_each(|v| without_own_doings(v, org));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| without_own_doings(v, org)),
        _ => {}
    }
}

fn id_at(v: &Value) -> Uuid {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an id, not {v}"))
}

fn service_named(name: &str) -> &'static str {
    SERVICES
        .into_iter()
        .find(|s| *s == name)
        .unwrap_or_else(|| panic!("unknown service {name}"))
}

fn role_of(name: &str) -> Role {
    Role::parse(name).unwrap_or_else(|| panic!("unknown role {name}"))
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

impl World {
    async fn start() -> World {
        renkei_testkit::init_tracing();
        let nats = NatsServer::start().await.expect("nats-server");
        let db = TestDb::fresh().await.expect("database");
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = renkei_testkit::settings(&nats.url(), &db.url, dir.path().to_path_buf());
        // The walk is thousands of requests from a handful of organisations.
        settings.rate_limit.per_second = 0;
        settings.contacts.delivery.retry_base_ms = 100;
        settings.contacts.delivery.retry_max_ms = 200;
        settings.contacts.delivery.max_attempts = 2;
        let registry = renkei_registry::Registry::spawn(&settings, "authz-registry")
            .await
            .expect("registry");
        let demarcation = renkei_demarcation::Demarcation::spawn(&settings, "authz-demarcation")
            .await
            .expect("demarcation");
        let contacts = renkei_contacts::Contacts::spawn(&settings, "authz-contacts")
            .await
            .expect("contacts");
        let emergency = renkei_emergency::Emergency::spawn(&settings, "authz-emergency")
            .await
            .expect("emergency");
        let base = HashMap::from([
            ("registry", format!("http://{}", registry.addr)),
            ("demarcation", format!("http://{}", demarcation.addr)),
            ("contacts", format!("http://{}", contacts.addr)),
            ("emergency", format!("http://{}", emergency.addr)),
        ]);
        let tag = Uuid::now_v7().simple().to_string();
        let tag = &tag[tag.len() - 10..];
        let mut w = World {
            _nats: nats,
            // Idle connections are dropped before the server's 5 s
            // keep-alive closes them under a request in flight.
            http: reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_secs(2))
                .build()
                .expect("HTTP client"),
            base,
            running: vec![registry, demarcation, contacts, emergency],
            sink: WebhookSink::start().await.expect("webhook receiver"),
            mark: Markers {
                platform: format!("plat{tag}"),
                private: format!("priv{tag}"),
                contact: format!("cont{tag}"),
            },
            seq: AtomicU64::new(0),
            o: Uuid::nil(),
            a: Uuid::nil(),
            b: Uuid::nil(),
            x: Uuid::nil(),
            c: Uuid::nil(),
            z: Uuid::nil(),
            p1: Uuid::nil(),
            p2: Uuid::nil(),
            sa1: Uuid::nil(),
            sa2: Uuid::nil(),
            sa3: Uuid::nil(),
            sb1: Uuid::nil(),
            sc1: Uuid::nil(),
            _db: db,
            _dir: dir,
        };
        w.o = w.org("P1 Office", "platform_operator").await;
        w.a = w
            .org(
                &format!("Agency A {}", w.mark.platform),
                "government_agency",
            )
            .await;
        w.b = w.org("Agency B", "government_agency").await;
        w.x = w.org("P2 Office", "platform_operator").await;
        w.c = w.org("Agency C", "government_agency").await;
        w.z = w.org("NISC", "central_body").await;
        w.p1 = w.platform(w.o, "Common Platform 1").await;
        w.p2 = w.platform(w.x, "Common Platform 2").await;
        w.sa1 = w.system(w.o, w.p1, w.a, "records").await;
        w.sa2 = w.system(w.o, w.p1, w.a, "archive").await;
        w.sa3 = w.system(w.o, w.p1, w.a, "mail").await;
        w.sb1 = w.system(w.o, w.p1, w.b, "payroll").await;
        w.sc1 = w.system(w.x, w.p2, w.c, "grants").await;
        w
    }

    async fn stop(mut self) {
        self.sink.stop().await;
        while let Some(r) = self.running.pop() {
            r.stop().await.expect("clean stop");
        }
    }

    fn next(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    fn letter(&self, letter: &str) -> Uuid {
        match letter {
            "O" => self.o,
            "A" => self.a,
            "B" => self.b,
            "X" => self.x,
            "C" => self.c,
            "Z" => self.z,
            other => panic!("no organisation {other}"),
        }
    }

    fn as_(&self, role: Role, org: Uuid) -> String {
        token(role, Some(org))
    }

    async fn send(
        &self,
        method: Method,
        service: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base[service]);
        renkei_testkit::call(&self.http, method, &url, token, body).await
    }

    /// A call that must succeed with `status`; its body.
    async fn must(
        &self,
        status: u16,
        method: Method,
        service: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Value {
        let (got, answer) = self
            .send(method.clone(), service, path, Some(token), body)
            .await;
        assert_eq!(got, status, "{method} {service}{path}: {answer}");
        answer
    }

    async fn org(&self, name: &str, kind: &str) -> Uuid {
        let admin = token(Role::Admin, None);
        let body = self
            .must(
                201,
                Method::POST,
                "registry",
                "/v1/organizations",
                &admin,
                Some(json!({"name": name, "kind": kind})),
            )
            .await;
        id_at(&body["id"])
    }

    async fn platform(&self, owner: Uuid, name: &str) -> Uuid {
        let body = self
            .must(
                201,
                Method::POST,
                "registry",
                "/v1/systems",
                &self.as_(Role::Operator, owner),
                Some(
                    json!({"name": name, "kind": "platform", "owner_org_id": owner,
                            "confidentiality": 3, "integrity": 2, "availability": 2}),
                ),
            )
            .await;
        id_at(&body["id"])
    }

    /// A linked system; A's carry the platform marker.
    fn system_body(&self, platform: Uuid, owner: Uuid, name: &str) -> Value {
        let mark = if owner == self.a {
            self.mark.platform.as_str()
        } else {
            ""
        };
        json!({"name": format!("{name} {mark}"), "kind": "linked",
               "owner_org_id": owner, "platform_id": platform, "confidentiality": 2,
               "integrity": 1, "availability": 1,
               "description": format!("{mark} system")})
    }

    async fn system(&self, operator_org: Uuid, platform: Uuid, owner: Uuid, name: &str) -> Uuid {
        let body = self
            .must(
                201,
                Method::POST,
                "registry",
                "/v1/systems",
                &self.as_(Role::Operator, operator_org),
                Some(self.system_body(platform, owner, name)),
            )
            .await;
        id_at(&body["id"])
    }

    async fn link(&self, from: Uuid, to: Uuid, kind: &str) -> Uuid {
        let body = self
            .must(
                201,
                Method::POST,
                "registry",
                "/v1/links",
                &self.as_(Role::Operator, self.o),
                Some(
                    json!({"from_system_id": from, "to_system_id": to, "kind": kind,
                            "propagates": ["malware", "data_leak"]}),
                ),
            )
            .await;
        id_at(&body["id"])
    }

    /// A contact; A's carry the contact marker in name and address.
    fn contact_body(&self, org: Uuid, hook: Option<&str>) -> Value {
        let n = self.next();
        let mark = if org == self.a {
            self.mark.contact.as_str()
        } else {
            "someone"
        };
        let channel = match hook {
            Some(path) => json!({"kind": "webhook",
                                 "url": format!("{}/hook/{mark}/{path}", self.sink.url),
                                 "secret": "walk-secret-0123"}),
            None => json!({"kind": "email", "address": format!("{mark}.{n}@a.example")}),
        };
        json!({"org_id": org, "name": format!("{mark} desk {n}"), "role": "csirt",
               "availability": "both", "channels": [channel]})
    }

    async fn contact(&self, org: Uuid, hook: Option<&str>) -> Uuid {
        let body = self
            .must(
                201,
                Method::POST,
                "contacts",
                "/v1/contacts",
                &self.as_(Role::Manager, org),
                Some(self.contact_body(org, hook)),
            )
            .await;
        id_at(&body["id"])
    }

    fn matrix_body(&self) -> Value {
        json!({"assignments": [
            {"control": "incident-response", "system_id": self.sa1, "organization_id": self.a, "role": "accountable"},
            {"control": "incident-response", "system_id": self.sa1, "organization_id": self.a, "role": "responsible"}]})
    }

    fn rules_body(&self) -> Value {
        json!({"title": "Common rules", "rules": [
            {"id": "R1", "title": "Reporting", "text": "Report incidents within one hour.",
             "controls": ["incident-response"]}]})
    }

    fn steps(n: usize) -> Value {
        Value::Array(
            (0..n)
                .map(|i| {
                    json!({"title": format!("Step {i}"), "control": "incident-response",
                               "due_after_minutes": 600})
                })
                .collect(),
        )
    }

    fn incident_body(&self, category: &str) -> Value {
        json!({"system_id": self.sa1, "category": category, "severity": 3, "tlp": "amber",
               "summary": format!("Ransomware on the records server {}", self.mark.private),
               "detected_at": now()})
    }

    async fn declare(&self, category: &str) -> Uuid {
        let body = self
            .must(
                201,
                Method::POST,
                "emergency",
                "/v1/incidents",
                &self.as_(Role::Csirt, self.a),
                Some(self.incident_body(category)),
            )
            .await;
        id_at(&body["id"])
    }

    async fn draft(&self) -> Uuid {
        let body = self
            .must(
                201,
                Method::POST,
                "demarcation",
                &format!("/v1/platforms/{}/rules", self.p1),
                &self.as_(Role::Operator, self.o),
                Some(self.rules_body()),
            )
            .await;
        id_at(&body["id"])
    }

    async fn proposal(&self) -> Uuid {
        let id = self.draft().await;
        self.must(
            200,
            Method::POST,
            "demarcation",
            &format!("/v1/rules/{id}/propose"),
            &self.as_(Role::Operator, self.o),
            None,
        )
        .await;
        id
    }

    async fn report_draft(&self, incident: Uuid) -> Uuid {
        let body = self
            .must(
                201,
                Method::POST,
                "emergency",
                &format!("/v1/incidents/{incident}/reports"),
                &self.as_(Role::Csirt, self.a),
                Some(json!({"kind": "follow_up"})),
            )
            .await;
        id_at(&body["id"])
    }

    /// Polls `path` as `token` until `check` holds; the last body.
    async fn until(
        &self,
        service: &str,
        path: &str,
        token: &str,
        check: impl Fn(u16, &Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (status, body) = self
                .send(Method::GET, service, path, Some(token), None)
                .await;
            if check(status, &body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{service}{path} never got there; last {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything the walk acts on.
    async fn setup(&self) -> Refs {
        let operator = self.as_(Role::Operator, self.o);
        let link = self.link(self.sa1, self.sa2, "network").await;
        let link_to_delete = self.link(self.sa2, self.sa1, "data_flow").await;
        // Every service's copy of the registry knows P1's members.
        for service in ["demarcation", "contacts", "emergency"] {
            let path = match service {
                "demarcation" => format!("/v1/platforms/{}/matrix", self.p1),
                "contacts" => format!("/v1/platforms/{}/cooperation-map", self.p1),
                _ => format!("/v1/platforms/{}/playbooks", self.p1),
            };
            self.until(service, &path, &self.as_(Role::Manager, self.b), |s, _| {
                s == 200
            })
            .await;
        }
        self.until(
            "demarcation",
            &format!("/v1/platforms/{}/matrix/gaps", self.p1),
            &operator,
            |_, b| b["systems"].as_u64() == Some(4),
        )
        .await;
        self.until(
            "contacts",
            &format!("/v1/organizations/{}/escalation-policy", self.a),
            &operator,
            |s, _| s == 200,
        )
        .await;
        let contact = self.contact(self.a, Some("csirt")).await;
        let entries = self
            .until(
                "contacts",
                &format!("/v1/audit?service=contacts&action=contact.created&object_id={contact}"),
                &self.as_(Role::Manager, self.a),
                |s, b| s == 200 && b["items"].as_array().is_some_and(|i| !i.is_empty()),
            )
            .await;
        let audit_entry = id_at(&entries["items"][0]["id"]);
        let contact_to_delete = self.contact(self.a, None).await;
        self.contact(self.o, None).await;
        self.contact(self.b, None).await;
        self.must(
            200,
            Method::PUT,
            "contacts",
            &format!("/v1/organizations/{}/escalation-policy", self.a),
            &self.as_(Role::Manager, self.a),
            Some(
                json!({"steps": [{"targets": [{"kind": "available"}], "wait_seconds": 3600}],
                        "repeat": 0}),
            ),
        )
        .await;
        let control = format!("walk-ref-{}", self.next());
        self.must(
            201,
            Method::POST,
            "demarcation",
            "/v1/controls",
            &operator,
            Some(json!({"id": control, "title_en": "Reference control"})),
        )
        .await;
        // A control of A's own: which organisation added it is not for
        // organisations of other platforms to learn.
        self.must(
            201,
            Method::POST,
            "demarcation",
            "/v1/controls",
            &self.as_(Role::Operator, self.a),
            Some(json!({"id": format!("a-control-{}", self.next()), "title_en": "A's control"})),
        )
        .await;
        self.must(
            200,
            Method::PUT,
            "demarcation",
            &format!("/v1/platforms/{}/matrix", self.p1),
            &operator,
            Some(self.matrix_body()),
        )
        .await;
        let draft = self.draft().await;
        let proposed = self.proposal().await;
        let playbook = self
            .must(
                201,
                Method::POST,
                "emergency",
                &format!("/v1/platforms/{}/playbooks", self.p1),
                &operator,
                Some(json!({"category": "malware", "title": "Malware", "steps": World::steps(1)})),
            )
            .await;
        self.must(
            201,
            Method::POST,
            "emergency",
            &format!("/v1/platforms/{}/playbooks", self.p1),
            &operator,
            Some(json!({"category": "data_leak", "title": "Data leak", "steps": World::steps(12)})),
        )
        .await;
        let drill = self
            .must(
                201,
                Method::POST,
                "contacts",
                "/v1/drills",
                &operator,
                Some(json!({"platform_id": self.p1})),
            )
            .await;
        let advisory = self
            .must(
                201,
                Method::POST,
                "emergency",
                "/v1/advisories",
                &operator,
                Some(
                    json!({"platform_id": self.p1, "title": "Patch now", "text": "Patch the VPN.",
                            "tlp": "green", "severity": 3}),
                ),
            )
            .await;

        let incident = self.declare("malware").await;
        let task_incident = self.declare("data_leak").await;
        let csirt = self.as_(Role::Csirt, self.a);
        let tasks = self
            .until(
                "emergency",
                &format!("/v1/incidents/{task_incident}/tasks"),
                &csirt,
                |s, b| s == 200 && b["items"].as_array().is_some_and(|i| i.len() == 12),
            )
            .await;
        let mut tasks: Vec<Uuid> = tasks["items"]
            .as_array()
            .expect("tasks")
            .iter()
            .map(|t| {
                assert_eq!(t["owner_org_id"], json!(self.a), "A owns the tasks: {t}");
                id_at(&t["id"])
            })
            .collect();
        let task = tasks.pop().expect("a task");
        let initial = self
            .must(
                201,
                Method::POST,
                "emergency",
                &format!("/v1/incidents/{incident}/reports"),
                &csirt,
                Some(json!({"kind": "initial"})),
            )
            .await;
        let report_filed = id_at(&initial["id"]);
        self.must(
            200,
            Method::POST,
            "emergency",
            &format!("/v1/reports/{report_filed}/file"),
            &csirt,
            None,
        )
        .await;
        let report_draft = self.report_draft(incident).await;
        self.must(
            200,
            Method::PATCH,
            "emergency",
            &format!("/v1/reports/{report_draft}"),
            &csirt,
            Some(json!({"notes": format!("{} notes", self.mark.private)})),
        )
        .await;
        let report_to_file = self.report_draft(incident).await;
        self.must(
            200,
            Method::PUT,
            "emergency",
            &format!("/v1/incidents/{incident}/review"),
            &csirt,
            Some(self.review_body()),
        )
        .await;
        // The operator instructs A alone: a notification to A only.
        let message = self
            .must(
                201,
                Method::POST,
                "emergency",
                &format!("/v1/incidents/{incident}/messages"),
                &operator,
                Some(json!({"kind": "instruction", "text": format!("Isolate it {}", self.mark.private),
                            "to_org_ids": [self.a]})),
            )
            .await;
        let message_id = message["id"].clone();
        let found = self
            .until(
                "contacts",
                "/v1/notifications?subject=emergency.message.posted&limit=1000",
                &self.as_(Role::Manager, self.a),
                |_, b| {
                    b["items"].as_array().is_some_and(|items| {
                        items.iter().any(|n| n["incident_id"] == json!(incident))
                    })
                },
            )
            .await;
        let notification = found["items"]
            .as_array()
            .and_then(|items| items.iter().find(|n| n["incident_id"] == json!(incident)))
            .map(|n| id_at(&n["id"]))
            .expect("the message's notification");
        let admin = self.as_(Role::Admin, self.c);
        let whole = self
            .must(
                200,
                Method::GET,
                "contacts",
                &format!("/v1/notifications/{notification}"),
                &admin,
                None,
            )
            .await;
        let told: Vec<Value> = whole["organizations"]
            .as_array()
            .expect("organizations")
            .iter()
            .map(|o| o["org_id"].clone())
            .collect();
        assert_eq!(told, vec![json!(self.a)], "told A only: {whole}");
        let hook = format!("/hook/{}/csirt", self.mark.contact);
        let deadline = tokio::time::Instant::now() + WAIT;
        let ack_url = loop {
            let url = self.sink.on(&hook).iter().find_map(|r| {
                let body = r.json();
                (body["notification_id"] == json!(notification))
                    .then(|| body["ack_url"].as_str().map(str::to_owned))
                    .flatten()
            });
            if let Some(url) = url {
                break url;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the message {message_id} never reached A's webhook"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let ack_token = ack_url
            .rsplit('/')
            .next()
            .expect("a token in the link")
            .to_owned();
        Refs {
            link,
            link_to_delete,
            control,
            draft,
            proposed,
            contact,
            contact_to_delete,
            drill: id_at(&drill["id"]),
            notification,
            ack_token,
            incident,
            task_incident,
            task,
            spare_tasks: Mutex::new(tasks),
            playbook: id_at(&playbook["id"]),
            spare_categories: Mutex::new(vec![
                "unauthorized_access",
                "denial_of_service",
                "outage",
                "other",
            ]),
            report_filed,
            report_draft,
            report_to_file,
            advisory: id_at(&advisory["id"]),
            audit_entry,
        }
    }

    fn review_body(&self) -> Value {
        json!({"causes": format!("An unpatched VPN {}", self.mark.private),
               "actions": [{"text": "Patch monthly", "owner_org_id": self.a, "due_on": "2030-01-31"}],
               "lessons": ""})
    }

    /// The request a row makes; objects a successful call would change are
    /// made fresh for it.
    async fn call_for(&self, refs: &Refs, row: &Row) -> Result<Call, String> {
        use Method as M;
        let fresh = row.succeeds() && !row.is_collection();
        let (p1, a, sa1) = (self.p1, self.a, self.sa1);
        let n = self.next();
        let call = match (row.method.as_str(), row.path.as_str()) {
            // ---- registry
            ("POST", "/v1/organizations") => Call::new(
                M::POST,
                "registry",
                "/v1/organizations".into(),
                Some(json!({"name": format!("Walk org {n}"), "kind": "government_agency"})),
            ),
            ("GET", "/v1/organizations") => {
                Call::list("registry", "/v1/organizations?limit=1000".into(), json!(a))
            }
            ("GET", "/v1/organizations/{id}") => {
                Call::get("registry", format!("/v1/organizations/{a}"))
            }
            // A's name keeps the marker members of P1 may see.
            ("PATCH", "/v1/organizations/{id}") => Call::new(
                M::PATCH,
                "registry",
                format!("/v1/organizations/{a}"),
                Some(json!({"name": format!("Agency A {} {n}", self.mark.platform)})),
            ),
            ("POST", "/v1/systems") => Call::new(
                M::POST,
                "registry",
                "/v1/systems".into(),
                Some(self.system_body(p1, a, &format!("walk {n}"))),
            ),
            ("GET", "/v1/systems") => {
                Call::list("registry", "/v1/systems?limit=1000".into(), json!(sa1))
            }
            ("GET", "/v1/systems/{id}") => Call::get("registry", format!("/v1/systems/{sa1}")),
            ("PATCH", "/v1/systems/{id}") => Call::new(
                M::PATCH,
                "registry",
                format!("/v1/systems/{sa1}"),
                Some(json!({"description": format!("{} described {n}", self.mark.platform)})),
            ),
            ("POST", "/v1/systems/{id}/lifecycle") => {
                let target = if fresh {
                    self.system(self.o, p1, a, &format!("retiring {n}")).await
                } else {
                    self.sa3
                };
                Call::new(
                    M::POST,
                    "registry",
                    format!("/v1/systems/{target}/lifecycle"),
                    Some(json!({"to": "retired", "reason": "walk"})),
                )
            }
            ("GET", "/v1/systems/{id}/blast-radius") => Call::get(
                "registry",
                format!("/v1/systems/{sa1}/blast-radius?category=malware"),
            ),
            ("POST", "/v1/links") => {
                let to = if fresh {
                    self.system(self.o, p1, a, &format!("linked {n}")).await
                } else {
                    self.sa2
                };
                Call::new(
                    M::POST,
                    "registry",
                    "/v1/links".into(),
                    Some(
                        json!({"from_system_id": sa1, "to_system_id": to, "kind": "network",
                                "propagates": ["malware"]}),
                    ),
                )
            }
            ("GET", "/v1/links") => {
                Call::list("registry", "/v1/links?limit=1000".into(), json!(refs.link))
            }
            ("DELETE", "/v1/links/{id}") => {
                let target = if fresh {
                    let to = self.system(self.o, p1, a, &format!("unlinked {n}")).await;
                    self.link(sa1, to, "network").await
                } else {
                    refs.link_to_delete
                };
                Call::new(M::DELETE, "registry", format!("/v1/links/{target}"), None)
            }
            // ---- demarcation
            ("GET", "/v1/controls") => {
                Call::list("demarcation", "/v1/controls".into(), json!(refs.control))
            }
            ("POST", "/v1/controls") => Call::new(
                M::POST,
                "demarcation",
                "/v1/controls".into(),
                Some(json!({"id": format!("walk-control-{n}"), "title_en": "Walk control"})),
            ),
            ("GET", "/v1/platforms/{platform_id}/matrix") => {
                Call::get("demarcation", format!("/v1/platforms/{p1}/matrix"))
            }
            ("PUT", "/v1/platforms/{platform_id}/matrix") => Call::new(
                M::PUT,
                "demarcation",
                format!("/v1/platforms/{p1}/matrix"),
                Some(self.matrix_body()),
            ),
            ("GET", "/v1/platforms/{platform_id}/matrix/gaps") => {
                Call::get("demarcation", format!("/v1/platforms/{p1}/matrix/gaps"))
            }
            ("POST", "/v1/platforms/{platform_id}/rules") => Call::new(
                M::POST,
                "demarcation",
                format!("/v1/platforms/{p1}/rules"),
                Some(self.rules_body()),
            ),
            ("GET", "/v1/platforms/{platform_id}/rules") => {
                Call::get("demarcation", format!("/v1/platforms/{p1}/rules"))
            }
            ("GET", "/v1/rules/{version_id}") => {
                Call::get("demarcation", format!("/v1/rules/{}", refs.proposed))
            }
            ("PATCH", "/v1/rules/{version_id}") => Call::new(
                M::PATCH,
                "demarcation",
                format!("/v1/rules/{}", refs.draft),
                Some(json!({"title": format!("Common rules {n}")})),
            ),
            ("POST", "/v1/rules/{version_id}/propose") => {
                let target = if fresh {
                    self.draft().await
                } else {
                    refs.draft
                };
                Call::new(
                    M::POST,
                    "demarcation",
                    format!("/v1/rules/{target}/propose"),
                    None,
                )
            }
            ("POST", "/v1/rules/{version_id}/withdraw") => {
                let target = if fresh {
                    self.proposal().await
                } else {
                    refs.proposed
                };
                Call::new(
                    M::POST,
                    "demarcation",
                    format!("/v1/rules/{target}/withdraw"),
                    None,
                )
            }
            ("POST", "/v1/rules/{version_id}/decisions") => {
                let target = if fresh {
                    self.proposal().await
                } else {
                    refs.proposed
                };
                Call::new(
                    M::POST,
                    "demarcation",
                    format!("/v1/rules/{target}/decisions"),
                    Some(json!({"decision": "accept"})),
                )
            }
            ("GET", "/v1/rules/{version_id}/decisions") => Call::get(
                "demarcation",
                format!("/v1/rules/{}/decisions", refs.proposed),
            ),
            ("GET", "/v1/rules/{version_id}/consensus") => Call::get(
                "demarcation",
                format!("/v1/rules/{}/consensus", refs.proposed),
            ),
            ("GET", "/v1/rules/{version_id}/document") => Call::get(
                "demarcation",
                format!("/v1/rules/{}/document?format=html", refs.proposed),
            ),
            // ---- contacts
            ("POST", "/v1/contacts") => Call::new(
                M::POST,
                "contacts",
                "/v1/contacts".into(),
                Some(self.contact_body(a, None)),
            ),
            ("GET", "/v1/contacts") => Call::list(
                "contacts",
                "/v1/contacts?limit=1000".into(),
                json!(refs.contact),
            ),
            ("GET", "/v1/contacts/{id}") => {
                Call::get("contacts", format!("/v1/contacts/{}", refs.contact))
            }
            ("PATCH", "/v1/contacts/{id}") => Call::new(
                M::PATCH,
                "contacts",
                format!("/v1/contacts/{}", refs.contact),
                Some(json!({"name": format!("{} desk {n}", self.mark.contact)})),
            ),
            ("DELETE", "/v1/contacts/{id}") => {
                let target = if fresh {
                    self.contact(a, None).await
                } else {
                    refs.contact_to_delete
                };
                Call::new(
                    M::DELETE,
                    "contacts",
                    format!("/v1/contacts/{target}"),
                    None,
                )
            }
            ("PUT", "/v1/organizations/{org_id}/escalation-policy") => Call::new(
                M::PUT,
                "contacts",
                format!("/v1/organizations/{a}/escalation-policy"),
                Some(
                    json!({"steps": [{"targets": [{"kind": "available"}], "wait_seconds": 3600}],
                            "repeat": 0}),
                ),
            ),
            ("GET", "/v1/organizations/{org_id}/escalation-policy") => Call::get(
                "contacts",
                format!("/v1/organizations/{a}/escalation-policy"),
            ),
            ("DELETE", "/v1/organizations/{org_id}/escalation-policy") => Call::new(
                M::DELETE,
                "contacts",
                format!("/v1/organizations/{a}/escalation-policy?system_id={sa1}"),
                None,
            ),
            ("GET", "/v1/platforms/{platform_id}/cooperation-map") => {
                Call::get("contacts", format!("/v1/platforms/{p1}/cooperation-map"))
            }
            ("PUT", "/v1/platforms/{platform_id}/cooperation-map") => Call::new(
                M::PUT,
                "contacts",
                format!("/v1/platforms/{p1}/cooperation-map"),
                Some(
                    json!({"ordinary": [{"from": a, "to": self.o, "what": "monthly report"}],
                            "emergency": [{"from": a, "to": self.o, "what": "incidents"}]}),
                ),
            ),
            ("GET", "/v1/notifications") => Call::list(
                "contacts",
                "/v1/notifications?limit=1000".into(),
                json!(refs.notification),
            ),
            ("GET", "/v1/notifications/{id}") => Call::get(
                "contacts",
                format!("/v1/notifications/{}", refs.notification),
            ),
            ("GET", "/v1/notifications/{id}/deliveries") => Call::get(
                "contacts",
                format!("/v1/notifications/{}/deliveries", refs.notification),
            ),
            ("POST", "/v1/notifications/{id}/ack") => Call::new(
                M::POST,
                "contacts",
                format!("/v1/notifications/{}/ack", refs.notification),
                None,
            ),
            ("POST", "/v1/drills") => Call::new(
                M::POST,
                "contacts",
                "/v1/drills".into(),
                Some(json!({"platform_id": p1})),
            ),
            ("GET", "/v1/drills") => Call::list(
                "contacts",
                "/v1/drills?limit=1000".into(),
                json!(refs.drill),
            ),
            ("GET", "/v1/drills/{id}") => {
                Call::get("contacts", format!("/v1/drills/{}", refs.drill))
            }
            ("DELETE", "/v1/drills/{id}") => Call::new(
                M::DELETE,
                "contacts",
                format!("/v1/drills/{}", refs.drill),
                None,
            ),
            ("GET", "/ack/{token}") => Call::get("contacts", format!("/ack/{}", refs.ack_token)),
            ("POST", "/ack/{token}") => Call::new(
                M::POST,
                "contacts",
                format!("/ack/{}", refs.ack_token),
                None,
            ),
            // ---- emergency
            ("POST", "/v1/incidents") => Call::new(
                M::POST,
                "emergency",
                "/v1/incidents".into(),
                Some(self.incident_body("malware")),
            ),
            ("GET", "/v1/incidents") => Call::list(
                "emergency",
                "/v1/incidents?limit=1000".into(),
                json!(refs.incident),
            ),
            ("GET", "/v1/incidents/{id}") => {
                Call::get("emergency", format!("/v1/incidents/{}", refs.incident))
            }
            ("POST", "/v1/incidents/{id}/status") => {
                let target = if fresh {
                    self.declare("malware").await
                } else {
                    refs.incident
                };
                Call::new(
                    M::POST,
                    "emergency",
                    format!("/v1/incidents/{target}/status"),
                    Some(json!({"to": "triaged", "reason": "walk"})),
                )
            }
            ("GET", "/v1/incidents/{id}/timeline") => Call::get(
                "emergency",
                format!("/v1/incidents/{}/timeline", refs.incident),
            ),
            ("GET", "/v1/incidents/{id}/tasks") => Call::get(
                "emergency",
                format!("/v1/incidents/{}/tasks", refs.incident),
            ),
            ("PATCH", "/v1/tasks/{id}") => {
                let target =
                    if fresh {
                        refs.spare_tasks.lock().expect("task pool").pop().ok_or(
                            "the walk ran out of fresh tasks: give the playbook more steps",
                        )?
                    } else {
                        refs.task
                    };
                Call::new(
                    M::PATCH,
                    "emergency",
                    format!("/v1/tasks/{target}"),
                    Some(json!({"state": "in_progress"})),
                )
            }
            ("POST", "/v1/platforms/{platform_id}/playbooks") => {
                let category = if fresh {
                    refs.spare_categories
                        .lock()
                        .expect("category pool")
                        .pop()
                        .ok_or("the walk ran out of incident categories without a playbook")?
                } else {
                    "malware"
                };
                Call::new(
                    M::POST,
                    "emergency",
                    format!("/v1/platforms/{p1}/playbooks"),
                    Some(json!({"category": category, "title": "Walk", "steps": World::steps(1)})),
                )
            }
            ("GET", "/v1/platforms/{platform_id}/playbooks") => {
                Call::get("emergency", format!("/v1/platforms/{p1}/playbooks"))
            }
            ("GET", "/v1/playbooks/{id}") => {
                Call::get("emergency", format!("/v1/playbooks/{}", refs.playbook))
            }
            ("PUT", "/v1/playbooks/{id}") => Call::new(
                M::PUT,
                "emergency",
                format!("/v1/playbooks/{}", refs.playbook),
                Some(json!({"title": "Malware", "steps": World::steps(1)})),
            ),
            ("POST", "/v1/incidents/{id}/reports") => Call::new(
                M::POST,
                "emergency",
                format!("/v1/incidents/{}/reports", refs.incident),
                Some(json!({"kind": "follow_up"})),
            ),
            ("GET", "/v1/incidents/{id}/reports") => Call::get(
                "emergency",
                format!("/v1/incidents/{}/reports", refs.incident),
            ),
            ("GET", "/v1/reports") => Call::list(
                "emergency",
                "/v1/reports?limit=1000".into(),
                json!(refs.report_filed),
            ),
            ("GET", "/v1/reports/{id}") => {
                Call::get("emergency", format!("/v1/reports/{}", refs.report_filed))
            }
            ("PATCH", "/v1/reports/{id}") => Call::new(
                M::PATCH,
                "emergency",
                format!("/v1/reports/{}", refs.report_draft),
                Some(json!({"notes": format!("{} notes {n}", self.mark.private)})),
            ),
            ("POST", "/v1/reports/{id}/file") => {
                let target = if fresh {
                    self.report_draft(refs.incident).await
                } else {
                    refs.report_to_file
                };
                Call::new(
                    M::POST,
                    "emergency",
                    format!("/v1/reports/{target}/file"),
                    None,
                )
            }
            ("PUT", "/v1/incidents/{id}/review") => Call::new(
                M::PUT,
                "emergency",
                format!("/v1/incidents/{}/review", refs.incident),
                Some(self.review_body()),
            ),
            ("POST", "/v1/incidents/{id}/messages") => Call::new(
                M::POST,
                "emergency",
                format!("/v1/incidents/{}/messages", refs.incident),
                Some(
                    json!({"kind": "update", "text": format!("Update {}", self.mark.private),
                            "ack_required": false}),
                ),
            ),
            ("GET", "/v1/incidents/{id}/messages") => Call::get(
                "emergency",
                format!("/v1/incidents/{}/messages", refs.incident),
            ),
            ("POST", "/v1/advisories") => Call::new(
                M::POST,
                "emergency",
                "/v1/advisories".into(),
                Some(
                    json!({"platform_id": p1, "title": format!("Walk advisory {n}"),
                            "text": "Patch the VPN.", "tlp": "green", "severity": 3}),
                ),
            ),
            ("GET", "/v1/advisories") => Call::list(
                "emergency",
                "/v1/advisories?limit=1000".into(),
                json!(refs.advisory),
            ),
            ("GET", "/v1/advisories/{id}") => {
                Call::get("emergency", format!("/v1/advisories/{}", refs.advisory))
            }
            // ---- the audit record, from every service
            ("GET", "/v1/audit") => Call::list(
                service_named(&row.service),
                "/v1/audit?limit=500".into(),
                json!(refs.audit_entry),
            ),
            ("GET", "/v1/audit/heads") => {
                Call::get(service_named(&row.service), "/v1/audit/heads".into())
            }
            _ => return Err(format!("the walk has no way to call {}", row.route())),
        };
        Ok(call)
    }

    /// Calls one row; the answer, and a mismatch when it is not the table's.
    async fn answer(&self, refs: &Refs, row: &Row) -> (Answered, Option<String>) {
        let role = role_of(&row.role);
        let org = table::caller_org(&row.owned_by, &row.role, &row.relation);
        let who = format!("{}@{org} ({})", row.role, row.relation);
        let call = match self.call_for(refs, row).await {
            Ok(call) => call,
            Err(why) => {
                let answered = Answered {
                    role,
                    org,
                    what: row.route(),
                    status: 0,
                    body: Value::Null,
                };
                return (answered, Some(format!("{} as {who}: {why}", row.route())));
            }
        };
        assert_eq!(
            call.service,
            row.service,
            "{} is a {} route",
            row.route(),
            row.service
        );
        let tok = self.as_(role, self.letter(org));
        let (status, body) = self
            .send(
                call.method.clone(),
                call.service,
                &call.path,
                Some(&tok),
                call.body.clone(),
            )
            .await;
        let actual = match (&call.find, status) {
            (Some(find), 200) if row.is_collection() => {
                let listed = body["items"]
                    .as_array()
                    .is_some_and(|items| items.iter().any(|i| i["id"] == *find));
                if listed { "listed" } else { "hidden" }.to_owned()
            }
            _ => status.to_string(),
        };
        let mismatch = (actual != row.answer).then(|| {
            let excerpt: String = body.to_string().chars().take(300).collect();
            format!(
                "{} as {who}: the table says {}, the service answered {actual} ({} {}): {excerpt}",
                row.route(),
                row.answer,
                call.method,
                call.path
            )
        });
        (
            Answered {
                role,
                org,
                what: format!("{} {}", call.method, call.path),
                status,
                body,
            },
            mismatch,
        )
    }

    /// Strings a caller of `role` in organisation `org` must never be shown.
    fn forbidden(&self, refs: &Refs, role: Role, org: &str) -> Vec<(&'static str, String)> {
        let reads_everything = matches!(role, Role::Admin | Role::Central | Role::Auditor);
        let mut out = Vec::new();
        if !(org == "A" || (org == "O" && role == Role::Operator)) {
            out.push(("A's contact details", self.mark.contact.clone()));
        }
        if !reads_everything && ["B", "C", "X"].contains(&org) {
            out.push(("A's incident texts", self.mark.private.clone()));
            for (what, id) in [
                ("A's incident id", refs.incident),
                ("A's incident id", refs.task_incident),
                ("A's task id", refs.task),
                ("A's report id", refs.report_filed),
                ("A's report id", refs.report_draft),
                ("A's notification id", refs.notification),
                ("A's contact id", refs.contact),
            ] {
                out.push((what, id.to_string()));
            }
        }
        if !reads_everything && ["C", "X"].contains(&org) {
            out.push(("A's platform data", self.mark.platform.clone()));
            for (what, id) in [
                ("A's organisation id", self.a),
                ("A's system id", self.sa1),
                ("A's system id", self.sa2),
                ("A's link id", refs.link),
                ("P1's id", self.p1),
            ] {
                out.push((what, id.to_string()));
            }
        }
        out
    }

    fn leaks(&self, refs: &Refs, answers: &[Answered]) -> Vec<String> {
        let mut found = Vec::new();
        for a in answers {
            if a.what.contains("/ack/") {
                // The link's token is the identity there, not the bearer token.
                continue;
            }
            let mut body = a.body.clone();
            without_own_doings(&mut body, &self.letter(a.org).to_string());
            let body = match body {
                Value::String(s) => s,
                other => other.to_string(),
            };
            for (what, needle) in self.forbidden(refs, a.role, a.org) {
                if let Some(at) = body.find(&needle) {
                    let from = body[..at]
                        .char_indices()
                        .rev()
                        .nth(80)
                        .map_or(0, |(i, _)| i);
                    let excerpt: String = body[from..].chars().take(200).collect();
                    found.push(format!(
                        "{} as {}@{} ({}): carries {what}: …{excerpt}…",
                        a.what,
                        a.role.as_str(),
                        a.org,
                        a.status
                    ));
                }
            }
        }
        found
    }

    /// Searches and filters that could reveal A's data, asked by everyone
    /// outside A.
    async fn probes(&self, refs: &Refs) -> Vec<Answered> {
        let (a, p1, sa1) = (self.a, self.p1, self.sa1);
        let paths: Vec<(&str, String)> = vec![
            ("registry", format!("/v1/systems?owner_org_id={a}")),
            ("registry", format!("/v1/systems?platform_id={p1}")),
            ("registry", format!("/v1/links?system_id={sa1}")),
            ("registry", format!("/v1/links?platform_id={p1}")),
            ("registry", "/v1/organizations?limit=1000".into()),
            (
                "registry",
                format!("/v1/systems/{}/blast-radius?category=malware", self.sb1),
            ),
            (
                "registry",
                format!("/v1/systems/{}/blast-radius?category=malware", self.sc1),
            ),
            ("demarcation", "/v1/controls".into()),
            (
                "demarcation",
                format!(
                    "/v1/rules/{}/document?format=markdown&lang=en",
                    refs.proposed
                ),
            ),
            ("contacts", format!("/v1/contacts?org_id={a}")),
            ("contacts", format!("/v1/contacts?system_id={sa1}")),
            ("contacts", format!("/v1/notifications?org_id={a}")),
            (
                "contacts",
                "/v1/notifications?subject=emergency.message.posted&limit=1000".into(),
            ),
            ("contacts", "/v1/drills?limit=1000".into()),
            ("contacts", format!("/v1/drills/{}", refs.drill)),
            (
                "contacts",
                format!("/v1/notifications/{}/deliveries", refs.notification),
            ),
            (
                "contacts",
                format!("/v1/organizations/{a}/escalation-policy?system_id={sa1}"),
            ),
            ("emergency", format!("/v1/incidents?platform_id={p1}")),
            ("emergency", "/v1/incidents?status=declared".into()),
            ("emergency", "/v1/reports?state=draft".into()),
            ("emergency", "/v1/reports?state=filed".into()),
            ("emergency", "/v1/advisories?limit=1000".into()),
            ("emergency", format!("/v1/advisories/{}", refs.advisory)),
            (
                "emergency",
                format!("/v1/incidents/{}/timeline", refs.task_incident),
            ),
            ("emergency", format!("/v1/reports/{}", refs.report_draft)),
            ("registry", "/v1/audit?limit=500".into()),
            ("contacts", format!("/v1/audit?organization_id={a}")),
            (
                "emergency",
                format!("/v1/audit?object_id={}", refs.incident),
            ),
        ];
        let mut calls = Vec::new();
        for org in ["O", "B", "C", "X"] {
            for role in Role::ALL {
                for (service, path) in &paths {
                    calls.push((role, org, *service, path.clone()));
                }
            }
        }
        futures::stream::iter(calls)
            .map(|(role, org, service, path)| async move {
                let tok = self.as_(role, self.letter(org));
                let (status, body) = self
                    .send(Method::GET, service, &path, Some(&tok), None)
                    .await;
                Answered {
                    role,
                    org,
                    what: format!("GET {path}"),
                    status,
                    body,
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await
    }

    /// The routes each service documents in its OpenAPI document.
    async fn documented_routes(&self, service: &str) -> BTreeSet<(String, String)> {
        let (status, doc) = self
            .send(Method::GET, service, "/openapi.json", None, None)
            .await;
        assert_eq!(status, 200, "{service} documents its API");
        let mut routes = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in ["get", "post", "put", "patch", "delete"] {
                if item.get(method).is_some() {
                    routes.insert((method.to_uppercase(), table::normalise(path)));
                }
            }
        }
        routes
    }
}

/// Rows whose success changes what the next call sees on the platform as a
/// whole (proposing withdraws the open proposal), or that would race each
/// other (two first saves of a cooperation map: the later is stale, 409):
/// run one at a time, after everything else.
fn one_at_a_time(row: &Row) -> bool {
    row.succeeds()
        && ((row.path.starts_with("/v1/rules/{version_id}/") && row.method == "POST")
            || row.path.ends_with("/cooperation-map") && row.method == "PUT")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_answers_as_the_table_says_and_no_answer_leaks_another_organisations_data() {
    let rows = table::load();
    let w = World::start().await;
    let refs = w.setup().await;
    let started = std::time::Instant::now();

    let mut problems = Vec::new();
    for service in SERVICES {
        let documented = w.documented_routes(service).await;
        let listed = table::listed(&rows, service);
        for (method, path) in documented.difference(&listed) {
            problems.push(format!(
                "{service} documents {method} {path}, which the table does not answer for"
            ));
        }
    }

    let (later, now): (Vec<&Row>, Vec<&Row>) = rows.iter().partition(|r| one_at_a_time(r));
    let mut answers: Vec<(Answered, Option<String>)> = futures::stream::iter(now)
        .map(|row| w.answer(&refs, row))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for row in later {
        answers.push(w.answer(&refs, row).await);
    }
    let walked = started.elapsed();
    let mut answered = Vec::with_capacity(answers.len());
    for (a, mismatch) in answers {
        problems.extend(mismatch);
        answered.push(a);
    }
    answered.extend(w.probes(&refs).await);
    let leaks = w.leaks(&refs, &answered);
    eprintln!(
        "authorization walk: {} rows in {:.1} s, {} answers checked for leaks in {:.1} s in all",
        rows.len(),
        walked.as_secs_f64(),
        answered.len(),
        started.elapsed().as_secs_f64()
    );
    w.stop().await;
    problems.sort();
    assert!(
        problems.is_empty() && leaks.is_empty(),
        "{} answers differ from docs/authorization.csv:\n{}\n\n{} answers carry data the caller may not see:\n{}",
        problems.len(),
        problems.join("\n"),
        leaks.len(),
        leaks.join("\n")
    );
}

/// How to see whether a refused request changed anything.
enum Seen {
    /// The object, read back (volatile countdowns removed).
    Object(&'static str, String),
    /// How many items a list holds.
    Count(&'static str, String),
    /// One organisation's row of a notification.
    Acknowledgement(String),
    /// One task of a list.
    Task(String, Uuid),
}

/// A create or update route, its allowed caller, a valid body and the
/// server-controlled fields to slip into it.
struct Assignment {
    method: Method,
    service: &'static str,
    path: String,
    token: String,
    body: Value,
    fields: Vec<(&'static str, Value)>,
    seen: Seen,
}

impl World {
    async fn seen(&self, seen: &Seen, token: &str) -> Value {
        match seen {
            Seen::Object(service, path) => {
                let (_, mut body) = self
                    .send(Method::GET, service, path, Some(token), None)
                    .await;
                if let Some(o) = body.as_object_mut() {
                    o.remove("report_due_in_secs");
                }
                body
            }
            Seen::Count(service, path) => {
                let (_, body) = self
                    .send(Method::GET, service, path, Some(token), None)
                    .await;
                json!(body["items"].as_array().map(Vec::len))
            }
            Seen::Acknowledgement(path) => {
                let (_, body) = self
                    .send(Method::GET, "contacts", path, Some(token), None)
                    .await;
                body["organizations"]
                    .as_array()
                    .and_then(|rows| rows.iter().find(|r| r["org_id"] == json!(self.a)))
                    .map(|r| json!([r["acknowledged_at"], r["acknowledged_by"]]))
                    .unwrap_or(Value::Null)
            }
            Seen::Task(path, id) => {
                let (_, body) = self
                    .send(Method::GET, "emergency", path, Some(token), None)
                    .await;
                body["items"]
                    .as_array()
                    .and_then(|items| items.iter().find(|t| t["id"] == json!(id)).cloned())
                    .unwrap_or(Value::Null)
            }
        }
    }

    fn assignments(&self, refs: &Refs) -> Vec<Assignment> {
        let op = self.as_(Role::Operator, self.o);
        let mgr = self.as_(Role::Manager, self.a);
        let csirt = self.as_(Role::Csirt, self.a);
        let admin = token(Role::Admin, None);
        let (p1, p2, a, b, sa1) = (self.p1, self.p2, self.a, self.b, self.sa1);
        let when = json!("2020-01-01T00:00:00Z");
        let id = json!(Uuid::now_v7());
        let incident = refs.incident;
        let one = |service, path: &str, token: &String, body: Value, fields, seen| Assignment {
            method: Method::POST,
            service,
            path: path.to_owned(),
            token: token.clone(),
            body,
            fields,
            seen,
        };
        vec![
            one(
                "registry",
                "/v1/organizations",
                &admin,
                json!({"name": "Mass org", "kind": "government_agency"}),
                vec![("id", id.clone()), ("created_at", when.clone())],
                Seen::Count("registry", "/v1/organizations?limit=1000".into()),
            ),
            one(
                "registry",
                "/v1/systems",
                &op,
                self.system_body(p1, a, "mass"),
                vec![
                    ("id", id.clone()),
                    ("lifecycle", json!("active")),
                    ("created_at", when.clone()),
                    ("updated_at", when.clone()),
                ],
                Seen::Count("registry", "/v1/systems?limit=1000".into()),
            ),
            Assignment {
                method: Method::PATCH,
                ..one(
                    "registry",
                    &format!("/v1/systems/{sa1}"),
                    &mgr,
                    json!({"description": "changed by a mass assignment"}),
                    vec![
                        ("id", id.clone()),
                        ("kind", json!("platform")),
                        ("owner_org_id", json!(b)),
                        ("platform_id", json!(p2)),
                        ("lifecycle", json!("active")),
                        ("created_at", when.clone()),
                        ("updated_at", when.clone()),
                    ],
                    Seen::Object("registry", format!("/v1/systems/{sa1}")),
                )
            },
            one(
                "registry",
                &format!("/v1/systems/{}/lifecycle", self.sa3),
                &op,
                json!({"to": "active"}),
                vec![
                    ("id", id.clone()),
                    ("owner_org_id", json!(b)),
                    ("lifecycle", json!("retired")),
                    ("updated_at", when.clone()),
                ],
                Seen::Object("registry", format!("/v1/systems/{}", self.sa3)),
            ),
            one(
                "registry",
                "/v1/links",
                &op,
                json!({"from_system_id": sa1, "to_system_id": self.sa3, "kind": "identity",
                       "propagates": ["malware"]}),
                vec![
                    ("id", id.clone()),
                    ("platform_id", json!(p2)),
                    ("created_at", when.clone()),
                ],
                Seen::Count("registry", "/v1/links?limit=1000".into()),
            ),
            one(
                "demarcation",
                "/v1/controls",
                &op,
                json!({"id": "mass-control", "title_en": "Mass"}),
                vec![
                    ("builtin", json!(true)),
                    ("created_by_org", json!(b)),
                    ("created_at", when.clone()),
                ],
                Seen::Count("demarcation", "/v1/controls".into()),
            ),
            Assignment {
                method: Method::PUT,
                ..one(
                    "demarcation",
                    &format!("/v1/platforms/{p1}/matrix"),
                    &op,
                    json!({"assignments": []}),
                    vec![
                        ("version", json!(7)),
                        ("platform_id", json!(p2)),
                        ("created_by", json!("someone")),
                        ("created_at", when.clone()),
                    ],
                    Seen::Object("demarcation", format!("/v1/platforms/{p1}/matrix")),
                )
            },
            one(
                "demarcation",
                &format!("/v1/platforms/{p1}/rules"),
                &op,
                self.rules_body(),
                vec![
                    ("id", id.clone()),
                    ("platform_id", json!(p2)),
                    ("version", json!(9)),
                    ("state", json!("in_force")),
                    ("created_by", json!("someone")),
                    ("created_at", when.clone()),
                    ("in_force_at", when.clone()),
                ],
                Seen::Count("demarcation", format!("/v1/platforms/{p1}/rules")),
            ),
            Assignment {
                method: Method::PATCH,
                ..one(
                    "demarcation",
                    &format!("/v1/rules/{}", refs.draft),
                    &op,
                    json!({"title": "Mass"}),
                    vec![
                        ("id", id.clone()),
                        ("platform_id", json!(p2)),
                        ("version", json!(9)),
                        ("state", json!("in_force")),
                        ("created_by", json!("someone")),
                        ("proposed_at", when.clone()),
                        ("in_force_at", when.clone()),
                    ],
                    Seen::Object("demarcation", format!("/v1/rules/{}", refs.draft)),
                )
            },
            one(
                "demarcation",
                &format!("/v1/rules/{}/propose", refs.draft),
                &op,
                json!({"respond_by": (chrono::Utc::now() + chrono::Duration::days(20)).to_rfc3339()}),
                vec![
                    ("state", json!("in_force")),
                    ("proposed_at", when.clone()),
                    ("platform_id", json!(p2)),
                ],
                Seen::Object("demarcation", format!("/v1/rules/{}", refs.draft)),
            ),
            one(
                "demarcation",
                &format!("/v1/rules/{}/decisions", refs.proposed),
                &mgr,
                json!({"decision": "accept"}),
                vec![
                    ("organization_id", json!(b)),
                    ("decided_by", json!("someone")),
                    ("decided_at", when.clone()),
                    ("position", json!("accepted")),
                ],
                Seen::Object(
                    "demarcation",
                    format!("/v1/rules/{}/consensus", refs.proposed),
                ),
            ),
            one(
                "contacts",
                "/v1/contacts",
                &mgr,
                self.contact_body(a, None),
                vec![
                    ("org_id", json!(b)),
                    ("id", id.clone()),
                    ("created_at", when.clone()),
                    ("updated_at", when.clone()),
                ],
                Seen::Count("contacts", "/v1/contacts?limit=1000".into()),
            ),
            Assignment {
                method: Method::PATCH,
                ..one(
                    "contacts",
                    &format!("/v1/contacts/{}", refs.contact),
                    &mgr,
                    json!({"name": "Mass"}),
                    vec![
                        ("id", id.clone()),
                        ("org_id", json!(b)),
                        ("created_at", when.clone()),
                        ("updated_at", when.clone()),
                    ],
                    Seen::Object("contacts", format!("/v1/contacts/{}", refs.contact)),
                )
            },
            Assignment {
                method: Method::PUT,
                ..one(
                    "contacts",
                    &format!("/v1/organizations/{a}/escalation-policy"),
                    &mgr,
                    json!({"steps": [{"targets": [{"kind": "available"}], "wait_seconds": 60}],
                           "repeat": 1}),
                    vec![
                        ("org_id", json!(b)),
                        ("updated_by", json!("someone")),
                        ("updated_at", when.clone()),
                        ("default", json!(true)),
                    ],
                    Seen::Object(
                        "contacts",
                        format!("/v1/organizations/{a}/escalation-policy"),
                    ),
                )
            },
            Assignment {
                method: Method::PUT,
                ..one(
                    "contacts",
                    &format!("/v1/platforms/{p1}/cooperation-map"),
                    &op,
                    json!({"ordinary": [], "emergency": []}),
                    vec![
                        ("platform_id", json!(p2)),
                        ("version", json!(5)),
                        ("source", json!("saved")),
                        ("updated_by", json!("someone")),
                        ("updated_at", when.clone()),
                    ],
                    Seen::Object("contacts", format!("/v1/platforms/{p1}/cooperation-map")),
                )
            },
            one(
                "contacts",
                &format!("/v1/notifications/{}/ack", refs.notification),
                &mgr,
                json!({}),
                vec![
                    ("org_id", json!(b)),
                    ("acknowledged_by", json!("someone")),
                    ("acknowledged_at", when.clone()),
                    ("state", json!("acknowledged")),
                ],
                Seen::Acknowledgement(format!("/v1/notifications/{}", refs.notification)),
            ),
            one(
                "contacts",
                "/v1/drills",
                &op,
                json!({"platform_id": p1}),
                vec![
                    ("id", id.clone()),
                    ("started_by", json!("someone")),
                    ("runs", json!(3)),
                    ("next_run_at", when.clone()),
                    ("created_at", when.clone()),
                ],
                Seen::Count("contacts", "/v1/drills?limit=1000".into()),
            ),
            one(
                "emergency",
                "/v1/incidents",
                &csirt,
                self.incident_body("malware"),
                vec![
                    ("id", id.clone()),
                    ("org_id", json!(b)),
                    ("platform_id", json!(p2)),
                    ("status", json!("closed")),
                    ("declared_by", json!("someone")),
                    ("declared_at", when.clone()),
                    ("report_due_at", when.clone()),
                    ("assessments", json!(4)),
                ],
                Seen::Count("emergency", "/v1/incidents?limit=1000".into()),
            ),
            one(
                "emergency",
                &format!("/v1/incidents/{incident}/status"),
                &csirt,
                json!({"to": "triaged", "reason": "mass"}),
                vec![
                    ("status", json!("closed")),
                    ("org_id", json!(b)),
                    ("declared_by", json!("someone")),
                    ("closed_at", when.clone()),
                ],
                Seen::Object("emergency", format!("/v1/incidents/{incident}")),
            ),
            Assignment {
                method: Method::PATCH,
                ..one(
                    "emergency",
                    &format!("/v1/tasks/{}", refs.task),
                    &mgr,
                    json!({"state": "in_progress"}),
                    vec![
                        ("owner_org_id", json!(b)),
                        ("incident_id", json!(incident)),
                        ("due_at", when.clone()),
                        ("updated_by", json!("someone")),
                        ("escalated_at", when.clone()),
                    ],
                    Seen::Task(
                        format!("/v1/incidents/{}/tasks", refs.task_incident),
                        refs.task,
                    ),
                )
            },
            one(
                "emergency",
                &format!("/v1/platforms/{p1}/playbooks"),
                &op,
                json!({"category": "outage", "title": "Mass", "steps": World::steps(1)}),
                vec![
                    ("id", id.clone()),
                    ("platform_id", json!(p2)),
                    ("version", json!(3)),
                    ("updated_by", json!("someone")),
                ],
                Seen::Count("emergency", format!("/v1/platforms/{p1}/playbooks")),
            ),
            Assignment {
                method: Method::PUT,
                ..one(
                    "emergency",
                    &format!("/v1/playbooks/{}", refs.playbook),
                    &op,
                    json!({"title": "Mass", "steps": World::steps(2)}),
                    vec![
                        ("id", id.clone()),
                        ("platform_id", json!(p2)),
                        ("category", json!("outage")),
                        ("version", json!(9)),
                        ("updated_by", json!("someone")),
                    ],
                    Seen::Object("emergency", format!("/v1/playbooks/{}", refs.playbook)),
                )
            },
            one(
                "emergency",
                &format!("/v1/incidents/{incident}/reports"),
                &csirt,
                json!({"kind": "follow_up"}),
                vec![
                    ("id", id.clone()),
                    ("state", json!("filed")),
                    ("org_id", json!(b)),
                    ("content", json!({})),
                    ("filed_at", when.clone()),
                    ("created_by", json!("someone")),
                ],
                Seen::Count("emergency", format!("/v1/incidents/{incident}/reports")),
            ),
            Assignment {
                method: Method::PATCH,
                ..one(
                    "emergency",
                    &format!("/v1/reports/{}", refs.report_draft),
                    &csirt,
                    json!({"notes": "Mass"}),
                    vec![
                        ("state", json!("filed")),
                        ("org_id", json!(b)),
                        ("kind", json!("final")),
                        ("filed_at", when.clone()),
                        ("filed_by", json!("someone")),
                        ("incident_id", json!(refs.task_incident)),
                    ],
                    Seen::Object("emergency", format!("/v1/reports/{}", refs.report_draft)),
                )
            },
            Assignment {
                method: Method::PUT,
                ..one(
                    "emergency",
                    &format!("/v1/incidents/{incident}/review"),
                    &csirt,
                    json!({"causes": "Mass", "actions": []}),
                    vec![
                        ("incident_id", json!(refs.task_incident)),
                        ("reviewed_by", json!("someone")),
                        ("updated_at", when.clone()),
                        ("status", json!("closed")),
                    ],
                    Seen::Object("emergency", format!("/v1/incidents/{incident}")),
                )
            },
            one(
                "emergency",
                &format!("/v1/incidents/{incident}/messages"),
                &csirt,
                json!({"kind": "update", "text": "Mass", "ack_required": false}),
                vec![
                    ("id", id.clone()),
                    ("from_org_id", json!(b)),
                    ("author", json!("someone")),
                    ("created_at", when.clone()),
                    ("subject", json!("emergency.messages.x")),
                    ("recipients", json!([])),
                ],
                Seen::Count("emergency", format!("/v1/incidents/{incident}/messages")),
            ),
            one(
                "emergency",
                "/v1/advisories",
                &op,
                json!({"platform_id": p1, "title": "Mass", "text": "Mass", "tlp": "green",
                       "severity": 3}),
                vec![
                    ("id", id.clone()),
                    ("issued_by_org", json!(b)),
                    ("issued_by", json!("someone")),
                    ("created_at", when.clone()),
                    ("confirmed", json!(9)),
                    ("confirmations", json!([])),
                ],
                Seen::Count("emergency", "/v1/advisories?limit=1000".into()),
            ),
        ]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_controlled_fields_are_refused_by_name_and_change_nothing() {
    let w = World::start().await;
    let refs = w.setup().await;
    let mut problems = Vec::new();
    let mut tried = 0;
    for case in w.assignments(&refs) {
        for (field, value) in &case.fields {
            tried += 1;
            let mut body = case.body.clone();
            body[*field] = value.clone();
            let before = w.seen(&case.seen, &case.token).await;
            let (status, answer) = w
                .send(
                    case.method.clone(),
                    case.service,
                    &case.path,
                    Some(&case.token),
                    Some(body),
                )
                .await;
            let after = w.seen(&case.seen, &case.token).await;
            let named = answer["field"] == json!(field)
                || answer["detail"].as_str().is_some_and(|d| d.contains(field));
            let what = format!("{} {} with `{field}`", case.method, case.path);
            if !(400..500).contains(&status) {
                problems.push(format!("{what}: answered {status}, not a 4xx: {answer}"));
            } else if !named {
                problems.push(format!(
                    "{what}: answered {status} without naming the field: {answer}"
                ));
            }
            if before != after {
                problems.push(format!("{what}: changed {before} into {after}"));
            }
        }
    }
    w.stop().await;
    assert!(tried > 100, "only {tried} fields tried");
    assert!(
        problems.is_empty(),
        "{} of {tried} server-controlled fields were not refused by name:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
