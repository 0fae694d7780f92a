//! Connecting to NATS and declaring streams.
//!
//! On a locked-down bus (see `deploy/nats`) each service is a NATS user of
//! its own: it connects with `nats.user` and `nats.password` (or a
//! `nats.credentials_file`), over TLS checked against `nats.tls_ca_file`,
//! and its replies arrive under an inbox of its own (`_INBOX.<user>.…`), so
//! the server can keep every other user out of them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};
use async_nats::{ConnectErrorKind, ConnectOptions, Event, ServerError};
use renkei_settings::NatsSettings;
use secrecy::ExposeSecret as _;

use crate::subjects::StreamSpec;

/// Connects, retrying in the background if the server is not up yet, and
/// reconnecting for ever after a broker restart.
///
/// The first attempt is made at once: a password, credentials file or
/// certificate the server refuses is a configuration error, reported here
/// naming its setting (never its value). A server that does not answer yet
/// is retried in the background, as before.
pub async fn connect(settings: &NatsSettings, name: &str) -> anyhow::Result<async_nats::Client> {
    // The client builds its TLS configuration from the process's default
    // provider, which rustls cannot choose when several are compiled in
    // (ring for NATS, aws-lc-rs through reqwest): name one. A provider
    // installed before stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = redacted(&settings.url);
    // Credentials written into the URL are passed as such, never in the
    // address: the client logs its server addresses at debug level.
    let (address, _) = split_credentials(&settings.url);
    let first = options(settings, name)
        .await?
        .connect(address.as_str())
        .await;
    match first {
        Ok(client) => Ok(client),
        Err(error) => {
            let refused = |setting: &str| {
                anyhow::anyhow!(
                    "{setting}: the NATS server at {url} refused the connection: {error}"
                )
            };
            if is_tls_failure(&error) {
                return Err(refused(
                    "nats.tls_ca_file / nats.tls_cert_file / nats.tls_key_file (TLS)",
                ));
            }
            match error.kind() {
                ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
                    Err(refused(credentials_setting(settings)))
                }
                ConnectErrorKind::ServerParse => Err(refused("nats.url")),
                _ => {
                    tracing::warn!(nats.url = %url, %error, "NATS does not answer yet; retrying in the background");
                    options(settings, name)
                        .await?
                        .retry_on_initial_connect()
                        .connect(address.as_str())
                        .await
                        .with_context(|| format!("nats.url: cannot connect to {url}"))
                }
            }
        }
    }
}

/// Whether `error` is a TLS handshake the client or the server refused (a
/// certificate not signed by the configured CA, a client certificate
/// missing): the client reports those as I/O errors, but retrying will not
/// help.
fn is_tls_failure(error: &async_nats::ConnectError) -> bool {
    if error.kind() == ConnectErrorKind::Tls {
        return true;
    }
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        if inner.is::<rustls::Error>()
            || inner
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|e| e.is::<rustls::Error>())
        {
            return true;
        }
        source = inner.source();
    }
    false
}

/// The setting holding the credentials the client presents, for messages.
fn credentials_setting(settings: &NatsSettings) -> &'static str {
    if settings.credentials_file.is_empty() {
        "nats.user / nats.password"
    } else {
        "nats.credentials_file"
    }
}

/// Whether `client` is connected to the server now (a request or publish
/// made otherwise waits in the client's buffer until it reconnects).
pub fn is_connected(client: &async_nats::Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}

/// How long the client waits before its `attempts`-th reconnection: at once,
/// then doubling from 10 ms up to [`RECONNECT_DELAY_MAX`]. (The client's own
/// default climbs to 4 s, so after an outage of ten seconds every service
/// stayed away for up to 4 s more, its outbox and alerts waiting.) A dozen
/// service connections trying once a second load a recovering server with
/// nothing.
fn reconnect_delay(attempts: usize) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let doublings = u32::try_from(attempts - 2).unwrap_or(u32::MAX);
    Duration::from_millis(10u64.saturating_mul(2u64.saturating_pow(doublings)))
        .min(RECONNECT_DELAY_MAX)
}

/// The longest wait between two reconnection attempts.
const RECONNECT_DELAY_MAX: Duration = Duration::from_millis(500);

