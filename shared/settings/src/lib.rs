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
    /// `development` (the default: generated keys, `renkei token`) or
    /// `production` (tokens only from the identity provider).
    pub profile: Profile,
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
    pub rate_limit: RateLimitSettings,
    pub audit: AuditSettings,
    pub console: ConsoleSettings,
}

/// Which kind of installation this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    Development,
    Production,
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
    /// Serve `GET /metrics` and measure every request for it.
    pub metrics: bool,
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
    /// The service's NATS user (one per service, see `deploy/nats`); empty
    /// connects without credentials (the development server).
    pub user: String,
    #[serde(serialize_with = "never_serialize_secret")]
    pub password: SecretString,
    /// A `.creds` file (JWT + NKey seed), instead of user and password.
    pub credentials_file: String,
    /// PEM file of the CA that signed the server's certificate; set, the
    /// connection requires TLS.
    pub tls_ca_file: String,
    /// Client certificate and key (PEM), when the server asks for one.
    pub tls_cert_file: String,
    pub tls_key_file: String,
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
    /// `dev-signing.key` in `data_dir`. Refused by the production profile.
    #[serde(serialize_with = "never_serialize_secret")]
    pub dev_key: SecretString,
    /// The identity provider; set `oidc.issuer` to use it.
    pub oidc: OidcSettings,
}

/// OpenID Connect access tokens (RS256, ES256 or EdDSA) checked against the
/// provider's published keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OidcSettings {
    /// Expected `iss`; empty disables OIDC (development tokens only).
    pub issuer: String,
    /// Expected `aud`.
    pub audience: String,
    /// Where the JWKS is published (`https://idp/.well-known/jwks.json`)…
    pub jwks_url: String,
    /// …or a file holding it (air-gapped installations).
    pub jwks_file: String,
    /// How long fetched keys are trusted before they are fetched again; an
    /// unknown key id fetches at once (at most once per `jwks_min_refresh_secs`).
    pub jwks_refresh_secs: u64,
    pub jwks_min_refresh_secs: u64,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// Claim naming the person (dotted path into nested claims).
    pub subject_claim: String,
    /// Claim holding the organisation id (a UUID).
    pub organization_claim: String,
    /// Claim holding the roles (an array of strings, or one space-separated
    /// string).
    pub roles_claim: String,
    /// Prefix stripped from role names (`renkei:`), for providers whose
    /// roles are shared with other applications.
    pub role_prefix: String,
}

/// Per-organisation request limits (a token bucket per organisation).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RateLimitSettings {
    /// Sustained requests per second; 0 disables the limit.
    pub per_second: u32,
    /// Requests allowed at once above the sustained rate.
    pub burst: u32,
}

/// The tamper-evident audit record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditSettings {
    /// Ed25519 signing key (hex seed) for chain heads. Empty means: read
    /// (or create on first start) `audit-signing.key` in `data_dir`.
    #[serde(serialize_with = "never_serialize_secret")]
    pub signing_key: SecretString,
    /// How often each service signs and publishes its chain head.
    pub head_interval_secs: u64,
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
    /// Key that signs acknowledgement links; every contacts replica needs the
    /// same one. Empty: the development key (refused by the production
    /// profile, which needs this set).
    #[serde(serialize_with = "never_serialize_secret")]
    pub link_key: SecretString,
    pub smtp: SmtpSettings,
    pub delivery: DeliverySettings,
}

