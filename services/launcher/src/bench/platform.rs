//! What the scenarios run against: the product (started here in-process as
//! `renkei up` runs it, on a nats-server and a database of the bench's own,
//! or an already-running one at `--url`), the webhook receiver whose URLs
//! the generated contacts carry, the hello-world server of the HTTP floor,
//! the HTTP calls, and the generated platform: a platform operator, a
//! platform, and organisations each with one linked system on it and one
//! CSIRT contact with a webhook, the systems linked in star groups so that
//! an incident on one reaches the rest of its group.

use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use futures::StreamExt as _;
use indicatif::ProgressBar;
use renkei_settings::Settings;
use renkei_web::{Role, TokenIssuer};
use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection};
use sea_orm::sqlx::{self, AssertSqlSafe, ConnectOptions as _, Connection as _};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::local_nats;

/// Requests in flight while the platform is generated.
pub const SETUP_CONCURRENCY: usize = 16;

/// A free TCP port on loopback.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The product started in this process, and what it stands on.
pub struct Local {
    /// The four services under one address; `None` once stopped.
    pub running: Option<renkei_web::Running>,
    pub settings: Settings,
    /// Time from `renkei_launcher::start` to the first `/readyz` 200.
    pub cold_start: Duration,
    /// What the product's database is, for the report.
    pub database: String,
    _nats: Option<local_nats::LocalNats>,
    scratch: Option<(PgConnectOptions, String)>,
    _dir: tempfile::TempDir,
}

impl Local {
    /// Starts a nats-server (the launcher's own way, as `renkei up` does),
    /// makes a scratch PostgreSQL database next to `database_url` unless
    /// `sqlite`, and starts the product, timing it to ready.
    pub async fn start(database_url: &str, sqlite: bool) -> anyhow::Result<Local> {
        let dir = tempfile::Builder::new().prefix("renkei-bench-").tempdir()?;
        let mut settings = Settings {
            data_dir: dir.path().to_path_buf(),
            ..Settings::default()
        };
        settings.http.listen = format!("127.0.0.1:{}", free_port()?);
        settings.nats.url = format!("nats://127.0.0.1:{}", free_port()?);
        // the bench drives single organisations far above the per-organisation limits
        settings.rate_limit.per_second = 0;
        let nats = local_nats::ensure(&settings).await?;
        ensure!(
            nats.is_some(),
            "could not start a nats-server of the bench's own"
        );
        let mut scratch = None;
        let mut database = "SQLite (files in the data dir)".to_owned();
        if !sqlite {
            match scratch_database(database_url, "product").await {
                Ok((options, name, url, version)) => {
                    settings.database.url = url;
                    database = format!("PostgreSQL {version} (scratch database {name})");
                    scratch = Some((options, name));
                }
                Err(e) => {
                    tracing::warn!("PostgreSQL not reachable ({e:#}); the product runs on SQLite");
                }
            }
        }
        let started = Instant::now();
        let running = match crate::start(&settings, "renkei-bench").await {
            Ok(running) => running,
            Err(e) => {
                if let Some((options, name)) = &scratch {
                    drop_database(options, name).await.ok();
                }
                return Err(e);
            }
        };
        let url = format!("http://{}", running.addr);
        wait_ready(&reqwest::Client::new(), &url, Duration::from_secs(120)).await?;
        let cold_start = started.elapsed();
        Ok(Local {
            running: Some(running),
            settings,
            cold_start,
            database,
            _nats: nats,
            scratch,
            _dir: dir,
        })
    }

    /// The product's base URL.
    pub fn url(&self) -> String {
        self.running
            .as_ref()
            .map_or_else(String::new, |r| format!("http://{}", r.addr))
    }

    /// Stops the product, then drops the scratch database; the nats-server
    /// and the data dir go when `self` is dropped.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(running) = self.running.take() {
            running.stop().await?;
        }
        if let Some((options, name)) = self.scratch.take() {
            drop_database(&options, &name).await?;
        }
        Ok(())
    }
}

