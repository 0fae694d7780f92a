//! Layered configuration for every Renkei process.
//!
//! Built-in defaults, then an optional TOML file, then `RENKEI_`-prefixed
//! environment variables with `__` between levels (`RENKEI_HTTP__LISTEN`),
//! then explicit overrides from a command line. The result is validated once,
//! at start-up: a bad value stops the process with an error naming its key.
//! This is the only place in the product that reads the environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A source could not be read or a value has the wrong type.
    #[error("configuration could not be read: {0}")]
    Read(#[from] config::ConfigError),
    /// A value was read but makes no sense; `key` is its dotted path.
    #[error("configuration key `{key}` is invalid: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// Everything a Renkei process can be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Where a process keeps its files (SQLite databases, development keys,
    /// the local NATS store when the launcher starts one).
    pub data_dir: PathBuf,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub telemetry: TelemetrySettings,
    pub auth: AuthSettings,
    pub outbox: OutboxSettings,
    pub contacts: ContactsSettings,
    pub emergency: EmergencySettings,
}

/// The HTTP front of a service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HttpSettings {
    /// Address to bind; port 0 picks a free one (tests).
    pub listen: String,
    /// actix worker threads; 0 means one per core.
    pub workers: usize,
    /// Largest accepted request body; larger ones get a 413.
    pub body_limit_bytes: usize,
}

/// Where a service keeps its state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseSettings {
    /// `sqlite://…` or `postgres://…`. Empty means an SQLite file named after
    /// the service in `data_dir` (the embedded default). An SQLite URL names
    /// a file pattern: each service gets its own file beside it
    /// (`renkei.db` → `renkei-registry.db`); on PostgreSQL each service gets
    /// its own schema in the one database.
    pub url: String,
    /// Pool size for reads (and for writes on PostgreSQL). SQLite writes always
    /// go through one connection, so they never meet "database is locked".
    pub max_connections: u32,
}

/// How a service reaches the bus.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NatsSettings {
    pub url: String,
    /// How long a request/reply query waits for its answer.
    pub request_timeout_ms: u64,
    /// JetStream replicas for the streams a service creates (3 in a cluster).
    pub stream_replicas: usize,
}

/// Logs and traces.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TelemetrySettings {
    /// `human` for a terminal, `json` for a log pipeline.
    pub format: LogFormat,
    /// An `EnvFilter` directive such as `info,renkei_registry=debug`.
    pub filter: String,
    /// OTLP/HTTP endpoint (`http://collector:4318`); empty disables export.
    pub otlp_endpoint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Human,
    Json,
}

/// How bearer tokens are verified.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthSettings {
    /// HS256 development key. Empty means: read (or create on first start)
    /// `dev-signing.key` in `data_dir`.
    #[serde(serialize_with = "never_serialize_secret")]
    pub dev_key: SecretString,
}

fn never_serialize_secret<S: serde::Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("")
}

/// The transactional outbox relay.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxSettings {
    /// The safety-net sweep; the relay is normally woken by each commit.
    pub sweep_interval_ms: u64,
    /// Rows published per round.
    pub batch_size: u64,
}

/// How the contacts service reaches people.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContactsSettings {
    /// The address people's browsers reach this installation at, for the
    /// acknowledgement links in messages. Empty means `http://<http.listen>`.
    pub public_url: String,
    pub smtp: SmtpSettings,
    pub delivery: DeliverySettings,
}

/// Deadlines of the emergency service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmergencySettings {
    /// Seconds from declaration to the initial report's deadline for
    /// severities 1 and 2 (default one hour).
    pub initial_report_due_secs_severe: u64,
    /// The same for severities 3 and 4 (default 24 hours).
    pub initial_report_due_secs_other: u64,
}

/// The mail relay that email channels go through.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SmtpSettings {
    /// Empty means email is not configured: email deliveries fail (and
    /// escalate) with an error saying so.
    pub host: String,
    pub port: u16,
    /// `none` (loopback relays only), `starttls` or `tls`.
    pub tls: SmtpTls,
    /// The sender address of every message.
    pub from: String,
    /// Empty for a relay that needs no login.
    pub username: String,
    #[serde(serialize_with = "never_serialize_secret")]
    pub password: SecretString,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    None,
    Starttls,
    Tls,
}

