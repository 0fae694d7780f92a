//! The locked-down bus of `deploy/nats`, proven against a real `nats-server`
//! running the shipped configuration: node 1's `nats-1.conf` with only its
//! addresses, paths and cluster block changed, including the shipped
//! `authorization.conf` byte for byte, with TLS certificates made here.
//!
//! - every service user connects over TLS with its password and publishes
//!   its own events into JetStream;
//! - the server refuses a service publishing on another's subject, reading
//!   another's subjects or inbox, or deleting and changing streams;
//! - a wrong password, and a connection without TLS, are refused;
//! - the four real services start with their own credentials only, and
//!   their events, consumers and queries work, with no permissions
//!   violation anywhere in the server's log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use renkei_bus::contracts::registry::SystemQuery;
use renkei_bus::query::{self, QueryError};
use renkei_bus::subjects::{self, STREAMS};
use renkei_settings::NatsSettings;
use renkei_testkit::{TestDb, free_port, token};
use renkei_web::Role;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;
use uuid::Uuid;

const SERVICES: [&str; 4] = ["registry", "demarcation", "contacts", "emergency"];
const USERS: [&str; 5] = [
    "registry",
    "demarcation",
    "contacts",
    "emergency",
    "observer",
];

fn deploy_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/nats")
        .join(name)
}

fn nats_binary() -> String {
    std::env::var("RENKEI_TEST_NATS_SERVER").unwrap_or_else(|_| "nats-server".into())
}

/// The environment variable holding `user`'s password for the server.
fn password_var(user: &str) -> String {
    format!("{}_NATS_PASSWORD", user.to_uppercase())
}

/// A CA, and a certificate for `127.0.0.1`/`localhost` signed by it, as
/// `ca.pem`, `nats-1.pem` and `nats-1-key.pem` in `dir`: the names node 1's
/// configuration expects; and a client certificate, `client.pem` and
/// `client-key.pem`.
fn make_certificates(dir: &Path) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Renkei test NATS CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().expect("CA key");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);

    let mut node = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("node parameters");
    node.distinguished_name.push(DnType::CommonName, "nats-1");
    node.use_authority_key_identifier_extension = true;
    node.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    node.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let node_key = KeyPair::generate().expect("node key");
    let node_cert = node
        .signed_by(&node_key, &issuer)
        .expect("node certificate");

    let mut client = CertificateParams::new(Vec::<String>::new()).expect("client parameters");
    client
        .distinguished_name
        .push(DnType::CommonName, "registry");
    client.use_authority_key_identifier_extension = true;
    client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate().expect("client key");
    let client_cert = client
        .signed_by(&client_key, &issuer)
        .expect("client certificate");
    std::fs::write(dir.join("client.pem"), client_cert.pem()).expect("write certificate");
    std::fs::write(dir.join("client-key.pem"), client_key.serialize_pem()).expect("write key");

    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write CA");
    std::fs::write(dir.join("nats-1.pem"), node_cert.pem()).expect("write certificate");
    std::fs::write(dir.join("nats-1-key.pem"), node_key.serialize_pem()).expect("write key");
}

/// `text` with `from` replaced, which must be there: a shipped configuration
/// that changed shape fails the test instead of being tested half.
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the shipped configuration no longer contains `{from}`"
    );
    text.replace(from, to)
}

/// A shipped node configuration with this machine's addresses and paths.
fn localised(node: &str, certs: &Path, store: &Path, port: u16, monitor: u16) -> String {
    let text = std::fs::read_to_string(deploy_file(&format!("{node}.conf"))).expect("node config");
    let text = replaced(
        &text,
        "listen: 0.0.0.0:4222",
        &format!("listen: 127.0.0.1:{port}"),
    );
    let text = replaced(
        &text,
        &format!("client_advertise: \"{node}:4222\""),
        &format!("client_advertise: \"127.0.0.1:{port}\""),
    );
    let text = replaced(
        &text,
        "http: 0.0.0.0:8222",
        &format!("http: 127.0.0.1:{monitor}"),
    );
    let text = replaced(&text, "/etc/nats/certs/", &format!("{}/", certs.display()));
    replaced(
        &text,
        "store_dir: /data/jetstream",
        &format!("store_dir: \"{}\"", store.display()),
    )
}

