//! Channels: how a message reaches a person. Each kind of channel is one
//! adapter behind [`Adapter`]; adding chat or an SMS gateway is one more
//! file here, one variant of `domain::Channel`, and one line in
//! [`Channels::new`].

pub mod email;
pub mod webhook;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{Channel, Language};

/// One message, ready to go out through any channel.
#[derive(Debug, Clone, Serialize)]
pub struct Outgoing {
    pub delivery_id: Uuid,
    pub notification_id: Uuid,
    /// The event subject that caused the notification.
    pub subject: String,
    pub topic: String,
    /// `ordinary` or `emergency`.
    pub condition: String,
    pub organization_id: Uuid,
    pub contact_id: Uuid,
    /// 1-based escalation step.
    pub step: u32,
    pub language: Language,
    pub title: String,
    /// The whole text, acknowledgement link included.
    pub text: String,
    /// POST to acknowledge for the organisation (GET shows a page).
    pub ack_url: String,
    /// Whether the organisation is asked to acknowledge (else it is only
    /// told; the link records that it read the message).
    pub ack_required: bool,
    /// The TLP marking (`TLP:AMBER+STRICT`…) of a notice about an incident
    /// or an advisory: receivers' tooling must honour it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tlp: Option<&'static str>,
    pub sent_at: DateTime<Utc>,
    pub incident_id: Option<Uuid>,
    pub platform_id: Option<Uuid>,
    /// The notification's trace: the attempt is a span of it.
    #[serde(skip)]
    pub trace: renkei_telemetry::Carrier,
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth another attempt later (timeouts, 5xx, a relay that is down).
    #[error("{0}")]
    Retry(String),
    /// Another attempt would fail the same way (a 4xx, a rejected address,
    /// a channel that is not configured).
    #[error("{0}")]
    Permanent(String),
}

/// A way of reaching people.
#[async_trait::async_trait]
pub trait Adapter: Send + Sync + 'static {
    /// The `kind` of the channels it serves.
    fn kind(&self) -> &'static str;

    /// Sends `message` through `channel`; on success, what the other end
    /// answered (`HTTP 200`, `250 OK`).
    async fn send(&self, channel: &Channel, message: &Outgoing) -> Result<String, SendError>;
}

/// Every adapter, by kind.
#[derive(Clone)]
pub struct Channels {
    adapters: HashMap<&'static str, Arc<dyn Adapter>>,
}

impl Channels {
    /// The channels of a running service, from its settings.
    pub fn new(settings: &renkei_settings::ContactsSettings) -> anyhow::Result<Channels> {
        Ok(Channels::with([
            Arc::new(webhook::Webhook::new(&settings.delivery)?) as Arc<dyn Adapter>,
            Arc::new(email::Email::new(&settings.smtp, &settings.delivery)?),
        ]))
    }

    pub fn with(adapters: impl IntoIterator<Item = Arc<dyn Adapter>>) -> Channels {
        Channels {
            adapters: adapters.into_iter().map(|a| (a.kind(), a)).collect(),
        }
    }

    pub async fn send(&self, channel: &Channel, message: &Outgoing) -> Result<String, SendError> {
        match self.adapters.get(channel.kind()) {
            Some(adapter) => adapter.send(channel, message).await,
            None => Err(SendError::Permanent(format!(
                "no adapter for {} channels",
                channel.kind()
            ))),
        }
    }
}
