//! The spreading flow, the moment the product exists for, across all four
//! services talking only over NATS: an incident declared on one linked
//! system (emergency) is assessed against the link graph (registry),
//! alerts exactly the organisations it may spread to (contacts, by
//! webhook), their acknowledgements come back into the incident's matrix
//! and timeline, the playbook's tasks go to the organisations the
//! responsibility matrix holds accountable (demarcation), and deadlines
//! escalate. The fault test restarts the nats-server in the middle: every
//! step still happens, once.

use std::time::Duration;

use renkei_testkit::{NatsServer, Received, TestDb, WebhookSink, token};
use renkei_web::Role;
use serde_json::{Value, json};
use uuid::Uuid;

const STEP: Duration = Duration::from_secs(15);
const AFTER_RESTART: Duration = Duration::from_secs(60);

struct World {
    nats: NatsServer,
    http: reqwest::Client,
    registry: String,
    demarcation: String,
    contacts: String,
    emergency: String,
    running: Vec<renkei_web::Running>,
    sink: WebhookSink,
    admin: String,
    operator: String,
    op_org: Uuid,
    platform: Uuid,
    central: Org,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

/// An organisation with a CSIRT (emergency path), a system manager
/// (ordinary path) and a CISO, each on its own webhook path.
struct Org {
    id: Uuid,
    manager: String,
    system: Option<Uuid>,
}

impl Org {
    fn csirt(&self) -> String {
        format!("/{}/csirt", self.id)
    }
    fn manager_hook(&self) -> String {
        format!("/{}/system_manager", self.id)
    }
    fn ciso(&self) -> String {
        format!("/{}/ciso", self.id)
    }
}

impl World {
    async fn start(tune: impl FnOnce(&mut renkei_settings::Settings)) -> World {
        renkei_testkit::init_tracing();
        let nats = NatsServer::start().await.expect("nats-server");
        let db = TestDb::fresh().await.expect("database");
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = renkei_testkit::settings(&nats.url(), &db.url, dir.path().to_path_buf());
        settings.contacts.delivery.retry_base_ms = 100;
        settings.contacts.delivery.retry_max_ms = 500;
        tune(&mut settings);
        let registry = renkei_registry::Registry::spawn(&settings, "flow-registry")
            .await
            .expect("registry");
        let demarcation = renkei_demarcation::Demarcation::spawn(&settings, "flow-demarcation")
            .await
            .expect("demarcation");
        let contacts = renkei_contacts::Contacts::spawn(&settings, "flow-contacts")
            .await
            .expect("contacts");
        let emergency = renkei_emergency::Emergency::spawn(&settings, "flow-emergency")
            .await
            .expect("emergency");
        let http = reqwest::Client::new();
        let admin = token(Role::Admin, None);
        let registry_url = format!("http://{}", registry.addr);
        let (_, op) = renkei_testkit::call(
            &http,
            reqwest::Method::POST,
            &format!("{registry_url}/v1/organizations"),
            Some(&admin),
            Some(json!({"name": "Platform Office", "kind": "platform_operator"})),
        )
        .await;
        let op_org = id_at(&op["id"]);
        let operator = token(Role::Operator, Some(op_org));
        let (_, platform) = renkei_testkit::call(
            &http,
            reqwest::Method::POST,
            &format!("{registry_url}/v1/systems"),
            Some(&operator),
            Some(
                json!({"name": "Common Platform", "kind": "platform", "owner_org_id": op_org,
                        "confidentiality": 3, "integrity": 2, "availability": 2}),
            ),
        )
        .await;
        let mut world = World {
            nats,
            http,
            registry: registry_url,
            demarcation: format!("http://{}", demarcation.addr),
            contacts: format!("http://{}", contacts.addr),
            emergency: format!("http://{}", emergency.addr),
            running: vec![registry, demarcation, contacts, emergency],
            sink: WebhookSink::start().await.expect("webhook receiver"),
            admin,
            operator,
            op_org,
            platform: id_at(&platform["id"]),
            central: Org {
                id: Uuid::nil(),
                manager: String::new(),
                system: None,
            },
            _db: db,
            _dir: dir,
        };
        world.central = world.org("NISC", "central_body", false).await;
        // The operator's own CSIRT, told of every incident on its platform.
        let operator_org = Org {
            id: op_org,
            manager: token(Role::Manager, Some(op_org)),
            system: None,
        };
        world.contacts_of(&operator_org).await;
        world
    }