/// A nats-server of the test's own running the shipped configuration of
/// node 1, alone (its cluster block removed: JetStream would wait for the
/// other two nodes).
struct SecureBus {
    port: u16,
    monitor: u16,
    dir: TempDir,
    passwords: HashMap<&'static str, String>,
    child: Child,
}

impl SecureBus {
    async fn start() -> SecureBus {
        SecureBus::start_with(false).await
    }

    /// With `client_certificates`, the nodes' `tls` block also says
    /// `verify: true` (the documented way to require client certificates).
    async fn start_with(client_certificates: bool) -> SecureBus {
        let dir = tempfile::tempdir().expect("temp dir");
        let certs = dir.path().join("certs");
        std::fs::create_dir_all(&certs).expect("certs dir");
        make_certificates(&certs);
        std::fs::copy(
            deploy_file("authorization.conf"),
            dir.path().join("authorization.conf"),
        )
        .expect("the shipped authorization.conf");
        let (port, monitor) = (free_port(), free_port());
        let node = localised(
            "nats-1",
            &certs,
            &dir.path().join("jetstream"),
            port,
            monitor,
        );
        let (node, cluster) = node
            .split_once("\ncluster {")
            .expect("node 1 has a cluster block");
        assert!(
            !cluster.contains("include") && !cluster.contains("authorization"),
            "the cluster block must stay the last block of nats-1.conf"
        );
        let node = if client_certificates {
            replaced(node, "  timeout: 2\n}", "  timeout: 2\n  verify: true\n}")
        } else {
            node.to_owned()
        };
        std::fs::write(dir.path().join("nats.conf"), node).expect("write config");

        let passwords: HashMap<&'static str, String> = USERS
            .iter()
            .map(|u| (*u, format!("{u}-{}", Uuid::now_v7().simple())))
            .collect();
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let mut command = Command::new(nats_binary());
        command
            .arg("-c")
            .arg(dir.path().join("nats.conf"))
            .stdout(Stdio::null())
            .stderr(log);
        for (user, password) in &passwords {
            command.env(password_var(user), password);
        }
        let child = command
            .spawn()
            .expect("nats-server (tests/run installs one; or set RENKEI_TEST_NATS_SERVER)");
        let bus = SecureBus {
            port,
            monitor,
            dir,
            passwords,
            child,
        };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return bus;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("nats-server did not start:\n{}", bus.log());
    }

    fn url(&self) -> String {
        format!("tls://127.0.0.1:{}", self.port)
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("certs/ca.pem")
    }

    fn password(&self, user: &str) -> String {
        self.passwords[user].clone()
    }

    /// What a service is told: its user, password and the CA.
    fn settings(&self, user: &str) -> NatsSettings {
        let mut s = renkei_settings::Settings::default().nats;
        s.url = self.url();
        s.user = user.to_owned();
        s.password = self.password(user).into();
        s.tls_ca_file = self.ca().display().to_string();
        s
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The server's own account of its streams and consumers (monitoring
    /// port, which needs no NATS user).
    async fn jsz(&self) -> Value {
        let url = format!(
            "http://127.0.0.1:{}/jsz?streams=true&consumers=true",
            self.monitor
        );
        reqwest::get(url)
            .await
            .expect("monitoring port")
            .json()
            .await
            .expect("jsz JSON")
    }

    async fn stream(&self, name: &str) -> Option<Value> {
        let jsz = self.jsz().await;
        jsz["account_details"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
            .find(|s| s["name"] == name)
    }

    async fn messages_in(&self, stream: &str) -> u64 {
        self.stream(stream)
            .await
            .and_then(|s| s["state"]["messages"].as_u64())
            .unwrap_or_else(|| panic!("stream {stream} does not exist"))
    }

    /// A client of `user` that reports every event the server sends it
    /// (permissions violations are `-ERR`s, seen as server errors).
    async fn watched(&self, user: &str) -> (async_nats::Client, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let client = async_nats::ConnectOptions::with_user_and_password(
            user.to_owned(),
            self.password(user),
        )
        .add_root_certificates(self.ca())
        .require_tls(true)
        .custom_inbox_prefix(renkei_bus::nats::inbox_prefix(user).expect("a plain name"))
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(event.to_string());
            }
        })
        .connect(self.url())
        .await
        .unwrap_or_else(|e| panic!("{user} connects: {e}"));
        (client, rx)
    }
}