/// Retries and concurrency of deliveries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliverySettings {
    /// Attempts per delivery before its channel is recorded as failing and
    /// the escalation moves on.
    pub max_attempts: u32,
    /// The wait before the first retry; doubled each time up to `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// How long one attempt may take.
    pub timeout_ms: u64,
    /// Attempts in flight at once.
    pub concurrency: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            data_dir: PathBuf::from(".renkei"),
            http: HttpSettings {
                listen: "127.0.0.1:8080".into(),
                workers: 0,
                body_limit_bytes: 1024 * 1024,
            },
            database: DatabaseSettings {
                url: String::new(),
                max_connections: 8,
            },
            nats: NatsSettings {
                url: "nats://127.0.0.1:4222".into(),
                request_timeout_ms: 2_000,
                stream_replicas: 1,
            },
            telemetry: TelemetrySettings {
                format: LogFormat::Human,
                filter: "info".into(),
                otlp_endpoint: String::new(),
            },
            auth: AuthSettings {
                dev_key: SecretString::from(String::new()),
            },
            outbox: OutboxSettings {
                sweep_interval_ms: 2_000,
                batch_size: 256,
            },
            contacts: ContactsSettings {
                public_url: String::new(),
                smtp: SmtpSettings {
                    host: String::new(),
                    port: 25,
                    tls: SmtpTls::Starttls,
                    from: "renkei@localhost".into(),
                    username: String::new(),
                    password: SecretString::from(String::new()),
                },
                delivery: DeliverySettings {
                    max_attempts: 5,
                    retry_base_ms: 2_000,
                    retry_max_ms: 60_000,
                    timeout_ms: 10_000,
                    concurrency: 64,
                },
            },
            emergency: EmergencySettings {
                initial_report_due_secs_severe: 3_600,
                initial_report_due_secs_other: 86_400,
            },
        }
    }
}

/// Where settings come from, beyond the built-in defaults and the environment.
#[derive(Debug, Default, Clone)]
pub struct Sources<'a> {
    /// An optional TOML file.
    pub file: Option<&'a Path>,
    /// Dotted key → value pairs that win over everything (command-line flags).
    pub overrides: Vec<(&'static str, String)>,
    /// Read `RENKEI_*` environment variables (off in tests that must not see
    /// the developer's shell).
    pub environment: bool,
}

