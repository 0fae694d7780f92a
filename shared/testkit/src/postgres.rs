//! A PostgreSQL server of the test's own (`initdb` on a free port), to stop
//! and start under load. Never the machine's shared server: a test that
//! restarts the database must not restart everyone else's.
//!
//! The server binaries are found with `pg_config --bindir`, else in
//! `/usr/lib/postgresql/*/bin` (the newest). Missing binaries are an error
//! naming what was looked for, so a test using this fails instead of
//! passing without a database. `initdb` and `postgres` refuse to run as
//! root: as root, both run as the `postgres` account (its uid and gid), and
//! the data directory is given to it.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tempfile::TempDir;

/// How long a start may take before it is a failure.
const START_WITHIN: Duration = Duration::from_secs(30);
/// How long a fast shutdown may take before the server is killed.
const STOP_WITHIN: Duration = Duration::from_secs(15);

/// A PostgreSQL server in a temporary directory, on a free port of
/// 127.0.0.1, trusting every local connection (user `postgres`).
pub struct OwnPostgres {
    pub port: u16,
    bin: PathBuf,
    /// The data directory's parent: also the Unix socket and the log.
    dir: TempDir,
    /// Who to run the server as (uid, gid) when the test runs as root.
    run_as: Option<(u32, u32)>,
    child: Option<Child>,
}

impl OwnPostgres {
    /// `initdb`, then [`OwnPostgres::start`].
    pub async fn start_new() -> anyhow::Result<OwnPostgres> {
        let bin = bindir()?;
        let run_as = run_as()?;
        let dir = tempfile::tempdir().context("a temporary directory for PostgreSQL")?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .context("the data directory could not be given to the postgres account")?;
        }
        let data = dir.path().join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .stdin(Stdio::null());
        as_user(&mut initdb, run_as);
        let out = tokio::task::spawn_blocking(move || initdb.output())
            .await?
            .context("initdb could not be run")?;
        if !out.status.success() {
            bail!(
                "initdb failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut server = OwnPostgres {
            port: crate::free_port(),
            bin,
            dir,
            run_as,
            child: None,
        };
        server.start().await?;
        Ok(server)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's log so far (its stderr), for a failure message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the server (again) on the same data directory and port, and
    /// waits until it accepts connections (`pg_isready`).
    pub async fn start(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let deadline = Instant::now() + START_WITHIN;
        loop {
            let logged = self.log().len();
            self.spawn()?;
            match self.until_ready(deadline).await {
                Some(Ok(())) => return Ok(()),
                Some(Err(status)) => {
                    // Right after a kill, the old backends may still be
                    // exiting, their shared memory attached: wait for them.
                    let attempt = self.log().get(logged..).unwrap_or_default().to_owned();
                    if attempt.contains("pre-existing shared memory block")
                        && Instant::now() < deadline
                    {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    bail!(
                        "PostgreSQL exited at start ({status}); its log:\n{}",
                        self.log()
                    );
                }
                None => {
                    self.kill();
                    bail!(
                        "PostgreSQL did not accept connections on port {} within {START_WITHIN:?}; its log:\n{}",
                        self.port,
                        self.log()
                    )
                }
            }
        }
    }

    /// Waits for the spawned server: `Ok` once it accepts connections, the
    /// exit status if it exited, `None` if `deadline` passed first.
    async fn until_ready(
        &mut self,
        deadline: Instant,
    ) -> Option<Result<(), std::process::ExitStatus>> {
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Some(Err(status));
            }
            if self.ready().await {
                return Some(Ok(()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Spawns the postmaster on the data directory and port.
    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("postgres.log"))
            .context("the PostgreSQL log file")?;
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(self.data())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.dir.path())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=100",
                "-c",
                "fsync=off",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            // Its own process group, so that a kill reaches its backends.
            .process_group(0);
        as_user(&mut cmd, self.run_as);
        let child = cmd.spawn().with_context(|| {
            format!(
                "{} could not be started",
                self.bin.join("postgres").display()
            )
        })?;
        self.child = Some(child);
        Ok(())
    }

    /// Whether the server accepts connections now.
    pub async fn ready(&self) -> bool {
        let mut cmd = tokio::process::Command::new(self.bin.join("pg_isready"));
        cmd.args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-t",
            "2",
        ])
        .arg("-p")
        .arg(self.port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        cmd.status().await.is_ok_and(|s| s.success())
    }

    /// A fast shutdown (SIGINT to the postmaster: open transactions are
    /// rolled back, every client is disconnected with `57P01
    /// admin_shutdown`, a checkpoint is written), waiting until the server
    /// has exited; killed (SIGKILL) if it takes longer than 15 s.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        signal(&format!("{}", child.id()), "INT");
        let started = Instant::now();
        loop {
            if child.try_wait()?.is_some() {
                break;
            }
            if started.elapsed() > STOP_WITHIN {
                signal(&format!("-{}", child.id()), "KILL");
                let _ = child.wait();
                bail!("PostgreSQL did not stop within {STOP_WITHIN:?}; killed");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Its backends have exited with it; the port is free again.
        Ok(())
    }

    /// Kills the server and its backends at once (SIGKILL to its process
    /// group), as a crash would; [`OwnPostgres::start`] then recovers from
    /// the write-ahead log.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&format!("-{}", child.id()), "KILL");
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `SIG<sig>` to `target` (a pid, or `-pgid` for a process group).
fn signal(target: &str, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), "--", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn as_user(cmd: &mut Command, run_as: Option<(u32, u32)>) {
    if let Some((uid, gid)) = run_as {
        cmd.uid(uid).gid(gid);
        // HOME of root is not the postgres account's to read.
        cmd.env("HOME", "/tmp");
    }
}

/// The directory of `initdb`, `postgres` and `pg_isready`.
fn bindir() -> anyhow::Result<PathBuf> {
    let mut tried = Vec::new();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_server(&dir) {
            return Ok(dir);
        }
        tried.push(dir.display().to_string());
    } else {
        tried.push("pg_config --bindir (not found)".into());
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.into_iter().rev().find(|(_, d)| has_server(d)) {
        return Ok(dir);
    }
    tried.push("/usr/lib/postgresql/*/bin".into());
    bail!(
        "the PostgreSQL server binaries (initdb, postgres, pg_isready) were not found in {}; \
         install the PostgreSQL server package",
        tried.join(", ")
    )
}

fn has_server(dir: &Path) -> bool {
    ["initdb", "postgres", "pg_isready"]
        .iter()
        .all(|b| dir.join(b).is_file())
}

/// The `postgres` account's uid and gid when this process is root (the
/// server refuses to run as root), else none.
fn run_as() -> anyhow::Result<Option<(u32, u32)>> {
    let id = |args: &[&str]| -> Option<u32> {
        let out = Command::new("id").args(args).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    if id(&["-u"]).context("`id -u` could not be run")? != 0 {
        return Ok(None);
    }
    match (id(&["-u", "postgres"]), id(&["-g", "postgres"])) {
        (Some(uid), Some(gid)) => Ok(Some((uid, gid))),
        _ => bail!(
            "running as root, and PostgreSQL refuses to run as root: a `postgres` account is needed to run it as"
        ),
    }
}