    async fn stop(mut self) {
        self.sink.stop().await;
        while let Some(r) = self.running.pop() {
            r.stop().await.expect("clean stop");
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: String,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        renkei_testkit::call(&self.http, method, &url, Some(token), body).await
    }

    async fn post(&self, base: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            format!("{base}{path}"),
            token,
            Some(body),
        )
        .await
    }

    async fn get(&self, base: &str, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, format!("{base}{path}"), token, None)
            .await
    }

    /// An organisation with its contacts, and a linked system when asked.
    async fn org(&self, name: &str, kind: &str, with_system: bool) -> Org {
        let (status, org) = self
            .post(
                &self.registry,
                "/v1/organizations",
                &self.admin,
                json!({"name": name, "kind": kind}),
            )
            .await;
        assert_eq!(status, 201, "{org}");
        let id = id_at(&org["id"]);
        let mut org = Org {
            id,
            manager: token(Role::Manager, Some(id)),
            system: None,
        };
        self.contacts_of(&org).await;
        if with_system {
            let (status, system) = self
                .post(
                    &self.registry,
                    "/v1/systems",
                    &self.operator,
                    json!({"name": format!("{name} records"), "kind": "linked", "owner_org_id": id,
                           "platform_id": self.platform, "confidentiality": 2, "integrity": 1,
                           "availability": 1}),
                )
                .await;
            assert_eq!(status, 201, "{system}");
            org.system = Some(id_at(&system["id"]));
        }
        org
    }

