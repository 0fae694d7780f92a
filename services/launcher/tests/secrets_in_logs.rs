//! Secrets never reach the logs. The whole product (`renkei up`, as a child
//! process) runs at debug level with JSON logs, with every secret
//! configured and used: the development signing key, the NATS password (on
//! a server that requires it), the SMTP password (on a relay that refuses
//! logins, so it travels through an error), the audit signing key, webhook
//! signing secrets (sent, failing, refused in a bad body), bearer tokens
//! (good, forged, garbage) and an acknowledgement link's token. Everything
//! the process wrote on stdout and stderr is then searched for each of
//! them, and so is every trace it exported (OTLP/HTTP to a local
//! receiver).

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use renkei_testkit::{MailSink, NatsServer, WebhookSink, free_port};
use renkei_web::{Role, TokenIssuer};
use serde_json::{Value, json};
use uuid::Uuid;

fn unique(what: &str) -> String {
    format!("{what}-{}", Uuid::now_v7().simple())
}

/// A nats-server with JetStream that lets in only `renkei` with `password`.
async fn nats_with_password(password: &str) -> NatsServer {
    NatsServer::start_with(&["--user", "renkei", "--pass", password])
        .await
        .expect("nats-server (tests/run installs one; or set RENKEI_TEST_NATS_SERVER)")
}

struct Product {
    base: String,
    http: reqwest::Client,
}

impl Product {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        renkei_testkit::call(
            &self.http,
            method,
            &format!("{}{path}", self.base),
            token,
            body,
        )
        .await
    }

    async fn created(&self, path: &str, token: &str, body: Value) -> Uuid {
        let (status, json) = self
            .call(reqwest::Method::POST, path, Some(token), Some(body))
            .await;
        assert_eq!(status, 201, "{path}: {json}");
        json["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("an id")
    }
}

/// Lines of `logs` holding `secret`, with the secret itself masked.
fn leaks(logs: &str, secret: &str) -> Vec<String> {
    logs.lines()
        .filter(|l| l.contains(secret))
        .map(|l| l.replace(secret, "<SECRET>"))
        .collect()
}

