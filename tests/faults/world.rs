//! The world the fault tests break: a nats-server of their own, a fresh
//! database, the four service binaries as processes (so they can be
//! SIGKILLed), a webhook receiver standing in for every organisation's
//! contacts, and the platform (its operator, its common platform system,
//! the central body). Tests add organisations, systems and links, declare
//! incidents, and check what the receiver got.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use renkei_testkit::processes::{Launch, Services};
use renkei_testkit::{NatsServer, Received, TestDb, WebhookSink, call, token};
use renkei_web::Role;
use serde_json::{Value, json};
use tempfile::TempDir;
use uuid::Uuid;

/// Held by the tests that load the machine to its limit (thousands of
/// alerts, fifty declarations a second): on two cores, two of them at once
/// would each measure the other.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Services start (and start again) within this.
pub const READY_WITHIN: Duration = Duration::from_secs(30);

/// An organisation the test made.
#[derive(Clone, Debug)]
pub struct Org {
    pub id: Uuid,
    pub manager: String,
    pub system: Option<Uuid>,
}

impl Org {
    /// The path its CSIRT's webhook receives on.
    pub fn csirt(&self) -> String {
        format!("/{}/csirt", self.id)
    }

    /// The path its CISO's webhook receives on.
    pub fn ciso(&self) -> String {
        format!("/{}/ciso", self.id)
    }

    pub fn system(&self) -> Uuid {
        self.system.expect("the organisation has a linked system")
    }
}

pub struct World {
    pub nats: NatsServer,
    pub services: Services,
    pub sink: WebhookSink,
    pub http: reqwest::Client,
    pub admin: String,
    pub operator: String,
    pub platform: Uuid,
    pub central: Org,
    pub operator_org: Org,
    _db: TestDb,
    _dir: TempDir,
}

impl World {
    /// Everything started and ready, the platform registered; `env` goes to
    /// every service process.
    pub async fn start(env: &[(&str, &str)]) -> World {
        renkei_testkit::init_tracing();
        let nats = NatsServer::start().await.expect("nats-server");
        let db = TestDb::fresh().await.expect("database");
        let dir = tempfile::tempdir().expect("data dir");
        let mut launch = Launch::new(&nats.url(), &db.url, dir.path())
            .env("RENKEI_CONTACTS__DELIVERY__RETRY_BASE_MS", "100")
            .env("RENKEI_CONTACTS__DELIVERY__RETRY_MAX_MS", "500");
        for (name, value) in env {
            launch = launch.env(name, value);
        }
        let mut services = Services::start(launch);
        services.wait_ready(READY_WITHIN).await;
        let http = reqwest::Client::new();
        let admin = token(Role::Admin, None);
        let registry = services.url("registry");
        let (status, op) = call(
            &http,
            reqwest::Method::POST,
            &format!("{registry}/v1/organizations"),
            Some(&admin),
            Some(json!({"name": "Platform Office", "kind": "platform_operator"})),
        )
        .await;
        assert_eq!(status, 201, "{op}");
        let op_org = id_at(&op["id"]);
        let operator = token(Role::Operator, Some(op_org));
        let (status, platform) = call(
            &http,
            reqwest::Method::POST,
            &format!("{registry}/v1/systems"),
            Some(&operator),
            Some(
                json!({"name": "Common Platform", "kind": "platform", "owner_org_id": op_org,
                        "confidentiality": 3, "integrity": 2, "availability": 2}),
            ),
        )
        .await;
        assert_eq!(status, 201, "{platform}");
        let operator_org = Org {
            id: op_org,
            manager: token(Role::Manager, Some(op_org)),
            system: None,
        };
        let mut world = World {
            nats,
            services,
            sink: WebhookSink::start().await.expect("webhook receiver"),
            http,
            admin,
            operator,
            platform: id_at(&platform["id"]),
            central: operator_org.clone(),
            operator_org,
            _db: db,
            _dir: dir,
        };
        world.contacts_of(&world.operator_org.clone()).await;
        world.central = world.org("NISC", "central_body", false).await;
        world
    }

    pub fn url(&self, service: &str) -> String {
        self.services.url(service)
    }

    pub async fn post(&self, service: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
        call(
            &self.http,
            reqwest::Method::POST,
            &format!("{}{path}", self.url(service)),
            Some(token),
            Some(body),
        )
        .await
    }

    pub async fn get(&self, service: &str, path: &str, token: &str) -> (u16, Value) {
        call(
            &self.http,
            reqwest::Method::GET,
            &format!("{}{path}", self.url(service)),
            Some(token),
            None,
        )
        .await
    }

