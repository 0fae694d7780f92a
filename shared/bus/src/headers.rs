//! Trace context in NATS message headers (W3C `traceparent`/`tracestate`).

use async_nats::HeaderMap;
use renkei_telemetry::Carrier;

/// The header JetStream deduplicates on.
pub const MSG_ID: &str = "Nats-Msg-Id";

/// Headers carrying `carrier`.
pub fn to_headers(carrier: &Carrier) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (k, v) in carrier {
        headers.insert(k.as_str(), v.as_str());
    }
    headers
}

/// The trace context found in `headers`.
pub fn from_headers(headers: Option<&HeaderMap>) -> Carrier {
    let mut carrier = Carrier::new();
    if let Some(headers) = headers {
        for key in ["traceparent", "tracestate"] {
            if let Some(v) = headers.get(key) {
                carrier.insert(key.to_owned(), v.as_str().to_owned());
            }
        }
    }
    carrier
}
