//! Real processes for tests: a `nats-server -js` on a free port that can be
//! killed and restarted, a fresh database per test (SQLite file, or a new
//! PostgreSQL database when `RENKEI_TEST_DATABASE_URL` names a server), and
//! settings that bind port 0.
//!
//! [`bench`]: what the benchmarks share.
//! [`bodies`]: property tests for request bodies, from their published schema.
//! [`postgres`]: a PostgreSQL server of the test's own, to stop and start.
//! [`processes`]: the service binaries as processes, to kill and restart.

pub mod bench;
pub mod bodies;
pub mod postgres;
pub mod processes;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use renkei_settings::{Settings, Sources};
use sea_orm::{ConnectionTrait, Database};
use tempfile::TempDir;

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Quiet unless `RENKEI_TEST_LOG` holds a filter.
pub fn init_tracing() {
    let filter = std::env::var("RENKEI_TEST_LOG").ok();
    renkei_telemetry::init_for_tests(filter.as_deref());
}

/// A nats-server of the test's own, with JetStream and its own store.
pub struct NatsServer {
    pub port: u16,
    store: TempDir,
    args: Vec<String>,
    child: Option<Child>,
}

fn nats_binary() -> String {
    std::env::var("RENKEI_TEST_NATS_SERVER").unwrap_or_else(|_| "nats-server".into())
}

impl NatsServer {
    pub async fn start() -> anyhow::Result<NatsServer> {
        NatsServer::start_with(&[]).await
    }