impl Drop for SecureBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first event mentioning every one of `needles` (case-insensitive),
/// within a few seconds.
async fn refusal(events: &mut mpsc::UnboundedReceiver<String>, needles: &[&str]) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) => {
                let lower = event.to_lowercase();
                if needles.iter().all(|n| lower.contains(&n.to_lowercase())) {
                    return event;
                }
                seen.push(event);
            }
            _ => panic!("the server did not refuse {needles:?}; events: {seen:?}"),
        }
    }
}

/// Connects as `service` does and declares its streams as it does at start.
async fn as_service(bus: &SecureBus, service: &'static str) -> async_nats::Client {
    let client = renkei_bus::nats::connect(&bus.settings(service), service)
        .await
        .unwrap_or_else(|e| panic!("{service} connects over TLS: {e:#}"));
    renkei_bus::nats::declare_streams(&client, 1, service, STREAMS)
        .await
        .unwrap_or_else(|e| panic!("{service} declares its streams: {e:#}"));
    client
}

#[tokio::test]
async fn every_service_publishes_its_own_events_over_tls_with_its_password() {
    let bus = SecureBus::start().await;
    let own_subjects = [
        (
            "registry",
            subjects::REGISTRY_ORGANIZATION_REGISTERED.to_owned(),
        ),
        (
            "demarcation",
            subjects::DEMARCATION_RULES_PROPOSED.to_owned(),
        ),
        (
            "contacts",
            subjects::CONTACTS_NOTIFICATION_DELIVERED.to_owned(),
        ),
        (
            "emergency",
            subjects::EMERGENCY_INCIDENT_SPREAD_RISK.to_owned(),
        ),
        ("emergency", subjects::incident_messages(Uuid::now_v7())),
    ];
    for (service, subject) in own_subjects {
        let client = as_service(&bus, service).await;
        let js = jetstream::new(client);
        let ack = js
            .publish(subject.clone(), Bytes::from_static(b"{}"))
            .await
            .expect("sent")
            .await
            .unwrap_or_else(|e| panic!("{service} on {subject}: no ack: {e}"));
        let expected = subjects::stream_for(&subject).expect("captured").name;
        assert_eq!(ack.stream, expected, "{subject}");
        let head = js
            .publish(subjects::audit_head(service), Bytes::from_static(b"{}"))
            .await
            .expect("sent")
            .await
            .unwrap_or_else(|e| panic!("{service}: its audit head has no ack: {e}"));
        assert_eq!(head.stream, subjects::AUDIT_STREAM.name);
    }
    assert_eq!(bus.messages_in("REGISTRY").await, 1);
    assert_eq!(bus.messages_in("EMERGENCY").await, 2);
    assert_eq!(bus.messages_in("AUDIT").await, 5);
}

