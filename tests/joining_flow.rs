//! The joining flow across two services that talk only over NATS.
//!
//! When the registry publishes that a linked system was registered, its owner
//! organisation must accept the common rules in force on that platform; once
//! it accepts, `demarcation.rules.accepted` is published and the registry
//! activates the system. For a platform's first proposal that moment is full
//! consensus; a newcomer accepts the version in force by recording its
//! decision on it; a platform with no version in force activates nothing.
//!
//! The registry and the demarcation service run as separate services (each
//! with its own HTTP server, database and NATS connection) against a real
//! nats-server, which the fault test kills and restarts in the middle.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull};
use futures::StreamExt as _;
use renkei_bus::Envelope;
use renkei_bus::subjects::{self, StreamSpec};
use renkei_testkit::{NatsServer, TestDb, token};
use renkei_web::Role;
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

/// How long a step may take while NATS is up.
const STEP: Duration = Duration::from_secs(10);
/// How long a step may take right after NATS came back (clients reconnect
/// with a back-off, consumers re-bind, relays retry, and a delivery whose
/// acknowledgement the crash lost comes again only after the consumers'
/// 30 s ack wait).
const AFTER_RESTART: Duration = Duration::from_secs(60);
/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(100);

const PENDING: &str = "pending_rules";
const ACTIVE: &str = "active";

/// Polls `probe` until it gives `Ok`, for at most `within`; panics with the
/// last observation otherwise.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: not within {within:?}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// The two services, their databases and the nats-server between them.
struct Flow {
    nats: NatsServer,
    http: reqwest::Client,
    registry_url: String,
    demarcation_url: String,
    registry: Option<renkei_web::Running>,
    demarcation: Option<renkei_web::Running>,
    /// The services' own databases, read by the test to see their outboxes.
    registry_db: renkei_store::Db,
    demarcation_db: renkei_store::Db,
    admin: String,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

/// A platform and the token of its operator.
struct Platform {
    id: Uuid,
    operator: String,
}

/// An agency and the token of its manager.
struct Agency {
    id: Uuid,
    manager: String,
}

impl Flow {
    async fn start() -> Flow {
        renkei_testkit::init_tracing();
        let nats = NatsServer::start().await.expect("nats-server");
        let db = TestDb::fresh().await.expect("database");
        let dir = tempfile::tempdir().expect("temp dir");
        // Each service gets its own SQLite file beside the test's, or its own
        // schema of the one PostgreSQL database (`database_url_for`).
        let settings = renkei_testkit::settings(&nats.url(), &db.url, dir.path().to_path_buf());
        let registry = renkei_registry::Registry::spawn(&settings, "joining-flow-registry")
            .await
            .expect("registry");
        let demarcation =
            renkei_demarcation::Demarcation::spawn(&settings, "joining-flow-demarcation")
                .await
                .expect("demarcation");
        let open = |service: &'static str| {
            let url = settings.database_url_for(service);
            async move {
                renkei_store::Db::connect(&url, service, 1)
                    .await
                    .expect("a service database")
            }
        };
        let registry_db = open(renkei_registry::SERVICE).await;
        let demarcation_db = open(renkei_demarcation::SERVICE).await;
        Flow {
            nats,
            http: reqwest::Client::new(),
            registry_url: format!("http://{}", registry.addr),
            demarcation_url: format!("http://{}", demarcation.addr),
            registry: Some(registry),
            demarcation: Some(demarcation),
            registry_db,
            demarcation_db,
            admin: token(Role::Admin, None),
            _db: db,
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        if let Some(r) = self.demarcation.take() {
            r.stop().await.expect("demarcation stops cleanly");
        }
        if let Some(r) = self.registry.take() {
            r.stop().await.expect("registry stops cleanly");
        }
    }

    // ---- HTTP -------------------------------------------------------------

    async fn call(
        &self,
        method: reqwest::Method,
        url: String,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        renkei_testkit::call(&self.http, method, &url, Some(token), body).await
    }

    async fn registry_post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let url = format!("{}{path}", self.registry_url);
        self.call(reqwest::Method::POST, url, token, Some(body))
            .await
    }