    /// With `args` on its command line too (`--user`, `--pass` …).
    pub async fn start_with(args: &[&str]) -> anyhow::Result<NatsServer> {
        let mut server = NatsServer {
            port: free_port(),
            store: tempfile::tempdir()?,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            child: None,
        };
        server.restart().await?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills it, deletes its JetStream store (every stream and consumer
    /// with it), and starts it again empty on the same port.
    pub async fn wipe_and_restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        for entry in std::fs::read_dir(self.store.path())? {
            let path = entry?.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
        }
        self.restart().await
    }

    /// Starts it again on the same port with the same store.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let child = Command::new(nats_binary())
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(self.store.path())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("nats-server could not be started (tests/run installs one; or set RENKEI_TEST_NATS_SERVER)")?;
        self.child = Some(child);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!("nats-server did not answer on port {}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A database no other test uses.
pub struct TestDb {
    pub url: String,
    _dir: TempDir,
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// SQLite by default; PostgreSQL when `RENKEI_TEST_DATABASE_URL` is set.
    pub async fn fresh() -> anyhow::Result<TestDb> {
        let dir = tempfile::tempdir()?;
        match std::env::var("RENKEI_TEST_DATABASE_URL")
            .ok()
            .filter(|u| u.starts_with("postgres"))
        {
            None => {
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
                Ok(TestDb {
                    url,
                    _dir: dir,
                    postgres: None,
                })
            }
            Some(admin) => TestDb::created_in(admin, dir).await,
        }
    }

    /// PostgreSQL whatever the pass: `RENKEI_TEST_DATABASE_URL` when it is
    /// PostgreSQL, else the machine's server (127.0.0.1:5432, as
    /// `tests/run` requires), for tests of what only a shared database
    /// does (replicas of a service in several processes).
    pub async fn postgres() -> anyhow::Result<TestDb> {
        let admin = std::env::var("RENKEI_TEST_DATABASE_URL")
            .ok()
            .filter(|u| u.starts_with("postgres"))
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
        TestDb::created_in(admin, tempfile::tempdir()?).await
    }

    async fn created_in(admin: String, dir: TempDir) -> anyhow::Result<TestDb> {
        let name = format!("renkei_test_{}", uuid::Uuid::now_v7().simple());
        let conn = Database::connect(&admin)
            .await
            .with_context(|| format!("PostgreSQL is not reachable at {admin}"))?;
        conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await?;
        conn.close().await.ok();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Ok(TestDb {
            url,
            _dir: dir,
            postgres: Some((admin, name)),
        })
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.postgres.take() {
            // Drop runs outside any runtime we may block; use a thread of its own.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    if let Ok(conn) = Database::connect(&admin).await {
                        let _ = conn
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// The development key every test signs its tokens with.
pub const TEST_KEY: &str = "renkei-test-signing-key";

/// Settings for a service under test: port 0, the given NATS and database, a
/// fast outbox sweep, the test key, nothing read from the environment.
pub fn settings(nats_url: &str, database_url: &str, data_dir: PathBuf) -> Settings {
    let mut s = Settings::load(&Sources::default()).unwrap_or_default();
    s.http.listen = "127.0.0.1:0".into();
    s.http.workers = 2;
    s.nats.url = nats_url.to_owned();
    s.database.url = database_url.to_owned();
    s.database.max_connections = 4;
    s.data_dir = data_dir;
    s.outbox.sweep_interval_ms = 200;
    s.auth.dev_key = TEST_KEY.to_owned().into();
    // Tests and benchmarks drive one organisation far above 20 requests/s;
    // the rate limits have tests of their own that turn them on.
    s.rate_limit.per_second = 0;
    s
}

/// Mints tokens with [`TEST_KEY`].
pub fn token(role: renkei_web::Role, org: Option<uuid::Uuid>) -> String {
    renkei_web::TokenIssuer::hs256(TEST_KEY.as_bytes())
        .issue(&format!("test-{}", role.as_str()), org, &[role], 3600)
        .unwrap_or_default()
}

/// One HTTP request as tests make them: bearer token, JSON body; the answer
/// as `(status, body)`, the body parsed as JSON when it is JSON, as a string
/// when it is other text (documents), `null` when empty.
pub async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = http.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let body = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    };
    (status, body)
}

/// One request a [`WebhookSink`] received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: std::time::Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// A webhook receiver on loopback: records every POST; answers 200, or the
/// status set for a path with [`WebhookSink::answer`].
#[derive(Clone)]
pub struct WebhookSink {
    pub url: String,
    got: std::sync::Arc<parking_lot::Mutex<Vec<Received>>>,
    answers: std::sync::Arc<parking_lot::Mutex<std::collections::HashMap<String, u16>>>,
    handle: actix_web::dev::ServerHandle,
}

impl WebhookSink {
    pub async fn start() -> anyhow::Result<WebhookSink> {
        use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
        type Got = std::sync::Arc<parking_lot::Mutex<Vec<Received>>>;
        type Answers = std::sync::Arc<parking_lot::Mutex<std::collections::HashMap<String, u16>>>;
        let got: Got = Default::default();
        let answers: Answers = Default::default();
        async fn receive(
            req: HttpRequest,
            body: web::Bytes,
            got: web::Data<Got>,
            answers: web::Data<Answers>,
        ) -> HttpResponse {
            let path = req.path().to_owned();
            got.lock().push(Received {
                path: path.clone(),
                headers: req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                    .collect(),
                body: body.to_vec(),
                at: std::time::Instant::now(),
            });
            let status = answers.lock().get(&path).copied().unwrap_or(200);
            HttpResponse::build(
                actix_web::http::StatusCode::from_u16(status)
                    .unwrap_or(actix_web::http::StatusCode::OK),
            )
            .finish()
        }
        let (g, a) = (got.clone(), answers.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(g.clone()))
                .app_data(web::Data::new(a.clone()))
                .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                .default_service(web::post().to(receive))
        })
        .workers(2)
        .backlog(4096)
        .max_connections(100_000)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(WebhookSink {
            url: format!("http://127.0.0.1:{port}"),
            got,
            answers,
            handle,
        })
    }

    /// Answers `status` to POSTs on `path` from now on.
    pub fn answer(&self, path: &str, status: u16) {
        self.answers.lock().insert(path.to_owned(), status);
    }

    /// Everything received on `path` so far.
    pub fn on(&self, path: &str) -> Vec<Received> {
        self.got
            .lock()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    pub fn count(&self) -> usize {
        self.got.lock().len()
    }

    /// Every request after the first `skip`.
    pub fn since(&self, skip: usize) -> Vec<Received> {
        self.got.lock().iter().skip(skip).cloned().collect()
    }

    /// When each request after the first `skip` arrived.
    pub fn received_since(&self, skip: usize) -> Vec<std::time::Instant> {
        self.got.lock().iter().skip(skip).map(|r| r.at).collect()
    }

    /// Waits up to `within` for at least `n` requests on `path`.
    pub async fn wait_for(
        &self,
        path: &str,
        n: usize,
        within: std::time::Duration,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = self.on(path);
            if got.len() >= n || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

/// One message a [`MailSink`] accepted.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The raw message (headers and body).
    pub data: String,
}

/// An SMTP server on loopback (mailin-embedded) that accepts every message.
pub struct MailSink {
    pub port: u16,
    got: std::sync::Arc<parking_lot::Mutex<Vec<Mail>>>,
}

#[derive(Clone)]
struct MailHandler {
    got: std::sync::Arc<parking_lot::Mutex<Vec<Mail>>>,
    current: Option<Mail>,
}

impl mailin_embedded::Handler for MailHandler {
    fn data_start(
        &mut self,
        _domain: &str,
        from: &str,
        _is8bit: bool,
        to: &[String],
    ) -> mailin_embedded::Response {
        self.current = Some(Mail {
            from: from.to_owned(),
            to: to.to_vec(),
            data: String::new(),
        });
        mailin_embedded::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(m) = &mut self.current {
            m.data.push_str(&String::from_utf8_lossy(buf));
        }
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        if let Some(m) = self.current.take() {
            self.got.lock().push(m);
        }
        mailin_embedded::response::OK
    }
}

impl MailSink {
    /// Serves on a free port in a thread of its own for the life of the test.
    pub fn start() -> anyhow::Result<MailSink> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let got: std::sync::Arc<parking_lot::Mutex<Vec<Mail>>> = Default::default();
        let mut server = mailin_embedded::Server::new(MailHandler {
            got: got.clone(),
            current: None,
        });
        server
            .with_name("sink.test")
            .with_ssl(mailin_embedded::SslConfig::None)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        Ok(MailSink { port, got })
    }

    pub fn received(&self) -> Vec<Mail> {
        self.got.lock().clone()
    }

    pub async fn wait_for(&self, n: usize, within: std::time::Duration) -> Vec<Mail> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
