//! PostgreSQL restarted under load (an instance the test starts itself).
//!
//! The four services run in this process against a PostgreSQL server of the
//! test's own (`initdb` on a free port, never the machine's shared one) and
//! a nats-server of its own. Clients create and read organisations
//! (registry) and advisories (emergency) without pause, every create with
//! an `Idempotency-Key`. The server is shut down (fast shutdown) for 10 s
//! and started again on the same data and port. While it is down every
//! request is a 503 problem saying the database is not reachable, answered
//! within a few seconds, and `/readyz` is a 503 too; once it is back,
//! requests succeed again within 15 s without any service being restarted;
//! every create that was answered 2xx exists exactly once, and every create
//! answered 503, sent again with its key, ends as exactly one object.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use renkei_testkit::postgres::OwnPostgres;
use renkei_testkit::{NatsServer, token};
use renkei_web::Role;
use renkei_web::error::DATABASE_UNAVAILABLE;
use serde_json::{Value, json};
use uuid::Uuid;

/// How long the database stays down.
const DOWN_FOR: Duration = Duration::from_secs(10);
/// Requests succeed again this soon after the database accepts connections.
const RECOVER_WITHIN: Duration = Duration::from_secs(15);
/// A request made while the database is down is answered this soon: the
/// pool's acquire timeout (5 s, shared/store) and the slack of a loaded
/// two-core machine.
const ANSWER_WITHIN: Duration = Duration::from_secs(8);
/// A request in flight when the database goes may wait for two acquires
/// (its own, and the release of its `Idempotency-Key`).
const ANSWER_STRADDLING_WITHIN: Duration = Duration::from_secs(15);
/// A retried key whose first attempt was cut off mid-way stays claimed
/// until the middleware takes it to be abandoned (60 s).
const RETRY_WITHIN: Duration = Duration::from_secs(80);
/// Clients making requests at once, per service.
const CLIENTS: usize = 2;

/// One create a client made: enough to send it again.
#[derive(Clone, Debug)]
struct Create {
    url: String,
    token: String,
    key: String,
    body: Value,
    /// The organisation's name, the advisory's title: unique per create.
    name: String,
    service: &'static str,
}

/// One answered (or unanswered) request.
#[derive(Clone, Debug)]
struct Outcome {
    what: String,
    started: Instant,
    finished: Instant,
    /// None: no HTTP answer at all (connection error or client timeout).
    status: Option<u16>,
    content_type: String,
    body: Value,
    create: Option<Create>,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
    fn took(&self) -> Duration {
        self.finished - self.started
    }
}

type Log = Arc<Mutex<Vec<Outcome>>>;

struct Answer {
    status: Option<u16>,
    content_type: String,
    body: Value,
    /// `Idempotency-Replayed: true`: the first answer, again.
    replayed: bool,
}

async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    let mut req = http.request(method, url).bearer_auth(token);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    match req.send().await {
        Err(e) => Answer {
            status: None,
            content_type: String::new(),
            body: Value::String(format!("{e:#}")),
            replayed: false,
        },
        Ok(resp) => {
            let status = resp.status().as_u16();
            let content_type = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let replayed = resp
                .headers()
                .get("idempotency-replayed")
                .is_some_and(|v| v == "true");
            let text = resp.text().await.unwrap_or_default();
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            Answer {
                status: Some(status),
                content_type,
                body,
                replayed,
            }
        }
    }
}

async fn timed(
    log: &Log,
    http: &reqwest::Client,
    what: String,
    method: reqwest::Method,
    url: &str,
    token: &str,
    create: Option<Create>,
) -> Outcome {
    let started = Instant::now();
    let a = send(
        http,
        method,
        url,
        token,
        create.as_ref().map(|c| c.key.as_str()),
        create.as_ref().map(|c| &c.body),
    )
    .await;
    let outcome = Outcome {
        what,
        started,
        finished: Instant::now(),
        status: a.status,
        content_type: a.content_type,
        body: a.body,
        create,
    };
    log.lock().expect("log").push(outcome.clone());
    outcome
}