/// Polls `GET {url}/readyz` until it answers 200.
pub async fn wait_ready(
    http: &reqwest::Client,
    url: &str,
    patience: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await
            && r.status().as_u16() == 200
        {
            return Ok(());
        }
        ensure!(
            started.elapsed() < patience,
            "{url}/readyz not 200 after {patience:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Creates `renkei_bench_<pid>_<what>` next to the admin URL: its connect
/// options, name, URL and the server's version.
pub async fn scratch_database(
    admin_url: &str,
    what: &str,
) -> anyhow::Result<(PgConnectOptions, String, String, String)> {
    let options = PgConnectOptions::from_str(admin_url)?.disable_statement_logging();
    let mut admin =
        tokio::time::timeout(Duration::from_secs(5), PgConnection::connect_with(&options))
            .await
            .context("PostgreSQL did not answer within 5 s")??;
    let name = format!("renkei_bench_{}_{what}", std::process::id());
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut admin)
        .await?;
    admin.close().await.ok();
    let base = admin_url
        .split('?')
        .next()
        .unwrap_or(admin_url)
        .rsplit_once('/')
        .map_or(admin_url, |(b, _)| b);
    Ok((options, name.clone(), format!("{base}/{name}"), version))
}

/// Drops a scratch database made by [`scratch_database`].
pub async fn drop_database(options: &PgConnectOptions, name: &str) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect_with(options).await?;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    admin.close().await.ok();
    Ok(())
}

/// One webhook request received: when, and for which incident.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    pub at: Instant,
    pub incident: Option<Uuid>,
}

/// The webhook receiver every generated contact points at: answers 200 to
/// every POST and notes when it came and which incident it is about.
pub struct WebhookSink {
    pub url: String,
    got: Arc<Mutex<Vec<Delivery>>>,
    handle: actix_web::dev::ServerHandle,
}

type Got = Arc<Mutex<Vec<Delivery>>>;

async fn receive(
    body: actix_web::web::Bytes,
    got: actix_web::web::Data<Got>,
) -> actix_web::HttpResponse {
    let incident = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        v["topic"]
            .as_str()
            .and_then(|t| t.strip_prefix("incident/"))
            .and_then(|t| t.split('/').next())
            .and_then(|t| t.parse().ok())
    });
    if let Ok(mut got) = got.lock() {
        got.push(Delivery {
            at: Instant::now(),
            incident,
        });
    }
    actix_web::HttpResponse::Ok().finish()
}

impl WebhookSink {
    /// Listens on a free loopback port.
    pub async fn start() -> anyhow::Result<WebhookSink> {
        use actix_web::{App, HttpServer, web};
        let got: Got = Arc::default();
        let g = got.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(g.clone()))
                .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                .default_service(web::post().to(receive))
        })
        .workers(1)
        .backlog(4096)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(WebhookSink {
            url: format!("http://127.0.0.1:{port}"),
            got,
            handle,
        })
    }

    /// Every delivery received so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// Stops listening.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

/// The hello-world floor of HTTP: an actix-web server answering `hello` to
/// `GET /`, with as many workers as the product's server.
pub struct Hello {
    pub url: String,
    handle: actix_web::dev::ServerHandle,
}

impl Hello {
    /// Listens on a free loopback port; also returns the time from start to
    /// the first 200.
    pub async fn start(workers: usize) -> anyhow::Result<(Hello, Duration)> {
        use actix_web::{App, HttpResponse, HttpServer, web};
        let started = Instant::now();
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(|| {
            App::new()
                .route(
                    "/",
                    web::get().to(|| async { HttpResponse::Ok().body("hello") }),
                )
                .route(
                    "/readyz",
                    web::get().to(|| async { HttpResponse::Ok().body("ready") }),
                )
        })
        .workers(workers.max(1))
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        let url = format!("http://127.0.0.1:{port}");
        wait_ready(&reqwest::Client::new(), &url, Duration::from_secs(10)).await?;
        Ok((Hello { url, handle }, started.elapsed()))
    }