    async fn registry_get(&self, path: &str, token: &str) -> (u16, Value) {
        let url = format!("{}{path}", self.registry_url);
        self.call(reqwest::Method::GET, url, token, None).await
    }

    async fn demarcation_post(&self, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.demarcation_url);
        self.call(reqwest::Method::POST, url, token, body).await
    }

    async fn demarcation_get(&self, path: &str, token: &str) -> (u16, Value) {
        let url = format!("{}{path}", self.demarcation_url);
        self.call(reqwest::Method::GET, url, token, None).await
    }

    async fn create_in_registry(&self, path: &str, token: &str, body: Value) -> Uuid {
        let (status, json) = self.registry_post(path, token, body).await;
        assert_eq!(status, 201, "POST {path}: {json}");
        id_of(&json)
    }

    // ---- the world --------------------------------------------------------

    async fn platform(&self, name: &str) -> Platform {
        let op_org = self
            .create_in_registry(
                "/v1/organizations",
                &self.admin,
                json!({"name": format!("{name} Office"), "kind": "platform_operator"}),
            )
            .await;
        let operator = token(Role::Operator, Some(op_org));
        let id = self
            .create_in_registry(
                "/v1/systems",
                &operator,
                json!({"name": name, "kind": "platform", "owner_org_id": op_org,
                       "confidentiality": 3, "integrity": 2, "availability": 2}),
            )
            .await;
        Platform { id, operator }
    }

    async fn agency(&self, name: &str) -> Agency {
        let id = self
            .create_in_registry(
                "/v1/organizations",
                &self.admin,
                json!({"name": name, "kind": "government_agency"}),
            )
            .await;
        Agency {
            id,
            manager: token(Role::Manager, Some(id)),
        }
    }

    /// Registers a linked system of `owner` on `platform`; it starts pending.
    async fn linked_system(&self, platform: &Platform, owner: &Agency, name: &str) -> Uuid {
        let id = self
            .create_in_registry(
                "/v1/systems",
                &platform.operator,
                json!({"name": name, "kind": "linked", "owner_org_id": owner.id,
                       "platform_id": platform.id,
                       "confidentiality": 1, "integrity": 1, "availability": 1}),
            )
            .await;
        assert_eq!(
            self.lifecycle(id).await,
            PENDING,
            "a new linked system waits for the rules"
        );
        id
    }

    async fn lifecycle(&self, system: Uuid) -> String {
        let (status, json) = self
            .registry_get(&format!("/v1/systems/{system}"), &self.admin)
            .await;
        assert_eq!(status, 200, "GET system {system}: {json}");
        json["lifecycle"].as_str().expect("a lifecycle").to_owned()
    }

    async fn assert_lifecycles(&self, systems: &[Uuid], expected: &str, why: &str) {
        for &system in systems {
            assert_eq!(self.lifecycle(system).await, expected, "{why} ({system})");
        }
    }

    async fn wait_for_lifecycles(&self, systems: &[Uuid], expected: &str, within: Duration) {
        eventually(&format!("systems become {expected}"), within, || async {
            let mut off = Vec::new();
            for &system in systems {
                let now = self.lifecycle(system).await;
                if now != expected {
                    off.push(format!("{system} is {now}"));
                }
            }
            if off.is_empty() {
                Ok(())
            } else {
                Err(off.join(", "))
            }
        })
        .await;
    }

    /// Waits until the demarcation service has learnt (from the registry's
    /// events) of `n` pending or active linked systems on the platform.
    async fn wait_until_demarcation_knows(&self, platform: &Platform, n: u64, within: Duration) {
        eventually(
            &format!("the demarcation service knows {n} systems of the platform"),
            within,
            || async {
                let (status, json) = self
                    .demarcation_get(
                        &format!("/v1/platforms/{}/matrix/gaps", platform.id),
                        &platform.operator,
                    )
                    .await;
                match json["systems"].as_u64() {
                    Some(known) if status == 200 && known == n => Ok(()),
                    _ => Err(format!("{status} {json}")),
                }
            },
        )
        .await;
    }

    /// Drafts a rules version for the platform; returns its id.
    async fn draft(&self, platform: &Platform) -> Uuid {
        let (status, json) = self
            .demarcation_post(
                &format!("/v1/platforms/{}/rules", platform.id),
                &platform.operator,
                Some(json!({"rules": [
                    {"id": "R1", "title": "Incident reporting",
                     "text": "Report every security incident to the operator within one hour.",
                     "controls": []},
                    {"id": "R2", "title": "Access review",
                     "text": "Review the accounts of your system every quarter.",
                     "controls": []}
                ]})),
            )
            .await;
        assert_eq!(status, 201, "draft: {json}");
        assert_eq!(json["state"], "draft");
        id_of(&json)
    }

    async fn propose(&self, platform: &Platform, version: Uuid) {
        let (status, json) = self
            .demarcation_post(
                &format!("/v1/rules/{version}/propose"),
                &platform.operator,
                None,
            )
            .await;
        assert_eq!(status, 200, "propose: {json}");
        assert_eq!(json["state"], "proposed", "{json}");
    }

    /// `agency` accepts `version`; the decision is recorded (201).
    async fn accept(&self, version: Uuid, agency: &Agency) -> Value {
        let (status, json) = self
            .demarcation_post(
                &format!("/v1/rules/{version}/decisions"),
                &agency.manager,
                Some(json!({"decision": "accept"})),
            )
            .await;
        assert_eq!(status, 201, "accept: {json}");
        assert_eq!(json["position"], "accepted", "{json}");
        assert_eq!(json["organization_id"], agency.id.to_string(), "{json}");
        json
    }

    async fn consensus(&self, platform: &Platform, version: Uuid) -> Value {
        let (status, json) = self
            .demarcation_get(
                &format!("/v1/rules/{version}/consensus"),
                &platform.operator,
            )
            .await;
        assert_eq!(status, 200, "consensus: {json}");
        json
    }

    /// Waits until `agency` is a party to `version` with `position`.
    async fn wait_for_party(
        &self,
        platform: &Platform,
        version: Uuid,
        agency: &Agency,
        position: &str,
        within: Duration,
    ) -> Value {
        eventually(
            &format!("{} is a party with position {position}", agency.id),
            within,
            || async {
                let c = self.consensus(platform, version).await;
                c["parties"]
                    .as_array()
                    .and_then(|ps| {
                        ps.iter()
                            .find(|p| {
                                p["organization_id"] == agency.id.to_string()
                                    && p["position"] == position
                            })
                            .cloned()
                    })
                    .ok_or_else(|| c.to_string())
            },
        )
        .await
    }

    // ---- the bus ----------------------------------------------------------

    async fn jetstream(&self) -> jetstream::Context {
        let client = async_nats::connect(self.nats.url()).await.expect("nats");
        jetstream::new(client)
    }

    /// Why the services are not quiet yet, or the last sequence of each
    /// stream when they are: both outboxes published, every durable
    /// consumer of both streams with nothing pending or unacknowledged.
    async fn quiet(&self, js: &jetstream::Context) -> Result<Vec<u64>, String> {
        for (service, db) in [
            (renkei_registry::SERVICE, &self.registry_db),
            (renkei_demarcation::SERVICE, &self.demarcation_db),
        ] {
            let backlog = renkei_bus::outbox::backlog(&db.read)
                .await
                .map_err(|e| e.to_string())?;
            if backlog > 0 {
                return Err(format!("{service} has {backlog} events to publish"));
            }
        }
        let mut last = Vec::new();
        for spec in subjects::STREAMS {
            let stream = js.get_stream(spec.name).await.map_err(|e| e.to_string())?;
            let mut consumers = stream.consumers();
            while let Some(info) = consumers.next().await {
                let info = info.map_err(|e| e.to_string())?;
                if info.config.durable_name.is_some()
                    && (info.num_pending > 0 || info.num_ack_pending > 0)
                {
                    return Err(format!(
                        "{} on {} has {} pending, {} unacknowledged",
                        info.name, spec.name, info.num_pending, info.num_ack_pending
                    ));
                }
            }
            let info = stream.get_info().await.map_err(|e| e.to_string())?;
            last.push(info.state.last_sequence);
        }
        Ok(last)
    }

    /// Waits until nothing moves: [`Flow::quiet`] twice in a row with no new
    /// event in between.
    async fn settle(&self, within: Duration) {
        let js = self.jetstream().await;
        let deadline = Instant::now() + within;
        let mut previous: Option<Vec<u64>> = None;
        loop {
            let why = match self.quiet(&js).await {
                Ok(seqs) if previous.as_ref() == Some(&seqs) => return,
                Ok(seqs) => {
                    previous = Some(seqs);
                    "not quiet twice in a row yet".to_owned()
                }
                Err(why) => {
                    previous = None;
                    why
                }
            };
            assert!(
                Instant::now() < deadline,
                "the services did not settle within {within:?}: {why}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Every event in `spec`'s stream, oldest first, read by a fresh
    /// ephemeral ordered consumer.
    async fn events(&self, spec: StreamSpec) -> Vec<Envelope> {
        let js = self.jetstream().await;
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
                .unwrap_or_else(|_| {
                    panic!(
                        "{}: only {} of {total} events read",
                        spec.name,
                        events.len()
                    )
                })
                .expect("the ordered consumer ended")
                .expect("a message");
            events.push(serde_json::from_slice(&message.payload).expect("an envelope"));
        }
        events
    }
}

fn id_of(json: &Value) -> Uuid {
    json["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an id in {json}"))
}

