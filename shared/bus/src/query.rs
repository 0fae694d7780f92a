//! Typed request/reply queries between services, with timeouts.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::headers;

/// A question one service asks another.
pub trait Query: Serialize + DeserializeOwned + Send + 'static {
    /// From [`crate::subjects`].
    const SUBJECT: &'static str;
    type Response: Serialize + DeserializeOwned + Send + 'static;
}

/// A refusal by the answering service (not found, invalid question).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct QueryFailure {
    /// Stable snake_case code, as in HTTP problem bodies.
    pub code: String,
    pub message: String,
}

impl QueryFailure {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        QueryFailure {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply<T> {
    Ok(T),
    Error(QueryFailure),
}

/// Why a query got no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("no answer to {subject} within {timeout_ms} ms")]
    Timeout {
        subject: &'static str,
        timeout_ms: u128,
    },
    #[error("no service answers {0}")]
    NoResponders(&'static str),
    #[error("query {subject} failed: {reason}")]
    Transport {
        subject: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Refused(QueryFailure),
    #[error("answer to {subject} could not be read: {reason}")]
    Malformed {
        subject: &'static str,
        reason: String,
    },
}

/// Asks `query` and waits at most `timeout`.
#[tracing::instrument(skip_all, fields(subject = Q::SUBJECT))]
pub async fn request<Q: Query>(
    client: &async_nats::Client,
    query: &Q,
    timeout: Duration,
) -> Result<Q::Response, QueryError> {
    let body = serde_json::to_vec(query).map_err(|e| QueryError::Malformed {
        subject: Q::SUBJECT,
        reason: e.to_string(),
    })?;
    // Without a connection the request would only wait out its timeout in
    // the client's buffer: say so at once (a declaration during a broker
    // outage is answered in milliseconds, its assessment left to the worker).
    if !crate::nats::is_connected(client) {
        return Err(QueryError::Transport {
            subject: Q::SUBJECT,
            reason: "NATS is not connected".into(),
        });
    }
    let headers = headers::to_headers(&renkei_telemetry::inject(&tracing::Span::current()));
    let answer = tokio::time::timeout(
        timeout,
        client.request_with_headers(Q::SUBJECT, headers, Bytes::from(body)),
    )
    .await
    .map_err(|_| QueryError::Timeout {
        subject: Q::SUBJECT,
        timeout_ms: timeout.as_millis(),
    })?
    .map_err(|e| match e.kind() {
        async_nats::RequestErrorKind::NoResponders => QueryError::NoResponders(Q::SUBJECT),
        async_nats::RequestErrorKind::TimedOut => QueryError::Timeout {
            subject: Q::SUBJECT,
            timeout_ms: timeout.as_millis(),
        },
        _ => QueryError::Transport {
            subject: Q::SUBJECT,
            reason: e.to_string(),
        },
    })?;
    match serde_json::from_slice::<Reply<Q::Response>>(&answer.payload) {
        Ok(Reply::Ok(response)) => Ok(response),
        Ok(Reply::Error(failure)) => Err(QueryError::Refused(failure)),
        Err(e) => Err(QueryError::Malformed {
            subject: Q::SUBJECT,
            reason: e.to_string(),
        }),
    }
}

/// [`serve`] as a background task of `tasks`, logging why it stopped if
/// it stops before `cancel`.
pub fn spawn_responder<Q, F, Fut>(
    tasks: &mut tokio::task::JoinSet<()>,
    client: async_nats::Client,
    queue_group: &'static str,
    handler: F,
    cancel: CancellationToken,
) where
    Q: Query,
    F: Fn(Q) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Q::Response, QueryFailure>> + Send + 'static,
{
    tasks.spawn(async move {
        if let Err(error) = serve::<Q, F, Fut>(client, queue_group, handler, cancel).await {
            tracing::error!(subject = Q::SUBJECT, error = %format!("{error:#}"), "query responder stopped");
        }
    });
}

/// Answers `Q` with `handler` until `cancel`; replicas share the load
/// through the queue group.
pub async fn serve<Q, F, Fut>(
    client: async_nats::Client,
    queue_group: &str,
    handler: F,
    cancel: CancellationToken,
) -> anyhow::Result<()>
where
    Q: Query,
    F: Fn(Q) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Q::Response, QueryFailure>> + Send,
{
    let mut requests = client
        .queue_subscribe(Q::SUBJECT, queue_group.to_owned())
        .await?;
    loop {
        let message = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            m = requests.next() => match m { Some(m) => m, None => return Ok(()) },
        };
        let Some(reply_to) = message.reply.clone() else {
            continue;
        };
        let client = client.clone();
        let handler = handler.clone();
        let span = tracing::info_span!("query.serve", subject = Q::SUBJECT);
        renkei_telemetry::adopt(&span, &headers::from_headers(message.headers.as_ref()));
        tokio::spawn(
            async move {
                let reply = match serde_json::from_slice::<Q>(&message.payload) {
                    Ok(query) => match handler(query).await {
                        Ok(response) => Reply::Ok(response),
                        Err(failure) => Reply::Error(failure),
                    },
                    Err(e) => Reply::Error(QueryFailure::new("invalid_query", e.to_string())),
                };
                match serde_json::to_vec(&reply) {
                    Ok(body) => {
                        if let Err(error) = client.publish(reply_to, body.into()).await {
                            tracing::warn!(%error, "query reply could not be sent");
                        }
                    }
                    Err(error) => tracing::error!(%error, "query reply could not be encoded"),
                }
            }
            .instrument(span),
        );
    }
}
