//! What must reach people does, across three services that talk only over
//! NATS: a rules proposal (demarcation) becomes a notification to every
//! organisation that must decide (contacts), delivered to their system
//! managers' webhooks; a newcomer to a platform with rules in force is asked
//! to accept them; acknowledgements come back as events. The fault test
//! kills and restarts the nats-server in the middle: nothing is lost and
//! nothing is sent or announced twice.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull};
use futures::StreamExt as _;
use renkei_bus::Envelope;
use renkei_bus::subjects::{self, StreamSpec};
use renkei_testkit::{NatsServer, TestDb, WebhookSink, token};
use renkei_web::Role;
use serde_json::{Value, json};
use uuid::Uuid;

const STEP: Duration = Duration::from_secs(10);
/// Clients reconnect with a back-off, consumers re-bind, relays retry.
const AFTER_RESTART: Duration = Duration::from_secs(60);

struct Flow {
    nats: NatsServer,
    http: reqwest::Client,
    registry: String,
    demarcation: String,
    contacts: String,
    running: Vec<renkei_web::Running>,
    sink: WebhookSink,
    operator: String,
    op_org: Uuid,
    platform: Uuid,
    admin: String,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

struct Agency {
    id: Uuid,
    manager: String,
    /// Where its system manager's webhook receives.
    hook: String,
}

impl Flow {
    async fn start() -> Flow {
        renkei_testkit::init_tracing();
        let nats = NatsServer::start().await.expect("nats-server");
        let db = TestDb::fresh().await.expect("database");
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = renkei_testkit::settings(&nats.url(), &db.url, dir.path().to_path_buf());
        let registry = renkei_registry::Registry::spawn(&settings, "flow-registry")
            .await
            .expect("registry");
        let demarcation = renkei_demarcation::Demarcation::spawn(&settings, "flow-demarcation")
            .await
            .expect("demarcation");
        let contacts = renkei_contacts::Contacts::spawn(&settings, "flow-contacts")
            .await
            .expect("contacts");
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
        let op_org = uuid_at(&op["id"]);
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
        Flow {
            nats,
            http,
            registry: registry_url,
            demarcation: format!("http://{}", demarcation.addr),
            contacts: format!("http://{}", contacts.addr),
            running: vec![registry, demarcation, contacts],
            sink: WebhookSink::start().await.expect("webhook receiver"),
            operator,
            op_org,
            platform: uuid_at(&platform["id"]),
            admin,
            _db: db,
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        self.sink.stop().await;
        while let Some(r) = self.running.pop() {
            r.stop().await.expect("clean stop");
        }
    }

    async fn post(&self, base: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        renkei_testkit::call(
            &self.http,
            reqwest::Method::POST,
            &format!("{base}{path}"),
            Some(token),
            body,
        )
        .await
    }

    /// An agency with a system manager reachable in ordinary conditions; its
    /// linked system is registered when `with_system`.
    async fn agency(&self, name: &str, with_system: bool) -> Agency {
        let (_, org) = self
            .post(
                &self.registry,
                "/v1/organizations",
                &self.admin,
                Some(json!({"name": name, "kind": "government_agency"})),
            )
            .await;
        let id = uuid_at(&org["id"]);
        let agency = Agency {
            id,
            manager: token(Role::Manager, Some(id)),
            hook: format!("/{id}"),
        };
        let (status, body) = self
            .post(
                &self.contacts,
                "/v1/contacts",
                &agency.manager,
                Some(json!({"org_id": id, "name": format!("{name} system manager"),
                            "role": "system_manager", "availability": "ordinary",
                            "channels": [{"kind": "webhook", "url": format!("{}{}", self.sink.url, agency.hook),
                                          "secret": "flow-secret-key"}]})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        if with_system {
            self.register_system(&agency, name).await;
        }
        agency
    }

    async fn register_system(&self, agency: &Agency, name: &str) {
        let (status, body) = self
            .post(
                &self.registry,
                "/v1/systems",
                &self.operator,
                Some(json!({"name": format!("{name} records"), "kind": "linked",
                            "owner_org_id": agency.id, "platform_id": self.platform,
                            "confidentiality": 2, "integrity": 1, "availability": 1})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    /// Drafts and proposes a rules version once demarcation knows `n` systems.
    async fn propose(&self, n: u64) -> Uuid {
        let gaps = format!(
            "{}/v1/platforms/{}/matrix/gaps",
            self.demarcation, self.platform
        );
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let (_, report) = renkei_testkit::call(
                &self.http,
                reqwest::Method::GET,
                &gaps,
                Some(&self.operator),
                None,
            )
            .await;
            if report["systems"].as_u64() == Some(n) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "demarcation never knew {n} systems"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (status, draft) = self
            .post(
                &self.demarcation,
                &format!("/v1/platforms/{}/rules", self.platform),
                &self.operator,
                Some(
                    json!({"title": "Security rules of the common platform", "rules": [
                    {"id": "R1", "title": "Incident reporting",
                     "text": "Report every security incident to the operator within one hour.",
                     "controls": []}]}),
                ),
            )
            .await;
        assert_eq!(status, 201, "{draft}");
        let version = uuid_at(&draft["id"]);
        let (status, body) = self
            .post(
                &self.demarcation,
                &format!("/v1/rules/{version}/propose"),
                &self.operator,
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        version
    }

    async fn accept(&self, version: Uuid, agency: &Agency) {
        let (status, body) = self
            .post(
                &self.demarcation,
                &format!("/v1/rules/{version}/decisions"),
                &agency.manager,
                Some(json!({"decision": "accept"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    /// Every event in `spec`'s stream, oldest first.
    async fn events(&self, spec: StreamSpec) -> Vec<Envelope> {
        let client = async_nats::connect(self.nats.url()).await.expect("nats");
        let js = jetstream::new(client);
        let mut stream = js.get_stream(spec.name).await.expect("stream");
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
            let message = tokio::time::timeout(STEP, messages.next())
                .await
                .expect("the stream's events in time")
                .expect("a message")
                .expect("a message");
            events.push(serde_json::from_slice(&message.payload).expect("an envelope"));
        }
        events
    }

    /// Waits until `subject` has `n` events in `spec`'s stream.
    async fn wait_for_events(
        &self,
        spec: StreamSpec,
        subject: &str,
        n: usize,
        within: Duration,
    ) -> Vec<Envelope> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let found: Vec<Envelope> = self
                .events(spec)
                .await
                .into_iter()
                .filter(|e| e.subject == subject)
                .collect();
            if found.len() >= n || tokio::time::Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn uuid_at(v: &Value) -> Uuid {
    v.as_str().and_then(|s| s.parse().ok()).expect("an id")
}

#[tokio::test]
async fn a_proposal_reaches_every_deciding_organisation_and_a_newcomer_is_asked_to_accept() {
    let flow = Flow::start().await;
    let a = flow.agency("Agency A", true).await;
    let b = flow.agency("Agency B", true).await;
    let version = flow.propose(2).await;

    for agency in [&a, &b] {
        let got = flow.sink.wait_for(&agency.hook, 1, STEP).await;
        assert_eq!(got.len(), 1, "the system manager heard of the proposal");
        let body = got[0].json();
        assert_eq!(body["subject"], subjects::DEMARCATION_RULES_PROPOSED);
        assert_eq!(body["condition"], "ordinary");
        assert_eq!(body["organization_id"], json!(agency.id));
        assert!(
            body["title"]
                .as_str()
                .expect("title")
                .contains("Security rules of the common platform")
        );
    }
    assert!(flow.sink.on(&format!("/{}", flow.op_org)).is_empty());

    // Full consensus; then a newcomer joins and must accept the rules in force.
    flow.accept(version, &a).await;
    flow.accept(version, &b).await;
    let c = flow.agency("Agency C", false).await;
    flow.register_system(&c, "Agency C").await;
    let asked = flow.sink.wait_for(&c.hook, 1, STEP).await;
    assert_eq!(asked.len(), 1, "the newcomer was asked");
    assert_eq!(
        asked[0].json()["subject"],
        subjects::DEMARCATION_RULES_ACCEPTANCE_REQUESTED
    );
    assert_eq!(
        flow.sink.on(&a.hook).len(),
        1,
        "the others are not asked again"
    );
    flow.stop().await;
}

#[tokio::test]
async fn a_nats_restart_loses_no_notification_and_doubles_none() {
    let mut flow = Flow::start().await;
    let a = flow.agency("Agency A", true).await;
    let b = flow.agency("Agency B", true).await;
    flow.propose(2).await;
    for agency in [&a, &b] {
        let got = flow.sink.wait_for(&agency.hook, 1, STEP).await;
        assert_eq!(got.len(), 1, "delivered");
    }
    // The broker dies; A acknowledges through its link meanwhile (the
    // service needs only its database for that), and the event it causes
    // waits in the outbox until the broker is back.
    flow.nats.kill();
    let link = flow.sink.on(&a.hook)[0].json()["ack_url"]
        .as_str()
        .expect("link")
        .to_owned();
    let token_part = link.rsplit('/').next().expect("token");
    let page = flow
        .http
        .post(format!("{}/ack/{token_part}", flow.contacts))
        .send()
        .await
        .expect("POST");
    assert_eq!(page.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    flow.nats.restart().await.expect("nats back");

    let acknowledged = flow
        .wait_for_events(
            subjects::CONTACTS_STREAM,
            subjects::CONTACTS_NOTIFICATION_ACKNOWLEDGED,
            1,
            AFTER_RESTART,
        )
        .await;
    assert_eq!(acknowledged.len(), 1);
    assert_eq!(acknowledged[0].payload["organization_id"], json!(a.id));
    assert_eq!(acknowledged[0].payload["via"], "link");
    let delivered = flow
        .wait_for_events(
            subjects::CONTACTS_STREAM,
            subjects::CONTACTS_NOTIFICATION_DELIVERED,
            2,
            AFTER_RESTART,
        )
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let delivered_again = flow.events(subjects::CONTACTS_STREAM).await;
    assert_eq!(delivered.len(), 2, "one delivered event per organisation");
    assert_eq!(
        delivered_again
            .iter()
            .filter(|e| e.subject == subjects::CONTACTS_NOTIFICATION_DELIVERED)
            .count(),
        2,
        "and no more later"
    );
    assert_eq!(flow.sink.on(&a.hook).len(), 1, "nobody was told twice");
    assert_eq!(flow.sink.on(&b.hook).len(), 1);
    flow.stop().await;
}