fn uuid_at(value: &Value) -> Uuid {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a uuid, not {value}"))
}

fn ids(list: &Value) -> HashSet<Uuid> {
    list.as_array()
        .expect("a list of ids")
        .iter()
        .map(uuid_at)
        .collect()
}

fn of_subject<'a>(events: &'a [Envelope], subject: &str) -> Vec<&'a Envelope> {
    events.iter().filter(|e| e.subject == subject).collect()
}

fn assert_no_duplicate_ids(events: &[Envelope], stream: &str) {
    let mut seen: HashMap<Uuid, usize> = HashMap::new();
    for e in events {
        *seen.entry(e.id).or_default() += 1;
    }
    let doubled: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        doubled.is_empty(),
        "{stream}: envelopes stored twice: {doubled:?}"
    );
}

/// Each of `systems` was activated exactly once (one `lifecycle_changed`
/// to `active`), and no other system was.
fn assert_activated_exactly_once(registry_events: &[Envelope], systems: &[Uuid]) {
    let mut activations: HashMap<Uuid, usize> = HashMap::new();
    for e in of_subject(registry_events, subjects::REGISTRY_SYSTEM_LIFECYCLE_CHANGED) {
        if e.payload["to"] == ACTIVE {
            assert_eq!(e.payload["from"], PENDING, "{:?}", e.payload);
            *activations
                .entry(uuid_at(&e.payload["system_id"]))
                .or_default() += 1;
        }
    }
    let expected: HashMap<Uuid, usize> = systems.iter().map(|s| (*s, 1)).collect();
    assert_eq!(
        activations, expected,
        "one activation per system, no more, no fewer"
    );
    let mut announced: HashMap<Uuid, usize> = HashMap::new();
    for e in of_subject(registry_events, subjects::REGISTRY_SYSTEM_ACTIVATED) {
        *announced
            .entry(uuid_at(&e.payload["system_id"]))
            .or_default() += 1;
    }
    assert_eq!(
        announced, expected,
        "one registry.system.activated per system, no more, no fewer"
    );
}

