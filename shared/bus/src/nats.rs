//! Connecting to NATS and declaring streams.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};
use renkei_settings::NatsSettings;

use crate::subjects::StreamSpec;

/// Connects, retrying in the background if the server is not up yet, and
/// reconnecting for ever after a broker restart.
pub async fn connect(settings: &NatsSettings, name: &str) -> anyhow::Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Some(Duration::from_millis(settings.request_timeout_ms)))
        .connect(settings.url.as_str())
        .await
        .with_context(|| format!("nats.url: cannot connect to {}", settings.url))
}

/// Creates or updates `specs`; safe to run at every start of every replica.
pub async fn ensure_streams(
    client: &async_nats::Client,
    replicas: usize,
    specs: &[StreamSpec],
) -> anyhow::Result<()> {
    let js = jetstream::new(client.clone());
    for spec in specs {
        let config = stream::Config {
            name: spec.name.to_owned(),
            subjects: spec.subjects.iter().map(|s| (*s).to_owned()).collect(),
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            max_age: Duration::from_secs(30 * 24 * 3600),
            duplicate_window: Duration::from_secs(120),
            num_replicas: replicas,
            ..Default::default()
        };
        js.create_or_update_stream(config)
            .await
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