/// The web console (`/console`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsoleSettings {
    /// The services' API the console calls with the signed-in user's token
    /// (one address for all four, such as a gateway). Empty: the server the
    /// console itself is mounted on (`renkei up`).
    pub api_url: String,
    /// Where each service answers when they run apart (compose,
    /// Kubernetes); empty: `api_url`.
    pub registry_url: String,
    pub demarcation_url: String,
    pub contacts_url: String,
    pub emergency_url: String,
    /// The address people's browsers reach the console at, for the identity
    /// provider's redirect. Empty: `contacts.public_url`.
    pub public_url: String,
    /// Key (at least 32 characters) that signs and encrypts the session
    /// cookie; every console replica needs the same one. Empty: a key kept
    /// in the data directory (refused by the production profile).
    #[serde(serialize_with = "never_serialize_secret")]
    pub session_key: SecretString,
    /// Dates are shown in this IANA time zone until a user picks another.
    pub time_zone: String,
    /// Sign-in through `auth.oidc.issuer` (authorization code with PKCE):
    /// this installation's client id there. Empty: no single sign-on.
    pub oidc_client_id: String,
    #[serde(serialize_with = "never_serialize_secret")]
    pub oidc_client_secret: SecretString,
    /// Scopes asked for beside `openid`.
    pub oidc_scopes: Vec<String>,
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
            profile: Profile::Development,
            data_dir: PathBuf::from(".renkei"),
            http: HttpSettings {
                listen: "127.0.0.1:8080".into(),
                workers: 0,
                body_limit_bytes: 1024 * 1024,
                metrics: true,
            },
            database: DatabaseSettings {
                url: String::new(),
                max_connections: 8,
            },
            nats: NatsSettings {
                url: "nats://127.0.0.1:4222".into(),
                request_timeout_ms: 2_000,
                stream_replicas: 1,
                user: String::new(),
                password: SecretString::from(String::new()),
                credentials_file: String::new(),
                tls_ca_file: String::new(),
                tls_cert_file: String::new(),
                tls_key_file: String::new(),
            },
            telemetry: TelemetrySettings {
                format: LogFormat::Human,
                filter: "info".into(),
                otlp_endpoint: String::new(),
            },
            auth: AuthSettings {
                dev_key: SecretString::from(String::new()),
                oidc: OidcSettings {
                    issuer: String::new(),
                    audience: String::new(),
                    jwks_url: String::new(),
                    jwks_file: String::new(),
                    jwks_refresh_secs: 3_600,
                    jwks_min_refresh_secs: 30,
                    leeway_secs: 30,
                    subject_claim: "sub".into(),
                    organization_claim: "org".into(),
                    roles_claim: "roles".into(),
                    role_prefix: String::new(),
                },
            },
            outbox: OutboxSettings {
                sweep_interval_ms: 2_000,
                batch_size: 256,
            },
            contacts: ContactsSettings {
                public_url: String::new(),
                link_key: SecretString::from(String::new()),
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
            rate_limit: RateLimitSettings {
                per_second: 20,
                burst: 100,
            },
            audit: AuditSettings {
                signing_key: SecretString::from(String::new()),
                head_interval_secs: 60,
            },
            console: ConsoleSettings {
                api_url: String::new(),
                registry_url: String::new(),
                demarcation_url: String::new(),
                contacts_url: String::new(),
                emergency_url: String::new(),
                public_url: String::new(),
                session_key: SecretString::from(String::new()),
                time_zone: "Asia/Tokyo".into(),
                oidc_client_id: String::new(),
                oidc_client_secret: SecretString::from(String::new()),
                oidc_scopes: vec!["profile".into()],
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
        for (key, url) in [
            ("console.api_url", &self.console.api_url),
            ("console.registry_url", &self.console.registry_url),
            ("console.demarcation_url", &self.console.demarcation_url),
            ("console.contacts_url", &self.console.contacts_url),
            ("console.emergency_url", &self.console.emergency_url),
            ("console.public_url", &self.console.public_url),
        ] {
            if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
                return invalid(key, "expected http(s)://host[:port], or empty");
            }
        }
        if self.console.time_zone.is_empty() {
            return invalid(
                "console.time_zone",
                "expected an IANA time zone such as Asia/Tokyo",
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
        self.validate_security()
    }

    /// Identities, limits, the audit record and the bus credentials.
    fn validate_security(&self) -> Result<(), SettingsError> {
        use secrecy::ExposeSecret as _;
        let invalid = |key, reason: &str| {
            Err(SettingsError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        let oidc = &self.auth.oidc;
        if !oidc.issuer.is_empty() {
            if oidc.audience.is_empty() {
                return invalid(
                    "auth.oidc.audience",
                    "required when auth.oidc.issuer is set",
                );
            }
            if oidc.jwks_url.is_empty() == oidc.jwks_file.is_empty() {
                return invalid(
                    "auth.oidc.jwks_url",
                    "set exactly one of auth.oidc.jwks_url and auth.oidc.jwks_file",
                );
            }
            let url = oidc.jwks_url.as_str();
            if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
                return invalid("auth.oidc.jwks_url", "expected https://…");
            }
            for (key, claim) in [
                ("auth.oidc.subject_claim", &oidc.subject_claim),
                ("auth.oidc.organization_claim", &oidc.organization_claim),
                ("auth.oidc.roles_claim", &oidc.roles_claim),
            ] {
                if claim.is_empty() {
                    return invalid(key, "must name a claim");
                }
            }
            if oidc.jwks_refresh_secs == 0 {
                return invalid("auth.oidc.jwks_refresh_secs", "must be greater than 0");
            }
            if oidc.leeway_secs > 300 {
                return invalid("auth.oidc.leeway_secs", "at most 300 (five minutes)");
            }
        }
        let session_key = self.console.session_key.expose_secret();
        if !session_key.is_empty() && session_key.len() < 32 {
            return invalid("console.session_key", "at least 32 characters");
        }
        if self.profile == Profile::Production {
            if !self.auth.dev_key.expose_secret().is_empty() {
                return invalid(
                    "auth.dev_key",
                    "symmetric keys are for development only; the production profile takes tokens from auth.oidc",
                );
            }
            if oidc.issuer.is_empty() {
                return invalid(
                    "auth.oidc.issuer",
                    "the production profile needs an identity provider",
                );
            }
        }
        if self.rate_limit.per_second > 0 && self.rate_limit.burst == 0 {
            return invalid(
                "rate_limit.burst",
                "must be at least 1 when rate_limit.per_second is set",
            );
        }
        if self.audit.head_interval_secs == 0 {
            return invalid("audit.head_interval_secs", "must be greater than 0");
        }
        let nats = &self.nats;
        if !nats.user.is_empty() && !nats.credentials_file.is_empty() {
            return invalid(
                "nats.credentials_file",
                "set either nats.user (with nats.password) or nats.credentials_file, not both",
            );
        }
        if nats.tls_cert_file.is_empty() != nats.tls_key_file.is_empty() {
            return invalid(
                "nats.tls_key_file",
                "nats.tls_cert_file and nats.tls_key_file go together",
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

    #[test]
    fn the_production_profile_refuses_a_symmetric_key_and_needs_an_identity_provider() {
        let load = |overrides: Vec<(&'static str, &str)>| {
            Settings::load(&Sources {
                overrides: overrides
                    .into_iter()
                    .map(|(k, v)| (k, v.to_owned()))
                    .collect(),
                ..Default::default()
            })
        };
        let oidc = [
            ("profile", "production"),
            ("auth.oidc.issuer", "https://idp.example.go.jp"),
            ("auth.oidc.audience", "renkei"),
            ("auth.oidc.jwks_url", "https://idp.example.go.jp/jwks.json"),
        ];
        load(oidc.to_vec()).expect("production with an identity provider starts");
        let mut with_key = oidc.to_vec();
        with_key.push(("auth.dev_key", "hunter2"));
        let err = load(with_key).expect_err("a symmetric key is refused");
        assert!(err.to_string().contains("auth.dev_key"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = load(vec![("profile", "production")]).expect_err("no provider");
        assert!(err.to_string().contains("auth.oidc.issuer"), "{err}");
        load(vec![("auth.dev_key", "dev only")]).expect("development keeps its key");
    }

    #[test]
    fn the_rate_limit_defaults_follow_the_issue() {
        let s = Settings::load(&Sources::default()).expect("defaults load");
        assert_eq!((s.rate_limit.per_second, s.rate_limit.burst), (20, 100));
    }
}
