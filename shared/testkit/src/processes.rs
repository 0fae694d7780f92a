//! The four service binaries as separate processes, as deployed: started
//! against one NATS server, one database URL and one data directory, each on
//! a port of its own, so that a test can SIGKILL any of them (a crash),
//! start it again, or SIGTERM them all (a clean stop that flushes spans).
//!
//! The binaries are the ones built beside the test executable (`cargo test
//! --workspace --bins --tests` builds them, as `tests/run` does).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The services, in the order they are started.
pub const SERVICES: [&str; 4] = ["registry", "demarcation", "contacts", "emergency"];

/// How to start the services: what every process gets.
#[derive(Clone, Debug)]
pub struct Launch {
    pub nats: String,
    pub database: String,
    pub data_dir: PathBuf,
    /// More environment for every process (`RENKEI_…` settings).
    pub env: Vec<(String, String)>,
}

impl Launch {
    pub fn new(nats: &str, database: &str, data_dir: &Path) -> Launch {
        Launch {
            nats: nats.to_owned(),
            database: database.to_owned(),
            data_dir: data_dir.to_owned(),
            env: Vec::new(),
        }
    }

    /// Adds a variable every process gets.
    pub fn env(mut self, name: &str, value: &str) -> Launch {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// The running service processes; every one still running is killed when
/// this is dropped.
pub struct Services {
    launch: Launch,
    ports: HashMap<&'static str, u16>,
    children: HashMap<&'static str, Child>,
}

/// The directory holding the service binaries: the test executable's
/// `target/<profile>`.
fn binary(service: &str) -> PathBuf {
    let dir = std::env::current_exe()
        .expect("test executable")
        .parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .expect("target directory");
    let binary = dir.join(format!("renkei-{service}"));
    assert!(
        binary.exists(),
        "{} is not built: run `cargo build --workspace --bins` (tests/run does)",
        binary.display()
    );
    binary
}

impl Services {
    /// Starts all four (not waiting for them: see [`Services::wait_ready`]).
    pub fn start(launch: Launch) -> Services {
        let mut services = Services {
            ports: SERVICES.iter().map(|s| (*s, crate::free_port())).collect(),
            launch,
            children: HashMap::new(),
        };
        for service in SERVICES {
            services.start_one(service, &[]);
        }
        services
    }

    /// Starts `service` (again, on its port), with `extra` environment on
    /// top of the launch's (`FAILPOINTS`, say).
    pub fn start_one(&mut self, service: &'static str, extra: &[(&str, &str)]) {
        assert!(
            !self.children.contains_key(service),
            "{service} is already running"
        );
        let mut command = Command::new(binary(service));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RENKEI_NATS__URL", &self.launch.nats)
            .env("RENKEI_DATABASE__URL", &self.launch.database)
            .env("RENKEI_DATA_DIR", &self.launch.data_dir)
            .env(
                "RENKEI_HTTP__LISTEN",
                format!("127.0.0.1:{}", self.ports[service]),
            )
            .env("RENKEI_HTTP__WORKERS", "2")
            .env("RENKEI_AUTH__DEV_KEY", crate::TEST_KEY)
            .env("RENKEI_RATE_LIMIT__PER_SECOND", "0")
            .env("RENKEI_OUTBOX__SWEEP_INTERVAL_MS", "200")
            .env("RENKEI_TELEMETRY__FILTER", "warn")
            // Their logs (stdout) only when asked: RENKEI_TEST_SERVICE_LOGS=1.
            .stdout(if std::env::var_os("RENKEI_TEST_SERVICE_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::inherit());
        for (name, value) in &self.launch.env {
            command.env(name, value);
        }
        for (name, value) in extra {
            command.env(name, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("renkei-{service} does not start: {e}"));
        self.children.insert(service, child);
    }

    /// The base URL of `service`.
    pub fn url(&self, service: &str) -> String {
        format!("http://127.0.0.1:{}", self.ports[service])
    }

    /// Whether `service`'s process is still running.
    pub fn is_running(&mut self, service: &str) -> bool {
        self.children
            .get_mut(service)
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Waits until `service`'s process exits by itself (a fault point that
    /// kills it, say), at most `within`; forgets it.
    pub async fn wait_exit(&mut self, service: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while self.is_running(service) {
            assert!(
                Instant::now() < deadline,
                "{service} still runs after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.children.remove(service);
    }

    /// Every running service answers `/readyz` with 200 within `within`.
    /// A process that dies meanwhile fails the test at once.
    pub async fn wait_ready(&mut self, within: Duration) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + within;
        let running: Vec<&'static str> = self.children.keys().copied().collect();
        for service in running {
            loop {
                let ready = http
                    .get(format!("{}/readyz", self.url(service)))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                if ready {
                    break;
                }
                for (name, child) in &mut self.children {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!("{name} exited with {status}");
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "{service} not ready within {within:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// SIGKILLs `service`, as a crash would.
    pub fn kill(&mut self, service: &str) {
        if let Some(mut child) = self.children.remove(service) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGKILLs every service.
    pub fn kill_all(&mut self) {
        for service in SERVICES {
            self.kill(service);
        }
    }

    /// SIGTERMs each and waits for it to exit cleanly (spans flushed).
    pub fn stop(&mut self) {
        for service in SERVICES {
            self.stop_one(service);
        }
    }

    /// SIGTERMs `service` and waits for it to exit cleanly (its outbox
    /// marks written, its spans flushed).
    pub fn stop_one(&mut self, service: &str) {
        {
            let Some(mut child) = self.children.remove(service) else {
                return;
            };
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        assert!(status.success(), "{service} exited with {status}");
                        break;
                    }
                    _ if Instant::now() > deadline => {
                        let _ = child.kill();
                        panic!("{service} did not stop within 20 s of SIGTERM")
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        for child in self.children.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