    /// Stops it.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

/// The product's HTTP API as the bench calls it.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

impl Api {
    /// A client with room for `connections` connections to one host.
    pub fn new(base: &str, connections: usize) -> anyhow::Result<Api> {
        Ok(Api {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(connections)
                .timeout(Duration::from_secs(120))
                .build()?,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// One call: the status and the body as JSON (`null` when not JSON).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.with_context(|| url.clone())?;
        let status = resp.status().as_u16();
        let json = resp.json().await.unwrap_or(Value::Null);
        Ok((status, json))
    }

    /// `GET path`.
    pub async fn get(&self, path: &str, token: &str) -> anyhow::Result<(u16, Value)> {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    /// `POST path` expecting `want`: the answer's body.
    pub async fn post(
        &self,
        path: &str,
        token: &str,
        body: &Value,
        want: u16,
    ) -> anyhow::Result<Value> {
        let (status, json) = self
            .call(reqwest::Method::POST, path, token, Some(body))
            .await?;
        ensure!(status == want, "POST {path}: {status} {json}");
        Ok(json)
    }

    /// `POST path` expecting 201: the created object's id.
    pub async fn create(&self, path: &str, token: &str, body: &Value) -> anyhow::Result<Uuid> {
        let json = self.post(path, token, body, 201).await?;
        id(&json)
    }
}

/// An object's `id`.
pub fn id(v: &Value) -> anyhow::Result<Uuid> {
    v["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no id in {v}"))
}

/// Mints the tokens the scenarios act with.
pub struct Tokens {
    issuer: Option<TokenIssuer>,
    admin: String,
}

impl Tokens {
    /// With the deployment's development key (every role), or only the
    /// admin token given.
    pub fn new(issuer: Option<TokenIssuer>, admin: Option<String>) -> anyhow::Result<Tokens> {
        let admin = match (admin, &issuer) {
            (Some(t), _) => t,
            (None, Some(i)) => i.issue("bench-admin", None, &[Role::Admin], 24 * 3600)?,
            (None, None) => anyhow::bail!("no token: give --token (and --data-dir to mint others)"),
        };
        Ok(Tokens { issuer, admin })
    }

    /// The admin token.
    pub fn admin(&self) -> &str {
        &self.admin
    }

    /// Whether tokens of other roles can be minted.
    pub fn can_mint(&self) -> bool {
        self.issuer.is_some()
    }

    /// A token of `role` for `org`.
    pub fn mint(&self, role: Role, org: Option<Uuid>) -> anyhow::Result<String> {
        let issuer = self
            .issuer
            .as_ref()
            .context("minting tokens needs the deployment's development key (--data-dir)")?;
        issuer.issue(&format!("bench-{}", role.as_str()), org, &[role], 24 * 3600)
    }
}

/// One generated organisation.
#[derive(Debug, Clone)]
pub struct Org {
    pub id: Uuid,
    pub system: Uuid,
    pub manager: String,
    pub csirt: String,
}

/// The generated platform.
pub struct Generated {
    pub platform: Uuid,
    pub operator: String,
    pub orgs: Vec<Org>,
    /// Organisations per star group: an incident on a member reaches the rest.
    pub group: usize,
    /// Linked systems on the platform (demarcation's count of them).
    pub systems: usize,
    pub links: usize,
    pub took: Duration,
}

/// Generates `orgs` organisations with one linked system and one CSIRT
/// webhook contact each, the systems linked (both ways, carrying malware)
/// to the first of their group of `group`.
pub async fn generate(
    api: &Api,
    tokens: &Tokens,
    sink: &str,
    orgs: usize,
    group: usize,
    progress: &ProgressBar,
) -> anyhow::Result<Generated> {
    let started = Instant::now();
    let run = std::process::id();
    let admin = tokens.admin().to_owned();
    let op_org = api
        .create(
            "/v1/organizations",
            &admin,
            &json!({"name": format!("Bench {run} platform office"), "kind": "platform_operator"}),
        )
        .await?;
    let operator = tokens.mint(Role::Operator, Some(op_org))?;
    let platform = api
        .create(
            "/v1/systems",
            &operator,
            &json!({"name": format!("Bench {run} common platform"), "kind": "platform",
                    "owner_org_id": op_org, "confidentiality": 3, "integrity": 2, "availability": 2}),
        )
        .await?;
    progress.set_length(orgs as u64);
    progress.set_position(0);
    let results: Vec<anyhow::Result<Org>> = futures::stream::iter(0..orgs)
        .map(|i| {
            let (admin, operator) = (admin.clone(), operator.clone());
            async move {
                let id = api
                    .create(
                        "/v1/organizations",
                        &admin,
                        &json!({"name": format!("Bench {run} agency {i:05}"), "kind": "government_agency"}),
                    )
                    .await?;
                let system = api
                    .create(
                        "/v1/systems",
                        &operator,
                        &json!({"name": format!("Bench {run} agency {i:05} records"), "kind": "linked",
                                "owner_org_id": id, "platform_id": platform,
                                "confidentiality": 2, "integrity": 1, "availability": 1}),
                    )
                    .await?;
                let manager = tokens.mint(Role::Manager, Some(id))?;
                api.create(
                    "/v1/contacts",
                    &manager,
                    &json!({"org_id": id, "name": format!("CSIRT {i}"), "role": "csirt", "availability": "both",
                            "channels": [{"kind": "webhook", "url": format!("{sink}/{i}"), "secret": "bench-secret-key"}]}),
                )
                .await?;
                progress.inc(1);
                Ok(Org {
                    id,
                    system,
                    csirt: tokens.mint(Role::Csirt, Some(id))?,
                    manager,
                })
            }
        })
        .buffered(SETUP_CONCURRENCY)
        .collect()
        .await;
    let orgs_made = results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let group = group.clamp(2, orgs_made.len().max(2));
    let links: Vec<(Uuid, Uuid)> = orgs_made
        .iter()
        .enumerate()
        .filter(|(j, _)| j % group != 0)
        .flat_map(|(j, o)| {
            let hub = orgs_made[j / group * group].system;
            [(o.system, hub), (hub, o.system)]
        })
        .collect();
    let link_count = links.len();
    progress.set_message(format!("generating the platform: {link_count} links"));
    progress.set_length(link_count as u64);
    progress.set_position(0);
    let results: Vec<anyhow::Result<Uuid>> = futures::stream::iter(links)
        .map(|(from, to)| {
            let operator = operator.clone();
            async move {
                let made = api
                    .create(
                        "/v1/links",
                        &operator,
                        &json!({"from_system_id": from, "to_system_id": to, "kind": "network", "propagates": ["malware"]}),
                    )
                    .await;
                progress.inc(1);
                made
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Generated {
        platform,
        operator,
        systems: orgs_made.len(),
        orgs: orgs_made,
        group,
        links: link_count,
        took: started.elapsed(),
    })
}

/// Waits until the demarcation service counts `systems` linked systems on
/// the platform (it has applied every registration); returns when.
pub async fn await_known(api: &Api, g: &Generated, patience: Duration) -> anyhow::Result<Instant> {
    let path = format!("/v1/platforms/{}/matrix/gaps", g.platform);
    let started = Instant::now();
    loop {
        let (status, json) = api.get(&path, &g.operator).await?;
        if status == 200 && json["systems"].as_u64() >= Some(g.systems as u64) {
            return Ok(Instant::now());
        }
        ensure!(
            started.elapsed() < patience,
            "demarcation knows {} of {} systems after {patience:?} ({status})",
            json["systems"],
            g.systems
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every UUID in a JSON document, each with the instant given.
pub fn uuids_in(v: &Value, at: Instant, out: &mut HashMap<Uuid, Instant>) {
    match v {
        Value::String(s) => {
            if let Ok(id) = s.parse::<Uuid>() {
                out.entry(id).or_insert(at);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| uuids_in(v, at, out)),
        Value::Object(o) => o.values().for_each(|v| uuids_in(v, at, out)),
        _ => {}
    }
}