/// A client of the registry: creates an organisation, reads the last one
/// it created, again and again.
async fn registry_client(n: usize, base: String, admin: String, log: Log, stop: Arc<AtomicBool>) {
    let http = client();
    let mut last: Option<String> = None;
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let name = format!("Restart agency {n}-{i}");
        let create = Create {
            url: format!("{base}/v1/organizations"),
            token: admin.clone(),
            key: Uuid::now_v7().to_string(),
            body: json!({"name": name, "kind": "government_agency"}),
            name,
            service: "registry",
        };
        let url = create.url.clone();
        let o = timed(
            &log,
            &http,
            "POST /v1/organizations".into(),
            reqwest::Method::POST,
            &url,
            &admin,
            Some(create),
        )
        .await;
        if o.ok()
            && let Some(id) = o.body["id"].as_str()
        {
            last = Some(id.to_owned());
        }
        if let Some(id) = &last {
            timed(
                &log,
                &http,
                "GET /v1/organizations/{id}".into(),
                reqwest::Method::GET,
                &format!("{base}/v1/organizations/{id}"),
                &admin,
                None,
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client of emergency: issues an advisory as the central body, lists
/// the newest advisories, again and again.
async fn emergency_client(
    n: usize,
    base: String,
    central: String,
    log: Log,
    stop: Arc<AtomicBool>,
) {
    let http = client();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let title = format!("Restart advisory {n}-{i}");
        let create = Create {
            url: format!("{base}/v1/advisories"),
            token: central.clone(),
            key: Uuid::now_v7().to_string(),
            body: json!({"title": title, "text": "Patch the gateway.", "tlp": "clear", "severity": 3}),
            name: title,
            service: "emergency",
        };
        let url = create.url.clone();
        timed(
            &log,
            &http,
            "POST /v1/advisories".into(),
            reqwest::Method::POST,
            &url,
            &central,
            Some(create),
        )
        .await;
        timed(
            &log,
            &http,
            "GET /v1/advisories".into(),
            reqwest::Method::GET,
            &format!("{base}/v1/advisories?limit=5"),
            &central,
            None,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// Every item of a paged list: `(name field, count)`.
async fn names(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    field: &str,
) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = match &cursor {
            None => format!("{url}?limit=1000"),
            Some(c) => format!("{url}?limit=1000&cursor={c}"),
        };
        let a = send(http, reqwest::Method::GET, &page, token, None, None).await;
        assert_eq!(a.status, Some(200), "GET {page}: {}", a.body);
        for item in a.body["items"].as_array().expect("items") {
            if let Some(name) = item[field].as_str() {
                *counts.entry(name.to_owned()).or_default() += 1;
            }
        }
        match a.body["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return counts,
        }
    }
}

/// `/readyz` of every service at once: `(service, answer, how long it took)`.
async fn readiness(
    http: &reqwest::Client,
    bases: &[(&str, String)],
) -> Vec<(String, Answer, Duration)> {
    futures::future::join_all(bases.iter().map(|(name, base)| async move {
        let started = Instant::now();
        let a = send(
            http,
            reqwest::Method::GET,
            &format!("{base}/readyz"),
            "",
            None,
            None,
        )
        .await;
        ((*name).to_owned(), a, started.elapsed())
    }))
    .await
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn while_postgres_is_down_requests_get_a_503_saying_so_and_resume_once_it_is_back_with_nothing_lost_or_doubled()
 {
    renkei_testkit::init_tracing();
    let nats = NatsServer::start().await.expect("nats-server");
    let mut pg = OwnPostgres::start_new()
        .await
        .unwrap_or_else(|e| panic!("this test needs a PostgreSQL server of its own: {e:#}"));
    let dir = tempfile::tempdir().expect("data dir");
    let settings = renkei_testkit::settings(&nats.url(), &pg.url(), dir.path().to_path_buf());
    let registry = renkei_registry::Registry::spawn(&settings, "restart-registry")
        .await
        .expect("registry");
    let demarcation = renkei_demarcation::Demarcation::spawn(&settings, "restart-demarcation")
        .await
        .expect("demarcation");
    let contacts = renkei_contacts::Contacts::spawn(&settings, "restart-contacts")
        .await
        .expect("contacts");
    let emergency = renkei_emergency::Emergency::spawn(&settings, "restart-emergency")
        .await
        .expect("emergency");
    let bases = [
        ("registry", format!("http://{}", registry.addr)),
        ("demarcation", format!("http://{}", demarcation.addr)),
        ("contacts", format!("http://{}", contacts.addr)),
        ("emergency", format!("http://{}", emergency.addr)),
    ];
    let running = vec![registry, demarcation, contacts, emergency];
    let http = client();
    let admin = token(Role::Admin, None);
    let central = token(Role::Central, Some(Uuid::now_v7()));
    for (name, a, _) in readiness(&http, &bases).await {
        assert_eq!(a.status, Some(200), "{name} not ready at start: {}", a.body);
    }

    // Load.
    let log: Log = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = tokio::task::JoinSet::new();
    for n in 0..CLIENTS {
        clients.spawn(registry_client(
            n,
            bases[0].1.clone(),
            admin.clone(),
            log.clone(),
            stop.clone(),
        ));
        clients.spawn(emergency_client(
            n,
            bases[3].1.clone(),
            central.clone(),
            log.clone(),
            stop.clone(),
        ));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let warm = log.lock().expect("log").clone();
    assert!(
        warm.iter().filter(|o| o.ok()).count() >= 4 * CLIENTS,
        "the load does not run before the restart: {warm:#?}"
    );
    assert!(
        warm.iter().all(Outcome::ok),
        "requests failed before the database went down: {:#?}",
        warm.iter().filter(|o| !o.ok()).collect::<Vec<_>>()
    );

    // Down.
    let stopping = Instant::now();
    pg.stop().await.expect("PostgreSQL fast shutdown");
    let down = Instant::now();
    eprintln!(
        "PostgreSQL stopped (fast shutdown) in {}",
        secs(down - stopping)
    );
    tokio::time::sleep(DOWN_FOR / 2).await;
    let not_ready = readiness(&http, &bases).await;
    tokio::time::sleep(DOWN_FOR.saturating_sub(down.elapsed())).await;

    // Up again, on the same data and port; the services are not touched.
    let starting = Instant::now();
    pg.start().await.expect("PostgreSQL started again");
    let up = Instant::now();
    eprintln!("PostgreSQL down for {}", secs(up - down));
    // Ready again within the bound.
    let mut ready_after = None;
    while up.elapsed() < RECOVER_WITHIN {
        let all = readiness(&http, &bases).await;
        if all.iter().all(|(_, a, _)| a.status == Some(200)) {
            ready_after = Some(up.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Keep the load on past the bound, to see it succeed for a while.
    tokio::time::sleep((RECOVER_WITHIN + Duration::from_secs(3)).saturating_sub(up.elapsed()))
        .await;
    stop.store(true, Ordering::Relaxed);
    while clients.join_next().await.is_some() {}
    let outcomes = log.lock().expect("log").clone();

    // While it was down.
    for (name, a, took) in &not_ready {
        assert_eq!(
            a.status,
            Some(503),
            "{name} /readyz while the database is down: {}",
            a.body
        );
        assert!(
            a.content_type.starts_with("application/problem+json"),
            "{name} /readyz: {}",
            a.content_type
        );
        assert!(
            a.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("database")),
            "{name} /readyz does not say the database is the cause: {}",
            a.body
        );
        assert!(
            *took <= ANSWER_WITHIN,
            "{name} /readyz took {}",
            secs(*took)
        );
    }
    let unanswered: Vec<_> = outcomes.iter().filter(|o| o.status.is_none()).collect();
    assert!(
        unanswered.is_empty(),
        "requests without an answer: {unanswered:#?}"
    );
    let unexpected: Vec<_> = outcomes
        .iter()
        .filter(|o| !o.ok() && o.status != Some(503))
        .collect();
    assert!(
        unexpected.is_empty(),
        "answers other than 2xx and 503 (a 500 is a bug): {unexpected:#?}"
    );
    let unavailable: Vec<&Outcome> = outcomes.iter().filter(|o| o.status == Some(503)).collect();
    for o in &unavailable {
        assert!(
            o.content_type.starts_with("application/problem+json"),
            "a 503 that is not a problem document: {o:#?}"
        );
        assert_eq!(o.body["status"], 503, "{o:#?}");
        assert_eq!(o.body["error"], "unavailable", "{o:#?}");
        assert_eq!(o.body["detail"], DATABASE_UNAVAILABLE, "{o:#?}");
    }
    // Answered while the server was gone (between its exit and its start).
    let answered_while_down: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.finished >= down && o.finished <= starting)
        .collect();
    for service in ["organizations", "advisories"] {
        assert!(
            answered_while_down
                .iter()
                .any(|o| o.what.contains(service) && o.status == Some(503)),
            "no 503 for {service} while the database was down: {answered_while_down:#?}"
        );
    }
    // Made and answered while it was gone: none can have succeeded.
    let while_down: Vec<&Outcome> = answered_while_down
        .iter()
        .copied()
        .filter(|o| o.started >= down)
        .collect();
    let succeeded_while_down: Vec<_> = while_down.iter().filter(|o| o.ok()).collect();
    assert!(
        succeeded_while_down.is_empty(),
        "requests succeeded without a database: {succeeded_while_down:#?}"
    );
    for o in &outcomes {
        let bound = if o.started >= down {
            ANSWER_WITHIN
        } else {
            ANSWER_STRADDLING_WITHIN
        };
        assert!(
            o.took() <= bound,
            "a request hung for {}: {o:#?}",
            secs(o.took())
        );
    }
    let slowest_down = while_down
        .iter()
        .map(|o| o.took())
        .max()
        .unwrap_or_default();
    let slowest = outcomes.iter().map(Outcome::took).max().unwrap_or_default();
    let first_503 = unavailable
        .iter()
        .map(|o| o.finished)
        .min()
        .expect("no 503 at all");

    // Back: from some moment on, every request succeeds, soon enough.
    let mut by_start: Vec<&Outcome> = outcomes.iter().collect();
    by_start.sort_by_key(|o| o.started);
    let last_failure = by_start.iter().rposition(|o| !o.ok());
    let resumed = match last_failure {
        Some(i) => by_start
            .get(i + 1)
            .map(|o| o.started)
            .expect("no request succeeded after the restart"),
        None => panic!("no request failed while the database was down"),
    };
    let after: Vec<_> = by_start.iter().filter(|o| o.started >= resumed).collect();
    assert!(
        after.len() >= 4 * CLIENTS,
        "too few requests after the restart to call it resumed: {after:#?}"
    );
    let resumed_after = resumed.saturating_duration_since(up);
    assert!(
        resumed_after <= RECOVER_WITHIN,
        "requests failed until {} after PostgreSQL was back",
        secs(resumed_after)
    );
    let ready_after = ready_after.unwrap_or_else(|| {
        panic!("/readyz not 200 on every service within {RECOVER_WITHIN:?} of the restart")
    });

    // Nothing lost or doubled. Every create answered 503 is sent again
    // with its key until it is answered (a key claimed by an attempt cut
    // off mid-way is held for a minute).
    let mut retried = 0;
    let mut held = 0;
    let mut replayed = 0;
    let mut creates: Vec<Create> = Vec::new();
    let mut retries: HashMap<String, String> = HashMap::new();
    for o in &outcomes {
        let Some(c) = &o.create else { continue };
        if o.ok() {
            creates.push(c.clone());
            continue;
        }
        retried += 1;
        let since = Instant::now();
        loop {
            let a = send(
                &http,
                reqwest::Method::POST,
                &c.url,
                &c.token,
                Some(&c.key),
                Some(&c.body),
            )
            .await;
            if a.status == Some(409) && a.body["error"] == "idempotency_key_in_use" {
                assert!(
                    since.elapsed() < RETRY_WITHIN,
                    "the key of {c:#?} is still held after {}",
                    secs(since.elapsed())
                );
                held += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            assert_eq!(a.status, Some(201), "the retry of {c:#?}: {}", a.body);
            // A replay (the first attempt had run after all) carries the
            // first answer; either way there must be one object.
            if a.replayed {
                replayed += 1;
            }
            retries.insert(
                c.key.clone(),
                format!(
                    "answered {:?} after {}, replayed: {}",
                    a.status,
                    secs(since.elapsed()),
                    a.replayed
                ),
            );
            break;
        }
        creates.push(c.clone());
    }
    let orgs = names(
        &http,
        &format!("{}/v1/organizations", bases[0].1),
        &admin,
        "name",
    )
    .await;
    let advisories = names(
        &http,
        &format!("{}/v1/advisories", bases[3].1),
        &central,
        "title",
    )
    .await;
    let mut wrong = Vec::new();
    for c in &creates {
        let found = match c.service {
            "registry" => orgs.get(&c.name),
            _ => advisories.get(&c.name),
        }
        .copied()
        .unwrap_or_default();
        if found != 1 {
            let first = outcomes
                .iter()
                .find(|o| o.create.as_ref().is_some_and(|k| k.key == c.key))
                .map(|o| {
                    format!(
                        "{} {:?} started {} after the stop began, took {}: {}",
                        o.what,
                        o.status,
                        secs(o.started.saturating_duration_since(stopping)),
                        secs(o.took()),
                        o.body
                    )
                });
            wrong.push(format!(
                "{} {:?}: {found} (first attempt: {first:?}; retry: {:?})",
                c.service,
                c.name,
                retries.get(&c.key)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "creates not there exactly once: {wrong:#?}"
    );
    let made = orgs
        .keys()
        .filter(|n| n.starts_with("Restart agency"))
        .count()
        + advisories
            .keys()
            .filter(|n| n.starts_with("Restart advisory"))
            .count();
    assert_eq!(made, creates.len(), "objects nobody was told were created");

    eprintln!(
        "database restart: {} requests ({} answered 503, {} answered while the server was gone, {} of them made then too); first 503 {} after the stop began; \
         slowest answer while down {}, slowest overall {}; requests all succeed from {} after PostgreSQL was back, \
         /readyz 200 everywhere after {}; {} creates, {retried} sent again ({held} times told the key was still held, \
         {replayed} replays)",
        outcomes.len(),
        unavailable.len(),
        answered_while_down.len(),
        while_down.len(),
        secs(first_503.saturating_duration_since(stopping)),
        secs(slowest_down),
        secs(slowest),
        secs(resumed_after),
        secs(ready_after),
        creates.len(),
    );

    for r in running.into_iter().rev() {
        r.stop().await.expect("clean stop");
    }
    drop(pg);
    drop(nats);
}

/// The test's own server itself: killed like a crash (SIGKILL to it and its
/// backends), it starts again on the same data and port and has lost no
/// committed row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_postgres_killed_like_a_crash_starts_again_on_its_data_with_every_committed_row() {
    use sea_orm::{ConnectionTrait as _, Database};
    let mut pg = OwnPostgres::start_new()
        .await
        .unwrap_or_else(|e| panic!("this test needs a PostgreSQL server of its own: {e:#}"));
    let port = pg.port;
    let conn = Database::connect(pg.url()).await.expect("connect");
    conn.execute_unprepared("CREATE TABLE kept (n int); INSERT INTO kept VALUES (1), (2)")
        .await
        .expect("rows");
    conn.close().await.ok();
    pg.kill();
    assert!(!pg.is_running());
    assert!(!pg.ready().await, "still answering after the kill");
    pg.start()
        .await
        .unwrap_or_else(|e| panic!("no start after the kill: {e:#}"));
    assert_eq!(pg.port, port);
    let conn = Database::connect(pg.url()).await.expect("connect again");
    let row = conn
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT count(*) AS n FROM kept",
        ))
        .await
        .expect("count")
        .expect("a row");
    assert_eq!(row.try_get::<i64>("", "n").expect("n"), 2);
    conn.close().await.ok();
}