#[tokio::test]
async fn a_service_publishing_on_another_services_subject_is_refused_by_the_server() {
    let bus = SecureBus::start().await;
    as_service(&bus, "emergency").await;
    let (registry, mut events) = bus.watched("registry").await;

    // Into JetStream: the server drops it, so no ack ever comes.
    let js = jetstream::new(registry.clone());
    let sent = js
        .publish(
            subjects::EMERGENCY_INCIDENT_SPREAD_RISK,
            Bytes::from_static(b"{}"),
        )
        .await
        .expect("handed to the client");
    let ack = tokio::time::timeout(Duration::from_secs(3), sent).await;
    assert!(
        !matches!(ack, Ok(Ok(_))),
        "a forged emergency event was acknowledged: {ack:?}"
    );
    refusal(
        &mut events,
        &[
            "permissions violation",
            "publish",
            "emergency.incident.spread_risk",
        ],
    )
    .await;

    // Plain publish, another's audit head, and a query it does not ask.
    for subject in [
        subjects::DEMARCATION_RULES_ACCEPTED.to_owned(),
        subjects::audit_head("emergency"),
        subjects::QUERY_DEMARCATION_RESPONSIBILITY.to_owned(),
    ] {
        registry
            .publish(subject.clone(), Bytes::from_static(b"{}"))
            .await
            .expect("handed to the client");
        registry.flush().await.expect("flushed");
        refusal(&mut events, &["permissions violation", "publish", &subject]).await;
    }

    assert_eq!(
        bus.messages_in("EMERGENCY").await,
        0,
        "nothing of the registry's reached the emergency stream"
    );
    assert_eq!(bus.messages_in("AUDIT").await, 0);
    // The server's log says so too (the real services' test relies on it).
    assert!(
        bus.log().contains("Publish Violation"),
        "the server did not log the refusals:\n{}",
        bus.log()
    );

    // The owner's own publish on the same subject is stored.
    let emergency = jetstream::new(as_service(&bus, "emergency").await);
    emergency
        .publish(
            subjects::EMERGENCY_INCIDENT_SPREAD_RISK,
            Bytes::from_static(b"{}"),
        )
        .await
        .expect("sent")
        .await
        .expect("the owner's event is stored");
    assert_eq!(bus.messages_in("EMERGENCY").await, 1);
}

#[tokio::test]
async fn a_service_may_not_read_others_subjects_or_inboxes_nor_change_their_streams() {
    let bus = SecureBus::start().await;
    as_service(&bus, "registry").await;
    let (registry, mut events) = bus.watched("registry").await;

    for subject in [
        "emergency.>",
        "_INBOX.emergency.>",
        "_INBOX.>",
        "query.contacts.>",
    ] {
        let _subscription = registry
            .subscribe(subject)
            .await
            .expect("handed to the client");
        refusal(
            &mut events,
            &["permissions violation", "subscription", subject],
        )
        .await;
    }

    // JetStream administration beyond its own stream: delete, purge,
    // change another's stream, read a stream through a consumer of its own
    // making.
    for subject in [
        "$JS.API.STREAM.DELETE.REGISTRY",
        "$JS.API.STREAM.PURGE.REGISTRY",
        "$JS.API.STREAM.UPDATE.EMERGENCY",
        "$JS.API.STREAM.MSG.DELETE.REGISTRY",
        "$JS.API.CONSUMER.CREATE.EMERGENCY.snooper",
        "$JS.API.CONSUMER.DELETE.DEMARCATION.registry-rules-accepted",
    ] {
        registry
            .publish(subject, Bytes::from_static(b"{}"))
            .await
            .expect("handed to the client");
        registry.flush().await.expect("flushed");
        refusal(&mut events, &["permissions violation", "publish", subject]).await;
    }
    assert!(
        bus.stream("REGISTRY").await.is_some(),
        "the registry's stream is still there"
    );
}