/// `renkei up` at debug level with JSON logs, its stdout and stderr in
/// `dir`, and `env` on top; returned once it is ready.
async fn renkei_up(
    dir: &Path,
    nats_url: &str,
    env: &[(&str, &str)],
) -> (tokio::process::Child, Product) {
    let http_port = free_port();
    let stdout = std::fs::File::create(dir.join("stdout.log")).expect("stdout file");
    let stderr = std::fs::File::create(dir.join("stderr.log")).expect("stderr file");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_renkei"));
    command
        .arg("up")
        .args(["--listen", &format!("127.0.0.1:{http_port}")])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--nats-url", nats_url])
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true);
    // Nothing from the test's own environment (RENKEI_TEST_*, a developer's
    // RENKEI_* settings) reaches the product.
    for (key, _) in std::env::vars() {
        if key.starts_with("RENKEI_") {
            command.env_remove(key);
        }
    }
    command
        .env("RENKEI_TELEMETRY__FORMAT", "json")
        .env("RENKEI_TELEMETRY__FILTER", "debug")
        .env("RENKEI_RATE_LIMIT__PER_SECOND", "0")
        .env("RENKEI_OUTBOX__SWEEP_INTERVAL_MS", "200")
        .envs(env.iter().copied());
    let mut renkei = command.spawn().expect("renkei up");
    let product = Product {
        base: format!("http://127.0.0.1:{http_port}"),
        http: reqwest::Client::new(),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(Some(status)) = renkei.try_wait() {
            panic!("renkei up stopped ({status}):\n{}", read_logs(dir));
        }
        let ready = product
            .http
            .get(format!("{}/readyz", product.base))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ready {
            return (renkei, product);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "renkei up never became ready:\n{}",
            read_logs(dir)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn read_logs(dir: &Path) -> String {
    let out = std::fs::read_to_string(dir.join("stdout.log")).unwrap_or_default();
    let err = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    format!("{out}\n{err}")
}

/// Stops `renkei` as a supervisor does (SIGTERM) and returns everything it
/// wrote.
async fn stop(renkei: &mut tokio::process::Child, dir: &Path) -> String {
    let pid = renkei.id().expect("running");
    let stopped = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .expect("kill");
    assert!(stopped.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), renkei.wait())
        .await
        .expect("renkei up stops on SIGTERM")
        .expect("exit status");
    let logs = read_logs(dir);
    if let Ok(keep) = std::env::var("RENKEI_TEST_KEEP_LOGS") {
        // For a look at what the product logs: RENKEI_TEST_KEEP_LOGS=<file>.
        std::fs::write(keep, &logs).expect("logs kept");
    }
    assert!(exit.success(), "renkei up failed ({exit}):\n{logs}");
    logs
}

#[tokio::test]
async fn no_secret_appears_in_the_logs_of_a_full_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dev_key = unique("dev-signing-key");
    let nats_password = unique("nats-password");
    let smtp_password = unique("smtp-password");
    let audit_key = format!("{}{}", Uuid::now_v7().simple(), Uuid::now_v7().simple());
    let webhook_secret = unique("webhook-secret");
    let failing_secret = unique("failing-webhook-secret");
    let refused_secret = unique("refused-webhook-secret");

    let nats = nats_with_password(&nats_password).await;
    let sink = WebhookSink::start().await.expect("webhook receiver");
    sink.answer("/failing", 500);
    let mail = MailSink::start().expect("mail relay");
    let collector = WebhookSink::start().await.expect("trace receiver");

    let (mut renkei, product) = renkei_up(
        dir.path(),
        &nats.url(),
        &[
            ("RENKEI_TELEMETRY__OTLP_ENDPOINT", collector.url.as_str()),
            ("RENKEI_AUTH__DEV_KEY", &dev_key),
            ("RENKEI_AUDIT__SIGNING_KEY", &audit_key),
            ("RENKEI_NATS__USER", "renkei"),
            ("RENKEI_NATS__PASSWORD", &nats_password),
            ("RENKEI_CONTACTS__SMTP__HOST", "127.0.0.1"),
            ("RENKEI_CONTACTS__SMTP__PORT", &mail.port.to_string()),
            ("RENKEI_CONTACTS__SMTP__TLS", "none"),
            ("RENKEI_CONTACTS__SMTP__USERNAME", "renkei-mailer"),
            ("RENKEI_CONTACTS__SMTP__PASSWORD", &smtp_password),
            ("RENKEI_CONTACTS__DELIVERY__RETRY_BASE_MS", "200"),
            ("RENKEI_CONTACTS__DELIVERY__RETRY_MAX_MS", "400"),
            ("RENKEI_CONTACTS__DELIVERY__MAX_ATTEMPTS", "2"),
        ],
    )
    .await;

    // A platform, an agency on it, and the agency's CSIRT reached by a
    // signed webhook, by email and by a webhook that fails.
    let issuer = TokenIssuer::hs256(dev_key.as_bytes());
    let mint = |role: Role, org: Option<Uuid>| {
        issuer
            .issue(
                &format!("secret-test-{}", role.as_str()),
                org,
                &[role],
                3600,
            )
            .expect("a token")
    };
    let admin = mint(Role::Admin, None);
    let op_org = product
        .created(
            "/v1/organizations",
            &admin,
            json!({"name": "Platform Office", "kind": "platform_operator"}),
        )
        .await;
    let operator = mint(Role::Operator, Some(op_org));
    let platform = product
        .created(
            "/v1/systems",
            &operator,
            json!({"name": "Common Platform", "kind": "platform", "owner_org_id": op_org,
                   "confidentiality": 3, "integrity": 2, "availability": 2}),
        )
        .await;
    let agency = product
        .created(
            "/v1/organizations",
            &admin,
            json!({"name": "Agency", "kind": "government_agency"}),
        )
        .await;
    product
        .created(
            "/v1/systems",
            &operator,
            json!({"name": "Agency records", "kind": "linked", "owner_org_id": agency,
                   "platform_id": platform, "confidentiality": 2, "integrity": 1, "availability": 1}),
        )
        .await;
    let manager = mint(Role::Manager, Some(agency));
    let known = tokio::time::Instant::now() + Duration::from_secs(20);
    while product
        .call(
            reqwest::Method::GET,
            &format!("/v1/organizations/{agency}/escalation-policy"),
            Some(&operator),
            None,
        )
        .await
        .0
        != 200
    {
        assert!(
            tokio::time::Instant::now() < known,
            "contacts never learnt of the agency"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    product
        .created(
            "/v1/contacts",
            &manager,
            json!({"org_id": agency, "name": "Agency CSIRT", "role": "csirt",
                   "availability": "both",
                   "channels": [
                       {"kind": "webhook", "url": format!("{}/hook", sink.url), "secret": webhook_secret},
                       {"kind": "email", "address": "csirt@agency.example"},
                       {"kind": "webhook", "url": format!("{}/failing", sink.url), "secret": failing_secret}]}),
        )
        .await;

    // Bad input and bad tokens: each refused with a 4xx.
    let (status, body) = product
        .call(
            reqwest::Method::POST,
            "/v1/contacts",
            Some(&manager),
            Some(json!({"org_id": agency, "name": "Broken", "role": "csirt",
                        "availability": "both",
                        "channels": [{"kind": "webhook", "url": "not a url", "secret": refused_secret}]})),
        )
        .await;
    assert!((400..500).contains(&status), "{status} {body}");
    let (status, body) = product
        .call(
            reqwest::Method::POST,
            "/v1/organizations",
            Some(&admin),
            Some(json!({"name": 5, "kind": "government_agency"})),
        )
        .await;
    assert!((400..500).contains(&status), "{status} {body}");
    let garbage = unique("not-a-jwt");
    let forged = TokenIssuer::hs256(unique("another-key").as_bytes())
        .issue("secret-test-forger", None, &[Role::Admin], 3600)
        .expect("a token");
    for bad in [&garbage, &forged] {
        let (status, body) = product
            .call(reqwest::Method::GET, "/v1/organizations", Some(bad), None)
            .await;
        assert_eq!(status, 401, "{body}");
    }

    // A drill: the CSIRT's webhook is signed with its secret, the email goes
    // to a relay that refuses the login, the other webhook fails; then the
    // link in the message is opened and acknowledged.
    let (status, drill) = product
        .call(
            reqwest::Method::POST,
            "/v1/drills",
            Some(&operator),
            Some(json!({"platform_id": platform})),
        )
        .await;
    assert_eq!(status, 201, "{drill}");
    let got = sink.wait_for("/hook", 1, Duration::from_secs(30)).await;
    let first = got.first().expect("the drill reached the CSIRT's webhook");
    assert!(first.header("x-renkei-signature").is_some());
    let ack_url = first.json()["ack_url"]
        .as_str()
        .expect("an acknowledgement link")
        .to_owned();
    let ack_token = ack_url.rsplit('/').next().expect("a token").to_owned();

    // Every channel was tried: the email (the relay refuses the login), and
    // the failing webhook. Their errors (in the drill's report) do not carry
    // the secrets either.
    let drill_id = drill["id"].as_str().expect("drill id").to_owned();
    let tried = tokio::time::Instant::now() + Duration::from_secs(30);
    let deliveries = loop {
        let (_, d) = product
            .call(
                reqwest::Method::GET,
                &format!("/v1/drills/{drill_id}"),
                Some(&operator),
                None,
            )
            .await;
        let failures: Vec<String> = d["report"][0]["organizations"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|o| o["contacts"].as_array().cloned().unwrap_or_default())
            .flat_map(|c| c["failures"].as_array().cloned().unwrap_or_default())
            .filter_map(|f| f.as_str().map(str::to_owned))
            .collect();
        let email_failed = failures.iter().any(|f| f.starts_with("email"));
        let webhook_failed = failures.iter().any(|f| f.contains("/failing"));
        if email_failed && webhook_failed {
            break d.to_string();
        }
        assert!(
            tokio::time::Instant::now() < tried,
            "the email and the failing webhook were not tried: {d}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        mail.received().is_empty(),
        "the relay took a message without the login"
    );

    let page = product
        .http
        .get(&ack_url)
        .send()
        .await
        .expect("GET the link");
    assert_eq!(page.status(), 200);
    let confirmed = product
        .http
        .post(&ack_url)
        .send()
        .await
        .expect("POST the link");
    assert_eq!(confirmed.status(), 200);
    let forged_ack = format!("{}x", &ack_token[..ack_token.len() - 1]);
    let refused = product
        .http
        .get(format!("{}/ack/{forged_ack}", product.base))
        .send()
        .await
        .expect("GET a forged link");
    assert_eq!(refused.status(), 404);

    let logs = stop(&mut renkei, dir.path()).await;

    // The logs are really there, at debug level, and saw the run.
    let debug_lines = logs
        .lines()
        .filter(|l| l.contains("\"level\":\"DEBUG\""))
        .count();
    assert!(debug_lines > 20, "hardly any debug logs:\n{logs}");
    assert!(logs.contains("/v1/drills"), "the run is not in the logs");

    // Every trace exported, as text: the strings inside the protobuf.
    let traces: String = collector
        .since(0)
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        traces.contains("http.request"),
        "no trace was exported ({} requests)",
        collector.count()
    );
    let everything = format!("{logs}\n{traces}\n{deliveries}");

    let plain_login = base64::engine::general_purpose::STANDARD
        .encode(format!("\0renkei-mailer\0{smtp_password}"));
    let secrets = [
        ("RENKEI_AUTH__DEV_KEY", dev_key.as_str()),
        ("RENKEI_NATS__PASSWORD", nats_password.as_str()),
        ("RENKEI_CONTACTS__SMTP__PASSWORD", smtp_password.as_str()),
        ("the SMTP login (AUTH PLAIN)", plain_login.as_str()),
        ("RENKEI_AUDIT__SIGNING_KEY", audit_key.as_str()),
        ("a webhook signing secret", webhook_secret.as_str()),
        ("a failing webhook's secret", failing_secret.as_str()),
        (
            "a webhook secret in a refused body",
            refused_secret.as_str(),
        ),
        ("the admin's bearer token", admin.as_str()),
        ("the operator's bearer token", operator.as_str()),
        ("the manager's bearer token", manager.as_str()),
        ("a garbage bearer token", garbage.as_str()),
        ("a forged bearer token", forged.as_str()),
        ("an acknowledgement link's token", ack_token.as_str()),
        ("a forged acknowledgement token", forged_ack.as_str()),
    ];
    let found: Vec<String> = secrets
        .iter()
        .filter_map(|(name, secret)| {
            let lines = leaks(&everything, secret);
            (!lines.is_empty()).then(|| format!("{name}:\n  {}", lines.join("\n  ")))
        })
        .collect();
    assert!(
        found.is_empty(),
        "secrets in the logs, traces or delivery errors:\n{}",
        found.join("\n")
    );
}

#[tokio::test]
async fn a_password_in_the_nats_url_is_never_logged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let password = unique("nats-url-password");
    let nats = nats_with_password(&password).await;
    let (mut renkei, _) = renkei_up(
        dir.path(),
        &format!("nats://renkei:{password}@127.0.0.1:{}", nats.port),
        &[],
    )
    .await;
    let logs = stop(&mut renkei, dir.path()).await;
    assert!(
        logs.contains("\"level\":\"DEBUG\""),
        "no debug logs:\n{logs}"
    );
    let lines = leaks(&logs, &password);
    assert!(
        lines.is_empty(),
        "the password in the URL was logged:\n{}",
        lines.join("\n")
    );
}
