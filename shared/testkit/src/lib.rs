//! Real processes for tests: a `nats-server -js` on a free port that can be
//! killed and restarted, a fresh database per test (SQLite file, or a new
//! PostgreSQL database when `RENKEI_TEST_DATABASE_URL` names a server), and
//! settings that bind port 0.

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
    child: Option<Child>,
}

fn nats_binary() -> String {
    std::env::var("RENKEI_TEST_NATS_SERVER").unwrap_or_else(|_| "nats-server".into())
}

impl NatsServer {
    pub async fn start() -> anyhow::Result<NatsServer> {
        let mut server = NatsServer {
            port: free_port(),
            store: tempfile::tempdir()?,
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

    /// Starts it again on the same port with the same store.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let child = Command::new(nats_binary())
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(self.store.path())
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
            Some(admin) => {
                let name = format!("renkei_test_{}", uuid::Uuid::now_v7().simple());
                let conn = Database::connect(&admin)
                    .await
                    .context("RENKEI_TEST_DATABASE_URL is not reachable")?;
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
        }
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