#[tokio::test]
async fn a_query_reaches_its_responder_and_only_the_services_that_ask_it() {
    let bus = SecureBus::start().await;
    let (registry, _) = bus.watched("registry").await;
    let mut questions = registry
        .queue_subscribe(subjects::QUERY_REGISTRY_BLAST_RADIUS, "registry".to_owned())
        .await
        .expect("the registry answers its queries");
    registry.flush().await.expect("subscribed");
    let responder = tokio::spawn(async move {
        use futures::StreamExt as _;
        while let Some(question) = questions.next().await {
            if let Some(reply) = question.reply {
                // allow_responses: the asker's inbox, once.
                registry
                    .publish(reply, Bytes::from_static(b"answer"))
                    .await
                    .expect("reply sent");
            }
        }
    });

    let (emergency, _) = bus.watched("emergency").await;
    let answer = emergency
        .request(subjects::QUERY_REGISTRY_BLAST_RADIUS, Bytes::new())
        .await
        .expect("emergency asks the registry and gets its answer");
    assert_eq!(&answer.payload[..], b"answer");
    assert!(
        answer.subject.starts_with("_INBOX.emergency."),
        "{}",
        answer.subject
    );

    let (contacts, mut events) = bus.watched("contacts").await;
    let asked = tokio::time::timeout(
        Duration::from_secs(2),
        contacts.request(subjects::QUERY_REGISTRY_BLAST_RADIUS, Bytes::new()),
    )
    .await;
    assert!(
        !matches!(asked, Ok(Ok(_))),
        "contacts may not ask for a blast radius: {asked:?}"
    );
    refusal(
        &mut events,
        &[
            "permissions violation",
            "publish",
            "query.registry.blast_radius",
        ],
    )
    .await;
    responder.abort();
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_never_shown() {
    let bus = SecureBus::start().await;
    let mut settings = bus.settings("registry");
    let wrong = format!("not-{}", bus.password("registry"));
    settings.password = wrong.clone().into();
    let error = renkei_bus::nats::connect(&settings, "registry")
        .await
        .expect_err("a wrong password is refused");
    let text = format!("{error:#}");
    assert!(text.contains("nats.user / nats.password"), "{text}");
    assert!(!text.contains(&wrong), "the password was shown: {text}");

    // A password of another user is no better.
    settings.password = bus.password("emergency").into();
    let error = renkei_bus::nats::connect(&settings, "registry")
        .await
        .expect_err("another user's password is refused");
    assert!(
        !format!("{error:#}").contains(&bus.password("emergency")),
        "{error:#}"
    );
}

#[tokio::test]
async fn a_connection_without_tls_is_refused() {
    let bus = SecureBus::start().await;

    // Plain text with the right password: the server asks for TLS in its
    // INFO and never lets the client in.
    let mut plain = tokio::net::TcpStream::connect(("127.0.0.1", bus.port))
        .await
        .expect("TCP");
    let mut info = vec![0u8; 4096];
    let n = plain.read(&mut info).await.expect("INFO");
    let info = String::from_utf8_lossy(&info[..n]).to_string();
    assert!(info.starts_with("INFO "), "{info}");
    assert!(info.contains("\"tls_required\":true"), "{info}");
    let connect = json!({
        "user": "registry",
        "pass": bus.password("registry"),
        "verbose": false,
        "pedantic": false,
        "tls_required": false,
    });
    plain
        .write_all(format!("CONNECT {connect}\r\nPING\r\n").as_bytes())
        .await
        .expect("written");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut rest)).await;
    let rest = String::from_utf8_lossy(&rest).to_string();
    assert!(read.is_ok(), "the server kept a plain connection open");
    assert!(!rest.contains("PONG"), "a plain client was let in: {rest}");

    // The product's client without the CA: the server's certificate is not
    // trusted, and the error names the TLS settings.
    let mut settings = bus.settings("registry");
    settings.url = format!("nats://127.0.0.1:{}", bus.port);
    settings.tls_ca_file = String::new();
    let error = renkei_bus::nats::connect(&settings, "registry")
        .await
        .expect_err("an untrusted server is refused");
    assert!(format!("{error:#}").contains("TLS"), "{error:#}");

    // The same client with the CA and a nats:// URL upgrades to TLS.
    settings.tls_ca_file = bus.ca().display().to_string();
    renkei_bus::nats::connect(&settings, "registry")
        .await
        .expect("TLS from the CA setting alone");
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_the_nodes_require_one() {
    let bus = SecureBus::start_with(true).await;
    let mut settings = bus.settings("registry");
    let error = renkei_bus::nats::connect(&settings, "registry")
        .await
        .expect_err("no client certificate, no connection");
    assert!(format!("{error:#}").contains("TLS"), "{error:#}");

    let certs = bus.dir.path().join("certs");
    settings.tls_cert_file = certs.join("client.pem").display().to_string();
    settings.tls_key_file = certs.join("client-key.pem").display().to_string();
    let client = renkei_bus::nats::connect(&settings, "registry")
        .await
        .expect("the client certificate and the password let it in");
    renkei_bus::nats::wait_for_jetstream(&client, Duration::from_secs(5))
        .await
        .expect("JetStream answers");
}