    /// An organisation with a CSIRT and a CISO (webhooks on the receiver),
    /// and a linked system on the platform when asked.
    pub async fn org(&self, name: &str, kind: &str, with_system: bool) -> Org {
        let (status, org) = self
            .post(
                "registry",
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
                    "registry",
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
        for (role, path) in [("csirt", org.csirt()), ("ciso", org.ciso())] {
            let (status, body) = self
                .post(
                    "contacts",
                    "/v1/contacts",
                    &org.manager,
                    json!({"org_id": org.id, "name": format!("{role} of {}", org.id), "role": role,
                           "availability": "both",
                           "channels": [{"kind": "webhook", "url": format!("{}{path}", self.sink.url),
                                         "secret": "fault-secret-key-0123"}]}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
    }

    /// A link from `from` to `to` that carries `propagates`.
    pub async fn link(&self, from: Uuid, to: Uuid, propagates: &[&str]) {
        let (status, body) = self
            .post(
                "registry",
                "/v1/links",
                &self.operator,
                json!({"from_system_id": from, "to_system_id": to, "kind": "network",
                       "propagates": propagates}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    /// The declaration of a malware incident on `org`'s system, as its CSIRT.
    pub fn declaration(&self, org: &Org, summary: &str) -> (String, String, Value) {
        (
            format!("{}/v1/incidents", self.url("emergency")),
            token(Role::Csirt, Some(org.id)),
            json!({"system_id": org.system(), "category": "malware", "severity": 2,
                   "tlp": "amber", "summary": summary,
                   "detected_at": chrono::Utc::now().to_rfc3339()}),
        )
    }

    /// Waits until demarcation knows `n` linked systems (the registry's
    /// events have gone round), then a little more for the others.
    pub async fn wait_known(&self, n: u64) {
        let path = format!("/v1/platforms/{}/matrix/gaps", self.platform);
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let (_, report) = self.get("demarcation", &path, &self.operator).await;
            if report["systems"].as_u64() == Some(n) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "demarcation never knew {n} systems"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    /// Every spread alert the receiver got, by (incident, path).
    pub fn alerts(&self) -> Alerts {
        Alerts::of(&self.sink.since(0))
    }
}

/// The spread alerts a receiver got, checked for loss and duplicates.
#[derive(Debug, Default)]
pub struct Alerts {
    /// (incident, receiving path) → the delivery ids it came with, one per
    /// request received (a delivery sent again after a crash in flight
    /// repeats its id).
    pub by_pair: HashMap<(Uuid, String), Vec<String>>,
    /// (incident, receiving path) → when its first delivery arrived.
    pub first_at: HashMap<(Uuid, String), Instant>,
}

impl Alerts {
    pub fn of(received: &[Received]) -> Alerts {
        let mut alerts = Alerts::default();
        for r in received {
            let body = r.json();
            let Some(topic) = body["topic"].as_str() else {
                continue;
            };
            // incident/<id>/spread_risk
            let mut parts = topic.split('/');
            let (Some("incident"), Some(id), Some("spread_risk")) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Ok(incident) = Uuid::parse_str(id) else {
                continue;
            };
            let delivery = r.header("x-renkei-delivery").unwrap_or_default().to_owned();
            alerts
                .first_at
                .entry((incident, r.path.clone()))
                .or_insert(r.at);
            alerts
                .by_pair
                .entry((incident, r.path.clone()))
                .or_default()
                .push(delivery);
        }
        alerts
    }

    /// Pairs alerted on one of `paths`, each counted once.
    pub fn pairs_on(&self, paths: &HashSet<String>) -> usize {
        self.by_pair
            .keys()
            .filter(|(_, path)| paths.contains(path))
            .count()
    }

    /// Pairs that got two different deliveries: a notification made twice.
    pub fn doubled(&self) -> Vec<(Uuid, String)> {
        self.by_pair
            .iter()
            .filter(|(_, ids)| ids.iter().collect::<HashSet<_>>().len() > 1)
            .map(|(pair, _)| pair.clone())
            .collect()
    }

    /// Requests that repeated a delivery already received (sent again
    /// because a crash cut its recording short; receivers drop them by id).
    pub fn resent(&self) -> usize {
        self.by_pair.values().map(|ids| ids.len() - 1).sum()
    }
}

pub fn id_at(v: &Value) -> Uuid {
    Uuid::parse_str(v.as_str().unwrap_or_default()).expect("an id")
}

/// Every event stored in `stream` now, in order (read with an ephemeral
/// consumer of the test's own, which acks nothing).
pub async fn stream_events(nats_url: &str, stream: &str) -> Vec<renkei_bus::Envelope> {
    use async_nats::jetstream::{self, consumer::pull};
    use futures::StreamExt as _;
    let client = async_nats::connect(nats_url).await.expect("nats");
    let mut stream = jetstream::new(client)
        .get_stream(stream)
        .await
        .expect("stream");
    let stored = stream.info().await.expect("stream info").state.messages as usize;
    let mut events = Vec::with_capacity(stored);
    if stored == 0 {
        return events;
    }
    let consumer = stream
        .create_consumer(pull::Config {
            ack_policy: jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("ephemeral consumer");
    let mut messages = consumer
        .fetch()
        .max_messages(stored)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .expect("fetch");
    while let Some(message) = messages.next().await {
        let message = message.expect("message");
        events.push(serde_json::from_slice(&message.payload).expect("an envelope"));
    }
    events
}

impl World {
    /// An origin agency and `n` agencies at risk from it: each of their
    /// systems is reached from the origin's by a link carrying malware.
    pub async fn fan(&self, n: usize) -> (Org, Vec<Org>) {
        let origin = self.org("Origin Agency", "government_agency", true).await;
        let mut at_risk = Vec::with_capacity(n);
        for i in 0..n {
            let org = self
                .org(&format!("Agency {i:04}"), "government_agency", true)
                .await;
            self.link(origin.system(), org.system(), &["malware"]).await;
            at_risk.push(org);
        }
        self.wait_known(n as u64 + 1).await;
        (origin, at_risk)
    }

    /// The sum of `name`'s samples on `service`'s `/metrics` whose labels
    /// contain every one of `labels` (`consumer="contacts-emergency"`).
    pub async fn metric(&self, service: &str, name: &str, labels: &[&str]) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.url(service)))
            .send()
            .await
            .expect("/metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .filter(|l| l.starts_with(name) && labels.iter().all(|want| l.contains(want)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// Declares an incident the way a careful client does: with an
/// `Idempotency-Key`, sending again on every failure (no answer, a 5xx, a
/// 409 while the first attempt still runs) until it gets the incident;
/// returns it and how many attempts it took.
pub async fn declare_with_retries(
    http: &reqwest::Client,
    (url, token, body): &(String, String, Value),
    key: &str,
    within: Duration,
) -> (Uuid, u32) {
    let deadline = Instant::now() + within;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let answer = http
            .post(url)
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .timeout(Duration::from_secs(10))
            .json(body)
            .send()
            .await;
        match answer {
            Ok(resp) if resp.status().as_u16() == 201 => {
                let incident: Value = resp.json().await.expect("incident");
                return (id_at(&incident["id"]), attempts);
            }
            Ok(resp) => {
                let status = resp.status().as_u16();
                assert!(
                    status >= 500 || status == 409 || status == 429,
                    "declaration refused with {status}: {}",
                    resp.text().await.unwrap_or_default()
                );
            }
            Err(_) => {}
        }
        assert!(
            Instant::now() < deadline,
            "declaration {key} never succeeded in {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl World {
    /// Every item of a paginated list (`{"items": [...], "next": cursor}`).
    pub async fn list_all(&self, service: &str, path: &str, token: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let page = match &cursor {
                None => format!("{path}{sep}limit=100"),
                Some(c) => format!("{path}{sep}limit=100&cursor={c}"),
            };
            let (status, body) = self.get(service, &page, token).await;
            assert_eq!(status, 200, "GET {page}: {body}");
            items.extend(body["items"].as_array().cloned().unwrap_or_default());
            match body["next"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return items,
            }
        }
    }

    /// The age in seconds of the oldest event staged and not yet published,
    /// on any service (`/metrics`; 0 when every outbox is empty).
    pub async fn outbox_oldest_age(&self) -> f64 {
        let mut oldest: f64 = 0.0;
        for service in renkei_testkit::processes::SERVICES {
            let age = self
                .metric(service, renkei_telemetry::metrics::OUTBOX_OLDEST_AGE, &[])
                .await;
            oldest = oldest.max(age);
        }
        oldest
    }

    /// Events in the streams not yet acked by the consumers, on every service.
    pub async fn consumer_pending(&self) -> f64 {
        let mut total = 0.0;
        for service in renkei_testkit::processes::SERVICES {
            total += self
                .metric(service, renkei_telemetry::metrics::CONSUMER_PENDING, &[])
                .await;
        }
        total
    }
}
