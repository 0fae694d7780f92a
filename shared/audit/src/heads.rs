//! Signed heads on NATS: each service (each replica) signs its chain head
//! every `audit.head_interval_secs` when it moved (and at start) and
//! publishes it on `audit.head.<service>` in the `AUDIT` stream, where every
//! organisation can keep a copy; and reading them back.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use chrono::Utc;
use ed25519_dalek::SigningKey;
use futures::StreamExt as _;
use renkei_bus::headers::MSG_ID;
use renkei_bus::subjects::{self, AUDIT_STREAM};
use renkei_store::Db;
use tokio_util::sync::CancellationToken;

use crate::head::SignedHead;
use crate::store;

/// Publishes one service's signed heads.
pub struct HeadPublisher {
    pub service: &'static str,
    pub db: Db,
    pub js: jetstream::Context,
    pub key: SigningKey,
    pub interval: Duration,
}

impl HeadPublisher {
    /// Signs and publishes at start and then every interval when the head
    /// moved, until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        let mut published = None;
        loop {
            match self.publish_if_moved(published).await {
                Ok(Some(seq)) => published = Some(seq),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(service = self.service, error = %format!("{error:#}"), "audit head not published; will retry");
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// Publishes the current head unless it is empty or `published` already;
    /// the number published, if any.
    pub async fn publish_if_moved(&self, published: Option<i64>) -> anyhow::Result<Option<i64>> {
        let head = store::recorded(&self.db.read).await?;
        if head.seq == 0 || Some(head.seq) == published {
            return Ok(None);
        }
        let signed = SignedHead::sign(&self.key, self.service, head.seq, &head.hash, Utc::now());
        publish(&self.js, &signed).await?;
        tracing::debug!(
            service = self.service,
            seq = head.seq,
            "audit head signed and published"
        );
        Ok(Some(head.seq))
    }
}

/// Publishes `head` on its service's subject; replicas publishing the same
/// head at once store it once (`Nats-Msg-Id`).
pub async fn publish(js: &jetstream::Context, head: &SignedHead) -> anyhow::Result<()> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        MSG_ID,
        format!("audit-head-{}-{}-{}", head.service, head.seq, head.hash).as_str(),
    );
    let payload = serde_json::to_vec(head)?;
    js.publish_with_headers(
        subjects::audit_head(&head.service),
        headers,
        Bytes::from(payload),
    )
    .await
    .context("audit head could not be published")?
    .await
    .context("audit head was not stored by JetStream")?;
    Ok(())
}

/// The newest head of each of `services` in the AUDIT stream (a service
/// that has published none is left out).
pub async fn latest(
    client: &async_nats::Client,
    services: &[&str],
) -> anyhow::Result<Vec<SignedHead>> {
    let js = jetstream::new(client.clone());
    let stream = js
        .get_stream_no_info(AUDIT_STREAM.name)
        .await
        .context("the AUDIT stream cannot be read")?;
    let mut heads = Vec::new();
    for service in services {
        match stream
            .get_last_raw_message_by_subject(&subjects::audit_head(service))
            .await
        {
            Ok(message) => heads.push(
                serde_json::from_slice(&message.payload)
                    .with_context(|| format!("a head of {service} cannot be read"))?,
            ),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {}
            Err(e) => return Err(e).context("the AUDIT stream cannot be read"),
        }
    }
    Ok(heads)
}

/// Every head in the AUDIT stream (of `service` only, when given), oldest
/// first: what an organisation keeps.
pub async fn all(
    client: &async_nats::Client,
    service: Option<&str>,
) -> anyhow::Result<Vec<SignedHead>> {
    let js = jetstream::new(client.clone());
    let mut stream = js
        .get_stream(AUDIT_STREAM.name)
        .await
        .context("the AUDIT stream cannot be read")?;
    let filter = service.map_or_else(|| "audit.head.>".to_owned(), subjects::audit_head);
    let stored = stream.info().await?.state.messages;
    if stored == 0 {
        return Ok(Vec::new());
    }
    let reader = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: filter,
            ..Default::default()
        })
        .await
        .context("the AUDIT stream cannot be read")?;
    let mut messages = reader.messages().await?;
    let mut heads = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), messages.next()).await;
        let message = match next {
            // Nothing more within the wait: everything was read.
            Err(_) | Ok(None) => break,
            Ok(Some(message)) => message?,
        };
        heads.push(
            serde_json::from_slice(&message.payload)
                .with_context(|| format!("the head on {} cannot be read", message.subject))?,
        );
        if message.info().map(|i| i.pending == 0).unwrap_or(false) {
            break;
        }
    }
    Ok(heads)
}
