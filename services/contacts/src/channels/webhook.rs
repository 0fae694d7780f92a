//! Webhooks: a JSON POST signed with HMAC-SHA256 over the timestamp and
//! the body, so receivers can check it came from Renkei and refuse replays.
//!
//! Headers: `X-Renkei-Timestamp` (Unix seconds), `X-Renkei-Signature`
//! (`v1=<hex of HMAC-SHA256(secret, "<timestamp>.<body>")>`) and
//! `X-Renkei-Delivery` (the delivery id; the same on every retry, for
//! receivers that de-duplicate). A receiver recomputes the signature over
//! the raw body and refuses timestamps more than five minutes old.

use std::time::Duration;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use super::{Adapter, Outgoing, SendError};
use crate::domain::Channel;

pub const SIGNATURE: &str = "x-renkei-signature";
pub const TIMESTAMP: &str = "x-renkei-timestamp";
pub const DELIVERY: &str = "x-renkei-delivery";

/// `v1=<hex>`: the signature of `body` sent at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// What a receiver does: whether `signature` is right for `body` at
/// `timestamp` (compared in constant time).
pub fn verify(secret: &str, timestamp: i64, body: &[u8], signature: &str) -> bool {
    let Some(hex_sig) = signature.strip_prefix("v1=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

pub struct Webhook {
    client: reqwest::Client,
}

impl Webhook {
    pub fn new(delivery: &renkei_settings::DeliverySettings) -> anyhow::Result<Webhook> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(delivery.timeout_ms))
            .connect_timeout(Duration::from_millis(delivery.timeout_ms.min(5_000)))
            .pool_max_idle_per_host(delivery.concurrency)
            .user_agent(concat!("renkei/", env!("CARGO_PKG_VERSION")))
            // A redirect would resend a signed body somewhere unchecked.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Webhook { client })
    }
}

#[async_trait::async_trait]
impl Adapter for Webhook {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, channel: &Channel, message: &Outgoing) -> Result<String, SendError> {
        let Channel::Webhook { url, secret } = channel else {
            return Err(SendError::Permanent("not a webhook channel".into()));
        };
        let body = serde_json::to_vec(message)
            .map_err(|e| SendError::Permanent(format!("message could not be encoded: {e}")))?;
        let timestamp = message.sent_at.timestamp();
        let response = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP, timestamp.to_string())
            .header(SIGNATURE, sign(secret, timestamp, &body))
            .header(DELIVERY, message.delivery_id.to_string())
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::Retry(format!("{e}")))?;
        let status = response.status();
        if status.is_success() {
            Ok(format!("HTTP {}", status.as_u16()))
        } else if status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
        {
            Err(SendError::Retry(format!("HTTP {}", status.as_u16())))
        } else {
            Err(SendError::Permanent(format!("HTTP {}", status.as_u16())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_body_timestamp_and_secret() {
        let sig = sign("s3cret-xyz", 1_700_000_000, b"{\"a\":1}");
        assert!(sig.starts_with("v1="));
        assert!(verify("s3cret-xyz", 1_700_000_000, b"{\"a\":1}", &sig));
        assert!(!verify("s3cret-xyz", 1_700_000_001, b"{\"a\":1}", &sig));
        assert!(!verify("s3cret-xyz", 1_700_000_000, b"{\"a\":2}", &sig));
        assert!(!verify("other-key", 1_700_000_000, b"{\"a\":1}", &sig));
        assert!(!verify("s3cret-xyz", 1_700_000_000, b"{\"a\":1}", "v1=zz"));
    }
}
