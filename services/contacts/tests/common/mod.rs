//! The harness the contacts integration tests share: the contacts service
//! beside a real registry, against a real nats-server, a real database
//! (SQLite, or PostgreSQL with RENKEI_TEST_DATABASE_URL) and a real webhook
//! receiver; a platform with agencies; events published on JetStream
//! exactly as their producing services publish them.

// Each test binary uses its own part of the harness.
#![allow(dead_code)]

use std::time::Duration;

use renkei_bus::Envelope;
use renkei_bus::contracts::emergency::{AtRisk, IncidentSpreadRisk};
use renkei_settings::Settings;
use renkei_testkit::{NatsServer, TestDb, WebhookSink, token};
use renkei_web::Role;
use serde_json::{Value, json};
use uuid::Uuid;

pub struct TestApp {
    pub registry: String,
    pub contacts: String,
    pub http: reqwest::Client,
    pub nats: NatsServer,
    pub settings: Settings,
    pub running: Vec<renkei_web::Running>,
    pub sink: WebhookSink,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

/// Short retries, so that failing channels give up in a test's time.
pub fn test_settings(nats: &NatsServer, db: &TestDb, dir: &tempfile::TempDir) -> Settings {
    let mut s = renkei_testkit::settings(&nats.url(), &db.url, dir.path().to_path_buf());
    s.contacts.delivery.max_attempts = 3;
    s.contacts.delivery.retry_base_ms = 100;
    s.contacts.delivery.retry_max_ms = 200;
    s.contacts.delivery.timeout_ms = 2_000;
    s
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    renkei_testkit::init_tracing();
    let nats = NatsServer::start().await.expect("nats-server");
    let db = TestDb::fresh().await.expect("database");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(&nats, &db, &dir);
    adjust(&mut settings);
    let registry = renkei_registry::Registry::spawn(&settings, "registry-test")
        .await
        .expect("registry");
    let contacts = renkei_contacts::Contacts::spawn(&settings, "contacts-test")
        .await
        .expect("contacts");
    TestApp {
        registry: format!("http://{}", registry.addr),
        contacts: format!("http://{}", contacts.addr),
        http: reqwest::Client::new(),
        nats,
        settings,
        running: vec![registry, contacts],
        sink: WebhookSink::start().await.expect("webhook receiver"),
        _db: db,
        _dir: dir,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        let registry = ["/v1/organizations", "/v1/systems", "/v1/links"]
            .iter()
            .any(|p| path.starts_with(p))
            && !path.contains("escalation-policy");
        let base = if registry {
            &self.registry
        } else {
            &self.contacts
        };
        format!("{base}{path}")
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        renkei_testkit::call(&self.http, method, &self.url(path), Some(token), body).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, token, Some(body))
            .await
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    pub async fn create(&self, path: &str, token: &str, body: Value) -> Uuid {
        let (status, json) = self.post(path, token, body).await;
        assert_eq!(status, 201, "{path}: {json}");
        json["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("id")
    }

    /// Publishes an event on JetStream as its producing service would.
    pub async fn publish<E: renkei_bus::Event>(&self, event: &E) -> Envelope {
        let envelope = Envelope::new("emergency", None, event).expect("envelope");
        self.publish_envelope(&envelope).await;
        envelope
    }

    pub async fn publish_envelope(&self, envelope: &Envelope) {
        let client = async_nats::connect(self.nats.url()).await.expect("nats");
        let js = async_nats::jetstream::new(client);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", envelope.id.to_string().as_str());
        js.publish_with_headers(
            envelope.subject.clone(),
            headers,
            serde_json::to_vec(envelope).expect("json").into(),
        )
        .await
        .expect("publish")
        .await
        .expect("stored");
    }

    /// Every event in `stream` so far, oldest first.
    pub async fn events(&self, stream: &str) -> Vec<Envelope> {
        use async_nats::jetstream::consumer::{DeliverPolicy, pull};
        use futures::StreamExt as _;
        let client = async_nats::connect(self.nats.url()).await.expect("nats");
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream(stream).await.expect("stream");
        let total = stream.info().await.expect("stream info").state.messages;
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .expect("ordered consumer");
        let mut messages = consumer.messages().await.expect("messages");
        let mut events = Vec::new();
        while (events.len() as u64) < total {
            let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
                .await
                .expect("the stream's events in time")
                .expect("a message")
                .expect("a message");
            events.push(serde_json::from_slice(&message.payload).expect("an envelope"));
        }
        events
    }

    /// Waits up to `within` for a contacts event on `subject` that is
    /// `wanted`.
    pub async fn contacts_event(
        &self,
        subject: &str,
        within: Duration,
        wanted: impl Fn(&Envelope) -> bool,
    ) -> Envelope {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(found) = self
                .events(renkei_bus::subjects::CONTACTS_STREAM.name)
                .await
                .into_iter()
                .find(|e| e.subject == subject && wanted(e))
            {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {subject} event within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the contacts service (the registry keeps running).
    pub async fn stop_contacts(&mut self) {
        let contacts = self.running.pop().expect("contacts running");
        contacts.stop().await.expect("clean stop");
    }

    /// Starts the contacts service again on the same database.
    pub async fn restart_contacts(&mut self) {
        let contacts = renkei_contacts::Contacts::spawn(&self.settings, "contacts-test")
            .await
            .expect("contacts");
        self.contacts = format!("http://{}", contacts.addr);
        self.running.push(contacts);
    }

    pub async fn stop(mut self) {
        self.sink.stop().await;
        while let Some(r) = self.running.pop() {
            r.stop().await.expect("clean stop");
        }
    }
}

/// An operator with a platform, and agencies with one linked system each.
pub struct World {
    pub admin: String,
    pub operator: String,
    pub op_org: Uuid,
    pub platform: Uuid,
    pub orgs: Vec<Uuid>,
    pub managers: Vec<String>,
    pub systems: Vec<Uuid>,
}

pub async fn world(app: &TestApp, agencies: usize) -> World {
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
        let org = app
            .create(
                "/v1/organizations",
                &w.admin,
                json!({"name": format!("Agency {i}"), "kind": "government_agency"}),
            )
            .await;
        let system = app
            .create(
                "/v1/systems",
                &w.operator,
                json!({"name": format!("Agency {i} records"), "kind": "linked", "owner_org_id": org,
                "platform_id": w.platform, "confidentiality": 2, "integrity": 1, "availability": 1}),
            )
            .await;
        w.orgs.push(org);
        w.managers.push(token(Role::Manager, Some(org)));
        w.systems.push(system);
    }
    // The contacts service learns of them over NATS; the operator sees an
    // agency's contacts once it knows the agency is on its platform.
    for org in &w.orgs {
        wait_until(Duration::from_secs(10), || async {
            app.get(
                &format!("/v1/organizations/{org}/escalation-policy"),
                &w.operator,
            )
            .await
            .0 == 200
        })
        .await;
    }
    w
}

pub async fn wait_until<F, Fut>(within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    poll(within, || {
        let fut = check();
        async move { fut.await.then_some(()) }
    })
    .await
}

/// Polls until `check` yields something.
pub async fn poll<T, F, Fut>(within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if let Some(found) = check().await {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition not met within {within:?}");
}

pub fn webhook(app: &TestApp, path: &str) -> Value {
    json!({"kind": "webhook", "url": format!("{}{path}", app.sink.url), "secret": "s3cret-for-tests"})
}

/// Adds a contact of `role` to agency `i`, reached by a webhook at `path`.
pub async fn contact(app: &TestApp, w: &World, i: usize, role: &str, path: &str) -> Uuid {
    contact_with(app, w, i, role, "both", path).await
}

/// Adds a contact of `role` and `availability` to agency `i`, reached by a
/// webhook at `path`.
pub async fn contact_with(
    app: &TestApp,
    w: &World,
    i: usize,
    role: &str,
    availability: &str,
    path: &str,
) -> Uuid {
    app.create(
        "/v1/contacts",
        &w.managers[i],
        json!({"org_id": w.orgs[i], "name": format!("{role} of agency {i}"), "role": role,
               "availability": availability, "channels": [webhook(app, path)]}),
    )
    .await
}

/// Two steps: the CSIRT, then (after `wait` seconds) the CISO.
pub async fn two_step_policy(app: &TestApp, w: &World, i: usize, wait: u32) {
    let (status, body) = app
        .put(
            &format!("/v1/organizations/{}/escalation-policy", w.orgs[i]),
            &w.managers[i],
            json!({"steps": [
                {"targets": [{"kind": "role", "role": "csirt"}], "wait_seconds": wait},
                {"targets": [{"kind": "role", "role": "ciso"}], "wait_seconds": 600}
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

pub fn alert(w: &World, agencies: &[usize]) -> IncidentSpreadRisk {
    IncidentSpreadRisk {
        incident_id: Uuid::now_v7(),
        platform_id: w.platform,
        system_id: w.systems[0],
        organization_id: w.orgs[0],
        title: "Ransomware on the records system".into(),
        severity: "critical".into(),
        category: "malware".into(),
        tlp: "amber".into(),
        at_risk: agencies
            .iter()
            .map(|i| AtRisk {
                organization_id: w.orgs[*i],
                system_ids: vec![w.systems[*i]],
                hops: 1,
                paths: vec![vec![w.systems[0], w.platform, w.systems[*i]]],
            })
            .collect(),
        informed: Vec::new(),
        assessment: 1,
    }
}

/// The notification about `incident`, once the contacts service made it.
pub async fn notification_of(app: &TestApp, w: &World, incident: Uuid) -> Value {
    poll(Duration::from_secs(10), || async {
        let (_, list) = app
            .get(
                "/v1/notifications?subject=emergency.incident.spread_risk",
                &w.operator,
            )
            .await;
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["incident_id"] == json!(incident))
            .cloned()
    })
    .await
}

pub fn org_row(n: &Value, org: Uuid) -> &Value {
    n["organizations"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["org_id"] == json!(org))
        .expect("the organisation's row")
}