impl Settings {
    /// Defaults → file → environment → overrides, then validated.
    pub fn load(sources: &Sources<'_>) -> Result<Settings, SettingsError> {
        let defaults = Config::try_from(&Settings::default())?;
        let mut builder = Config::builder().add_source(defaults);
        if let Some(file) = sources.file {
            builder = builder.add_source(File::from(file).format(FileFormat::Toml).required(true));
        }
        if sources.environment {
            builder = builder.add_source(
                Environment::with_prefix("RENKEI")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true),
            );
        }
        for (key, value) in &sources.overrides {
            builder = builder.set_override(*key, value.clone())?;
        }
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Defaults, the environment, nothing else: what a service binary uses
    /// when no file is named.
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::load(&Sources {
            environment: true,
            ..Sources::default()
        })
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |key, reason: &str| {
            Err(SettingsError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if self.http.listen.parse::<SocketAddr>().is_err() {
            return invalid("http.listen", "expected an address such as 127.0.0.1:8080");
        }
        if self.http.body_limit_bytes == 0 {
            return invalid("http.body_limit_bytes", "must be greater than 0");
        }
        let url = self.database.url.as_str();
        if !(url.is_empty()
            || url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return invalid(
                "database.url",
                "expected sqlite:… or postgres://…, or empty for the embedded default",
            );
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be at least 1");
        }
        if !(self.nats.url.starts_with("nats://") || self.nats.url.starts_with("tls://")) {
            return invalid("nats.url", "expected nats://host:port");
        }
        if self.nats.request_timeout_ms == 0 {
            return invalid("nats.request_timeout_ms", "must be greater than 0");
        }
        if !(1..=5).contains(&self.nats.stream_replicas) {
            return invalid("nats.stream_replicas", "must be between 1 and 5");
        }
        let otlp = self.telemetry.otlp_endpoint.as_str();
        if !(otlp.is_empty() || otlp.starts_with("http://") || otlp.starts_with("https://")) {
            return invalid(
                "telemetry.otlp_endpoint",
                "expected http(s)://host:port, or empty",
            );
        }
        if self.outbox.sweep_interval_ms == 0 {
            return invalid("outbox.sweep_interval_ms", "must be greater than 0");
        }
        if self.outbox.batch_size == 0 {
            return invalid("outbox.batch_size", "must be greater than 0");
        }
        let public = self.contacts.public_url.as_str();
        if !(public.is_empty() || public.starts_with("http://") || public.starts_with("https://")) {
            return invalid(
                "contacts.public_url",
                "expected http(s)://host[:port], or empty",
            );
        }
        let emergency = &self.emergency;
        for (field, secs) in [
            (
                "emergency.initial_report_due_secs_severe",
                emergency.initial_report_due_secs_severe,
            ),
            (
                "emergency.initial_report_due_secs_other",
                emergency.initial_report_due_secs_other,
            ),
        ] {
            if secs == 0 {
                return invalid(field, "must be greater than 0");
            }
        }
        let delivery = &self.contacts.delivery;
        if delivery.max_attempts == 0 {
            return invalid("contacts.delivery.max_attempts", "must be at least 1");
        }
        if delivery.timeout_ms == 0 {
            return invalid("contacts.delivery.timeout_ms", "must be greater than 0");
        }
        if delivery.concurrency == 0 {
            return invalid("contacts.delivery.concurrency", "must be at least 1");
        }
        if delivery.retry_max_ms < delivery.retry_base_ms {
            return invalid(
                "contacts.delivery.retry_max_ms",
                "must not be below contacts.delivery.retry_base_ms",
            );
        }
        Ok(())
    }

    /// The database URL a service uses: its own SQLite file (in the data
    /// directory, or beside the configured SQLite file), or the configured
    /// PostgreSQL database. Services never share an SQLite file: each has
    /// its own schema history and its own single writer.
    pub fn database_url_for(&self, service: &str) -> String {
        let url = &self.database.url;
        if url.is_empty() {
            return format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join(format!("{service}.db")).display()
            );
        }
        if !url.starts_with("sqlite:") {
            return url.clone();
        }
        let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
        let path = match path.strip_suffix(".db") {
            Some(stem) => format!("{stem}-{service}.db"),
            None => format!("{path}-{service}"),
        };
        if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        }
    }

    /// The base of links people open (acknowledgements), without a
    /// trailing slash.
    pub fn public_url(&self) -> String {
        if self.contacts.public_url.is_empty() {
            format!("http://{}", self.http.listen)
        } else {
            self.contacts.public_url.trim_end_matches('/').to_owned()
        }
    }

    pub fn listen_addr(&self) -> SocketAddr {
        // validate() has proven it parses.
        self.http
            .listen
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn defaults_are_valid() {
        let s = Settings::load(&Sources::default()).expect("defaults load");
        assert_eq!(s.http.body_limit_bytes, 1024 * 1024);
        assert!(
            s.database_url_for("registry")
                .ends_with("registry.db?mode=rwc")
        );
    }

    #[test]
    fn each_service_gets_its_own_sqlite_file_but_shares_a_postgres_database() {
        let mut s = Settings::load(&Sources::default()).expect("defaults load");
        s.database.url = "sqlite:///var/lib/renkei/renkei.db?mode=rwc".into();
        assert_eq!(
            s.database_url_for("demarcation"),
            "sqlite:///var/lib/renkei/renkei-demarcation.db?mode=rwc"
        );
        s.database.url = "sqlite://data/store".into();
        assert_eq!(
            s.database_url_for("registry"),
            "sqlite://data/store-registry"
        );
        s.database.url = "postgres://db/renkei".into();
        assert_eq!(s.database_url_for("registry"), "postgres://db/renkei");
    }

    #[test]
    fn file_then_overrides_win_in_order() {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        writeln!(
            f,
            "[http]\nlisten = \"127.0.0.1:9000\"\n[nats]\nurl = \"nats://10.0.0.1:4222\""
        )
        .expect("write");
        let s = Settings::load(&Sources {
            file: Some(f.path()),
            overrides: vec![("nats.url", "nats://127.0.0.1:5000".into())],
            environment: false,
        })
        .expect("load");
        assert_eq!(s.http.listen, "127.0.0.1:9000");
        assert_eq!(s.nats.url, "nats://127.0.0.1:5000");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err = Settings::load(&Sources {
            overrides: vec![("http.listen", "nowhere".into())],
            ..Default::default()
        })
        .expect_err("must fail");
        assert!(err.to_string().contains("http.listen"), "{err}");
        let err = Settings::load(&Sources {
            overrides: vec![("database.url", "mysql://x".into())],
            ..Default::default()
        })
        .expect_err("must fail");
        assert!(err.to_string().contains("database.url"), "{err}");
    }

    #[test]
    fn a_wrong_type_names_its_key() {
        let err = Settings::load(&Sources {
            overrides: vec![("http.workers", "many".into())],
            ..Default::default()
        })
        .expect_err("must fail");
        assert!(err.to_string().contains("workers"), "{err}");
    }
}