/// Everything [`connect`] tells the client, for one attempt.
async fn options(settings: &NatsSettings, name: &str) -> anyhow::Result<ConnectOptions> {
    let credentials = credentials_setting(settings);
    let mut options = ConnectOptions::new()
        .name(name)
        .max_reconnects(None)
        .reconnect_delay_callback(reconnect_delay)
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Some(Duration::from_millis(settings.request_timeout_ms)))
        .event_callback(move |event| async move { log_event(&event, credentials) });
    if !settings.user.is_empty() {
        options = options
            .user_and_password(
                settings.user.clone(),
                settings.password.expose_secret().to_owned(),
            )
            .custom_inbox_prefix(inbox_prefix(&settings.user)?);
    } else if settings.credentials_file.is_empty() {
        match split_credentials(&settings.url).1 {
            Some(UrlCredentials::UserPassword(user, password)) => {
                options = options.user_and_password(user, password);
            }
            Some(UrlCredentials::Token(token)) => options = options.token(token),
            None => {}
        }
    }
    if !settings.credentials_file.is_empty() {
        let path = readable("nats.credentials_file", &settings.credentials_file)?;
        // The error of a bad file names the file, never its content.
        options = ConnectOptions::credentials_file(options, &path)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "nats.credentials_file: {} is not a NATS credentials file ({})",
                    path.display(),
                    e.kind()
                )
            })?;
    }
    if !settings.tls_ca_file.is_empty() {
        options = options
            .add_root_certificates(readable("nats.tls_ca_file", &settings.tls_ca_file)?)
            .require_tls(true);
    }
    if !settings.tls_cert_file.is_empty() {
        options = options
            .add_client_certificate(
                readable("nats.tls_cert_file", &settings.tls_cert_file)?,
                readable("nats.tls_key_file", &settings.tls_key_file)?,
            )
            .require_tls(true);
    }
    if settings.url.starts_with("tls://") {
        options = options.require_tls(true);
    }
    Ok(options)
}

/// The inbox prefix of `user`: `_INBOX.<user>`, which the server's
/// permissions give to that user alone.
pub fn inbox_prefix(user: &str) -> anyhow::Result<String> {
    if user
        .chars()
        .any(|c| c == '.' || c == '*' || c == '>' || c.is_whitespace())
    {
        anyhow::bail!("nats.user: `{user}` must not contain '.', '*', '>' or spaces");
    }
    Ok(format!("_INBOX.{user}"))
}

fn readable(setting: &str, path: &str) -> anyhow::Result<PathBuf> {
    let path = Path::new(path);
    std::fs::File::open(path)
        .map(|_| path.to_owned())
        .with_context(|| format!("{setting}: cannot read {}", path.display()))
}

/// What a URL's `user:password@` or `token@` says.
#[derive(Debug, PartialEq, Eq)]
enum UrlCredentials {
    UserPassword(String, String),
    Token(String),
}

/// Each address of `url` (one or several, comma-separated) cut around its
/// `user:password@` or `token@`: (`scheme://`, what is before the `@`, the
/// rest); an address without one is `("", None, address)`.
fn addresses(url: &str) -> impl Iterator<Item = (&str, Option<&str>, &str)> {
    url.split(',')
        .map(|one| match (one.find("://"), one.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => (
                &one[..scheme + 3],
                Some(&one[scheme + 3..at]),
                &one[at + 1..],
            ),
            _ => ("", None, one),
        })
}

/// `url` without credentials, and the first credentials it held.
fn split_credentials(url: &str) -> (String, Option<UrlCredentials>) {
    let mut found = None;
    let stripped: Vec<String> = addresses(url)
        .map(|(scheme, userinfo, rest)| {
            if let Some(userinfo) = userinfo.filter(|u| !u.is_empty()) {
                found.get_or_insert_with(|| match userinfo.split_once(':') {
                    Some((user, password)) => {
                        UrlCredentials::UserPassword(user.to_owned(), password.to_owned())
                    }
                    None => UrlCredentials::Token(userinfo.to_owned()),
                });
            }
            format!("{scheme}{rest}")
        })
        .collect();
    (stripped.join(","), found)
}