/// Every system in `owned` is named by exactly one
/// `demarcation.rules.accepted` for `version`, of its owner, and no other
/// system is.
fn assert_accepted_once_for(
    demarcation_events: &[Envelope],
    version: Uuid,
    owned: &[(Uuid, &Agency)],
) {
    let mut accepted: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for e in of_subject(demarcation_events, subjects::DEMARCATION_RULES_ACCEPTED) {
        if e.payload["version_id"] != version.to_string() {
            continue;
        }
        let org = uuid_at(&e.payload["organization_id"]);
        for system in ids(&e.payload["system_ids"]) {
            accepted.entry(system).or_default().push(org);
        }
    }
    let expected: HashMap<Uuid, Vec<Uuid>> = owned
        .iter()
        .map(|(system, owner)| (*system, vec![owner.id]))
        .collect();
    assert_eq!(
        accepted, expected,
        "each system named once, by its owner's acceptance"
    );
}

/// Exactly one acceptance request of `version` to `agency`, naming `systems`.
fn assert_asked_once(
    demarcation_events: &[Envelope],
    version: Uuid,
    agency: &Agency,
    systems: &[Uuid],
) {
    let asked: Vec<Uuid> = of_subject(
        demarcation_events,
        subjects::DEMARCATION_RULES_ACCEPTANCE_REQUESTED,
    )
    .into_iter()
    .filter(|e| {
        e.payload["version_id"] == version.to_string()
            && e.payload["organization_id"] == agency.id.to_string()
    })
    .flat_map(|e| ids(&e.payload["system_ids"]))
    .collect();
    let mut sorted = asked.clone();
    sorted.sort();
    let mut expected = systems.to_vec();
    expected.sort();
    assert_eq!(
        sorted, expected,
        "one acceptance request per joining system: {asked:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_system_becomes_active_once_its_owner_accepts_the_rules_in_force() {
    let flow = Flow::start().await;
    let platform = flow.platform("Common Platform").await;
    let a = flow.agency("Agency A").await;
    let b = flow.agency("Agency B").await;
    let a1 = flow.linked_system(&platform, &a, "A records").await;
    let b1 = flow.linked_system(&platform, &b, "B payroll").await;
    flow.wait_until_demarcation_knows(&platform, 2, STEP).await;

    // The first proposal asks both owners.
    let version = flow.draft(&platform).await;
    flow.propose(&platform, version).await;
    let c = flow.consensus(&platform, version).await;
    assert_eq!(c["state"], "proposed", "{c}");
    assert_eq!(ids(&c["required"]), HashSet::from([a.id, b.id]), "{c}");

    // One acceptance is not consensus: nothing is activated.
    flow.accept(version, &a).await;
    assert_eq!(
        flow.consensus(&platform, version).await["state"],
        "proposed"
    );
    flow.settle(STEP).await;
    flow.assert_lifecycles(
        &[a1, b1],
        PENDING,
        "no system is active before full consensus",
    )
    .await;
    let so_far = flow.events(subjects::DEMARCATION_STREAM).await;
    assert!(
        of_subject(&so_far, subjects::DEMARCATION_RULES_ACCEPTED).is_empty(),
        "nothing accepted is published before the rules are in force"
    );

    // Full consensus: the version comes into force, both owners' systems go active.
    flow.accept(version, &b).await;
    assert_eq!(
        flow.consensus(&platform, version).await["state"],
        "in_force"
    );
    flow.wait_for_lifecycles(&[a1, b1], ACTIVE, STEP).await;

    // A second system of an organisation that accepted: active with no new decision.
    let a2 = flow.linked_system(&platform, &a, "A archive").await;
    flow.wait_for_lifecycles(&[a2], ACTIVE, STEP).await;

    // A newcomer after the version is in force, with two systems: asked,
    // both pending until it accepts.
    let n = flow.agency("Agency N").await;
    let n1 = flow.linked_system(&platform, &n, "N portal").await;
    let n2 = flow.linked_system(&platform, &n, "N mail").await;
    flow.wait_until_demarcation_knows(&platform, 5, STEP).await;
    let party = flow
        .wait_for_party(&platform, version, &n, "pending", STEP)
        .await;
    assert_eq!(party["joined_late"], true, "{party}");
    flow.settle(STEP).await;
    flow.assert_lifecycles(
        &[n1, n2],
        PENDING,
        "a newcomer waits for its own acceptance",
    )
    .await;
    // It finds the version in force and records its decision on it.
    let (status, list) = flow
        .demarcation_get(
            &format!("/v1/platforms/{}/rules?state=in_force", platform.id),
            &n.manager,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"][0]["id"], version.to_string(), "{list}");
    let decided = flow.accept(version, &n).await;
    assert_eq!(decided["joined_late"], true, "{decided}");
    flow.wait_for_lifecycles(&[n1, n2], ACTIVE, STEP).await;

    // Decisions recorded: A, B, and the newcomer; the second system of A needed none.
    let (status, decisions) = flow
        .demarcation_get(
            &format!("/v1/rules/{version}/decisions"),
            &platform.operator,
        )
        .await;
    assert_eq!(status, 200, "{decisions}");
    let deciders: Vec<Uuid> = decisions["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| uuid_at(&d["organization_id"]))
        .collect();
    assert_eq!(deciders, vec![a.id, b.id, n.id], "{decisions}");

    flow.settle(STEP).await;
    let registry_events = flow.events(subjects::REGISTRY_STREAM).await;
    let demarcation_events = flow.events(subjects::DEMARCATION_STREAM).await;
    assert_activated_exactly_once(&registry_events, &[a1, b1, a2, n1, n2]);
    assert_eq!(
        of_subject(&demarcation_events, subjects::DEMARCATION_RULES_IN_FORCE).len(),
        1
    );
    assert_accepted_once_for(
        &demarcation_events,
        version,
        &[(a1, &a), (b1, &b), (a2, &a), (n1, &n), (n2, &n)],
    );
    assert_asked_once(&demarcation_events, version, &n, &[n1, n2]);
    assert_asked_once(&demarcation_events, version, &a, &[]);
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_joining_flow_completes_exactly_once_when_nats_restarts_in_the_middle() {
    let mut flow = Flow::start().await;
    let platform = flow.platform("Common Platform").await;
    let a = flow.agency("Agency A").await;
    let b = flow.agency("Agency B").await;
    let c = flow.agency("Agency C").await;
    let a1 = flow.linked_system(&platform, &a, "A records").await;
    let b1 = flow.linked_system(&platform, &b, "B payroll").await;
    let c1 = flow.linked_system(&platform, &c, "C registry").await;
    flow.wait_until_demarcation_knows(&platform, 3, STEP).await;
    let version = flow.draft(&platform).await;
    flow.propose(&platform, version).await;
    flow.accept(version, &a).await;

    // Outage 1, between two acceptances: decisions and registrations go on
    // (each service's outbox keeps the events).
    flow.nats.kill();
    flow.accept(version, &b).await;
    let a2 = flow.linked_system(&platform, &a, "A archive").await;
    assert_eq!(
        flow.consensus(&platform, version).await["state"],
        "proposed"
    );
    flow.nats.restart().await.expect("nats back");

    // The final acceptance, and NATS killed right after it: the events of
    // the version coming into force are staged, maybe half relayed.
    flow.wait_until_demarcation_knows(&platform, 4, AFTER_RESTART)
        .await;
    flow.accept(version, &c).await;
    flow.nats.kill();
    assert_eq!(
        flow.consensus(&platform, version).await["state"],
        "in_force"
    );
    // Outage 2: a newcomer registers meanwhile.
    let n = flow.agency("Agency N").await;
    let n1 = flow.linked_system(&platform, &n, "N portal").await;
    flow.nats.restart().await.expect("nats back");

    flow.wait_for_lifecycles(&[a1, b1, c1, a2], ACTIVE, AFTER_RESTART)
        .await;
    flow.wait_for_party(&platform, version, &n, "pending", AFTER_RESTART)
        .await;
    flow.settle(AFTER_RESTART).await;
    flow.assert_lifecycles(&[n1], PENDING, "a newcomer waits for its own acceptance")
        .await;

    // Outage 3: the newcomer accepts while NATS is down.
    flow.nats.kill();
    flow.accept(version, &n).await;
    flow.nats.restart().await.expect("nats back");
    flow.wait_for_lifecycles(&[n1], ACTIVE, AFTER_RESTART).await;

    // Exactly once: one activation per system, one coming into force, no
    // envelope stored twice.
    flow.settle(AFTER_RESTART).await;
    let registry_events = flow.events(subjects::REGISTRY_STREAM).await;
    let demarcation_events = flow.events(subjects::DEMARCATION_STREAM).await;
    assert_no_duplicate_ids(&registry_events, subjects::REGISTRY_STREAM.name);
    assert_no_duplicate_ids(&demarcation_events, subjects::DEMARCATION_STREAM.name);
    assert_activated_exactly_once(&registry_events, &[a1, b1, c1, a2, n1]);
    let in_force = of_subject(&demarcation_events, subjects::DEMARCATION_RULES_IN_FORCE);
    assert_eq!(in_force.len(), 1, "one coming into force: {in_force:?}");
    assert_eq!(in_force[0].payload["version_id"], version.to_string());
    assert_eq!(
        ids(&in_force[0].payload["accepted"]),
        HashSet::from([a.id, b.id, c.id])
    );
    assert_accepted_once_for(
        &demarcation_events,
        version,
        &[(a1, &a), (b1, &b), (c1, &c), (a2, &a), (n1, &n)],
    );
    assert_asked_once(&demarcation_events, version, &n, &[n1]);
    assert_asked_once(&demarcation_events, version, &a, &[]);
    let registered = of_subject(&registry_events, subjects::REGISTRY_SYSTEM_REGISTERED);
    assert_eq!(
        registered.len(),
        6,
        "the platform and five linked systems, once each"
    );
    flow.assert_lifecycles(&[a1, b1, c1, a2, n1], ACTIVE, "all joined")
        .await;
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_with_no_rules_in_force_activates_nothing() {
    let flow = Flow::start().await;
    let platform = flow.platform("Quiet Platform").await;
    let a = flow.agency("Agency A").await;
    let b = flow.agency("Agency B").await;
    let a1 = flow.linked_system(&platform, &a, "A records").await;
    let b1 = flow.linked_system(&platform, &b, "B payroll").await;
    flow.wait_until_demarcation_knows(&platform, 2, STEP).await;

    // A draft is not in force; neither is a proposal accepted by only some,
    // nor one withdrawn.
    let draft = flow.draft(&platform).await;
    flow.settle(STEP).await;
    flow.assert_lifecycles(&[a1, b1], PENDING, "a draft activates nothing")
        .await;
    flow.propose(&platform, draft).await;
    flow.accept(draft, &a).await;
    let (status, json) = flow
        .demarcation_post(
            &format!("/v1/rules/{draft}/withdraw"),
            &platform.operator,
            None,
        )
        .await;
    assert_eq!(status, 200, "withdraw: {json}");
    assert_eq!(json["state"], "withdrawn", "{json}");
    // A decision on a withdrawn version is refused, so it cannot activate anything.
    let (status, json) = flow
        .demarcation_post(
            &format!("/v1/rules/{draft}/decisions"),
            &b.manager,
            Some(json!({"decision": "accept"})),
        )
        .await;
    assert_eq!(status, 409, "{json}");

    // A system registered now is not asked to accept anything either.
    let a2 = flow.linked_system(&platform, &a, "A archive").await;
    flow.wait_until_demarcation_knows(&platform, 3, STEP).await;
    flow.settle(STEP).await;
    flow.assert_lifecycles(&[a1, b1, a2], PENDING, "nothing is in force")
        .await;
    let events = flow.events(subjects::DEMARCATION_STREAM).await;
    assert!(of_subject(&events, subjects::DEMARCATION_RULES_IN_FORCE).is_empty());
    assert!(of_subject(&events, subjects::DEMARCATION_RULES_ACCEPTED).is_empty());
    assert!(of_subject(&events, subjects::DEMARCATION_RULES_ACCEPTANCE_REQUESTED).is_empty());
    let registry_events = flow.events(subjects::REGISTRY_STREAM).await;
    assert_activated_exactly_once(&registry_events, &[]);

    // Until a version comes into force: then every owner that accepted it
    // has its systems activated, the one registered meanwhile included.
    let version = flow.draft(&platform).await;
    flow.propose(&platform, version).await;
    let c = flow.consensus(&platform, version).await;
    assert_eq!(ids(&c["required"]), HashSet::from([a.id, b.id]), "{c}");
    flow.accept(version, &a).await;
    flow.accept(version, &b).await;
    flow.wait_for_lifecycles(&[a1, b1, a2], ACTIVE, STEP).await;
    flow.settle(STEP).await;
    let registry_events = flow.events(subjects::REGISTRY_STREAM).await;
    assert_activated_exactly_once(&registry_events, &[a1, b1, a2]);
    flow.stop().await;
}
