//! Full consensus of 1,000 organisations, through the API, against a real
//! nats-server and a real database, with the registry and the demarcation
//! service running as two services that talk over NATS.
//!
//! Setup: a platform operator, a platform and `--orgs` organisations each
//! owning one linked system on it, all registered through the registry's
//! HTTP API (16 requests in flight); then a wait until the demarcation
//! service has consumed every registration (its gap report counts the
//! platform's pending and active linked systems).
//!
//! Each round drafts a new rules version, proposes it (every organisation
//! becomes a party), and has every organisation's manager accept it:
//!
//! - the first `orgs - 1` decisions with `--concurrency` requests in flight:
//!   decisions per second over that stretch, and each decision's latency
//!   (request sent to response read);
//! - the last decision alone, which reaches full consensus: the version
//!   comes into force in the same transaction, which also stages
//!   `demarcation.rules.in_force` and, for every organisation with a system
//!   still pending, one `demarcation.rules.accepted`. Timed from sending it:
//!   its response, a `GET consensus` confirming `in_force`, the `in_force`
//!   event seen on NATS (a core subscription of the bench's own, made before
//!   the decision), and, in the first round only (later rounds find every
//!   system active already, so no `accepted` events are sent), the last of
//!   the `accepted` events seen and the registry's activation of every
//!   linked system: the last `registry.system.lifecycle_changed` event and the
//!   moment `GET /v1/systems?lifecycle=pending_rules` comes back empty.
//!
//! A later round supersedes the version the round before put in force.
//!
//! Baselines in the same run: the same rounds on a platform of
//! `--baseline-orgs` organisations (they run first and warm the services up),
//! and `GET /v1/rules/{id}` by an organisation's manager (the same token,
//! access checks and version read that a decision starts with) at the same
//! concurrency.
//!
//! ```text
//! cargo bench -p renkei-demarcation --bench consensus
//! RENKEI_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo bench -p renkei-demarcation --bench consensus
//! cargo bench -p renkei-demarcation --bench consensus -- --orgs 200 --rounds 2
//! ```
//!
//! Options: `--orgs N` (1000), `--rounds N` (5), `--concurrency N` (16),
//! `--baseline-orgs N` (10), `--baseline-rounds N` (10), `--get-requests N`
//! (2000). NATS: `RENKEI_TEST_NATS_SERVER` or `nats-server` on the PATH.
//! Database: SQLite files of each service's own in a temporary directory, or
//! a fresh PostgreSQL database when `RENKEI_TEST_DATABASE_URL` is set (each
//! service in its own schema).

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use futures::StreamExt as _;
use hdrhistogram::Histogram;
use renkei_bus::contracts::demarcation::{RulesAccepted, RulesInForce};
use renkei_bus::contracts::registry::SystemLifecycleChanged;
use renkei_bus::{Envelope, subjects};
use renkei_testkit::bench;
use renkei_testkit::{NatsServer, TestDb, token};
use renkei_web::Role;
use sea_orm::{ConnectionTrait as _, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

/// Requests in flight while the organisations and systems are registered.
const SETUP_CONCURRENCY: usize = 16;
/// How long to wait for anything asynchronous before giving up.
const PATIENCE: Duration = Duration::from_secs(300);

/// Full consensus of many organisations, through the API.
#[derive(clap::Parser)]
struct Args {
    #[arg(long, default_value_t = 1_000, value_parser = bench::whole::<usize>)]
    orgs: usize,
    #[arg(long, default_value_t = 5, value_parser = bench::whole::<usize>)]
    rounds: usize,
    #[arg(long, default_value_t = 16, value_parser = bench::whole::<usize>)]
    concurrency: usize,
    #[arg(long, default_value_t = 10, value_parser = bench::whole::<usize>)]
    baseline_orgs: usize,
    #[arg(long, default_value_t = 10, value_parser = bench::whole::<usize>)]
    baseline_rounds: usize,
    #[arg(long, default_value_t = 2_000, value_parser = bench::whole::<usize>)]
    get_requests: usize,
}

fn main() {
    let args: Args = bench::args();
    assert!(args.orgs >= 2, "--orgs must be at least 2");
    assert!(
        args.baseline_orgs >= 2,
        "--baseline-orgs must be at least 2"
    );
    assert!(args.rounds >= 1, "--rounds must be at least 1");
    assert!(args.concurrency >= 1, "--concurrency must be at least 1");
    bench::block_on(run(&args));
}

// ---- HTTP ----------------------------------------------------------------

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    registry: String,
    demarcation: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        token: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self.http.request(method, url).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.with_context(|| url.to_owned())?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    async fn post(&self, url: &str, token: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        self.call(reqwest::Method::POST, url, token, Some(body))
            .await
    }

    async fn get(&self, url: &str, token: &str) -> anyhow::Result<(u16, Value)> {
        self.call(reqwest::Method::GET, url, token, None).await
    }

    /// POSTs and expects `expected` with an `id` in the body.
    async fn create(
        &self,
        url: &str,
        token: &str,
        body: &Value,
        expected: u16,
    ) -> anyhow::Result<Uuid> {
        let (status, json) = self.post(url, token, body).await?;
        ensure!(status == expected, "{url}: {status} {json}");
        json["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("{url}: no id in {json}"))
    }

    fn reg(&self, path: &str) -> String {
        format!("{}{path}", self.registry)
    }

    fn dem(&self, path: &str) -> String {
        format!("{}{path}", self.demarcation)
    }
}

// ---- figures -------------------------------------------------------------

fn histogram() -> Histogram<u64> {
    // microseconds, up to ten minutes
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap()
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    h.record((d.as_micros() as u64).max(1)).unwrap();
}

fn fmt_us(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.1} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

fn fmt_d(d: Duration) -> String {
    fmt_us(d.as_micros() as u64)
}

fn fmt_opt(d: Option<Duration>) -> String {
    d.map_or_else(|| "–".to_owned(), fmt_d)
}

fn median_of(mut v: Vec<Duration>) -> Option<Duration> {
    if v.is_empty() {
        return None;
    }
    v.sort();
    Some(v[(v.len() - 1) / 2])
}

fn median_f(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[(v.len() - 1) / 2]
}

// ---- the world -----------------------------------------------------------

/// A platform and the organisations with one linked system each on it.
struct Platform {
    id: Uuid,
    label: String,
    managers: Vec<String>,
}

struct Ctx {
    api: Api,
    nats: async_nats::Client,
    admin: String,
    operator: String,
    concurrency: usize,
}

/// Registers `orgs` organisations, each with one linked system on `platform`.
async fn populate(ctx: &Ctx, platform: Uuid, label: &str, orgs: usize) -> anyhow::Result<Platform> {
    let api = &ctx.api;
    let results: Vec<anyhow::Result<Uuid>> = futures::stream::iter(0..orgs)
        .map(|i| async move {
            let org = api
                .create(
                    &api.reg("/v1/organizations"),
                    &ctx.admin,
                    &json!({"name": format!("{label} agency {i:04}"), "kind": "government_agency"}),
                    201,
                )
                .await?;
            api.create(
                &api.reg("/v1/systems"),
                &ctx.operator,
                &json!({"name": format!("{label} agency {i:04} records"), "kind": "linked",
                        "owner_org_id": org, "platform_id": platform,
                        "confidentiality": 1, "integrity": 1, "availability": 1}),
                201,
            )
            .await?;
            Ok(org)
        })
        .buffered(SETUP_CONCURRENCY)
        .collect()
        .await;
    let orgs = results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Platform {
        id: platform,
        label: label.to_owned(),
        managers: orgs
            .iter()
            .map(|o| token(Role::Manager, Some(*o)))
            .collect(),
    })
}

