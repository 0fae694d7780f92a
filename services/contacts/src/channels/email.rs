//! Email through an SMTP relay (lettre): plain UTF-8 text, the title as the
//! subject, the acknowledgement link in the text.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use renkei_settings::{DeliverySettings, SmtpSettings, SmtpTls};
use secrecy::ExposeSecret as _;

use super::{Adapter, Outgoing, SendError};
use crate::domain::Channel;

pub struct Email {
    /// None when no relay is configured: email deliveries fail at once and
    /// escalate, with an error saying what to set.
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: lettre::message::Mailbox,
}

impl Email {
    pub fn new(smtp: &SmtpSettings, delivery: &DeliverySettings) -> anyhow::Result<Email> {
        use anyhow::Context as _;
        let from = smtp
            .from
            .parse()
            .with_context(|| format!("contacts.smtp.from: `{}` is not an address", smtp.from))?;
        if smtp.host.is_empty() {
            return Ok(Email {
                transport: None,
                from,
            });
        }
        let builder = match smtp.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
                .context("contacts.smtp.host")?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)
                .context("contacts.smtp.host")?,
        };
        let mut builder = builder
            .port(smtp.port)
            .timeout(Some(Duration::from_millis(delivery.timeout_ms)));
        if !smtp.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                smtp.username.clone(),
                smtp.password.expose_secret().to_owned(),
            ));
        }
        Ok(Email {
            transport: Some(builder.build()),
            from,
        })
    }
}

#[async_trait::async_trait]
impl Adapter for Email {
    fn kind(&self) -> &'static str {
        "email"
    }

    async fn send(&self, channel: &Channel, message: &Outgoing) -> Result<String, SendError> {
        let Channel::Email { address } = channel else {
            return Err(SendError::Permanent("not an email channel".into()));
        };
        let Some(transport) = &self.transport else {
            return Err(SendError::Permanent(
                "email is not configured: set contacts.smtp.host".into(),
            ));
        };
        let to = address
            .parse()
            .map_err(|e| SendError::Permanent(format!("`{address}`: {e}")))?;
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&message.title)
            .header(ContentType::TEXT_PLAIN)
            .body(message.text.clone())
            .map_err(|e| SendError::Permanent(format!("message could not be built: {e}")))?;
        match transport.send(email).await {
            Ok(response) => Ok(format!(
                "SMTP {} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            )),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(format!("SMTP: {e}"))),
            Err(e) => Err(SendError::Retry(format!("SMTP: {e}"))),
        }
    }
}