    async fn contacts_of(&self, org: &Org) {
        for (role, availability, path) in [
            ("csirt", "both", org.csirt()),
            ("system_manager", "ordinary", org.manager_hook()),
            ("ciso", "both", org.ciso()),
        ] {
            let (status, body) = self
                .post(
                    &self.contacts,
                    "/v1/contacts",
                    &org.manager,
                    json!({"org_id": org.id, "name": format!("{role} of {}", org.id), "role": role,
                           "availability": availability,
                           "channels": [{"kind": "webhook", "url": format!("{}{path}", self.sink.url),
                                         "secret": "flow-secret-key-0123"}]}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
    }

    async fn link(&self, from: Uuid, to: Uuid, propagates: &[&str]) {
        let (status, body) = self
            .post(
                &self.registry,
                "/v1/links",
                &self.operator,
                json!({"from_system_id": from, "to_system_id": to, "kind": "network",
                       "propagates": propagates}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    async fn declare(&self, org: &Org, category: &str, tlp: &str, summary: &str) -> (u16, Value) {
        self.post(
            &self.emergency,
            "/v1/incidents",
            &token(Role::Csirt, Some(org.id)),
            json!({"system_id": org.system.expect("a system"), "category": category, "severity": 2,
                   "tlp": tlp, "summary": summary, "detected_at": chrono_now()}),
        )
        .await
    }

    /// Webhook calls on `path` about `topic_prefix` (an incident, a message…).
    fn about(&self, path: &str, needle: &str) -> Vec<Received> {
        self.sink
            .on(path)
            .into_iter()
            .filter(|r| {
                r.json()["topic"]
                    .as_str()
                    .is_some_and(|t| t.contains(needle))
            })
            .collect()
    }

    async fn wait_about(
        &self,
        path: &str,
        needle: &str,
        n: usize,
        within: Duration,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = self.about(path, needle);
            if got.len() >= n || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Acknowledges through the link a message carried.
    async fn acknowledge(&self, message: &Received) {
        let link = message.json()["ack_url"]
            .as_str()
            .expect("an ack link")
            .to_owned();
        let token_part = link.rsplit('/').next().expect("token");
        let answer = self
            .http
            .post(format!("{}/ack/{token_part}", self.contacts))
            .send()
            .await
            .expect("POST ack");
        assert_eq!(answer.status(), 200);
    }

    /// Polls `GET path` until `check` holds.
    async fn until(
        &self,
        path: &str,
        token: &str,
        within: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (status, body) = self.get(&self.emergency, path, token).await;
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

    /// Waits until the emergency and demarcation services know `n` linked systems.
    async fn wait_known(&self, n: u64) {
        let path = format!("/v1/platforms/{}/matrix/gaps", self.platform);
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let (_, report) = self.get(&self.demarcation, &path, &self.operator).await;
            if report["systems"].as_u64() == Some(n) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "demarcation never knew {n} systems"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn chrono_now() -> String {
    chrono::Utc::now().to_rfc3339()
}

fn id_at(v: &Value) -> Uuid {
    v.as_str().and_then(|s| s.parse().ok()).expect("an id")
}

fn affected_orgs(incident: &Value) -> Vec<Uuid> {
    incident["affected"]
        .as_array()
        .expect("affected")
        .iter()
        .map(|a| id_at(&a["org_id"]))
        .collect()
}

#[tokio::test]
async fn an_incident_alerts_exactly_its_blast_radius_and_the_acknowledgements_come_back() {
    let w = World::start(|_| {}).await;
    let a = w.org("Agency A", "government_agency", true).await;
    let b = w.org("Agency B", "government_agency", true).await;
    let c = w.org("Agency C", "government_agency", true).await;
    let d = w.org("Agency D", "government_agency", true).await;
    // A → platform → B carries malware; C is linked for data leaks only; D not at all.
    w.link(a.system.expect("A"), w.platform, &["malware"]).await;
    w.link(w.platform, b.system.expect("B"), &["malware"]).await;
    w.link(c.system.expect("C"), w.platform, &["data_leak"])
        .await;
    w.wait_known(4).await;
    // B is accountable for incident response on A's connection; nobody for access control.
    let (status, body) = w
        .call(
            reqwest::Method::PUT,
            format!("{}/v1/platforms/{}/matrix", w.demarcation, w.platform),
            &w.operator,
            Some(json!({"assignments": [
                {"control": "incident-response", "system_id": a.system, "organization_id": b.id, "role": "accountable"},
                {"control": "incident-response", "system_id": a.system, "organization_id": a.id, "role": "responsible"}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = w
        .post(
            &w.emergency,
            &format!("/v1/platforms/{}/playbooks", w.platform),
            &w.operator,
            json!({"category": "malware", "title": "Malware on a linked system", "steps": [
                {"title": "Isolate the link", "control": "incident-response", "due_after_minutes": 30},
                {"title": "Revoke shared credentials", "control": "access-control", "due_after_minutes": 60}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // Declaring on someone else's system is refused.
    let (status, _) = w
        .post(
            &w.emergency,
            "/v1/incidents",
            &c.manager,
            json!({"system_id": a.system, "category": "malware", "severity": 2, "tlp": "amber",
                   "summary": "not mine", "detected_at": chrono_now()}),
        )
        .await;
    assert!(status == 403 || status == 404, "{status}");

    let (status, incident) = w
        .declare(&a, "malware", "amber", "Ransomware on the records server")
        .await;
    assert_eq!(status, 201, "{incident}");
    let id = id_at(&incident["id"]);
    let topic = format!("incident/{id}/spread_risk");
    let alerts = w.wait_about(&b.csirt(), &topic, 1, STEP).await;
    assert_eq!(alerts.len(), 1, "B's CSIRT is alerted");
    let alert = alerts[0].json();
    assert_eq!(alert["condition"], "emergency");
    assert_eq!(alert["organization_id"], json!(b.id));
    assert!(
        alert["text"]
            .as_str()
            .expect("text")
            .contains("Agency B records"),
        "{alert}"
    );
    // The operator and the central body are told too.
    assert_eq!(
        w.wait_about(&format!("/{}/csirt", w.op_org), &topic, 1, STEP)
            .await
            .len(),
        1
    );
    assert_eq!(
        w.wait_about(&w.central.csirt(), &topic, 1, STEP)
            .await
            .len(),
        1
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    for outside in [&c, &d] {
        assert!(
            w.about(&outside.csirt(), &id.to_string()).is_empty(),
            "not alerted"
        );
    }
    assert!(
        w.about(&a.csirt(), &topic).is_empty(),
        "the declaring organisation knows"
    );
    let path = format!("/v1/incidents/{id}");
    let seen = w
        .until(&path, &a.manager, STEP, |i| {
            affected_orgs(i).contains(&b.id)
        })
        .await;
    assert!(!affected_orgs(&seen).contains(&c.id));

    // B acknowledges from the message; the matrix and timeline show it.
    w.acknowledge(&alerts[0]).await;
    let seen = w
        .until(&path, &a.manager, STEP, |i| {
            i["affected"].as_array().is_some_and(|rows| {
                rows.iter()
                    .any(|r| r["org_id"] == json!(b.id) && r["acknowledged"] == json!(true))
            })
        })
        .await;
    let row = seen["affected"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["org_id"] == json!(b.id))
        .expect("B")
        .clone();
    assert_eq!(row["delivered"], json!(true));
    assert!(
        row["acknowledged_by"]
            .as_str()
            .is_some_and(|s| s.starts_with("contact:")),
        "{row}"
    );
    let timeline = w
        .until(&format!("{path}/timeline"), &a.manager, STEP, |t| {
            t["items"]
                .as_array()
                .is_some_and(|e| e.iter().any(|x| x["kind"] == "acknowledged"))
        })
        .await;
    let kinds: Vec<&str> = timeline["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    for kind in ["declared", "assessed", "alerted", "acknowledged"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }

    // The playbook's tasks: B owns incident response (accountable); the
    // matrix names nobody for access control, so the operator does.
    let tasks = w
        .until(&format!("{path}/tasks"), &a.manager, STEP, |t| {
            t["items"].as_array().is_some_and(|i| i.len() == 2)
        })
        .await;
    let tasks = tasks["items"].as_array().expect("tasks").clone();
    assert_eq!(tasks[0]["owner_org_id"], json!(b.id));
    assert_eq!(tasks[0]["owner_source"], "matrix");
    assert_eq!(tasks[1]["owner_org_id"], json!(w.op_org));
    assert_eq!(tasks[1]["owner_source"], "platform_operator");
    let (status, body) = w
        .call(
            reqwest::Method::PATCH,
            format!(
                "{}/v1/tasks/{}",
                w.emergency,
                tasks[0]["id"].as_str().expect("id")
            ),
            &b.manager,
            Some(json!({"state": "in_progress"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = w
        .call(
            reqwest::Method::PATCH,
            format!(
                "{}/v1/tasks/{}",
                w.emergency,
                tasks[1]["id"].as_str().expect("id")
            ),
            &b.manager,
            Some(json!({"state": "not_applicable"})),
        )
        .await;
    assert!(
        status == 403 || status == 404,
        "B does not own the second task: {status}"
    );

    // Who may read: C and D may not; B may, within AMBER (its own row only).
    for outsider in [&c, &d] {
        assert_eq!(w.get(&w.emergency, &path, &outsider.manager).await.0, 404);
    }
    let (status, as_b) = w.get(&w.emergency, &path, &b.manager).await;
    assert_eq!(status, 200);
    assert_eq!(affected_orgs(&as_b), vec![b.id]);

    // A link added while the incident is open exposes C, and only C is alerted.
    w.link(w.platform, c.system.expect("C"), &["malware"]).await;
    let late = w.wait_about(&c.csirt(), &topic, 1, STEP).await;
    assert_eq!(late.len(), 1, "C is alerted after the new link");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        w.about(&b.csirt(), &topic).len(),
        1,
        "B is not alerted twice"
    );
    assert_eq!(
        w.about(&w.central.csirt(), &topic).len(),
        1,
        "nor the central body"
    );
    assert!(w.about(&d.csirt(), &id.to_string()).is_empty());

    // An illegal status change is a conflict; closing needs a review.
    let status_path = format!("{path}/status");
    let (status, _) = w
        .post(
            &w.emergency,
            &status_path,
            &a.manager,
            json!({"to": "closed", "reason": "skip"}),
        )
        .await;
    assert_eq!(status, 409);
    for to in ["triaged", "contained", "recovered"] {
        let (status, body) = w
            .post(
                &w.emergency,
                &status_path,
                &a.manager,
                json!({"to": to, "reason": "progress"}),
            )
            .await;
        assert_eq!(status, 200, "{to}: {body}");
    }
    let (status, body) = w
        .post(
            &w.emergency,
            &status_path,
            &a.manager,
            json!({"to": "closed", "reason": "done"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "review_missing");
    let (status, body) = w
        .call(
            reqwest::Method::PUT,
            format!("{}{path}/review", w.emergency),
            &a.manager,
            Some(json!({"causes": "A phishing mail opened on a shared terminal",
                        "actions": [{"text": "Filter attachments at the gateway", "owner_org_id": w.op_org, "due_on": "2027-01-31"}],
                        "lessons": "Rules should require attachment filtering"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = w
        .post(
            &w.emergency,
            &status_path,
            &a.manager,
            json!({"to": "closed", "reason": "reviewed"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "closed");
    w.stop().await;
}

#[tokio::test]
async fn red_incidents_reach_only_named_emergency_contacts_and_carry_no_detail() {
    let w = World::start(|_| {}).await;
    let a = w.org("Agency A", "government_agency", true).await;
    let b = w.org("Agency B", "government_agency", true).await;
    w.link(a.system.expect("A"), b.system.expect("B"), &["data_leak"])
        .await;
    w.wait_known(2).await;
    let (status, incident) = w
        .declare(
            &a,
            "data_leak",
            "red",
            "Citizens' tax records exfiltrated via VPN appliance",
        )
        .await;
    assert_eq!(status, 201, "{incident}");
    let id = id_at(&incident["id"]);
    let topic = format!("incident/{id}/spread_risk");
    let alerts = w.wait_about(&b.csirt(), &topic, 1, STEP).await;
    assert_eq!(alerts.len(), 1, "B's CSIRT is alerted");
    let alert = alerts[0].json();
    let all = format!("{} {}", alert["title"], alert["text"]);
    assert!(
        !all.contains("tax records"),
        "no summary under TLP:RED: {all}"
    );
    assert!(
        !all.contains("Agency B records"),
        "no systems under TLP:RED: {all}"
    );
    assert!(all.contains("TLP:RED"), "{all}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        w.about(&b.manager_hook(), &topic).is_empty(),
        "no shared mailbox under RED"
    );
    // B reads the incident without its summary or anyone else's rows.
    let (status, as_b) = w
        .get(&w.emergency, &format!("/v1/incidents/{id}"), &b.manager)
        .await;
    assert_eq!(status, 200, "{as_b}");
    assert!(as_b["summary"].is_null(), "{as_b}");
    assert!(
        as_b["withheld"]
            .as_array()
            .expect("withheld")
            .contains(&json!("summary"))
    );
    assert!(as_b["affected"][0]["paths"].is_null());
    // The declaring organisation sees it all.
    let (_, as_a) = w
        .get(&w.emergency, &format!("/v1/incidents/{id}"), &a.manager)
        .await;
    assert!(
        as_a["summary"]
            .as_str()
            .is_some_and(|s| s.contains("tax records"))
    );
    w.stop().await;
}

#[tokio::test]
async fn messages_and_advisories_are_tracked_per_organisation_and_late_ones_escalate() {
    let w = World::start(|_| {}).await;
    let a = w.org("Agency A", "government_agency", true).await;
    let b = w.org("Agency B", "government_agency", true).await;
    let c = w.org("Agency C", "government_agency", true).await;
    w.link(a.system.expect("A"), b.system.expect("B"), &["malware"])
        .await;
    w.wait_known(3).await;
    let (_, incident) = w
        .declare(&a, "malware", "amber", "Worm spreading over SMB")
        .await;
    let id = id_at(&incident["id"]);
    w.wait_about(&b.csirt(), &format!("incident/{id}/spread_risk"), 1, STEP)
        .await;

    // A coordination message from the operator reaches every participant,
    // and the incident's own subject, for the organisations' tooling.
    let tooling = async_nats::connect(w.nats.url()).await.expect("nats");
    let mut follow = tooling
        .subscribe(renkei_bus::subjects::incident_messages(id))
        .await
        .expect("subscribe");
    tooling.flush().await.expect("flush");
    let (status, msg) = w
        .post(
            &w.emergency,
            &format!("/v1/incidents/{id}/messages"),
            &w.operator,
            json!({"kind": "instruction", "text": "Isolate segment 7 now", "tlp": "amber",
                   "urgency": "emergency", "ack_required": true}),
        )
        .await;
    assert_eq!(status, 201, "{msg}");
    let message_id = msg["id"].as_str().expect("id").to_owned();
    let recipients: Vec<Uuid> = msg["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .map(|r| id_at(&r["org_id"]))
        .collect();
    for org in [a.id, b.id, w.central.id] {
        assert!(recipients.contains(&org), "{org} addressed");
    }
    assert!(!recipients.contains(&c.id));
    let published = tokio::time::timeout(STEP, futures::StreamExt::next(&mut follow))
        .await
        .expect("the message on the incident's subject")
        .expect("a message");
    let envelope: renkei_bus::Envelope =
        serde_json::from_slice(&published.payload).expect("an envelope");
    assert_eq!(
        envelope.event_type,
        renkei_bus::subjects::EMERGENCY_MESSAGE_POSTED
    );
    assert_eq!(envelope.payload["text"], "Isolate segment 7 now");
    let got = w.wait_about(&b.csirt(), &message_id, 1, STEP).await;
    assert_eq!(got.len(), 1);
    assert!(
        got[0].json()["text"]
            .as_str()
            .expect("text")
            .contains("segment 7")
    );
    w.acknowledge(&got[0]).await;
    let looser = w
        .post(
            &w.emergency,
            &format!("/v1/incidents/{id}/messages"),
            &b.manager,
            json!({"kind": "update", "text": "We are clean", "tlp": "green"}),
        )
        .await;
    assert_eq!(
        looser.0, 400,
        "a message may not be looser than its incident"
    );
    assert_eq!(looser.1["field"], "tlp");
    w.until(
        &format!("/v1/incidents/{id}/messages"),
        &w.operator,
        STEP,
        |m| {
            m["items"][0]["recipients"].as_array().is_some_and(|r| {
                r.iter()
                    .any(|x| x["org_id"] == json!(b.id) && x["acknowledged"] == json!(true))
            })
        },
    )
    .await;

    // An advisory to the platform: each organisation's ordinary contacts;
    // two confirm, the third does not and is escalated to its CISO.
    let act_by = (chrono::Utc::now() + chrono::Duration::seconds(4)).to_rfc3339();
    let (status, adv) = w
        .post(
            &w.emergency,
            "/v1/advisories",
            &w.operator,
            json!({"platform_id": w.platform, "title": "Patch CVE-2026-0001", "text": "Apply the vendor fix",
                   "tlp": "green", "severity": 2, "act_by": act_by}),
        )
        .await;
    assert_eq!(status, 201, "{adv}");
    let advisory = adv["id"].as_str().expect("id").to_owned();
    assert_eq!(
        adv["organizations"],
        json!(4),
        "A, B, C and the operator: {adv}"
    );
    let topic = format!("advisory/{advisory}");
    for org in [&a, &b] {
        let got = w.wait_about(&org.manager_hook(), &topic, 1, STEP).await;
        assert_eq!(got.len(), 1, "ordinary contacts receive it");
        w.acknowledge(&got[0]).await;
    }
    assert_eq!(
        w.wait_about(&c.manager_hook(), &topic, 1, STEP).await.len(),
        1
    );
    let escalated = w
        .wait_about(&c.ciso(), &format!("advisory/{advisory}/{}", c.id), 1, STEP)
        .await;
    assert_eq!(escalated.len(), 1, "C's CISO hears it was not confirmed");
    let view = w
        .until(
            &format!("/v1/advisories/{advisory}"),
            &w.operator,
            STEP,
            |v| v["confirmed"] == json!(2),
        )
        .await;
    let row = |org: Uuid| {
        view["confirmations"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["org_id"] == json!(org))
            .expect("row")
            .clone()
    };
    assert_eq!(row(a.id)["confirmed"], json!(true));
    assert_eq!(row(c.id)["confirmed"], json!(false));
    assert_eq!(row(c.id)["escalated"], json!(true));
    assert!(
        w.about(&a.ciso(), &format!("advisory/{advisory}/"))
            .is_empty(),
        "A confirmed in time"
    );
    w.stop().await;
}

#[tokio::test]
async fn a_missed_report_deadline_escalates_to_the_ciso_and_a_filed_report_reaches_the_central_body()
 {
    let w = World::start(|s| s.emergency.initial_report_due_secs_severe = 2).await;
    let a = w.org("Agency A", "government_agency", true).await;
    w.wait_known(1).await;
    let (status, body) = w
        .post(
            &w.emergency,
            &format!("/v1/platforms/{}/playbooks", w.platform),
            &w.operator,
            json!({"category": "outage", "title": "Outage", "steps": [
                {"title": "Tell the central body", "control": "incident-response", "due_after_minutes": 0}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, incident) = w
        .declare(&a, "outage", "green", "Records service down")
        .await;
    let id = id_at(&incident["id"]);
    assert!(
        incident["report_due_in_secs"]
            .as_i64()
            .is_some_and(|s| s <= 2)
    );
    let overdue = w
        .wait_about(&a.ciso(), &format!("report/{id}/initial"), 1, STEP)
        .await;
    assert_eq!(
        overdue.len(),
        1,
        "A's CISO hears the initial report is late"
    );
    // The step due at once was not done: its owner (the operator, as the
    // matrix names nobody) is escalated to.
    let task = w
        .wait_about(&format!("/{}/csirt", w.op_org), "task/", 1, STEP)
        .await;
    assert_eq!(task.len(), 1, "the overdue task is escalated to its owner");
    let seen = w
        .until(&format!("/v1/incidents/{id}"), &a.manager, STEP, |i| {
            i["report_escalated"] == json!(true)
        })
        .await;
    assert!(seen["report_due_in_secs"].as_i64().is_some_and(|s| s <= 0));

    let (status, report) = w
        .post(
            &w.emergency,
            &format!("/v1/incidents/{id}/reports"),
            &a.manager,
            json!({"kind": "initial"}),
        )
        .await;
    assert_eq!(status, 201, "{report}");
    assert!(
        report["content"]["what_happened"]
            .as_str()
            .is_some_and(|s| s.contains("Records service down"))
    );
    let report_id = report["id"].as_str().expect("id").to_owned();
    let (status, edited) = w
        .call(
            reqwest::Method::PATCH,
            format!("{}/v1/reports/{report_id}", w.emergency),
            &a.manager,
            Some(json!({"notes": "Power supply failure in the data centre"})),
        )
        .await;
    assert_eq!(status, 200, "{edited}");
    let central = token(Role::Central, Some(w.central.id));
    assert_eq!(
        w.get(&w.emergency, &format!("/v1/reports/{report_id}"), &central)
            .await
            .0,
        404,
        "drafts stay home"
    );
    let (status, filed) = w
        .post(
            &w.emergency,
            &format!("/v1/reports/{report_id}/file"),
            &a.manager,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{filed}");
    let told = w
        .wait_about(
            &w.central.csirt(),
            &format!("report/{report_id}/filed"),
            1,
            STEP,
        )
        .await;
    assert_eq!(told.len(), 1, "the central body is told");
    let (status, list) = w.get(&w.emergency, "/v1/reports", &central).await;
    assert_eq!(status, 200);
    assert!(
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|r| r["id"] == json!(report_id))
    );
    let (_, seen) = w
        .get(&w.emergency, &format!("/v1/incidents/{id}"), &a.manager)
        .await;
    assert!(
        seen["report_due_at"].is_null(),
        "filing the initial report stops the countdown"
    );
    w.stop().await;
}

#[tokio::test]
async fn every_step_happens_once_when_the_nats_server_restarts_mid_flow() {
    let mut w = World::start(|_| {}).await;
    let a = w.org("Agency A", "government_agency", true).await;
    let b = w.org("Agency B", "government_agency", true).await;
    let c = w.org("Agency C", "government_agency", true).await;
    w.link(a.system.expect("A"), b.system.expect("B"), &["malware"])
        .await;
    w.wait_known(3).await;
    // Tell the emergency service's copy about the systems before the outage.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The broker dies; an incident is declared meanwhile: the declaration
    // stands, its assessment waits for the registry.
    w.nats.kill();
    let (status, incident) = w
        .declare(&a, "malware", "amber", "Malware during the outage")
        .await;
    assert_eq!(status, 201, "{incident}");
    let id = id_at(&incident["id"]);
    assert_eq!(incident["assessment_pending"], json!(true), "{incident}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    w.nats.restart().await.expect("nats back");

    let topic = format!("incident/{id}/spread_risk");
    let alerts = w.wait_about(&b.csirt(), &topic, 1, AFTER_RESTART).await;
    assert_eq!(alerts.len(), 1, "B is alerted after the restart");

    // Down again: B acknowledges and a link exposes C while the broker is away.
    w.nats.kill();
    w.acknowledge(&alerts[0]).await;
    let (status, body) = w
        .post(
            &w.registry,
            "/v1/links",
            &w.operator,
            json!({"from_system_id": b.system, "to_system_id": c.system, "kind": "network",
                   "propagates": ["malware"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    w.nats.restart().await.expect("nats back");

    assert_eq!(
        w.wait_about(&c.csirt(), &topic, 1, AFTER_RESTART)
            .await
            .len(),
        1,
        "C is alerted"
    );
    w.until(
        &format!("/v1/incidents/{id}"),
        &a.manager,
        AFTER_RESTART,
        |i| {
            i["affected"].as_array().is_some_and(|rows| {
                rows.iter()
                    .any(|r| r["org_id"] == json!(b.id) && r["acknowledged"] == json!(true))
                    && rows.iter().any(|r| r["org_id"] == json!(c.id))
            })
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(w.about(&b.csirt(), &topic).len(), 1, "B was told once");
    assert_eq!(w.about(&c.csirt(), &topic).len(), 1, "C was told once");
    assert_eq!(
        w.about(&w.central.csirt(), &topic).len(),
        1,
        "the central body once"
    );
    let (_, timeline) = w
        .get(
            &w.emergency,
            &format!("/v1/incidents/{id}/timeline"),
            &a.manager,
        )
        .await;
    let acks = timeline["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["kind"] == "acknowledged" && e["org_id"] == json!(b.id))
        .count();
    assert_eq!(acks, 1, "the acknowledgement is recorded once");
    w.stop().await;
}