/// Waits until the demarcation service counts `expected` member systems.
async fn await_known(ctx: &Ctx, platform: &Platform) -> anyhow::Result<()> {
    let url = ctx
        .api
        .dem(&format!("/v1/platforms/{}/matrix/gaps", platform.id));
    let started = Instant::now();
    loop {
        let (status, json) = ctx.api.get(&url, &ctx.operator).await?;
        if status == 200 && json["systems"].as_u64() == Some(platform.managers.len() as u64) {
            return Ok(());
        }
        if started.elapsed() > PATIENCE {
            bail!(
                "demarcation knows {} of {} systems after {PATIENCE:?} ({status})",
                json["systems"],
                platform.managers.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- one round -----------------------------------------------------------

/// What the bench saw on NATS after the last decision, as arrival instants.
#[derive(Default)]
struct Seen {
    in_force: Option<Instant>,
    accepted: usize,
    accepted_all: Option<Instant>,
    activated: usize,
    activated_all: Option<Instant>,
}

/// Subscribes (before the last decision) to what that decision causes and
/// collects it in the background until everything expected arrived.
async fn watch(
    nats: &async_nats::Client,
    version: Uuid,
    platform: Uuid,
    orgs: usize,
    activation: bool,
) -> anyhow::Result<tokio::task::JoinHandle<Seen>> {
    let in_force = nats.subscribe(subjects::DEMARCATION_RULES_IN_FORCE).await?;
    let accepted = nats.subscribe(subjects::DEMARCATION_RULES_ACCEPTED).await?;
    let lifecycle = nats
        .subscribe(subjects::REGISTRY_SYSTEM_LIFECYCLE_CHANGED)
        .await?;
    // the server has the subscriptions before the decision is sent
    nats.flush().await?;
    let mut all = futures::stream::select_all([in_force, accepted, lifecycle]);
    Ok(tokio::spawn(async move {
        let mut seen = Seen::default();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            // `accepted` events name systems still pending: round 1 only.
            let done = seen.in_force.is_some()
                && (!activation || (seen.accepted_all.is_some() && seen.activated_all.is_some()));
            if done {
                break;
            }
            let Ok(Some(msg)) = tokio::time::timeout_at(deadline, all.next()).await else {
                break;
            };
            let now = Instant::now();
            let Ok(envelope) = serde_json::from_slice::<Envelope>(&msg.payload) else {
                continue;
            };
            if let Ok(e) = envelope.decode::<RulesInForce>() {
                if e.version_id == version {
                    seen.in_force.get_or_insert(now);
                }
            } else if let Ok(e) = envelope.decode::<RulesAccepted>() {
                if e.version_id == Some(version) {
                    seen.accepted += 1;
                    if seen.accepted == orgs {
                        seen.accepted_all = Some(now);
                    }
                }
            } else if let Ok(e) = envelope.decode::<SystemLifecycleChanged>()
                && e.platform_id == platform
                && e.to == "active"
            {
                seen.activated += 1;
                if seen.activated == orgs {
                    seen.activated_all = Some(now);
                }
            }
        }
        seen
    }))
}

struct Round {
    propose: Duration,
    /// The first `orgs - 1` decisions.
    decisions: usize,
    wall: Duration,
    latency: Histogram<u64>,
    /// From sending the last decision.
    last: Duration,
    confirmed: Duration,
    in_force_event: Option<Duration>,
    accepted_events: Option<Duration>,
    activated_events: Option<Duration>,
    activated_api: Option<Duration>,
}

impl Round {
    fn rate(&self) -> f64 {
        self.decisions as f64 / self.wall.as_secs_f64()
    }
}

async fn decide(api: &Api, url: &str, manager: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let (status, json) = api
        .post(url, manager, &json!({"decision": "accept"}))
        .await?;
    let took = started.elapsed();
    ensure!(status == 201, "decision: {status} {json}");
    Ok(took)
}

async fn round(
    ctx: &Ctx,
    platform: &Platform,
    n: usize,
    activation: bool,
) -> anyhow::Result<Round> {
    let api = &ctx.api;
    let orgs = platform.managers.len();
    let version = api
        .create(
            &api.dem(&format!("/v1/platforms/{}/rules", platform.id)),
            &ctx.operator,
            &json!({"title": format!("{} common rules, round {n}", platform.label),
                    "rules": [{"id": "R1", "title": "Incident reporting",
                               "text": format!("Report incidents on linked systems within one hour (round {n})."),
                               "controls": []}]}),
            201,
        )
        .await?;
    let started = Instant::now();
    let (status, json) = api
        .post(
            &api.dem(&format!("/v1/rules/{version}/propose")),
            &ctx.operator,
            &json!({}),
        )
        .await?;
    let propose = started.elapsed();
    ensure!(
        status == 200 && json["state"] == "proposed",
        "propose: {status} {json}"
    );

    // every organisation but the last, `concurrency` in flight
    let url = api.dem(&format!("/v1/rules/{version}/decisions"));
    let (first, last) = platform.managers.split_at(orgs - 1);
    let mut latency = histogram();
    let started = Instant::now();
    let mut decisions = futures::stream::iter(first)
        .map(|m| decide(api, &url, m))
        .buffer_unordered(ctx.concurrency);
    while let Some(took) = decisions.next().await {
        record(&mut latency, took?);
    }
    drop(decisions);
    let wall = started.elapsed();

    let consensus_url = api.dem(&format!("/v1/rules/{version}/consensus"));
    let (status, json) = api.get(&consensus_url, &ctx.operator).await?;
    ensure!(
        status == 200
            && json["state"] == "proposed"
            && json["pending"].as_array().map(Vec::len) == Some(1),
        "before the last decision: {status} {}",
        json["state"]
    );

    // the last decision: full consensus
    let watcher = watch(&ctx.nats, version, platform.id, orgs, activation).await?;
    let t0 = Instant::now();
    let (status, json) = api
        .post(&url, &last[0], &json!({"decision": "accept"}))
        .await?;
    let last_took = t0.elapsed();
    ensure!(status == 201, "last decision: {status} {json}");
    let (status, json) = api.get(&consensus_url, &ctx.operator).await?;
    let confirmed = t0.elapsed();
    ensure!(
        status == 200
            && json["state"] == "in_force"
            && json["accepted"].as_array().map(Vec::len) == Some(orgs)
            && json["pending"].as_array().map(Vec::len) == Some(0),
        "after the last decision: {status} state {} accepted {} pending {}",
        json["state"],
        json["accepted"].as_array().map_or(0, Vec::len),
        json["pending"].as_array().map_or(0, Vec::len)
    );

    let activated_api = if activation {
        Some(await_active(ctx, platform, t0).await?)
    } else {
        None
    };
    let seen = watcher.await?;
    let since = |at: Option<Instant>| at.map(|at| at.saturating_duration_since(t0));
    ensure!(
        seen.in_force.is_some(),
        "no demarcation.rules.in_force event for version {version}"
    );
    ensure!(
        !activation || seen.accepted_all.is_some(),
        "{} of {orgs} demarcation.rules.accepted events for version {version}",
        seen.accepted
    );
    ensure!(
        !activation || seen.activated_all.is_some(),
        "{} of {orgs} systems reported active",
        seen.activated
    );
    Ok(Round {
        propose,
        decisions: first.len(),
        wall,
        latency,
        last: last_took,
        confirmed,
        in_force_event: since(seen.in_force),
        accepted_events: since(seen.accepted_all),
        activated_events: since(seen.activated_all),
        activated_api,
    })
}

/// Polls the registry until no linked system of the platform waits for
/// the rules; checks every one is active; returns the time since `t0`.
async fn await_active(ctx: &Ctx, platform: &Platform, t0: Instant) -> anyhow::Result<Duration> {
    let api = &ctx.api;
    let pending = api.reg(&format!(
        "/v1/systems?platform_id={}&lifecycle=pending_rules&limit=1",
        platform.id
    ));
    let took = loop {
        let (status, json) = api.get(&pending, &ctx.admin).await?;
        ensure!(status == 200, "systems: {status} {json}");
        if json["items"].as_array().is_some_and(Vec::is_empty) {
            break t0.elapsed();
        }
        if t0.elapsed() > PATIENCE {
            bail!("systems still pending after {PATIENCE:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let mut active = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut url = api.reg(&format!(
            "/v1/systems?platform_id={}&lifecycle=active&limit=1000",
            platform.id
        ));
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (status, json) = api.get(&url, &ctx.admin).await?;
        ensure!(status == 200, "systems: {status} {json}");
        // the platform itself is listed too
        active += json["items"].as_array().map_or(0, |items| {
            items.iter().filter(|s| s["kind"] == "linked").count()
        });
        match json["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    ensure!(
        active == platform.managers.len(),
        "{active} of {} linked systems active",
        platform.managers.len()
    );
    Ok(took)
}

// ---- the report ----------------------------------------------------------

fn print_rounds(platform: &Platform, concurrency: usize, rounds: &[Round]) -> Histogram<u64> {
    let orgs = platform.managers.len();
    println!();
    println!(
        "{} organisations ({}), {} rounds, {concurrency} decisions in flight; times of the last decision from sending it",
        orgs,
        platform.label,
        rounds.len()
    );
    println!(
        "| round | propose | decisions/s ({} decisions) | decision median | decision p99 | last decision | in force (GET consensus) | in_force event | all {orgs} accepted events | all systems active (event / API) |",
        orgs - 1
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut all = histogram();
    for (i, r) in rounds.iter().enumerate() {
        all.add(&r.latency).unwrap();
        let active = match (r.activated_events, r.activated_api) {
            (None, None) => "– (already active)".to_owned(),
            (e, a) => format!("{} / {}", fmt_opt(e), fmt_opt(a)),
        };
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {active} |",
            i + 1,
            fmt_d(r.propose),
            r.rate(),
            fmt_us(r.latency.value_at_quantile(0.5)),
            fmt_us(r.latency.value_at_quantile(0.99)),
            fmt_d(r.last),
            fmt_d(r.confirmed),
            fmt_opt(r.in_force_event),
            fmt_opt(r.accepted_events),
        );
    }
    let med = |f: &dyn Fn(&Round) -> Option<Duration>| {
        fmt_opt(median_of(rounds.iter().filter_map(f).collect()))
    };
    println!(
        "| median | {} | {:.0} | {} | {} | {} | {} | {} | {} | |",
        med(&|r| Some(r.propose)),
        median_f(rounds.iter().map(Round::rate).collect()),
        med(&|r| Some(Duration::from_micros(r.latency.value_at_quantile(0.5)))),
        med(&|r| Some(Duration::from_micros(r.latency.value_at_quantile(0.99)))),
        med(&|r| Some(r.last)),
        med(&|r| Some(r.confirmed)),
        med(&|r| r.in_force_event),
        med(&|r| r.accepted_events),
    );
    println!(
        "all {} decisions of the {} rounds: median {}, p99 {}, max {}",
        all.len(),
        rounds.len(),
        fmt_us(all.value_at_quantile(0.5)),
        fmt_us(all.value_at_quantile(0.99)),
        fmt_us(all.max())
    );
    all
}

async fn database_version(db: &TestDb) -> String {
    // Connected as the services connect (renkei-store's policy), so the
    // transport and TLS reported are theirs.
    let Ok(store) = renkei_store::Db::connect(&db.url, "bench_probe", 1).await else {
        return "unknown".into();
    };
    let conn = store.read;
    let backend = conn.get_database_backend();
    let sql = if db.is_postgres() {
        "SELECT version() AS v"
    } else {
        "SELECT 'SQLite ' || sqlite_version() AS v"
    };
    let one = |sql: &str| {
        let stmt = Statement::from_string(backend, sql);
        let conn = &conn;
        async move {
            conn.query_one_raw(stmt)
                .await
                .ok()
                .flatten()
                .and_then(|row| row.try_get::<String>("", "v").ok())
        }
    };
    let mut version = one(sql).await.unwrap_or_else(|| "unknown".into());
    if db.is_postgres() {
        // sqlx 0.9 does not set TCP_NODELAY, so TLS matters here; the
        // services leave it out on loopback unless told otherwise
        let tls = one(
            "SELECT CASE WHEN ssl THEN 'on (' || version || ')' ELSE 'off' END AS v \
             FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        )
        .await
        .unwrap_or_else(|| "unknown".into());
        let transport = if db.url.contains("@%2F") || db.url.contains("host=/") {
            "Unix socket"
        } else {
            "TCP"
        };
        version = format!("{version}; connection over {transport}, TLS {tls}");
    }
    conn.close().await.ok();
    version
}

fn nats_version() -> String {
    let binary = std::env::var("RENKEI_TEST_NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
    std::process::Command::new(&binary)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| format!("{binary} (version unknown)"))
}

// ---- the run -------------------------------------------------------------

async fn run(args: &Args) -> anyhow::Result<()> {
    renkei_testkit::init_tracing();
    let nats = NatsServer::start().await?;
    let db = TestDb::fresh().await?;
    let dir = tempfile::tempdir()?;
    let mut settings = renkei_testkit::settings(&nats.url(), &db.url, dir.path().to_path_buf());
    if !db.is_postgres() {
        // one SQLite file per service in the data directory, as `renkei up`
        // keeps them (the two services' tables share names)
        settings.database.url = String::new();
    }
    // the shipped default pool size rather than the tests' 4
    settings.database.max_connections = 8;
    println!(
        "consensus bench: {} organisations, {} rounds, {} decisions in flight; baseline {} organisations × {} rounds",
        args.orgs, args.rounds, args.concurrency, args.baseline_orgs, args.baseline_rounds
    );
    println!(
        "machine: {} cores, Linux {}; {}; database: {}{}",
        std::thread::available_parallelism().map_or(0, usize::from),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        nats_version(),
        if db.is_postgres() {
            "PostgreSQL (one database, a schema per service)"
        } else {
            "SQLite (a file per service)"
        },
        format_args!(", {}", database_version(&db).await),
    );
    println!(
        "services: registry and demarcation in this process, each with its own HTTP server ({} workers), NATS connection and {} database connections",
        settings.http.workers, settings.database.max_connections
    );

    let registry = renkei_registry::Registry::spawn(&settings, "bench-registry").await?;
    let demarcation =
        renkei_demarcation::Demarcation::spawn(&settings, "bench-demarcation").await?;
    let client = async_nats::connect(nats.url()).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency.max(SETUP_CONCURRENCY) * 2)
        .build()?;
    let admin = token(Role::Admin, None);
    let api = Api {
        http,
        registry: format!("http://{}", registry.addr),
        demarcation: format!("http://{}", demarcation.addr),
    };
    let operator_org = api
        .create(
            &api.reg("/v1/organizations"),
            &admin,
            &json!({"name": "Platform Office", "kind": "platform_operator"}),
            201,
        )
        .await?;
    let operator = token(Role::Operator, Some(operator_org));
    let mut ctx = Ctx {
        api,
        nats: client,
        admin,
        operator,
        concurrency: args.concurrency,
    };
    let new_platform = |name: &'static str| {
        let api = ctx.api.clone();
        let operator = ctx.operator.clone();
        async move {
            api.create(
                &api.reg("/v1/systems"),
                &operator,
                &json!({"name": name, "kind": "platform", "owner_org_id": operator_org,
                        "confidentiality": 3, "integrity": 2, "availability": 2}),
                201,
            )
            .await
        }
    };
    let big_id = new_platform("Common Platform").await?;
    let small_id = new_platform("Baseline Platform").await?;

    let started = Instant::now();
    let small = populate(&ctx, small_id, "baseline", args.baseline_orgs).await?;
    let big = populate(&ctx, big_id, "platform", args.orgs).await?;
    let registered = started.elapsed();
    await_known(&ctx, &small).await?;
    await_known(&ctx, &big).await?;
    println!(
        "setup: {} organisations and linked systems registered in {} ({SETUP_CONCURRENCY} in flight); demarcation knew them all {} later",
        args.orgs + args.baseline_orgs,
        fmt_d(registered),
        fmt_d(started.elapsed() - registered)
    );

    // baseline: the same rounds on a small platform (also the warm-up)
    let mut small_rounds = Vec::new();
    ctx.concurrency = args.concurrency.min(args.baseline_orgs - 1);
    for n in 1..=args.baseline_rounds {
        small_rounds.push(round(&ctx, &small, n, n == 1).await?);
    }
    let small_concurrency = ctx.concurrency;
    ctx.concurrency = args.concurrency;

    let mut big_rounds = Vec::new();
    for n in 1..=args.rounds {
        let r = round(&ctx, &big, n, n == 1).await?;
        println!(
            "round {n}: {:.0} decisions/s, last decision {}, in_force event {}",
            r.rate(),
            fmt_d(r.last),
            fmt_opt(r.in_force_event)
        );
        big_rounds.push(r);
    }

    // baseline: a plain authenticated read of the version by a manager
    let (status, json) = ctx
        .api
        .get(
            &ctx.api
                .dem(&format!("/v1/platforms/{}/rules?state=in_force", big.id)),
            &ctx.operator,
        )
        .await?;
    ensure!(status == 200, "list rules: {status} {json}");
    let in_force = json["items"][0]["id"]
        .as_str()
        .context("no version in force")?
        .to_owned();
    let get_url = ctx.api.dem(&format!("/v1/rules/{in_force}"));
    let reader = &big.managers[0];
    let mut get_latency = histogram();
    let started = Instant::now();
    let mut gets = futures::stream::iter(0..args.get_requests)
        .map(|_| {
            let (api, url) = (&ctx.api, &get_url);
            async move {
                let t = Instant::now();
                let (status, _) = api.get(url, reader).await?;
                ensure!(status == 200, "GET /v1/rules/{{id}}: {status}");
                anyhow::Ok(t.elapsed())
            }
        })
        .buffer_unordered(args.concurrency);
    while let Some(took) = gets.next().await {
        record(&mut get_latency, took?);
    }
    drop(gets);
    let get_wall = started.elapsed();

    // ---- report
    let big_all = print_rounds(&big, args.concurrency, &big_rounds);
    let small_all = print_rounds(&small, small_concurrency, &small_rounds);
    println!();
    println!(
        "baseline GET /v1/rules/{{id}} (manager, {} in flight): {} requests, {:.0}/s, median {}, p99 {}",
        args.concurrency,
        get_latency.len(),
        get_latency.len() as f64 / get_wall.as_secs_f64(),
        fmt_us(get_latency.value_at_quantile(0.5)),
        fmt_us(get_latency.value_at_quantile(0.99))
    );
    println!(
        "decision median vs baselines: {} with {} organisations, {} with {}, {} for the GET",
        fmt_us(big_all.value_at_quantile(0.5)),
        args.orgs,
        fmt_us(small_all.value_at_quantile(0.5)),
        args.baseline_orgs,
        fmt_us(get_latency.value_at_quantile(0.5))
    );

    println!();
    let rate = median_f(big_rounds.iter().map(Round::rate).collect());
    let last = median_of(big_rounds.iter().map(|r| r.confirmed).collect()).unwrap_or_default();
    let last_worst = big_rounds
        .iter()
        .map(|r| r.confirmed)
        .max()
        .unwrap_or_default();
    let event =
        median_of(big_rounds.iter().filter_map(|r| r.in_force_event).collect()).unwrap_or_default();
    let event_worst = big_rounds
        .iter()
        .filter_map(|r| r.in_force_event)
        .max()
        .unwrap_or_default();
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let target = Duration::from_millis(100);
    println!(
        "target in force ≤ 100 ms after the last decision: {} through the API (median {}, worst round {}: decision + GET consensus); {} for the in_force event on NATS (median {}, worst round {})",
        verdict(last <= target),
        fmt_d(last),
        fmt_d(last_worst),
        verdict(event <= target),
        fmt_d(event),
        fmt_d(event_worst)
    );
    println!(
        "target ≥ 500 decisions/s sustained: {} (median of rounds {rate:.0}/s, slowest round {:.0}/s)",
        verdict(rate >= 500.0),
        big_rounds
            .iter()
            .map(Round::rate)
            .fold(f64::INFINITY, f64::min)
    );

    demarcation.stop().await?;
    registry.stop().await?;
    Ok(())
}