/// `url` without a password or token (`nats://user:pw@host` →
/// `nats://user:***@host`, `nats://token@host` → `nats://***@host`).
pub fn redacted(url: &str) -> String {
    addresses(url)
        .map(|(scheme, userinfo, rest)| match userinfo {
            Some(userinfo) => match userinfo.split_once(':') {
                Some((user, _)) => format!("{scheme}{user}:***@{rest}"),
                None => format!("{scheme}***@{rest}"),
            },
            None => format!("{scheme}{rest}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// What the bus says about this connection, in the service's log. A
/// permissions violation is the server refusing a subject this user may not
/// use: a bug or a wrong `deploy/nats` configuration, never routine.
fn log_event(event: &Event, credentials: &str) {
    match event {
        Event::Connected => tracing::debug!("NATS connected"),
        Event::Disconnected => tracing::warn!("NATS disconnected; reconnecting"),
        Event::ServerError(ServerError::AuthorizationViolation) => {
            tracing::error!("NATS refused {credentials} (authorization violation)")
        }
        Event::ServerError(error) => tracing::error!(%error, "NATS server error"),
        Event::ClientError(error) => tracing::warn!(%error, "NATS client error"),
        other => tracing::info!(event = %other, "NATS"),
    }
}

/// The configuration every stream of the product is declared with.
pub fn stream_config(spec: &StreamSpec, replicas: usize) -> stream::Config {
    stream::Config {
        name: spec.name.to_owned(),
        subjects: spec.subjects.iter().map(|s| (*s).to_owned()).collect(),
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        max_age: Duration::from_secs(spec.max_age_days * 24 * 3600),
        duplicate_window: Duration::from_secs(120),
        num_replicas: replicas,
        ..Default::default()
    }
}

/// Creates or updates `specs`: what the owner of a stream does.
pub async fn ensure_streams(
    client: &async_nats::Client,
    replicas: usize,
    specs: &[StreamSpec],
) -> anyhow::Result<()> {
    let js = jetstream::new(client.clone());
    for spec in specs {
        js.create_or_update_stream(stream_config(spec, replicas))
            .await
            .with_context(|| format!("JetStream stream {} could not be declared", spec.name))?;
    }
    Ok(())
}

/// Whether `service` owns `spec`: every subject it captures is the
/// service's own (`<service>.…`).
pub fn owns(service: &str, spec: &StreamSpec) -> bool {
    spec.subjects.iter().all(|s| {
        s.strip_prefix(service)
            .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// What a service declares at start: its own streams are created or
/// updated (their configuration follows the code); every other stream is
/// created when it is missing, with the same configuration, and never
/// changed (on the locked-down bus a service may create another's stream,
/// which the server refuses to do over an existing one with a different
/// configuration, but only the owner may update it).
pub async fn declare_streams(
    client: &async_nats::Client,
    replicas: usize,
    service: &str,
    specs: &[StreamSpec],
) -> anyhow::Result<()> {
    let js = jetstream::new(client.clone());
    for spec in specs {
        let config = stream_config(spec, replicas);
        let declared = if owns(service, spec) {
            js.create_or_update_stream(config).await.map(drop)
        } else {
            match js.create_stream(config).await {
                Err(e)
                    if matches!(e.kind(), jetstream::context::CreateStreamErrorKind::JetStream(ref j)
                        if j.error_code() == jetstream::ErrorCode::STREAM_NAME_EXIST) =>
                {
                    tracing::debug!(stream = spec.name, "kept as its owner declared it");
                    Ok(())
                }
                other => other.map(drop),
            }
        };
        declared
            .with_context(|| format!("JetStream stream {} could not be declared", spec.name))?;
    }
    Ok(())
}

/// Waits until JetStream answers (after a start or restart), up to `within`.
///
/// Asks `$JS.API.INFO` and only checks that the answer is not an error, so
/// that any server version with JetStream passes (the typed account info of
/// newer clients does not parse every older server's answer).
pub async fn wait_for_jetstream(
    client: &async_nats::Client,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let answer = client.request("$JS.API.INFO", bytes::Bytes::new()).await;
        let outcome = match answer {
            Ok(message) => match serde_json::from_slice::<serde_json::Value>(&message.payload) {
                Ok(info) if info.get("error").is_none() => return Ok(()),
                Ok(info) => anyhow::anyhow!("JetStream refused: {}", info["error"]),
                Err(e) => anyhow::anyhow!("JetStream answer unreadable: {e}"),
            },
            Err(e) => anyhow::anyhow!(e),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(outcome.context("JetStream is not available"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subjects::{
        CONTACTS_STREAM, DEMARCATION_STREAM, EMERGENCY_STREAM, REGISTRY_STREAM, STREAMS,
    };

    #[test]
    fn reconnection_starts_at_once_and_never_waits_more_than_half_a_second() {
        assert_eq!(reconnect_delay(0), Duration::ZERO);
        assert_eq!(reconnect_delay(1), Duration::ZERO);
        assert_eq!(reconnect_delay(2), Duration::from_millis(10));
        assert_eq!(reconnect_delay(3), Duration::from_millis(20));
        let delays: Vec<Duration> = (1..10_000).map(reconnect_delay).collect();
        assert!(
            delays.windows(2).all(|w| w[0] <= w[1]),
            "never shorter again"
        );
        assert_eq!(delays.last(), Some(&RECONNECT_DELAY_MAX));
        assert_eq!(reconnect_delay(usize::MAX), RECONNECT_DELAY_MAX);
    }

    #[test]
    fn a_password_in_a_url_is_never_shown() {
        assert_eq!(
            redacted("nats://registry:hunter2@nats-1:4222"),
            "nats://registry:***@nats-1:4222"
        );
        assert_eq!(
            redacted("tls://a:pw@n1:4222,tls://b:pw@n2:4222"),
            "tls://a:***@n1:4222,tls://b:***@n2:4222"
        );
        assert_eq!(
            redacted("nats://s3cr3t-token@n1:4222"),
            "nats://***@n1:4222"
        );
        assert_eq!(redacted("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
    }

    #[test]
    fn credentials_in_a_url_are_taken_out_of_the_address() {
        assert_eq!(
            split_credentials("nats://renkei:hunter2@127.0.0.1:4222"),
            (
                "nats://127.0.0.1:4222".to_owned(),
                Some(UrlCredentials::UserPassword(
                    "renkei".into(),
                    "hunter2".into()
                ))
            )
        );
        assert_eq!(
            split_credentials("tls://s3cr3t@n1:4222,tls://n2:4222"),
            (
                "tls://n1:4222,tls://n2:4222".to_owned(),
                Some(UrlCredentials::Token("s3cr3t".into()))
            )
        );
        assert_eq!(
            split_credentials("nats://n1:4222"),
            ("nats://n1:4222".to_owned(), None)
        );
    }

    #[test]
    fn each_service_owns_its_own_stream_only() {
        for (service, own) in [
            ("registry", REGISTRY_STREAM),
            ("demarcation", DEMARCATION_STREAM),
            ("contacts", CONTACTS_STREAM),
            ("emergency", EMERGENCY_STREAM),
        ] {
            let owned: Vec<&str> = STREAMS
                .iter()
                .filter(|s| owns(service, s))
                .map(|s| s.name)
                .collect();
            assert_eq!(owned, [own.name], "{service}");
        }
        assert!(!owns("registr", &REGISTRY_STREAM));
    }

    #[test]
    fn an_inbox_is_named_after_its_user() {
        assert_eq!(inbox_prefix("registry").expect("plain"), "_INBOX.registry");
        let error = inbox_prefix("a.b").expect_err("a dot would widen the inbox");
        assert!(error.to_string().contains("nats.user"), "{error}");
    }

    #[tokio::test]
    async fn an_unreadable_ca_file_is_named() {
        let mut settings = renkei_settings::Settings::default().nats;
        settings.tls_ca_file = "/nonexistent/ca.pem".into();
        let error = connect(&settings, "test")
            .await
            .expect_err("no CA file, no connection");
        let text = format!("{error:#}");
        assert!(text.contains("nats.tls_ca_file"), "{text}");
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_credentials_file_is_named_never_shown() {
        let secret = format!("not-a-creds-file-{}", uuid::Uuid::now_v7().simple());
        let path = std::env::temp_dir().join(format!("{secret}.creds"));
        std::fs::write(&path, format!("{secret}\n")).expect("written");
        let mut settings = renkei_settings::Settings::default().nats;
        settings.credentials_file = path.display().to_string();
        let error = connect(&settings, "test")
            .await
            .expect_err("no credentials, no connection");
        std::fs::remove_file(&path).expect("removed");
        let text = format!("{error:#}").replace(&path.display().to_string(), "<path>");
        assert!(text.contains("nats.credentials_file"), "{text}");
        assert!(!text.contains(&secret), "{text}");
    }
}