#[tokio::test]
async fn every_shipped_node_configuration_is_valid() {
    let dir = tempfile::tempdir().expect("temp dir");
    make_certificates(dir.path());
    for (node, certificate) in [("nats-2", "nats-1"), ("nats-3", "nats-1")] {
        // One test certificate stands in for every node's.
        for suffix in [".pem", "-key.pem"] {
            std::fs::copy(
                dir.path().join(format!("{certificate}{suffix}")),
                dir.path().join(format!("{node}{suffix}")),
            )
            .expect("certificate copy");
        }
    }
    std::fs::copy(
        deploy_file("authorization.conf"),
        dir.path().join("authorization.conf"),
    )
    .expect("authorization.conf");
    for node in ["nats-1", "nats-2", "nats-3"] {
        let text = localised(node, dir.path(), &dir.path().join(node), 4222, 8222);
        let path = dir.path().join(format!("{node}.conf"));
        std::fs::write(&path, text).expect("write");
        let mut command = Command::new(nats_binary());
        command.arg("-t").arg("-c").arg(&path);
        for user in USERS {
            command.env(password_var(user), "test");
        }
        let out = command.output().expect("nats-server -t");
        assert!(
            out.status.success(),
            "{node}.conf: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Without the passwords in its environment a node refuses to start.
        let out = Command::new(nats_binary())
            .arg("-t")
            .arg("-c")
            .arg(&path)
            .env_clear()
            .output()
            .expect("nats-server -t");
        assert!(!out.status.success(), "{node} started without passwords");
    }
}

/// The four real services, each with its own user and nothing more: they
/// start (streams, consumers, responders), become ready, the registry's
/// events reach the other three, and a query is answered.
#[tokio::test]
async fn the_real_services_work_with_their_own_permissions_only() {
    renkei_testkit::init_tracing();
    let bus = SecureBus::start().await;
    let mut running = Vec::new();
    let mut keep = Vec::new();
    for service in SERVICES {
        let db = TestDb::fresh().await.expect("database");
        let dir = tempfile::tempdir().expect("data dir");
        let mut settings = renkei_testkit::settings(&bus.url(), &db.url, dir.path().to_path_buf());
        settings.nats = bus.settings(service);
        settings.outbox.sweep_interval_ms = 200;
        settings.audit.head_interval_secs = 1;
        let started = match service {
            "registry" => renkei_registry::Registry::spawn(&settings, service).await,
            "demarcation" => renkei_demarcation::Demarcation::spawn(&settings, service).await,
            "contacts" => renkei_contacts::Contacts::spawn(&settings, service).await,
            _ => renkei_emergency::Emergency::spawn(&settings, service).await,
        };
        let started = started.unwrap_or_else(|e| {
            panic!(
                "{service} did not start with its own permissions: {e:#}\n{}",
                bus.log()
            )
        });
        running.push((service, started));
        keep.push((db, dir));
    }
    let http = reqwest::Client::new();
    for (service, r) in &running {
        let (status, body) = renkei_testkit::call(
            &http,
            reqwest::Method::GET,
            &format!("http://{}/readyz", r.addr),
            None,
            None,
        )
        .await;
        assert_eq!(status, 200, "{service} is not ready: {body}");
    }

    let registry = format!("http://{}", running[0].1.addr);
    let (status, body) = renkei_testkit::call(
        &http,
        reqwest::Method::POST,
        &format!("{registry}/v1/organizations"),
        Some(&token(Role::Admin, None)),
        Some(json!({"name": "Digital Agency", "kind": "government_agency"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // The event reaches the three consumers of the registry's stream, each
    // bound and acknowledging under its own user.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let stream = bus.stream("REGISTRY").await.unwrap_or(Value::Null);
        let consumers: HashMap<String, (u64, u64)> = stream["consumer_detail"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default().to_owned(),
                    (
                        c["delivered"]["stream_seq"].as_u64().unwrap_or(0),
                        c["num_ack_pending"].as_u64().unwrap_or(u64::MAX),
                    ),
                )
            })
            .collect();
        let done = [
            "demarcation-registry",
            "contacts-registry",
            "emergency-registry",
        ]
        .iter()
        .all(|d| matches!(consumers.get(*d), Some(&(seq, 0)) if seq >= 1));
        if done {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the registry's event was not consumed by all: {consumers:?}\n{}",
            bus.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (stream, durable) in [
        ("DEMARCATION", "registry-rules-accepted"),
        ("DEMARCATION", "contacts-demarcation"),
        ("EMERGENCY", "contacts-emergency"),
        ("CONTACTS", "emergency-contacts"),
    ] {
        let detail = bus.stream(stream).await.expect("stream declared");
        assert!(
            detail["consumer_detail"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["name"] == durable),
            "{durable} is not bound on {stream}"
        );
    }

    // A query over the locked-down bus: emergency asks, the registry answers.
    let emergency = renkei_bus::nats::connect(&bus.settings("emergency"), "emergency-probe")
        .await
        .expect("emergency connects");
    let answer = query::request(
        &emergency,
        &SystemQuery {
            system_id: Uuid::now_v7(),
        },
        Duration::from_secs(5),
    )
    .await;
    assert!(
        matches!(&answer, Err(QueryError::Refused(f)) if f.code == "not_found"),
        "{answer:?}"
    );

    // The audit record over the bus: any service asks all four for their
    // logs (query.<service>.audit), and reads the signed heads from the
    // AUDIT stream, which the registry's head has reached by now.
    let auditor = token(Role::Auditor, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, heads) = renkei_testkit::call(
            &http,
            reqwest::Method::GET,
            &format!("{registry}/v1/audit/heads"),
            Some(&auditor),
            None,
        )
        .await;
        assert_eq!(status, 200, "{heads}");
        let items = heads["items"].as_array().cloned().unwrap_or_default();
        if items.iter().any(|h| h["service"] == "registry") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no signed head of the registry: {heads}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (service, r) in &running {
        let (status, record) = renkei_testkit::call(
            &http,
            reqwest::Method::GET,
            &format!("http://{}/v1/audit", r.addr),
            Some(&auditor),
            None,
        )
        .await;
        assert_eq!(status, 200, "{service}: {record}");
        assert_eq!(record["unavailable"], json!([]), "{service}: {record}");
        assert!(
            record["items"]
                .as_array()
                .is_some_and(|items| items.iter().any(|e| e["action"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("organization")))),
            "{service} does not see the registry's entry: {record}"
        );
    }

    for (service, r) in running {
        r.stop()
            .await
            .unwrap_or_else(|e| panic!("{service} stops: {e:#}"));
    }
    let log = bus.log();
    assert!(
        !log.to_lowercase().contains("violation"),
        "a service needed a permission it does not have:\n{log}"
    );
    drop(keep);
}
